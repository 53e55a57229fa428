/**
 * Delivers a cluster.conf to one cluster node, safely. stdin: `clusterConfDeliverStdin(conf, schema)`, i.e. the
 * RELAX NG schema (schema/cluster-conf.rng), a boundary line, then the new cluster.conf.
 *
 * create (idempotent; also what runs when the content changes):
 * 1. Ownership: an existing cluster.conf is replaced only when this lab wrote it and nobody changed it since (marker
 *    `cluster-conf/<id>/sha256`). A file we did not write, or one edited after we wrote it, is refused with a message
 *    naming the file and the fix; nothing changes.
 * 2. Same content as installed: nothing is written (no backup); the schema copy is refreshed and, on the reloading
 *    node, cman is asked to load the version if it still runs an older one (a retry after a failed reload).
 * 3. cman running here: a new file must carry a config_version higher than the one cman runs (cman refuses to load
 *    an equal or lower one), else it is refused before anything changes.
 * 4. The new content goes to a temporary file in the same directory (mode 0640, root), which is validated ON THE NODE
 *    BEFORE anything is replaced: `ccs_config_validate -f <tmp>` (cman's own schema, regenerated from the node's
 *    agents) when cman is installed, else `xmllint --noout --relaxng <schema> <tmp>` with the schema from stdin
 *    (then kept at `<state dir>/cluster-conf/<id>/cluster-conf.rng` for checking files by hand), else (no validator) the
 *    file is installed unchecked and the log says so. A rejected file fails the command with the validator's
 *    message; the old file stays.
 * 5. The previous file is copied to `<backupDir>/cluster.conf-<YYYYmmddHHMMSS>` (the CentOS 5.5 HA virtualization guide, step 2; the date is the
 *    node's, taken at run time; `.1`, `.2`, ... when one second sees several), then the temporary file is renamed
 *    over cluster.conf: an atomic replacement, readers see the old or the new file, never a partial one.
 * 6. With `reload` (one node per cluster, after every node has the file): when cman runs and runs an older version,
 *    `cman_tool version -r -S`: cman validates the file itself, and every member re-reads its own copy (-S: the files
 *    were distributed by us, not by ccs_sync/ricci). The command fails if cman does not end up on the new version.
 *
 * delete: removes cluster.conf when it is still exactly what this lab wrote (else leaves it and says so), the schema
 * copy and the markers; it restores nothing (the backups stay in `backupDir`, the running cluster keeps its
 * in-memory configuration until cman restarts).
 */
import { assertAbsPath, assertMarkerSegment, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

export const CLUSTER_CONF_PATH = "/etc/cluster/cluster.conf";

/** Separates the schema from the cluster.conf on stdin. Neither a schema nor a cluster.conf of ours contains it. */
export const CLUSTER_CONF_STDIN_BOUNDARY = "--8<-- kvm-ha-lab: the cluster.conf follows --8<--";

export interface ClusterConfDeliverOptions {
    /** Identifies this cluster.conf among the lab's files on a node (marker key), e.g. "guest-cluster-conf". */
    id: string;
    /** Where cman reads its configuration. @default /etc/cluster/cluster.conf */
    path?: string;
    /** Where previous versions are kept. @default the `backups` directory next to `path` */
    backupDir?: string;
    /** Ask cman to load the new file when cman runs on this node. @default true */
    reload?: boolean;
    /** Root of the lab state directories (for tests). @default /var/lib/kvm-ha-lab */
    stateRoot?: string;
}

/** stdin of the deliver command: the schema (may be empty: then xmllint only checks well-formedness), then the file. */
export function clusterConfDeliverStdin(conf: string, schema: string): string {
    for (const [what, text] of [["schema", schema], ["cluster.conf", conf]] as const) {
        if (text.split("\n").includes(CLUSTER_CONF_STDIN_BOUNDARY)) throw new Error(`the ${what} contains the stdin boundary line`);
    }
    return `${schema === "" ? "" : schema.replace(/\n?$/, "\n")}${CLUSTER_CONF_STDIN_BOUNDARY}\n${conf}`;
}

const FUNCTIONS = sh`
K="cluster-conf/$ID"
DIR=$(dirname "$CONF")
RNG="$STATE_DIR/$K/cluster-conf.rng"
`;

const CREATE = sh`
read_stdin
: > "$WORK/schema.rng"
: > "$WORK/new.conf"
awk -v b="$BOUNDARY" -v s="$WORK/schema.rng" -v c="$WORK/new.conf" '
    !seen && $0 == b { seen = 1; next }
    !seen { print > s; next }
    { print > c }
    END { if (!seen) exit 3 }' "$WORK/stdin" || die "stdin is not the schema, the boundary line and the cluster.conf: pass clusterConfDeliverStdin(conf, schema)"
[ -s "$WORK/new.conf" ] || die "stdin carries no cluster.conf after the boundary line: pass the rendered file"
NEWSHA=$(sha_file "$WORK/new.conf")
NEWVER=$(sed -n 's/.*<cluster[[:space:]][^>]*config_version="\([0-9][0-9]*\)".*/\1/p' "$WORK/new.conf" | sed -n 1p)
[ -n "$NEWVER" ] || die "the cluster.conf on stdin has no <cluster config_version=\"N\">: render it with a config_version"

# clean TEXT: the validator's output with the temporary file's name replaced
clean() { printf '%s\n' "$1" | awk -v t="$TMP" '{ while (t != "" && (i = index($0, t)) > 0) $0 = substr($0, 1, i - 1) "(new cluster.conf)" substr($0, i + length(t)); print }'; }
TMP=''
# fail MESSAGE: removes the temporary file (and, on a first install, the directories made for it), then dies
fail() {
    if [ -n "$TMP" ]; then rm -f "$TMP"; fi
    if [ -z "$OURSHA" ]; then rmdir_recorded "$K/dirs"; fi
    die "$1"
}

# ---- ownership: nothing changes until these pass
if [ -L "$CONF" ]; then die "$CONF is a symbolic link: kvm-ha-lab writes a regular file there; remove the link (and keep its target's content in the stack config)"; fi
OURSHA=$(m_get "$K/sha256")
CURSHA=''
if [ -e "$CONF" ]; then
    [ -f "$CONF" ] || die "$CONF exists and is not a regular file: move it away"
    CURSHA=$(sha_file "$CONF")
    if [ -z "$OURSHA" ]; then
        OTHER=$(other_labs_with "$K/sha256" | sed -n 1p)
        if [ -n "$OTHER" ]; then
            die "$CONF was written by kvm-ha-lab lab $OTHER, not by lab $LAB: a node can be in one cluster only; take it out of one of the labs"
        fi
        die "$CONF exists and was not written by kvm-ha-lab (lab $LAB): refusing to overwrite it. Put its settings into the stack config and move it away (mv $CONF $CONF.orig), then run again"
    fi
    if [ "$CURSHA" != "$OURSHA" ]; then
        die "$CONF was changed since kvm-ha-lab lab $LAB wrote it: refusing to overwrite those changes. Put them into the stack config and move the file away (mv $CONF $CONF.edited), then run again"
    fi
fi

# ---- what cman runs
RUNVER=''
if have cman_tool && cman_tool status >/dev/null 2>&1; then
    RUNVER=$(cman_tool version 2>/dev/null | sed -n 's/.* config \([0-9][0-9]*\).*/\1/p' | sed -n 1p)
fi

# save_schema: keeps the schema from stdin in the state directory (for xmllint, and for checking files by hand)
save_schema() {
    if [ -s "$WORK/schema.rng" ]; then
        if [ -f "$RNG" ] && [ "$(sha_file "$RNG")" = "$(sha_file "$WORK/schema.rng")" ]; then return 0; fi
        state_init
        mkdir -p "$STATE_DIR/$K"
        put_file "$WORK/schema.rng" "$RNG" 0600
    else
        rm -f "$RNG"
    fi
}

# reload: tells cman to load NEWVER (reloading node only)
reload() {
    [ "$RELOAD" = yes ] || return 0
    if [ -z "$RUNVER" ]; then log "cman does not run on this node: it reads $CONF (config_version $NEWVER) when it starts"; return 0; fi
    if [ "$RUNVER" -eq "$NEWVER" ]; then log "cman already runs config_version $NEWVER"; return 0; fi
    if [ "$RUNVER" -gt "$NEWVER" ]; then
        die "cman runs config_version $RUNVER, newer than this file's $NEWVER: the cluster was reconfigured outside kvm-ha-lab; put that change into the stack config and restore kvm-ha-lab's file on every node (mv $CONF.edited away), or raise the version by hand with cman_tool"
    fi
    OUT=$(cman_tool version -r -S 2>&1) || die "cman_tool version -r -S failed; cman keeps running config_version $RUNVER while $CONF has $NEWVER: $OUT"
    _i=0
    while :; do
        NOW=$(cman_tool version 2>/dev/null | sed -n 's/.* config \([0-9][0-9]*\).*/\1/p' | sed -n 1p)
        if [ "$NOW" = "$NEWVER" ]; then break; fi
        _i=$((_i + 1))
        [ "$_i" -lt 50 ] || die "after cman_tool version -r -S, cman runs config_version '$NOW', not $NEWVER: check the cluster log (another node may have refused the file)"
        nap
    done
    log "cman loaded config_version $NEWVER (every member re-read its own $CONF)"
}

if [ -n "$CURSHA" ] && [ "$CURSHA" = "$NEWSHA" ]; then
    save_schema
    reload
    exit 0
fi

if [ -n "$RUNVER" ] && [ "$NEWVER" -le "$RUNVER" ]; then
    die "the new cluster.conf has config_version $NEWVER but cman runs $RUNVER on this node, and cman only loads a higher version: $CONF was left unchanged"
fi

# ---- validate the new file where it will live, before anything is replaced
if [ ! -d "$DIR" ]; then mkdir_recorded "$DIR" "$K/dirs"; fi
TMP=$(mktemp "$DIR/.cluster.conf.XXXXXX") || die "cannot create a temporary file in $DIR: check that it is writable and has free space"
cat "$WORK/new.conf" > "$TMP" && chmod 0640 "$TMP" && chown 0:0 "$TMP" || fail "cannot write $TMP: check free space in $DIR"
# bounded: a validator that runs past 120 s is stopped and the file refused (xmllint's RELAX NG check takes time
# exponential in the attributes of one element; kvm-ha-lab renders at most 11, which take well under a second)
bounded() {
    if have timeout; then
        timeout 120 "$@" && return 0 || _rc=$?
        if [ "$_rc" -eq 124 ]; then echo "$1 did not finish within 120 s and was stopped"; fi
        return "$_rc"
    fi
    "$@"
}
if have ccs_config_validate; then
    OUT=$(bounded ccs_config_validate -f "$TMP" 2>&1) || fail "ccs_config_validate refuses the new cluster.conf (config_version $NEWVER), so $CONF was left unchanged:
$(clean "$OUT")"
    CHECKED="checked by ccs_config_validate"
elif have xmllint; then
    if [ -s "$WORK/schema.rng" ]; then
        OUT=$(bounded xmllint --noout --relaxng "$WORK/schema.rng" "$TMP" 2>&1) || fail "xmllint refuses the new cluster.conf (config_version $NEWVER) against kvm-ha-lab's schema (schema/cluster-conf.rng), so $CONF was left unchanged:
$(clean "$OUT")"
        CHECKED="checked by xmllint against kvm-ha-lab's schema, kept in $RNG"
    else
        OUT=$(xmllint --noout "$TMP" 2>&1) || fail "the new cluster.conf is not well-formed XML, so $CONF was left unchanged:
$(clean "$OUT")"
        CHECKED="checked to be well-formed by xmllint (no schema was sent)"
    fi
else
    CHECKED="NOT checked on this node: neither ccs_config_validate (cman) nor xmllint (libxml2) is installed"
    log "$CHECKED; install one of them to have every new file checked before it replaces the old one"
fi

# ---- back up the file we wrote before, then replace it atomically
if [ -n "$CURSHA" ]; then
    if [ ! -d "$BACKUP_DIR" ]; then mkdir_recorded "$BACKUP_DIR" "$K/dirs"; fi
    STAMP=$(date +%Y%m%d%H%M%S)
    B="$BACKUP_DIR/cluster.conf-$STAMP"
    _n=1
    while [ -e "$B" ]; do B="$BACKUP_DIR/cluster.conf-$STAMP.$_n"; _n=$((_n + 1)); done
    cp -p "$CONF" "$B" || fail "cannot back up $CONF to $B: check free space in $BACKUP_DIR; $CONF was left unchanged"
    log "backed up the previous $CONF to $B"
fi
m_put "$K/sha256" "$NEWSHA"
m_put "$K/path" "$CONF"
if ! mv -f "$TMP" "$CONF"; then
    if [ -n "$OURSHA" ]; then m_put "$K/sha256" "$OURSHA"; else m_del "$K/sha256"; fi
    fail "cannot move the new cluster.conf into place at $CONF; it was left unchanged"
fi
TMP=''
save_schema
log "installed $CONF (config_version $NEWVER, $CHECKED)"
reload
`;

const DELETE = sh`
P=$(m_get "$K/path")
S=$(m_get "$K/sha256")
if [ -n "$P" ] && [ -f "$P" ] && [ ! -L "$P" ]; then
    if [ "$(sha_file "$P")" = "$S" ]; then
        rm -f "$P"
        log "removed $P (cman keeps its in-memory configuration until it restarts; earlier versions stay in $BACKUP_DIR)"
    else
        log "left $P in place: it changed since lab $LAB wrote it"
    fi
fi
rm -f "$RNG"
m_del "$K/sha256"
m_del "$K/path"
# Backups are kept on purpose: their directory (and its parents) then stay for good, nothing to retry later.
if [ -n "$(ls -A "$BACKUP_DIR" 2>/dev/null)" ]; then rmdir_recorded "$K/dirs" final; else rmdir_recorded "$K/dirs"; fi
`;

export function clusterConfDeliverScripts(lab: string, opts: ClusterConfDeliverOptions): HostScripts {
    assertMarkerSegment("cluster.conf id", opts.id);
    const path = opts.path ?? CLUSTER_CONF_PATH;
    assertAbsPath("cluster.conf path", path);
    if (path.endsWith("/")) throw new Error(`cluster.conf path ${JSON.stringify(path)} names a directory`);
    const backupDir = opts.backupDir ?? `${path.replace(/\/[^/]+$/, "") || "/"}/backups`;
    assertAbsPath("cluster.conf backup directory", backupDir);
    const vars: Record<string, string> = {
        ID: opts.id,
        CONF: path,
        BACKUP_DIR: backupDir.replace(/\/+$/, "") || "/",
        RELOAD: opts.reload === false ? "no" : "yes",
        BOUNDARY: CLUSTER_CONF_STDIN_BOUNDARY,
    };
    if (opts.stateRoot !== undefined) {
        assertAbsPath("state root", opts.stateRoot);
        vars.STATE_ROOT = opts.stateRoot;
        vars.STATE_DIR = `${opts.stateRoot.replace(/\/+$/, "")}/${lab}`;
    }
    const what = `cluster.conf ${opts.id}`;
    return {
        create: hostScript(lab, what, vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, FUNCTIONS + DELETE),
    };
}
