/**
 * The program under mocks with the sample dev stack: two SSH hosts, three guests with SSH, a host cluster with two
 * VM services. Asserts remote execution, XML on shared storage written once, cluster-managed guests not started by
 * the program, and that SSH keys and fence passwords stay secret.
 */
import { gunzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { FAKE_KEY, isSecretValue, unwrap, type Recorded } from "./recording-mocks";
import { FAKE_SECRETS, loadStack, runUnderMocks, type ProgramRun } from "./run-under-mocks";

let run: ProgramRun;
const byName = (name: string): Recorded => {
    const r = run.records.find((x) => x.name === name);
    if (!r) throw new Error(`no resource named ${name}`);
    return r;
};

beforeAll(async () => {
    run = await runUnderMocks("dev", loadStack("dev"), FAKE_SECRETS);
});

describe("dev stack under mocks", () => {
    it("runs every command over SSH with the secret key and a POSIX sh wrapper", () => {
        // but the config_version counters, which keep a number on the machine running pulumi, the barrier "defined on
        // every host", which runs nothing, and the probes of each guest's sshd, which run where the deliveries to the
        // guests come from (the machine running pulumi)
        const local = run.records.filter((r) => r.type === "command:local:Command").map((r) => r.name).sort();
        expect(local).toEqual(["cluster-conf-guest-version", "cluster-conf-host-version", "domains-defined", "gnode1-ssh-ready", "gnode2-ssh-ready", "gnode3-ssh-ready"]);
        const commands = run.records.filter((r) => r.type.startsWith("command:") && !local.includes(r.name));
        expect(commands.length).toBeGreaterThan(0);
        for (const r of commands) {
            expect(r.type, r.name).toBe("command:remote:Command");
            const conn = r.inputs.connection as Record<string, unknown>;
            expect(isSecretValue(conn) || isSecretValue(conn.privateKey), `${r.name} private key is secret`).toBe(true);
            expect(String(unwrap(r.inputs.create))).toMatch(/^exec \/bin\/sh -c '/);
            expect(String(unwrap(r.inputs.delete))).toMatch(/^exec \/bin\/sh -c '/);
        }
        const kvm1 = unwrap(byName("kvm1-bridge").inputs.connection) as Record<string, unknown>;
        expect(kvm1).toMatchObject({ host: "192.0.2.11", port: 22, user: "root", privateKey: FAKE_SECRETS.sshPrivateKey });
    });

    it("delivers the key to both hosts and all three guests", () => {
        const keyTargets = run.records.filter((r) => r.name.startsWith("fence-key-") && r.type.startsWith("command:")).map((r) => r.name).sort();
        expect(keyTargets).toEqual(["fence-key-gnode1", "fence-key-gnode2", "fence-key-gnode3", "fence-key-kvm1", "fence-key-kvm2"]);
    });

    it("defines every guest on every host with one command per host; on shared storage each XML is written by its placement host", () => {
        expect(run.records.filter((r) => /-(xml|define)-/.test(r.name)).map((r) => r.name)).toEqual([]);
        const domains = run.records.filter((r) => r.name.endsWith("-domains")).map((r) => r.name).sort();
        expect(domains).toEqual(["kvm1-domains", "kvm2-domains"]);
        const bundle = unwrap(byName("kvm1-domains").inputs.stdin);
        expect(unwrap(byName("kvm2-domains").inputs.stdin)).toBe(bundle);
        const text = gunzipSync(Buffer.from(String(bundle), "base64")).toString("utf8");
        const records = text.split("\n").filter((l) => l.startsWith("domain ")).map((l) => l.split(" ").slice(1, 5));
        expect(records.map(([name, , , placement]) => `${name}@${placement}`)).toEqual(["gnode1@kvm1", "gnode2@kvm2", "gnode3@kvm1"]);
        for (const h of ["kvm1", "kvm2"]) {
            // the script inside the remote wrapper `exec /bin/sh -c '<script, quoted>'`
            const create = String(unwrap(byName(`${h}-domains`).inputs.create)).replace(/^exec \/bin\/sh -c '|'$/g, "").replace(/'\\''/g, "'");
            expect(create).toContain("XML_SHARED='yes'");
            expect(create).toContain(`HOST='${h}'`);
            expect(byName(`${h}-domains`).dependencies).toEqual(expect.arrayContaining([byName(`${h}-libvirtd`).urn, byName(`${h}-bridge`).urn]));
        }
        expect(byName("domains-defined").dependencies).toEqual([byName("kvm1-domains").urn, byName("kvm2-domains").urn].sort());
    });

    it("leaves starting cluster-managed guests to rgmanager", () => {
        const starts = run.records.filter((r) => r.name.endsWith("-start")).map((r) => r.name);
        expect(starts).toEqual(["gnode3-start"]);
    });

    it("delivers cluster.conf to guest nodes and the host cluster's to hosts, after every domain is defined", () => {
        const defines = [byName("domains-defined").urn];
        const deliveries = run.records.filter((r) => r.name.startsWith("cluster-conf-") && !r.name.endsWith("-version")).map((r) => r.name).sort();
        expect(deliveries).toEqual(["cluster-conf-guest-gnode1", "cluster-conf-guest-gnode2", "cluster-conf-guest-gnode3", "cluster-conf-host-kvm1", "cluster-conf-host-kvm2"]);
        for (const d of deliveries) expect(byName(d).dependencies).toEqual(expect.arrayContaining(defines));
    });

    it("keeps fence passwords secret: the host cluster.conf carrying them is a secret, never logged", () => {
        const host = byName("cluster-conf-host-kvm1");
        expect(isSecretValue(host.inputs.stdin)).toBe(true);
        expect(String(unwrap(host.inputs.stdin))).toContain(FAKE_SECRETS.ipmiPasswordKvm1);
        expect(unwrap(host.inputs.logging)).toBe("none");
        expect(run.outputs.hostClusterConf.secret).toBe(true);
        const stripSecrets = (v: unknown): unknown =>
            isSecretValue(v) ? "<secret>" : Array.isArray(v) ? v.map(stripSecrets) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, stripSecrets(x)])) : v;
        const visible = JSON.stringify(run.records.map((r) => stripSecrets(r.inputs)));
        for (const s of [...Object.values(FAKE_SECRETS), FAKE_KEY.toString("base64"), "FAKE-SSH-KEY"]) {
            expect(visible.includes(s), `secret visible: ${s.slice(0, 20)}`).toBe(false);
        }
    });
});
