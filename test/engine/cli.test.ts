/**
 * The real Pulumi CLI (`npm run engine`) against this project's Pulumi.yaml and stack files: what a user runs before
 * any `pulumi up`, and what the mock harness cannot show, because there config comes from `setAllConfig`:
 *   - the CLI is the release the SDK is pinned to, with its version stamped in;
 *   - it loads Pulumi.yaml (runtime options, stackConfigDir, backend overridden by PULUMI_BACKEND_URL) and reads
 *     every stack file with exactly the values our own reader (components/stack-file.ts, used by `npm run render`)
 *     gets;
 *   - `pulumi config set --path` (how README tells users to point a guest at its SSH address) writes a stack file
 *     that our reader reads as intended and that renders;
 *   - secrets set as README says (`pulumi config set --secret KEY < FILE`) are only ciphertext in the stack file (the
 *     value searched raw, base64 and hex), read back exactly, and unreadable with another passphrase.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseStackFile } from "../../components/stack-file";
import { PROJECT_ROOT } from "../harness/stack-config";
import { CLI_VERSION, engineGate, makeProject, pulumi, type EngineProject } from "./engine-cli";

const PROJECT = "kvm-ha-lab";
const STACKS = readdirSync(join(PROJECT_ROOT, "stacks"))
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => !!s)
    .sort();

interface ConfigEntry {
    value?: string;
    objectValue?: unknown;
    secret: boolean;
}

/** `pulumi config --json` as key → value (structured values as objects). */
function cliValues(json: string): Record<string, { value: unknown; secret: boolean }> {
    const parsed = JSON.parse(json) as Record<string, ConfigEntry>;
    return Object.fromEntries(
        Object.entries(parsed).map(([k, e]) => [k, { value: e.objectValue !== undefined ? e.objectValue : e.value, secret: e.secret }]),
    );
}

function variants(secret: string): string[] {
    const b = Buffer.from(secret);
    return [secret, b.toString("base64"), b.toString("hex")];
}

const gate = engineGate("engine cli");

describe.skipIf(gate.skip)("the real Pulumi CLI on this project", () => {
    let project: EngineProject;

    beforeAll(() => {
        gate.assertReady();
        project = makeProject();
    });
    afterAll(() => project?.remove());

    it(`is the pinned release v${CLI_VERSION}`, async () => {
        const r = await pulumi(project, ["version"]);
        expect(r.code, r.all).toBe(0);
        expect(r.out.trim()).toBe(`v${CLI_VERSION}`);
    });

    it.each(STACKS)("loads Pulumi.yaml and reads stacks/Pulumi.%s.yaml with the values our stack-file reader gets", async (stack) => {
        const init = await pulumi(project, ["stack", "init", stack]);
        expect(init.code, init.all).toBe(0);
        // The state went to the test's backend, not to Pulumi.yaml's `~/.pulumi-kvm-ha-lab`.
        expect(existsSync(join(project.home, ".pulumi-kvm-ha-lab"))).toBe(false);
        const ls = await pulumi(project, ["stack", "ls", "--json"]);
        expect(ls.code, ls.all).toBe(0);
        expect((JSON.parse(ls.out) as { name: string }[]).map((s) => s.name)).toContain(stack);

        const r = await pulumi(project, ["config", "--json", "--stack", stack]);
        expect(r.code, r.all).toBe(0);
        const cli = cliValues(r.out);
        const ours = parseStackFile(readFileSync(join(project.dir, "stacks", `Pulumi.${stack}.yaml`), "utf8"));
        const plain = Object.fromEntries(
            Object.entries(cli)
                .filter(([k, e]) => k.startsWith(`${PROJECT}:`) && !e.secret)
                .map(([k, e]) => [k.slice(PROJECT.length + 1), e.value]),
        );
        expect(plain).toEqual(ours.raw);
        const secret = Object.keys(cli)
            .filter((k) => k.startsWith(`${PROJECT}:`) && cli[k].secret)
            .map((k) => k.slice(PROJECT.length + 1));
        expect(new Set(secret)).toEqual(ours.secretKeys);
    });

    it("`pulumi config set --path` edits a stack file so that our reader sees the edit and the stack renders", async () => {
        const stack = "lab";
        const file = join(project.dir, "stacks", `Pulumi.${stack}.yaml`);
        const comments = (text: string) => text.split("\n").filter((l) => /^\s*#/.test(l) || / # /.test(l));
        const beforeText = readFileSync(file, "utf8");
        const before = parseStackFile(beforeText).raw as { guests: { name: string; memoryMiB: number }[] };
        const g = before.guests.length - 1;
        for (const args of [
            ["config", "set", "--stack", stack, "--path", `${PROJECT}:guests[0].ssh.address`, "10.99.0.11"],
            // No `--type`: with --path the CLI stores a number as a YAML number, which validation requires.
            ["config", "set", "--stack", stack, "--path", `${PROJECT}:guests[${g}].memoryMiB`, "1536"],
        ]) {
            const r = await pulumi(project, args);
            expect(r.code, r.all).toBe(0);
        }
        const afterText = readFileSync(file, "utf8");
        const after = parseStackFile(afterText).raw as { guests: Record<string, unknown>[] };
        // The file's comments (the stack's documentation) survive the CLI's rewrite.
        expect(comments(afterText)).toEqual(comments(beforeText));
        expect(after.guests[0].ssh).toEqual({ address: "10.99.0.11" });
        expect(after.guests[g].memoryMiB).toBe(1536);
        // Everything else is as it was.
        const expected = structuredClone(before) as { guests: Record<string, unknown>[] };
        expected.guests[0].ssh = { address: "10.99.0.11" };
        expected.guests[g].memoryMiB = 1536;
        expect(after).toEqual(expected);

        const out = mkdtempSync(join(tmpdir(), "kvmlab-engine-render-"));
        try {
            const render = spawnSync(
                process.execPath,
                ["--import", "tsx", join(PROJECT_ROOT, "scripts/render.ts"), "--stack", stack, "--out", out, "--stacks-dir", join(project.dir, "stacks")],
                { cwd: PROJECT_ROOT, encoding: "utf8", timeout: 60_000 },
            );
            expect(render.status, `${render.stdout}${render.stderr}`).toBe(0);
            const xml = readFileSync(join(out, "xml_defs", `${String(after.guests[g].name)}.xml`), "utf8");
            expect(xml).toContain(`<memory unit="MiB">1536</memory>`);
        } finally {
            rmSync(out, { recursive: true, force: true });
        }
    });

    it("secrets set as README says are ciphertext only in the stack file and read back exactly", async () => {
        const stack = "lab";
        const file = join(project.dir, "stacks", `Pulumi.${stack}.yaml`);
        const keyDir = mkdtempSync(join(tmpdir(), "kvmlab-engine-key-"));
        try {
            const gen = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "engine-test", "-f", join(keyDir, "id")], { encoding: "utf8" });
            expect(gen.status, gen.stderr).toBe(0);
            const privateKey = readFileSync(join(keyDir, "id"), "utf8");
            const password = "fence password 4 engine test";

            const setKey = await pulumi(project, ["config", "set", "--stack", stack, "--secret", `${PROJECT}:sshPrivateKey`], { stdin: privateKey });
            expect(setKey.code, setKey.all).toBe(0);
            const setPw = await pulumi(project, ["config", "set", "--stack", stack, "--secret", `${PROJECT}:ipmiPasswordKvm1`, password]);
            expect(setPw.code, setPw.all).toBe(0);

            const text = readFileSync(file, "utf8");
            const doc = parse(text) as { encryptionsalt?: string; config: Record<string, unknown> };
            expect(doc.encryptionsalt).toMatch(/^v1:/);
            for (const k of ["sshPrivateKey", "ipmiPasswordKvm1"]) expect(doc.config[`${PROJECT}:${k}`]).toEqual({ secure: expect.stringMatching(/^v1:/) });
            const body = privateKey.split("\n").filter((l) => l && !l.startsWith("-----"));
            for (const s of [...variants(privateKey), ...variants(privateKey.trim()), ...body, ...variants(password)]) expect(text).not.toContain(s);

            const ours = parseStackFile(text);
            expect([...ours.secretKeys].sort()).toEqual(["ipmiPasswordKvm1", "sshPrivateKey"]);
            expect(Object.keys(ours.raw)).not.toContain("sshPrivateKey");

            // What the program receives: the file minus its one trailing newline (the CLI drops it from stdin). Go's
            // SSH client (the command provider's) takes such a key; OpenSSH's `ssh -i` refuses it as a file.
            const getKey = await pulumi(project, ["config", "get", "--json", "--stack", stack, `${PROJECT}:sshPrivateKey`]);
            expect(getKey.code, getKey.all).toBe(0);
            expect(JSON.parse(getKey.out)).toEqual({ value: privateKey.replace(/\n$/, ""), secret: true });
            const getPw = await pulumi(project, ["config", "get", "--json", "--stack", stack, `${PROJECT}:ipmiPasswordKvm1`]);
            expect(JSON.parse(getPw.out)).toEqual({ value: password, secret: true });

            const wrong = await pulumi(project, ["config", "get", "--stack", stack, `${PROJECT}:ipmiPasswordKvm1`], {
                env: { PULUMI_CONFIG_PASSPHRASE: "not the passphrase" },
            });
            expect(wrong.code, wrong.all).not.toBe(0);
            expect(wrong.all).not.toContain(password);
            expect(wrong.all).toMatch(/passphrase/i);
        } finally {
            rmSync(keyDir, { recursive: true, force: true });
        }
    });
});
