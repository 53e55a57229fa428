/**
 * The shared start of every host script: strict POSIX sh settings, logging, `die`, the lab's state directory and its
 * ownership markers, init-system detection, process and file helpers.
 *
 * Every host script is `prelude(lab, what) + shVars({...}) + body`. The body only uses the functions below; values
 * from TypeScript enter a script exclusively through `shVars`/`shq` (single-quoted), never spliced into code.
 *
 * State: `labNames(lab).stateDir` (/var/lib/kvm-ha-lab/<lab>, mode 0700) holds marker files. A marker's existence
 * says "this lab made this change"; its content is what was there before (a previous value, a previous state) or what
 * we wrote (a sha256). Markers are keyed by relative paths such as `bridge/br-lab/created`.
 *
 * Environment: `KVM_HA_LAB_INIT=systemd|sysv|none` overrides init-system detection. It exists for tests (which run
 * the systemd and SysV branches against recording shims) and for hosts where detection guesses wrong; remote
 * commands normally do not pass environment variables, so on real hosts detection decides.
 */
import { createHash } from "node:crypto";
import { STATE_ROOT, labNames } from "../names";

const LAB = /^[a-z][a-z0-9-]{0,14}$/;
const MARKER_SEGMENT = /^[A-Za-z0-9_+@-][A-Za-z0-9._+@-]*$/;

/** Quotes a value for POSIX sh: the result is one word whose value is exactly `value`. */
export function shq(value: string): string {
    if (value.includes("\0")) throw new Error(`a shell value cannot contain NUL: ${JSON.stringify(value)}`);
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** `NAME='value'` assignments, one per line, in the order given. */
export function shVars(vars: Record<string, string | number | boolean>): string {
    return (
        Object.entries(vars)
            .map(([name, value]) => {
                if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`not a shell variable name: ${JSON.stringify(name)}`);
                return `${name}=${shq(String(value))}`;
            })
            .join("\n") + "\n"
    );
}

/** Throws unless `lab` is a valid lab name (the config schema guarantees it; this guards direct callers). */
export function assertLab(lab: string): void {
    if (!LAB.test(lab)) {
        throw new Error(`lab name ${JSON.stringify(lab)} is invalid: use 1-15 characters of a-z, 0-9 and '-', starting with a letter`);
    }
}

/** Throws unless `value` can be one segment of a marker path (no '/', not '.' or '..'). */
export function assertMarkerSegment(what: string, value: string): void {
    if (!MARKER_SEGMENT.test(value) || value.length > 200) {
        throw new Error(`${what} ${JSON.stringify(value)} cannot name a state marker: use letters, digits and . _ + @ - (not starting with '.')`);
    }
}

/** Throws unless `path` is an absolute path without newlines or NUL. */
export function assertAbsPath(what: string, path: string): void {
    if (!/^\/[^\0\n]*$/.test(path) || /(^|\/)\.\.?(\/|$)/.test(path)) {
        throw new Error(`${what} ${JSON.stringify(path)} must be an absolute path without '.', '..', newlines or NUL`);
    }
}

/**
 * Tag for shell text: the template's raw text (backslashes kept as written), where `\${` stands for the shell's `${`
 * (a bare `${` would be a TypeScript substitution). Substitutions are not allowed: values enter through `shVars`.
 */
export function sh(strings: TemplateStringsArray, ...values: never[]): string {
    if (values.length > 0) throw new Error("sh`...` takes no substitutions: pass values with shVars");
    return strings.raw.join("").replace(/\\\$\{/g, "${");
}

const FUNCTIONS = sh`
log() { printf 'kvm-ha-lab[%s] %s: %s\n' "$LAB" "$WHAT" "$*" >&2; }
die() { printf 'kvm-ha-lab[%s] %s: error: %s\n' "$LAB" "$WHAT" "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
nap() { sleep 0.2 2>/dev/null || sleep 1; }

[ "$(id -u)" = 0 ] || die "must run as root, not as uid $(id -u): connect as root or run pulumi as root"

# ---- work directory (removed on exit) and the exit trap
WORK=''
work_dir() { [ -n "$WORK" ] || WORK=$(mktemp -d "\${TMPDIR:-/tmp}/kvm-ha-lab.XXXXXX") || die "cannot create a temporary directory in \${TMPDIR:-/tmp}"; }
# EXIT_LOCK: a lock directory the script holds, released at exit (before the state directories are tidied).
EXIT_LOCK=''
on_exit() {
    _rc=$?
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
    if [ -n "$EXIT_LOCK" ]; then rmdir "$EXIT_LOCK" 2>/dev/null || true; fi
    state_tidy
    exit $_rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP
# read_stdin: saves stdin (the content Pulumi sends) to $WORK/stdin.
read_stdin() { work_dir; cat > "$WORK/stdin"; }

# ---- state directory and markers
state_init() {
    if [ ! -d "$STATE_ROOT" ]; then mkdir -p "$(dirname "$STATE_ROOT")" && mkdir -p -m 0700 "$STATE_ROOT"; fi
    if [ ! -d "$STATE_DIR" ]; then mkdir -p -m 0700 "$STATE_DIR"; fi
}
m_has() { [ -f "$STATE_DIR/$1" ]; }
m_get() { if [ -f "$STATE_DIR/$1" ]; then cat "$STATE_DIR/$1"; fi; }
# m_put KEY VALUE: writes a marker atomically. A script of the same lab that ends at this moment may remove a marker
# directory that is still empty (state_tidy), so the write is retried.
m_put() {
    _mp_i=0
    until { state_init && mkdir -p "$(dirname "$STATE_DIR/$1")" && printf '%s\n' "$2" > "$STATE_DIR/$1.tmp"; } 2>/dev/null; do
        _mp_i=$((_mp_i + 1))
        [ "$_mp_i" -lt 5 ] || die "cannot write the state marker $STATE_DIR/$1: check that $STATE_ROOT is writable"
    done
    mv -f "$STATE_DIR/$1.tmp" "$STATE_DIR/$1"
}
m_del() { rm -f "$STATE_DIR/$1"; }
# state_tidy: removes empty marker directories, the lab's state directory and the state root once they are empty.
state_tidy() {
    if [ -d "$STATE_DIR" ]; then find "$STATE_DIR" -depth -type d -empty -exec rmdir {} \; 2>/dev/null || true; fi
    rmdir "$STATE_ROOT" 2>/dev/null || true
}
# other_labs_with KEY: names of the other labs on this host whose state holds marker KEY (file or directory).
other_labs_with() {
    for _ol in "$STATE_ROOT"/*; do
        [ -d "$_ol" ] || continue
        [ "\${_ol##*/}" != "$LAB" ] || continue
        if [ -e "$_ol/$1" ]; then printf '%s\n' "\${_ol##*/}"; fi
    done
    return 0
}

# ---- init system: systemd when /run/systemd/system exists; sysv when PID 1 is a SysV/upstart init and service(8)
# exists; otherwise none (containers, bare namespaces): daemons are then started directly with a pid file.
detect_init() {
    case "\${KVM_HA_LAB_INIT:-}" in
        systemd|sysv|none) INIT=$KVM_HA_LAB_INIT; return 0 ;;
        '') ;;
        *) die "KVM_HA_LAB_INIT='$KVM_HA_LAB_INIT' is not an init system: use systemd, sysv or none, or unset it" ;;
    esac
    if [ -d /run/systemd/system ]; then INIT=systemd; return 0; fi
    _p1=$(cat /proc/1/comm 2>/dev/null || true)
    case "$_p1" in
        init|upstart) if have service; then INIT=sysv; return 0; fi ;;
    esac
    INIT=none
}

# ---- processes
# pid_matches PID STRING...: true when PID runs and its command line contains every STRING.
pid_matches() {
    _pm_pid=$1; shift
    case "$_pm_pid" in ''|*[!0-9]*) return 1 ;; esac
    [ -r "/proc/$_pm_pid/cmdline" ] || return 1
    _pm_cl=$(tr '\0' ' ' < "/proc/$_pm_pid/cmdline" 2>/dev/null) || return 1
    [ -n "$_pm_cl" ] || return 1
    for _pm_s in "$@"; do
        case "$_pm_cl" in *"$_pm_s"*) ;; *) return 1 ;; esac
    done
    return 0
}
# read_pidfile FILE: the PID in FILE, or nothing.
read_pidfile() { if [ -r "$1" ]; then sed -n '1{s/[^0-9]//g;p;}' "$1"; fi; }
# pids_named NAME: PIDs of live (not zombie) processes whose command name is NAME.
pids_named() {
    for _pn in /proc/[0-9]*; do
        if [ "$(cat "$_pn/comm" 2>/dev/null)" = "$1" ] && [ -n "$(tr -d '\0' < "$_pn/cmdline" 2>/dev/null | head -c 1)" ]; then
            printf '%s\n' "\${_pn#/proc/}"
        fi
    done
    return 0
}
# stop_pid PID STRING...: SIGTERM, then SIGKILL after 15 s, as long as PID still matches STRING...
stop_pid() {
    _sp_pid=$1
    pid_matches "$@" || return 0
    kill -TERM "$_sp_pid" 2>/dev/null || true
    _sp_i=0
    while pid_matches "$@"; do
        _sp_i=$((_sp_i + 1))
        if [ "$_sp_i" -ge 75 ]; then kill -KILL "$_sp_pid" 2>/dev/null || true; fi
        if [ "$_sp_i" -ge 150 ]; then die "process $_sp_pid ($*) does not stop, not even after SIGKILL; stop it by hand"; fi
        nap
    done
}

# ---- files
sha_file() { sha256sum < "$1" | cut -d' ' -f1; }
inode_of() { stat -c '%d:%i' "$1"; }
# file_record KEY PATH: records the file this lab just made at PATH as KEY/path and KEY/inode ("<device>:<inode>").
file_record() { m_put "$1/path" "$2"; m_put "$1/inode" "$(inode_of "$2")"; }
# file_recorded KEY: what became of the file recorded under KEY. Sets RF_PATH to its recorded path and RF to "ours" (a
# regular file still at that path with the same device and inode), "other" (something else is there now) or "gone"
# (no record, or no regular file at the path).
file_recorded() {
    RF_PATH=$(m_get "$1/path")
    if [ -z "$RF_PATH" ] || [ ! -f "$RF_PATH" ]; then RF=gone
    elif [ "$(inode_of "$RF_PATH")" = "$(m_get "$1/inode")" ]; then RF=ours
    else RF=other
    fi
}
# file_forget KEY: drops the record of KEY (the file itself is the caller's to remove or leave).
file_forget() { m_del "$1/path"; m_del "$1/inode"; }
# put_file SRC DEST MODE: installs SRC's content as DEST (owner root) atomically: temp file in DEST's directory + mv.
put_file() {
    _pf_dir=$(dirname "$2")
    _pf_tmp=$(mktemp "$_pf_dir/.kvm-ha-lab.XXXXXX") || die "cannot create a temporary file in $_pf_dir: check that it is writable and has free space"
    if cat "$1" > "$_pf_tmp" && chmod "$3" "$_pf_tmp" && chown 0:0 "$_pf_tmp" && mv -f "$_pf_tmp" "$2"; then return 0; fi
    rm -f "$_pf_tmp"
    die "cannot write $2: check free space and permissions in $_pf_dir"
}
# missing_dirs DIR: DIR and its missing ancestors, one a line, outermost first (nothing when DIR exists).
missing_dirs() {
    _md_d=$1; _md_l=''
    while [ ! -d "$_md_d" ]; do
        _md_l="$_md_d
$_md_l"
        _md_d=$(dirname "$_md_d")
    done
    printf '%s' "$_md_l"
}
# mkdir_recorded DIR KEY: creates DIR (mode 0755) and records every directory it had to create in marker KEY.
mkdir_recorded() {
    _mr_new=$(missing_dirs "$1")
    [ -n "$_mr_new" ] || return 0
    m_put "$2" "$( { m_get "$2"; printf '%s\n' "$_mr_new"; } | sed '/^$/d' | sort -u)"
    mkdir -p "$1"
}
# rmdir_recorded KEY: removes the directories recorded in KEY, innermost first, when they are empty. One that is not
# empty yet (e.g. another file of this lab still in it: creates run in parallel, so any one of them may have been the
# one that made the directory) is handed over to dirs-pending/, which every later rmdir_recorded of this lab retries:
# the directory goes with the last of our files in it, whichever command deletes that. One marker file per directory,
# so parallel deletes never rewrite a shared list. With a second argument "final", what is not empty stays and is not
# retried (a caller that keeps files there on purpose, such as cluster.conf backups).
rmdir_recorded() {
    if m_has "$1"; then
        _rr_list=$(m_get "$1" | sort -r)
        while IFS= read -r _rr; do
            [ -n "$_rr" ] || continue
            if [ -d "$_rr" ] && ! rmdir "$_rr" 2>/dev/null; then
                if [ "\${2:-}" = final ]; then
                    log "left directory $_rr in place: it is not empty"
                else
                    m_put "dirs-pending/$(printf '%s' "$_rr" | sha256sum | cut -c1-16)" "$_rr"
                    log "left directory $_rr in place for now: it is not empty"
                fi
            fi
        done <<EOF_RR
$_rr_list
EOF_RR
        m_del "$1"
    fi
    rmdir_pending
}
# rmdir_pending: retries the directories handed over by rmdir_recorded, innermost (longest path) first.
rmdir_pending() {
    [ -d "$STATE_DIR/dirs-pending" ] || return 0
    for _rp_m in "$STATE_DIR"/dirs-pending/*; do
        [ -f "$_rp_m" ] && printf '%s %s\n' "$(wc -c < "$_rp_m")" "$_rp_m"
    done | sort -rn | while read -r _rp_n _rp_m; do
        _rp_d=$(cat "$_rp_m")
        if [ ! -d "$_rp_d" ] || rmdir "$_rp_d" 2>/dev/null; then rm -f "$_rp_m"; fi
    done
    return 0
}
`;

/** The shared shell functions above, as one library file per machine (see `prelude`). */
export const SCRIPT_LIBRARY = FUNCTIONS;
/** The library's sha256: its file name, so that every version has its own file. */
export const SCRIPT_LIBRARY_SHA256 = createHash("sha256").update(SCRIPT_LIBRARY).digest("hex");
/** Where the library lives on every machine: outside every lab's state (labs share it), named by its hash. */
export const SCRIPT_LIBRARY_DIR = `${STATE_ROOT}/.lib`;
export const SCRIPT_LIBRARY_PATH = `${SCRIPT_LIBRARY_DIR}/prelude-${SCRIPT_LIBRARY_SHA256}.sh`;

/** The lines of a host script that load the library (replaced by the library itself in `inlineLibrary`). */
const SOURCE_LIBRARY =
    `KVM_HA_LAB_LIB=${shq(SCRIPT_LIBRARY_PATH)}\n` +
    '[ -r "$KVM_HA_LAB_LIB" ] || { printf \'kvm-ha-lab[%s] %s: error: %s\\n\' "$LAB" "$WHAT" "the shared script library $KVM_HA_LAB_LIB is missing on this machine: it is installed by the lab\'s <machine>-lib step; run pulumi up again" >&2; exit 1; }\n' +
    '. "$KVM_HA_LAB_LIB"\n';

function header(lab: string, what: string): string {
    assertLab(lab);
    const names = labNames(lab);
    return (
        `#!/bin/sh\n# kvm-ha-lab host script: ${what.replace(/[^A-Za-z0-9 ._:/@+-]/g, "?")} (lab ${lab})\n` +
        "set -eu\n" +
        "umask 022\n" +
        'PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n' +
        "export PATH\n" +
        "LC_ALL=C\n" +
        "export LC_ALL\n" +
        shVars({ LAB: lab, WHAT: what, STATE_ROOT, STATE_DIR: names.stateDir, VIRSH_URI: "qemu:///system" })
    );
}

/**
 * The first lines of every host script. `what` names the concern and its object in log lines, e.g. "bridge br-lab".
 * The shared functions are not repeated in every script: they are sourced from the machine's script library
 * (SCRIPT_LIBRARY_PATH, installed once per machine by `libraryScripts`, scripts/library.ts); a script run where it is
 * missing stops with one line saying so, before anything changes.
 */
export function prelude(lab: string, what: string): string {
    return header(lab, what) + SOURCE_LIBRARY;
}

/**
 * A host script with its library load replaced by the library itself: the same functions, run where the library is
 * not installed (the host scripts' own tests run each script alone).
 */
export function inlineLibrary(script: string): string {
    const at = script.indexOf(SOURCE_LIBRARY);
    return at < 0 ? script : script.slice(0, at) + FUNCTIONS + script.slice(at + SOURCE_LIBRARY.length);
}

/** A complete script: the prelude, the values as shell variables, then the body. */
export function hostScript(lab: string, what: string, vars: Record<string, string | number | boolean>, body: string): string {
    return prelude(lab, what) + "\n" + shVars(vars) + body.replace(/^\n/, "");
}

/**
 * A script that loads the library from its own stdin, checked against the library's sha256, instead of from the
 * machine: the script that installs the library (scripts/library.ts), whose create and delete both get the library on
 * stdin. The library is still written once, in the stdin, never in the script text.
 */
export function stdinLibraryHostScript(lab: string, what: string, vars: Record<string, string | number | boolean>, body: string): string {
    const load =
        `KVM_HA_LAB_LIB_SHA256=${shq(SCRIPT_LIBRARY_SHA256)}\n` +
        'KVM_HA_LAB_LIB=$(mktemp "${TMPDIR:-/tmp}/kvm-ha-lab-lib.XXXXXX") || { printf \'kvm-ha-lab[%s] %s: error: cannot create a temporary file in %s\\n\' "$LAB" "$WHAT" "${TMPDIR:-/tmp}" >&2; exit 1; }\n' +
        'cat > "$KVM_HA_LAB_LIB"\n' +
        'if [ "$(sha256sum < "$KVM_HA_LAB_LIB" | cut -d\' \' -f1)" != "$KVM_HA_LAB_LIB_SHA256" ]; then\n' +
        '    rm -f "$KVM_HA_LAB_LIB"\n' +
        '    printf \'kvm-ha-lab[%s] %s: error: %s\\n\' "$LAB" "$WHAT" "the script library on stdin is not the one with sha256 $KVM_HA_LAB_LIB_SHA256: run pulumi up again" >&2\n' +
        "    exit 1\n" +
        "fi\n" +
        '. "$KVM_HA_LAB_LIB"\n' +
        'work_dir\nmv -f "$KVM_HA_LAB_LIB" "$WORK/stdin"\n';
    return header(lab, what) + load + "\n" + shVars(vars) + body.replace(/^\n/, "");
}
