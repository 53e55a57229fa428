/**
 * .ci/run's closing line: test_totals (.ci/lib.sh) adds up the JSON results of every vitest run and prints
 * "N passed, N failed, N skipped"; under CI a skipped test, a failed one, or no test at all fails the run.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");
const dirs: string[] = [];

function results(...runs: { passed: number; failed?: number; skipped?: number; skippedName?: string; notRun?: number; success?: boolean }[]): string {
    const dir = mkdtempSync(join(tmpdir(), "kvmlab-totals-"));
    dirs.push(dir);
    runs.forEach((r, i) =>
        writeFileSync(
            join(dir, `vitest-${i}.json`),
            JSON.stringify({
                numTotalTests: r.passed + (r.failed ?? 0) + (r.skipped ?? 0) + (r.notRun ?? 0),
                success: r.success ?? !(r.failed || r.notRun),
                numPassedTests: r.passed,
                numFailedTests: r.failed ?? 0,
                numPendingTests: r.skipped ?? 0,
                numTodoTests: 0,
                numFailedTestSuites: r.failed || r.notRun ? 1 : 0,
                testResults: [{ name: `/x/run${i}.test.ts`, assertionResults: r.skipped ? [{ status: "skipped", fullName: r.skippedName ?? "a test" }] : [] }],
            }),
        ),
    );
    return dir;
}

function totals(dir: string, ci: boolean) {
    const env: Record<string, string> = { PATH: process.env.PATH ?? "" };
    if (ci) env.CI = "true";
    return spawnSync("bash", ["-c", `. .ci/lib.sh && test_totals "$1"`, "totals", dir], { cwd: ROOT, encoding: "utf8", env });
}

afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("test_totals", () => {
    it("adds up every run and prints the closing line", () => {
        const r = totals(results({ passed: 500 }, { passed: 88 }, { passed: 12 }), true);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toBe("600 passed, 0 failed, 0 skipped\n");
    });

    it("fails the run on a failed test", () => {
        const r = totals(results({ passed: 5 }, { passed: 3, failed: 2 }), true);
        expect(r.status).toBe(1);
        expect(r.stdout).toBe("8 passed, 2 failed, 0 skipped\n");
    });

    it("under CI, fails on a skipped test and names it; outside CI a skip is only counted", () => {
        const dir = results({ passed: 5, skipped: 1, skippedName: "render-cluster-conf > needs xmllint" });
        const ci = totals(dir, true);
        expect(ci.status).toBe(1);
        expect(ci.stdout).toBe("5 passed, 0 failed, 1 skipped\n");
        expect(ci.stderr).toContain("ci: skipped under CI: /x/run0.test.ts: render-cluster-conf > needs xmllint");
        const local = totals(dir, false);
        expect(local.status).toBe(0);
        expect(local.stdout).toBe("5 passed, 0 failed, 1 skipped\n");
    });

    it("counts tests that never ran (a failed hook) as failed, and fails a run vitest calls unsuccessful", () => {
        const notRun = totals(results({ passed: 684, notRun: 8 }), true);
        expect(notRun.status).toBe(1);
        expect(notRun.stdout).toBe("684 passed, 8 failed, 0 skipped\n");
        const unhandled = totals(results({ passed: 10, success: false }), true);
        expect(unhandled.status).toBe(1);
        expect(unhandled.stdout).toBe("10 passed, 0 failed, 0 skipped\n");
        expect(unhandled.stderr).toContain("ci: 1 vitest run(s) ended unsuccessful");
    });

    it("fails when no test ran at all", () => {
        const r = totals(results(), true);
        expect(r.status).toBe(1);
        expect(r.stdout).toBe("0 passed, 0 failed, 0 skipped\n");
    });
});
