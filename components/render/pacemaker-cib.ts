/**
 * The Pacemaker CIB (`cib.xml`: its `<configuration>`, with an empty `<status>`) for a cluster of the Pacemaker stack,
 * from the same lab model as cluster.conf:
 *
 * - the guest cluster (`renderGuestCib`): one stonith resource per node, the agent of fence level 1 for the lab's
 *   fence_virtd listener (`stonith:fence_xvm` for multicast, `stonith:fence_virt` for tcp and vsock) with the same
 *   parameters as cluster.conf's level-1 device (`levelOneDeviceAttributes`: key_file, multicast_address or
 *   ipaddr/vsock, ipport, hash, auth) and `pcmk_host_map` = `<node>:<domain>` (node name = domain name); each extra
 *   `fenceDevices` entry as one stonith resource whose `pcmk_host_map` carries the per-node victims of `fenceLevels`;
 *   a `fencing-topology` with level 1 = the node's own device and levels 2, 3, ... = `fenceLevels` (only when there
 *   are extra levels); `services` as resource groups (`ocf:heartbeat:IPaddr2` per `ips`, `lsb:<name>` or
 *   `systemd:<unit>` or `ocf:<provider>:<type>` per `scripts`), failover domains and anti-affinity as constraints
 *   (below);
 * - the host cluster (`renderHostCib`): the hosts' fence devices as stonith resources (`pcmk_host_list` = the host, or
 *   `pcmk_host_map` when the device names the host's `port`/`plug`), their levels as `fencing-topology`, and one
 *   `ocf:heartbeat:VirtualDomain` per VM service (`config` = `<xmlDir>/<guest>.xml` or its `xmlFile`,
 *   `allow-migrate` for `migrate: live`).
 *
 * The mapping of rgmanager's model (documented in README, "Pacemaker"):
 * - fence delay: `pcmk_delay_base` on the favoured node's first level-1 device, exactly where cluster.conf puts
 *   `delay`: fencing that node waits, so in a split of two nodes the other one is shot first. (Not
 *   `priority-fencing-delay`, which favours the node running the most important resources, a different rule.)
 * - a stonith device never runs on the node it fences (location -INFINITY there): a node does not fence itself.
 * - failover domain → location constraints: members score 100 (unordered) or 100 × (101 − priority) (ordered:
 *   priority 1 scores 10000, 100 scores 100; a member without priority counts as 100); `restricted` → -INFINITY on
 *   every node that is not a member; `nofailback` → `resource-stickiness=INFINITY` on the resource, so it stays
 *   where it runs when a preferred node returns. Without it the default stickiness (1 per resource,
 *   `rsc_defaults`) is far below the 100 between two priorities: the resource fails back.
 * - anti-affinity group → a colocation of score -INFINITY for every pair of members (the later member with the
 *   earlier one), plus each member's rotated ordered preference (`antiAffinityDomains`, as in cluster.conf), with
 *   `failback: false` → stickiness INFINITY. Pacemaker places a colocation's primary first, so when too few nodes are
 *   left for every member, the members listed first keep running: an earlier member may take a later member's node,
 *   which then stops (rgmanager's guard instead keeps whichever member started first).
 * - `exclusive` → colocation -INFINITY with every other service of the cluster.
 * - `autostart: false` → `target-role=Stopped`; `recovery: relocate` → `migration-threshold=1`; `restart` with
 *   `maxRestarts: N` (N > 0) → `migration-threshold=N+1` (N restarts in place, then the next failure moves it);
 *   `restartExpireTime` (> 0) → `failure-timeout`; `recovery: disable` → its monitors `on-fail=stop`.
 * - `depend` → an order constraint (the dependency first), `Mandatory` for `dependMode: hard` (rgmanager's default),
 *   `Optional` for soft.
 * - `fenceDaemon.cleanStart` → cluster property `startup-fencing` (false when cleanStart is true).
 * Options that exist only in cman/rgmanager are refused by validation with stack pacemaker
 * (components/config-pacemaker.ts).
 *
 * Every id is unique in the document (an `IdSet` suffixes "-2", "-3", ... on a clash) and an XML NCName. Pure: the
 * same spec and options give byte-identical text.
 */
import { create } from "xmlbuilder2";
import type { AntiAffinitySpec, FenceDelaySpec, LabSpec, Recovery, ServiceScriptSpec } from "../spec";
import { levelOneDeviceName, scriptAgent } from "../cluster-model";
import { domainXmlPath } from "../names";
import { antiAffinityDomains, levelOneDeviceAttributes, type FailoverDomain } from "./cluster-conf";

type XMLBuilder = ReturnType<typeof create>;

/** The CIB schema the documents declare: supported by Pacemaker 2.0 and later (every corosync 3 distribution). */
export const CIB_VALIDATE_WITH = "pacemaker-3.0";

/** Stickiness every resource gets by default (`rsc_defaults`): keeps resources where they run without a reason to move. */
export const DEFAULT_STICKINESS = 1;

/** The score of a failover domain member (see the header). */
export function memberScore(domain: Pick<FailoverDomain, "ordered">, priority: number | undefined): number {
    return domain.ordered ? 100 * (101 - (priority ?? 100)) : 100;
}

/** The resource id of a guest cluster service's group, a VM service, an IPaddr2 or a script resource. */
export const serviceGroupId = (service: string) => `service-${service}`;
export const vmResourceId = (guest: string) => `vm-${guest}`;
export const ipResourceId = (service: string, n: number) => `ip-${service}-${n}`;
export const scriptResourceId = (script: string) => `script-${script}`;

export interface HostCibOptions {
    /** Fence device passwords by device name, rendered as `password`; a device with none gets none. */
    passwords: Record<string, string | undefined>;
}

// ---------------------------------------------------------------- the document model

interface Op {
    name: string;
    interval: string;
    timeout?: string;
    onFail?: string;
}

interface Primitive {
    kind: "primitive";
    id: string;
    class: string;
    provider?: string;
    type: string;
    params: [string, string][];
    meta: [string, string][];
    ops: Op[];
}

interface Group {
    kind: "group";
    id: string;
    meta: [string, string][];
    members: Primitive[];
}

type Constraint =
    | { kind: "location"; rsc: string; node: string; score: string }
    | { kind: "colocation"; rsc: string; withRsc: string; score: string }
    | { kind: "order"; first: string; then: string; mandatory: boolean };

interface CibModel {
    nodes: string[];
    properties: [string, string][];
    resources: (Primitive | Group)[];
    constraints: Constraint[];
    /** Per target node, its levels (index from 1), each a list of device ids. */
    topology: { target: string; levels: string[][] }[];
}

/** Unique XML ids: the first taker keeps a name, later ones get "-2", "-3", ... */
class IdSet {
    private readonly taken = new Set<string>();
    take(wanted: string): string {
        const base = /^[A-Za-z_]/.test(wanted) ? wanted : `_${wanted}`;
        let id = base;
        for (let i = 2; this.taken.has(id); i++) id = `${base}-${i}`;
        this.taken.add(id);
        return id;
    }
}

// ---------------------------------------------------------------- guest cluster

export function renderGuestCib(spec: LabSpec): string {
    const gc = spec.guestCluster;
    const nodes = gc.nodes;
    const resources: (Primitive | Group)[] = [];
    const constraints: Constraint[] = [];

    // ---- stonith: level 1 per node, then the extra devices
    const levelOne = new Map<string, string>();
    for (const node of nodes) {
        const { agent, ...attrs } = levelOneDeviceAttributes(spec, node);
        const id = levelOneDeviceName(gc.fencing.listener, node);
        levelOne.set(node, id);
        const params: [string, string][] = sorted(attrs);
        params.push(["pcmk_host_map", `${node}:${node}`]);
        const delay = delayOf(gc.fenceDelay, node);
        if (delay !== undefined) params.push(["pcmk_delay_base", delay]);
        resources.push(stonith(id, agent, params));
        constraints.push({ kind: "location", rsc: id, node, score: "-INFINITY" });
    }
    for (const d of gc.fenceDevices) {
        const map = new Map<string, string>();
        for (const l of gc.fenceLevels) for (const dev of l.devices) if (dev.device === d.name) for (const n of nodes) if (!map.has(n)) map.set(n, dev.ports[n] ?? n);
        const params: [string, string][] = sorted(d.params);
        if (map.size > 0) params.push(["pcmk_host_map", [...map].map(([n, dom]) => `${n}:${dom}`).join(";")]);
        resources.push(stonith(d.name, d.agent, params));
    }
    const topology =
        gc.fenceLevels.length === 0
            ? []
            : nodes.map((node) => ({ target: node, levels: [[levelOne.get(node)!], ...gc.fenceLevels.map((l) => l.devices.map((d) => d.device))] }));

    // ---- services
    const aa = antiAffinityPlacement(gc.antiAffinity, nodes);
    const domains = new Map(gc.failoverDomains.map((d) => [d.name, d]));
    for (const s of gc.services) {
        const id = serviceGroupId(s.name);
        const domain = aa.domains.get(s.name) ?? (s.failoverDomain !== undefined ? domains.get(s.failoverDomain) : undefined);
        const members: Primitive[] = [
            ...s.ips.map((ip, i) => {
                const [address, prefix] = ip.address.split("/");
                const params: [string, string][] = [["ip", address]];
                if (prefix !== undefined) params.push(["cidr_netmask", prefix]);
                return primitive(ipResourceId(s.name, i + 1), "ocf", "heartbeat", "IPaddr2", params, [], [monitorOp("10s", "20s", s.recovery)]);
            }),
            ...s.scripts.map((sc) => scriptPrimitive(sc, s.recovery)),
        ];
        resources.push({ kind: "group", id, meta: serviceMeta(s, domain), members });
        if (domain) constraints.push(...domainLocations(id, domain, nodes));
        if (s.depend !== undefined) constraints.push({ kind: "order", first: serviceGroupId(s.depend), then: id, mandatory: s.dependMode !== "soft" });
    }
    constraints.push(...apartColocations(gc.services.map((s) => ({ name: s.name, exclusive: s.exclusive })), gc.antiAffinity, serviceGroupId));

    return serializeCib({
        nodes,
        properties: clusterProperties(gc.fenceDaemon.cleanStart),
        resources,
        constraints,
        topology,
    });
}

// ---------------------------------------------------------------- host cluster

export function renderHostCib(spec: LabSpec, opts: HostCibOptions): string {
    const hc = spec.hostCluster;
    if (hc === undefined) throw new Error("renderHostCib: the lab has no hostCluster; render it only when spec.hostCluster is set");
    const nodes = spec.hosts.map((h) => h.name);
    const resources: (Primitive | Group)[] = [];
    const constraints: Constraint[] = [];

    // ---- stonith: every device, the delay on the favoured host's first level-1 device
    const delayed = hc.fenceDelay && hc.fenceDevices.filter((d) => d.host === hc.fenceDelay!.node).sort((a, b) => a.level - b.level)[0]?.name;
    for (const d of hc.fenceDevices) {
        const victim = d.params.port ?? d.params.plug;
        const params: [string, string][] = sorted(Object.fromEntries(Object.entries(d.params).filter(([k]) => k !== "port" && k !== "plug")));
        params.push(victim === undefined ? ["pcmk_host_list", d.host] : ["pcmk_host_map", `${d.host}:${victim}`]);
        const password = opts.passwords[d.name];
        if (password !== undefined) params.push(["password", password]);
        if (d.name === delayed) params.push(["pcmk_delay_base", delayOf(hc.fenceDelay, d.host)!]);
        resources.push(stonith(d.name, d.agent, params));
        constraints.push({ kind: "location", rsc: d.name, node: d.host, score: "-INFINITY" });
    }
    const multiLevel = hc.fenceDevices.some((d) => d.level > 1);
    const topology = multiLevel
        ? nodes.map((host) => {
              const own = hc.fenceDevices.filter((d) => d.host === host);
              const levels = [...new Set(own.map((d) => d.level))].sort((a, b) => a - b);
              return { target: host, levels: levels.map((l) => own.filter((d) => d.level === l).map((d) => d.name)) };
          })
        : [];

    // ---- VM services
    const aa = antiAffinityPlacement(hc.antiAffinity, nodes);
    const domains = new Map(hc.failoverDomains.map((d) => [d.name, { ...d, members: d.members.map((m) => ({ node: m.host, priority: m.priority })) }]));
    for (const s of hc.vmServices) {
        const id = vmResourceId(s.guest);
        const domain = aa.domains.get(s.guest) ?? (s.failoverDomain !== undefined ? domains.get(s.failoverDomain) : undefined);
        const params: [string, string][] = [["config", s.xmlFile ?? domainXmlPath(spec.xmlDir.path, s.guest)]];
        if (s.hypervisorUri !== undefined) params.push(["hypervisor", s.hypervisorUri]);
        else if (s.hypervisor === "qemu") params.push(["hypervisor", "qemu:///system"]);
        const live = s.migrate === "live";
        if (live) {
            if (s.migrationUri !== undefined) params.push(["remoteuri", s.migrationUri.replace("%s", "%n")]);
            else params.push(["migration_transport", "ssh"]);
            if (s.tunnelled === true) params.push(["migrate_options", "--p2p --tunnelled"]);
        }
        if (s.snapshot !== undefined) params.push(["snapshot", s.snapshot]);
        if (s.statusProgram !== undefined) params.push(["monitor_scripts", s.statusProgram]);
        const ops: Op[] = [
            { name: "start", interval: "0s", timeout: "90s" },
            { name: "stop", interval: "0s", timeout: "90s" },
            monitorOp("10s", "30s", s.recovery),
        ];
        if (live) ops.push({ name: "migrate_to", interval: "0s", timeout: "120s" }, { name: "migrate_from", interval: "0s", timeout: "120s" });
        const meta: [string, string][] = [["allow-migrate", live ? "true" : "false"], ...serviceMeta(s, domain)];
        resources.push(primitive(id, "ocf", "heartbeat", "VirtualDomain", params, meta, ops));
        if (domain) constraints.push(...domainLocations(id, domain, nodes));
        if (s.depend !== undefined) constraints.push({ kind: "order", first: vmResourceId(s.depend), then: id, mandatory: s.dependMode !== "soft" });
    }
    constraints.push(...apartColocations(hc.vmServices.map((s) => ({ name: s.guest, exclusive: s.exclusive })), hc.antiAffinity, vmResourceId));

    return serializeCib({ nodes, properties: clusterProperties(hc.fenceDaemon.cleanStart), resources, constraints, topology });
}

// ---------------------------------------------------------------- mapping helpers

function delayOf(delay: FenceDelaySpec | undefined, node: string): string | undefined {
    return delay !== undefined && delay.node === node && delay.seconds > 0 ? `${delay.seconds}s` : undefined;
}

function clusterProperties(cleanStart: boolean | undefined): [string, string][] {
    const props: [string, string][] = [["stonith-enabled", "true"]];
    if (cleanStart !== undefined) props.push(["startup-fencing", cleanStart ? "false" : "true"]);
    return props;
}

function stonith(id: string, agent: string, params: [string, string][]): Primitive {
    return primitive(id, "stonith", undefined, agent, params, [], [{ name: "monitor", interval: "60s", timeout: "20s" }]);
}

function primitive(id: string, cls: string, provider: string | undefined, type: string, params: [string, string][], meta: [string, string][], ops: Op[]): Primitive {
    return { kind: "primitive", id, class: cls, ...(provider !== undefined ? { provider } : {}), type, params, meta, ops };
}

function monitorOp(interval: string, timeout: string, recovery: Recovery): Op {
    return { name: "monitor", interval, timeout, ...(recovery === "disable" ? { onFail: "stop" } : {}) };
}

function scriptPrimitive(sc: ServiceScriptSpec, recovery: Recovery): Primitive {
    const agent = scriptAgent(sc.file);
    if (agent === undefined) {
        throw new Error(`renderGuestCib: script ${sc.name} (${sc.file}) is neither an init script in /etc/init.d nor a systemd unit file; validation refuses it with stack pacemaker`);
    }
    return primitive(scriptResourceId(sc.name), agent.class, agent.provider, agent.type, [], [], [monitorOp("30s", "100s", recovery)]);
}

/** The meta attributes of a service or VM service: start, recovery and failback (see the header). */
function serviceMeta(
    s: { autostart: boolean; recovery: Recovery; maxRestarts: number; restartExpireTime: number },
    domain: Pick<FailoverDomain, "nofailback"> | undefined,
): [string, string][] {
    const meta: [string, string][] = [];
    if (!s.autostart) meta.push(["target-role", "Stopped"]);
    if (s.recovery === "relocate") meta.push(["migration-threshold", "1"]);
    else if (s.recovery === "restart" && s.maxRestarts > 0) meta.push(["migration-threshold", String(s.maxRestarts + 1)]);
    if (s.restartExpireTime > 0) meta.push(["failure-timeout", `${s.restartExpireTime}s`]);
    if (domain?.nofailback) meta.push(["resource-stickiness", "INFINITY"]);
    return meta;
}

/** Each member's rotated failover domain (the same as cluster.conf's), by member name. */
function antiAffinityPlacement(groups: AntiAffinitySpec[], nodes: string[]): { domains: Map<string, FailoverDomain> } {
    return { domains: new Map(groups.flatMap((g) => antiAffinityDomains(g, nodes).map((x) => [x.member, x.domain] as const))) };
}

function domainLocations(rsc: string, domain: FailoverDomain, nodes: string[]): Constraint[] {
    const members = new Map(domain.members.map((m) => [m.node, m.priority]));
    const out: Constraint[] = domain.members.map((m) => ({ kind: "location", rsc, node: m.node, score: String(memberScore(domain, m.priority)) }));
    if (domain.restricted) for (const n of nodes) if (!members.has(n)) out.push({ kind: "location", rsc, node: n, score: "-INFINITY" });
    return out;
}

/** -INFINITY colocations: every pair of an anti-affinity group, and every exclusive service with every other service. */
function apartColocations(services: { name: string; exclusive: boolean }[], groups: AntiAffinitySpec[], idOf: (name: string) => string): Constraint[] {
    const pairs = new Set<string>();
    const out: Constraint[] = [];
    const add = (a: string, b: string) => {
        const key = [a, b].sort().join("\u0000");
        if (a === b || pairs.has(key)) return;
        pairs.add(key);
        out.push({ kind: "colocation", rsc: idOf(b), withRsc: idOf(a), score: "-INFINITY" });
    };
    for (const g of groups) g.services.forEach((b, j) => g.services.slice(0, j).forEach((a) => add(a, b)));
    services.forEach((s, j) => {
        if (!s.exclusive) return;
        services.forEach((o, i) => (i < j ? add(o.name, s.name) : add(s.name, o.name)));
    });
    return out;
}

function sorted(params: Record<string, string>): [string, string][] {
    return Object.keys(params)
        .sort()
        .map((k) => [k, params[k]]);
}

// ---------------------------------------------------------------- serialization

function serializeCib(m: CibModel): string {
    const ids = new IdSet();
    const doc = create({ version: "1.0" });
    const cib = doc.ele("cib", { "validate-with": CIB_VALIDATE_WITH, admin_epoch: "0", epoch: "0", num_updates: "0" });
    const conf = cib.ele("configuration");
    // resource ids first, so the names the docs and constraints use are kept
    const rscId = new Map<string, string>();
    for (const r of m.resources) {
        rscId.set(r.id, ids.take(r.id));
        if (r.kind === "group") for (const p of r.members) rscId.set(p.id, ids.take(p.id));
    }
    const idOf = (rsc: string) => {
        const id = rscId.get(rsc);
        if (id === undefined) throw new Error(`pacemaker CIB: a constraint names ${JSON.stringify(rsc)}, which is not a resource`);
        return id;
    };

    const crm = conf.ele("crm_config");
    nvset(crm, "cluster_property_set", ids.take("cib-bootstrap-options"), m.properties, ids);

    const nodes = conf.ele("nodes");
    m.nodes.forEach((n, i) => nodes.ele("node", { id: String(i + 1), uname: n }));

    resourcesElement(conf, m, idOf, ids);
    constraintsElement(conf, m, idOf, ids);
    topologyElement(conf, m, idOf, ids);

    const defaults = conf.ele("rsc_defaults");
    nvset(defaults, "meta_attributes", ids.take("rsc-options"), [["resource-stickiness", String(DEFAULT_STICKINESS)]], ids);

    cib.ele("status");
    return `${doc.end({ prettyPrint: true, indent: "  " })}\n`;
}

/** `<resources>`: primitives and groups (their members, then their meta attributes). */
function resourcesElement(conf: XMLBuilder, m: CibModel, idOf: (rsc: string) => string, ids: IdSet): void {
    const resources = conf.ele("resources");
    for (const r of m.resources) {
        if (r.kind === "primitive") primitiveElement(resources, r, idOf(r.id), ids);
        else {
            const gid = idOf(r.id);
            const g = resources.ele("group", { id: gid });
            // group children come first in the schema; meta_attributes after them
            for (const p of r.members) primitiveElement(g, p, idOf(p.id), ids);
            if (r.meta.length > 0) nvset(g, "meta_attributes", ids.take(`${gid}-meta_attributes`), r.meta, ids);
        }
    }
}

/** `<constraints>`: location, colocation and order, in the model's order. */
function constraintsElement(conf: XMLBuilder, m: CibModel, idOf: (rsc: string) => string, ids: IdSet): void {
    const cons = conf.ele("constraints");
    for (const c of m.constraints) {
        switch (c.kind) {
            case "location":
                cons.ele("rsc_location", { id: ids.take(`location-${idOf(c.rsc)}-${c.node}`), rsc: idOf(c.rsc), node: c.node, score: c.score });
                break;
            case "colocation":
                cons.ele("rsc_colocation", { id: ids.take(`colocation-${idOf(c.rsc)}-${idOf(c.withRsc)}`), rsc: idOf(c.rsc), "with-rsc": idOf(c.withRsc), score: c.score });
                break;
            case "order":
                cons.ele("rsc_order", { id: ids.take(`order-${idOf(c.first)}-${idOf(c.then)}`), first: idOf(c.first), then: idOf(c.then), kind: c.mandatory ? "Mandatory" : "Optional" });
                break;
            default: {
                const never: never = c;
                throw new Error(`unknown constraint ${JSON.stringify(never)}`);
            }
        }
    }
}

/** `<fencing-topology>`, when a node has fence levels. */
function topologyElement(conf: XMLBuilder, m: CibModel, idOf: (rsc: string) => string, ids: IdSet): void {
    if (m.topology.length > 0) {
        const topo = conf.ele("fencing-topology");
        for (const t of m.topology) {
            t.levels.forEach((devices, i) => {
                topo.ele("fencing-level", { id: ids.take(`fl-${t.target}-${i + 1}`), target: t.target, index: String(i + 1), devices: devices.map(idOf).join(",") });
            });
        }
    }
}

function primitiveElement(parent: XMLBuilder, p: Primitive, id: string, ids: IdSet): void {
    const attrs: Record<string, string> = { id, class: p.class };
    if (p.provider !== undefined) attrs.provider = p.provider;
    attrs.type = p.type;
    const el = parent.ele("primitive", attrs);
    if (p.params.length > 0) nvset(el, "instance_attributes", ids.take(`${id}-instance_attributes`), p.params, ids);
    if (p.meta.length > 0) nvset(el, "meta_attributes", ids.take(`${id}-meta_attributes`), p.meta, ids);
    if (p.ops.length > 0) {
        const ops = el.ele("operations");
        for (const op of p.ops) {
            const a: Record<string, string> = { id: ids.take(`${id}-${op.name}-interval-${op.interval}`), name: op.name, interval: op.interval };
            if (op.timeout !== undefined) a.timeout = op.timeout;
            if (op.onFail !== undefined) a["on-fail"] = op.onFail;
            ops.ele("op", a);
        }
    }
}

function nvset(parent: XMLBuilder, element: string, id: string, pairs: [string, string][], ids: IdSet): void {
    const set = parent.ele(element, { id });
    for (const [name, value] of pairs) set.ele("nvpair", { id: ids.take(`${id}-${name}`), name, value });
}
