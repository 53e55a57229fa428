/**
 * Defines every libvirt domain of a lab on one host, in one command: `<host>-domains` (one per host, not one per guest
 * and host). stdin is the lab's domain bundle (`domainsBundle`: every domain's name, UUID, the sha256 of its XML, its
 * placement host and the XML itself, gzip-compressed and base64-encoded; the same text for every host).
 *
 * Create (and every update, which runs it again):
 * 1. checks everything before any change: each XML's <name> and <uuid> are the domain's; no other domain has that
 *    UUID; a domain of that name that exists is ours (marker), else it is a user's and the command refuses; the XML
 *    file it would write is absent, ours, or already exactly that content;
 * 2. writes `<xmlDir>/<name>.xml` (mode 0644) on every host, or on the placement host only when `xmlDir.shared`
 *    (the other hosts define from the bundle, so no host waits for another);
 * 3. `virsh define`s the domains that are new or whose XML hash changed (a running guest keeps running: libvirt
 *    applies the new definition at its next start), and turns libvirt autostart off for all of them;
 * 4. forgets the domains it defined earlier that left the bundle: `virsh undefine` (a running one stays running as a
 *    transient domain until the lab's start step stops it; a cluster node's deliveries are removed before that) and
 *    removes the XML file it wrote.
 * Delete undoes exactly what create did: for every domain it defined, destroy when running, undefine (disk images are
 * kept); the XML files it wrote (when unchanged since); the directories it had to create.
 *
 * Markers (per domain): `domains/<name>/uuid` (the UUID we defined), `domains/<name>/xml.sha256` (the XML we defined
 * it from), `domains/<name>/file.path` + `file.sha256` (the XML file we wrote) or `file.adopted` (a file that already
 * had exactly that content: left in place on delete); `domains-dirs` (directories created for the XML files).
 * Migration from the per-guest commands of earlier versions (`<guest>-define-<host>`, `<guest>-xml-<host>`): their
 * markers (`domain/<name>/…`, `file/domain-xml-<name>/…`) are taken over here, before anything else changes, so that
 * the deletes of those old commands, which the engine runs after this create, find nothing of theirs and leave the
 * domains and files in place.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { createHash } from "node:crypto";
import { assertAbsPath, assertMarkerSegment, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

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

/** The first line of a bundle: names the format (a script of another format refuses it). */
export const BUNDLE_HEADER = "kvm-ha-lab-domains 1";

export interface BundledDomain {
    /** libvirt domain name (= guest name). */
    name: string;
    /** The UUID the XML carries, when known (rendered XMLs); checked against the XML and the host's other domains. */
    uuid?: string;
    /** The domain XML, as written to the XML file and defined (byte for byte). */
    xml: string;
    /** The guest's placement host: it writes the XML file when the XML directory is shared. */
    placement: string;
}

export function sha256(text: string): string {
    return createHash("sha256").update(text).digest("hex");
}

/**
 * The domain bundle, as text: `BUNDLE_HEADER`, then per domain a line `domain <name> <uuid|-> <sha256> <placement>
 * <lines> <eol>` followed by exactly <lines> lines of XML; <eol> is 0 when the XML has no final newline (one was added
 * to end the record, and the script leaves it out). Names and hosts are single words (validated names).
 */
export function domainsBundleText(domains: BundledDomain[]): string {
    const parts = [`${BUNDLE_HEADER}\n`];
    for (const d of domains) {
        assertMarkerSegment("domain name", d.name);
        assertMarkerSegment("placement host", d.placement);
        if (d.uuid !== undefined && !/^[0-9a-fA-F-]{32,36}$/.test(d.uuid)) throw new Error(`domain ${d.name}: UUID ${JSON.stringify(d.uuid)} is not a UUID`);
        const eol = d.xml.endsWith("\n");
        const text = eol ? d.xml : `${d.xml}\n`;
        const lines = text.split("\n").length - 1;
        parts.push(`domain ${d.name} ${d.uuid ?? "-"} ${sha256(d.xml)} ${d.placement} ${lines} ${eol ? 1 : 0}\n`, text);
    }
    return parts.join("");
}

/**
 * The bundle as the command's stdin: gzip (level 9) then base64. Deterministic: zlib's output depends only on its input
 * and level, and the gzip header carries no time (mtime 0) and a fixed OS byte (3, Unix, set here so that the text is
 * the same whatever platform runs pulumi). Similar XMLs compress about 20-fold.
 */
export function domainsBundle(domains: BundledDomain[]): string {
    const gz = gzipSync(Buffer.from(domainsBundleText(domains), "utf8"), { level: 9 });
    gz[9] = 3;
    return gz.toString("base64");
}

/** The domains of a bundle (`domainsBundle`'s inverse, as the script reads it): for tests and review. */
export function readDomainsBundle(stdin: string): BundledDomain[] {
    const lines = gunzipSync(Buffer.from(stdin, "base64")).toString("utf8").split("\n");
    if (lines[0] !== BUNDLE_HEADER) throw new Error(`not a domain bundle: it starts with ${JSON.stringify(lines[0])}`);
    const out: BundledDomain[] = [];
    for (let i = 1; i < lines.length && lines[i] !== ""; ) {
        const [tag, name, uuid, , placement, count, eol] = lines[i].split(" ");
        if (tag !== "domain") throw new Error(`domain bundle line ${i + 1}: ${JSON.stringify(lines[i])} is not a domain record`);
        const xml = lines.slice(i + 1, i + 1 + Number(count)).join("\n") + (eol === "1" ? "\n" : "");
        out.push({ name, ...(uuid !== "-" ? { uuid } : {}), xml, placement });
        i += 1 + Number(count);
    }
    return out;
}

export interface DomainsOptions {
    /** This host's name (compared with each domain's placement host). */
    host: string;
    /** Absolute path of the XML directory. */
    xmlDir: string;
    /** True when the XML directory is shared storage: only the placement host writes a domain's file. */
    xmlDirShared: boolean;
}

const FUNCTIONS = sh`
XMLDIR=\${XMLDIR%/}
# writes_here PLACEMENT: this host writes the XML file of a domain placed on PLACEMENT
writes_here() { [ "$XML_SHARED" = no ] || [ "$1" = "$HOST" ]; }
# adopt_legacy NAME: takes over the markers of the per-guest commands of earlier versions (see the header)
adopt_legacy() {
    if m_has "domain/$1/uuid"; then
        m_put "domains/$1/uuid" "$(m_get "domain/$1/uuid")"
        m_put "domains/$1/xml.sha256" "$(m_get "domain/$1/xml.sha256")"
        m_del "domain/$1/uuid"
        m_del "domain/$1/xml.sha256"
    fi
    _al=file/domain-xml-$1
    if m_has "$_al/path"; then
        if m_has "$_al/adopted"; then m_put "domains/$1/file.adopted" "$(m_get "$_al/path")"
        else
            m_put "domains/$1/file.path" "$(m_get "$_al/path")"
            m_put "domains/$1/file.sha256" "$(m_get "$_al/sha256")"
        fi
    fi
    if m_has "$_al/dirs"; then m_put domains-dirs "$( { m_get domains-dirs; m_get "$_al/dirs"; } | sed '/^$/d' | sort -u)"; fi
    for _ak in adopted path sha256 dirs; do m_del "$_al/$_ak"; done
}
# drop_file NAME: removes the XML file we wrote for NAME (when unchanged since) and its markers
drop_file() {
    _df_p=$(m_get "domains/$1/file.path")
    if [ -n "$_df_p" ] && [ -f "$_df_p" ]; then
        if [ "$(sha_file "$_df_p")" = "$(m_get "domains/$1/file.sha256")" ]; then rm -f "$_df_p"; log "removed $_df_p"
        else log "left $_df_p in place: it changed since this lab wrote it"; fi
    fi
    m_del "domains/$1/file.path"
    m_del "domains/$1/file.sha256"
    m_del "domains/$1/file.adopted"
}
# drop_domain NAME destroy|keep-running: undefines NAME when it is still the domain we defined, then forgets it
drop_domain() {
    _dd_ours=$(m_get "domains/$1/uuid")
    if [ -n "$_dd_ours" ] && dom_exists "$1"; then
        _dd_cur=$(dom_uuid "$1")
        if [ "$_dd_cur" = "$_dd_ours" ]; then
            if [ "$2" = destroy ] && dom_active "$1"; then
                V destroy "$1" >/dev/null 2>"$WORK/err" || die "virsh destroy $1 failed: $(tr '\n' ' ' < "$WORK/err")"
            fi
            if ! V undefine "$1" >/dev/null 2>"$WORK/err"; then
                V undefine --keep-nvram "$1" >/dev/null 2>>"$WORK/err" || die "virsh undefine $1 failed: $(tr '\n' ' ' < "$WORK/err")"
            fi
            if dom_active "$1"; then log "undefined domain $1: it keeps running until it is stopped, then it is gone"
            else log "undefined domain $1 (its disk images are kept)"; fi
        else
            log "left domain $1 in place: its UUID is $_dd_cur, not the $_dd_ours this lab defined"
        fi
    fi
    drop_file "$1"
    m_del "domains/$1/uuid"
    m_del "domains/$1/xml.sha256"
}
# our_domains: the names of the domains this lab defined on this host
our_domains() {
    [ -d "$STATE_DIR/domains" ] || return 0
    for _od in "$STATE_DIR"/domains/*; do [ -d "$_od" ] && printf '%s\n' "\${_od##*/}"; done
    return 0
}
`;

const CHECK = sh`
# ---- unpack the bundle: $WORK/x/<name>.xml and $WORK/index (name uuid sha256 placement)
read_stdin
mkdir "$WORK/x"
base64 -d < "$WORK/stdin" 2>/dev/null | gzip -dc > "$WORK/bundle" 2>/dev/null || die "the domain bundle on stdin is not base64 gzip: pass the bundle the program makes"
[ "$(sed -n 1p "$WORK/bundle")" = "$BUNDLE_HEADER" ] || die "the domain bundle does not start with '$BUNDLE_HEADER': the program and this script are of different versions"
awk -v dir="$WORK/x" -v index_file="$WORK/index" '
    NR == 1 { next }
    left > 0 { left--; if (left > 0 || eol) print > out; else printf "%s", $0 > out; if (left == 0) close(out); next }
    $1 == "domain" && NF == 7 && $2 ~ /^[A-Za-z0-9_+@-][A-Za-z0-9._+@-]*$/ && $6 ~ /^[0-9]+$/ && $7 ~ /^[01]$/ {
        print $2, $3, $4, $5 > index_file; out = dir "/" $2 ".xml"; left = $6 + 0; eol = $7 + 0; printf "" > out; next
    }
    { bad = 1; exit }
    END { if (bad || left > 0) exit 1 }
' "$WORK/bundle" || die "the domain bundle is damaged: pass the bundle the program makes"
[ -f "$WORK/index" ] || : > "$WORK/index"

# ---- checks: nothing changes until all of them pass
V list --all --name > "$WORK/names" 2>/dev/null || die "virsh list failed: check libvirtd"
V list --all --uuid > "$WORK/uuids" 2>/dev/null || die "virsh list --uuid failed: check libvirtd"
: > "$WORK/plan"
while read -r N U S P; do
    X="$WORK/x/$N.xml"
    [ "$(sha_file "$X")" = "$S" ] || die "the domain bundle is damaged: the XML of $N does not match its sha256"
    if have xmllint; then
        XNAME=$(xmllint --xpath 'string(/domain/name)' "$X" 2>/dev/null || true)
        XUUID=$(xmllint --xpath 'string(/domain/uuid)' "$X" 2>/dev/null || true)
    else
        XNAME=$(sed -n 's:.*<name>\([^<]*\)</name>.*:\1:p' "$X" | head -n 1)
        XUUID=$(sed -n 's:.*<uuid>\([^<]*\)</uuid>.*:\1:p' "$X" | head -n 1)
    fi
    [ "$XNAME" = "$N" ] || die "the domain XML of $N names the domain '$XNAME', not '$N': fix <name> in the XML"
    if [ "$U" != - ]; then
        [ "$(echo "$XUUID" | tr A-F a-f)" = "$(echo "$U" | tr A-F a-f)" ] || die "the domain XML of $N has UUID '$XUUID', not '$U': fix <uuid> in the XML"
        if grep -qix "$U" "$WORK/uuids"; then
            OTHER=$(V domname "$U" 2>/dev/null | sed '/^$/d' || true)
            if [ -n "$OTHER" ] && [ "$OTHER" != "$N" ]; then die "UUID $U already belongs to domain $OTHER on this host: give the guest $N another UUID or undefine $OTHER"; fi
        fi
    fi
    OURS=$(m_get "domains/$N/uuid")
    [ -n "$OURS" ] || OURS=$(m_get "domain/$N/uuid")
    DEFINE=yes
    if grep -qx "$N" "$WORK/names"; then
        CUR=$(dom_uuid "$N")
        if [ -z "$OURS" ] || [ "$OURS" != "$CUR" ]; then
            die "a domain named $N (UUID $CUR) already exists on this host and was not defined by kvm-ha-lab lab $LAB: rename the guest, or undefine that domain if it may go"
        fi
        OLDSHA=$(m_get "domains/$N/xml.sha256")
        [ -n "$OLDSHA" ] || OLDSHA=$(m_get "domain/$N/xml.sha256")
        [ "$S" != "$OLDSHA" ] || DEFINE=no
    fi
    FILE=no
    if writes_here "$P"; then
        F="$XMLDIR/$N.xml"
        FILE=write
        if [ -e "$F" ] || [ -L "$F" ]; then
            if [ -L "$F" ] || [ ! -f "$F" ]; then die "$F exists and is not a regular file: move it away or choose another xmlDir"; fi
            CURF=$(sha_file "$F")
            OURF=$(m_get "domains/$N/file.sha256")
            OURP=$(m_get "domains/$N/file.path")
            if [ -z "$OURF" ] && [ "$(m_get "file/domain-xml-$N/path")" = "$F" ]; then OURF=$(m_get "file/domain-xml-$N/sha256"); OURP=$F; fi
            if [ "$CURF" = "$S" ] && [ "$(stat -c '%a %u %g' "$F")" = "644 0 0" ]; then
                if [ "$OURP" = "$F" ] && [ "$OURF" = "$S" ]; then FILE=same; else FILE=adopt; fi
            elif [ "$OURP" != "$F" ] || [ "$CURF" != "$OURF" ]; then
                die "$F exists and was not written by kvm-ha-lab lab $LAB (or was changed since): move it away, or remove it if it may be replaced"
            fi
        fi
    fi
    printf '%s %s %s %s\n' "$N" "$S" "$DEFINE" "$FILE" >> "$WORK/plan"
done < "$WORK/index"
`;

const CREATE =
    CHECK +
    sh`
# ---- changes
while read -r N S DEFINE FILE; do adopt_legacy "$N"; done < "$WORK/plan"
if grep -q ' write$' "$WORK/plan" && [ ! -d "$XMLDIR" ]; then mkdir_recorded "$XMLDIR" domains-dirs; fi
while read -r N S DEFINE FILE; do
    X="$WORK/x/$N.xml"
    F="$XMLDIR/$N.xml"
    # the XML file we wrote elsewhere (another xmlDir) or no longer write here
    if [ "$(m_get "domains/$N/file.path")" != "$F" ] || [ "$FILE" = no ]; then
        if [ "$FILE" = no ] && [ "$XML_SHARED" = yes ] && [ "$(m_get "domains/$N/file.path")" = "$F" ]; then
            # shared storage, written by the placement host now: the file is handed over, not removed
            m_del "domains/$N/file.path"; m_del "domains/$N/file.sha256"
        else
            drop_file "$N"
        fi
    fi
    case $FILE in
        write)
            put_file "$X" "$F" 0644
            m_put "domains/$N/file.sha256" "$S"
            m_put "domains/$N/file.path" "$F"
            m_del "domains/$N/file.adopted"
            log "installed $F" ;;
        adopt)
            m_has "domains/$N/file.path" || m_put "domains/$N/file.adopted" "$F" ;;
    esac
    if [ "$DEFINE" = yes ]; then
        V define "$X" >"$WORK/out" 2>&1 || die "virsh define of $N failed: $(tr '\n' ' ' < "$WORK/out" | cut -c1-400)"
        m_put "domains/$N/uuid" "$(dom_uuid "$N")"
        m_put "domains/$N/xml.sha256" "$S"
        log "defined domain $N"
    fi
done < "$WORK/plan"

# ---- libvirt autostart off (a cluster, or the lab's start step, decides where a domain runs)
if V list --all --autostart --name > "$WORK/auto" 2>/dev/null; then
    AUTO=$(cut -d' ' -f1 "$WORK/plan" | grep -Fx -f "$WORK/auto" || true)
else
    AUTO=$(cut -d' ' -f1 "$WORK/plan")
fi
for N in $AUTO; do
    V autostart --disable "$N" >/dev/null 2>"$WORK/err" || die "virsh autostart --disable $N failed: $(tr '\n' ' ' < "$WORK/err")"
done

# ---- the domains we defined that left the bundle
cut -d' ' -f1 "$WORK/plan" > "$WORK/wanted"
for N in $(our_domains); do
    grep -qx "$N" "$WORK/wanted" || drop_domain "$N" keep-running
done
if ! grep -qE ' (write|same|adopt)$' "$WORK/plan"; then rmdir_recorded domains-dirs; fi
`;

const DELETE = sh`
for N in $(our_domains); do drop_domain "$N" destroy; done
rmdir_recorded domains-dirs
`;

export function domainsScripts(lab: string, opts: DomainsOptions): HostScripts {
    assertMarkerSegment("host name", opts.host);
    assertAbsPath("XML directory", opts.xmlDir);
    const vars = { HOST: opts.host, XMLDIR: opts.xmlDir, XML_SHARED: opts.xmlDirShared ? "yes" : "no", BUNDLE_HEADER };
    const what = `domains on ${opts.host}`;
    return {
        create: hostScript(lab, what, vars, VIRSH_FUNCTIONS + FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, VIRSH_FUNCTIONS + FUNCTIONS + DELETE),
    };
}
