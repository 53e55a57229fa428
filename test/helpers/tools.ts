/**
 * Running the real tools that judge rendered files (xmllint, virt-xml-validate, iptables-restore, fence_virtd …)
 * from unit tests: a synchronous runner, a check for a tool on PATH, and `need`, which skips a test with a message
 * when a judge is missing, except under CI, where a missing judge fails the test instead.
 */
import { spawnSync } from "node:child_process";
import type { TestContext } from "vitest";

export interface ToolRun {
    status: number | null;
    stdout: string;
    /** stdout, stderr and a spawn error, for assertion messages. */
    out: string;
}

export function run(cmd: string, args: string[], input?: string, timeoutMs = 60_000): ToolRun {
    const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? "", out: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}` };
}

export function hasTool(name: string): boolean {
    return run("sh", ["-c", `command -v ${name}`]).status === 0;
}

export function need(ctx: TestContext, what: string, ok: boolean): void {
    if (ok) return;
    const msg = `skipped: ${what}`;
    if (process.env.CI) throw new Error(`${msg} (CI is set, so this fails instead of skipping)`);
    console.warn(msg);
    ctx.skip(msg);
}

/**
 * For `describe.skipIf(...)`: true (skip, with a message) when a requirement is missing, except under CI, where a
 * missing requirement throws when the file loads, so the run fails instead of skipping.
 */
export function skipUnless(what: string, ok: boolean): boolean {
    if (ok) return false;
    if (process.env.CI) throw new Error(`needs ${what} (CI is set, so this fails instead of skipping)`);
    console.warn(`skipped: needs ${what}`);
    return true;
}
