/**
 * The lab's own fence_virtd instance: config `labNames(lab).fenceVirtd.configFile`, pid file `.pidFile`, service
 * `.service`. It never touches the distribution's fence_virtd service or /etc/fence_virt.conf.
 * stdin: the fence_virt.conf text (rendered elsewhere); it must name `opts.keyFile` as key_file.
 *
 * Create refuses, before changing anything, when: fence_virtd is not installed; the key file is missing, not a
 * regular file, empty, or not owned by root with mode 0400 or 0600 (fence_virtd would otherwise run WITHOUT
 * authentication, or with a key others can read);
 * the config does not use that key file; the config/unit/init script exists without our marker; or a process other
 * than our instance listens on `opts.protocol` (udp, tcp or vsock) `opts.port`. It then writes the config (0600, atomic) and runs the daemon as
 * `fence_virtd -w -f <conf> -p <pidfile>` under the init system in use:
 * - systemd: unit `.systemdUnitFile` (Type=forking, PIDFile), daemon-reload, enable, start/restart;
 * - sysv: init script `.sysvInitScript`, registered with chkconfig or update-rc.d, `service <name> start|restart`;
 * - none: started directly; a restart stops the recorded PID first.
 * It restarts only when the config, the unit, or the key (its sha256, recorded at the last start) changed, and starts
 * when not running; then it waits until the daemon listens on `opts.protocol` `opts.port` (`ss -lunp`, `ss -ltnp`,
 * `ss --vsock -lp`; vsock sockets are only visible with the kernel's vsock_diag module, without it the wait is skipped
 * with a log line and only the running process is checked). fence_virtd sets its key file to 0600
 * whenever it starts; once it listens, the key gets back the mode it had (0400 as the lab installs it). Delete stops our instance (service and
 * PID), removes unit/init script/config and the directories it created.
 */
import { labNames, ETC_ROOT } from "../names";
import { assertAbsPath, hostScript, sh, shq } from "./prelude";
import type { HostScripts } from "./types";

/** The socket kind of fence_virtd's listener: udp (multicast), tcp or vsock. */
export type FenceVirtdProtocol = "udp" | "tcp" | "vsock";

export interface FenceVirtdOptions {
    /** Absolute path of the fence key the config names (must exist, root, 0400). */
    keyFile: string;
    /** The port the instance listens on (the listener's port). */
    port: number;
    /** The socket kind of the listener the config names: udp (multicast), tcp or vsock. @default udp */
    protocol?: FenceVirtdProtocol;
    /**
     * Any text that changes when the key is replaced (for example a hash of the key's resource outputs). It only makes
     * the create script text change, so that Pulumi runs create again after a key rotation; the script itself decides
     * on a restart by comparing the key file's sha256 with the one recorded when the daemon last started.
     */
    keyRevision?: string;
}

export const FENCE_VIRTD_BINARY = "/usr/sbin/fence_virtd";

/** The systemd unit of the lab's fence_virtd instance. */
export function renderFenceVirtdUnit(lab: string): string {
    const n = labNames(lab).fenceVirtd;
    return [
        "[Unit]",
        `Description=fence_virtd instance of kvm-ha-lab lab ${lab}`,
        "After=network-online.target libvirtd.service",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=forking",
        `PIDFile=${n.pidFile}`,
        `ExecStart=${FENCE_VIRTD_BINARY} -w -f ${n.configFile} -p ${n.pidFile}`,
        "Restart=on-failure",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ].join("\n");
}

/** The SysV init script of the lab's fence_virtd instance (LSB header for update-rc.d, chkconfig header for RHEL). */
export function renderFenceVirtdInitScript(lab: string): string {
    const n = labNames(lab).fenceVirtd;
    const header = [
        "#!/bin/sh",
        `# fence_virtd instance of kvm-ha-lab lab ${lab}`,
        "# chkconfig: 345 99 01",
        `# description: fence_virtd instance of kvm-ha-lab lab ${lab}`,
        "### BEGIN INIT INFO",
        `# Provides:          ${n.service}`,
        "# Required-Start:    $network $remote_fs $syslog",
        "# Required-Stop:     $network $remote_fs $syslog",
        "# Should-Start:      libvirtd",
        "# Should-Stop:       libvirtd",
        "# Default-Start:     2 3 4 5",
        "# Default-Stop:      0 1 6",
        `# Short-Description: fence_virtd instance of kvm-ha-lab lab ${lab}`,
        "### END INIT INFO",
        `DAEMON=${shq(FENCE_VIRTD_BINARY)}`,
        `CONF=${shq(n.configFile)}`,
        `PIDFILE=${shq(n.pidFile)}`,
        "",
    ].join("\n");
    return (
        header +
        sh`
running() {
    pid=$(sed -n '1{s/[^0-9]//g;p;}' "$PIDFILE" 2>/dev/null)
    [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF"
}
start() {
    if running; then echo "fence_virtd ($CONF) is already running (pid $pid)"; return 0; fi
    [ -x "$DAEMON" ] || { echo "$DAEMON is not installed" >&2; return 5; }
    rm -f "$PIDFILE"
    "$DAEMON" -w -f "$CONF" -p "$PIDFILE" </dev/null >/dev/null 2>&1
}
stop() {
    if ! running; then rm -f "$PIDFILE"; return 0; fi
    kill "$pid"
    i=0
    while running && [ "$i" -lt 75 ]; do sleep 0.2 2>/dev/null || sleep 1; i=$((i + 1)); done
    if running; then kill -9 "$pid"; fi
    rm -f "$PIDFILE"
}
case "$1" in
    start) start ;;
    stop) stop ;;
    restart|force-reload|reload) stop; start ;;
    status) if running; then echo "fence_virtd ($CONF) is running (pid $pid)"; exit 0; else echo "fence_virtd ($CONF) is stopped"; exit 3; fi ;;
    *) echo "Usage: $0 {start|stop|restart|status}" >&2; exit 2 ;;
esac
`
    );
}

const FUNCTIONS = sh`
detect_init
work_dir
running_pid() { _rp=$(read_pidfile "$PIDFILE"); if pid_matches "$_rp" fence_virtd "$CONF"; then printf '%s\n' "$_rp"; fi; }
# can_list: whether ss can list listening sockets of $PROTO (vsock ones only with the kernel's vsock_diag).
can_list() {
    have ss || return 1
    case "$PROTO" in
        vsock) ss --vsock -l >/dev/null 2>&1 || true; [ -d /sys/module/vsock_diag ] ;;
        *) return 0 ;;
    esac
}
# port_users PORT: PIDs (or "?") of the sockets listening on $PROTO PORT; nothing when free or when they cannot be listed.
# The local address is the first column with a ':' (vsock output has a Netid column first).
# ss prints users:(("name",pid=N,fd=M)); old iproute (RHEL 6) prints users:(("name",N,M)).
port_users() {
    can_list || return 0
    case "$PROTO" in
        udp) ss -lunp ;;
        tcp) ss -ltnp ;;
        vsock) ss --vsock -lp ;;
    esac 2>/dev/null | awk -v port="$1" '
        NR > 1 {
            la = ""
            for (i = 1; i <= NF; i++) if (index($i, ":") > 0) { la = $i; break }
            n = split(la, a, ":")
            if (n < 2 || a[n] != port) next
            if (match($0, /pid=[0-9]+/)) print substr($0, RSTART + 4, RLENGTH - 4)
            else if (match($0, /",[0-9]+,/)) print substr($0, RSTART + 2, RLENGTH - 3)
            else print "?"
        }' | sort -u
}
describe_pid() { if [ "$1" = "?" ]; then echo "an unknown process"; else echo "pid $1 ($(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | cut -c1-120))"; fi; }
quietly() {
    if "$@" </dev/null >"$WORK/out" 2>&1; then cat "$WORK/out" >&2; return 0; fi
    _q=$?
    cat "$WORK/out" >&2
    return $_q
}
stop_instance() {
    case "$1" in
        systemd)
            if m_has fence-virtd/unit; then
                quietly systemctl stop "$SERVICE.service" || log "systemctl stop $SERVICE failed; stopping it by its pid"
                quietly systemctl disable "$SERVICE.service" || true
            fi ;;
        sysv)
            if [ -x "$INITSCRIPT" ] && m_has fence-virtd/initscript; then
                quietly service "$SERVICE" stop || log "service $SERVICE stop failed; stopping it by its pid"
            fi ;;
    esac
    _pid=$(running_pid)
    if [ -n "$_pid" ]; then stop_pid "$_pid" fence_virtd "$CONF"; fi
    rm -f "$PIDFILE"
}
remove_service_files() {
    if m_has fence-virtd/unit; then
        if [ -f "$UNIT" ]; then rm -f "$UNIT"; if [ "$INIT" = systemd ]; then quietly systemctl daemon-reload || true; fi; fi
        m_del fence-virtd/unit
    fi
    if m_has fence-virtd/initscript; then
        case "$(m_get fence-virtd/registered)" in
            chkconfig) quietly chkconfig --del "$SERVICE" || true ;;
            update-rc.d) quietly update-rc.d -f "$SERVICE" remove || true ;;
        esac
        m_del fence-virtd/registered
        rm -f "$INITSCRIPT"
        m_del fence-virtd/initscript
    fi
}
`;

const CREATE = sh`
# ---- checks: nothing changes until all of them pass
[ -x "$DAEMON" ] || die "fence_virtd is not installed ($DAEMON is missing): install fence-virtd (on RHEL also fence-virtd-libvirt and $RHEL_LISTENER_PKG), or set installPackages: true"
read_stdin
[ -s "$WORK/stdin" ] || die "no fence_virt.conf text on stdin: pass the rendered fence_virt.conf"
tr -d ' \t' < "$WORK/stdin" | grep -qF "key_file=\"$KEY\";" \
    || die "the fence_virt.conf text does not set key_file = \"$KEY\": the instance must use the lab's fence key"
if [ ! -e "$KEY" ]; then die "fence key $KEY does not exist: deliver the key first (without it fence_virtd would run WITHOUT authentication)"; fi
if [ -L "$KEY" ] || [ ! -f "$KEY" ]; then die "fence key $KEY is not a regular file: replace it with the lab's key file (root, mode 0400)"; fi
KOWN=$(stat -c %u "$KEY")
KMODE=$(stat -c %a "$KEY")
# 0400 is what the lab installs; 0600 is what fence_virtd itself sets on every start (see below).
if [ "$KOWN" != 0 ] || { [ "$KMODE" != 400 ] && [ "$KMODE" != 600 ]; }; then
    die "fence key $KEY has owner uid $KOWN and mode $KMODE; it must be owned by root and readable by root only: chown root:root $KEY && chmod 0400 $KEY"
fi
[ -s "$KEY" ] || die "fence key $KEY is empty: deliver the lab's 4096-byte key"
if [ -e "$CONF" ] && ! m_has fence-virtd/config.sha256; then die "$CONF exists but was not written by kvm-ha-lab lab $LAB: move it away, or choose another lab name"; fi
if [ "$INIT" = systemd ] && [ -e "$UNIT" ] && ! m_has fence-virtd/unit; then die "$UNIT exists but was not written by kvm-ha-lab lab $LAB: move it away, or choose another lab name"; fi
if [ "$INIT" = sysv ] && [ -e "$INITSCRIPT" ] && ! m_has fence-virtd/initscript; then die "$INITSCRIPT exists but was not written by kvm-ha-lab lab $LAB: move it away, or choose another lab name"; fi
PID=$(running_pid)
for U in $(port_users "$PORT"); do
    [ -n "$PID" ] && [ "$U" = "$PID" ] && continue
    die "$PROTO port $PORT is already in use by $(describe_pid "$U"): give this lab another fencing port (guestCluster.fencing.$PORT_KEY.port) or stop that process"
done
if ! have ss; then log "cannot check $PROTO port $PORT (ss is not installed); continuing"
elif ! can_list; then log "cannot check vsock port $PORT (ss lists vsock sockets only with the kernel's vsock_diag module); continuing"; fi

# ---- an instance started under another init system (the host changed) is stopped first
PREV=$(m_get fence-virtd/init)
if [ -n "$PREV" ] && [ "$PREV" != "$INIT" ]; then
    stop_instance "$PREV"
    remove_service_files
    PID=''
fi

# ---- the config
RESTART=no
NEWSHA=$(sha_file "$WORK/stdin")
if [ ! -f "$CONF" ] || [ "$(sha_file "$CONF")" != "$NEWSHA" ]; then
    mkdir_recorded "$(dirname "$CONF")" fence-virtd/dirs
    m_put fence-virtd/config.sha256 "$NEWSHA"
    put_file "$WORK/stdin" "$CONF" 0600
    log "wrote $CONF"
    RESTART=yes
fi
KEYSHA=$(sha_file "$KEY")
if [ "$KEYSHA" != "$(m_get fence-virtd/key.sha256)" ]; then RESTART=yes; fi
m_put fence-virtd/init "$INIT"

# ---- the service
case "$INIT" in
    systemd)
        printf '%s' "$UNIT_TEXT" > "$WORK/unit"
        if [ ! -f "$UNIT" ] || [ "$(sha_file "$UNIT")" != "$(sha_file "$WORK/unit")" ]; then
            m_put fence-virtd/unit "$UNIT"
            put_file "$WORK/unit" "$UNIT" 0644
            quietly systemctl daemon-reload || die "systemctl daemon-reload failed: check $UNIT"
            RESTART=yes
        fi
        quietly systemctl enable "$SERVICE.service" || die "systemctl enable $SERVICE failed: check $UNIT"
        if systemctl is-active --quiet "$SERVICE.service"; then
            if [ "$RESTART" = yes ]; then quietly systemctl restart "$SERVICE.service" || die "systemctl restart $SERVICE failed: see journalctl -u $SERVICE"; log "restarted $SERVICE"; fi
        else
            quietly systemctl start "$SERVICE.service" || die "systemctl start $SERVICE failed: see journalctl -u $SERVICE"
            log "started $SERVICE"
        fi ;;
    sysv)
        printf '%s' "$INIT_TEXT" > "$WORK/init"
        if [ ! -f "$INITSCRIPT" ] || [ "$(sha_file "$INITSCRIPT")" != "$(sha_file "$WORK/init")" ]; then
            m_put fence-virtd/initscript "$INITSCRIPT"
            put_file "$WORK/init" "$INITSCRIPT" 0755
            RESTART=yes
        fi
        if [ -z "$(m_get fence-virtd/registered)" ]; then
            if have chkconfig; then
                m_put fence-virtd/registered chkconfig
                quietly chkconfig --add "$SERVICE" || die "chkconfig --add $SERVICE failed: check $INITSCRIPT"
            elif have update-rc.d; then
                m_put fence-virtd/registered update-rc.d
                quietly update-rc.d "$SERVICE" defaults || die "update-rc.d $SERVICE defaults failed: check $INITSCRIPT"
            else
                log "neither chkconfig nor update-rc.d is installed: $SERVICE will not start at boot"
            fi
        fi
        if service "$SERVICE" status </dev/null >/dev/null 2>&1; then
            if [ "$RESTART" = yes ]; then quietly service "$SERVICE" restart || die "service $SERVICE restart failed: run $INITSCRIPT restart by hand to see why"; log "restarted $SERVICE"; fi
        else
            quietly service "$SERVICE" start || die "service $SERVICE start failed: run $INITSCRIPT start by hand to see why"
            log "started $SERVICE"
        fi ;;
    none)
        if [ -n "$PID" ] && [ "$RESTART" = yes ]; then stop_pid "$PID" fence_virtd "$CONF"; log "stopped $SERVICE (pid $PID) to restart it"; PID=''; fi
        if [ -z "$PID" ]; then
            rm -f "$PIDFILE"
            "$DAEMON" -w -f "$CONF" -p "$PIDFILE" </dev/null >"$WORK/out" 2>&1 || die "fence_virtd failed to start: $(tr '\n' ' ' < "$WORK/out" | cut -c1-400)"
            log "started $SERVICE"
        fi ;;
esac

# ---- it must run and listen
I=0
until PID=$(running_pid) && [ -n "$PID" ]; do
    I=$((I + 1))
    [ "$I" -lt 75 ] || die "$SERVICE does not run 15 s after its start ($PIDFILE names no fence_virtd with $CONF): check the config and the system log"
    nap
done
if can_list; then
    I=0
    until port_users "$PORT" | grep -qxF "$PID"; do
        I=$((I + 1))
        [ "$I" -lt 150 ] || die "$SERVICE (pid $PID) does not listen on $PROTO $PORT after 30 s: check that libvirtd runs (the libvirt backend waits for it) and that $LISTENS_ON"
        pid_matches "$PID" fence_virtd "$CONF" || die "$SERVICE (pid $PID) exited after its start: check the config and the system log"
        nap
    done
elif have ss; then
    log "not waiting for $SERVICE (pid $PID) to listen on vsock $PORT: ss lists vsock sockets only with the kernel's vsock_diag module"
fi
m_put fence-virtd/key.sha256 "$KEYSHA"
# fence_virtd sets its config and key files to exactly 0600 when it starts ("Insecure permissions on file ...").
# It has read the key by now (it listens), so the key gets back the mode it had.
if [ "$(stat -c %a "$KEY")" != "$KMODE" ]; then
    chmod "$KMODE" "$KEY"
    log "restored mode 0$KMODE on $KEY (fence_virtd changes its key file to 0600 when it starts)"
fi
`;

const DELETE = sh`
if [ ! -d "$STATE_DIR/fence-virtd" ] && [ -z "$(running_pid)" ]; then exit 0; fi
HOW=$(m_get fence-virtd/init)
[ -n "$HOW" ] || HOW=$INIT
stop_instance "$HOW"
remove_service_files
OURSHA=$(m_get fence-virtd/config.sha256)
if [ -n "$OURSHA" ] && [ -f "$CONF" ]; then
    if [ "$(sha_file "$CONF")" = "$OURSHA" ]; then rm -f "$CONF"; else log "left $CONF in place: it changed since this lab wrote it"; fi
fi
m_del fence-virtd/config.sha256
rmdir_recorded fence-virtd/dirs
rmdir "$ETC_ROOT" 2>/dev/null || true
m_del fence-virtd/key.sha256
m_del fence-virtd/init
log "removed $SERVICE"
`;

/** Per socket kind: the config key of its port, what it needs to listen, the RHEL package of its listener plugin. */
const PROTOCOLS: Record<FenceVirtdProtocol, { portKey: string; listensOn: string; rhelPackage: string }> = {
    udp: { portKey: "multicast", listensOn: "the listener interface exists", rhelPackage: "fence-virtd-multicast" },
    tcp: { portKey: "tcp", listensOn: "the bridge has the listener address", rhelPackage: "fence-virtd-tcp" },
    vsock: { portKey: "vsock", listensOn: "the vsock modules are loaded (vhost_vsock)", rhelPackage: "fence-virtd-vsock" },
};

export function fenceVirtdScripts(lab: string, opts: FenceVirtdOptions): HostScripts {
    assertAbsPath("fence key file", opts.keyFile);
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new Error(`fence_virtd port ${opts.port} is not 1-65535`);
    const protocol = opts.protocol ?? "udp";
    const proto = PROTOCOLS[protocol];
    if (proto === undefined) throw new Error(`fence_virtd protocol ${JSON.stringify(protocol)} is not udp, tcp or vsock`);
    const n = labNames(lab).fenceVirtd;
    const vars = {
        SERVICE: n.service,
        CONF: n.configFile,
        PIDFILE: n.pidFile,
        UNIT: n.systemdUnitFile,
        INITSCRIPT: n.sysvInitScript,
        ETC_ROOT,
        DAEMON: FENCE_VIRTD_BINARY,
        KEY: opts.keyFile,
        PORT: opts.port,
        PROTO: protocol,
        PORT_KEY: proto.portKey,
        LISTENS_ON: proto.listensOn,
        RHEL_LISTENER_PKG: proto.rhelPackage,
        KEY_REVISION: opts.keyRevision ?? "",
        UNIT_TEXT: renderFenceVirtdUnit(lab),
        INIT_TEXT: renderFenceVirtdInitScript(lab),
    };
    const what = `fence_virtd ${n.service}`;
    return {
        create: hostScript(lab, what, vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, FUNCTIONS + DELETE),
    };
}
