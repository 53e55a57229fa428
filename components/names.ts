/**
 * Every name and path a lab puts on a host, in one place. Per-lab names let several labs share hosts: each lab has
 * its own firewall chains, fence_virtd instance (config, service, pid file) and state directory.
 */

/** Where host scripts record what they created (ownership markers, previous values). Root-only. */
export const STATE_ROOT = "/var/lib/kvm-ha-lab";
/** Where per-lab configuration files (fence_virt.conf) live. */
export const ETC_ROOT = "/etc/kvm-ha-lab";

export interface LabNames {
    lab: string;
    stateDir: string;
    etcDir: string;
    /** iptables chains hooked from INPUT, OUTPUT and FORWARD. At most 28 characters each. */
    chains: { input: string; output: string; forward: string };
    fenceVirtd: {
        /** systemd unit / SysV init script name. */
        service: string;
        configFile: string;
        pidFile: string;
        systemdUnitFile: string;
        sysvInitScript: string;
    };
    /** Persistent sysctl file (bridge netfilter settings). */
    sysctlFile: string;
}

export function labNames(lab: string): LabNames {
    const upper = lab.toUpperCase();
    const service = `kvm-ha-lab-fence-virtd-${lab}`;
    return {
        lab,
        stateDir: `${STATE_ROOT}/${lab}`,
        etcDir: `${ETC_ROOT}/${lab}`,
        chains: { input: `KVMLAB-${upper}-IN`, output: `KVMLAB-${upper}-OUT`, forward: `KVMLAB-${upper}-FWD` },
        fenceVirtd: {
            service,
            configFile: `${ETC_ROOT}/${lab}/fence_virt.conf`,
            pidFile: `/run/${service}.pid`,
            systemdUnitFile: `/etc/systemd/system/${service}.service`,
            sysvInitScript: `/etc/init.d/${service}`,
        },
        sysctlFile: `/etc/sysctl.d/90-kvm-ha-lab-${lab}.conf`,
    };
}

/**
 * A Linux network interface name (bridge, uplink): letters, digits, '_', '.', '-', not starting with '.' (so never '.'
 * or '..', which the kernel refuses, and always usable as a state marker name); at most INTERFACE_NAME_MAX characters.
 * Validation and the bridge script use this one definition.
 */
export const INTERFACE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
export const INTERFACE_NAME_MAX = 15;

export function isInterfaceName(name: string): boolean {
    return INTERFACE_NAME.test(name) && name.length <= INTERFACE_NAME_MAX;
}

/** Path of a guest's domain XML in the shared XML directory. */
export function domainXmlPath(xmlDir: string, guest: string): string {
    return `${xmlDir.replace(/\/+$/, "")}/${guest}.xml`;
}
