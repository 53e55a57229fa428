/**
 * The benchmark script (scripts/bench.ts) runs and reports every case. Its numbers are not judged here: timings are
 * never asserted in tests, only that the measurement itself works.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");
/** As `npm run bench` runs it (package.json). */
const bench = (...args: string[]) =>
    spawnSync("bash", ["-c", `${JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.bench} "$@"`, "bench", ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });

describe("npm run bench", () => {
    it("measures validate + render for every stack and for the large synthetic lab", () => {
        const r = bench("--iterations", "2", "--guests", "20", "--program-sizes", "none");
        expect(r.status, r.stderr).toBe(0);
        const lines = r.stdout.trim().split("\n");
        const stacks = readdirSync(join(ROOT, "stacks"))
            .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
            .filter((s) => s !== undefined)
            .sort();
        expect(stacks.length).toBeGreaterThan(0);
        const measured = lines.filter((l) => / median +[0-9.]+ ms +p95 +[0-9.]+ ms +\d+ files +\d+ KiB +heap after GC [0-9]+\.[0-9] MiB$/.test(l));
        expect(measured.map((l) => l.split(/ {2,}median/)[0].trim())).toEqual([...stacks.map((s) => `stack ${s}`), "lab with 20 guests on 3 hosts"]);
        // the large lab (the lab stack grown) renders a domain XML per guest (20), the per-host files (3 x 3) and its
        // Pacemaker guest cluster's corosync.conf and cib.xml
        expect(measured.at(-1)).toMatch(/ 31 files /);
        expect(lines.at(-1)).toMatch(/^peak RSS \d+ MiB$/);
    });

    it("evaluates the whole program under mocks per synthetic lab, with counts and growth per doubling", () => {
        const r = bench("--iterations", "1", "--guests", "4", "--program-sizes", "2x4,4x8");
        expect(r.status, r.stderr).toBe(0);
        const lines = r.stdout.trim().split("\n").filter((l) => l.startsWith("program "));
        const re = /^program (\d+) hosts x (\d+) guests +(\d+) resources +(\d+) edges +[0-9.]+ MiB inputs +[0-9.]+ s {2}peak RSS +\d+ MiB {2}growth per doubling: time (-|x[0-9.]+) resources (-|x[0-9.]+) edges (-|x[0-9.]+) inputs (-|x[0-9.]+)$/;
        expect(lines).toHaveLength(2);
        const parsed = lines.map((l) => re.exec(l));
        expect(parsed.every((m) => m !== null), lines.join("\n")).toBe(true);
        expect(parsed.map((m) => [m![1], m![2]])).toEqual([["2", "4"], ["4", "8"]]);
        // the bigger lab registers more resources and edges; the first size has nothing to compare with
        expect(Number(parsed[1]![4])).toBeGreaterThan(Number(parsed[0]![4]));
        expect(Number(parsed[1]![3])).toBeGreaterThan(Number(parsed[0]![3]));
        expect(parsed[0]![5]).toBe("-");
        expect(parsed[1]![5]).toMatch(/^x/);
    });

    it("gives the growth per doubling of hosts + guests when the sizes skip one (2x4 to 8x16 is two doublings)", () => {
        const r = bench("--iterations", "1", "--guests", "4", "--program-sizes", "2x4,8x16");
        expect(r.status, r.stderr).toBe(0);
        const lines = r.stdout.trim().split("\n").filter((l) => l.startsWith("program "));
        const counts = lines.map((l) => Number(/ (\d+) resources /.exec(l)![1]));
        const edges = lines.map((l) => Number(/ (\d+) edges /.exec(l)![1]));
        expect(lines[1]).toContain(`resources x${Math.sqrt(counts[1] / counts[0]).toFixed(2)} `);
        expect(lines[1]).toContain(`edges x${Math.sqrt(edges[1] / edges[0]).toFixed(2)} `);
    });

    it("refuses a bad argument with usage and exit 64", () => {
        const r = bench("--iterations", "0");
        expect(r.status).toBe(64);
        expect(r.stderr).toMatch(/usage: npm run --silent bench/);
        const sizes = bench("--program-sizes", "16by64");
        expect(sizes.status).toBe(64);
        expect(sizes.stderr).toMatch(/^bench: bad --program-sizes 16by64: give HOSTSxGUESTS pairs/);
        // --rebuild-image only means something to --real-guests (test/e2e/bench-guests.test.ts runs that for real)
        const rebuild = bench("--rebuild-image");
        expect(rebuild.status).toBe(64);
        expect(rebuild.stderr).toMatch(/^bench: --rebuild-image goes with --real-guests\n/);
        expect(rebuild.stderr).toMatch(/--real-guests \[--rebuild-image\]/);
    });
});
