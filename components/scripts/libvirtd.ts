/**
 * Makes sure virtlogd (when installed) and libvirtd run, and that qemu:///system answers.
 * - systemd (the daemon has a unit): `systemctl start <daemon>` when not active;
 * - sysv (the daemon has an init script): `service <daemon> start` when `service <daemon> status` fails;
 * - otherwise (no init system, or no unit/init script for it): `<daemon> -d -p /run/<daemon>.pid` when no such
 *   process runs.
 * When qemu:///system already answers (modular daemons such as virtqemud, or socket activation), libvirtd is not started.
 * Markers `libvirtd/started/<daemon>` record what this lab started and how ("systemd", "sysv", "none <pid>").
 * Delete stops exactly those (by service, or by the recorded PID when it is still that daemon), libvirtd first.
 */
import { hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

const FUNCTIONS = sh`
detect_init
work_dir
# method_for NAME: how this host runs the daemon NAME: systemd (a unit exists), sysv (an init script exists),
# none (only the binary: started directly), or nothing when it is not installed
method_for() {
    case "$INIT" in
        systemd) if systemctl cat "$1.service" </dev/null >/dev/null 2>&1; then echo systemd; return 0; fi ;;
        sysv) if [ -x "/etc/init.d/$1" ]; then echo sysv; return 0; fi ;;
    esac
    if have "$1"; then echo none; fi
}
# daemon_pid NAME: the PID of a running NAME daemon, from its pid file or the process table
daemon_pid() {
    _dp=$(read_pidfile "/run/$1.pid")
    if pid_matches "$_dp" "$1"; then printf '%s\n' "$_dp"; return 0; fi
    pids_named "$1" | head -n 1
}
# daemon_running METHOD NAME
daemon_running() {
    case "$1" in
        systemd) systemctl is-active --quiet "$2.service" </dev/null ;;
        sysv) service "$2" status </dev/null >/dev/null 2>&1 ;;
        none) [ -n "$(daemon_pid "$2")" ] ;;
    esac
}
# quietly CMD...: runs CMD with its output in a file (a daemon that inherits our stdout would keep Pulumi waiting)
quietly() {
    if "$@" </dev/null >"$WORK/out" 2>&1; then cat "$WORK/out" >&2; return 0; fi
    _q=$?
    cat "$WORK/out" >&2
    return $_q
}
`;

const CREATE = sh`
[ -n "$(method_for libvirtd)" ] || die "libvirtd is not installed: install libvirt (RHEL) or libvirt-daemon-system (Debian), or set installPackages: true"
have virsh || die "virsh is not installed: install libvirt-client (RHEL) or libvirt-clients (Debian)"
for D in virtlogd libvirtd; do
    M=$(method_for "$D")
    [ -n "$M" ] || continue
    daemon_running "$M" "$D" && continue
    # libvirt already answers (modular daemons such as virtqemud, or socket activation): nothing to start
    if [ "$D" = libvirtd ] && virsh -c "$VIRSH_URI" uri </dev/null >/dev/null 2>&1; then continue; fi
    case "$M" in
        systemd)
            m_put "libvirtd/started/$D" systemd
            quietly systemctl start "$D.service" || die "systemctl start $D failed (see 'journalctl -u $D'): fix $D's configuration and run again" ;;
        sysv)
            m_put "libvirtd/started/$D" sysv
            quietly service "$D" start || die "service $D start failed (see its log): fix $D's configuration and run again" ;;
        none)
            "$D" -d -p "/run/$D.pid" </dev/null >"$WORK/out" 2>&1 || die "$D -d failed: $(tr '\n' ' ' < "$WORK/out")"
            I=0
            while ! pid_matches "$(read_pidfile "/run/$D.pid")" "$D"; do
                I=$((I + 1))
                [ "$I" -lt 50 ] || die "$D was started but /run/$D.pid names no running $D after 10 s: start it by hand to see why"
                nap
            done
            m_put "libvirtd/started/$D" "none $(read_pidfile "/run/$D.pid")" ;;
    esac
    log "started $D ($M)"
done
# a freshly started libvirtd probes qemu first: its first answer can take many seconds
END=$(($(date +%s) + 90))
until virsh -c "$VIRSH_URI" list --all --name </dev/null >"$WORK/out" 2>&1; do
    [ "$(date +%s)" -lt "$END" ] || die "libvirtd runs but $VIRSH_URI does not answer after 90 s: $(tail -n 3 "$WORK/out" | tr '\n' ' ')"
    nap
done
`;

const DELETE = sh`
for D in libvirtd virtlogd; do
    HOW=$(m_get "libvirtd/started/$D")
    [ -n "$HOW" ] || continue
    case "$HOW" in
        systemd) quietly systemctl stop "$D.service" || die "systemctl stop $D failed: stop it by hand and run again" ;;
        sysv) quietly service "$D" stop || die "service $D stop failed: stop it by hand and run again" ;;
        none\ *) stop_pid "\${HOW#none }" "$D" ;;
    esac
    m_del "libvirtd/started/$D"
    log "stopped $D, which this lab had started"
done
`;

export function libvirtdScripts(lab: string): HostScripts {
    return {
        create: hostScript(lab, "libvirtd", {}, FUNCTIONS + CREATE),
        delete: hostScript(lab, "libvirtd", {}, FUNCTIONS + DELETE),
    };
}
