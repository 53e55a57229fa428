/**
 * Secrets under the real Pulumi CLI (the program as an inline program, see inline-program.ts), with the dev stack,
 * whose hosts are reached over SSH with a private key and whose fence devices have passwords, all set as README
 * says (`pulumi config set --secret`). `pulumi up` registers the remote commands that carry the key (and stops at the
 * provider plugins, which are not served). Then no secret, raw, base64 or hex, nor any line of the key, is in: the
 * stack file, the backend's files (state, backups, history), PULUMI_HOME, `pulumi stack export`, the engine's event
 * stream, what the CLI printed, or the engine's own log at `-v=8`. At `-v=9` the engine's log prints resource inputs
 * in plaintext, secrets included: README says so, and the last test checks that warning is still true.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { referencedSecrets, validateLabConfig } from "../../components/config";
import { parseStackFile } from "../../components/stack-file";
import { PROJECT_ROOT } from "../harness/stack-config";
import { engineEnv, engineGate, initProject, pulumi, type EngineProject } from "./engine-cli";

const STACK = "dev";
const PROJECT = "kvm-ha-lab";

/** Every form in which a secret must not appear. */
function forms(secret: string): string[] {
    const out = new Set<string>();
    for (const s of [secret, secret.trim()]) {
        const b = Buffer.from(s);
        out.add(s);
        out.add(b.toString("base64"));
        out.add(b.toString("hex"));
    }
    // An OpenSSH key line by line (its base64 body).
    for (const line of secret.split("\n")) if (line.length >= 16 && !line.startsWith("-----")) out.add(line);
    return [...out];
}

function filesUnder(dir: string): string[] {
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { recursive: true, encoding: "utf8" })
        .map((f) => join(dir, f))
        .filter((f) => statSync(f).isFile());
}

/** Runs `pulumi up` of the program; the engine's log (at `verbosity`) and events go to files in `dir`. */
function upLogged(project: EngineProject, dir: string, verbosity: number): { log: string; events: string; output: string } {
    const log = join(dir, `engine-v${verbosity}.log`);
    const events = join(dir, `events-v${verbosity}.jsonl`);
    const r = spawnSync(process.execPath, ["--import", "tsx", join(__dirname, "inline-program.ts"), project.dir, STACK, "up"], {
        cwd: PROJECT_ROOT,
        env: engineEnv(project, { KVMLAB_ENGINE_LOG: log, KVMLAB_ENGINE_LOG_V: String(verbosity), KVMLAB_ENGINE_EVENTS: events }),
        encoding: "utf8",
        timeout: 300_000,
        maxBuffer: 256 * 1024 * 1024,
    });
    if (r.status !== 0) throw new Error(`inline-program.ts exited ${r.status}: ${r.stderr}${r.error ? String(r.error) : ""}`);
    return { log: readFileSync(log, "utf8"), events: readFileSync(events, "utf8"), output: `${r.stdout}${r.stderr}` };
}

const gate = engineGate("engine secrets");

describe.skipIf(gate.skip)("secrets under the real Pulumi CLI (dev stack)", () => {
    let project: EngineProject;
    let work: string;
    const secrets: Record<string, string> = {};

    beforeAll(async () => {
        gate.assertReady();
        project = await initProject(STACK);
        work = mkdtempSync(join(tmpdir(), "kvmlab-engine-secrets-"));

        // The secrets the dev stack names: SSH private keys get a real key, the others a random password.
        const raw = parseStackFile(readFileSync(join(project.dir, "stacks", `Pulumi.${STACK}.yaml`), "utf8")).raw;
        const spec = validateLabConfig(raw, { stack: STACK, secretKeys: new Set(), requireSecrets: false, readFile: () => undefined });
        for (const name of referencedSecrets(spec)) {
            if (/key/i.test(name)) {
                const keyFile = join(work, name);
                const gen = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "engine-secrets-test", "-f", keyFile], { encoding: "utf8" });
                expect(gen.status, gen.stderr).toBe(0);
                secrets[name] = readFileSync(keyFile, "utf8");
                rmSync(keyFile);
                rmSync(`${keyFile}.pub`);
            } else {
                secrets[name] = `pw-${randomBytes(12).toString("hex")}`;
            }
            const set = await pulumi(project, ["config", "set", "--stack", STACK, "--secret", `${PROJECT}:${name}`], { stdin: secrets[name] });
            expect(set.code, set.all).toBe(0);
        }
        expect(Object.keys(secrets).some((n) => secrets[n].includes("PRIVATE KEY")), `the dev stack names no SSH key: ${Object.keys(secrets)}`).toBe(true);
    });
    afterAll(() => {
        project?.remove();
        if (work) rmSync(work, { recursive: true, force: true });
    });

    it("no secret in the stack file, the state, PULUMI_HOME, stack export, the events, the output or the -v=8 log", async () => {
        const run = upLogged(project, work, 8);
        // The engine did receive the resources that carry the key: remote commands over SSH were registered.
        expect(run.log).toMatch(/Registering resource: t=command:remote:Command, name=/);

        const exported = await pulumi(project, ["stack", "export", "--stack", STACK]);
        expect(exported.code, exported.all).toBe(0);
        const texts: [string, string][] = [
            ["stack export", exported.out],
            ["engine log -v=8", run.log],
            ["engine events", run.events],
            ["CLI output", run.output],
        ];
        for (const f of [...filesUnder(project.dir), ...filesUnder(project.state), ...filesUnder(project.home)]) texts.push([f, readFileSync(f, "latin1")]);
        const found: string[] = [];
        for (const [name, secret] of Object.entries(secrets)) {
            for (const form of forms(secret)) {
                for (const [where, text] of texts) if (text.includes(form)) found.push(`${name} (${form.slice(0, 24)}…) in ${where}`);
            }
        }
        expect(found).toEqual([]);
        // The stack file holds them as ciphertext.
        const doc = readFileSync(join(project.dir, "stacks", `Pulumi.${STACK}.yaml`), "utf8");
        for (const name of Object.keys(secrets)) expect(doc).toMatch(new RegExp(`${PROJECT}:${name}:\\n\\s+secure: v1:`));
    });

    it("README's warning holds: at -v=9 the engine's own log prints secret inputs (the SSH key) in plaintext", () => {
        const run = upLogged(project, work, 9);
        const key = Object.values(secrets).find((s) => s.includes("PRIVATE KEY"))!;
        const body = key.split("\n").find((l) => l.length >= 16 && !l.startsWith("-----"))!;
        expect(run.log).toContain(body);
        expect(run.events).not.toContain(body);
    });
});
