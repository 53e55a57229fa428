/**
 * Every validation rule, from the catalogue in test/fixtures/invalid-configs.yaml: each invalid config is rejected
 * with a message naming the field path and the bad value; the stacks themselves are valid.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { ConfigError, validateLabConfig } from "../../components/config";
import { parseStackFile } from "../../components/stack-file";

const ROOT = join(__dirname, "..", "..");
const DEV_SECRETS = ["sshPrivateKey", "ipmiPasswordKvm1", "ipmiPasswordKvm2"];

interface Case {
    name: string;
    base: "lab" | "dev";
    edits: ({ set: string; value: unknown } | { delete: string })[];
    secrets?: string[];
    expect: { path: string; text: string };
}

const cases = parse(readFileSync(join(ROOT, "test/fixtures/invalid-configs.yaml"), "utf8")) as Case[];

function load(stack: string): Record<string, unknown> {
    return parseStackFile(readFileSync(join(ROOT, "stacks", `Pulumi.${stack}.yaml`), "utf8")).raw;
}

function segments(path: string): (string | number)[] {
    return path.split(/\.|(?=\[)/).map((s) => (s.startsWith("[") ? Number(s.slice(1, -1)) : s));
}

function edit(obj: Record<string, unknown>, e: Case["edits"][number]) {
    const path = segments("set" in e ? e.set : e.delete);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let cur: any = obj;
    for (const s of path.slice(0, -1)) cur = cur[s];
    const last = path[path.length - 1];
    if ("set" in e) cur[last] = e.value;
    else delete cur[last];
}

function validate(raw: unknown, stack: string, secrets: string[], files: Record<string, string> = {}) {
    return validateLabConfig(raw, { stack, secretKeys: new Set(secrets), readFile: (p) => files[p] });
}

describe("the stacks are valid", () => {
    it("lab", () => expect(validate(load("lab"), "lab", []).guestCluster.nodes).toEqual(["node1", "node2"]));
    it("dev", () => expect(validate(load("dev"), "dev", DEV_SECRETS).hostCluster?.vmServices).toHaveLength(2));
});

describe("invalid configs are rejected with field, value and fix", () => {
    it("has a catalogue of at least 40 cases with unique names", () => {
        expect(cases.length).toBeGreaterThanOrEqual(40);
        expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    });
    for (const c of cases) {
        it(c.name, () => {
            const raw = structuredClone(load(c.base));
            for (const e of c.edits) edit(raw, e);
            const secrets = c.secrets ?? (c.base === "dev" ? DEV_SECRETS : []);
            let error: unknown;
            try {
                validate(raw, c.base, secrets);
            } catch (e) {
                error = e;
            }
            expect(error, "config was accepted").toBeInstanceOf(ConfigError);
            const problems = (error as ConfigError).problems;
            const match = problems.find((p) => p.path === c.expect.path && p.message.includes(c.expect.text));
            expect(match, `no problem at ${c.expect.path} containing ${c.expect.text}; got:\n${(error as Error).message}`).toBeDefined();
        });
    }
});

describe("a guest's own domain XML", () => {
    const base = () => {
        const raw = structuredClone(load("lab")) as { guests: Record<string, unknown>[] };
        // with its address on the cluster network, which the lab stack's Pacemaker cluster needs (corosync's ring0_addr)
        raw.guests[0] = { name: "node1", host: "kvmhost", xml: "/srv/node1.xml", address: "10.99.0.11" };
        return raw;
    };
    it("is used as-is when its name matches", () => {
        const xml = "<domain type='kvm'><name>node1</name><memory>1</memory></domain>";
        const spec = validate(base(), "lab", [], { "/srv/node1.xml": xml });
        expect(spec.guests[0].definition).toEqual({ kind: "file", path: "/srv/node1.xml", xml });
    });
    it("is rejected when its domain name differs from the guest name", () => {
        const xml = "<domain type='kvm'><name>other</name></domain>";
        expect(() => validate(base(), "lab", [], { "/srv/node1.xml": xml })).toThrow(
            /guests\[0\]\.xml: "\/srv\/node1.xml" defines domain "other", but the guest is named "node1"/,
        );
    });
});

describe("defaults", () => {
    it("fill the fence_virtd listener, key path, hash and auth, and derive MAC and UUID", () => {
        const raw = structuredClone(load("lab")) as Record<string, any>;
        raw.guestCluster = { name: "c", nodes: ["node1", "node2"] };
        const spec = validate(raw, "lab", []);
        expect(spec.guestCluster.fencing).toEqual({
            listener: "multicast",
            multicast: { address: "225.0.0.12", port: 1229, family: "ipv4" },
            tcp: { port: 1229 },
            vsock: { port: 1229 },
            hash: "sha256",
            auth: "sha256",
            keyFile: "/etc/cluster/fence_xvm.key",
            keyVersion: 1,
            subnet: "10.99.0.0/24",
        });
        expect(spec.xmlDir).toEqual({ path: "/var/lib/libvirt/images/xml_defs", shared: false });
        const def = spec.guests[0].definition;
        if (def.kind !== "rendered") throw new Error("expected a rendered definition");
        expect(def.nics[0].mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
        expect(def.nics[0].bridge).toBe("br-lab");
        expect(def.vsock).toBe(false);
        // the lab stack's guests have their cluster addresses (their cloud-init seeds configure them)
        expect(spec.guests.map((g) => g.address)).toEqual(["10.99.0.11", "10.99.0.12"]);
        expect(def.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        // Stable across runs and different between stacks and guests.
        expect(validate(raw, "lab", []).guests[0].definition).toEqual(def);
        const other = validate(raw, "other", []).guests[0].definition;
        expect(other.kind === "rendered" && other.uuid).not.toBe(def.uuid);
        const second = spec.guests[1].definition;
        expect(second.kind === "rendered" && second.nics[0].mac).not.toBe(def.nics[0].mac);
    });
});

describe("fencing listeners and guest addresses", () => {
    const lab = () => structuredClone(load("lab")) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

    it("tcp and vsock: the listener and its port resolved; hash and auth stay sha256", () => {
        for (const listener of ["tcp", "vsock"] as const) {
            const raw = lab();
            raw.guestCluster.fencing = { listener, [listener]: { port: 1300 } };
            const f = validate(raw, "lab", []).guestCluster.fencing;
            expect(f.listener).toBe(listener);
            expect(f[listener]).toEqual({ port: 1300 });
            expect([f.hash, f.auth]).toEqual(["sha256", "sha256"]);
        }
    });

    it("vsock: the guest cluster's nodes (only they) get a vsock device", () => {
        const raw = lab();
        raw.guestCluster.fencing.listener = "vsock";
        raw.guests.push({ name: "loner", host: "kvmhost" });
        const spec = validate(raw, "lab", []);
        expect(spec.guests.map((g) => [g.name, g.definition.kind === "rendered" && g.definition.vsock])).toEqual([
            ["node1", true],
            ["node2", true],
            ["loner", false],
        ]);
    });

    it("vsock: a node's own domain XML must have a <vsock> device", () => {
        const raw = lab();
        raw.guestCluster.fencing.listener = "vsock";
        raw.guests[0] = { name: "node1", host: "kvmhost", xml: "/srv/node1.xml", address: "10.99.0.11" };
        const without = "<domain type='kvm'><name>node1</name><devices/></domain>";
        expect(() => validate(raw, "lab", [], { "/srv/node1.xml": without })).toThrow(
            /guests\[0\]\.xml: "\/srv\/node1.xml" has no <vsock> device, but guestCluster.fencing.listener is "vsock".*add <vsock model='virtio'><cid auto='yes'\/><\/vsock>/,
        );
        const withVsock = "<domain type='kvm'><name>node1</name><devices><vsock model='virtio'><cid auto='yes'/></vsock></devices></domain>";
        expect(validate(raw, "lab", [], { "/srv/node1.xml": withVsock }).guests[0].definition.kind).toBe("file");
        // with another listener the XML needs none
        raw.guestCluster.fencing.listener = "tcp";
        expect(validate(raw, "lab", [], { "/srv/node1.xml": without }).guests[0].definition.kind).toBe("file");
    });

    it("a guest's address: given, else its ssh address when that is IPv4 on the cluster network, else none", () => {
        const raw = lab();
        // cman: a Pacemaker cluster refuses a node without an address (test/unit/render-pacemaker.test.ts)
        raw.guestCluster.stack = "cman";
        // guests without an OS image (the lab stack's boot one, with their addresses set)
        for (const g of raw.guests) for (const k of ["image", "kernel", "initrd", "cmdline", "address"]) delete g[k];
        raw.guests[0].address = "10.99.0.21";
        raw.guests[1].ssh = { address: "10.99.0.12" };
        expect(validate(raw, "lab", ["sshPrivateKey"]).guests.map((g) => g.address)).toEqual(["10.99.0.21", "10.99.0.12"]);
        // an ssh address off the cluster network, or a host name, is not the guest's address there
        for (const ssh of ["192.0.2.12", "node2.example.com"]) {
            raw.guests[1].ssh = { address: ssh };
            expect(validate(raw, "lab", ["sshPrivateKey"]).guests[1].address, ssh).toBeUndefined();
        }
        // an explicit address wins over the ssh address
        raw.guests[1] = { ...raw.guests[1], ssh: { address: "10.99.0.12" }, address: "10.99.0.22" };
        expect(validate(raw, "lab", ["sshPrivateKey"]).guests[1].address).toBe("10.99.0.22");
    });

    it("the dev stack's guests take their ssh addresses (on the cluster network 192.0.2.0/24)", () => {
        expect(validate(load("dev"), "dev", DEV_SECRETS).guests.map((g) => g.address)).toEqual(["192.0.2.21", "192.0.2.22", "192.0.2.23"]);
    });
});

describe("cman: what validation accepts is what a cman node can act on", () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const stack = (name: "lab" | "dev") => structuredClone(load(name)) as Record<string, any>;

    it("vsock without any bridge address needs no fencing.subnet (no guest network is used)", () => {
        const raw = stack("lab");
        delete raw.hosts[0].bridge.address;
        raw.guestCluster.fencing.listener = "vsock";
        const spec = validate(raw, "lab", []);
        expect(spec.guestCluster.fencing).toMatchObject({ listener: "vsock", subnet: "" });
        // the other listeners still need the cluster network
        for (const listener of ["multicast", "tcp"]) {
            raw.guestCluster.fencing.listener = listener;
            expect(() => validate(raw, "lab", []), listener).toThrow(ConfigError);
        }
    });

    it("an extra guest fence device is completed with the lab's listener and key (only where they differ from the agent's default)", () => {
        const raw = stack("lab");
        raw.guestCluster.fencing.keyFile = "/etc/cluster/lab.key";
        raw.guestCluster.fencing.multicast.port = 1240;
        raw.guestCluster.fenceDevices = [{ name: "xvm-slow", agent: "fence_xvm", params: { timeout: "60" } }];
        raw.guestCluster.fenceLevels = [{ devices: [{ device: "xvm-slow" }] }];
        expect(validate(raw, "lab", []).guestCluster.fenceDevices[0].params).toEqual({
            timeout: "60",
            key_file: "/etc/cluster/lab.key",
            multicast_address: "225.0.0.12",
            ipport: "1240",
        });
        // tcp: fence_virt to a host's bridge address, the tcp port filled in; vsock: CID 2
        raw.guestCluster.fencing = { listener: "tcp", tcp: { port: 1250 } };
        raw.guestCluster.fenceDevices = [{ name: "virt-slow", agent: "fence_virt", params: { ipaddr: "10.99.0.1" } }];
        raw.guestCluster.fenceLevels = [{ devices: [{ device: "virt-slow" }] }];
        expect(validate(raw, "lab", []).guestCluster.fenceDevices[0].params).toEqual({ ipaddr: "10.99.0.1", ipport: "1250" });
        raw.guestCluster.fencing = { listener: "vsock" };
        raw.guestCluster.fenceDevices = [{ name: "virt-slow", agent: "fence_virt", params: {} }];
        expect(validate(raw, "lab", []).guestCluster.fenceDevices[0].params).toEqual({ vsock: "2" });
    });

    it("a VM service's xmlFile is accepted when it is the file the program writes", () => {
        const raw = stack("dev");
        raw.hostCluster.vmServices[1].xmlFile = "/var/lib/libvirt/images/xml_defs/gnode2.xml";
        expect(validate(raw, "dev", DEV_SECRETS).hostCluster!.vmServices[1].xmlFile).toBe("/var/lib/libvirt/images/xml_defs/gnode2.xml");
    });

    it("fence_apc_snmp and fence_wti host devices are accepted with their parameters", () => {
        const raw = stack("dev");
        raw.hostCluster.fenceDevices[0] = { name: "pdu-kvm1", agent: "fence_apc_snmp", host: "kvm1", params: { ipaddr: "192.0.2.200", port: "3", community: "lab", snmp_version: "2c" }, passwordSecret: "ipmiPasswordKvm1" };
        raw.hostCluster.fenceDevices[1] = { name: "wti-kvm2", agent: "fence_wti", host: "kvm2", params: { ipaddr: "192.0.2.201", port: "A2", secure: "1", login: "fence" }, passwordSecret: "ipmiPasswordKvm2" };
        expect(validate(raw, "dev", DEV_SECRETS).hostCluster!.fenceDevices.map((d) => d.agent)).toEqual(["fence_apc_snmp", "fence_wti"]);
    });

    describe("a guest's own domain XML on a lab of several hosts (defined on each of them)", () => {
        const base = () => {
            const raw = stack("dev");
            raw.guests[2] = { name: "gnode3", host: "kvm1", xml: "/srv/gnode3.xml", ssh: { address: "192.0.2.23" } };
            return raw;
        };
        const xml = (uuid: boolean, mac: boolean) =>
            `<domain type='kvm'><name>gnode3</name>${uuid ? "<uuid>4b2f4a8e-8a5b-4c61-9a0e-6f1d8c1e2a33</uuid>" : ""}<memory>1</memory>` +
            `<devices><interface type='bridge'>${mac ? "<mac address='52:54:00:aa:bb:03'/>" : ""}<source bridge='br0'/></interface></devices></domain>`;

        it("is refused without a <uuid>", () => {
            expect(() => validate(base(), "dev", DEV_SECRETS, { "/srv/gnode3.xml": xml(false, true) })).toThrow(/guests\[2\]\.xml: "\/srv\/gnode3.xml" has no <uuid>; the lab defines this domain on all 2 hosts/);
        });

        it("is refused with an interface without a fixed MAC", () => {
            expect(() => validate(base(), "dev", DEV_SECRETS, { "/srv/gnode3.xml": xml(true, false) })).toThrow(/guests\[2\]\.xml: .* has 1 <interface> without a fixed <mac address=…>/);
        });

        it("is accepted with both, and on a single host without them", () => {
            expect(validate(base(), "dev", DEV_SECRETS, { "/srv/gnode3.xml": xml(true, true) }).guests[2].definition.kind).toBe("file");
            const one = stack("lab");
            one.guestCluster.stack = "cman";
            one.guests[0] = { name: "node1", host: "kvmhost", xml: "/srv/node1.xml" };
            expect(validate(one, "lab", [], { "/srv/node1.xml": "<domain type='kvm'><name>node1</name><devices><interface type='bridge'/></devices></domain>" }).guests[0].definition.kind).toBe("file");
        });
    });
});
