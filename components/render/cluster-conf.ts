/**
 * cluster.conf (cman + rgmanager) for the lab's two clusters:
 *
 * - the guest cluster (`renderGuestClusterConf`): the guests are the nodes. Fence level 1 of each node is its own
 *   device, which asks the hosts' fence_virtd (signed with the shared fence key) to power-cycle the libvirt domain of
 *   the same name: fence_xvm over multicast, or fence_virt over tcp (to the node's placement host) or vsock (to the
 *   host the node runs on); further levels (`fenceLevels`) use more fence_xvm/fence_virt devices. Its
 *   `<rm>` runs the guest cluster's own application services (`<service>` with `<ip>` and `<script>` resources),
 *   with anti-affinity groups rendered as one ordered failover domain per member plus a guard script;
 * - the host cluster (`renderHostClusterConf`, optional): the KVM hosts are the nodes, fenced by their own devices
 *   (e.g. fence_ipmilan) in one or more levels, and rgmanager runs guests as `<vm>` services from the shared XML
 *   directory (the CentOS 5.5 HA virtualization guide).
 *
 * Both are pure: the same spec and options give byte-identical text. The caller chooses `config_version` (cman only
 * reloads a file whose version is higher than the running one; components/cluster-conf.ts keeps the counter).
 * Every file validates against schema/cluster-conf.rng, the project's contract modelled on cman's cluster.rng, and
 * the elements come in that contract's order: cman, totem, fence_daemon, clusternodes, fencedevices, rm.
 */
import { create } from "xmlbuilder2";
import type {
    AntiAffinitySpec,
    ClusterServiceSpec,
    FenceDaemonSpec,
    FenceDelaySpec,
    FenceListener,
    HostClusterSpec,
    LabSpec,
    SubtreeSpec,
    TotemSpec,
    VmServiceSpec,
} from "../spec";
import { antiAffinityDomainName, bool, HOST_VSOCK_CID, levelOneDeviceName, rgServiceAttributes, vmServiceAttributes, withoutDefaults } from "../cluster-model";
import { guardResourceName, guardScriptPath } from "./anti-affinity-guard";

type XMLBuilder = ReturnType<typeof create>;

/** The bridge address (without prefix) of the host a guest is placed on; the tcp listener of that host binds it. */
export function placementHostAddress(spec: LabSpec, guest: string): string {
    const hostName = spec.guests.find((g) => g.name === guest)?.host;
    const host = spec.hosts.find((h) => h.name === hostName);
    const address = host?.bridge.address?.split("/")[0];
    if (address === undefined || address === "") {
        throw new Error(
            `cluster.conf: guest ${guest} is fenced over tcp through its placement host ${hostName ?? "(none)"}, which has no bridge address; set hosts[].bridge.address`,
        );
    }
    return address;
}

/**
 * The `<fencedevice>` attributes (but name) of one node's level-1 device, matching the hosts' fence_virt.conf:
 * - multicast: fence_xvm to the multicast address and port;
 * - tcp: fence_virt to the bridge address of the node's placement host (where fence_virtd's tcp listener binds) and
 *   the tcp port. A node the host cluster moved to another host is still fenced through its placement host, whose
 *   fence_virtd finds no running domain of that name;
 * - vsock: fence_virt to the host's CID (2: whichever host runs the node) and the vsock port.
 * The victim (`domain`) is set on the node's `<device>`, never here.
 */
export function levelOneDeviceAttributes(spec: LabSpec, guest: string): Record<string, string> {
    const f = spec.guestCluster.fencing;
    const auth = { key_file: f.keyFile, hash: f.hash, auth: f.auth };
    switch (f.listener) {
        case "multicast":
            return { agent: "fence_xvm", key_file: f.keyFile, multicast_address: f.multicast.address, ipport: String(f.multicast.port), hash: f.hash, auth: f.auth };
        case "tcp":
            return { agent: "fence_virt", ipaddr: placementHostAddress(spec, guest), ipport: String(f.tcp.port), ...auth };
        case "vsock":
            return { agent: "fence_virt", vsock: String(HOST_VSOCK_CID), ipport: String(f.vsock.port), ...auth };
        default: {
            const unreachable: never = f.listener;
            throw new Error(`unknown fence_virtd listener ${JSON.stringify(unreachable)}`);
        }
    }
}

export interface FailoverDomain {
    name: string;
    ordered: boolean;
    restricted: boolean;
    nofailback: boolean;
    members: { node: string; priority?: number }[];
}

/**
 * One ordered failover domain per member of an anti-affinity group: member j (0-based) prefers node j, then the
 * following nodes in cluster order (a rotation), so every member starts on a different node and each fails over
 * along a different order. All nodes are listed (priority 1 = preferred); `nofailback` unless the group asks for
 * failback, so a recovered node does not pull a member back and interrupt it.
 * Validation guarantees members <= nodes, so no two members share a preferred node.
 */
export function antiAffinityDomains(group: AntiAffinitySpec, nodes: string[]): { member: string; domain: FailoverDomain }[] {
    return group.services.map((member, j) => {
        const order = [...nodes.slice(j % nodes.length), ...nodes.slice(0, j % nodes.length)];
        return {
            member,
            domain: {
                name: antiAffinityDomainName(group.name, member),
                ordered: true,
                restricted: false,
                nofailback: !group.failback,
                members: order.map((node, i) => ({ node, priority: i + 1 })),
            },
        };
    });
}

export interface GuestClusterConfOptions {
    /**
     * cluster.conf revision; a positive integer that must rise with every change pushed to a cluster. Leave it unset
     * only to hash the content (the attribute is then omitted and cman would refuse the file).
     */
    configVersion: number | undefined;
}

export interface HostClusterConfOptions {
    /** As for the guest cluster. */
    configVersion: number | undefined;
    /**
     * Fence device passwords by device name, rendered as `passwd`. A device with no entry gets no `passwd`
     * attribute (the render command passes none: secret values are left out of the files it writes).
     */
    passwords: Record<string, string | undefined>;
}

/**
 * The guest cluster's cluster.conf: one `<clusternode>` per guest (name = libvirt domain name, nodeid = position in
 * `guestCluster.nodes`, from 1). Method "1" is the node's own device (`levelOneDeviceAttributes`: fence_xvm for the
 * multicast listener, fence_virt for tcp and vsock) whose `domain` is that same name; methods "2", "3", ... are
 * `fenceLevels` in order, each device with the node's victim as `domain`.
 *
 * `domain` is the victim attribute the foundation issue asks for; fence_xvm and fence_virt read `domain`, `port` and
 * `plug` into the same field (newer metadata marks `domain` deprecated in favour of `port`/`plug`, but every
 * fence-virt release still accepts it). Exactly one of them is set, on the `<device>` only: the agents exit with an
 * error when the victim is given twice.
 *
 * `<rm>` (only when there are services or failover domains): the configured failover domains, then the
 * anti-affinity domains, then one `<service>` per service. A member of an anti-affinity group gets its group's
 * failover domain and, as its only direct child, the guard `<script>`, with the service's own `<ip>`s and
 * `<script>`s nested inside it: rgmanager starts a child only after its parent, so nothing of the member starts on a
 * node where the guard refuses. Otherwise the `<ip>`s and `<script>`s are direct children (rgmanager starts ips
 * before scripts, whatever their order).
 */
export function renderGuestClusterConf(spec: LabSpec, opts: GuestClusterConfOptions): string {
    const gc = spec.guestCluster;
    const f = gc.fencing;
    const cluster = clusterElement(gc.name, opts.configVersion);
    cmanElement(cluster, gc.nodes.length);
    totemElement(cluster, gc.totem);
    fenceDaemonElement(cluster, gc.fenceDaemon);

    const agents = new Map(gc.fenceDevices.map((d) => [d.name, d.agent]));
    const nodes = cluster.ele("clusternodes");
    gc.nodes.forEach((guest, i) => {
        const levels: Record<string, string>[][] = [
            [{ name: levelOneDeviceName(f.listener, guest), domain: guest }],
            ...gc.fenceLevels.map((l) =>
                l.devices.map((d) => {
                    // fence_xvm and fence_virt both take the victim as `domain` (see above); every guest agent is one of them
                    const agent = agents.get(d.device);
                    if (agent !== "fence_xvm" && agent !== "fence_virt") {
                        throw new Error(`renderGuestClusterConf: fence level device ${d.device} is not a fence_xvm/fence_virt device of guestCluster.fenceDevices`);
                    }
                    return { name: d.device, domain: d.ports[guest] ?? guest };
                }),
            ),
        ];
        fenceElement(nodes.ele("clusternode", { name: guest, nodeid: String(i + 1), votes: "1" }), levels, guest, gc.fenceDelay);
    });

    const devices = cluster.ele("fencedevices");
    for (const guest of gc.nodes) {
        const { agent, ...transport } = levelOneDeviceAttributes(spec, guest);
        devices.ele("fencedevice", {
            name: checkedDeviceName(levelOneDeviceName(f.listener, guest), `guest ${guest}`),
            agent,
            ...withoutDefaults(agent, transport),
        });
    }
    for (const d of gc.fenceDevices) {
        devices.ele("fencedevice", { name: checkedDeviceName(d.name, `guestCluster device ${d.name}`), agent: d.agent, ...sortedParams(d.params) });
    }

    if (gc.services.length > 0 || gc.failoverDomains.length > 0) {
        const rm = cluster.ele("rm");
        const aa = gc.antiAffinity.flatMap((g) => antiAffinityDomains(g, gc.nodes).map((x) => ({ ...x, group: g })));
        failoverDomainsElement(rm, [...gc.failoverDomains, ...aa.map((x) => x.domain)]);
        const byMember = new Map(aa.map((x) => [x.member, x]));
        for (const s of gc.services) {
            const member = byMember.get(s.name);
            serviceElement(rm, s, member && { domain: member.domain.name, guard: guardResourceName(s.name), file: guardScriptPath(spec.lab, s.name) });
        }
    }
    return serialize(cluster);
}

/**
 * The host cluster's cluster.conf (`spec.hostCluster`, which must be set): one `<clusternode>` per host in
 * `spec.hosts` order, fenced by the host's devices from `hostCluster.fenceDevices` (one method per level, named by
 * the level, the devices of a level in config order); `<fencedevices>` with each device's agent and parameters
 * (sorted by name) and `passwd` when a password is given; `<rm>` with the failover domains (configured, then
 * anti-affinity) and one `<vm>` per VM service.
 *
 * A `<vm>` names the guest (its libvirt domain) and `path` = the shared XML directory with a trailing slash, where
 * vm.sh finds `<guest>.xml` (the CentOS 5.5 HA virtualization guide), unless the service names its own `xmlfile`. Booleans are "0"/"1". A VM
 * service in an anti-affinity group gets its group's failover domain; no guard can be wired to a `<vm>` (see
 * README: vm.sh is a leaf resource and rgmanager only live-migrates a `<vm>` without children).
 */
export function renderHostClusterConf(spec: LabSpec, opts: HostClusterConfOptions): string {
    const hc: HostClusterSpec | undefined = spec.hostCluster;
    if (hc === undefined) {
        throw new Error("renderHostClusterConf: the lab has no hostCluster; render it only when spec.hostCluster is set");
    }
    const cluster = clusterElement(hc.name, opts.configVersion);
    cmanElement(cluster, spec.hosts.length);
    totemElement(cluster, hc.totem);
    fenceDaemonElement(cluster, hc.fenceDaemon);

    const nodes = cluster.ele("clusternodes");
    spec.hosts.forEach((host, i) => {
        const node = nodes.ele("clusternode", { name: host.name, nodeid: String(i + 1), votes: "1" });
        const own = hc.fenceDevices.filter((d) => d.host === host.name);
        const levels = [...new Set(own.map((d) => d.level))].sort((a, b) => a - b);
        // Port-less agents (fence_ipmilan: one BMC per host) need nothing but the device name here.
        fenceElement(node, levels.map((l) => own.filter((d) => d.level === l).map((d) => ({ name: d.name }))), host.name, hc.fenceDelay);
    });

    if (hc.fenceDevices.length > 0) {
        const devices = cluster.ele("fencedevices");
        for (const d of hc.fenceDevices) {
            const attrs: Record<string, string> = { name: checkedDeviceName(d.name, `hostCluster device ${d.name}`), agent: d.agent, ...sortedParams(d.params) };
            const password = opts.passwords[d.name];
            if (password !== undefined) attrs.passwd = password;
            devices.ele("fencedevice", attrs);
        }
    }

    const rm = cluster.ele("rm");
    const hostNames = spec.hosts.map((h) => h.name);
    const aa = hc.antiAffinity.flatMap((g) => antiAffinityDomains(g, hostNames));
    failoverDomainsElement(rm, [
        ...hc.failoverDomains.map((d) => ({ ...d, members: d.members.map((m) => ({ node: m.host, priority: m.priority })) })),
        ...aa.map((x) => x.domain),
    ]);
    const aaDomain = new Map(aa.map((x) => [x.member, x.domain.name]));
    const path = vmPath(spec.xmlDir.path);
    for (const s of hc.vmServices) rm.ele("vm", vmServiceAttributes(s, aaDomain.get(s.guest) ?? s.failoverDomain, path, hostNames));
    return serialize(cluster);
}

function clusterElement(name: string, configVersion: number | undefined): XMLBuilder {
    if (configVersion === undefined) return create({ version: "1.0" }).ele("cluster", { name });
    if (!Number.isSafeInteger(configVersion) || configVersion < 1) {
        throw new Error(`cluster.conf config_version must be a positive integer; got ${JSON.stringify(configVersion)}`);
    }
    return create({ version: "1.0" }).ele("cluster", { name, config_version: String(configVersion) });
}

/**
 * Quorum. With two nodes, cman's two_node mode makes one node quorate on its own (expected_votes must then be 1);
 * fencing decides which node survives a split. Otherwise expected_votes is the total of the nodes' votes (1 each),
 * which is what cman would compute, written out so the file says what quorum is.
 */
function cmanElement(cluster: XMLBuilder, nodeCount: number): void {
    if (nodeCount === 2) cluster.ele("cman", { two_node: "1", expected_votes: "1" });
    else cluster.ele("cman", { expected_votes: String(nodeCount) });
}

function totemElement(cluster: XMLBuilder, totem: TotemSpec): void {
    if (totem.token !== undefined) cluster.ele("totem", { token: String(totem.token) });
}

function fenceDaemonElement(cluster: XMLBuilder, fd: FenceDaemonSpec): void {
    const attrs: Record<string, string> = { post_join_delay: String(fd.postJoinDelay), post_fail_delay: String(fd.postFailDelay) };
    if (fd.cleanStart !== undefined) attrs.clean_start = bool(fd.cleanStart);
    cluster.ele("fence_daemon", attrs);
}

/**
 * `<fence>` with one `<method>` per level (named "1", "2", ...). The fence delay goes on the first device of the
 * first level of the favoured node only: fenced runs a method's devices one after another, so a delay on each would
 * add up, and fencing any other node must not wait.
 */
function fenceElement(node: XMLBuilder, levels: Record<string, string>[][], nodeName: string, delay: FenceDelaySpec | undefined): void {
    const used = levels.filter((l) => l.length > 0);
    if (used.length === 0) return;
    const fence = node.ele("fence");
    used.forEach((devices, li) => {
        const method = fence.ele("method", { name: String(li + 1) });
        devices.forEach((attrs, di) => {
            const withDelay = delay !== undefined && delay.node === nodeName && li === 0 && di === 0 ? { ...attrs, delay: String(delay.seconds) } : attrs;
            method.ele("device", withDelay);
        });
    });
}

function failoverDomainsElement(rm: XMLBuilder, domains: FailoverDomain[]): void {
    if (domains.length === 0) return;
    const parent = rm.ele("failoverdomains");
    for (const fd of domains) {
        const domain = parent.ele("failoverdomain", {
            name: fd.name,
            ordered: bool(fd.ordered),
            restricted: bool(fd.restricted),
            nofailback: bool(fd.nofailback),
        });
        for (const m of fd.members) {
            const attrs: Record<string, string> = { name: m.node };
            if (m.priority !== undefined) attrs.priority = String(m.priority);
            domain.ele("failoverdomainnode", attrs);
        }
    }
}

function serviceElement(rm: XMLBuilder, s: ClusterServiceSpec, guard: { domain: string; guard: string; file: string } | undefined): void {
    const attrs: Record<string, string> = { name: s.name };
    const domain = guard?.domain ?? s.failoverDomain;
    if (domain !== undefined) attrs.domain = domain;
    Object.assign(attrs, rgServiceAttributes(s));
    if (s.depend !== undefined) attrs.depend = `service:${s.depend}`;
    if (s.dependMode !== undefined) attrs.depend_mode = s.dependMode;
    const service = rm.ele("service", withoutDefaults("service", attrs));
    const parent = guard === undefined ? service : service.ele("script", { name: guard.guard, file: guard.file });
    for (const ip of s.ips) parent.ele("ip", withoutDefaults("ip", { address: ip.address, monitor_link: bool(ip.monitorLink), ...subtreeAttributes(ip) }));
    for (const sc of s.scripts) parent.ele("script", withoutDefaults("script", { name: sc.name, file: sc.file, ...subtreeAttributes(sc) }));
}

/** rgmanager's generic child-resource attributes (every resource agent element accepts them). */
function subtreeAttributes(r: SubtreeSpec): Record<string, string> {
    const attrs: Record<string, string> = {};
    if (r.independentSubtree !== undefined) attrs.__independent_subtree = r.independentSubtree === "restart" ? "1" : "2";
    if (r.maxRestarts !== undefined) attrs.__max_restarts = String(r.maxRestarts);
    if (r.restartExpireTime !== undefined) attrs.__restart_expire_time = String(r.restartExpireTime);
    if (r.enforceTimeouts !== undefined) attrs.__enforce_timeouts = bool(r.enforceTimeouts);
    return attrs;
}

function sortedParams(params: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of Object.keys(params).sort()) out[key] = params[key];
    return out;
}

/**
 * A fence device name is an XML ID in cman's schema (an NCName: it cannot start with a digit, '-' or '.', and has no
 * ':' or spaces). fenced(8) says the same. Config validation refuses such names; this guard keeps an invalid name
 * from ever reaching a cluster.
 */
function checkedDeviceName(name: string, what: string): string {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) {
        throw new Error(
            `cluster.conf fence device name ${JSON.stringify(name)} (${what}) is not valid: cman requires an XML ID ` +
                `(start with a letter or '_', then letters, digits, '_', '.', '-')`,
        );
    }
    return name;
}

/** rgmanager's vm `path`: the directory holding `<guest>.xml`, with a trailing slash as in the CentOS 5.5 HA virtualization guide. */
function vmPath(dir: string): string {
    return dir.endsWith("/") ? dir : `${dir}/`;
}

function serialize(cluster: XMLBuilder): string {
    return `${cluster.end({ prettyPrint: true, indent: "  " })}\n`;
}
