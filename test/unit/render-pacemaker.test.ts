/**
 * The Pacemaker stack's files (`stack: pacemaker`): corosync.conf and the CIB for the guest cluster and the host
 * cluster, from the same lab model as cluster.conf. What each file means (read back: corosync.conf with a strict reader,
 * the CIB with an XML parser), that they are deterministic, that corosync's own parser (`corosync -t`) takes every
 * corosync.conf as each node would, that `crm_verify` accepts every CIB (with the status of a running cluster, built
 * here), that every parameter given to a fence or resource agent is one the installed agent declares, the
 * pacemaker-only validation rules, and the render command's pacemaker/ files.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ConfigError, validateLabConfig } from "../../components/config";
import { renderGuestCorosyncConf, renderHostCorosyncConf } from "../../components/render/corosync-conf";
import { memberScore, renderGuestCib, renderHostCib } from "../../components/render/pacemaker-cib";
import { renderLab } from "../../components/render/lab-files";
import type { LabSpec } from "../../components/spec";
import { pacemakerRaw, pacemakerSpec, rawStack, specOf, type Raw } from "../helpers/pacemaker-stacks";
import {
    all,
    corosyncAvailable,
    corosyncCheck,
    crmVerify,
    crmVerifyAvailable,
    liveCib,
    nvpairs,
    parseCorosyncConf,
    parseXml,
    type CorosyncSection,
    type X,
} from "../helpers/pacemaker";
import { hasTool, need } from "../helpers/tools";

const ROOT = resolve(__dirname, "../..");

function problemsOf(stack: "lab" | "dev", raw: Raw): { path: string; message: string }[] {
    try {
        specOf(stack, raw);
    } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
    }
    return [];
}

const resources = (cib: X) => all(cib, "primitive");
const primitive = (cib: X, id: string) => {
    const found = resources(cib).filter((p) => p.attrs.id === id);
    expect(found, `exactly one primitive ${id}`).toHaveLength(1);
    return found[0];
};
const locations = (cib: X, rsc: string) =>
    Object.fromEntries(all(cib, "rsc_location").filter((l) => l.attrs.rsc === rsc).map((l) => [l.attrs.node, l.attrs.score]));
const colocations = (cib: X) => all(cib, "rsc_colocation").map((c) => [c.attrs.rsc, c.attrs["with-rsc"], c.attrs.score]);
const topology = (cib: X) => all(cib, "fencing-level").map((l) => [l.attrs.target, l.attrs.index, l.attrs.devices]);
const groupMembers = (cib: X, id: string) => all(cib, "group").find((g) => g.attrs.id === id)!.children.filter((c) => c.name === "primitive");

function nodesOf(conf: CorosyncSection): Record<string, string>[] {
    return ((conf.nodelist as CorosyncSection[])[0].node as CorosyncSection[]).map((n) => n as Record<string, string>);
}

// ---------------------------------------------------------------- the scenarios every judge sees

const THREE_NODE_SERVICES = (r: Raw) => {
    r.guestCluster.failoverDomains = [
        { name: "front", ordered: true, restricted: true, nofailback: true, members: [{ node: "gnode2", priority: 1 }, { node: "gnode1", priority: 2 }] },
        { name: "any", members: [{ node: "gnode1" }, { node: "gnode3" }] },
    ];
    r.guestCluster.services = [
        { name: "web", failoverDomain: "front", recovery: "relocate", ips: [{ address: "192.0.2.50/24" }], scripts: [{ name: "httpd", file: "/etc/init.d/httpd" }] },
        { name: "db", autostart: false, exclusive: true, recovery: "disable", depend: "web", dependMode: "soft", scripts: [{ name: "postgresql", file: "/usr/lib/systemd/system/postgresql.service" }] },
        { name: "cache", failoverDomain: "any", maxRestarts: 3, restartExpireTime: 600, depend: "web", ips: [{ address: "192.0.2.51" }], scripts: [{ name: "dummy", file: "/usr/lib/ocf/resource.d/pacemaker/Dummy" }] },
    ];
};
const ANTI_AFFINITY = (r: Raw) => {
    r.guestCluster.services = [
        { name: "web1", ips: [{ address: "192.0.2.61/24" }] },
        { name: "web2", ips: [{ address: "192.0.2.62/24" }] },
        { name: "web3", ips: [{ address: "192.0.2.63/24" }] },
        { name: "lb1", scripts: [{ name: "haproxy1", file: "/etc/init.d/haproxy" }] },
        { name: "lb2", scripts: [{ name: "haproxy2", file: "/etc/init.d/haproxy" }] },
    ];
    r.guestCluster.antiAffinity = [
        { name: "web", services: ["web1", "web2", "web3"] },
        { name: "lb", services: ["lb1", "lb2"], failback: true },
    ];
    r.hostCluster.antiAffinity = [{ name: "pair", services: ["gnode1", "gnode2"] }];
    r.hostCluster.vmServices.forEach((s: Raw) => delete s.failoverDomain);
};
const FENCE_LEVELS = (r: Raw) => {
    r.guestCluster.fenceDevices = [
        { name: "xvm-backup", agent: "fence_xvm", params: { timeout: "30", retrans: "20" } },
        { name: "xvm-third", agent: "fence_xvm", params: { timeout: "20" } },
    ];
    r.guestCluster.fenceLevels = [{ devices: [{ device: "xvm-backup" }] }, { devices: [{ device: "xvm-third", ports: { gnode3: "gnode3-alias" } }] }];
    r.hosts.push({ name: "kvm3", ssh: { address: "192.0.2.13" }, bridge: { name: "br0", uplink: "eth0", address: "192.0.2.13/24" } });
    r.hostCluster.fenceDevices.push(
        { name: "ipmi-kvm3", agent: "fence_ipmilan", host: "kvm3", params: { ipaddr: "192.0.2.103", login: "admin" } },
        { name: "pdu-kvm1", agent: "fence_ipmilan", host: "kvm1", level: 2, params: { ipaddr: "192.0.2.201", method: "cycle" } },
    );
    r.hostCluster.fenceDelay = { node: "kvm2", seconds: 10 };
};

/** Every scenario: a stack, an edit. crm_verify and corosync judge each one's files. */
const PACEMAKER_SCENARIOS: [string, () => LabSpec][] = [
    ["lab (two nodes, multicast)", () => pacemakerSpec("lab")],
    ["lab, tcp listener", () => pacemakerSpec("lab", (r) => (r.guestCluster.fencing.listener = "tcp"))],
    ["lab, vsock listener", () => pacemakerSpec("lab", (r) => (r.guestCluster.fencing.listener = "vsock"))],
    ["lab, fence delay on node2, clean start, token", () => pacemakerSpec("lab", (r) => {
        r.guestCluster.fenceDelay = { node: "node2", seconds: 25 };
        r.guestCluster.fenceDaemon = { cleanStart: true };
        r.guestCluster.totem = { token: 5000 };
    })],
    ["dev (three guests, two hosts with VM services)", () => pacemakerSpec("dev")],
    ["dev, services with failover domains, depend, exclusive", () => pacemakerSpec("dev", THREE_NODE_SERVICES)],
    ["dev, anti-affinity groups", () => pacemakerSpec("dev", ANTI_AFFINITY)],
    ["dev, fence levels, three hosts", () => pacemakerSpec("dev", FENCE_LEVELS)],
    ["dev, VM services: pause, URIs, snapshot, status program", () => pacemakerSpec("dev", (r) => {
        Object.assign(r.hostCluster.vmServices[0], { migrate: "pause", hypervisor: "qemu", snapshot: "/srv/snap", autostart: false });
        Object.assign(r.hostCluster.vmServices[1], { migrationUri: "qemu+tcp://%s/system", tunnelled: true, statusProgram: "/usr/local/bin/check web", depend: "gnode1" });
    })],
];

// ---------------------------------------------------------------- corosync.conf

describe("corosync.conf: what it says", () => {
    it("lab: corosync 3 over knet, the cluster name, one node per guest (name = domain name, nodeid, ring0 address), two_node", () => {
        const text = renderGuestCorosyncConf(pacemakerSpec("lab"));
        const conf = parseCorosyncConf(text);
        const totem = (conf.totem as CorosyncSection[])[0];
        expect(totem).toEqual({ version: "2", cluster_name: "labcluster", transport: "knet", crypto_cipher: "aes256", crypto_hash: "sha256" });
        expect(nodesOf(conf)).toEqual([
            { name: "node1", nodeid: "1", ring0_addr: "10.99.0.11" },
            { name: "node2", nodeid: "2", ring0_addr: "10.99.0.12" },
        ]);
        expect((conf.quorum as CorosyncSection[])[0]).toEqual({ provider: "corosync_votequorum", two_node: "1" });
        // corosync refuses `node { name: … }` on one line: every opening brace ends its line
        for (const line of text.split("\n")) if (line.includes("{")) expect(line).toMatch(/^\s*[a-z_]+ \{$/);
    });

    it("dev: three guest nodes at their addresses, no two_node; the host cluster's nodes are the hosts at their SSH addresses", () => {
        const spec = pacemakerSpec("dev", (r) => (r.guestCluster.totem = { token: 8000 }));
        const guest = parseCorosyncConf(renderGuestCorosyncConf(spec));
        expect(nodesOf(guest).map((n) => [n.name, n.nodeid, n.ring0_addr])).toEqual([
            ["gnode1", "1", "192.0.2.21"],
            ["gnode2", "2", "192.0.2.22"],
            ["gnode3", "3", "192.0.2.23"],
        ]);
        expect((guest.quorum as CorosyncSection[])[0]).toEqual({ provider: "corosync_votequorum" });
        expect((guest.totem as CorosyncSection[])[0].token).toBe("8000");
        const host = parseCorosyncConf(renderHostCorosyncConf(spec));
        expect((host.totem as CorosyncSection[])[0].cluster_name).toBe("devhosts");
        expect(nodesOf(host)).toEqual([
            { name: "kvm1", nodeid: "1", ring0_addr: "192.0.2.11" },
            { name: "kvm2", nodeid: "2", ring0_addr: "192.0.2.12" },
        ]);
        expect((host.quorum as CorosyncSection[])[0].two_node).toBe("1");
    });

    it("is deterministic", () => {
        expect(renderGuestCorosyncConf(pacemakerSpec("dev"))).toBe(renderGuestCorosyncConf(pacemakerSpec("dev")));
        expect(renderHostCorosyncConf(pacemakerSpec("dev"))).toBe(renderHostCorosyncConf(pacemakerSpec("dev")));
    });
});

describe("corosync -t (corosync's own parser) accepts every corosync.conf, as each node reads it", () => {
    beforeEach((ctx) => need(ctx, "corosync (Debian: corosync), unshare and ip, as root", corosyncAvailable()));

    it("refuses a broken file (the judge can say no)", () => {
        const text = renderGuestCorosyncConf(pacemakerSpec("lab")).replace("    node {\n        name: node1", "    node { name: node1");
        const r = corosyncCheck(text, "10.99.0.11");
        expect(r.ok, r.out).toBe(false);
        expect(r.out).toMatch(/Extra characters after opening bracket/);
    });

    it.each(PACEMAKER_SCENARIOS)("%s", (_name, make) => {
        const spec = make();
        const files: [string, { name: string; ring0_addr: string }[]][] = [];
        const guest = renderGuestCorosyncConf(spec);
        files.push([guest, nodesOf(parseCorosyncConf(guest)) as { name: string; ring0_addr: string }[]]);
        if (spec.hostCluster) {
            const host = renderHostCorosyncConf(spec);
            files.push([host, nodesOf(parseCorosyncConf(host)) as { name: string; ring0_addr: string }[]]);
        }
        for (const [text, nodes] of files) {
            for (const n of nodes) {
                const r = corosyncCheck(text, n.ring0_addr);
                expect(r.ok, `corosync -t as ${n.name} (${n.ring0_addr}):\n${r.out}\n${text}`).toBe(true);
            }
        }
    });
});

// ---------------------------------------------------------------- the CIB: what it says

describe("the guest cluster's CIB: what it says", () => {
    it("lab: one fence_xvm stonith resource per node (victim = its domain, the lab's key and multicast group), the delay on node1's only, never on its own node", () => {
        const cib = parseXml(renderGuestCib(pacemakerSpec("lab")));
        expect(resources(cib).map((p) => [p.attrs.id, p.attrs.class, p.attrs.type])).toEqual([
            ["xvm-node1", "stonith", "fence_xvm"],
            ["xvm-node2", "stonith", "fence_xvm"],
        ]);
        for (const n of ["node1", "node2"]) {
            const params = nvpairs(primitive(cib, `xvm-${n}`));
            expect(params).toMatchObject({ pcmk_host_map: `${n}:${n}`, key_file: "/etc/cluster/fence_xvm.key", multicast_address: "225.0.0.12", ipport: "1229", hash: "sha256", auth: "sha256" });
            expect(params.pcmk_delay_base).toBe(n === "node1" ? "15s" : undefined);
            expect(locations(cib, `xvm-${n}`)).toEqual({ [n]: "-INFINITY" });
        }
        expect(all(cib, "node").map((n) => [n.attrs.id, n.attrs.uname])).toEqual([["1", "node1"], ["2", "node2"]]);
        expect(nvpairs(all(cib, "crm_config")[0], "cluster_property_set")).toEqual({ "stonith-enabled": "true" });
        expect(all(cib, "fencing-topology")).toEqual([]);
        expect(all(cib, "status")).toHaveLength(1);
        expect(all(cib, "status")[0].children).toEqual([]);
    });

    it("tcp and vsock listeners: fence_virt to the placement host's bridge address, or to the host's vsock CID 2", () => {
        const tcp = parseXml(renderGuestCib(pacemakerSpec("lab", (r) => (r.guestCluster.fencing.listener = "tcp"))));
        expect(primitive(tcp, "virt-node1").attrs.type).toBe("fence_virt");
        expect(nvpairs(primitive(tcp, "virt-node1"))).toMatchObject({ ipaddr: "10.99.0.1", ipport: "1229", key_file: "/etc/cluster/fence_xvm.key", pcmk_host_map: "node1:node1" });
        const vsock = parseXml(renderGuestCib(pacemakerSpec("lab", (r) => (r.guestCluster.fencing.listener = "vsock"))));
        expect(nvpairs(primitive(vsock, "virt-node2"))).toMatchObject({ vsock: "2", ipport: "1229", pcmk_host_map: "node2:node2" });
    });

    it("the delay moves with fenceDelay and goes away with seconds: 0; cleanStart sets startup-fencing", () => {
        const moved = parseXml(renderGuestCib(pacemakerSpec("lab", (r) => {
            r.guestCluster.fenceDelay = { node: "node2", seconds: 25 };
            r.guestCluster.fenceDaemon = { cleanStart: true };
        })));
        expect([nvpairs(primitive(moved, "xvm-node1")).pcmk_delay_base, nvpairs(primitive(moved, "xvm-node2")).pcmk_delay_base]).toEqual([undefined, "25s"]);
        expect(nvpairs(all(moved, "crm_config")[0], "cluster_property_set")["startup-fencing"]).toBe("false");
        const off = parseXml(renderGuestCib(pacemakerSpec("lab", (r) => (r.guestCluster.fenceDelay = { seconds: 0 }))));
        expect(all(off, "nvpair").filter((p) => p.attrs.name === "pcmk_delay_base")).toEqual([]);
        // three nodes: no default delay
        expect(all(parseXml(renderGuestCib(pacemakerSpec("dev"))), "nvpair").filter((p) => p.attrs.name === "pcmk_delay_base")).toEqual([]);
    });

    it("services: a group each (IPaddr2, lsb, systemd), failover domains as scored locations, restricted, nofailback, recovery, depend, exclusive, autostart", () => {
        const cib = parseXml(renderGuestCib(pacemakerSpec("dev", THREE_NODE_SERVICES)));
        expect(groupMembers(cib, "service-web").map((p) => [p.attrs.id, `${p.attrs.class}:${p.attrs.provider ?? ""}:${p.attrs.type}`, nvpairs(p)])).toEqual([
            ["ip-web-1", "ocf:heartbeat:IPaddr2", { ip: "192.0.2.50", cidr_netmask: "24" }],
            ["script-httpd", "lsb::httpd", {}],
        ]);
        expect(groupMembers(cib, "service-db").map((p) => `${p.attrs.class}:${p.attrs.type}`)).toEqual(["systemd:postgresql"]);
        expect(nvpairs(groupMembers(cib, "service-cache")[0])).toEqual({ ip: "192.0.2.51" });
        expect(groupMembers(cib, "service-cache")[1].attrs).toMatchObject({ id: "script-dummy", class: "ocf", provider: "pacemaker", type: "Dummy" });
        // front: ordered (priority 1 → 10000, 2 → 9900), restricted (gnode3 -INFINITY), nofailback (stickiness)
        expect(locations(cib, "service-web")).toEqual({ gnode2: "10000", gnode1: "9900", gnode3: "-INFINITY" });
        expect(memberScore({ ordered: true }, 1)).toBe(10000);
        const meta = (id: string) => nvpairs(all(cib, "group").find((g) => g.attrs.id === id)!, "meta_attributes");
        expect(meta("service-web")).toEqual({ "migration-threshold": "1", "resource-stickiness": "INFINITY" });
        // any: unordered, unrestricted: equal scores, nowhere forbidden, fails back (no stickiness of its own)
        expect(locations(cib, "service-cache")).toEqual({ gnode1: "100", gnode3: "100" });
        expect(meta("service-cache")).toEqual({ "migration-threshold": "4", "failure-timeout": "600s" });
        expect(meta("service-db")).toEqual({ "target-role": "Stopped" });
        // recovery disable: its monitor stops it instead of restarting
        expect(all(groupMembers(cib, "service-db")[0], "op").map((o) => o.attrs["on-fail"])).toEqual(["stop"]);
        expect(all(cib, "rsc_order").map((o) => [o.attrs.first, o.attrs.then, o.attrs.kind])).toEqual([
            ["service-web", "service-db", "Optional"],
            ["service-web", "service-cache", "Mandatory"],
        ]);
        // exclusive db: never with another service
        expect(colocations(cib)).toEqual([
            ["service-db", "service-web", "-INFINITY"],
            ["service-cache", "service-db", "-INFINITY"],
        ]);
        // the DEFAULT stickiness stays far below a priority step, so an ordered domain without nofailback fails back
        expect(nvpairs(all(cib, "rsc_defaults")[0], "meta_attributes")).toEqual({ "resource-stickiness": "1" });
    });

    it("anti-affinity: every pair of a group colocated at -INFINITY, each member prefers a different node, failback decides stickiness", () => {
        const spec = pacemakerSpec("dev", ANTI_AFFINITY);
        const cib = parseXml(renderGuestCib(spec));
        expect(colocations(cib)).toEqual([
            ["service-web2", "service-web1", "-INFINITY"],
            ["service-web3", "service-web1", "-INFINITY"],
            ["service-web3", "service-web2", "-INFINITY"],
            ["service-lb2", "service-lb1", "-INFINITY"],
        ]);
        expect(locations(cib, "service-web1")).toEqual({ gnode1: "10000", gnode2: "9900", gnode3: "9800" });
        expect(locations(cib, "service-web2")).toEqual({ gnode2: "10000", gnode3: "9900", gnode1: "9800" });
        expect(locations(cib, "service-web3")).toEqual({ gnode3: "10000", gnode1: "9900", gnode2: "9800" });
        const meta = (id: string) => nvpairs(all(cib, "group").find((g) => g.attrs.id === id)!, "meta_attributes");
        expect(meta("service-web1")).toEqual({ "resource-stickiness": "INFINITY" });
        expect(meta("service-lb1")).toEqual({});
        // no guard scripts: Pacemaker keeps them apart itself
        expect(all(cib, "primitive").filter((p) => p.attrs.id.includes("guard"))).toEqual([]);
    });

    it("fence levels: the extra devices as stonith resources with per-node victims, a topology with level 1 = the node's own device", () => {
        const cib = parseXml(renderGuestCib(pacemakerSpec("dev", FENCE_LEVELS)));
        expect(nvpairs(primitive(cib, "xvm-backup"))).toMatchObject({ timeout: "30", retrans: "20", pcmk_host_map: "gnode1:gnode1;gnode2:gnode2;gnode3:gnode3" });
        expect(nvpairs(primitive(cib, "xvm-third"))).toMatchObject({ timeout: "20", pcmk_host_map: "gnode1:gnode1;gnode2:gnode2;gnode3:gnode3-alias" });
        expect(primitive(cib, "xvm-third").attrs.type).toBe("fence_xvm");
        expect(topology(cib)).toEqual(
            ["gnode1", "gnode2", "gnode3"].flatMap((n) => [
                [n, "1", `xvm-${n}`],
                [n, "2", "xvm-backup"],
                [n, "3", "xvm-third"],
            ]),
        );
    });

    it("is deterministic, and every id is unique", () => {
        for (const [, make] of PACEMAKER_SCENARIOS) {
            const spec = make();
            const text = renderGuestCib(spec);
            expect(renderGuestCib(make())).toBe(text);
            const ids = [...text.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]).filter((id) => !/^\d+$/.test(id));
            expect(new Set(ids).size, "ids unique").toBe(ids.length);
        }
    });
});

describe("the host cluster's CIB: what it says", () => {
    it("dev: the hosts' fence devices (one host each, the password only when given, the delay on kvm1's), a VirtualDomain per VM service", () => {
        const spec = pacemakerSpec("dev");
        const cib = parseXml(renderHostCib(spec, { passwords: { "ipmi-kvm1": "s3cret" } }));
        expect(all(cib, "node").map((n) => n.attrs.uname)).toEqual(["kvm1", "kvm2"]);
        expect(nvpairs(primitive(cib, "ipmi-kvm1"))).toEqual({ ipaddr: "192.0.2.101", lanplus: "1", login: "admin", pcmk_host_list: "kvm1", password: "s3cret", pcmk_delay_base: "15s" });
        expect(nvpairs(primitive(cib, "ipmi-kvm2"))).toEqual({ ipaddr: "192.0.2.102", lanplus: "1", login: "admin", pcmk_host_list: "kvm2" });
        expect(primitive(cib, "ipmi-kvm1").attrs).toMatchObject({ class: "stonith", type: "fence_ipmilan" });
        expect(locations(cib, "ipmi-kvm1")).toEqual({ kvm1: "-INFINITY" });
        const vm = primitive(cib, "vm-gnode1");
        expect(vm.attrs).toMatchObject({ class: "ocf", provider: "heartbeat", type: "VirtualDomain" });
        expect(nvpairs(vm)).toEqual({ config: `${spec.xmlDir.path}/gnode1.xml`, migration_transport: "ssh" });
        expect(nvpairs(vm, "meta_attributes")).toEqual({ "allow-migrate": "true", "migration-threshold": "3", "failure-timeout": "600s", "resource-stickiness": "INFINITY" });
        expect(all(vm, "op").map((o) => o.attrs.name)).toEqual(["start", "stop", "monitor", "migrate_to", "migrate_from"]);
        expect(locations(cib, "vm-gnode1")).toEqual({ kvm1: "10000", kvm2: "9900" });
        expect(locations(cib, "vm-gnode2")).toEqual({ kvm2: "10000", kvm1: "9900" });
        // no password in the rendered file the render command writes
        expect(renderHostCib(spec, { passwords: {} })).not.toMatch(/password/);
    });

    it("VM service options: pause (no live migration), hypervisor, remote URI, tunnelled, snapshot, monitor scripts, depend", () => {
        const cib = parseXml(renderHostCib(PACEMAKER_SCENARIOS[8][1](), { passwords: {} }));
        expect(nvpairs(primitive(cib, "vm-gnode1"))).toEqual({ config: "/var/lib/libvirt/images/xml_defs/gnode1.xml", hypervisor: "qemu:///system", snapshot: "/srv/snap" });
        expect(nvpairs(primitive(cib, "vm-gnode1"), "meta_attributes")).toMatchObject({ "allow-migrate": "false", "target-role": "Stopped" });
        expect(nvpairs(primitive(cib, "vm-gnode2"))).toMatchObject({ remoteuri: "qemu+tcp://%n/system", migrate_options: "--p2p --tunnelled", monitor_scripts: "/usr/local/bin/check web" });
        expect(all(cib, "rsc_order").map((o) => [o.attrs.first, o.attrs.then, o.attrs.kind])).toEqual([["vm-gnode1", "vm-gnode2", "Mandatory"]]);
    });

    it("anti-affinity of VM services and fence levels of the hosts", () => {
        expect(colocations(parseXml(renderHostCib(pacemakerSpec("dev", ANTI_AFFINITY), { passwords: {} })))).toEqual([["vm-gnode2", "vm-gnode1", "-INFINITY"]]);
        const cib = parseXml(renderHostCib(pacemakerSpec("dev", FENCE_LEVELS), { passwords: {} }));
        expect(topology(cib)).toEqual([
            ["kvm1", "1", "ipmi-kvm1"],
            ["kvm1", "2", "pdu-kvm1"],
            ["kvm2", "1", "ipmi-kvm2"],
            ["kvm3", "1", "ipmi-kvm3"],
        ]);
        expect(nvpairs(primitive(cib, "ipmi-kvm2")).pcmk_delay_base).toBe("10s");
        expect(all(cib, "nvpair").filter((p) => p.attrs.name === "pcmk_delay_base")).toHaveLength(1);
    });
});

// ---------------------------------------------------------------- real judges

describe("crm_verify accepts every rendered CIB (with a running cluster's status)", () => {
    beforeEach((ctx) => need(ctx, "crm_verify (Debian: pacemaker-cli-utils)", crmVerifyAvailable()));

    it("refuses a broken one (the judge can say no)", () => {
        const cib = renderGuestCib(pacemakerSpec("dev", ANTI_AFFINITY)).replace('with-rsc="service-web1"', 'with-rsc="no-such-resource"');
        expect(crmVerify(liveCib(cib)).ok).toBe(false);
        const dup = renderGuestCib(pacemakerSpec("lab")).replace('id="xvm-node2"', 'id="xvm-node1"');
        expect(crmVerify(liveCib(dup)).ok).toBe(false);
    });

    it.each(PACEMAKER_SCENARIOS)("%s", (_name, make) => {
        const spec = make();
        const guest = crmVerify(liveCib(renderGuestCib(spec)));
        expect(guest.ok, guest.out).toBe(true);
        if (spec.hostCluster) {
            const host = crmVerify(liveCib(renderHostCib(spec, { passwords: { "ipmi-kvm1": "pw", "ipmi-kvm2": "pw" } })));
            expect(host.ok, host.out).toBe(true);
        }
    });
});

/** Where resource-agents installs the OCF agents (Debian, RHEL). */
const OCF_ROOT = "/usr/lib/ocf";

/** The parameters an installed agent declares in its metadata. */
function agentParameters(cls: string, type: string): Set<string> | undefined {
    const r =
        cls === "stonith"
            ? spawnSync(type, ["-o", "metadata"], { encoding: "utf8", timeout: 30_000 })
            : spawnSync(join(OCF_ROOT, "resource.d/heartbeat", type), ["meta-data"], { encoding: "utf8", timeout: 30_000, env: { ...process.env, OCF_ROOT } });
    if (r.status !== 0) return undefined;
    return new Set([...String(r.stdout).matchAll(/<parameter name="([^"]+)"/g)].map((m) => m[1]));
}

describe("every parameter given to an agent is one the installed agent declares", () => {
    const HAVE = hasTool("fence_xvm") && hasTool("fence_virt") && hasTool("fence_ipmilan") && agentParameters("ocf", "IPaddr2") !== undefined;
    beforeEach((ctx) => need(ctx, "fence_xvm, fence_virt (fence-virt), fence_ipmilan (fence-agents) and the OCF agents IPaddr2 and VirtualDomain (Debian: resource-agents)", HAVE));

    it.each(PACEMAKER_SCENARIOS)("%s", (_name, make) => {
        const spec = make();
        const cibs = [renderGuestCib(spec), ...(spec.hostCluster ? [renderHostCib(spec, { passwords: { "ipmi-kvm1": "pw" } })] : [])];
        const cache = new Map<string, Set<string> | undefined>();
        for (const text of cibs) {
            for (const p of resources(parseXml(text))) {
                if (p.attrs.class === "lsb" || p.attrs.class === "systemd" || p.attrs.provider === "pacemaker") continue; // the guests' own services; Pacemaker's own OCF agents
                const key = `${p.attrs.class}:${p.attrs.type}`;
                if (!cache.has(key)) cache.set(key, agentParameters(p.attrs.class, p.attrs.type));
                const known = cache.get(key);
                expect(known, `metadata of ${key}`).toBeDefined();
                // pcmk_* are Pacemaker's own fencing parameters, not the agent's
                const given = Object.keys(nvpairs(p)).filter((k) => !k.startsWith("pcmk_"));
                expect(given.filter((k) => !known!.has(k)), `${p.attrs.id}: parameters ${key} does not declare`).toEqual([]);
            }
        }
    });
});

let keyDir = "";
/** A key file standing in for the nodes' fence key (fence_xvm/fence_virt validation opens it). */
function keyStandIn(): string {
    if (keyDir === "") {
        keyDir = mkdtempSync(join(tmpdir(), "pcmk-key-"));
        writeFileSync(join(keyDir, "fence_xvm.key"), Buffer.alloc(4096, 7), { mode: 0o600 });
    }
    return join(keyDir, "fence_xvm.key");
}
afterAll(() => {
    if (keyDir !== "") rmSync(keyDir, { recursive: true, force: true });
});

describe("Pacemaker's own fence device validation (stonith_admin --validate) accepts every stonith resource", () => {
    beforeEach((ctx) => need(ctx, "stonith_admin (Debian: pacemaker-cli-utils), fence_xvm, fence_virt, fence_ipmilan", hasTool("stonith_admin") && hasTool("fence_xvm") && hasTool("fence_ipmilan")));

    it("refuses a bad value (the judge can say no)", () => {
        const r = spawnSync("stonith_admin", ["--validate", "--agent", "fence_xvm", "-o", "ipport=not-a-port"], { encoding: "utf8", timeout: 30_000 });
        expect(r.status).not.toBe(0);
    });

    it.each(PACEMAKER_SCENARIOS)("%s", (_name, make) => {
        const spec = make();
        const cibs = [renderGuestCib(spec), ...(spec.hostCluster ? [renderHostCib(spec, { passwords: { "ipmi-kvm1": "pw", "ipmi-kvm2": "pw" } })] : [])];
        for (const text of cibs) {
            for (const p of resources(parseXml(text)).filter((x) => x.attrs.class === "stonith")) {
                // the agents check that key_file exists where they run: the nodes have it (the program installs it), this machine a stand-in
                const args = ["--validate", "--agent", p.attrs.type, ...Object.entries(nvpairs(p)).flatMap(([k, v]) => ["-o", `${k}=${k === "key_file" ? keyStandIn() : v}`])];
                const r = spawnSync("stonith_admin", args, { encoding: "utf8", timeout: 30_000 });
                const said = `${r.stdout}${r.stderr}`;
                expect(r.status, `${p.attrs.id}: ${said}`).toBe(0);
                expect(said, p.attrs.id).not.toMatch(/unknown option/i);
            }
        }
    });
});

// ---------------------------------------------------------------- validation: pacemaker-only rules

describe("validation with stack pacemaker names the field", () => {
    const cases: [string, "lab" | "dev", (r: Raw) => void, string, RegExp][] = [
        ["a node without an address", "dev", (r) => delete r.guests[1].ssh, "guests[1].address", /corosync needs every node's address/],
        ["fenced's post_join_delay", "lab", (r) => (r.guestCluster.fenceDaemon = { postJoinDelay: 60 }), "guestCluster.fenceDaemon.postJoinDelay", /60.*Pacemaker has no such setting.*stack: cman/],
        ["fenced's post_fail_delay", "lab", (r) => (r.guestCluster.fenceDaemon = { postFailDelay: 5 }), "guestCluster.fenceDaemon.postFailDelay", /5.*post_fail_delay/],
        [
            "an rgmanager independent subtree",
            "lab",
            (r) => (r.guestCluster.services = [{ name: "web", scripts: [{ name: "httpd", file: "/etc/init.d/httpd", independentSubtree: "restart" }] }]),
            "guestCluster.services[0].scripts[0].independentSubtree",
            /"restart" is an rgmanager \(cman\) child-resource option/,
        ],
        [
            "a script that is neither an init script nor a unit",
            "lab",
            (r) => (r.guestCluster.services = [{ name: "web", scripts: [{ name: "httpd", file: "/opt/web/start.sh" }] }]),
            "guestCluster.services[0].scripts[0].file",
            /"\/opt\/web\/start.sh" is neither an init script/,
        ],
        ["a service with no resources", "lab", (r) => (r.guestCluster.services = [{ name: "empty" }]), "guestCluster.services[0]", /"empty" has no ips and no scripts/],
        [
            "vm.sh's migration mapping",
            "dev",
            (r) => (r.hostCluster.vmServices[0].migrationMapping = { kvm1: "10.0.0.11" }),
            "hostCluster.vmServices[0].migrationMapping",
            /rgmanager's vm.sh only/,
        ],
        [
            "two hosts at one address",
            "dev",
            (r) => (r.hosts[1].ssh.address = r.hosts[0].ssh.address),
            "hosts[1].ssh.address",
            /"192.0.2.11" is already the address of hosts\[0\].*its own address/,
        ],
        [
            "a local host without an address for corosync",
            "dev",
            (r) => {
                r.hosts[0] = { name: "kvm1", local: true, bridge: { name: "br0", uplink: "eth0" } };
                r.guestCluster.fencing.subnet = "192.0.2.0/24";
            },
            "hosts[0].bridge.address",
            /corosync needs every host's address/,
        ],
    ];

    it.each(cases)("%s", (_name, stack, edit, path, message) => {
        const problems = problemsOf(stack, pacemakerRaw(stack, edit));
        const at = problems.filter((p) => p.path === path);
        expect(at, JSON.stringify(problems, null, 1)).toHaveLength(1);
        expect(at[0].message).toMatch(message);
    });

    it("the same options are fine with stack cman, and stack is cman by default", () => {
        const raw = rawStack("lab");
        // the lab stack says pacemaker (its guests run Debian); left out, the stack is cman
        expect(raw.guestCluster.stack).toBe("pacemaker");
        delete raw.guestCluster.stack;
        raw.guestCluster.fenceDaemon = { postJoinDelay: 60 };
        raw.guestCluster.services = [{ name: "web", scripts: [{ name: "httpd", file: "/opt/web/start.sh", independentSubtree: "restart" }] }];
        const spec = specOf("lab", raw);
        expect(spec.guestCluster.stack).toBe("cman");
        expect(specOf("dev", rawStack("dev")).hostCluster?.stack).toBe("cman");
    });

    it("refuses a stack that is neither cman nor pacemaker, naming the field", () => {
        const problems = problemsOf("lab", pacemakerRaw("lab", (r) => (r.guestCluster.stack = "heartbeat")));
        expect(problems.map((p) => p.path)).toEqual(["guestCluster.stack"]);
        expect(problems[0].message).toMatch(/heartbeat/);
    });
});

// ---------------------------------------------------------------- the render command

describe("npm run render with stack pacemaker", () => {
    let dir = "";
    afterAll(() => {
        if (dir !== "") rmSync(dir, { recursive: true, force: true });
    });

    it("writes pacemaker/{corosync.conf,cib.xml} and pacemaker-hosts/{corosync.conf,cib.xml}, no cluster.conf, exactly what the renderers give", () => {
        dir = mkdtempSync(join(tmpdir(), "pcmk-render-"));
        const raw = pacemakerRaw("dev");
        const stacks = join(dir, "stacks");
        mkdirSync(stacks);
        writeFileSync(join(stacks, "Pulumi.dev.yaml"), stringify({ config: Object.fromEntries(Object.entries(raw).map(([k, v]) => [`kvm-ha-lab:${k}`, v])) }));
        const out = join(dir, "out");
        const r = spawnSync(join(ROOT, "node_modules/.bin/tsx"), [join(ROOT, "scripts/render.ts"), "--stack", "dev", "--out", out, "--stacks-dir", stacks], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
        expect(r.status, r.stderr).toBe(0);
        expect(readdirSync(out).sort()).toEqual(expect.arrayContaining(["pacemaker", "pacemaker-hosts"]));
        expect(readdirSync(out)).not.toContain("cluster.conf");
        expect(readdirSync(out)).not.toContain("host-cluster.conf");
        expect(readdirSync(join(out, "pacemaker")).sort()).toEqual(["cib.xml", "corosync.conf"]);
        expect(readdirSync(join(out, "pacemaker-hosts")).sort()).toEqual(["cib.xml", "corosync.conf"]);
        const spec = validateLabConfig(raw, { stack: "dev", secretKeys: new Set(), requireSecrets: false, readFile: () => undefined });
        const files = renderLab(spec);
        for (const rel of ["pacemaker/corosync.conf", "pacemaker/cib.xml", "pacemaker-hosts/corosync.conf", "pacemaker-hosts/cib.xml"]) {
            expect(readFileSync(join(out, rel), "utf8"), rel).toBe(files.get(rel));
        }
        expect(files.get("pacemaker-hosts/cib.xml")).not.toMatch(/password/);
    });
});
