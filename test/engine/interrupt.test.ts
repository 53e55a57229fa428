/**
 * An interrupted `pulumi up` on the file backend, with the real CLI (the program as an inline program: see
 * inline-program.ts). What README's "After an interrupted `up`" relies on, as far as this machine's engine goes (the
 * provider plugins are not served, so no resource operation is in flight and pending operations cannot be shown):
 *   - SIGINT: the CLI cancels the update itself and leaves no lock;
 *   - SIGKILL: the lock stays; the next operation is refused and names `pulumi cancel`; `pulumi cancel --yes`
 *     removes the lock and the next operation runs.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, watch } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProc, type ProcResult } from "../harness/proc";
import { PROJECT_ROOT } from "../harness/stack-config";
import { engineEnv, engineGate, initProject, pulumi, type EngineProject } from "./engine-cli";
import type { InlinePreview } from "./inline-program";

const STACK = "lab";

function lockDir(p: EngineProject): string {
    return join(p.state, ".pulumi", "locks", "organization", "kvm-ha-lab", STACK);
}

function locks(p: EngineProject): string[] {
    const dir = lockDir(p);
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
}

/** PIDs of the direct children of `parent` whose command name is `comm`. */
function childrenNamed(parent: number, comm: string): number[] {
    const out: number[] = [];
    for (const d of readdirSync("/proc")) {
        if (!/^\d+$/.test(d)) continue;
        try {
            const stat = readFileSync(`/proc/${d}/stat`, "utf8");
            const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            if (ppid === parent && name === comm) out.push(Number(d));
        } catch {
            // gone meanwhile
        }
    }
    return out;
}

interface Interrupted {
    /** The lock file appeared and the CLI got the signal while it held it. */
    signalled: boolean;
    result: ProcResult;
    run?: InlinePreview;
}

/** Runs `up` and sends `signal` to the CLI as soon as it holds the stack's lock (SIGSTOP first, so it cannot finish). */
async function upInterrupted(p: EngineProject, signal: NodeJS.Signals): Promise<Interrupted> {
    let child: ChildProcess | undefined;
    let signalled = false;
    const watcher = watch(lockDir(p), () => {
        if (signalled || !child?.pid || locks(p).length === 0) return;
        const [cli] = childrenNamed(child.pid, "pulumi");
        if (cli === undefined) return;
        try {
            process.kill(cli, "SIGSTOP");
            if (locks(p).length === 0) {
                process.kill(cli, "SIGCONT");
                return;
            }
            signalled = true;
            if (signal !== "SIGKILL") process.kill(cli, "SIGCONT");
            process.kill(cli, signal);
        } catch {
            // the CLI ended meanwhile: not signalled
        }
    });
    try {
        const result = await runProc(process.execPath, ["--import", "tsx", join(__dirname, "inline-program.ts"), p.dir, STACK, "up"], {
            cwd: PROJECT_ROOT,
            env: engineEnv(p),
            timeoutMs: 300_000,
            onSpawn: (c) => {
                child = c;
            },
        });
        const line = result.stdout.toString().trim().split("\n").pop() ?? "";
        return { signalled, result, run: line.startsWith("{") ? (JSON.parse(line) as InlinePreview) : undefined };
    } finally {
        watcher.close();
    }
}

/** Tries a few times: the CLI may finish its (short) update before the watcher sees the lock. */
async function interrupt(p: EngineProject, signal: NodeJS.Signals): Promise<Interrupted> {
    let last: Interrupted | undefined;
    for (let i = 0; i < 3; i++) {
        last = await upInterrupted(p, signal);
        if (last.signalled) return last;
    }
    throw new Error(`the CLI never held the lock long enough to be signalled: ${last?.result.combined.toString()}`);
}

const gate = engineGate("engine interrupt");

describe.skipIf(gate.skip)("an interrupted pulumi up (real CLI, file backend)", () => {
    let project: EngineProject;

    beforeAll(async () => {
        gate.assertReady();
        project = await initProject(STACK);
        expect(existsSync(lockDir(project)), lockDir(project)).toBe(true);
    });
    afterAll(() => project?.remove());

    it("SIGINT: the CLI cancels the update and releases the lock", async () => {
        const r = await interrupt(project, "SIGINT");
        expect(r.run?.failure ?? "", r.result.combined.toString()).toMatch(/update canceled/);
        expect(locks(project)).toEqual([]);
        const refresh = await pulumi(project, ["refresh", "--yes", "--stack", STACK]);
        expect(refresh.code, refresh.all).toBe(0);
    });

    it("SIGKILL: the lock stays and refuses the next operation until `pulumi cancel` removes it", async () => {
        const r = await interrupt(project, "SIGKILL");
        expect(r.run?.failure ?? "", r.result.combined.toString()).toContain("Command was killed with SIGKILL");
        const left = locks(project);
        expect(left).toHaveLength(1);

        const refused = await pulumi(project, ["refresh", "--yes", "--stack", STACK]);
        expect(refused.code, refused.all).not.toBe(0);
        expect(refused.all).toContain("the stack is currently locked by 1 lock(s)");
        expect(refused.all).toContain("pulumi cancel");
        expect(refused.all).toContain(left[0]);

        const cancel = await pulumi(project, ["cancel", "--yes", "--stack", STACK]);
        expect(cancel.code, cancel.all).toBe(0);
        expect(locks(project)).toEqual([]);
        const refresh = await pulumi(project, ["refresh", "--yes", "--stack", STACK]);
        expect(refresh.code, refresh.all).toBe(0);
    });
});
