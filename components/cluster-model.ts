/**
 * The facts of the cluster model that validation and the renderers share: the target release, the limits of cman's
 * validator and of fenced, the agents' defaults, reserved name prefixes, and the names and attributes derived from the
 * spec (level-1 fence devices, anti-affinity domains, a `<vm>`'s attributes, ring addresses, a script's Pacemaker
 * agent). Pure functions of spec values: config validation (components/config*.ts) imports them from here, never from
 * a renderer, and the renderers (components/render/*) import them too.
 */
import type { FenceListener, HostSpec, LabSpec, VmServiceSpec } from "./spec";

/**
 * The release the rendered files are written for: RHEL/CentOS 6 (cluster 3.x: cman 3.0.12, fenced, rgmanager 3.0.12;
 * resource-agents 3.9.x for rgmanager's vm.sh, service.sh, ip.sh and script.sh; fence-agents 3.1/4.0 and fence-virt
 * 0.2). Attributes that exist only in other releases (vm.sh `hardrecovery`: rgmanager 2.x, RHEL 5) are refused by
 * config validation.
 */
export const TARGET_RELEASE = "RHEL/CentOS 6 (cluster 3.x: cman, fenced and rgmanager 3.0; resource-agents 3.9; fence-virt 0.2)";

/**
 * At most this many attributes on one element (its name and agent included). ccs_config_validate runs
 * `xmllint --relaxng` with cman's schema, in which every element lists its agent's parameters as a sequence of
 * optional attributes (rgmanager's ra2rng.xsl, fence-agents' fence2rng.xsl); libxml2 matches the attributes of one
 * element against such a sequence in time exponential in their number. Measured on a 2-core machine against cman's
 * fence definitions generated from the installed agents (test/unit/render-cluster-conf.test.ts checks the bound): a
 * fence_ipmilan device with 11 attributes validates in about 0.05 s, 13 in 0.15 s, 14 in 0.7 s, 15 in 1.6 s (and
 * a `<vm>` shaped as ra2rng.xsl writes it: 13 in 0.04 s, 15 in 0.6 s, 17 in 14 s). Config validation refuses a
 * device or VM service that would carry more; the renderer also leaves out every value that equals the agent's
 * default (`AGENT_DEFAULTS`).
 */
export const MAX_ELEMENT_ATTRIBUTES = 11;

/**
 * The defaults of the agents whose elements the renderer fills in (fence agents, rgmanager's resource agents), per
 * element kind: an attribute whose value equals its default is not rendered (see `MAX_ELEMENT_ATTRIBUTES`). cman's
 * own elements (`<cman>`, `<fence_daemon>`, `<clusternode>`, `<failoverdomain>`, a few attributes each) stay written
 * out, so the file says what quorum, fenced timing and failover order are. From each agent's
 * meta-data in the target release (fence_xvm/fence_virt `-o metadata`; rgmanager's vm.sh, service.sh, ip.sh,
 * script.sh; cluster.conf(5), fenced(8)); `tunnelled="0"` and rgmanager's `__*` attributes at "0" mean what leaving them
 * out means. Never listed: attributes whose presence selects a mode (fence_virt's `vsock` and `ipaddr` pick the
 * transport, serial when neither is given, whatever the metadata's "default" says).
 */
export const AGENT_DEFAULTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
    fence_xvm: { key_file: "/etc/cluster/fence_xvm.key", ipport: "1229", hash: "sha256", auth: "sha256", ip_family: "auto", retrans: "20", timeout: "30", use_uuid: "0", delay: "0" },
    fence_virt: { key_file: "/etc/cluster/fence_xvm.key", ipport: "1229", hash: "sha256", auth: "sha256", timeout: "30", delay: "0" },
    vm: {
        autostart: "1",
        exclusive: "0",
        recovery: "restart",
        max_restarts: "0",
        restart_expire_time: "0",
        migrate: "live",
        depend_mode: "hard",
        hypervisor: "auto",
        hypervisor_uri: "auto",
        migration_uri: "auto",
        tunnelled: "0",
    },
    service: { autostart: "1", exclusive: "0", recovery: "restart", max_restarts: "0", restart_expire_time: "0", depend_mode: "hard" },
    ip: { monitor_link: "1", __independent_subtree: "0", __enforce_timeouts: "0", __max_restarts: "0", __restart_expire_time: "0" },
    script: { __independent_subtree: "0", __enforce_timeouts: "0", __max_restarts: "0", __restart_expire_time: "0" },
};

/** `attrs` without the values that equal `kind`'s default (`AGENT_DEFAULTS`), order kept. */
export function withoutDefaults(kind: string, attrs: Record<string, string>): Record<string, string> {
    const defaults = AGENT_DEFAULTS[kind] ?? {};
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(attrs)) if (defaults[k] !== v) out[k] = v;
    return out;
}

/** fenced (libfence) reads at most 8 methods per node and 8 devices per method. */
export const FENCE_LEVELS_MAX = 8;
export const FENCE_DEVICES_PER_LEVEL_MAX = 8;

/** The name of fence level 1's method (methods are named by their level: "1", "2", ...; fenced tries them in order). */
export const FENCE_METHOD_NAME = "1";

/** Prefix of the failover domains anti-affinity renders (reserved: configured domains may not use it). */
export const ANTI_AFFINITY_DOMAIN_PREFIX = "aa-";

/** The `<fencedevice>` name that fences one guest of the guest cluster at level 1 over multicast (fence_xvm). */
export function xvmFenceDeviceName(guest: string): string {
    return `xvm-${guest}`;
}

/** The `<fencedevice>` name that fences one guest of the guest cluster at level 1 over tcp or vsock (fence_virt). */
export function virtFenceDeviceName(guest: string): string {
    return `virt-${guest}`;
}

/** The vsock CID of the host, as every guest sees it (VMADDR_CID_HOST). */
export const HOST_VSOCK_CID = 2;

/** The fence agent of level 1 for a listener: fence_xvm speaks multicast only, fence_virt tcp and vsock. */
export function levelOneAgent(listener: FenceListener): "fence_xvm" | "fence_virt" {
    switch (listener) {
        case "multicast":
            return "fence_xvm";
        case "tcp":
        case "vsock":
            return "fence_virt";
        default: {
            const unreachable: never = listener;
            throw new Error(`unknown fence_virtd listener ${JSON.stringify(unreachable)}`);
        }
    }
}

/** The level-1 `<fencedevice>` name of one guest for a listener. */
export function levelOneDeviceName(listener: FenceListener, guest: string): string {
    return levelOneAgent(listener) === "fence_xvm" ? xvmFenceDeviceName(guest) : virtFenceDeviceName(guest);
}

/** The failover domain of one member of an anti-affinity group. */
export function antiAffinityDomainName(group: string, member: string): string {
    return `${ANTI_AFFINITY_DOMAIN_PREFIX}${group}-${member}`;
}

/** Prefix of the guards' `<script name>` in cluster.conf (reserved: user script names may not use it). */
export const ANTI_AFFINITY_GUARD_SCRIPT_PREFIX = "aa-guard-";
/** clustat (not on a tty) prints service names in a 30-character column: "service:" + 22. */
export const CLUSTAT_SERVICE_NAME_MAX = 30 - "service:".length;

/** The attributes a `<service>` and a `<vm>` share, in the order both render them (defaults included). */
export function rgServiceAttributes(s: Pick<VmServiceSpec, "autostart" | "exclusive" | "recovery" | "maxRestarts" | "restartExpireTime">): Record<string, string> {
    return {
        autostart: bool(s.autostart),
        exclusive: bool(s.exclusive),
        recovery: s.recovery,
        max_restarts: String(s.maxRestarts),
        restart_expire_time: String(s.restartExpireTime),
    };
}

/**
 * The attributes of one VM service's `<vm>` (vm.sh), in a fixed order, without those equal to vm.sh's defaults. `path`
 * is the shared XML directory with a trailing slash; `domain` its failover domain (an anti-affinity group's, or its
 * own). Config validation counts them against `MAX_ELEMENT_ATTRIBUTES`.
 */
export function vmServiceAttributes(s: VmServiceSpec, domain: string | undefined, path: string, hostOrder: string[]): Record<string, string> {
    const attrs: Record<string, string> = { name: s.guest };
    if (domain !== undefined) attrs.domain = domain;
    // vm.sh: an explicit xmlfile is used as-is; otherwise it searches `path` for <name>.xml
    if (s.xmlFile !== undefined) attrs.xmlfile = s.xmlFile;
    else attrs.path = path;
    Object.assign(attrs, rgServiceAttributes(s), {
        use_virsh: bool(s.useVirsh),
        migrate: s.migrate,
    });
    if (s.depend !== undefined) attrs.depend = `vm:${s.depend}`;
    if (s.dependMode !== undefined) attrs.depend_mode = s.dependMode;
    if (s.migrationMapping !== undefined) {
        const keys = Object.keys(s.migrationMapping).sort((a, b) => hostOrder.indexOf(a) - hostOrder.indexOf(b) || (a < b ? -1 : a > b ? 1 : 0));
        attrs.migration_mapping = keys.map((k) => `${k}:${s.migrationMapping![k]}`).join(",");
    }
    if (s.hypervisor !== undefined) attrs.hypervisor = s.hypervisor;
    if (s.hypervisorUri !== undefined) attrs.hypervisor_uri = s.hypervisorUri;
    if (s.migrationUri !== undefined) attrs.migration_uri = s.migrationUri;
    if (s.snapshot !== undefined) attrs.snapshot = s.snapshot;
    if (s.statusProgram !== undefined) attrs.status_program = s.statusProgram;
    if (s.tunnelled !== undefined) attrs.tunnelled = bool(s.tunnelled);
    return withoutDefaults("vm", attrs);
}

/** An rgmanager boolean attribute. */
export function bool(value: boolean): string {
    return value ? "1" : "0";
}

/** A guest's ring0 address: its address on the cluster network (validation requires one with stack pacemaker). */
export function guestRingAddress(spec: LabSpec, guest: string): string | undefined {
    return spec.guests.find((g) => g.name === guest)?.address;
}

/**
 * A host's ring0 address: the address it is reached at over SSH, else its bridge address (without prefix). A local
 * host without a bridge address has none (validation refuses a Pacemaker host cluster then).
 */
export function hostRingAddress(host: HostSpec): string | undefined {
    if (host.connection.kind === "ssh") return host.connection.address;
    const bridge = host.bridge.address?.split("/")[0];
    return bridge === undefined || bridge === "" ? undefined : bridge;
}

/**
 * The Pacemaker resource agent of a service script: `/etc/init.d/<name>` (or `/etc/rc.d/init.d/<name>`) → lsb:<name>;
 * a systemd unit file (`…/systemd/system/<unit>.service`) → systemd:<unit>; an OCF agent
 * (`/usr/lib/ocf/resource.d/<provider>/<type>`) → ocf:<provider>:<type>. Undefined for any other path (validation
 * refuses it with stack pacemaker).
 */
export function scriptAgent(file: string): { class: "lsb" | "systemd" | "ocf"; provider?: string; type: string } | undefined {
    const lsb = /^\/etc\/(?:rc\.d\/)?init\.d\/([A-Za-z0-9][A-Za-z0-9_.@+-]*)$/.exec(file);
    if (lsb) return { class: "lsb", type: lsb[1] };
    const unit = /^\/(?:etc|usr\/lib|lib|run)\/systemd\/system\/([A-Za-z0-9][A-Za-z0-9_.@:+-]*)\.service$/.exec(file);
    if (unit) return { class: "systemd", type: unit[1] };
    const ocf = /^\/(?:usr\/)?lib\/ocf\/resource\.d\/([A-Za-z0-9][A-Za-z0-9_-]*)\/([A-Za-z0-9][A-Za-z0-9_.-]*)$/.exec(file);
    if (ocf) return { class: "ocf", provider: ocf[1], type: ocf[2] };
    return undefined;
}
