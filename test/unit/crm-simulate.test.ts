/**
 * crm_simulate (Pacemaker's scheduler, pacemaker-cli-utils) run over the rendered CIBs: for a table of scenarios (two
 * and three nodes, services with failover preferences, anti-affinity groups, fence levels, the host cluster's VM
 * services), the cluster starts with every node online (crm_simulate --node-up: the status is built here, never by the
 * renderer), then a node fails (--node-fail), then it comes back (--node-up). After the failure the scheduler must
 * fence that node, the node's own stonith device (the fence_xvm/fence_virt resource whose pcmk_host_map names it,
 * level 1 of its topology) must run on a surviving node, which is where the fencer takes it from, and the node's
 * services must move to the node the failover domains say (or stop, where every other node is forbidden). In every
 * state, no two members of an anti-affinity group (or an exclusive service and another one) share a node.
 *
 * crm_simulate decides that a fence happens, not which device the fencer picks: the device is shown by the
 * configuration (pcmk_host_map, topology level 1) together with the scheduler's placement of that device.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { renderGuestCib, renderHostCib } from "../../components/render/pacemaker-cib";
import type { LabSpec } from "../../components/spec";
import { all, crmSimulateAvailable, nvpairs, parseXml, simulate, type Simulation, type X } from "../helpers/pacemaker";
import { pacemakerSpec, type Raw } from "../helpers/pacemaker-stacks";
import { need } from "../helpers/tools";

beforeEach((ctx) => need(ctx, "crm_simulate (Debian: pacemaker-cli-utils)", crmSimulateAvailable()));

interface Model {
    cib: X;
    /** Top-level resource id (group or primitive) → its primitives. */
    members: Map<string, string[]>;
    /** Pairs that must never share a node (colocation -INFINITY). */
    apart: [string, string][];
}

function modelOf(text: string): Model {
    const cib = parseXml(text);
    const resources = all(cib, "resources")[0];
    const members = new Map<string, string[]>();
    for (const r of resources.children) {
        if (r.name === "group") members.set(r.attrs.id, r.children.filter((c) => c.name === "primitive").map((c) => c.attrs.id));
        else if (r.name === "primitive") members.set(r.attrs.id, [r.attrs.id]);
    }
    const apart = all(cib, "rsc_colocation")
        .filter((c) => c.attrs.score === "-INFINITY")
        .map((c) => [c.attrs.rsc, c.attrs["with-rsc"]] as [string, string]);
    return { cib, members, apart };
}

/** Where a top-level resource runs: the nodes of its primitives (a group runs where all its members run). */
function where(model: Model, sim: Simulation, rsc: string): string[] {
    const ids = model.members.get(rsc);
    if (ids === undefined) throw new Error(`no resource ${rsc}`);
    return [...new Set(ids.flatMap((id) => sim.placement[id] ?? []))].sort();
}

function expectApart(model: Model, sim: Simulation, when: string): void {
    for (const [a, b] of model.apart) {
        const shared = where(model, sim, a).filter((n) => where(model, sim, b).includes(n));
        expect(shared, `${when}: ${a} and ${b} must never share a node`).toEqual([]);
    }
}

/** The stonith resource that fences `node` first: topology level 1, else the device whose host map/list names it. */
function levelOneDevice(model: Model, node: string): X {
    const level = all(model.cib, "fencing-level").find((l) => l.attrs.target === node && l.attrs.index === "1");
    const stonith = all(model.cib, "primitive").filter((p) => p.attrs.class === "stonith");
    if (level !== undefined) return stonith.find((p) => p.attrs.id === level.attrs.devices.split(",")[0])!;
    const found = stonith.filter((p) => {
        const params = nvpairs(p);
        return (params.pcmk_host_map ?? "").split(";").some((e) => e.split(":")[0] === node) || (params.pcmk_host_list ?? "").split(/[ ,]/).includes(node);
    });
    expect(found, `one stonith device fences ${node}`).toHaveLength(1);
    return found[0];
}

interface Scenario {
    name: string;
    spec: () => LabSpec;
    cluster: "guest" | "host";
    /** The node that fails. */
    fail: string;
    /** The agent of the failed node's level-1 device. */
    agent: string;
    /** Where each named resource runs: before the failure, after it, after the node is back. */
    expect: Record<string, { before: string[]; after: string[]; back?: string[] }>;
}

/** Two services that must never share a node, on the lab's two nodes. */
const twoNodePair = (r: Raw) => {
    r.guestCluster.services = [
        { name: "web1", ips: [{ address: "10.99.0.51/24" }] },
        { name: "web2", ips: [{ address: "10.99.0.52/24" }] },
    ];
    r.guestCluster.antiAffinity = [{ name: "web", services: ["web1", "web2"], failback: true }];
};

const SCENARIOS: Scenario[] = [
    {
        name: "two nodes, a service without preferences: node2 fails, is fenced through xvm-node2, the service moves to node1",
        spec: () =>
            pacemakerSpec("lab", (r: Raw) => {
                r.guestCluster.services = [{ name: "web", ips: [{ address: "10.99.0.50/24" }] }];
                r.guestCluster.failoverDomains = [{ name: "on2", ordered: true, members: [{ node: "node2", priority: 1 }, { node: "node1", priority: 2 }] }];
                r.guestCluster.services[0].failoverDomain = "on2";
            }),
        cluster: "guest",
        fail: "node2",
        agent: "stonith:fence_xvm",
        // ordered, fails back when node2 returns (no nofailback)
        expect: { "service-web": { before: ["node2"], after: ["node1"], back: ["node2"] } },
    },
    {
        name: "two nodes, tcp listener: fenced through fence_virt; nofailback keeps the service where it moved",
        spec: () =>
            pacemakerSpec("lab", (r: Raw) => {
                r.guestCluster.fencing.listener = "tcp";
                r.guestCluster.failoverDomains = [{ name: "on1", ordered: true, nofailback: true, members: [{ node: "node1", priority: 1 }, { node: "node2", priority: 2 }] }];
                r.guestCluster.services = [{ name: "db", failoverDomain: "on1", scripts: [{ name: "pg", file: "/etc/init.d/postgresql" }] }];
            }),
        cluster: "guest",
        fail: "node1",
        agent: "stonith:fence_virt",
        expect: { "service-db": { before: ["node1"], after: ["node2"], back: ["node2"] } },
    },
    {
        name: "two nodes, an anti-affinity pair: node2 fails, its member stops rather than join its partner on node1",
        spec: () => pacemakerSpec("lab", twoNodePair),
        cluster: "guest",
        fail: "node2",
        agent: "stonith:fence_xvm",
        expect: {
            "service-web1": { before: ["node1"], after: ["node1"], back: ["node1"] },
            "service-web2": { before: ["node2"], after: [], back: ["node2"] },
        },
    },
    {
        name: "two nodes, an anti-affinity pair: node1 fails, the earlier member takes node2 and the later one stops (Pacemaker places a colocation's primary first)",
        spec: () => pacemakerSpec("lab", twoNodePair),
        cluster: "guest",
        fail: "node1",
        agent: "stonith:fence_xvm",
        expect: {
            "service-web1": { before: ["node1"], after: ["node2"] },
            "service-web2": { before: ["node2"], after: [] },
        },
    },
    {
        name: "three nodes, restricted ordered domain: the service moves to the next member, never to the node outside the domain",
        spec: () =>
            pacemakerSpec("dev", (r: Raw) => {
                r.guestCluster.failoverDomains = [
                    { name: "front", ordered: true, restricted: true, members: [{ node: "gnode2", priority: 1 }, { node: "gnode3", priority: 2 }] },
                ];
                r.guestCluster.services = [
                    { name: "web", failoverDomain: "front", ips: [{ address: "192.0.2.50/24" }], scripts: [{ name: "httpd", file: "/etc/init.d/httpd" }] },
                    { name: "batch", exclusive: true, scripts: [{ name: "batchd", file: "/usr/lib/systemd/system/batchd.service" }] },
                ];
            }),
        cluster: "guest",
        fail: "gnode2",
        agent: "stonith:fence_xvm",
        expect: {
            "service-web": { before: ["gnode2"], after: ["gnode3"], back: ["gnode2"] },
        },
    },
    {
        name: "three nodes, anti-affinity groups of three and of two: each member on its own node, in every state; gnode2 fails: its members move to a node free of their group's earlier members",
        spec: () =>
            pacemakerSpec("dev", (r: Raw) => {
                r.guestCluster.services = [
                    { name: "a1", ips: [{ address: "192.0.2.61/24" }] },
                    { name: "a2", ips: [{ address: "192.0.2.62/24" }] },
                    { name: "a3", ips: [{ address: "192.0.2.63/24" }] },
                    { name: "b1", scripts: [{ name: "b1d", file: "/etc/init.d/b1d" }] },
                    { name: "b2", scripts: [{ name: "b2d", file: "/etc/init.d/b2d" }] },
                ];
                r.guestCluster.antiAffinity = [
                    { name: "three", services: ["a1", "a2", "a3"] },
                    { name: "two", services: ["b1", "b2"] },
                ];
            }),
        cluster: "guest",
        fail: "gnode2",
        agent: "stonith:fence_xvm",
        expect: {
            "service-a1": { before: ["gnode1"], after: ["gnode1"], back: ["gnode1"] },
            // a2 takes gnode3 (its next node) and a3, placed after a1 and a2, has no node left until gnode2 returns
            "service-a2": { before: ["gnode2"], after: ["gnode3"], back: ["gnode3"] },
            "service-a3": { before: ["gnode3"], after: [], back: ["gnode2"] },
            "service-b1": { before: ["gnode1"], after: ["gnode1"], back: ["gnode1"] },
            // no failback: b2 stays on gnode3 when gnode2 returns
            "service-b2": { before: ["gnode2"], after: ["gnode3"], back: ["gnode3"] },
        },
    },
    {
        name: "three nodes, fence levels: the failed node's level 1 is its own fence_xvm device, running on a survivor",
        spec: () =>
            pacemakerSpec("dev", (r: Raw) => {
                r.guestCluster.fenceDevices = [{ name: "xvm-backup", agent: "fence_xvm", params: { timeout: "30" } }];
                r.guestCluster.fenceLevels = [{ devices: [{ device: "xvm-backup" }] }];
                r.guestCluster.services = [{ name: "web", ips: [{ address: "192.0.2.50/24" }] }];
                r.guestCluster.failoverDomains = [{ name: "d", ordered: true, members: [{ node: "gnode3", priority: 1 }, { node: "gnode1", priority: 2 }] }];
                r.guestCluster.services[0].failoverDomain = "d";
            }),
        cluster: "guest",
        fail: "gnode3",
        agent: "stonith:fence_xvm",
        expect: { "service-web": { before: ["gnode3"], after: ["gnode1"], back: ["gnode3"] } },
    },
    {
        name: "host cluster: kvm1 fails, is fenced through its IPMI device running on kvm2, its VM moves to kvm2 and stays (nofailback)",
        spec: () => pacemakerSpec("dev"),
        cluster: "host",
        fail: "kvm1",
        agent: "stonith:fence_ipmilan",
        expect: {
            "vm-gnode1": { before: ["kvm1"], after: ["kvm2"], back: ["kvm2"] },
            "vm-gnode2": { before: ["kvm2"], after: ["kvm2"], back: ["kvm2"] },
        },
    },
    {
        name: "host cluster, anti-affinity of two VM services on three hosts: the failed host's VM goes to the free host",
        spec: () =>
            pacemakerSpec("dev", (r: Raw) => {
                r.hosts.push({ name: "kvm3", ssh: { address: "192.0.2.13" }, bridge: { name: "br0", uplink: "eth0", address: "192.0.2.13/24" } });
                r.hostCluster.fenceDevices.push({ name: "ipmi-kvm3", agent: "fence_ipmilan", host: "kvm3", params: { ipaddr: "192.0.2.103", login: "admin" } });
                r.hostCluster.vmServices.forEach((s: Raw) => delete s.failoverDomain);
                r.hostCluster.antiAffinity = [{ name: "pair", services: ["gnode1", "gnode2"] }];
            }),
        cluster: "host",
        fail: "kvm2",
        agent: "stonith:fence_ipmilan",
        expect: {
            "vm-gnode1": { before: ["kvm1"], after: ["kvm1"], back: ["kvm1"] },
            "vm-gnode2": { before: ["kvm2"], after: ["kvm3"], back: ["kvm3"] },
        },
    },
];

describe("crm_simulate: a node failure is fenced through the node's own device, services move as the domains say, anti-affinity holds", () => {
    it.each(SCENARIOS.map((s) => [s.name, s] as const))("%s", (_name, s) => {
        const spec = s.spec();
        const text = s.cluster === "guest" ? renderGuestCib(spec) : renderHostCib(spec, { passwords: {} });
        const model = modelOf(text);
        const nodes = all(model.cib, "node").filter((n) => n.attrs.uname !== undefined).map((n) => n.attrs.uname);
        expect(nodes).toContain(s.fail);

        // ---- every node comes up, with quorum: the initial placement
        const up = simulate(text, ["--quorum", "1", ...nodes.flatMap((n) => ["--node-up", n])]);
        expect(up.fenced, up.out).toEqual([]);
        for (const [rsc, e] of Object.entries(s.expect)) expect(where(model, up, rsc), `${rsc} at start`).toEqual(e.before);
        expectApart(model, up, "at start");

        // ---- the node fails
        const failed = simulate(up.cibAfter, ["--node-fail", s.fail]);
        expect(failed.fenced, failed.out).toEqual([s.fail]);
        const device = levelOneDevice(model, s.fail);
        expect(`${device.attrs.class}:${device.attrs.type}`).toBe(s.agent);
        const survivors = nodes.filter((n) => n !== s.fail);
        const runsOn = failed.placement[device.attrs.id];
        expect(runsOn, `${device.attrs.id} (fences ${s.fail}) runs on a surviving node`).toHaveLength(1);
        expect(survivors).toContain(runsOn[0]);
        for (const [rsc, e] of Object.entries(s.expect)) expect(where(model, failed, rsc), `${rsc} after ${s.fail} failed`).toEqual(e.after);
        for (const rsc of model.members.keys()) expect(where(model, failed, rsc), `${rsc} is not on the failed node`).not.toContain(s.fail);
        expectApart(model, failed, `after ${s.fail} failed`);

        // ---- the node returns
        const back = simulate(failed.cibAfter, ["--node-up", s.fail]);
        expect(back.fenced).toEqual([]);
        for (const [rsc, e] of Object.entries(s.expect)) if (e.back !== undefined) expect(where(model, back, rsc), `${rsc} after ${s.fail} returned`).toEqual(e.back);
        expectApart(model, back, `after ${s.fail} returned`);
    });
});
