/**
 * Proves the executing harness itself (test/harness/*) with a throwaway program (test/harness/fixtures/tiny-program.ts):
 * creates and deletes really run, stdin/env/dir/interpreter are honoured, one trailing newline is trimmed,
 * PULUMI_COMMAND_STDOUT reaches delete, failures carry the provider's message and never hang, remote.Command runs over
 * SSH inside a guest endpoint whose /etc/cluster is its own, RandomBytes is real and secret.
 */
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGuestEndpoint, generateClientKey, type GuestEndpoint } from "../harness/guest-endpoint";
import { mustRun, pidAlive, runProc } from "../harness/proc";
import { runProgram, type ProgramRun, type RunProgramOptions } from "../harness/run-program";
import { suiteGate } from "../harness/services";
import { PROJECT_ROOT, toPulumiConfig } from "../harness/stack-config";

const TINY = join(PROJECT_ROOT, "test", "harness", "fixtures", "tiny-program.ts");
const BRIDGE = "hex-br0";
const gate = suiteGate("harness e2e", ["ip", "ssh", "sshd", "ssh-keygen", "nsenter", "unshare", "mount", "base64"]);

describe.skipIf(gate.skip)("executing harness", () => {
    let work: string;
    let guest: GuestEndpoint | undefined;

    function tiny(
        mode: string,
        extra: { timeoutMs?: number; endpoint?: GuestEndpoint; values?: Record<string, unknown>; onCreated?: RunProgramOptions["onCreated"] } = {},
    ): Promise<ProgramRun> {
        const ep = extra.endpoint ?? guest!;
        const { config, secretKeys } = toPulumiConfig(
            { workDir: work, mode, remoteHost: ep.address, ...extra.values },
            { privateKey: ep.privateKey },
            "hex-tiny",
        );
        return runProgram({
            stack: "harness",
            project: "hex-tiny",
            projectDir: PROJECT_ROOT,
            config,
            secretKeys,
            programPath: TINY,
            timeoutMs: extra.timeoutMs ?? 60_000,
            onCreated: extra.onCreated,
        });
    }

    beforeAll(async () => {
        gate.assertReady();
        work = realpathSync(mkdtempSync(join(tmpdir(), "hex-harness-")));
        if (existsSync(`/sys/class/net/${BRIDGE}`)) await mustRun("ip", ["link", "del", BRIDGE]); // left by a crashed run of this suite
        await mustRun("ip", ["link", "add", BRIDGE, "type", "bridge"]);
        await mustRun("ip", ["addr", "add", "10.213.77.1/24", "dev", BRIDGE]);
        await mustRun("ip", ["link", "set", BRIDGE, "up"]);
        guest = await createGuestEndpoint({ name: "g1", bridge: BRIDGE, address: "10.213.77.11/24", prefix: "hex" });
        await guest.waitAttached(5000);
    });

    afterAll(async () => {
        await guest?.destroy();
        if (existsSync(`/sys/class/net/${BRIDGE}`)) await runProc("ip", ["link", "del", BRIDGE]);
        if (work) rmSync(work, { recursive: true, force: true });
    });

    it("applies for real, records what ran, and tears down in reverse order", async () => {
        const hooked: string[] = [];
        let writerHookDone = 0;
        const run = await tiny("ok", {
            onCreated: async (r) => {
                hooked.push(r.name);
                if (r.name === "writer") {
                    await new Promise((res) => setTimeout(res, 200));
                    writerHookDone = Date.now();
                }
            },
        });
        expect(run.errors).toEqual([]);
        // The hook sees every completed custom resource, and dependents wait for it.
        expect(hooked).toEqual(run.records.filter((r) => r.custom && r.status === "created").map((r) => r.name));
        expect(run.records.find((r) => r.name === "where")!.startedAt).toBeGreaterThanOrEqual(writerHookDone);

        // local.Command: stdin delivered, env passed, one trailing newline trimmed, stderr captured, dir and interpreter.
        expect(readFileSync(join(work, "created.txt"), "utf8")).toBe("from-stdin\n");
        expect(run.outputs.writerStdout).toBe("line1\nline2\n");
        expect(run.outputs.writerStderr).toBe("warn");
        expect(run.outputs.whereStdout).toBe(work);
        expect(run.outputs.cwdStdout).toBe(PROJECT_ROOT);
        expect(run.outputs.bashStdout).toBe("bash");

        // RandomBytes: real, 4096 bytes, secret; delivered on stdin to a local file and into the guest.
        expect(run.secretOutputs).toContain("keyBase64");
        expect(run.secretOutputs).not.toContain("writerStdout");
        const key = Buffer.from(run.outputs.keyBase64 as string, "base64");
        expect(key.length).toBe(4096);
        expect(new Set(key).size).toBeGreaterThan(200);
        expect(readFileSync(join(work, "key.bin")).equals(key)).toBe(true);
        expect(run.outputs.keyFileStdout).toBe("4096");

        // remote.Command: ran over SSH in the guest; the guest's /etc/cluster is its own.
        expect(run.outputs.guestKeyStdout).toBe("600 4096");
        expect((await guest!.readFile("/etc/cluster/hex-test.key")).equals(key)).toBe(true);
        expect(await guest!.stat("/etc/cluster/hex-test.key")).toMatchObject({ mode: 0o600, uid: 0, size: 4096 });
        expect(existsSync("/etc/cluster/hex-test.key")).toBe(false);

        // Records: completion order, parent chain, dependencies, stdin facts; no secret value anywhere.
        const byName = new Map(run.records.map((r) => [r.name, r]));
        const group = byName.get("tiny")!;
        expect(group).toMatchObject({ type: "hex:index:Group", custom: false });
        const writer = byName.get("writer")!;
        expect(writer.urn).toBe("urn:pulumi:harness::hex-tiny::hex:index:Group$command:local:Command::writer");
        expect(writer.parents).toEqual([group.urn]);
        expect(writer).toMatchObject({ status: "created", executed: true, environment: { WORK: work }, stdin: { present: true, secret: false, bytes: 11 } });
        expect(byName.get("where")!.dependencies).toContain(writer.urn);
        expect(byName.get("where")!.seq).toBeGreaterThan(writer.seq);
        expect(byName.get("key-file")!.stdin).toEqual({ present: true, secret: true, bytes: (run.outputs.keyBase64 as string).length });
        expect(byName.get("key-file")!.secretInputs).toContain("stdin");
        expect(byName.get("guest-key")).toMatchObject({ type: "command:remote:Command", connection: { host: guest!.address, port: 22, user: "root" } });
        expect(byName.get("tiny-key")).toMatchObject({ type: "random:index/randomBytes:RandomBytes", executed: true, length: 4096 });
        const recorded = JSON.stringify(run.records);
        expect(recorded).not.toContain((run.outputs.keyBase64 as string).slice(0, 64));
        expect(recorded).not.toContain(key.toString("hex").slice(0, 64));
        expect(recorded).not.toContain(guest!.privateKey.split("\n")[1]);
        expect(run.records.map((r) => r.seq)).toEqual(run.records.map((_, i) => i));

        // Teardown: deletes in reverse completion order with the create outputs in the environment.
        const td = await run.teardown();
        expect(td.failures).toEqual([]);
        const withDelete = run.records.filter((r) => r.delete !== undefined).map((r) => r.name);
        expect(td.deletes.map((d) => d.name)).toEqual([...withDelete].reverse());
        expect(existsSync(join(work, "created.txt"))).toBe(false);
        expect(existsSync(join(work, "key.bin"))).toBe(false);
        expect(readFileSync(join(work, "delete-saw-stdout.txt"), "utf8")).toBe("line1\nline2\n");
        expect(readFileSync(join(work, "delete-saw-stderr.txt"), "utf8")).toBe("warn");
        expect(await guest!.stat("/etc/cluster/hex-test.key")).toBeUndefined();
        // As with the provider: PULUMI_COMMAND_STDOUT is an SSH env request, dropped by an sshd without AcceptEnv for it.
        expect((await guest!.readFile("/etc/hex-remote-delete-env")).toString()).toBe("unset");
        expect((await run.teardown()).deletes).toEqual(td.deletes); // second call: nothing runs again

        // A second run re-evaluates the program (fresh module graph) and draws new bytes.
        const again = await tiny("ok");
        expect(again.errors).toEqual([]);
        expect(again.records.length).toBe(run.records.length);
        const key2 = Buffer.from(again.outputs.keyBase64 as string, "base64");
        expect(key2.length).toBe(4096);
        expect(key2.equals(key)).toBe(false);
        await again.teardown();
        expect(existsSync(join(work, "key.bin"))).toBe(false);
    });

    it("reaches a guest endpoint on a bridge the program creates (endpoint made first)", async () => {
        const shared = await generateClientKey();
        const ep = await createGuestEndpoint({ name: "g2", bridge: "hex-br1", address: "10.213.78.11/24", prefix: "hex", clientKey: shared });
        try {
            expect(ep.privateKey).toBe(shared.privateKey);
            expect(ep.attached()).toBe(false);
            const run = await tiny("bridge", { endpoint: ep, values: { bridgeName: "hex-br1", bridgeCidr: "10.213.78.1/24" } });
            expect(run.errors).toEqual([]);
            expect(ep.attached()).toBe(true);
            expect(run.outputs.guestKeyStdout).toBe("10.213.78.11");
            expect((await ep.readFile("/etc/cluster/reached")).toString()).toBe("reached\n");
            expect(existsSync("/etc/cluster/reached")).toBe(false);
            await run.teardown();
            expect(existsSync("/sys/class/net/hex-br1")).toBe(false);
            expect(ep.attached()).toBe(false);
        } finally {
            await ep.destroy();
            if (existsSync("/sys/class/net/hex-br1")) await runProc("ip", ["link", "del", "hex-br1"]);
        }
        expect(existsSync(`/run/netns/${ep.nsName}`)).toBe(false);
        expect(existsSync(`/sys/class/net/${ep.hostIf}`)).toBe(false);
        expect(pidAlive(ep.sshdPid)).toBe(false);
    });

    it("fails a command with the provider's message, skips later creates, and does not hang", async () => {
        const run = await tiny("fail");
        expect(run.timedOut).toBe(false);
        expect(run.durationMs).toBeLessThan(20_000);
        const byName = new Map(run.records.map((r) => [r.name, r]));
        expect(byName.get("boom")).toMatchObject({ status: "failed" });
        expect(byName.get("boom")!.error).toBe('exit status 3: running "echo before-failure; echo oops >&2; exit 3":\nbefore-failure\noops\n');
        expect(run.errors).toContain('boom [command:local:Command]: exit status 3: running "echo before-failure; echo oops >&2; exit 3":\nbefore-failure\noops\n');
        // The dependent's rejected input surfaces as an unhandled rejection, captured instead of leaking to vitest.
        expect(run.errors.some((e) => e.includes("failed to register new resource boom [command:local:Command]: exit status 3"))).toBe(true);
        expect(byName.has("after-boom")).toBe(false); // its input rejected: never registered
        expect(byName.get("slow")).toMatchObject({ status: "created", stdout: "slow" }); // already running: finishes
        expect(byName.get("late")).toMatchObject({ status: "skipped" }); // would start after the failure
        expect(byName.get("remote-fail")!.error).toBe('Process exited with status 7: running "echo remote-out; exit 7":\nremote-out\n');
        expect(byName.get("remote-refused")!.error).toMatch(/^dial tcp 10\.213\.77\.11:2222 \(3 attempts\): .*Connection refused/);
        const td = await run.teardown();
        expect(td.failures).toEqual([]);
    });

    it("rejects a duplicate URN", async () => {
        const run = await tiny("duplicate");
        expect(run.errors).toContain(
            "dup [command:local:Command]: Duplicate resource URN 'urn:pulumi:harness::hex-tiny::command:local:Command::dup'; try giving it a unique name",
        );
        expect(run.records.filter((r) => r.name === "dup" && r.status === "created")).toHaveLength(1);
        await run.teardown();
    });

    it("times out a hanging create and kills it", async () => {
        const run = await tiny("hang", { timeoutMs: 1500 });
        expect(run.timedOut).toBe(true);
        expect(run.durationMs).toBeLessThan(10_000);
        expect(run.errors.some((e) => e.startsWith("timed out after 1500 ms; still running: hang [command:local:Command]"))).toBe(true);
        const leftover = await runProc("pgrep", ["-f", "^sleep 30.25$"]);
        expect(leftover.stdout.toString().trim()).toBe("");
        await run.teardown({ throwOnFailure: false });
    });
});
