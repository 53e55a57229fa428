/**
 * The delete scripts of the per-guest domain commands of versions before the per-host domains command
 * (`<guest>-define-<host>`, components/scripts/domain.ts until then), frozen as they were: a Pulumi state written by
 * such a version holds them, and the engine runs them when it removes those commands after the new domains command
 * took over (the migration test in scripts-libvirt.test.ts). Not used by the program.
 */
import { VIRSH_FUNCTIONS } from "../../components/scripts/domains";
import { hostScript, sh } from "../../components/scripts/prelude";

const LEGACY_DEFINE_DELETE = sh`
K="domain/$NAME"
OURS=$(m_get "$K/uuid")
[ -n "$OURS" ] || exit 0
if dom_exists "$NAME"; then
    CUR=$(dom_uuid "$NAME")
    if [ "$CUR" = "$OURS" ]; then
        if dom_active "$NAME"; then V destroy "$NAME" >/dev/null 2>"$WORK/err" || die "virsh destroy $NAME failed: $(tr '\n' ' ' < "$WORK/err")"; fi
        if ! V undefine "$NAME" >/dev/null 2>"$WORK/err"; then
            V undefine --keep-nvram "$NAME" >/dev/null 2>>"$WORK/err" || die "virsh undefine $NAME failed: $(tr '\n' ' ' < "$WORK/err")"
        fi
        log "undefined domain $NAME (its disk images are kept)"
    else
        log "left domain $NAME in place: its UUID is $CUR, not the $OURS this lab defined"
    fi
fi
m_del "$K/uuid"
m_del "$K/xml.sha256"
`;

/** The delete of a legacy `<guest>-define-<host>` command. */
export function legacyDefineDelete(lab: string, name: string, xmlPath: string, uuid: string): string {
    return hostScript(lab, `domain ${name}`, { NAME: name, XML: xmlPath, UUID: uuid }, VIRSH_FUNCTIONS + LEGACY_DEFINE_DELETE);
}
