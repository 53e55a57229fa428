/**
 * cluster.conf (cman + rgmanager) for the lab's two clusters:
 *
 * - the guest cluster (`renderGuestClusterConf`): the guests are the nodes, and each is fenced through fence_xvm,
 *   which asks the hosts' fence_virtd (multicast, signed with the shared fence key) to power-cycle the libvirt
 *   domain of the same name;
 * - the host cluster (`renderHostClusterConf`, optional): the KVM hosts are the nodes, fenced by their own devices
 *   (e.g. fence_ipmilan), and rgmanager runs guests as `<vm>` services from the shared XML directory (seed 002).
 *
 * Both are pure: the same spec and options give byte-identical text. The caller chooses `config_version` (cman only
 * reloads a file whose version is higher than the running one). Every file validates against
 * schema/cluster-conf.rng, the project's contract modelled on cman's cluster.rng.
 */
import { create } from "xmlbuilder2";
import type { HostClusterSpec, LabSpec } from "../spec";

type XMLBuilder = ReturnType<typeof create>;

/**
 * fenced timing used by both clusters (`<fence_daemon>`); see fenced(8).
 *
 * - `postJoinDelay` 30 s (fenced's own default is 6): when the fence domain forms, fenced fences every listed node
 *   that has not joined yet ("startup fencing"), after this delay. In a two-node cluster one node is quorate on its
 *   own, so a node that boots a little later than its peer would be power-cycled by it. Lab guests often boot
 *   slowly (one host, several guests at once, or TCG emulation without KVM), so they get 30 s to join; Red Hat's
 *   cluster documentation gives 20 to 30 s as the usual setting. It only delays fencing at startup and after joins.
 * - `postFailDelay` 0 s (fenced's default): a member that fails is fenced at once, because DLM, GFS2 and
 *   rgmanager recovery (relocating the dead node's VMs) all wait for that fencing to finish.
 */
export const FENCE_DAEMON_DEFAULTS = { postJoinDelay: 30, postFailDelay: 0 } as const;

/** The name of the fence method every node gets (fenced tries methods in document order; the name is a label). */
export const FENCE_METHOD_NAME = "1";

/** The `<fencedevice>` name that fences one guest of the guest cluster. */
export function xvmFenceDeviceName(guest: string): string {
    return `xvm-${guest}`;
}

export interface GuestClusterConfOptions {
    /** cluster.conf revision; must be a positive integer and rise with every change that is pushed to a cluster. */
    configVersion: number;
}

export interface HostClusterConfOptions {
    /** cluster.conf revision; must be a positive integer and rise with every change that is pushed to a cluster. */
    configVersion: number;
    /**
     * Fence device passwords by device name, rendered as `passwd`. A device with no entry gets no `passwd`
     * attribute (the render command passes none: secret values are left out of the files it writes).
     */
    passwords: Record<string, string | undefined>;
}

/**
 * The guest cluster's cluster.conf: one `<clusternode>` per guest (name = libvirt domain name, nodeid = position in
 * `guestCluster.nodes`, from 1), each fenced by its own fence_xvm device whose `domain` is that same name.
 *
 * `domain` is the victim attribute the foundation issue asks for; fence_xvm reads `domain`, `port` and `plug` into
 * the same field (newer metadata marks `domain` deprecated in favour of `port`/`plug`, but every fence-virt release
 * still accepts it). Exactly one of them is set, on the `<device>` only: fence_xvm exits with an error when the
 * victim is given twice.
 */
export function renderGuestClusterConf(spec: LabSpec, opts: GuestClusterConfOptions): string {
    const gc = spec.guestCluster;
    const f = gc.fencing;
    const cluster = clusterElement(gc.name, opts.configVersion);
    cmanElement(cluster, gc.nodes.length);
    fenceDaemonElement(cluster);

    const nodes = cluster.ele("clusternodes");
    gc.nodes.forEach((guest, i) => {
        const method = nodes
            .ele("clusternode", { name: guest, nodeid: String(i + 1), votes: "1" })
            .ele("fence")
            .ele("method", { name: FENCE_METHOD_NAME });
        method.ele("device", { name: xvmFenceDeviceName(guest), domain: guest });
    });

    const devices = cluster.ele("fencedevices");
    for (const guest of gc.nodes) {
        devices.ele("fencedevice", {
            name: checkedDeviceName(xvmFenceDeviceName(guest), `guest ${guest}`),
            agent: "fence_xvm",
            key_file: f.keyFile,
            multicast_address: f.multicast.address,
            ipport: String(f.multicast.port),
            hash: f.hash,
            auth: f.auth,
        });
    }
    return serialize(cluster);
}

/**
 * The host cluster's cluster.conf (`spec.hostCluster`, which must be set): one `<clusternode>` per host in
 * `spec.hosts` order, fenced by the host's devices from `hostCluster.fenceDevices` (one method, the devices in
 * config order); `<fencedevices>` with each device's agent and parameters (sorted by name) and `passwd` when a
 * password is given; `<rm>` with the failover domains and one `<vm>` per VM service.
 *
 * A `<vm>` names the guest (its libvirt domain) and `path` = the shared XML directory with a trailing slash, where
 * vm.sh finds `<guest>.xml` (seed 002). Booleans are "0"/"1".
 */
export function renderHostClusterConf(spec: LabSpec, opts: HostClusterConfOptions): string {
    const hc: HostClusterSpec | undefined = spec.hostCluster;
    if (hc === undefined) {
        throw new Error("renderHostClusterConf: the lab has no hostCluster; render it only when spec.hostCluster is set");
    }
    const cluster = clusterElement(hc.name, opts.configVersion);
    cmanElement(cluster, spec.hosts.length);
    fenceDaemonElement(cluster);

    const nodes = cluster.ele("clusternodes");
    spec.hosts.forEach((host, i) => {
        const node = nodes.ele("clusternode", { name: host.name, nodeid: String(i + 1), votes: "1" });
        const own = hc.fenceDevices.filter((d) => d.host === host.name);
        if (own.length === 0) return;
        const method = node.ele("fence").ele("method", { name: FENCE_METHOD_NAME });
        // Port-less agents (fence_ipmilan: one BMC per host) need nothing but the device name here.
        for (const d of own) method.ele("device", { name: d.name });
    });

    if (hc.fenceDevices.length > 0) {
        const devices = cluster.ele("fencedevices");
        for (const d of hc.fenceDevices) {
            const attrs: Record<string, string> = { name: checkedDeviceName(d.name, `hostCluster device ${d.name}`), agent: d.agent };
            for (const key of Object.keys(d.params).sort()) attrs[key] = d.params[key];
            const password = opts.passwords[d.name];
            if (password !== undefined) attrs.passwd = password;
            devices.ele("fencedevice", attrs);
        }
    }

    const rm = cluster.ele("rm");
    if (hc.failoverDomains.length > 0) {
        const domains = rm.ele("failoverdomains");
        for (const fd of hc.failoverDomains) {
            const domain = domains.ele("failoverdomain", {
                name: fd.name,
                ordered: bool(fd.ordered),
                restricted: bool(fd.restricted),
                nofailback: bool(fd.nofailback),
            });
            for (const m of fd.members) {
                const attrs: Record<string, string> = { name: m.host };
                if (m.priority !== undefined) attrs.priority = String(m.priority);
                domain.ele("failoverdomainnode", attrs);
            }
        }
    }
    const path = vmPath(spec.xmlDir.path);
    for (const s of hc.vmServices) {
        const attrs: Record<string, string> = {
            name: s.guest,
            path,
            autostart: bool(s.autostart),
            exclusive: bool(s.exclusive),
            recovery: s.recovery,
            max_restarts: String(s.maxRestarts),
            restart_expire_time: String(s.restartExpireTime),
        };
        if (s.failoverDomain !== undefined) attrs.domain = s.failoverDomain;
        rm.ele("vm", attrs);
    }
    return serialize(cluster);
}

function clusterElement(name: string, configVersion: number): XMLBuilder {
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

function fenceDaemonElement(cluster: XMLBuilder): void {
    cluster.ele("fence_daemon", {
        post_join_delay: String(FENCE_DAEMON_DEFAULTS.postJoinDelay),
        post_fail_delay: String(FENCE_DAEMON_DEFAULTS.postFailDelay),
    });
}

/**
 * A fence device name is an XML ID in cman's schema (an NCName: it cannot start with a digit, '-' or '.', and has no
 * ':' or spaces). fenced(8) says the same. Config validation should refuse such names; this guard keeps an invalid
 * name from ever reaching a cluster.
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

/** rgmanager's vm `path`: the directory holding `<guest>.xml`, with a trailing slash as in seed 002. */
function vmPath(dir: string): string {
    return dir.endsWith("/") ? dir : `${dir}/`;
}

function bool(value: boolean): string {
    return value ? "1" : "0";
}

function serialize(cluster: XMLBuilder): string {
    return `${cluster.end({ prettyPrint: true, indent: "  " })}\n`;
}
