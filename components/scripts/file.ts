/**
 * Installs stdin as a file, atomically: a temp file in the target directory, chmod/chown, then mv. Parent directories
 * that are missing are created (0755) and recorded. The content is never echoed.
 *
 * Ownership: marker `file/<id>/sha256` holds the sha256 of what we wrote, `file/<id>/path` where. An existing file is
 * replaced only when it is ours (its current hash equals the recorded one, e.g. a key rotation); an existing file that
 * already has exactly the new content, mode and owner is left as it is and recorded as adopted (`file/<id>/adopted`:
 * delete leaves it); any other existing file is refused. When the path changes, the file we wrote at the old path is
 * removed (if unchanged).
 *
 * With `decodeBase64`, stdin is base64 and the file gets the decoded bytes. With `refuseSharedFs`, a target directory
 * on nfs, cifs/smb, gfs2, ocfs2, glusterfs, ceph, lustre, 9p or any fuse filesystem is refused (a fence key must stay
 * local to each machine).
 *
 * Delete removes the file only when its hash still matches what we wrote (else it leaves it and says so), then the
 * directories it created, when empty.
 */
import { assertAbsPath, assertMarkerSegment, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

export interface FileOptions {
    /** Identifies this file among the lab's files on a machine (marker key); stable across runs. */
    id: string;
    /** Absolute path of the file. */
    path: string;
    /** Octal mode, e.g. "0400" or "644". */
    mode: string;
    /** The file's owner (and group). @default "root" */
    owner?: "root";
    /** stdin is base64; the file gets the decoded bytes. @default false */
    decodeBase64?: boolean;
    /** Refuse a target directory on a shared or network filesystem. @default false */
    refuseSharedFs?: boolean;
    /** When set, the (decoded) content must be exactly this many bytes. */
    sizeBytes?: number;
}

const FUNCTIONS = sh`
K="file/$ID"
DIR=$(dirname "$DEST")
# fs_types DIR: the filesystem type(s) of DIR, as findmnt (e.g. fuse.glusterfs, nfs4) and stat -f (e.g. nfs) name them
fs_types() {
    if have findmnt; then findmnt -n -o FSTYPE -T "$1" 2>/dev/null || true; fi
    stat -f -c %T "$1" 2>/dev/null || true
}
# same_attrs FILE: FILE has the wanted mode and is owned by root:root
same_attrs() { [ "$(stat -c '%a %u %g' "$1")" = "$MODE_NORM 0 0" ]; }
`;

const CREATE = sh`
# ---- checks: nothing changes until all of them pass
if [ "$REFUSE_SHARED" = yes ]; then
    E=$DIR
    while [ ! -d "$E" ]; do E=$(dirname "$E"); done
    for T in $(fs_types "$E"); do
        case "$T" in
            nfs*|cifs|smb*|gfs|gfs2|ocfs2|glusterfs|fuse|fuse.*|fuseblk|ceph|lustre|9p|afs|beegfs|gpfs)
                die "$DEST would be on a shared filesystem ($T at $E): this file must stay local to each machine; choose a path on a local filesystem" ;;
        esac
    done
fi
if [ -e "$DEST" ] || [ -L "$DEST" ]; then
    if [ -L "$DEST" ] || [ ! -f "$DEST" ]; then die "$DEST exists and is not a regular file: move it away or choose another path"; fi
fi
OLDPATH=$(m_get "$K/path")
OURSHA=$(m_get "$K/sha256")

# ---- the content, into a temp file next to the target (mode 0600 until it is complete)
if [ ! -d "$DIR" ]; then mkdir_recorded "$DIR" "$K/dirs"; fi
TMP=$(mktemp "$DIR/.kvm-ha-lab.XXXXXX") || die "cannot create a temporary file in $DIR: check that it is writable"
fail() {
    rm -f "$TMP"
    if [ -z "$OURSHA" ]; then rmdir_recorded "$K/dirs"; fi
    die "$1"
}
if [ "$DECODE" = yes ]; then
    base64 -d > "$TMP" 2>/dev/null || fail "the content on stdin is not valid base64: pass the file base64-encoded"
else
    cat > "$TMP"
fi
if [ -n "$SIZE" ] && [ "$(wc -c < "$TMP" | tr -d ' ')" != "$SIZE" ]; then
    fail "the content for $DEST is $(wc -c < "$TMP" | tr -d ' ') bytes, not $SIZE: pass the complete file"
fi
NEWSHA=$(sha_file "$TMP")
if [ -f "$DEST" ]; then
    CURSHA=$(sha_file "$DEST")
    if [ "$OLDPATH" = "$DEST" ] && [ -n "$OURSHA" ] && [ "$CURSHA" = "$OURSHA" ]; then
        if [ "$CURSHA" = "$NEWSHA" ] && same_attrs "$DEST"; then rm -f "$TMP"; exit 0; fi
    elif [ "$CURSHA" = "$NEWSHA" ] && same_attrs "$DEST"; then
        rm -f "$TMP"
        if ! m_has "$K/adopted"; then
            m_put "$K/adopted" "$DEST"
            log "$DEST already has exactly this content, mode and owner: left as it is (it stays when the lab is destroyed)"
        fi
        exit 0
    else
        fail "$DEST exists and was not written by kvm-ha-lab lab $LAB (or was changed since): move it away, or remove it if it may be replaced"
    fi
fi

# ---- install
chmod "$MODE" "$TMP" && chown 0:0 "$TMP" || fail "cannot set mode $MODE and owner root on $TMP"
m_put "$K/sha256" "$NEWSHA"
m_put "$K/path" "$DEST"
m_del "$K/adopted"
mv -f "$TMP" "$DEST" || fail "cannot move the new content into place at $DEST"
log "installed $DEST (mode $MODE, owner root)"
# the file we wrote at an earlier path
if [ -n "$OLDPATH" ] && [ "$OLDPATH" != "$DEST" ] && [ -f "$OLDPATH" ] && [ "$(sha_file "$OLDPATH")" = "$OURSHA" ]; then
    rm -f "$OLDPATH"
    log "removed $OLDPATH (the file's former path)"
fi
`;

const DELETE = sh`
m_del "$K/adopted"
P=$(m_get "$K/path")
S=$(m_get "$K/sha256")
if [ -n "$P" ] && [ -f "$P" ]; then
    if [ "$(sha_file "$P")" = "$S" ]; then rm -f "$P"; log "removed $P"; else log "left $P in place: it changed since this lab wrote it"; fi
fi
m_del "$K/sha256"
m_del "$K/path"
rmdir_recorded "$K/dirs"
`;

export function fileScripts(lab: string, opts: FileOptions): HostScripts {
    assertMarkerSegment("file id", opts.id);
    assertAbsPath("file path", opts.path);
    if (opts.path.endsWith("/")) throw new Error(`file path ${JSON.stringify(opts.path)} names a directory`);
    if (!/^0?[0-7]{3}$/.test(opts.mode)) throw new Error(`file mode ${JSON.stringify(opts.mode)} is not an octal mode like 0644`);
    if (opts.owner !== undefined && opts.owner !== "root") throw new Error(`file owner ${JSON.stringify(opts.owner)} is not supported (only root)`);
    if (opts.sizeBytes !== undefined && (!Number.isInteger(opts.sizeBytes) || opts.sizeBytes < 0)) {
        throw new Error(`file sizeBytes ${opts.sizeBytes} is not a byte count`);
    }
    const vars = {
        ID: opts.id,
        DEST: opts.path,
        MODE: opts.mode,
        MODE_NORM: parseInt(opts.mode, 8).toString(8),
        DECODE: opts.decodeBase64 ? "yes" : "no",
        REFUSE_SHARED: opts.refuseSharedFs ? "yes" : "no",
        SIZE: opts.sizeBytes === undefined ? "" : String(opts.sizeBytes),
    };
    const what = `file ${opts.id}`;
    return {
        create: hostScript(lab, what, vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, FUNCTIONS + DELETE),
    };
}
