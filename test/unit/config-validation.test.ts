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
        raw.guests[0] = { name: "node1", host: "kvmhost", xml: "/srv/node1.xml" };
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
        // no ssh address (the lab stack's guests have none), no address: fence_virtd then has no groups
        expect(spec.guests.map((g) => g.address)).toEqual([undefined, undefined]);
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
        raw.guests[0] = { name: "node1", host: "kvmhost", xml: "/srv/node1.xml" };
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
