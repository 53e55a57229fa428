/**
 * Defines a libvirt domain from its XML file (installed beforehand by a file script) with `virsh define`, and turns
 * libvirt autostart off (a cluster, or the lab's start step, decides where it runs).
 *
 * Markers `domain/<name>/uuid` (the UUID of the domain we defined) and `domain/<name>/xml.sha256` (the XML file we
 * defined it from: a rerun redefines only when the file changed). A domain of that name that exists without our marker
 * (or with another UUID) is a user's: create refuses it, delete leaves it. Redefining our own domain is fine.
 * The XML's <name> (and <uuid>, when given) must match, so a wrong file can never define or overwrite another domain.
 * Delete: destroy when running, `virsh undefine` (disk images are kept), remove the marker.
 */
import { assertAbsPath, assertMarkerSegment, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

export interface DomainOptions {
    /** The libvirt domain name (= guest name = cluster node name). */
    name: string;
    /** Absolute path of the domain XML on the host. */
    xmlPath: string;
    /** The UUID the XML carries, when known: checked before defining. */
    uuid?: string;
}

/** Shared by the domain scripts: virsh on qemu:///system, and a connection check. */
export const VIRSH_FUNCTIONS = sh`
have virsh || die "virsh is not installed: install libvirt-client (RHEL) or libvirt-clients (Debian)"
work_dir
V() { virsh -q -c "$VIRSH_URI" "$@" </dev/null; }
V uri >/dev/null 2>"$WORK/err" || die "cannot connect to libvirt at $VIRSH_URI: $(tr '\n' ' ' < "$WORK/err" | cut -c1-300)- start libvirtd and run again"
dom_exists() { V dominfo "$1" >/dev/null 2>&1; }
dom_uuid() { V domuuid "$1" 2>/dev/null | sed '/^$/d'; }
dom_active() { _id=$(V domid "$1" 2>/dev/null | sed '/^$/d'); [ -n "$_id" ] && [ "$_id" != "-" ]; }
`;

const CREATE = sh`
K="domain/$NAME"
# ---- checks: nothing changes until all of them pass
[ -f "$XML" ] || die "domain XML $XML does not exist: it is installed by the lab's XML step; check xmlDir"
if have xmllint; then
    XNAME=$(xmllint --xpath 'string(/domain/name)' "$XML" 2>/dev/null || true)
    XUUID=$(xmllint --xpath 'string(/domain/uuid)' "$XML" 2>/dev/null || true)
else
    XNAME=$(sed -n 's:.*<name>\([^<]*\)</name>.*:\1:p' "$XML" | head -n 1)
    XUUID=$(sed -n 's:.*<uuid>\([^<]*\)</uuid>.*:\1:p' "$XML" | head -n 1)
fi
[ "$XNAME" = "$NAME" ] || die "domain XML $XML names the domain '$XNAME', not '$NAME': fix <name> in the XML"
if [ -n "$UUID" ]; then
    [ "$(echo "$XUUID" | tr A-F a-f)" = "$(echo "$UUID" | tr A-F a-f)" ] || die "domain XML $XML has UUID '$XUUID', not '$UUID': fix <uuid> in the XML"
    OTHER=$(V domname "$UUID" 2>/dev/null | sed '/^$/d' || true)
    if [ -n "$OTHER" ] && [ "$OTHER" != "$NAME" ]; then die "UUID $UUID already belongs to domain $OTHER on this host: give the guest another UUID or undefine $OTHER"; fi
fi
OURS=$(m_get "$K/uuid")
if dom_exists "$NAME"; then
    CUR=$(dom_uuid "$NAME")
    if [ -z "$OURS" ] || [ "$OURS" != "$CUR" ]; then
        die "a domain named $NAME (UUID $CUR) already exists on this host and was not defined by kvm-ha-lab lab $LAB: rename the guest, or undefine that domain if it may go"
    fi
fi

# ---- define (again only when the XML file changed since we defined it)
XSHA=$(sha_file "$XML")
if [ -z "$OURS" ] || ! dom_exists "$NAME" || [ "$XSHA" != "$(m_get "$K/xml.sha256")" ]; then
    V define "$XML" >"$WORK/out" 2>&1 || die "virsh define $XML failed: $(tr '\n' ' ' < "$WORK/out" | cut -c1-400)"
    m_put "$K/uuid" "$(dom_uuid "$NAME")"
    m_put "$K/xml.sha256" "$XSHA"
    log "defined domain $NAME from $XML"
fi
V autostart --disable "$NAME" >/dev/null 2>"$WORK/err" || die "virsh autostart --disable $NAME failed: $(tr '\n' ' ' < "$WORK/err")"
`;

const DELETE = sh`
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

export function domainScripts(lab: string, opts: DomainOptions): HostScripts {
    assertMarkerSegment("domain name", opts.name);
    assertAbsPath("domain XML path", opts.xmlPath);
    const vars = { NAME: opts.name, XML: opts.xmlPath, UUID: opts.uuid ?? "" };
    const what = `domain ${opts.name}`;
    return {
        create: hostScript(lab, what, vars, VIRSH_FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, VIRSH_FUNCTIONS + DELETE),
    };
}
