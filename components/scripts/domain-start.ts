/**
 * Starts a defined domain on its placement host unless it is already active.
 * Marker `start/<name>/uuid`: this lab started it (the domain's UUID). Delete destroys it only when it is still that
 * domain and active; a domain that was already running at create is never stopped by this lab.
 */
import { VIRSH_FUNCTIONS } from "./domains";
import { assertMarkerSegment, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

const CREATE = sh`
K="start/$NAME"
dom_exists "$NAME" || die "domain $NAME is not defined on this host: define it first (the lab's domain step)"
dom_active "$NAME" && exit 0
HAD=$(m_get "$K/uuid")
m_put "$K/uuid" "$(dom_uuid "$NAME")"
if ! V start "$NAME" >"$WORK/out" 2>&1; then
    [ -n "$HAD" ] || m_del "$K/uuid"
    die "virsh start $NAME failed: $(tr '\n' ' ' < "$WORK/out" | cut -c1-400)"
fi
log "started domain $NAME"
`;

const DELETE = sh`
K="start/$NAME"
OURS=$(m_get "$K/uuid")
[ -n "$OURS" ] || exit 0
if dom_exists "$NAME" && [ "$(dom_uuid "$NAME")" = "$OURS" ] && dom_active "$NAME"; then
    V destroy "$NAME" >/dev/null 2>"$WORK/err" || die "virsh destroy $NAME failed: $(tr '\n' ' ' < "$WORK/err")"
    log "stopped domain $NAME (virsh destroy)"
fi
m_del "$K/uuid"
`;

export function domainStartScripts(lab: string, name: string): HostScripts {
    assertMarkerSegment("domain name", name);
    const what = `start ${name}`;
    return {
        create: hostScript(lab, what, { NAME: name }, VIRSH_FUNCTIONS + CREATE),
        delete: hostScript(lab, what, { NAME: name }, VIRSH_FUNCTIONS + DELETE),
    };
}
