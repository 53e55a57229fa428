/**
 * cluster.conf for the guest cluster and the host cluster: what the files mean (read back with a real XML parser),
 * that they are deterministic, that xmllint finds them well-formed and valid against schema/cluster-conf.rng (and
 * against cman's own cluster.rng when one is available), that the schema rejects what it must, and that fence_xvm
 * itself accepts the exact arguments fenced would hand it.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { create } from "xmlbuilder2";
import { validateLabConfig } from "../../components/config";
import { domainXmlPath } from "../../components/names";
import { DEFAULTS } from "../../components/defaults";
import { guardResourceName, guardScriptPath } from "../../components/render/anti-affinity-guard";
import { antiAffinityDomainName, MAX_ELEMENT_ATTRIBUTES, xvmFenceDeviceName } from "../../components/cluster-model";
import { renderGuestClusterConf, renderHostClusterConf } from "../../components/render/cluster-conf";
import { renderFenceVirtConf } from "../../components/render/fence-virt-conf";
import type { LabSpec } from "../../components/spec";
import { parseStackFile } from "../../components/stack-file";
import { validateRelaxNgText, wellFormedText, xmllintAvailable } from "../helpers/relaxng";
import { buildCmanFenceSchema, cmanFenceSchemaMissing, type CmanFenceSchema } from "../helpers/cman-fence-schema";
import { need } from "../helpers/tools";
import { FENCE_AGENT_PARAMS, GUEST_FENCE_AGENTS, HOST_FENCE_AGENTS } from "../../components/config-cluster";

const ROOT = resolve(__dirname, "../..");
const SCHEMA = join(ROOT, "schema/cluster-conf.rng");
const CMAN_RNG = [process.env.CMAN_CLUSTER_RNG, "/var/lib/cluster/cluster.rng", "/usr/share/cluster/cluster.rng"].find((p) => p !== undefined && p !== "" && existsSync(p));
const HAVE_XMLLINT = xmllintAvailable();
const HAVE_FENCE_XVM = spawnSync("fence_xvm", ["-o", "metadata"], { encoding: "utf8" }).status === 0;
const HAVE_FENCE_VIRT = spawnSync("fence_virt", ["-o", "metadata"], { encoding: "utf8" }).status === 0;
const NEED_XMLLINT = "xmllint (Debian: libxml2-utils)";
const NEED_FENCE_VIRT = "fence_xvm and fence_virt (Debian: fence-virt)";

/**
 * The tests of the enclosing describe need `what`: without it each is skipped with a message, and under CI it fails
 * instead (test/helpers/tools.ts need()).
 */
function requires(what: string, ok: boolean): void {
    beforeEach((ctx) => need(ctx, what, ok));
}

/**
 * cman's fence device definitions, generated here from the installed fence agents as ccs_update_schema generates them
 * (test/helpers/cman-fence-schema.ts), built once on first use. Undefined when fence-agents or xsltproc is missing;
 * the "cman's fence device definitions" suite then reports that (and fails under CI).
 */
const CMAN_FENCE_MISSING = HAVE_XMLLINT ? cmanFenceSchemaMissing() : "xmllint";
let cmanFenceDir = "";
let cmanFence: CmanFenceSchema | undefined;
function cmanFenceSchema(): CmanFenceSchema | undefined {
    if (CMAN_FENCE_MISSING !== undefined) return undefined;
    if (cmanFence === undefined) {
        cmanFenceDir = mkdtempSync(join(tmpdir(), "hcc-cman-fence-"));
        cmanFence = buildCmanFenceSchema(cmanFenceDir, SCHEMA);
    }
    return cmanFence;
}
afterAll(() => {
    if (cmanFenceDir !== "") rmSync(cmanFenceDir, { recursive: true, force: true });
});
const AND_CMAN = ` and cman's fence device definitions${CMAN_RNG ? ` and ${CMAN_RNG}` : ""}`;

// ---------------------------------------------------------------- specs

const SECRETS: Record<string, Set<string>> = {
    lab: new Set(),
    dev: new Set(["sshPrivateKey", "ipmiPasswordKvm1", "ipmiPasswordKvm2"]),
};

/**
 * A stack file's config, its guest cluster on cman: the lab stack's is on Pacemaker (its guests run Debian), and
 * cluster.conf is what a cman cluster of the same lab model gets (stacks/Pulumi.dev.yaml is on cman as it is).
 */
function rawStack(stack: string): Record<string, unknown> {
    const raw = parseStackFile(readFileSync(join(ROOT, `stacks/Pulumi.${stack}.yaml`), "utf8")).raw as { guestCluster: { stack?: string } };
    raw.guestCluster.stack = "cman";
    return raw;
}

function specFrom(stack: string, raw: Record<string, unknown>, secretKeys: Set<string>): LabSpec {
    return validateLabConfig(raw, { stack, secretKeys, readFile: () => undefined });
}

function stackSpec(stack: "lab" | "dev"): LabSpec {
    return specFrom(stack, rawStack(stack), SECRETS[stack]);
}

/** dev with a third KVM host (and its BMC) in the host cluster: no two_node there. */
function devWithThreeHosts(): LabSpec {
    const raw = structuredClone(rawStack("dev")) as {
        hosts: unknown[];
        hostCluster: { fenceDevices: unknown[] };
    };
    raw.hosts.push({ name: "kvm3", ssh: { address: "192.0.2.13" }, bridge: { name: "br0", uplink: "eth0", address: "192.0.2.13/24" } });
    raw.hostCluster.fenceDevices.push({
        name: "ipmi-kvm3",
        agent: "fence_ipmilan",
        host: "kvm3",
        params: { ipaddr: "192.0.2.103", login: "admin", lanplus: "1" },
        passwordSecret: "ipmiPasswordKvm3",
    });
    return specFrom("dev", raw as Record<string, unknown>, new Set([...SECRETS.dev, "ipmiPasswordKvm3"]));
}

// ---------------------------------------------------------------- a real parser (xmlbuilder2's DOM)

interface El {
    nodeName: string;
    getAttribute(name: string): string | null;
    hasAttribute(name: string): boolean;
    setAttribute(name: string, value: string): void;
    removeAttribute(name: string): void;
    getAttributeNames(): string[];
    getElementsByTagName(name: string): ArrayLike<El>;
    readonly textContent: string | null;
    appendChild(child: El): El;
    insertBefore(child: El, before: El | null): El;
    removeChild(child: El): El;
    readonly ownerDocument: { createElement(name: string): El };
}

function parse(xml: string): El {
    return create(xml).root().node as unknown as El;
}

function all(el: El, tag: string): El[] {
    return Array.from(el.getElementsByTagName(tag));
}

function one(el: El, tag: string): El {
    const found = all(el, tag);
    expect(found, `exactly one <${tag}>`).toHaveLength(1);
    return found[0];
}

/** The parameter names a fence agent's own `-o metadata` declares. */
function agentParameters(agent: string): Set<string> {
    return new Set(all(parse(spawnSync(agent, ["-o", "metadata"], { encoding: "utf8" }).stdout), "parameter").map((p) => p.getAttribute("name")!));
}

/** The defaults a fence agent's own `-o metadata` declares (parameter name → default). */
function agentMetadataDefaults(agent: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const p of all(parse(spawnSync(agent, ["-o", "metadata"], { encoding: "utf8" }).stdout), "parameter")) {
        const d = all(p, "content")[0]?.getAttribute("default");
        if (d !== null && d !== undefined) out.set(p.getAttribute("name")!, d);
    }
    return out;
}

/** What the agent uses for `name` on a `<fencedevice>`: the attribute, else its metadata default. */
function effective(device: El, name: string): string | undefined {
    return device.getAttribute(name) ?? agentMetadataDefaults(device.getAttribute("agent")!).get(name);
}

function attrs(el: El): Record<string, string> {
    return Object.fromEntries(el.getAttributeNames().map((n) => [n, el.getAttribute(n) ?? ""]));
}

/** Parses, lets `change` edit the DOM, and serializes again. */
function mutate(xml: string, change: (root: El) => void): string {
    const doc = create(xml);
    change(doc.root().node as unknown as El);
    return doc.end({ prettyPrint: true });
}

/** fence_virt.conf (`block { key = "value"; }`) flattened to "block/sub/key" → value. Not XML, so a tiny reader. */
function fenceVirtConfSettings(text: string): Record<string, string> {
    const out: Record<string, string> = {};
    const path: string[] = [];
    for (const raw of text.split("\n")) {
        const line = raw.replace(/#.*$/, "").trim();
        if (line === "") continue;
        let m: RegExpExecArray | null;
        if ((m = /^([A-Za-z0-9_]+)\s*\{$/.exec(line))) path.push(m[1]);
        else if (line === "}") path.pop();
        else if ((m = /^([A-Za-z0-9_]+)\s*=\s*"([^"]+)";$/.exec(line))) out[[...path, m[1]].join("/")] = m[2];
        else throw new Error(`unexpected fence_virt.conf line: ${raw}`);
    }
    return out;
}

// ---------------------------------------------------------------- judges

function expectSchemaValid(xml: string) {
    expect(wellFormedText(xml)).toMatchObject({ ok: true });
    const r = validateRelaxNgText(SCHEMA, xml);
    expect(r.ok, r.output).toBe(true);
    const fence = cmanFenceSchema();
    if (fence !== undefined) {
        const f = validateRelaxNgText(fence.combined, xml);
        expect(f.ok, `against cman's fence device definitions (${fence.combined}): ${f.output}`).toBe(true);
    }
    if (CMAN_RNG !== undefined) {
        const c = validateRelaxNgText(CMAN_RNG, xml);
        expect(c.ok, `against ${CMAN_RNG}: ${c.output}`).toBe(true);
    }
}

function expectSchemaInvalid(xml: string, why: RegExp) {
    expect(wellFormedText(xml).ok).toBe(true);
    const r = validateRelaxNgText(SCHEMA, xml);
    expect(r.ok, `schema accepted:\n${xml}`).toBe(false);
    expect(r.output).toMatch(why);
}

// ---------------------------------------------------------------- guest cluster

describe.each(["lab", "dev"] as const)("renderGuestClusterConf (%s stack)", (stack) => {
    const spec = stackSpec(stack);
    const gc = spec.guestCluster;
    const xml = renderGuestClusterConf(spec, { configVersion: 7 });
    const root = parse(xml);

    it("is the cluster named in the spec, at the given config_version, with an XML declaration", () => {
        expect(xml.startsWith('<?xml version="1.0"?>\n<cluster ')).toBe(true);
        expect(xml.endsWith("</cluster>\n")).toBe(true);
        expect(root.nodeName).toBe("cluster");
        expect(attrs(root)).toEqual({ name: gc.name, config_version: "7" });
        expect(parse(renderGuestClusterConf(spec, { configVersion: 42 })).getAttribute("config_version")).toBe("42");
    });

    it("has one clusternode per guest: node name = guest name = fence domain, nodeid in node order", () => {
        const nodes = all(root, "clusternode");
        expect(nodes.map((n) => n.getAttribute("name"))).toEqual(gc.nodes);
        expect(nodes.map((n) => n.getAttribute("nodeid"))).toEqual(gc.nodes.map((_, i) => String(i + 1)));
        expect(nodes.map((n) => n.getAttribute("votes"))).toEqual(gc.nodes.map(() => "1"));
        const guestNames = new Set(spec.guests.map((g) => g.name));
        for (const node of nodes) {
            const name = node.getAttribute("name")!;
            expect(guestNames.has(name), `${name} is a guest (libvirt domain)`).toBe(true);
            const methods = all(node, "method");
            expect(methods.map((m) => attrs(m))).toEqual([{ name: "1" }]);
            const devices = all(methods[0], "device");
            expect(devices).toHaveLength(1);
            // the victim is the libvirt domain of the same name, given once (fence_xvm rejects two victims); in a
            // two-node cluster the first node's device waits DEFAULTS.cluster.fenceDelay.seconds, so it wins a race
            const delay = gc.nodes.length === 2 && name === gc.nodes[0] ? { delay: String(DEFAULTS.cluster.fenceDelay.seconds) } : {};
            expect(attrs(devices[0])).toEqual({ name: xvmFenceDeviceName(name), domain: name, ...delay });
        }
    });

    it("has one fence_xvm device per node, each referenced, carrying the spec's fencing settings that differ from fence_xvm's defaults", () => {
        const devices = all(root, "fencedevice");
        expect(devices).toHaveLength(gc.nodes.length);
        const byName = new Map(devices.map((d) => [d.getAttribute("name")!, d]));
        expect(byName.size).toBe(devices.length);
        const referenced = all(root, "device").map((d) => d.getAttribute("name")!);
        expect(new Set(referenced)).toEqual(new Set(byName.keys()));
        // both stacks use the default key file, port, hash and auth (fence_xvm's own defaults): only the address
        expect([gc.fencing.keyFile, gc.fencing.multicast.port, gc.fencing.hash, gc.fencing.auth]).toEqual(["/etc/cluster/fence_xvm.key", 1229, "sha256", "sha256"]);
        for (const d of devices) {
            expect(attrs(d)).toEqual({ name: d.getAttribute("name"), agent: "fence_xvm", multicast_address: gc.fencing.multicast.address });
        }
    });

    it("matches every host's fence_virt.conf: same key file, multicast address, port, hash and auth (as the attribute, else fence_xvm's default)", (ctx) => {
        need(ctx, NEED_FENCE_VIRT, HAVE_FENCE_XVM);
        for (const host of spec.hosts) {
            const listener = fenceVirtConfSettings(renderFenceVirtConf(spec, host));
            for (const d of all(root, "fencedevice")) {
                expect({
                    key_file: effective(d, "key_file"),
                    multicast_address: d.getAttribute("multicast_address"),
                    ipport: effective(d, "ipport"),
                    hash: effective(d, "hash"),
                    auth: effective(d, "auth"),
                }).toEqual({
                    key_file: listener["listeners/multicast/key_file"],
                    multicast_address: listener["listeners/multicast/address"],
                    ipport: listener["listeners/multicast/port"],
                    hash: listener["listeners/multicast/hash"],
                    auth: listener["listeners/multicast/auth"],
                });
            }
        }
    });

    it("sets two_node only for two nodes, otherwise expected_votes = total votes", () => {
        expect(gc.nodes.length).toBe(stack === "lab" ? 2 : 3); // both branches below are exercised
        const cman = attrs(one(root, "cman"));
        if (gc.nodes.length === 2) expect(cman).toEqual({ two_node: "1", expected_votes: "1" });
        else expect(cman).toEqual({ expected_votes: String(gc.nodes.length) });
    });

    it("configures fenced's delays (the schema's defaults), no totem override and no <rm> without services", () => {
        expect(gc.fenceDaemon).toEqual({ postJoinDelay: DEFAULTS.cluster.fenceDaemon.postJoinDelay, postFailDelay: DEFAULTS.cluster.fenceDaemon.postFailDelay });
        expect(attrs(one(root, "fence_daemon"))).toEqual({
            post_join_delay: String(DEFAULTS.cluster.fenceDaemon.postJoinDelay),
            post_fail_delay: String(DEFAULTS.cluster.fenceDaemon.postFailDelay),
        });
        expect(all(root, "totem")).toHaveLength(0);
        expect(all(root, "rm")).toHaveLength(0);
    });

    it("is byte-identical across renders and across independently built specs", () => {
        expect(renderGuestClusterConf(spec, { configVersion: 7 })).toBe(xml);
        expect(renderGuestClusterConf(stackSpec(stack), { configVersion: 7 })).toBe(xml);
    });

    it("is well-formed and valid against schema/cluster-conf.rng" + AND_CMAN, (ctx) => {
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        expectSchemaValid(xml);
    });
});

// ---------------------------------------------------------------- host cluster

describe("renderHostClusterConf (dev stack)", () => {
    const spec = stackSpec("dev");
    const hc = spec.hostCluster!;
    const xml = renderHostClusterConf(spec, { configVersion: 3, passwords: {} });
    const root = parse(xml);

    it("is the host cluster at the given config_version, two hosts in two_node mode", () => {
        expect(xml.startsWith('<?xml version="1.0"?>\n')).toBe(true);
        expect(attrs(root)).toEqual({ name: hc.name, config_version: "3" });
        expect(attrs(one(root, "cman"))).toEqual({ two_node: "1", expected_votes: "1" });
        expect(one(root, "fence_daemon").hasAttribute("post_join_delay")).toBe(true);
    });

    it("has one clusternode per host, in host order, fenced by that host's own devices", () => {
        const nodes = all(root, "clusternode");
        expect(nodes.map((n) => attrs(n))).toEqual(spec.hosts.map((h, i) => ({ name: h.name, nodeid: String(i + 1), votes: "1" })));
        const defined = new Set(all(root, "fencedevice").map((d) => d.getAttribute("name")));
        for (const node of nodes) {
            const host = node.getAttribute("name");
            const devices = all(node, "device");
            expect(devices.map((d) => d.getAttribute("name"))).toEqual(hc.fenceDevices.filter((d) => d.host === host).map((d) => d.name));
            for (const d of devices) {
                expect(defined.has(d.getAttribute("name")), `device ${d.getAttribute("name")} is defined`).toBe(true);
                // fence_ipmilan fences the BMC's own machine: no port; the first host (two-node) wins a fence race
                expect(d.getAttributeNames()).toEqual(host === spec.hosts[0].name ? ["name", "delay"] : ["name"]);
            }
        }
    });

    it("renders each fence device's agent and params, and no passwd when no password is given", () => {
        const devices = all(root, "fencedevice");
        expect(devices.map((d) => attrs(d))).toEqual(hc.fenceDevices.map((d) => ({ name: d.name, agent: d.agent, ...d.params })));
        for (const d of devices) expect(d.hasAttribute("passwd")).toBe(false);
        expect(xml).not.toMatch(/passw/);
    });

    it("renders passwd exactly for the devices given a password, escaped by the builder", (ctx) => {
        const secret = `s3cr&t"<pw>'`;
        const withPw = renderHostClusterConf(spec, { configVersion: 3, passwords: { "ipmi-kvm1": secret, "ipmi-kvm2": undefined } });
        const devices = new Map(all(parse(withPw), "fencedevice").map((d) => [d.getAttribute("name"), d]));
        expect(devices.get("ipmi-kvm1")!.getAttribute("passwd")).toBe(secret);
        expect(devices.get("ipmi-kvm2")!.hasAttribute("passwd")).toBe(false);
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        expectSchemaValid(withPw);
    });

    it("has the failover domains with their flags and members, members being cluster nodes", () => {
        const nodeNames = new Set(all(root, "clusternode").map((n) => n.getAttribute("name")));
        const domains = all(root, "failoverdomain");
        expect(
            domains.map((d) => ({ ...attrs(d), members: all(d, "failoverdomainnode").map((m) => attrs(m)) })),
        ).toEqual(
            hc.failoverDomains.map((d) => ({
                name: d.name,
                ordered: d.ordered ? "1" : "0",
                restricted: d.restricted ? "1" : "0",
                nofailback: d.nofailback ? "1" : "0",
                members: d.members.map((m) => ({ name: m.host, ...(m.priority !== undefined ? { priority: String(m.priority) } : {}) })),
            })),
        );
        for (const m of all(root, "failoverdomainnode")) expect(nodeNames.has(m.getAttribute("name"))).toBe(true);
    });

    it("has one <vm> per VM service with the seed's attributes (vm.sh's defaults left out), its XML where GuestVm writes it", () => {
        const rm = one(root, "rm");
        const vms = all(rm, "vm");
        // the dev stack: autostart, not exclusive, recovery restart, live migration are vm.sh's defaults
        expect(hc.vmServices.map((s) => [s.autostart, s.exclusive, s.recovery, s.migrate])).toEqual(hc.vmServices.map(() => [true, false, "restart", "live"]));
        expect(vms.map((v) => attrs(v))).toEqual(
            hc.vmServices.map((s) => ({
                name: s.guest,
                domain: s.failoverDomain,
                path: `${spec.xmlDir.path}/`,
                max_restarts: String(s.maxRestarts),
                restart_expire_time: String(s.restartExpireTime),
                use_virsh: "1",
            })),
        );
        const domainNames = new Set(all(root, "failoverdomain").map((d) => d.getAttribute("name")));
        const guestNames = new Set(spec.guests.map((g) => g.name));
        for (const vm of vms) {
            expect(guestNames.has(vm.getAttribute("name") ?? "")).toBe(true);
            if (vm.hasAttribute("domain")) expect(domainNames.has(vm.getAttribute("domain"))).toBe(true);
            // vm.sh looks for <path>/<name>.xml
            expect(`${vm.getAttribute("path")}${vm.getAttribute("name")}.xml`).toBe(domainXmlPath(spec.xmlDir.path, vm.getAttribute("name")!));
        }
        expect(vms.map((v) => v.getAttribute("path"))).toEqual(hc.vmServices.map(() => "/var/lib/libvirt/images/xml_defs/"));
    });

    it("is byte-identical across renders and across independently built specs", () => {
        expect(renderHostClusterConf(spec, { configVersion: 3, passwords: {} })).toBe(xml);
        expect(renderHostClusterConf(stackSpec("dev"), { configVersion: 3, passwords: {} })).toBe(xml);
    });

    it("is well-formed and valid against schema/cluster-conf.rng" + AND_CMAN, (ctx) => {
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        expectSchemaValid(xml);
    });

    it("with three hosts has no two_node and expects three votes", (ctx) => {
        const three = devWithThreeHosts();
        const xml3 = renderHostClusterConf(three, { configVersion: 1, passwords: {} });
        const root3 = parse(xml3);
        expect(attrs(one(root3, "cman"))).toEqual({ expected_votes: "3" });
        expect(all(root3, "clusternode").map((n) => n.getAttribute("name"))).toEqual(["kvm1", "kvm2", "kvm3"]);
        expect(all(root3, "fencedevice")).toHaveLength(3);
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        expectSchemaValid(xml3);
    });

    it("is refused for a lab without a host cluster", () => {
        expect(() => renderHostClusterConf(stackSpec("lab"), { configVersion: 1, passwords: {} })).toThrow(/no hostCluster/);
    });
});

describe("renderer guards", () => {
    it.each([0, -1, 1.5, Number.NaN])("refuses config_version %s", (v) => {
        expect(() => renderGuestClusterConf(stackSpec("lab"), { configVersion: v })).toThrow(/config_version must be a positive integer/);
    });

    it("refuses a fence device name that cannot be an XML ID (cman's schema types it as one)", () => {
        const spec = stackSpec("dev");
        spec.hostCluster!.fenceDevices[0].name = "1ipmi";
        expect(() => renderHostClusterConf(spec, { configVersion: 1, passwords: {} })).toThrow(/"1ipmi".*XML ID/);
    });
});

// ---------------------------------------------------------------- the schema says no

describe("schema/cluster-conf.rng rejects", () => {
    requires(NEED_XMLLINT, HAVE_XMLLINT);
    const guest = renderGuestClusterConf(stackSpec("lab"), { configVersion: 1 });
    const host = renderHostClusterConf(stackSpec("dev"), { configVersion: 1, passwords: { "ipmi-kvm1": "pw" } });
    const first = (root: El, tag: string) => all(root, tag)[0];
    const addChild = (parent: El, tag: string, a: Record<string, string> = {}) => {
        const el = parent.ownerDocument.createElement(tag);
        for (const [k, v] of Object.entries(a)) el.setAttribute(k, v);
        parent.appendChild(el);
    };

    it("accepts the unmodified files (the baseline of every case below)", () => {
        expect(validateRelaxNgText(SCHEMA, guest).ok).toBe(true);
        expect(validateRelaxNgText(SCHEMA, host).ok).toBe(true);
        // boundaries that must stay accepted
        expect(validateRelaxNgText(SCHEMA, mutate(guest, (r) => r.setAttribute("name", "a-15-chars-name"))).ok).toBe(true);
        expect(validateRelaxNgText(SCHEMA, mutate(host, (r) => first(r, "vm").setAttribute("recovery", "relocate"))).ok).toBe(true);
    });

    it.each<[string, "guest" | "host", (root: El) => void, RegExp]>([
        ["a clusternode without a name", "guest", (r) => first(r, "clusternode").removeAttribute("name"), /Element clusternode failed to validate attributes/],
        ["a cluster without a name", "guest", (r) => r.removeAttribute("name"), /element cluster: .*failed to validate attributes/],
        ["a cluster name over 15 characters", "guest", (r) => r.setAttribute("name", "a-very-long-name1"), /element cluster: .*attributes/],
        ["config_version that is not a number", "guest", (r) => r.setAttribute("config_version", "seven"), /positiveInteger doesn't allow value 'seven'/],
        ["an unknown element", "guest", (r) => addChild(r, "bogus"), /Did not expect element bogus there/],
        ["an unknown attribute on a fence device (keyfile for key_file)", "guest", (r) => first(r, "fencedevice").setAttribute("keyfile", "/k"), /Invalid attribute keyfile for element fencedevice/],
        ["an unsupported hash", "guest", (r) => first(r, "fencedevice").setAttribute("hash", "sha257"), /Invalid attribute hash for element fencedevice/],
        ["a fence_xvm attribute on another agent", "host", (r) => first(r, "fencedevice").setAttribute("multicast_address", "225.0.0.12"), /Invalid attribute multicast_address for element fencedevice/],
        ["an unknown fence agent", "guest", (r) => first(r, "fencedevice").setAttribute("agent", "fence_nonesuch"), /Element fencedevice failed to validate attributes/],
        ["a device naming no fence device", "guest", (r) => first(r, "device").setAttribute("name", "xvm-nowhere"), /references an unknown ID "xvm-nowhere"/],
        ["two fence devices with one name", "guest", (r) => all(r, "fencedevice")[1].setAttribute("name", all(r, "fencedevice")[0].getAttribute("name")!), /ID xvm-node1 redefined/],
        ["a device giving the victim twice (domain and port)", "guest", (r) => first(r, "device").setAttribute("port", "node1"), /Invalid attribute port for element device/],
        ["two_node without expected_votes=1", "guest", (r) => first(r, "cman").setAttribute("expected_votes", "2"), /Invalid attribute two_node for element cman/],
        ["nodeid 0", "guest", (r) => first(r, "clusternode").setAttribute("nodeid", "0"), /positiveInteger doesn't allow value '0'/],
        ["a missing <clusternodes>", "guest", (r) => r.removeChild(first(r, "clusternodes")), /Did not expect element fencedevices/],
        ["<rm> before <clusternodes> (the contract's fixed order)", "host", (r) => r.insertBefore(r.removeChild(first(r, "rm")), first(r, "clusternodes")), /Did not expect element rm there/],
        ["recovery=\"explode\"", "host", (r) => first(r, "vm").setAttribute("recovery", "explode"), /Invalid attribute recovery for element vm/],
        ["autostart=\"yes\" (booleans are 0/1)", "host", (r) => first(r, "vm").setAttribute("autostart", "yes"), /Invalid attribute autostart for element vm/],
        ["max_restarts=\"-1\"", "host", (r) => first(r, "vm").setAttribute("max_restarts", "-1"), /Invalid attribute max_restarts for element vm/],
        ["a vm without a name", "host", (r) => first(r, "vm").removeAttribute("name"), /Element vm failed to validate attributes/],
        ["hardrecovery (rgmanager 2.x only, not in the target release)", "host", (r) => first(r, "vm").setAttribute("hardrecovery", "0"), /hardrecovery|Element vm failed to validate attributes/],
        ["migrate=\"teleport\"", "host", (r) => first(r, "vm").setAttribute("migrate", "teleport"), /Invalid attribute migrate for element vm/],
        ["a vm depend that is not service:/vm:NAME", "host", (r) => first(r, "vm").setAttribute("depend", "gnode2"), /Invalid attribute depend for element vm/],
        ["a migration_mapping that is not member:target,...", "host", (r) => first(r, "vm").setAttribute("migration_mapping", "kvm1=kvm1-mig"), /Invalid attribute migration_mapping for element vm/],
        ["a child resource under a vm", "host", (r) => addChild(first(r, "vm"), "script", { name: "x", file: "/x" }), /vm has extra content: script|Did not expect element script/],
        ["a device delay that is negative", "host", (r) => first(r, "device").setAttribute("delay", "-5"), /Invalid attribute delay for element device/],
        ["a method without devices", "host", (r) => { const m = first(r, "method"); for (const d of all(m, "device")) m.removeChild(d); }, /element method: Relax-NG validity error : Expecting an element/],
        ["a totem token of 0", "host", (r) => r.insertBefore(((): El => { const t = r.ownerDocument.createElement("totem"); t.setAttribute("token", "0"); return t; })(), first(r, "fence_daemon")), /Invalid attribute token for element totem/],
        ["an ordered flag that is not 0/1", "host", (r) => first(r, "failoverdomain").setAttribute("ordered", "true"), /Invalid attribute ordered for element failoverdomain/],
        ["an empty password", "host", (r) => first(r, "fencedevice").setAttribute("passwd", ""), /Invalid attribute passwd for element fencedevice/],
    ])("%s", (_, which, change, why) => {
        expectSchemaInvalid(mutate(which === "guest" ? guest : host, change), why);
    });
});

// ---------------------------------------------------------------- fence_xvm itself

/** The guest stacks whose devices the agents judge: both stacks, the dev stack over tcp and over vsock, and extra levels. */
function agentSpecs(): [string, LabSpec][] {
    return [
        ["lab", stackSpec("lab")],
        ["dev", stackSpec("dev")],
        ["dev-tcp", scenarioSpec("dev", (r) => (r.guestCluster.fencing.listener = "tcp"))],
        [
            "dev-vsock",
            scenarioSpec("dev", (r) => {
                r.guestCluster.fencing.listener = "vsock";
                // vsock reaches only the host a node runs on: the nodes share one
                for (const g of r.guests) g.host = "kvm1";
            }),
        ],
        [
            "dev-multicast-tuned",
            scenarioSpec("dev", (r) => {
                Object.assign(r.guestCluster.fencing, { keyFile: "/etc/cluster/devguests.key", hash: "sha512", auth: "sha1" });
                r.guestCluster.fencing.multicast.port = 1240;
                r.guestCluster.fenceDevices = [{ name: "xvm-patient", agent: "fence_xvm", params: { timeout: "60", retrans: "5" } }];
                r.guestCluster.fenceLevels = [{ devices: [{ device: "xvm-patient", ports: { gnode3: "gnode3-alias" } }] }];
            }),
        ],
        [
            "dev-tcp-keyed",
            scenarioSpec("dev", (r) => {
                r.guestCluster.fencing = { listener: "tcp", tcp: { port: 1260 }, keyFile: "/etc/cluster/devguests.key", hash: "sha512" };
            }),
        ],
        [
            "lab-tcp-levels",
            scenarioSpec("lab", (r) => {
                r.guestCluster.fencing.listener = "tcp";
                r.guestCluster.fenceDevices = [
                    { name: "xvm-node1", agent: "fence_virt", params: { ipaddr: "10.99.0.1" } },
                    { name: "virt-slow", agent: "fence_virt", params: { ipaddr: "10.99.0.1", timeout: "20" } },
                ];
                r.guestCluster.fenceLevels = [{ devices: [{ device: "xvm-node1" }] }, { devices: [{ device: "virt-slow", ports: { node2: "node2-alias" } }] }];
            }),
        ],
    ];
}

/** agent → the attribute names its <fencedevice>s and the <device>s naming them carry (fenced's own name/agent left out). */
function attributesByAgent(root: El): Map<string, Set<string>> {
    const agentOf = new Map(all(root, "fencedevice").map((d) => [d.getAttribute("name"), d.getAttribute("agent")!]));
    const out = new Map<string, Set<string>>();
    const add = (agent: string, names: string[]) => {
        const set = out.get(agent) ?? new Set<string>();
        for (const n of names) if (n !== "name" && n !== "agent") set.add(n);
        out.set(agent, set);
    };
    for (const d of all(root, "fencedevice")) add(d.getAttribute("agent")!, d.getAttributeNames());
    for (const d of all(root, "device")) add(agentOf.get(d.getAttribute("name"))!, d.getAttributeNames());
    return out;
}

describe("the agents' own metadata name every attribute the guest cluster's devices carry", () => {
    requires(NEED_FENCE_VIRT, HAVE_FENCE_XVM && HAVE_FENCE_VIRT);

    it.each(agentSpecs())("%s", (_, spec) => {
        const byAgent = attributesByAgent(parse(renderGuestClusterConf(spec, { configVersion: 1 })));
        for (const [agent, used] of byAgent) {
            expect(["fence_xvm", "fence_virt"]).toContain(agent);
            const params = agentParameters(agent);
            expect([...used].filter((a) => !params.has(a)), agent).toEqual([]);
        }
    });

    it("covers both agents and every transport parameter (the check is not vacuous)", () => {
        const used = new Map<string, Set<string>>();
        for (const [, spec] of agentSpecs()) {
            for (const [agent, names] of attributesByAgent(parse(renderGuestClusterConf(spec, { configVersion: 1 })))) {
                used.set(agent, new Set([...(used.get(agent) ?? []), ...names]));
            }
        }
        // (auth is always sha256, fence_virt's default, over tcp and vsock: never rendered for fence_virt)
        expect([...used.get("fence_virt")!]).toEqual(expect.arrayContaining(["ipaddr", "vsock", "ipport", "key_file", "hash", "domain", "timeout"]));
        expect([...used.get("fence_xvm")!]).toEqual(expect.arrayContaining(["multicast_address", "ipport", "key_file", "hash", "auth", "domain", "delay", "timeout", "retrans"]));
        expect(agentParameters("fence_virt").has("multicast_address")).toBe(false);
    });
});

describe("fence_xvm accepts the rendered guest cluster's arguments", () => {
    requires(NEED_FENCE_VIRT, HAVE_FENCE_XVM && HAVE_FENCE_VIRT);
    let dir = "";
    beforeAll(() => {
        dir = mkdtempSync(join(tmpdir(), "hcc-fence-xvm-"));
    });
    afterAll(() => {
        if (dir !== "") rmSync(dir, { recursive: true, force: true });
    });

    it("every fence_xvm attribute is a parameter of fence_xvm's own metadata", () => {
        const params = agentParameters("fence_xvm");
        const root = parse(renderGuestClusterConf(stackSpec("dev"), { configVersion: 1 }));
        const used = new Set([...all(root, "fencedevice"), ...all(root, "device")].flatMap((e) => e.getAttributeNames()));
        used.delete("name"); // fenced's own: which device
        used.delete("agent"); // fenced's own: which program (the agent ignores it)
        expect([...used].filter((a) => !params.has(a))).toEqual([]);
    });

    it.each(agentSpecs().map(([name]) => name))("%s: `-o validate-all` with stdin built as fenced builds it passes for every node", (stack) => {
        const keyFile = join(dir, `${stack}.key`);
        writeFileSync(keyFile, Buffer.alloc(4096, 7), { mode: 0o400 });
        const spec = agentSpecs().find(([name]) => name === stack)![1];
        // the key here, also where validation filled the lab's key into an extra device
        for (const d of spec.guestCluster.fenceDevices) if (d.params.key_file === spec.guestCluster.fencing.keyFile) d.params.key_file = keyFile;
        spec.guestCluster.fencing.keyFile = keyFile;
        const root = parse(renderGuestClusterConf(spec, { configVersion: 1 }));
        const devices = new Map(all(root, "fencedevice").map((d) => [d.getAttribute("name"), d]));
        for (const node of all(root, "clusternode")) {
            for (const device of all(node, "device")) {
                // libfence make_args: the <device> attributes but name, nodename, then the <fencedevice> attributes but name
                const lines = [
                    ...Object.entries(attrs(device)).filter(([k]) => k !== "name"),
                    ["nodename", node.getAttribute("name")!],
                    ...Object.entries(attrs(devices.get(device.getAttribute("name"))!)).filter(([k]) => k !== "name"),
                    ["action", "validate-all"],
                ].map(([k, v]) => `${k}=${v}\n`);
                // the agent named on the device: fence_xvm, or fence_virt (validate-all does no network I/O)
                const agent = devices.get(device.getAttribute("name"))!.getAttribute("agent")!;
                expect(["fence_xvm", "fence_virt"]).toContain(agent);
                const r = spawnSync(agent, [], { input: lines.join(""), encoding: "utf8", timeout: 20_000 });
                const out = `${r.stdout}${r.stderr}`;
                expect(r.status, out).toBe(0);
                expect(out).not.toMatch(/Ignoring unknown option|may not be specified more than once|Unsupported/);
            }
        }
    });

    it("and refuses a victim given twice (why the device carries only domain)", () => {
        const keyFile = join(dir, "twice.key");
        writeFileSync(keyFile, Buffer.alloc(4096, 1), { mode: 0o400 });
        const r = spawnSync("fence_xvm", [], { input: `domain=node1\nport=node1\nkey_file=${keyFile}\naction=validate-all\n`, encoding: "utf8" });
        expect(r.status).not.toBe(0);
        expect(`${r.stdout}${r.stderr}`).toMatch(/more than once/);
    });
});

// cman's own cluster.rng is an extra judge, never a missing one: where CMAN_CLUSTER_RNG names it (or a cman
// installation has it), expectSchemaValid also validates every file against it; elsewhere the files are judged by
// schema/cluster-conf.rng and cman's generated fence definitions only (README, Tests). A CMAN_CLUSTER_RNG that names
// no file is a mistake this test reports.
if (process.env.CMAN_CLUSTER_RNG) {
    describe("cman's own cluster.rng (CMAN_CLUSTER_RNG)", () => {
        it("names an existing file, which judges every rendered file", () => {
            expect(existsSync(process.env.CMAN_CLUSTER_RNG!), `CMAN_CLUSTER_RNG=${process.env.CMAN_CLUSTER_RNG}`).toBe(true);
            expect(CMAN_RNG).toBe(process.env.CMAN_CLUSTER_RNG);
        });
    });
}

describe("cman's fence device definitions, generated from the installed fence agents as ccs_update_schema does", () => {
    const MODELLED = Object.keys(FENCE_AGENT_PARAMS);

    /** agent → the attribute names of its group in the generated FENCEDEVICEOPTIONS. */
    function cmanGroups(): Map<string, Set<string>> {
        const root = parse(readFileSync(cmanFenceSchema()!.fenceAgents, "utf8"));
        const byAgent = new Map<string, Set<string>>();
        for (const g of all(root, "group")) {
            const agent = g.getAttribute("rha:name");
            if (agent !== null) byAgent.set(agent, new Set(all(g, "attribute").map((a) => a.getAttribute("name")!)));
        }
        return byAgent;
    }

    function define(root: El, name: string): El {
        return byAttr(root, "define", name);
    }

    /** The attribute names a RELAX NG pattern mentions, through the defines it refers to (the agent selector left out). */
    function attributeNames(el: El, grammar: El = parse(readFileSync(SCHEMA, "utf8"))): Set<string> {
        const out = new Set(all(el, "attribute").map((a) => a.getAttribute("name")!).filter((n) => n !== "agent"));
        for (const r of all(el, "ref")) for (const n of attributeNames(define(grammar, r.getAttribute("name")!), grammar)) out.add(n);
        return out;
    }

    /** Our schema's branch of `fencedevice-agent` for each agent. */
    function ourBranches(): Map<string, El> {
        const ours = parse(readFileSync(SCHEMA, "utf8"));
        const branches = children(children(define(ours, "fencedevice-agent"), "choice")[0], "group");
        return new Map(branches.map((b) => [all(b, "value")[0].textContent!, b]));
    }

    it("config validation accepts exactly the agents both schemas model: the guest cluster's and the host cluster's", () => {
        expect([...GUEST_FENCE_AGENTS, ...HOST_FENCE_AGENTS].sort()).toEqual([...MODELLED].sort());
        expect([...ourBranches().keys()].sort()).toEqual([...MODELLED].sort());
        // the agents the issue names, and fence_tool / fence_ack_manual (not agents) not among them
        expect(MODELLED).toEqual(expect.arrayContaining(["fence_apc_snmp", "fence_wti"]));
        expect(MODELLED).not.toEqual(expect.arrayContaining(["fence_tool"]));
        expect(MODELLED).not.toContain("fence_ack_manual");
    });

    it("schema/cluster-conf.rng holds every parameter config validation accepts for each agent (and passwd from passwordSecret)", () => {
        const branches = ourBranches();
        for (const [agent, params] of Object.entries(FENCE_AGENT_PARAMS)) {
            const names = attributeNames(branches.get(agent)!);
            const wanted = [...Object.keys(params), ...((HOST_FENCE_AGENTS as readonly string[]).includes(agent) ? ["passwd"] : [])];
            expect(wanted.filter((p) => !names.has(p)), `schema/cluster-conf.rng's ${agent} branch lacks parameters validation accepts`).toEqual([]);
        }
    });

    it("are built from every installed agent, the ones kvm-ha-lab models among them", (ctx) => {
        need(ctx, `cman's fence device definitions: missing ${CMAN_FENCE_MISSING}`, CMAN_FENCE_MISSING === undefined);
        const fence = cmanFenceSchema()!;
        expect(fence.agents).toEqual(expect.arrayContaining(MODELLED));
        expect(fence.withoutMetadata).toEqual([]);
        const groups = cmanGroups();
        for (const agent of fence.agents) expect(groups.has(agent), `a group for ${agent}`).toBe(true);
        // the groups are the agents' own parameters: fence_xvm's metadata, read here, names the same attributes
        const meta = agentParameters("fence_xvm");
        expect([...meta].filter((p) => !groups.get("fence_xvm")!.has(p))).toEqual([]);
    });

    it("refuse an attribute no agent defines, and two agents' attributes on one device", (ctx) => {
        need(ctx, `cman's fence device definitions: missing ${CMAN_FENCE_MISSING}`, CMAN_FENCE_MISSING === undefined);
        const { combined } = cmanFenceSchema()!;
        const xml = renderGuestClusterConf(stackSpec("lab"), { configVersion: 1 });
        expect(validateRelaxNgText(combined, xml)).toMatchObject({ ok: true });
        const refused = (change: (root: El) => void) => {
            const r = validateRelaxNgText(combined, mutate(xml, change));
            expect(r.ok, r.output).toBe(false);
            return r.output;
        };
        expect(refused((root) => all(root, "fencedevice")[0].setAttribute("colour", "red"))).toMatch(/fencedevice/);
        // lanplus is fence_ipmilan's, multicast_address fence_xvm's: no one agent has both
        expect(refused((root) => all(root, "fencedevice")[0].setAttribute("lanplus", "1"))).toMatch(/fencedevice/);
        expect(refused((root) => all(root, "device")[0].setAttribute("lanplus", "1"))).toMatch(/device/);
    });

    it("hold every attribute schema/cluster-conf.rng allows a modelled agent (ours accepts a subset of cman's)", (ctx) => {
        need(ctx, `cman's fence device definitions: missing ${CMAN_FENCE_MISSING}`, CMAN_FENCE_MISSING === undefined);
        const groups = cmanGroups();
        const ours = parse(readFileSync(SCHEMA, "utf8"));
        const seen: string[] = [];
        for (const [agent, branch] of ourBranches()) {
            seen.push(agent);
            const extra = [...attributeNames(branch)].filter((a) => !groups.get(agent)?.has(a));
            expect(extra, `schema/cluster-conf.rng lets ${agent} carry attributes cman's ${agent} group lacks`).toEqual([]);
        }
        expect(seen.sort()).toEqual([...MODELLED].sort());
        // a <device> names a fence_xvm or fence_virt victim; cman's groups must hold those attributes too
        const device = attributeNames(define(ours, "device"));
        device.delete("name");
        for (const agent of ["fence_xvm", "fence_virt"]) expect([...device].filter((a) => !groups.get(agent)!.has(a)), agent).toEqual([]);
    });

    it("hold every parameter config validation accepts for a modelled agent, and those kvm-ha-lab sets itself", (ctx) => {
        need(ctx, `cman's fence device definitions: missing ${CMAN_FENCE_MISSING}`, CMAN_FENCE_MISSING === undefined);
        const groups = cmanGroups();
        for (const [agent, params] of Object.entries(FENCE_AGENT_PARAMS)) {
            expect(Object.keys(params).filter((p) => !groups.get(agent)!.has(p)), agent).toEqual([]);
        }
        // passwd from passwordSecret; delay from fenceDelay; domain per node on the <device>
        for (const agent of HOST_FENCE_AGENTS) expect(groups.get(agent), agent).toContain("passwd");
        for (const agent of ["fence_xvm", "fence_virt"]) for (const a of ["delay", "domain"]) expect(groups.get(agent), agent).toContain(a);
    });
});

// ---------------------------------------------------------------- scenarios: what each file means

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A stack changed by `edit`, validated into a spec (a stack plus edits is how users write these). */
function scenarioSpec(stack: "lab" | "dev", edit: (raw: Raw) => void): LabSpec {
    const raw = structuredClone(rawStack(stack)) as Raw;
    edit(raw);
    return specFrom(stack, raw, SECRETS[stack]);
}

function children(el: El, tag?: string): El[] {
    const out: El[] = [];
    const kids = (el as unknown as { childNodes: ArrayLike<El & { nodeType: number }> }).childNodes;
    for (const k of Array.from(kids)) if (k.nodeType === 1 && (tag === undefined || k.nodeName === tag)) out.push(k);
    return out;
}

function byAttr(root: El, tag: string, name: string): El {
    const found = all(root, tag).filter((e) => e.getAttribute("name") === name);
    expect(found, `exactly one <${tag} name="${name}">`).toHaveLength(1);
    return found[0];
}

/** node name → its methods, each the list of its devices' attributes. */
function fencing(root: El): Record<string, Record<string, string>[][]> {
    return Object.fromEntries(
        all(root, "clusternode").map((n) => [n.getAttribute("name")!, all(n, "method").map((m) => all(m, "device").map(attrs))]),
    );
}

/** failover domain name → its members' names in priority order (lowest number first). */
function domainOrder(root: El, name: string): string[] {
    return all(byAttr(root, "failoverdomain", name), "failoverdomainnode")
        .map((m) => ({ n: m.getAttribute("name")!, p: Number(m.getAttribute("priority")) }))
        .sort((a, b) => a.p - b.p)
        .map((m) => m.n);
}

interface Scenario {
    name: string;
    spec: () => LabSpec;
    /** Which file(s) to judge. */
    files: ("guest" | "host")[];
    check: (root: { guest: El; host?: El }, spec: LabSpec) => void;
}

const SCENARIOS: Scenario[] = [
    {
        name: "two nodes: two_node quorum, fence delay on the first node only",
        spec: () => stackSpec("lab"),
        files: ["guest"],
        check: ({ guest }) => {
            expect(attrs(one(guest, "cman"))).toEqual({ two_node: "1", expected_votes: "1" });
            expect(fencing(guest)).toEqual({
                node1: [[{ name: "xvm-node1", domain: "node1", delay: "15" }]],
                node2: [[{ name: "xvm-node2", domain: "node2" }]],
            });
            // every delay in the file: exactly one
            expect(all(guest, "device").filter((d) => d.hasAttribute("delay"))).toHaveLength(1);
            expect(all(guest, "fencedevice").filter((d) => d.hasAttribute("delay"))).toHaveLength(0);
        },
    },
    {
        name: "two nodes, delay moved to the second node and lengthened; or switched off",
        spec: () => scenarioSpec("lab", (r) => (r.guestCluster.fenceDelay = { node: "node2", seconds: 25 })),
        files: ["guest"],
        check: ({ guest }) => {
            expect(fencing(guest)).toEqual({
                node1: [[{ name: "xvm-node1", domain: "node1" }]],
                node2: [[{ name: "xvm-node2", domain: "node2", delay: "25" }]],
            });
            const off = parse(renderGuestClusterConf(scenarioSpec("lab", (r) => (r.guestCluster.fenceDelay = { seconds: 0 })), { configVersion: 1 }));
            expect(all(off, "device").filter((d) => d.hasAttribute("delay"))).toHaveLength(0);
        },
    },
    {
        name: "three nodes with services: quorum of 3, no fence delay, totem and fenced timing, ip/script resources",
        spec: () =>
            scenarioSpec("dev", (r) => {
                r.guestCluster.totem = { token: 20000 };
                r.guestCluster.fenceDaemon = { postJoinDelay: 20, postFailDelay: 5, cleanStart: true };
                r.guestCluster.failoverDomains = [
                    { name: "front", ordered: true, restricted: true, nofailback: true, members: [{ node: "gnode2", priority: 1 }, { node: "gnode1", priority: 2 }] },
                ];
                r.guestCluster.services = [
                    {
                        name: "web",
                        failoverDomain: "front",
                        recovery: "relocate",
                        maxRestarts: 3,
                        restartExpireTime: 300,
                        ips: [{ address: "192.0.2.50/24" }, { address: "192.0.2.51", monitorLink: false }],
                        scripts: [
                            { name: "httpd", file: "/etc/init.d/httpd", independentSubtree: "restart", maxRestarts: 2, restartExpireTime: 60 },
                            { name: "stats", file: "/etc/init.d/stats", independentSubtree: "non-critical", enforceTimeouts: true },
                        ],
                    },
                    { name: "db", autostart: false, exclusive: true, recovery: "disable", depend: "web", dependMode: "soft", scripts: [{ name: "postgresql", file: "/etc/init.d/postgresql" }] },
                ];
            }),
        files: ["guest"],
        check: ({ guest }) => {
            expect(attrs(one(guest, "cman"))).toEqual({ expected_votes: "3" });
            expect(all(guest, "device").filter((d) => d.hasAttribute("delay"))).toHaveLength(0);
            expect(attrs(one(guest, "totem"))).toEqual({ token: "20000" });
            expect(attrs(one(guest, "fence_daemon"))).toEqual({ post_join_delay: "20", post_fail_delay: "5", clean_start: "1" });
            expect(attrs(byAttr(guest, "failoverdomain", "front"))).toEqual({ name: "front", ordered: "1", restricted: "1", nofailback: "1" });
            expect(domainOrder(guest, "front")).toEqual(["gnode2", "gnode1"]);
            const web = byAttr(guest, "service", "web");
            // service.sh's and ip.sh's defaults (autostart, not exclusive, monitor_link) are left out
            expect(attrs(web)).toEqual({
                name: "web",
                domain: "front",
                recovery: "relocate",
                max_restarts: "3",
                restart_expire_time: "300",
            });
            expect(children(web).map((c) => ({ tag: c.nodeName, ...attrs(c) }))).toEqual([
                { tag: "ip", address: "192.0.2.50/24" },
                { tag: "ip", address: "192.0.2.51", monitor_link: "0" },
                { tag: "script", name: "httpd", file: "/etc/init.d/httpd", __independent_subtree: "1", __max_restarts: "2", __restart_expire_time: "60" },
                { tag: "script", name: "stats", file: "/etc/init.d/stats", __independent_subtree: "2", __enforce_timeouts: "1" },
            ]);
            expect(attrs(byAttr(guest, "service", "db"))).toEqual({
                name: "db",
                autostart: "0",
                exclusive: "1",
                recovery: "disable",
                depend: "service:web",
                depend_mode: "soft",
            });
            // no guard anywhere: there is no anti-affinity group
            expect(all(guest, "script").map((s) => s.getAttribute("name"))).toEqual(["httpd", "stats", "postgresql"]);
        },
    },
    {
        name: "host cluster with VM services and failover domains: every vm.sh attribute of the target release",
        spec: () =>
            scenarioSpec("dev", (r) => {
                // two VMs share the attributes: one element carries at most MAX_ELEMENT_ATTRIBUTES (11)
                Object.assign(r.hostCluster.vmServices[0], {
                    autostart: false,
                    maxRestarts: 0,
                    restartExpireTime: 0,
                    migrate: "pause",
                    depend: "gnode2",
                    dependMode: "soft",
                    migrationMapping: { kvm2: "kvm2-mig", kvm1: "10.0.0.11" },
                    tunnelled: true,
                });
                Object.assign(r.hostCluster.vmServices[1], {
                    xmlFile: "/var/lib/libvirt/images/xml_defs/gnode2.xml",
                    exclusive: true,
                    recovery: "relocate",
                    maxRestarts: 0,
                    restartExpireTime: 0,
                    hypervisor: "qemu",
                    hypervisorUri: "qemu:///system",
                    migrationUri: "qemu+ssh://%s/system",
                    snapshot: "/var/lib/libvirt/save",
                    statusProgram: "/usr/local/bin/check-gnode2 --quick",
                });
            }),
        files: ["host"],
        check: ({ host }) => {
            expect(attrs(byAttr(host!, "vm", "gnode1"))).toEqual({
                name: "gnode1",
                domain: "prefer-kvm1",
                path: "/var/lib/libvirt/images/xml_defs/",
                autostart: "0",
                use_virsh: "1",
                migrate: "pause",
                depend: "vm:gnode2",
                depend_mode: "soft",
                // in host order, whatever the config's key order
                migration_mapping: "kvm1:10.0.0.11,kvm2:kvm2-mig",
                tunnelled: "1",
            });
            // an explicit xmlfile (the file the program writes) replaces the path search
            expect(attrs(byAttr(host!, "vm", "gnode2"))).toEqual({
                name: "gnode2",
                domain: "prefer-kvm2",
                xmlfile: "/var/lib/libvirt/images/xml_defs/gnode2.xml",
                exclusive: "1",
                recovery: "relocate",
                use_virsh: "1",
                hypervisor: "qemu",
                hypervisor_uri: "qemu:///system",
                migration_uri: "qemu+ssh://%s/system",
                snapshot: "/var/lib/libvirt/save",
                status_program: "/usr/local/bin/check-gnode2 --quick",
            });
            expect(byAttr(host!, "vm", "gnode2").hasAttribute("path")).toBe(false);
            expect(domainOrder(host!, "prefer-kvm1")).toEqual(["kvm1", "kvm2"]);
            expect(domainOrder(host!, "prefer-kvm2")).toEqual(["kvm2", "kvm1"]);
            for (const vm of all(host!, "vm")) expect(children(vm)).toEqual([]);
        },
    },
    {
        name: "anti-affinity groups: a rotated ordered domain per member, the guard first, the member's resources inside it",
        spec: () =>
            scenarioSpec("dev", (r) => {
                r.guestCluster.services = [
                    { name: "web1", ips: [{ address: "192.0.2.61/24" }], scripts: [{ name: "httpd1", file: "/etc/init.d/httpd" }] },
                    { name: "web2", ips: [{ address: "192.0.2.62/24" }], scripts: [{ name: "httpd2", file: "/etc/init.d/httpd" }] },
                    { name: "web3" },
                    { name: "lb1" },
                    { name: "lb2" },
                    { name: "other", scripts: [{ name: "cron", file: "/etc/init.d/crond" }] },
                ];
                r.guestCluster.antiAffinity = [
                    { name: "web", services: ["web1", "web2", "web3"] },
                    { name: "lb", services: ["lb1", "lb2"], failback: true },
                ];
                for (const s of r.hostCluster.vmServices) delete s.failoverDomain;
                r.hostCluster.antiAffinity = [{ name: "pair", services: ["gnode1", "gnode2"] }];
            }),
        files: ["guest", "host"],
        check: ({ guest, host }, spec) => {
            const nodes = spec.guestCluster.nodes;
            for (const [group, members, nofailback] of [["web", ["web1", "web2", "web3"], "1"], ["lb", ["lb1", "lb2"], "0"]] as const) {
                const preferred = new Set<string>();
                members.forEach((m, j) => {
                    const d = antiAffinityDomainName(group, m);
                    expect(attrs(byAttr(guest, "failoverdomain", d))).toEqual({ name: d, ordered: "1", restricted: "0", nofailback });
                    const order = domainOrder(guest, d);
                    // every node listed, the rotation starting at node j
                    expect(order).toEqual([...nodes.slice(j), ...nodes.slice(0, j)]);
                    preferred.add(order[0]);
                    const service = byAttr(guest, "service", m);
                    expect(service.getAttribute("domain")).toBe(d);
                    // the guard is the only direct child (so it starts first) ...
                    const direct = children(service);
                    expect(direct.map((c) => [c.nodeName, attrs(c)])).toEqual([["script", { name: guardResourceName(m), file: guardScriptPath(spec.lab, m) }]]);
                    // ... and the member's own resources are nested inside it
                    const own = spec.guestCluster.services.find((s) => s.name === m)!;
                    expect(children(direct[0]).map((c) => c.getAttribute("address") ?? c.getAttribute("name"))).toEqual([
                        ...own.ips.map((i) => i.address),
                        ...own.scripts.map((sc) => sc.name),
                    ]);
                });
                expect(preferred.size, `${group}: every member prefers another node`).toBe(members.length);
            }
            // not a member: no guard, no generated domain
            const other = byAttr(guest, "service", "other");
            expect(other.hasAttribute("domain")).toBe(false);
            expect(children(other).map((c) => c.getAttribute("name"))).toEqual(["cron"]);
            // the host cluster: placement only
            expect(domainOrder(host!, antiAffinityDomainName("pair", "gnode1"))).toEqual(["kvm1", "kvm2"]);
            expect(domainOrder(host!, antiAffinityDomainName("pair", "gnode2"))).toEqual(["kvm2", "kvm1"]);
            expect(all(host!, "vm").map((v) => v.getAttribute("domain"))).toEqual([antiAffinityDomainName("pair", "gnode1"), antiAffinityDomainName("pair", "gnode2")]);
            expect(all(host!, "script")).toHaveLength(0);
        },
    },
    {
        name: "several fence levels with several devices, in order, for guests and hosts",
        spec: () =>
            scenarioSpec("dev", (r) => {
                // extra devices reach the lab's own fence_virtd (multicast here), with other timing
                r.guestCluster.fenceDevices = [
                    { name: "xvm-backup", agent: "fence_xvm", params: { timeout: "60", retrans: "5" } },
                    { name: "xvm-v4", agent: "fence_xvm", params: { ip_family: "ipv4", timeout: "20" } },
                    { name: "xvm-last", agent: "fence_xvm", params: { retrans: "40" } },
                ];
                r.guestCluster.fenceLevels = [
                    { devices: [{ device: "xvm-backup" }] },
                    { devices: [{ device: "xvm-v4", ports: { gnode3: "gnode3-alias" } }, { device: "xvm-last" }] },
                ];
                r.hosts.push({ name: "kvm3", ssh: { address: "192.0.2.13" }, bridge: { name: "br0", uplink: "eth0", address: "192.0.2.13/24" } });
                r.hostCluster.fenceDevices.push(
                    { name: "ipmi-kvm3", agent: "fence_ipmilan", host: "kvm3", params: { ipaddr: "192.0.2.103", login: "admin" } },
                    { name: "pdu-a-kvm1", agent: "fence_ipmilan", host: "kvm1", level: 2, params: { ipaddr: "192.0.2.201", method: "cycle" } },
                    { name: "pdu-b-kvm1", agent: "fence_ipmilan", host: "kvm1", level: 2, params: { ipaddr: "192.0.2.202", method: "cycle" } },
                );
                r.hostCluster.fenceDelay = { node: "kvm2", seconds: 10 };
            }),
        files: ["guest", "host"],
        check: ({ guest, host }) => {
            expect(fencing(guest)).toEqual(
                Object.fromEntries(
                    ["gnode1", "gnode2", "gnode3"].map((n) => [
                        n,
                        [
                            [{ name: `xvm-${n}`, domain: n }],
                            [{ name: "xvm-backup", domain: n }],
                            [{ name: "xvm-v4", domain: n === "gnode3" ? "gnode3-alias" : n }, { name: "xvm-last", domain: n }],
                        ],
                    ]),
                ),
            );
            for (const n of all(guest, "clusternode")) expect(all(n, "method").map((m) => m.getAttribute("name"))).toEqual(["1", "2", "3"]);
            // the lab's multicast address filled in (the key, port, hash and auth are fence_xvm's defaults here)
            expect(attrs(byAttr(guest, "fencedevice", "xvm-backup"))).toEqual({ name: "xvm-backup", agent: "fence_xvm", multicast_address: "225.0.0.12", retrans: "5", timeout: "60" });
            expect(attrs(byAttr(guest, "fencedevice", "xvm-v4"))).toEqual({ name: "xvm-v4", agent: "fence_xvm", ip_family: "ipv4", multicast_address: "225.0.0.12", timeout: "20" });
            // the host cluster: three hosts, kvm1 with a second level of two devices; the delay on kvm2's first device
            expect(attrs(one(host!, "cman"))).toEqual({ expected_votes: "3" });
            expect(fencing(host!)).toEqual({
                kvm1: [[{ name: "ipmi-kvm1" }], [{ name: "pdu-a-kvm1" }, { name: "pdu-b-kvm1" }]],
                kvm2: [[{ name: "ipmi-kvm2", delay: "10" }]],
                kvm3: [[{ name: "ipmi-kvm3" }]],
            });
        },
    },
];

describe.each(SCENARIOS)("scenario: $name", (sc) => {
    const spec = sc.spec();
    const guestXml = renderGuestClusterConf(spec, { configVersion: 5 });
    const hostXml = spec.hostCluster ? renderHostClusterConf(spec, { configVersion: 5, passwords: {} }) : undefined;

    it("means what the spec says", () => {
        sc.check({ guest: parse(guestXml), host: hostXml === undefined ? undefined : parse(hostXml) }, spec);
    });

    it("references only nodes, devices and failover domains the file defines", () => {
        for (const xml of [guestXml, hostXml]) {
            if (xml === undefined) continue;
            const root = parse(xml);
            const nodes = new Set(all(root, "clusternode").map((n) => n.getAttribute("name")));
            const devices = new Set(all(root, "fencedevice").map((d) => d.getAttribute("name")));
            const domains = new Set(all(root, "failoverdomain").map((d) => d.getAttribute("name")));
            const groups = new Set([...all(root, "service").map((s) => `service:${s.getAttribute("name")}`), ...all(root, "vm").map((v) => `vm:${v.getAttribute("name")}`)]);
            for (const d of all(root, "device")) expect(devices.has(d.getAttribute("name")), `device ${d.getAttribute("name")}`).toBe(true);
            for (const m of all(root, "failoverdomainnode")) expect(nodes.has(m.getAttribute("name")), `member ${m.getAttribute("name")}`).toBe(true);
            for (const s of [...all(root, "service"), ...all(root, "vm")]) {
                if (s.hasAttribute("domain")) expect(domains.has(s.getAttribute("domain")), `domain ${s.getAttribute("domain")}`).toBe(true);
                if (s.hasAttribute("depend")) expect(groups.has(s.getAttribute("depend") ?? ""), `depend ${s.getAttribute("depend")}`).toBe(true);
            }
            for (const m of all(root, "method")) expect(all(m, "device").length).toBeLessThanOrEqual(8);
            for (const n of all(root, "clusternode")) expect(all(n, "method").length).toBeLessThanOrEqual(8);
        }
    });

    it("is deterministic", () => {
        expect(renderGuestClusterConf(sc.spec(), { configVersion: 5 })).toBe(guestXml);
        if (hostXml !== undefined) expect(renderHostClusterConf(sc.spec(), { configVersion: 5, passwords: {} })).toBe(hostXml);
    });

    it("is well-formed and valid against schema/cluster-conf.rng" + AND_CMAN, (ctx) => {
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        for (const which of sc.files) expectSchemaValid(which === "guest" ? guestXml : hostXml!);
    });
});

describe("schema/cluster-conf.rng rejects in services", () => {
    requires(NEED_XMLLINT, HAVE_XMLLINT);
    const guest = renderGuestClusterConf(
        scenarioSpec("lab", (r) => {
            r.guestCluster.services = [
                { name: "web1", ips: [{ address: "10.99.0.50/24" }], scripts: [{ name: "httpd", file: "/etc/init.d/httpd" }] },
                { name: "web2" },
            ];
            r.guestCluster.antiAffinity = [{ name: "web", services: ["web1", "web2"] }];
        }),
        { configVersion: 1 },
    );
    const first = (root: El, tag: string) => all(root, tag)[0];
    const ip = (root: El) => all(root, "ip")[0];

    it("accepts the unmodified file", () => {
        expect(validateRelaxNgText(SCHEMA, guest).ok).toBe(true);
    });

    it.each<[string, (root: El) => void, RegExp]>([
        ["recovery=\"explode\" on a service", (r) => first(r, "service").setAttribute("recovery", "explode"), /Invalid attribute recovery for element service/],
        ["an ip address that is not IPv4", (r) => ip(r).setAttribute("address", "10.99.0.500/24"), /Invalid attribute address for element ip|Element ip failed to validate attributes/],
        ["an ip prefix of 33", (r) => ip(r).setAttribute("address", "10.99.0.50/33"), /Invalid attribute address for element ip|Element ip failed to validate attributes/],
        ["a script without a file", (r) => all(r, "script")[1].removeAttribute("file"), /Element script failed to validate attributes|Expecting element/],
        ["a script file that is not absolute", (r) => all(r, "script")[1].setAttribute("file", "init.d/httpd"), /Element script failed to validate attributes|Invalid attribute file/],
        ["__independent_subtree=\"3\"", (r) => ip(r).setAttribute("__independent_subtree", "3"), /Invalid attribute __independent_subtree for element ip|Element ip failed to validate attributes/],
        ["a service depend without the service: prefix", (r) => first(r, "service").setAttribute("depend", "web2"), /Invalid attribute depend for element service/],
        ["an unknown resource under a service", (r) => first(r, "service").appendChild(r.ownerDocument.createElement("fs")), /Expecting element ip, got fs/],
        ["a service before the failover domains", (r) => { const rm = first(r, "rm"); rm.appendChild(rm.removeChild(first(r, "failoverdomains"))); }, /Did not expect element failoverdomains there|Element rm has extra content: failoverdomains/],
    ])("%s", (_, change, why) => {
        expectSchemaInvalid(mutate(guest, change), why);
    });
});

// ---------------------------------------------------------------- fence_virt over tcp and vsock

describe("renderGuestClusterConf: level 1 over the tcp listener (dev stack: gnode1 and gnode3 on kvm1, gnode2 on kvm2)", () => {
    const spec = scenarioSpec("dev", (r) => {
        r.guestCluster.fencing.listener = "tcp";
        r.guestCluster.fencing.tcp = { port: 1260 };
        r.guestCluster.fenceDelay = { node: "gnode2", seconds: 20 };
    });
    const xml = renderGuestClusterConf(spec, { configVersion: 2 });
    const root = parse(xml);
    const hostAddress: Record<string, string> = { gnode1: "192.0.2.11", gnode2: "192.0.2.12", gnode3: "192.0.2.11" };

    it("each node has its own fence_virt device aimed at its placement host's bridge address and the tcp port", () => {
        // key file, hash and auth are fence_virt's defaults: left out
        expect(all(root, "fencedevice").map(attrs)).toEqual(
            ["gnode1", "gnode2", "gnode3"].map((n) => ({ name: `virt-${n}`, agent: "fence_virt", ipaddr: hostAddress[n], ipport: "1260" })),
        );
        // nothing of fence_xvm's multicast transport is left
        expect(xml).not.toMatch(/agent="fence_xvm"|multicast_address|name="xvm-/);
    });

    it("the victim stays on <device> as domain = the node, the delay on the favoured node's device only", () => {
        expect(fencing(root)).toEqual({
            gnode1: [[{ name: "virt-gnode1", domain: "gnode1" }]],
            gnode2: [[{ name: "virt-gnode2", domain: "gnode2", delay: "20" }]],
            gnode3: [[{ name: "virt-gnode3", domain: "gnode3" }]],
        });
    });

    it("matches fence_virt.conf of the placement host: its tcp listener's address, port, key and hash (the attribute, else fence_virt's default)", (ctx) => {
        need(ctx, NEED_FENCE_VIRT, HAVE_FENCE_VIRT);
        for (const d of all(root, "fencedevice")) {
            const node = d.getAttribute("name")!.replace(/^virt-/, "");
            const host = spec.hosts.find((h) => h.name === spec.guests.find((g) => g.name === node)!.host)!;
            const listener = fenceVirtConfSettings(renderFenceVirtConf(spec, host));
            expect(listener["fence_virtd/listener"]).toBe("tcp");
            expect({ ipaddr: d.getAttribute("ipaddr"), ipport: effective(d, "ipport"), key_file: effective(d, "key_file"), hash: effective(d, "hash") }).toEqual({
                ipaddr: listener["listeners/tcp/address"],
                ipport: listener["listeners/tcp/port"],
                key_file: listener["listeners/tcp/key_file"],
                hash: listener["listeners/tcp/hash"],
            });
        }
    });

    it("further levels keep working after the tcp level 1 (a fence_virt device may now be named xvm-<node>)", (ctx) => {
        const levels = scenarioSpec("dev", (r) => {
            r.guestCluster.fencing.listener = "tcp";
            r.guestCluster.fenceDevices = [{ name: "xvm-gnode1", agent: "fence_virt", params: { ipaddr: "192.0.2.11" } }];
            r.guestCluster.fenceLevels = [{ devices: [{ device: "xvm-gnode1", ports: { gnode3: "gnode3-alias" } }] }];
        });
        const r = parse(renderGuestClusterConf(levels, { configVersion: 1 }));
        expect(fencing(r)).toEqual({
            gnode1: [[{ name: "virt-gnode1", domain: "gnode1" }], [{ name: "xvm-gnode1", domain: "gnode1" }]],
            gnode2: [[{ name: "virt-gnode2", domain: "gnode2" }], [{ name: "xvm-gnode1", domain: "gnode2" }]],
            gnode3: [[{ name: "virt-gnode3", domain: "gnode3" }], [{ name: "xvm-gnode1", domain: "gnode3-alias" }]],
        });
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        expectSchemaValid(renderGuestClusterConf(levels, { configVersion: 1 }));
    });

    it("is deterministic", () => {
        expect(renderGuestClusterConf(structuredClone(spec), { configVersion: 2 })).toBe(xml);
    });

    it("is valid against schema/cluster-conf.rng" + AND_CMAN, (ctx) => {
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        expectSchemaValid(xml);
    });

    it("refuses to render a tcp device for a node whose placement host has no bridge address", () => {
        const broken = structuredClone(spec);
        broken.hosts[1].bridge.address = undefined;
        expect(() => renderGuestClusterConf(broken, { configVersion: 1 })).toThrow(/guest gnode2 is fenced over tcp through its placement host kvm2, which has no bridge address/);
    });
});

describe("renderGuestClusterConf: level 1 over the vsock listener (lab stack)", () => {
    const spec = scenarioSpec("lab", (r) => {
        r.guestCluster.fencing.listener = "vsock";
        r.guestCluster.fencing.vsock = { port: 1261 };
    });
    const xml = renderGuestClusterConf(spec, { configVersion: 3 });
    const root = parse(xml);

    it("each node has its own fence_virt device to the host's CID 2 on the vsock port, no IP address", () => {
        // vsock="2" stays although fence_virt's metadata calls 2 its default: its presence selects the vsock transport
        expect(all(root, "fencedevice").map(attrs)).toEqual(["node1", "node2"].map((n) => ({ name: `virt-${n}`, agent: "fence_virt", vsock: "2", ipport: "1261" })));
        expect(fencing(root)).toEqual({
            node1: [[{ name: "virt-node1", domain: "node1", delay: "15" }]],
            node2: [[{ name: "virt-node2", domain: "node2" }]],
        });
    });

    it("matches every host's fence_virt.conf vsock listener (port, key, hash; the attribute, else fence_virt's default)", (ctx) => {
        need(ctx, NEED_FENCE_VIRT, HAVE_FENCE_VIRT);
        const listener = fenceVirtConfSettings(renderFenceVirtConf(spec, spec.hosts[0]));
        expect(listener["fence_virtd/listener"]).toBe("vsock");
        for (const d of all(root, "fencedevice")) {
            expect([effective(d, "ipport"), effective(d, "key_file"), effective(d, "hash")]).toEqual([
                listener["listeners/vsock/port"],
                listener["listeners/vsock/key_file"],
                listener["listeners/vsock/hash"],
            ]);
        }
    });

    it("is valid against schema/cluster-conf.rng" + AND_CMAN, (ctx) => {
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        expectSchemaValid(xml);
    });

    it("the schema refuses a vsock CID below 2 and a multicast_address on fence_virt", (ctx) => {
        need(ctx, NEED_XMLLINT, HAVE_XMLLINT);
        expectSchemaInvalid(mutate(xml, (r) => all(r, "fencedevice")[0].setAttribute("vsock", "1")), /Invalid attribute vsock for element fencedevice/);
        expectSchemaInvalid(mutate(xml, (r) => all(r, "fencedevice")[0].setAttribute("multicast_address", "225.0.0.12")), /Invalid attribute multicast_address for element fencedevice/);
    });
});

// ---------------------------------------------------------------- xmllint's time at the attribute bound

/** `xmllint --timing`'s "Validating took N ms" for one file, and whether it validated. */
function timedValidation(rng: string, xml: string): { ok: boolean; ms: number; output: string } {
    const r = spawnSync("xmllint", ["--timing", "--noout", "--relaxng", rng, "-"], { input: xml, encoding: "utf8", timeout: 120_000 });
    const output = `${r.stdout ?? ""}${r.stderr ?? ""}`;
    const ms = Number(/Validating took (\d+) ms/.exec(output)?.[1] ?? Number.NaN);
    return { ok: r.status === 0, ms, output };
}

describe(`xmllint validates an element of MAX_ELEMENT_ATTRIBUTES (${MAX_ELEMENT_ATTRIBUTES}) attributes in well under a second`, () => {
    requires(NEED_XMLLINT, HAVE_XMLLINT);

    it("a fence_ipmilan device against cman's fence definitions generated from the installed agents (cman's own shape: optional attributes in sequence)", (ctx) => {
        need(ctx, `cman's fence device definitions: missing ${CMAN_FENCE_MISSING}`, CMAN_FENCE_MISSING === undefined);
        const spec = stackSpec("dev");
        // name, agent, passwd and 8 parameters: the most validation lets a device carry
        spec.hostCluster!.fenceDevices[0].params = { ipaddr: "192.0.2.101", login: "admin", lanplus: "1", auth: "md5", cipher: "3", privlvl: "operator", method: "cycle", ipport: "623" };
        const xml = renderHostClusterConf(spec, { configVersion: 1, passwords: { "ipmi-kvm1": "pw" } });
        const device = all(parse(xml), "fencedevice")[0];
        expect(device.getAttributeNames()).toHaveLength(MAX_ELEMENT_ATTRIBUTES);
        const r = timedValidation(cmanFenceSchema()!.combined, xml);
        expect(r.ok, r.output).toBe(true);
        expect(r.ms, r.output).toBeLessThan(1000);
    });

    it("a <vm> against a grammar shaped as rgmanager's ra2rng.xsl writes vm.sh (every parameter an optional attribute, in sequence)", (ctx) => {
        const dir = mkdtempSync(join(tmpdir(), "hcc-vm-rng-"));
        ctx.onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
        // vm.sh's parameters in resource-agents 3.9 and rgmanager's child attributes, as ra2rng.xsl lists them
        const params = ["domain", "autostart", "exclusive", "recovery", "migration_mapping", "use_virsh", "xmlfile", "migrate", "tunnelled", "path", "snapshot", "depend", "depend_mode", "max_restarts", "restart_expire_time", "status_program", "hypervisor", "hypervisor_uri", "migration_uri", "__independent_subtree", "__enforce_timeouts", "__max_failures", "__failure_expire_time", "__max_restarts", "__restart_expire_time"];
        const rng = join(dir, "vm.rng");
        writeFileSync(rng, `<grammar xmlns="http://relaxng.org/ns/structure/1.0"><start><element name="vm"><attribute name="name"/>${params.map((p) => `<optional><attribute name="${p}"/></optional>`).join("")}</element></start></grammar>`);
        const spec = stackSpec("dev");
        Object.assign(spec.hostCluster!.vmServices[0], { autostart: false, exclusive: true, recovery: "relocate", depend: "gnode2", dependMode: "soft" });
        const vm = all(parse(renderHostClusterConf(spec, { configVersion: 1, passwords: {} })), "vm")[0];
        expect(vm.getAttributeNames()).toHaveLength(MAX_ELEMENT_ATTRIBUTES);
        const r = timedValidation(rng, `<vm ${vm.getAttributeNames().map((n) => `${n}="${vm.getAttribute(n)}"`).join(" ")}/>`);
        expect(r.ok, r.output).toBe(true);
        expect(r.ms, r.output).toBeLessThan(1000);
    });
});
