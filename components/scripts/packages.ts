/**
 * Installs what a KVM host of the lab needs, with the host's package manager (dnf, yum or apt-get), only when missing:
 * - dnf/yum: libvirt, qemu-kvm, qemu-img, fence-virtd, fence-virtd-libvirt, iptables, iproute, and the package of the
 *   lab's fence_virtd listener plugin: fence-virtd-multicast or fence-virtd-tcp (the vsock plugin is part of
 *   fence-virtd itself);
 * - apt-get: libvirt-daemon-system, libvirt-clients, qemu-system-<arch>, qemu-utils, fence-virtd (every listener
 *   plugin included), iptables, iproute2.
 *
 * A change of listener runs create again (an update, not a replacement): it installs the new plugin's package and
 * adds it to the record; what was installed before stays recorded for delete.
 *
 * Markers: `packages/installed` (the packages this lab installed, one a line) and `packages/manager`.
 * Delete removes exactly those packages that are still installed, and only when removing them takes no other package
 * with it (checked with `rpm -e --test` / `apt-get -s remove`); otherwise it leaves them and says so. Dependencies the
 * package manager pulled in are left to it (dnf removes unneeded ones itself; on apt, `apt-get autoremove`).
 */
import type { FenceListener } from "../spec";
import { hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

/** The RHEL/Fedora package that carries each fence_virtd listener plugin ("" = fence-virtd itself). */
export const RPM_LISTENER_PACKAGE: Record<FenceListener, string> = {
    multicast: "fence-virtd-multicast",
    tcp: "fence-virtd-tcp",
    vsock: "",
};

const FUNCTIONS = sh`
PM=$(m_get packages/manager)
if [ -z "$PM" ]; then
    if have dnf; then PM=dnf; elif have yum; then PM=yum; elif have apt-get; then PM=apt-get; else
        die "no supported package manager (dnf, yum or apt-get) on this host: install libvirt, qemu, fence-virtd, iptables and iproute by hand and set installPackages: false"
    fi
fi
case "$PM" in
    dnf|yum)
        PKGS="libvirt qemu-kvm qemu-img fence-virtd fence-virtd-libvirt $RPM_LISTENER iptables iproute"
        installed() { rpm -q --whatprovides "$1" >/dev/null 2>&1; } ;;
    apt-get)
        case "$(uname -m)" in
            x86_64|i?86) QEMU=qemu-system-x86 ;;
            aarch64|arm*) QEMU=qemu-system-arm ;;
            *) QEMU=qemu-system ;;
        esac
        PKGS="libvirt-daemon-system libvirt-clients $QEMU qemu-utils fence-virtd iptables iproute2"
        installed() { [ "$(dpkg-query -W -f='\${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; } ;;
    *) die "unknown package manager '$PM' recorded in $STATE_DIR/packages/manager: remove that file" ;;
esac
work_dir
`;

const CREATE = sh`
MISSING=''
for P in $PKGS; do installed "$P" || MISSING="$MISSING $P"; done
[ -n "$MISSING" ] || exit 0
log "installing with $PM:$MISSING"
RC=0
case "$PM" in
    dnf|yum) "$PM" -y install $MISSING </dev/null >&2 || RC=$? ;;
    apt-get)
        DEBIAN_FRONTEND=noninteractive
        export DEBIAN_FRONTEND
        if ! apt-get -y -q install $MISSING </dev/null >&2; then
            log "apt-get install failed; updating the package lists and trying once more"
            { apt-get -q update </dev/null >&2 && apt-get -y -q install $MISSING </dev/null >&2; } || RC=$?
        fi ;;
esac
# record what is installed now that was missing before, even when the install failed half-way
NOW=''
for P in $MISSING; do if installed "$P"; then NOW="$NOW $P"; fi; done
if [ -n "$NOW" ]; then
    m_put packages/manager "$PM"
    m_put packages/installed "$( { m_get packages/installed; for P in $NOW; do printf '%s\n' "$P"; done; } | sed '/^$/d' | sort -u)"
fi
[ "$RC" = 0 ] || die "$PM could not install$MISSING (exit $RC, output above): fix the package repositories or install them by hand"
STILL=''
for P in $MISSING; do installed "$P" || STILL="$STILL $P"; done
[ -z "$STILL" ] || die "$PM reported success but$STILL is still not installed: install it by hand"
`;

const DELETE = sh`
LIST=$(m_get packages/installed)
if [ -z "$LIST" ]; then m_del packages/manager; exit 0; fi
REMOVE=''
for P in $LIST; do if installed "$P"; then REMOVE="$REMOVE $P"; fi; done
if [ -n "$REMOVE" ]; then
    OK=yes
    case "$PM" in
        dnf|yum)
            rpm -e --test $REMOVE >"$WORK/test" 2>&1 || OK=no ;;
        apt-get)
            apt-get -s remove $REMOVE </dev/null 2>&1 | sed -n 's/^Remv \([^ ]*\).*/\1/p' | sed 's/:.*//' > "$WORK/remv"
            : > "$WORK/test"
            for R in $(cat "$WORK/remv"); do
                case " $REMOVE " in *" $R "*) ;; *) OK=no; echo "$R" >> "$WORK/test" ;; esac
            done ;;
    esac
    if [ "$OK" = no ]; then
        log "left packages$REMOVE installed: removing them would also remove packages this lab did not install: $(echo $(cat "$WORK/test") | cut -c1-300)"
    else
        log "removing with $PM:$REMOVE"
        case "$PM" in
            dnf|yum) "$PM" -y remove $REMOVE </dev/null >&2 || die "$PM could not remove$REMOVE (output above): remove them by hand" ;;
            apt-get) DEBIAN_FRONTEND=noninteractive apt-get -y -q remove $REMOVE </dev/null >&2 || die "apt-get could not remove$REMOVE (output above): remove them by hand" ;;
        esac
    fi
fi
m_del packages/installed
m_del packages/manager
`;

export function packagesScripts(lab: string, listener: FenceListener): HostScripts {
    const vars = { RPM_LISTENER: RPM_LISTENER_PACKAGE[listener] };
    return {
        create: hostScript(lab, "packages", vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, "packages", vars, FUNCTIONS + DELETE),
    };
}
