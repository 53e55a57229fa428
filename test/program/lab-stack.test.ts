/**
 * The program under mocks with the default lab stack (stacks/Pulumi.lab.yaml) as it is: the exact resources, their
 * parents, their order (dependsOn), replacement options, and the fence key's secrecy. The lab stack's guest cluster is
 * on the Pacemaker stack (its guests run Debian): per node the corosync authkey, corosync.conf and the running stack,
 * the CIB on node1; nothing of cman. The same lab pinned to cman: test/program/lab-stack-cman.test.ts.
 */
import { gunzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { renderCloudInitSeed, seedBundle } from "../../components/render/cloud-init";
import { validateLabConfig } from "../../components/config";
import { renderDomainXml } from "../../components/render/domain-xml";
import { renderGuestCorosyncConf } from "../../components/render/corosync-conf";
import { renderGuestCib } from "../../components/render/pacemaker-cib";
import { cibConfiguration } from "../../components/scripts/pacemaker-deliver";
import { domainsBundle, domainsBundleText } from "../../components/scripts/domains";
import { SCRIPT_LIBRARY, SCRIPT_LIBRARY_SHA256 } from "../../components/scripts/prelude";
import { FAKE_KEY, FAKE_LAB_KEY, isSecretValue, unwrap, type Recorded } from "./recording-mocks";
import { loadStack, runUnderMocks, type ProgramRun } from "./run-under-mocks";

let run: ProgramRun;
const byName = (name: string): Recorded => {
    const r = run.records.find((x) => x.name === name);
    if (!r) throw new Error(`no resource named ${name}; have ${run.records.map((x) => x.name).join(", ")}`);
    return r;
};
const urnOf = (name: string) => byName(name).urn;
/** The script library command of a machine: named by the library's hash (a new version is a new command). */
const LIB = (machine: string) => `${machine}-lib-${SCRIPT_LIBRARY_SHA256.slice(0, 12)}`;

beforeAll(async () => {
    run = await runUnderMocks("lab", loadStack("lab"));
});

describe("lab stack under mocks", () => {
    it("registers exactly the expected resources", () => {
        const list = run.records.map((r) => `${r.type} ${r.name}`).sort();
        expect(list).toEqual(
            [
                "kvmlab:index:FenceKey fence-key",
                "random:index/randomBytes:RandomBytes fence-key-bytes",
                "command:local:Command fence-key-kvmhost",
                "kvmlab:index:KvmHost kvmhost",
                "command:local:Command kvmhost-claim",
                "command:local:Command kvmhost-libvirtd",
                "command:local:Command kvmhost-bridge",
                "command:local:Command kvmhost-sysctl",
                "command:local:Command kvmhost-firewall",
                "command:local:Command kvmhost-fence-virtd",
                // the lab's own SSH key pair: its public key goes into the guests' seeds, its private key reaches them
                "kvmlab:index:LabSshKey lab-ssh-key",
                "tls:index/privateKey:PrivateKey lab-ssh-key-key",
                // the shared shell functions every other script on the host sources, once per host
                `command:local:Command ${LIB("kvmhost")}`,
                // every guest defined on every host by one command per host, and the barrier "defined everywhere"
                "kvmlab:index:Domains domains",
                "command:local:Command kvmhost-domains",
                "command:local:Command domains-defined",
                "kvmlab:index:GuestVm node1",
                "command:local:Command node1-disk-0",
                "command:local:Command node1-seed",
                "command:local:Command node1-start",
                "command:local:Command node1-ssh-ready",
                `command:remote:Command ${LIB("node1")}`,
                "kvmlab:index:GuestVm node2",
                "command:local:Command node2-disk-0",
                "command:local:Command node2-seed",
                "command:local:Command node2-start",
                "command:local:Command node2-ssh-ready",
                `command:remote:Command ${LIB("node2")}`,
                // the fence key delivered into each guest's OS over SSH
                "command:remote:Command fence-key-node1",
                "command:remote:Command fence-key-node2",
                // the Pacemaker guest cluster: one corosync authkey, per node the authkey, corosync.conf and corosync
                // + pacemaker running, then the CIB loaded on node1 (no cluster.conf, no config_version counter)
                "kvmlab:index:ClusterConf cluster-conf",
                "random:index/randomBytes:RandomBytes cluster-conf-guest-corosync-key",
                ...["node1", "node2"].flatMap((g) => ["authkey", "corosync-conf", "stack"].map((s) => `command:remote:Command cluster-conf-guest-${g}-${s}`)),
                "command:remote:Command cluster-conf-guest-node1-cib",
            ].sort(),
        );
    });

    it("parents every command to its component", () => {
        const parentName = (r: Recorded) => run.records.find((x) => x.urn === r.parent)?.name;
        for (const r of run.records.filter((x) => x.type.startsWith("command:") || x.type.startsWith("random:") || x.type.startsWith("tls:"))) {
            const expected = r.name.startsWith("lab-ssh-key")
                ? "lab-ssh-key"
                : r.name.startsWith("fence-key")
                ? "fence-key"
                : r.name.startsWith("domains") || r.name.endsWith("-domains")
                  ? "domains"
                  : r.name.startsWith("kvmhost-")
                  ? "kvmhost"
                  : r.name.startsWith("cluster-conf-")
                    ? "cluster-conf"
                    : r.name.split("-")[0];
            expect(parentName(r), r.name).toBe(expected);
        }
        for (const r of run.records.filter((x) => x.type.startsWith("kvmlab:"))) {
            // Components are top-level: under mocks no root Stack resource exists, so their parent is empty
            // (under the engine it is the Stack); never another component.
            expect(r.parent === "" || /::pulumi:pulumi:Stack::kvm-ha-lab-lab$/.test(r.parent), `${r.name}: parent ${r.parent}`).toBe(true);
        }
    });

    it("orders by dependencies: library first, then the claim, key before fence_virtd, host ready before the domains, defined everywhere before start", () => {
        const lib = urnOf(LIB("kvmhost"));
        const claim = urnOf("kvmhost-claim");
        expect(byName(LIB("kvmhost")).dependencies).toEqual([]);
        expect(byName("kvmhost-claim").dependencies).toEqual([lib]);
        for (const r of run.records.filter((x) => x.name.startsWith("kvmhost-") && !["kvmhost-claim", LIB("kvmhost")].includes(x.name))) {
            expect(r.dependencies, r.name).toContain(lib);
            if (r.name !== "kvmhost-domains") expect(r.dependencies, r.name).toContain(claim);
        }
        expect(byName("fence-key-kvmhost").dependencies).toContain(claim);
        expect(byName("kvmhost-fence-virtd").dependencies).toEqual(
            expect.arrayContaining([urnOf("fence-key-kvmhost"), urnOf("kvmhost-libvirtd"), urnOf("kvmhost-bridge"), urnOf("kvmhost-firewall")]),
        );
        expect(byName("kvmhost-domains").dependencies).toEqual([lib, claim, urnOf("kvmhost-libvirtd"), urnOf("kvmhost-bridge")].sort());
        expect(byName("domains-defined").dependencies).toEqual([urnOf("kvmhost-domains")]);
        for (const g of ["node1", "node2"]) {
            expect(byName(`${g}-start`).dependencies).toEqual([lib, urnOf("domains-defined"), urnOf(`${g}-disk-0`), urnOf(`${g}-seed`)].sort());
        }
        // Nothing depends on a resource registered after it (the graph is acyclic in registration order).
        const index = new Map(run.records.map((r, i) => [r.urn, i]));
        for (const r of run.records) for (const d of r.dependencies) expect(index.get(d), `${r.name} -> ${d}`).toBeDefined();
    });

    it("boots each guest from the image: an overlay, a seed with the lab's public key (no secret), start after both", () => {
        const spec = validateLabConfig(loadStack("lab"), { stack: "lab", secretKeys: new Set(), readFile: () => undefined });
        for (const [i, g] of ["node1", "node2"].entries()) {
            const disk = String(unwrap(byName(`${g}-disk-0`).inputs.create));
            expect(disk).toContain(`BASE='/var/lib/libvirt/images/kvm-ha-lab-debian12/disk.qcow2'`);
            expect(disk).toContain(`IMG='/var/lib/libvirt/images/${g}.qcow2'`);
            const seed = byName(`${g}-seed`);
            // the seed's content is exactly the rendered seed for this guest, with the lab's public key
            expect(unwrap(seed.inputs.stdin)).toBe(seedBundle(renderCloudInitSeed(spec, spec.guests[i], FAKE_LAB_KEY.publicKeyOpenssh)));
            expect(isSecretValue(seed.inputs.stdin)).toBe(false);
            expect(String(unwrap(seed.inputs.stdin))).not.toContain("PRIVATE");
            expect(seed.dependencies).toContain(urnOf("lab-ssh-key-key"));
            expect(byName(`${g}-start`).dependencies).toEqual(expect.arrayContaining([urnOf(`${g}-disk-0`), urnOf(`${g}-seed`)]));
        }
    });

    it("delivers to a guest only after its sshd answers, with the lab's private key (secret), at its cluster address", () => {
        for (const [i, g] of ["node1", "node2"].entries()) {
            const ready = byName(`${g}-ssh-ready`);
            expect(ready.dependencies).toEqual([urnOf(`${g}-start`)]);
            expect(String(unwrap(ready.inputs.create))).toContain(`'${g}' '10.99.0.${11 + i}' '22' '300'`);
            for (const d of [`fence-key-${g}`, `cluster-conf-guest-${g}-authkey`, `cluster-conf-guest-${g}-corosync-conf`, `cluster-conf-guest-${g}-stack`, ...(g === "node1" ? ["cluster-conf-guest-node1-cib"] : [])]) {
                const r = byName(d);
                // directly, or through the node's authkey and corosync.conf (the stack) and every node's stack (the CIB)
                if (!d.endsWith("-stack") && !d.endsWith("-cib")) expect(r.dependencies, d).toContain(urnOf(`${g}-ssh-ready`));
                const conn = r.inputs.connection as Record<string, unknown>;
                expect(isSecretValue(conn) || isSecretValue(conn.privateKey), `${d}: private key is secret`).toBe(true);
                expect(unwrap(conn)).toMatchObject({ host: `10.99.0.${11 + i}`, port: 22, user: "root", privateKey: FAKE_LAB_KEY.privateKeyOpenssh });
            }
        }
    });

    it("exports the lab's private key as a secret and its public key in the clear", () => {
        expect(run.outputs.labSshPrivateKey).toEqual({ value: FAKE_LAB_KEY.privateKeyOpenssh, secret: true });
        expect(run.outputs.labSshPublicKey).toEqual({ value: FAKE_LAB_KEY.publicKeyOpenssh.trim(), secret: false });
        expect(run.outputs.guestSshAddresses.value).toEqual({ node1: "10.99.0.11", node2: "10.99.0.12" });
        // the private key appears nowhere but inside secret values
        const stripSecrets = (v: unknown): unknown =>
            isSecretValue(v) ? "<secret>" : Array.isArray(v) ? v.map(stripSecrets) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, stripSecrets(x)])) : v;
        const visible = JSON.stringify(run.records.map((r) => stripSecrets(r.inputs)));
        expect(visible).not.toContain("FAKE-LAB-SSH-KEY");
    });

    it("replaces host commands delete-first, and every command has a delete", () => {
        for (const r of run.records.filter((x) => x.type === "command:local:Command")) {
            expect(r.deleteBeforeReplace, r.name).toBe(true);
            expect(typeof unwrap(r.inputs.delete), r.name).toBe("string");
            expect((unwrap(r.inputs.delete) as string).length, r.name).toBeGreaterThan(0);
            expect(unwrap(r.inputs.interpreter), r.name).toEqual(["/bin/sh", "-c"]);
        }
    });

    it("generates a 4096-byte key, keeps it secret, and sends it only on stdin", () => {
        const bytes = byName("fence-key-bytes");
        expect(unwrap(bytes.inputs.length)).toBe(4096);
        const install = byName("fence-key-kvmhost");
        expect(isSecretValue(install.inputs.stdin)).toBe(true);
        expect(Buffer.from(unwrap(install.inputs.stdin) as string, "base64").equals(FAKE_KEY)).toBe(true);
        expect(unwrap(install.inputs.logging)).toBe("none");
        expect(install.additionalSecretOutputs).toEqual(expect.arrayContaining(["stdout", "stderr"]));
        // The key, in any encoding, appears nowhere but inside secret values.
        const forms = [FAKE_KEY.toString("base64"), FAKE_KEY.toString("hex"), FAKE_KEY.toString("latin1").slice(0, 64)];
        const stripSecrets = (v: unknown): unknown =>
            isSecretValue(v) ? "<secret>" : Array.isArray(v) ? v.map(stripSecrets) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, stripSecrets(x)])) : v;
        const visible = JSON.stringify(run.records.map((r) => stripSecrets(r.inputs))) + JSON.stringify(stripSecrets(run.outputs));
        for (const f of forms) expect(visible.includes(f)).toBe(false);
    });

    it("starts each guest on its placement host only; the domains command carries every rendered XML", () => {
        expect(run.records.filter((r) => r.name.endsWith("-start")).map((r) => r.name).sort()).toEqual(["node1-start", "node2-start"]);
        const spec = validateLabConfig(loadStack("lab"), { stack: "lab", secretKeys: new Set(), readFile: () => undefined });
        const bundle = unwrap(byName("kvmhost-domains").inputs.stdin) as string;
        expect(gunzipSync(Buffer.from(bundle, "base64")).toString("utf8")).toBe(
            domainsBundleText(spec.guests.map((g) => ({ name: g.name, uuid: g.definition.kind === "rendered" ? g.definition.uuid : undefined, xml: renderDomainXml(g), placement: "kvmhost" }))),
        );
        expect(bundle).toBe(
            domainsBundle(spec.guests.map((g) => ({ name: g.name, uuid: g.definition.kind === "rendered" ? g.definition.uuid : undefined, xml: renderDomainXml(g), placement: g.host }))),
        );
        const create = unwrap(byName("kvmhost-domains").inputs.create) as string;
        expect(create).toContain("XMLDIR='/var/lib/libvirt/images/xml_defs'");
        expect(create).toContain("XML_SHARED='no'");
        expect(unwrap(byName("domains-defined").inputs.create)).toBe(":");
        expect(unwrap(byName("domains-defined").inputs.delete)).toBe(":");
    });

    it("keeps the shared shell functions out of every script but the library's own", () => {
        const libs = ["kvmhost", "node1", "node2"].map(LIB);
        for (const l of libs) expect(unwrap(byName(l).inputs.stdin)).toBe(SCRIPT_LIBRARY);
        const hostScripts = run.records.filter((x) => x.type.startsWith("command:") && String(unwrap(x.inputs.create)).includes("# kvm-ha-lab host script:"));
        expect(hostScripts.length).toBeGreaterThan(10);
        for (const r of run.records.filter((x) => x.type.startsWith("command:") && !libs.includes(x.name))) {
            for (const k of ["create", "delete"]) {
                const text = String(unwrap(r.inputs[k]));
                expect(text.includes("rmdir_pending() {"), `${r.name} ${k}`).toBe(false);
                if (text.includes("# kvm-ha-lab host script:")) expect(text, `${r.name} ${k}`).toContain(`. "$KVM_HA_LAB_LIB"`);
            }
        }
    });

    it("orders the Pacemaker delivery: the stack after its node's authkey and corosync.conf, the CIB after every node's stack", () => {
        const deps = (name: string) => byName(name).dependencies;
        for (const g of ["node1", "node2"]) {
            expect(deps(`cluster-conf-guest-${g}-stack`)).toEqual(
                expect.arrayContaining([urnOf(`cluster-conf-guest-${g}-authkey`), urnOf(`cluster-conf-guest-${g}-corosync-conf`)]),
            );
            for (const s of ["authkey", "corosync-conf"]) expect(deps(`cluster-conf-guest-${g}-${s}`)).toContain(urnOf("domains-defined"));
        }
        expect(deps("cluster-conf-guest-node1-cib")).toEqual(expect.arrayContaining([urnOf("cluster-conf-guest-node1-stack"), urnOf("cluster-conf-guest-node2-stack")]));
    });

    it("sends each node the rendered corosync.conf, the authkey only as a secret, and node1 the CIB's configuration", () => {
        const spec = validateLabConfig(loadStack("lab"), { stack: "lab", secretKeys: new Set(), readFile: () => undefined });
        expect(spec.guestCluster.stack).toBe("pacemaker");
        const conf = renderGuestCorosyncConf(spec);
        expect(conf).toMatch(/cluster_name: labcluster/);
        expect(conf).toMatch(/name: node1\n\s+nodeid: 1\n\s+ring0_addr: 10\.99\.0\.11/);
        expect(conf).toMatch(/name: node2\n\s+nodeid: 2\n\s+ring0_addr: 10\.99\.0\.12/);
        for (const g of ["node1", "node2"]) {
            expect(byName(`cluster-conf-guest-${g}-corosync-conf`).inputs.stdin, g).toBe(conf);
            const authkey = byName(`cluster-conf-guest-${g}-authkey`);
            expect(isSecretValue(authkey.inputs.stdin), g).toBe(true);
            expect(unwrap(authkey.inputs.logging), g).toBe("none");
            expect(authkey.additionalSecretOutputs, g).toEqual(expect.arrayContaining(["stdout", "stderr"]));
            expect(String(unwrap(authkey.inputs.create))).toContain("/etc/corosync/authkey");
            // the stonith resources read the fence key: each node waits for it before it starts the stack
            expect(String(unwrap(byName(`cluster-conf-guest-${g}-stack`).inputs.create))).toContain("/etc/cluster/fence_xvm.key");
        }
        expect(unwrap(byName("cluster-conf-guest-corosync-key").inputs.length)).toBe(256);
        const cib = byName("cluster-conf-guest-node1-cib");
        expect(isSecretValue(cib.inputs.stdin)).toBe(false);
        expect(cib.inputs.stdin).toBe(cibConfiguration(renderGuestCib(spec)));
        expect(String(unwrap(cib.inputs.create))).toContain("cibadmin --replace --scope configuration");
    });

    it("exports the CIB (one fence_xvm stonith resource per node) and key path, none of it secret", () => {
        expect(run.outputs.labName.value).toBe("lab");
        expect(run.outputs.fenceKeyFile.value).toBe("/etc/cluster/fence_xvm.key");
        const cib = String(run.outputs.guestClusterConf.value);
        expect(cib).toMatch(/^<\?xml[^>]*>\n<cib /);
        for (const g of ["node1", "node2"]) {
            expect(cib).toContain(`<primitive id="xvm-${g}" class="stonith" type="fence_xvm">`);
            expect(cib).toContain(`name="pcmk_host_map" value="${g}:${g}"`);
        }
        expect(cib).not.toContain("<cluster ");
        expect(run.outputs.guestClusterConf.secret).toBe(false);
    });
});
