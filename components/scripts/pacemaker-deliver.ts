/**
 * Delivering a cluster of the Pacemaker stack to its nodes (guests, or the hosts of a host cluster), in the order
 * components/cluster-conf.ts wires them:
 *
 * 1. the corosync authkey (`fileScripts`: 256 random bytes, base64 on stdin, decoded to a 0400 root file; a secret);
 * 2. corosync.conf (`corosyncConfScripts`, stdin = the rendered file): installed atomically (0644, root). An existing
 *    file is replaced only when this lab wrote it and nobody changed it since, or when it is the distribution's own
 *    unmodified default (Debian's corosync package ships one; dpkg's or rpm's record of the file says so): that one is
 *    kept in the state directory and put back by delete. Any other file is refused, naming it. When corosync runs
 *    and the file changed, `corosync-cfgtool -R` makes every member re-read its own file; when corosync runs a file
 *    that was not this lab's (Debian starts a placeholder one-node cluster at boot), corosync (and pacemaker) restart
 *    with the new file instead: corosync cannot reload another cluster name, transport or key;
 * 3. the cluster stack (`clusterStackScripts`): corosync, then pacemaker, enabled at boot (systemd; so that a fenced
 *    node rejoins when it comes back) and started when they do not run (systemd, SysV init, or directly where there
 *    is no init system); delete disables and stops them again, only what this lab did;
 * 4. the CIB (`cibLoadScripts`, on one node once every node runs the stack; stdin = `cibConfiguration(cib)`, the
 *    `<configuration>` of the rendered cib.xml): waits for the CIB manager to answer, keeps the configuration it finds
 *    the first time (to restore on delete), then `cibadmin --replace --scope configuration`: Pacemaker validates the
 *    new configuration against its schema and swaps it in as one update; running resources the new configuration
 *    keeps stay where they are. Never a copy into /var/lib/pacemaker: the CIB manager owns those files.
 *
 * Every create is idempotent (the same input twice changes nothing the second time), every delete undoes only its
 * own create's change. Secrets (the authkey, fence passwords in a host cluster's CIB) travel on stdin only.
 */
import { create } from "xmlbuilder2";
import { COROSYNC_AUTHKEY_PATH, COROSYNC_CONF_PATH } from "../render/corosync-conf";
import { fileScripts } from "./file";
import { assertAbsPath, assertMarkerSegment, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

/** corosync-keygen's default key size, in bytes. */
export const COROSYNC_AUTHKEY_BYTES = 256;

/** How long the CIB load waits for the CIB manager to answer (pacemaker starting, the node joining), seconds. */
export const CIB_WAIT_SECONDS = 180;

export interface PacemakerDeliverOptions {
    /** Identifies the cluster's files among the lab's on a machine (marker key), e.g. "guest-pacemaker". */
    id: string;
    /** Root of the lab state directories (for tests). @default /var/lib/kvm-ha-lab */
    stateRoot?: string;
}

function stateVars(lab: string, opts: PacemakerDeliverOptions): Record<string, string> {
    assertMarkerSegment("pacemaker delivery id", opts.id);
    const vars: Record<string, string> = { ID: opts.id };
    if (opts.stateRoot !== undefined) {
        assertAbsPath("state root", opts.stateRoot);
        vars.STATE_ROOT = opts.stateRoot;
        vars.STATE_DIR = `${opts.stateRoot.replace(/\/+$/, "")}/${lab}`;
    }
    return vars;
}

/** The `<configuration>` element of a rendered cib.xml: what `cibadmin --replace --scope configuration` takes. */
export function cibConfiguration(cib: string): string {
    const root = create(cib).root();
    if (root.node.nodeName !== "cib") throw new Error("cibConfiguration: not a CIB (the root element is not <cib>)");
    const conf = root.find((n) => n.node.nodeName === "configuration", false, false);
    if (conf === undefined) throw new Error("cibConfiguration: the CIB has no <configuration>");
    return `${conf.toString({ prettyPrint: true, indent: "  " })}\n`;
}

// ---------------------------------------------------------------- the authkey

/** The corosync authkey: stdin is the key base64-encoded (a secret); the file gets the 256 bytes, 0400 root. */
export function corosyncAuthkeyScripts(lab: string, opts: PacemakerDeliverOptions & { path?: string }): HostScripts {
    assertMarkerSegment("pacemaker delivery id", opts.id);
    return fileScripts(lab, {
        id: `${opts.id}-authkey`,
        path: opts.path ?? COROSYNC_AUTHKEY_PATH,
        mode: "0400",
        decodeBase64: true,
        refuseSharedFs: true,
        sizeBytes: COROSYNC_AUTHKEY_BYTES,
    });
}

// ---------------------------------------------------------------- corosync.conf

const CONF_FUNCTIONS = sh`
K="$ID/corosync-conf"
ORIG="$STATE_DIR/$K/original"
# package_default FILE: FILE is the unmodified copy its package (dpkg or rpm) installed
package_default() {
    if have dpkg-query; then
        _pd=$(dpkg-query -W -f='\${Conffiles}\n' corosync 2>/dev/null | awk -v f="$1" '$1 == f && $3 != "obsolete" { print $2 }')
        if [ -n "$_pd" ] && [ "$(md5sum < "$1" | cut -d' ' -f1)" = "$_pd" ]; then return 0; fi
    fi
    if have rpm && rpm -qf "$1" >/dev/null 2>&1; then
        if [ -z "$(rpm -Vf "$1" 2>/dev/null | awk -v f="$1" '$NF == f')" ]; then return 0; fi
    fi
    return 1
}
corosync_runs() { have corosync-cfgtool && corosync-cfgtool -s >/dev/null 2>&1; }
daemon_runs() {
    for _dr in /proc/[0-9]*; do
        if [ "$(cat "$_dr/comm" 2>/dev/null)" = "$1" ]; then return 0; fi
    done
    return 1
}
# restart_stack: corosync runs a configuration that is not this lab's (the distribution's placeholder cluster, which
# Debian starts at boot): corosync cannot reload another cluster's name, transport or keys, so corosync (and
# pacemaker, which depends on it) restart with the new file
restart_stack() {
    detect_init
    _rs_pcmk=no
    if daemon_runs pacemakerd; then _rs_pcmk=yes; fi
    case "$INIT" in
        systemd)
            if [ "$_rs_pcmk" = yes ]; then systemctl stop pacemaker || die "systemctl stop pacemaker failed"; fi
            OUT=$(systemctl restart corosync 2>&1) || die "systemctl restart corosync failed with the new $CONF: $OUT (see journalctl -u corosync)"
            if [ "$_rs_pcmk" = yes ]; then systemctl start pacemaker || die "systemctl start pacemaker failed"; fi ;;
        sysv)
            if [ "$_rs_pcmk" = yes ]; then service pacemaker stop >/dev/null 2>&1 || die "service pacemaker stop failed"; fi
            OUT=$(service corosync restart 2>&1) || die "service corosync restart failed with the new $CONF: $OUT"
            if [ "$_rs_pcmk" = yes ]; then service pacemaker start >/dev/null 2>&1 || die "service pacemaker start failed"; fi ;;
        none)
            if [ "$_rs_pcmk" = yes ]; then for _p in $(pids_named pacemakerd); do stop_pid "$_p" pacemakerd; done; fi
            for _p in $(pids_named corosync); do stop_pid "$_p" corosync; done
            OUT=$(corosync 2>&1) || die "corosync did not start with the new $CONF: $OUT"
            if [ "$_rs_pcmk" = yes ]; then (setsid pacemakerd </dev/null >/dev/null 2>&1 &); fi ;;
    esac
    log "$1: restarted corosync$([ "$_rs_pcmk" = yes ] && echo ' and pacemaker') with $CONF"
}
`;

const CONF_CREATE = sh`
read_stdin
[ -s "$WORK/stdin" ] || die "stdin carries no corosync.conf: pass the rendered file"
NEWSHA=$(sha_file "$WORK/stdin")
OURSHA=$(m_get "$K/sha256")
CURSHA=''
if [ -e "$CONF" ] || [ -L "$CONF" ]; then
    if [ -L "$CONF" ] || [ ! -f "$CONF" ]; then die "$CONF exists and is not a regular file: move it away"; fi
    CURSHA=$(sha_file "$CONF")
    if [ -n "$OURSHA" ] && [ "$CURSHA" = "$OURSHA" ]; then
        :
    elif [ -z "$OURSHA" ] && package_default "$CONF"; then
        state_init
        mkdir -p "$STATE_DIR/$K"
        put_file "$CONF" "$ORIG" 0600
        m_put "$K/original-mode" "$(stat -c %a "$CONF")"
        log "kept the distribution's default $CONF (restored when the lab is destroyed)"
    else
        die "$CONF exists and was not written by kvm-ha-lab lab $LAB (or was changed since): move it away (another cluster may use it), or remove it if it may be replaced"
    fi
fi
if [ "$CURSHA" = "$NEWSHA" ] && [ -n "$OURSHA" ]; then
    exit 0
fi
# the file corosync runs with, if it runs: this lab's own (reloadable) or another one
WAS_OURS=no
if [ -n "$OURSHA" ] && [ "$CURSHA" = "$OURSHA" ]; then WAS_OURS=yes; fi
if [ ! -d "$(dirname "$CONF")" ]; then mkdir_recorded "$(dirname "$CONF")" "$K/dirs"; fi
m_put "$K/sha256" "$NEWSHA"
m_put "$K/path" "$CONF"
put_file "$WORK/stdin" "$CONF" 0644
log "installed $CONF"
if corosync_runs; then
    if [ "$WAS_OURS" = yes ]; then
        OUT=$(corosync-cfgtool -R 2>&1) || die "corosync runs, and corosync-cfgtool -R refused to reload the new $CONF: $OUT"
        log "corosync reloaded $CONF on every member (corosync-cfgtool -R)"
    else
        restart_stack "corosync ran a configuration that was not lab $LAB's"
        m_put "$K/restarted" yes
    fi
fi
`;

const CONF_DELETE = sh`
P=$(m_get "$K/path")
S=$(m_get "$K/sha256")
if [ -n "$P" ] && [ -f "$P" ] && [ ! -L "$P" ]; then
    if [ "$(sha_file "$P")" = "$S" ]; then
        if [ -f "$ORIG" ]; then
            put_file "$ORIG" "$P" "$(m_get "$K/original-mode")"
            log "put the distribution's default $P back"
            if m_has "$K/restarted" && corosync_runs; then restart_stack "corosync ran the default $P before lab $LAB restarted it with its own"; fi
        else
            rm -f "$P"
            log "removed $P"
        fi
    else
        log "left $P in place: it changed since lab $LAB wrote it"
    fi
fi
rm -f "$ORIG"
m_del "$K/restarted"
m_del "$K/original-mode"
m_del "$K/sha256"
m_del "$K/path"
rmdir_recorded "$K/dirs"
`;

export function corosyncConfScripts(lab: string, opts: PacemakerDeliverOptions & { path?: string }): HostScripts {
    const path = opts.path ?? COROSYNC_CONF_PATH;
    assertAbsPath("corosync.conf path", path);
    const vars = { ...stateVars(lab, opts), CONF: path };
    const what = `corosync.conf ${opts.id}`;
    return { create: hostScript(lab, what, vars, CONF_FUNCTIONS + CONF_CREATE), delete: hostScript(lab, what, vars, CONF_FUNCTIONS + CONF_DELETE) };
}

// ---------------------------------------------------------------- corosync and pacemaker running

const STACK_FUNCTIONS = sh`
K="$ID/stack"
detect_init
# runs NAME: the daemon of NAME (corosync, pacemakerd) runs
runs() { [ -n "$(pids_named "$1")" ]; }
# start_unit UNIT DAEMON: starts UNIT the way this machine starts services, waits for DAEMON
start_unit() {
    case "$INIT" in
        systemd) OUT=$(systemctl start "$1" 2>&1) || die "systemctl start $1 failed: $OUT (see journalctl -u $1)" ;;
        sysv) OUT=$(service "$1" start 2>&1) || die "service $1 start failed: $OUT" ;;
        none)
            have "$2" || die "$2 is not installed: install corosync and pacemaker on this machine"
            # corosync forks into the background itself; pacemakerd always stays in the foreground
            if [ "$2" = corosync ]; then
                OUT=$(corosync 2>&1) || die "corosync did not start: $OUT"
            else
                (setsid "$2" </dev/null >/dev/null 2>&1 &)
            fi ;;
    esac
    _su_i=0
    until runs "$2"; do
        _su_i=$((_su_i + 1))
        [ "$_su_i" -lt 150 ] || die "$2 does not run 30 s after starting $1: see its log (journalctl -u $1, /var/log/cluster, /var/log/pacemaker)"
        nap
    done
}
# stop_unit UNIT DAEMON
stop_unit() {
    case "$(m_get "$K/started-$1")" in
        systemd) systemctl stop "$1" 2>/dev/null || log "systemctl stop $1 failed" ;;
        sysv) service "$1" stop >/dev/null 2>&1 || log "service $1 stop failed" ;;
        *) for _p in $(pids_named "$2"); do stop_pid "$_p" "$2"; done ;;
    esac
}
`;

const STACK_CREATE = sh`
# files the cluster's resources read (the fence key of the stonith devices), delivered by other commands at the same time
for F in $REQUIRE_FILES; do
    _rf_i=0
    until [ -f "$F" ]; do
        _rf_i=$((_rf_i + 1))
        [ "$_rf_i" -lt 600 ] || die "$F is not on this node after 120 s; the cluster's fence devices need it (kvm-ha-lab installs it with the fence key): check that delivery"
        nap
    done
done
for U in corosync:corosync pacemaker:pacemakerd; do
    UNIT=\${U%%:*}; DAEMON=\${U#*:}
    # start at boot, so that a fenced node rejoins when it comes back
    if [ "$INIT" = systemd ] && ! systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
        OUT=$(systemctl enable "$UNIT" 2>&1) || die "systemctl enable $UNIT failed: $OUT"
        m_put "$K/enabled-$UNIT" systemd
        log "enabled $UNIT at boot"
    fi
    if runs "$DAEMON"; then continue; fi
    [ "$INIT" = none ] || have "$DAEMON" || die "$DAEMON is not installed: install the corosync and pacemaker packages on this machine"
    start_unit "$UNIT" "$DAEMON"
    m_put "$K/started-$UNIT" "$INIT"
    log "started $UNIT ($INIT)"
done
`;

const STACK_DELETE = sh`
for U in pacemaker:pacemakerd corosync:corosync; do
    UNIT=\${U%%:*}; DAEMON=\${U#*:}
    if m_has "$K/enabled-$UNIT"; then
        systemctl disable "$UNIT" >/dev/null 2>&1 || log "systemctl disable $UNIT failed"
        m_del "$K/enabled-$UNIT"
        log "disabled $UNIT at boot (lab $LAB enabled it)"
    fi
    m_has "$K/started-$UNIT" || continue
    stop_unit "$UNIT" "$DAEMON"
    m_del "$K/started-$UNIT"
    log "stopped $UNIT (lab $LAB started it)"
done
`;

/**
 * Starts corosync and pacemaker where they do not run; delete stops them when this lab started them. `requireFiles`:
 * files that must be on the node first (the fence key the stonith resources read), waited for up to 120 s.
 */
export function clusterStackScripts(lab: string, opts: PacemakerDeliverOptions & { requireFiles?: string[] }): HostScripts {
    for (const f of opts.requireFiles ?? []) {
        assertAbsPath("required file", f);
        if (/\s/.test(f)) throw new Error(`clusterStackScripts: required file ${JSON.stringify(f)} contains a blank`);
    }
    const vars = { ...stateVars(lab, opts), REQUIRE_FILES: (opts.requireFiles ?? []).join(" ") };
    const what = `cluster stack ${opts.id}`;
    return { create: hostScript(lab, what, vars, STACK_FUNCTIONS + STACK_CREATE), delete: hostScript(lab, what, vars, STACK_FUNCTIONS + STACK_DELETE) };
}

// ---------------------------------------------------------------- the CIB

const CIB_FUNCTIONS = sh`
K="$ID/cib"
ORIG="$STATE_DIR/$K/original.xml"
# cib_up SECONDS: waits until the CIB manager answers
cib_up() {
    have cibadmin || die "cibadmin is not installed: install pacemaker (and pacemaker-cli-utils on Debian)"
    _cu_n=$(($1 * 5))
    _cu_i=0
    until cibadmin --query --scope nodes >/dev/null 2>&1; do
        _cu_i=$((_cu_i + 1))
        [ "$_cu_i" -lt "$_cu_n" ] || return 1
        nap
    done
}
`;

const CIB_CREATE = sh`
read_stdin
head -c 200 "$WORK/stdin" | grep -q '<configuration' || die "stdin is not a CIB <configuration>: pass cibConfiguration(cib)"
NEWSHA=$(sha_file "$WORK/stdin")
cib_up "$WAIT" || die "the CIB manager does not answer after $WAIT s (cibadmin --query): is pacemaker running and has this node joined the cluster? (crm_mon -1)"
if [ "$(m_get "$K/sha256")" = "$NEWSHA" ]; then
    exit 0
fi
if [ ! -f "$ORIG" ]; then
    state_init
    mkdir -p "$STATE_DIR/$K"
    cibadmin --query --scope configuration > "$WORK/original.xml" || die "cannot read the CIB's configuration (cibadmin --query --scope configuration)"
    put_file "$WORK/original.xml" "$ORIG" 0600
fi
OUT=$(cibadmin --replace --scope configuration --xml-file "$WORK/stdin" 2>&1) || die "cibadmin refused the new configuration, which was not loaded (the CIB is unchanged): $OUT"
m_put "$K/sha256" "$NEWSHA"
log "loaded the cluster configuration into the CIB (cibadmin --replace --scope configuration)"
`;

const CIB_DELETE = sh`
if [ -f "$ORIG" ]; then
    if cib_up 30; then
        OUT=$(cibadmin --replace --scope configuration --xml-file "$ORIG" 2>&1) || die "cibadmin refused to restore the configuration the CIB had before lab $LAB loaded its own: $OUT"
        log "restored the CIB's configuration from before lab $LAB loaded its own"
    else
        log "the CIB manager does not answer (pacemaker stopped?): its configuration is left as it is"
    fi
fi
rm -f "$ORIG"
m_del "$K/sha256"
`;

/** Loads the cluster's configuration into the running CIB (one node per cluster); delete restores the one it found. */
export function cibLoadScripts(lab: string, opts: PacemakerDeliverOptions & { waitSeconds?: number }): HostScripts {
    const wait = opts.waitSeconds ?? CIB_WAIT_SECONDS;
    if (!Number.isInteger(wait) || wait < 1) throw new Error(`cibLoadScripts: waitSeconds ${wait} is not a positive whole number`);
    const vars = { ...stateVars(lab, opts), WAIT: String(wait) };
    const what = `CIB ${opts.id}`;
    return { create: hostScript(lab, what, vars, CIB_FUNCTIONS + CIB_CREATE), delete: hostScript(lab, what, vars, CIB_FUNCTIONS + CIB_DELETE) };
}
