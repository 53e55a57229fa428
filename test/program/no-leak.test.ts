/**
 * No secret leaks (issue 5, item 5). The program runs under the recording mocks for the dev stack (SSH hosts and
 * guests, fence device passwords) and for the lab stack with SSH to both guests (the key goes to the guests too).
 * Every script text, environment, trigger, interpreter, connection (without its secret values), stdin that is not
 * secret, every other input outside secret wrappers, every component output and every program output not marked
 * secret is scanned for the fence key (raw, base64, hex: any 32-byte window), the SSH private key (whole, and its body
 * line) and each fence password (whole, base64, hex). Commands that take a secret on stdin must not log and must keep
 * stdout/stderr secret; the key (RandomBytes' base64/hex) may reach a command only as a secret stdin.
 *
 * The scanner is checked first on planted secrets, so that a scanner that finds nothing cannot pass for a program
 * that leaks nothing. Each variant runs in its own process (test/program/leak-scan.ts): the program is imported once
 * per process.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { FAKE_KEY, isSecretValue, unwrap, type Recorded } from "./recording-mocks";
import { FAKE_SECRETS, ROOT } from "./run-under-mocks";
import {
    PLANTED,
    VARIANTS,
    exposures,
    findLeaks,
    isCommand,
    keyForms,
    keyLocations,
    policyViolations,
    secretForms,
    type LeakRun,
} from "./leak-scan";

const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
/** A secret wrapper as the mock monitor deserializes one. */
const secret = (value: unknown) => ({ [SIG_KEY]: SECRET_SIG, value });

function runInChild(variant: string): LeakRun {
    const out = execFileSync(join(ROOT, "node_modules", ".bin", "tsx"), [join(__dirname, "leak-scan.ts"), variant], {
        cwd: ROOT,
        encoding: "utf8",
        maxBuffer: 256 * 1024 * 1024,
    });
    return JSON.parse(out) as LeakRun;
}

// ---------------------------------------------------------------- the scanner can fail

/** A key that is not printable text (so the utf8 and latin1 decodings differ): deterministic bytes. */
const BINARY_KEY = Buffer.concat(Array.from({ length: 128 }, (_, i) => createHash("sha256").update(`hp5-binary-key-${i}`).digest()));

function record(name: string, inputs: Record<string, unknown>, extra: Partial<Recorded> = {}): Recorded {
    return {
        type: "command:remote:Command",
        name,
        urn: `urn:pulumi:t::kvm-ha-lab::command:remote:Command::${name}`,
        parent: "",
        dependencies: [],
        deleteBeforeReplace: true,
        additionalSecretOutputs: [],
        inputs,
        ...extra,
    };
}

describe("the leak scanner (self-check on planted secrets)", () => {
    const ssh = FAKE_SECRETS.sshPrivateKey;
    const password = FAKE_SECRETS.ipmiPasswordKvm1;
    const b64 = FAKE_KEY.toString("base64");
    const planted: LeakRun = {
        records: [
            record("in-create", { create: `printf %s '${b64}' | base64 -d > /etc/cluster/k`, delete: "rm -f /etc/cluster/k" }),
            record("in-env", { create: "true", delete: "true", environment: { K: FAKE_KEY.toString("hex").toUpperCase().slice(200, 300) } }),
            record("in-plain-stdin", { create: "cat", delete: "true", stdin: `header\n${FAKE_KEY.toString("latin1").slice(5, 45)}\n` }),
            record("in-secret-create", { create: secret(`echo ${password}`), delete: "true" }),
            record("in-trigger", { create: "true", delete: "true", triggers: [BINARY_KEY.subarray(1000, 1048).toString("utf8")] }),
            record("in-trigger-latin1", { create: "true", delete: "true", triggers: [BINARY_KEY.subarray(2000, 2040).toString("latin1")] }),
            record("in-plain-connection", { create: "true", delete: "true", connection: { host: "h", privateKey: ssh } }),
            record("body-line-in-update", { create: "true", update: "echo FAKE-SSH-KEY-FOR-TESTS-ONLY", delete: "true" }),
            record("password-base64-in-component", { anything: Buffer.from(password).toString("base64") }, { type: "kvmlab:index:Thing" }),
            // secret places: none of these is a leak
            record("secret-stdin", { create: "cat", delete: "true", stdin: secret(b64), logging: "none" }, { additionalSecretOutputs: ["stdout", "stderr"] }),
            record("secret-connection", { create: "true", delete: "true", connection: secret({ host: "h", privateKey: ssh }) }),
            record("secret-private-key", { create: "true", delete: "true", connection: { host: "h", privateKey: secret(ssh) } }),
            record("clean", { create: "echo hello", delete: "true", stdin: "plain file content", triggers: ["abc"] }),
        ],
        outputs: {
            plainOutput: { value: { conf: `key=${ssh}` }, secret: false },
            secretOutput: { value: `passwd=${password}`, secret: true },
        },
        componentOutputs: [
            { urn: "urn:c1", outputs: { keyBase64: secret(b64) } },
            { urn: "urn:c2", outputs: { leaked: FAKE_KEY.toString("base64url").slice(100, 160) } },
        ],
    };
    const forms = [...secretForms({ sshPrivateKey: ssh, ipmiPasswordKvm1: password }), keyForms(BINARY_KEY, "binary key")];
    const leaks = findLeaks(exposures(planted), forms);
    const where = (w: string) => leaks.filter((l) => l.where.startsWith(w));

    it("finds a secret planted in each place that is not secret, in each form", () => {
        expect(where("command in-create .create")[0]).toMatchObject({ secret: "fence key", form: expect.stringMatching(/^base64/) });
        expect(where("command in-env .environment.K")[0]).toMatchObject({ secret: "fence key", form: expect.stringMatching(/^hex/) });
        expect(where("command in-plain-stdin .stdin")[0]).toMatchObject({ secret: "fence key", form: expect.stringMatching(/^raw/) });
        expect(where("command in-secret-create .create<secret>")[0]).toMatchObject({ secret: "secret ipmiPasswordKvm1", form: "text" });
        expect(where("command in-trigger .triggers[0]")[0]).toMatchObject({ secret: "binary key", form: expect.stringMatching(/^raw utf8/) });
        expect(where("command in-trigger-latin1 .triggers[0]")[0]).toMatchObject({ secret: "binary key", form: expect.stringMatching(/^raw latin1/) });
        expect(where("command in-plain-connection .connection.privateKey")[0]).toMatchObject({ secret: "secret sshPrivateKey", form: "text" });
        expect(where("command body-line-in-update .update")[0]).toMatchObject({ secret: "secret sshPrivateKey", form: "line" });
        expect(where("kvmlab:index:Thing password-base64-in-component .anything")[0]).toMatchObject({ secret: "secret ipmiPasswordKvm1", form: "base64" });
        expect(where("output plainOutput.conf")[0]).toMatchObject({ secret: "secret sshPrivateKey" });
        expect(where("component outputs urn:c2 .leaked")[0]).toMatchObject({ secret: "fence key", form: expect.stringMatching(/^base64/) });
    });

    it("reports nothing inside secret wrappers (stdin, connection, outputs) or in clean values", () => {
        const secretPlaces = ["command secret-", "command clean", "output secretOutput", "component outputs urn:c1"];
        expect(leaks.filter((l) => secretPlaces.some((p) => l.where.startsWith(p)))).toEqual([]);
        expect(leaks).toHaveLength(11);
    });

    it("flags a secret stdin whose command logs or keeps stdout/stderr in the clear", () => {
        const bad: Pick<LeakRun, "records"> = {
            records: [
                record("logs", { create: "cat", delete: "true", stdin: secret("x"), logging: "stdoutAndStderr" }, { additionalSecretOutputs: ["stdout", "stderr"] }),
                record("stdout-clear", { create: "cat", delete: "true", stdin: secret("x"), logging: "none" }, { additionalSecretOutputs: ["stderr"] }),
                record("fine", { create: "cat", delete: "true", stdin: secret("x"), logging: "none" }, { additionalSecretOutputs: ["stdout", "stderr"] }),
            ],
        };
        expect(policyViolations(bad)).toEqual([
            'logs: stdin is secret but logging is "stdoutAndStderr", not "none"',
            'stdout-clear: stdin is secret but stdout is not in additionalSecretOutputs (["stderr"])',
        ]);
    });

    it("locates the key in any input, secret or not", () => {
        expect(keyLocations(planted, keyForms(FAKE_KEY))).toEqual([
            { record: "in-create", path: ".create", secret: false },
            { record: "in-env", path: ".environment.K", secret: false },
            { record: "in-plain-stdin", path: ".stdin", secret: false },
            { record: "secret-stdin", path: ".stdin<secret>", secret: true },
        ]);
    });
});

// ---------------------------------------------------------------- the program

describe("program under mocks with a secret's text in a plain config value (positive control)", () => {
    it("is found where the program shows that value", () => {
        const run = runInChild("planted");
        const leaks = findLeaks(exposures(run), secretForms(PLANTED.planted));
        const places = new Set(leaks.map((l) => l.where));
        expect([...places]).toEqual(
            expect.arrayContaining(["command kvmhost-domains .stdin<bundle node1>", "command node1-disk-0 .create"]),
        );
    });
});

for (const [variant, v] of Object.entries(VARIANTS)) {
    describe(`program under mocks, ${variant}`, () => {
        let run: LeakRun;
        const commands = () => run.records.filter(isCommand);
        /** Machines that receive the key: every host, and every guest with a connection. */
        const keyTargets = () => {
            const raw = v.raw() as { hosts: { name: string }[]; guests: { name: string; ssh?: unknown }[] };
            return [...raw.hosts.map((h) => h.name), ...raw.guests.filter((g) => g.ssh !== undefined).map((g) => g.name)].sort();
        };
        /** The nodes of each Pacemaker cluster (guest, host), which receive its corosync authkey. */
        const authkeyTargets = (): Record<string, string[]> => {
            const raw = v.raw() as { hosts: { name: string }[]; guestCluster: { stack?: string; nodes: string[] }; hostCluster?: { stack?: string } };
            return {
                guest: raw.guestCluster.stack === "pacemaker" ? raw.guestCluster.nodes : [],
                host: raw.hostCluster?.stack === "pacemaker" ? raw.hosts.map((h) => h.name) : [],
            };
        };

        beforeAll(() => {
            run = runInChild(variant);
        });

        it("registers commands with scripts to scan (the scan below is not vacuous)", () => {
            expect(commands().length).toBeGreaterThan(15);
            for (const r of commands()) {
                expect(String(unwrap(r.inputs.create)).length, `${r.name} create`).toBeGreaterThan(0);
                expect(String(unwrap(r.inputs.delete)).length, `${r.name} delete`).toBeGreaterThan(0);
            }
            expect(run.componentOutputs.length).toBeGreaterThan(3);
            expect(Object.keys(run.outputs)).toEqual(expect.arrayContaining(["guestClusterConf", "labName"]));
        });

        it("shows no secret in any script, environment, trigger, connection, stdin that is not secret, input or output", () => {
            const items = exposures(run);
            // the inventory holds every command's scripts, every plain stdin and every plain output
            const wheres = new Set(items.map((i) => i.where.replace("<secret>", "")));
            for (const r of commands()) {
                for (const k of ["create", "delete", ...(r.inputs.update !== undefined ? ["update"] : [])]) expect(wheres.has(`command ${r.name} .${k}`), `${r.name} ${k}`).toBe(true);
                if (r.inputs.stdin !== undefined && !isSecretValue(r.inputs.stdin)) expect(wheres.has(`command ${r.name} .stdin`), `${r.name} stdin`).toBe(true);
            }
            for (const [name, o] of Object.entries(run.outputs)) {
                if (!o.secret && o.value !== undefined) expect([...wheres].some((w) => w.startsWith(`output ${name}`)), `output ${name}`).toBe(true);
            }
            const leaks = findLeaks(items, secretForms(v.secrets));
            expect(leaks, JSON.stringify(leaks.slice(0, 5), null, 2)).toEqual([]);
        });

        it("sends the fence key (and a Pacemaker cluster's corosync authkey) only as a secret stdin, to the machines that need it", () => {
            // the fence key, and one corosync authkey per Pacemaker cluster (the lab stack's guest cluster): the mocks
            // give every RandomBytes the same fake bytes, so the scan for the key finds the authkey installs too
            const bytes = run.records.filter((r) => r.type === "random:index/randomBytes:RandomBytes");
            const authkeyInstalls = (kind: string) => authkeyTargets()[kind].map((n) => `cluster-conf-${kind}-${n}-authkey`);
            const kinds = Object.keys(authkeyTargets()).filter((k) => authkeyTargets()[k].length > 0);
            // the lab stack's guest cluster is on Pacemaker (the dev stack's clusters on cman)
            expect(kinds, variant).toEqual(variant.startsWith("lab") ? ["guest"] : []);
            expect(bytes.map((b) => b.name).sort()).toEqual(["fence-key-bytes", ...kinds.map((k) => `cluster-conf-${k}-corosync-key`)].sort());
            for (const b of bytes) expect(b.additionalSecretOutputs, b.name).toEqual(expect.arrayContaining(["base64", "hex"]));
            const installs = [...keyTargets().map((m) => `fence-key-${m}`), ...kinds.flatMap(authkeyInstalls)].sort();
            const locations = keyLocations(run, keyForms(FAKE_KEY));
            // Positive control: the key does reach the machines (the scanner sees it where it is allowed).
            expect(locations.map((l) => l.record).sort()).toEqual(installs);
            for (const l of locations) expect(l, `${l.record}${l.path}`).toMatchObject({ path: ".stdin<secret>", secret: true });
            for (const name of installs) {
                const install = run.records.find((r) => r.name === name)!;
                expect(Buffer.from(String(unwrap(install.inputs.stdin)), "base64").equals(FAKE_KEY), `${name} carries the key`).toBe(true);
            }
            // Whatever consumes a RandomBytes' outputs (depends on it) is one of its own installs.
            const consumers = (name: string) => run.records.filter((r) => r.dependencies.includes(bytes.find((b) => b.name === name)!.urn)).map((r) => r.name).sort();
            expect(consumers("fence-key-bytes")).toEqual(keyTargets().map((m) => `fence-key-${m}`));
            for (const k of kinds) expect(consumers(`cluster-conf-${k}-corosync-key`)).toEqual(authkeyInstalls(k).sort());
        });

        it("turns logging off and keeps stdout/stderr secret for every command with a secret stdin", () => {
            const secretStdin = commands().filter((r) => isSecretValue(r.inputs.stdin)).map((r) => r.name);
            expect(secretStdin).toEqual(expect.arrayContaining(keyTargets().map((m) => `fence-key-${m}`)));
            expect(secretStdin).toEqual(expect.arrayContaining(authkeyTargets().guest.map((n) => `cluster-conf-guest-${n}-authkey`)));
            expect(policyViolations(run)).toEqual([]);
        });

        it("keeps the SSH private key secret in every connection that carries it", () => {
            const remote = commands().filter((r) => r.type === "command:remote:Command");
            expect(remote.length).toBeGreaterThan(0);
            for (const r of remote) {
                const conn = r.inputs.connection as Record<string, unknown>;
                expect(isSecretValue(conn) || isSecretValue(conn.privateKey), `${r.name} connection`).toBe(true);
                expect((unwrap(conn) as { privateKey: string }).privateKey).toBe(v.secrets.sshPrivateKey);
            }
        });

        if (Object.keys(v.secrets).some((k) => k.startsWith("ipmiPassword"))) {
            it("puts each fence password only into secret values: the host cluster.conf on stdin, the secret output", () => {
                const deliveries = commands().filter((r) => r.name.startsWith("cluster-conf-host-") && !r.name.endsWith("-version"));
                expect(deliveries.length).toBeGreaterThan(0);
                for (const r of deliveries) {
                    expect(isSecretValue(r.inputs.stdin), r.name).toBe(true);
                    for (const [k, p] of Object.entries(v.secrets)) if (k.startsWith("ipmiPassword")) expect(String(unwrap(r.inputs.stdin))).toContain(p);
                }
                expect(run.outputs.hostClusterConf.secret).toBe(true);
            });
        }
    });
}
