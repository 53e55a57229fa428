/**
 * One case of `npm run bench`'s whole-program measurement, run in its own process by scripts/bench.ts:
 * `node --expose-gc --import tsx scripts/bench-program.ts HOSTS GUESTS [--no-host-cluster]`. Evaluates index.ts for a synthetic lab under
 * the program tests' recording mocks (no engine, no command runs) and prints one JSON line: resources, dependency
 * edges, bytes of registered inputs, wall time and peak RSS.
 */
import { performance } from "node:perf_hooks";
import { installMocks, stackConfig } from "../test/program/recording-mocks";
import { syntheticLab } from "./bench-lab";

async function main(): Promise<void> {
    const [hosts, guests] = process.argv.slice(2, 4).map(Number);
    const { raw, secrets } = syntheticLab(hosts, guests);
    // `--no-host-cluster`: the same lab without its host cluster (the resource-count test's variants)
    if (process.argv.includes("--no-host-cluster")) {
        delete raw.hostCluster;
        for (const k of Object.keys(secrets)) if (k.startsWith("ipmi")) delete secrets[k];
    }
    const { config, secretKeys } = stackConfig(raw, secrets);
    const t0 = performance.now();
    const run = await installMocks("bench", config, secretKeys);
    await import("../index.js");
    await run.settle();
    const ms = performance.now() - t0;
    const edges = run.records.reduce((n, r) => n + r.dependencies.length, 0);
    const inputBytes = run.records.reduce((n, r) => n + Buffer.byteLength(JSON.stringify(r.inputs)), 0);
    process.stdout.write(
        `${JSON.stringify({ hosts, guests, resources: run.records.length, edges, inputBytes, ms: Math.round(ms), rssMiB: Math.round(process.resourceUsage().maxRSS / 1024) })}\n`,
    );
}

main().then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
    },
);
