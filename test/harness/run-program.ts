/**
 * Runs a Pulumi program (index.ts, or a test fixture) for real under the executing mocks and returns what happened.
 *
 *   const run = await runProgram({ stack: "lab", config, secretKeys, programPath: "/work/main/index.ts" });
 *   expect(run.errors).toEqual([]);
 *   ...assert real state...
 *   await run.teardown();            // deletes in reverse completion order; throws listing every failed delete
 *
 * Order inside: setMocks (+ monitor hook) → setAllConfig → fresh import of the program → wait until every
 * registration has completed or failed (bounded by `timeoutMs`) → resolve the program's exports (its stack outputs).
 *
 * Fresh module graph per run: inside vitest (env VITEST set) `vi.resetModules()` runs before `import(programPath)`,
 * so index.ts and every project module it imports are evaluated again; node_modules (@pulumi/*) are external and stay
 * loaded once, which is required (the mocks are installed in that one @pulumi/pulumi instance). Outside vitest (tsx,
 * where project .ts files load as CommonJS) the project's entries are deleted from `require.cache` and the program is
 * imported with a cache-busting query (`?run=N`): a query alone does NOT re-evaluate a CommonJS module (measured).
 * Keep vitest's per-file isolation (no `--no-isolate`).
 *
 * Failures never throw out of runProgram: a failing create, a rejected output, an import error or a timeout all land
 * in `errors` (deduplicated). Unhandled rejections are captured only while the run is in progress (the process's
 * other `unhandledRejection` listeners, e.g. vitest's, are set aside meanwhile and restored afterwards).
 */
import * as pulumi from "@pulumi/pulumi";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { parse } from "yaml";
import { ExecutingMocks, type CreateRecord, type ExecutingMocksOptions, type TeardownResult } from "./executing-mocks";
import { sleep } from "./proc";

export interface RunProgramOptions {
    stack: string;
    /** Full keys (`kvm-ha-lab:hosts`) → value as Pulumi passes it: objects and arrays as JSON text. */
    config: Record<string, string>;
    /** Full keys whose value is a secret. */
    secretKeys?: string[];
    /** Absolute path of the program's entry module. */
    programPath: string;
    /** Directory with Pulumi.yaml; default: nearest one above programPath (else programPath's directory). */
    projectDir?: string;
    /** Project name; default: `name` in <projectDir>/Pulumi.yaml, else "project". */
    project?: string;
    /** Bound on the whole apply (default 300 000 ms). Running commands are killed when it expires. */
    timeoutMs?: number;
    continueOnError?: ExecutingMocksOptions["continueOnError"];
    injectFailure?: ExecutingMocksOptions["injectFailure"];
    onCreated?: ExecutingMocksOptions["onCreated"];
    maxDialRetries?: ExecutingMocksOptions["maxDialRetries"];
    log?: ExecutingMocksOptions["log"];
}

export interface ProgramRun {
    /** Every registration in completion order (components included: filter on `custom`). */
    records: CreateRecord[];
    /** The program's exports, resolved (secret ones unwrapped: see `secretOutputs`). */
    outputs: Record<string, unknown>;
    /** Names of the exports that are secret. */
    secretOutputs: string[];
    /** Every failure message, deduplicated: failed creates first, then rejections, import errors, timeout. */
    errors: string[];
    timedOut: boolean;
    durationMs: number;
    /** The mocks, for `running()`, `deletes`, `hasFailures`. */
    mocks: ExecutingMocks;
    /** Runs the delete scripts (see ExecutingMocks.teardown). */
    teardown(opts?: Parameters<ExecutingMocks["teardown"]>[0]): Promise<TeardownResult>;
}

let runCounter = 0;

function findProjectDir(programPath: string): string {
    let d = dirname(programPath);
    for (;;) {
        if (existsSync(join(d, "Pulumi.yaml"))) return d;
        const up = dirname(d);
        if (up === d) return dirname(programPath);
        d = up;
    }
}

function projectName(projectDir: string): string {
    try {
        const doc = parse(readFileSync(join(projectDir, "Pulumi.yaml"), "utf8")) as { name?: unknown };
        if (typeof doc?.name === "string") return doc.name;
    } catch {
        // no Pulumi.yaml
    }
    return "project";
}

function message(e: unknown): string {
    return e instanceof Error ? e.message : String(e);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<{ ok: true; value: T } | { ok: false; timeout: boolean; error?: unknown }> {
    return new Promise((res) => {
        const t = setTimeout(() => res({ ok: false, timeout: true }), Math.max(0, ms));
        p.then(
            (value) => {
                clearTimeout(t);
                res({ ok: true, value });
            },
            (error) => {
                clearTimeout(t);
                res({ ok: false, timeout: false, error });
            },
        );
    });
}

async function importFresh(programPath: string): Promise<Record<string, unknown>> {
    if (process.env.VITEST) {
        const { vi } = await import("vitest");
        vi.resetModules();
        return (await import(programPath)) as Record<string, unknown>;
    }
    // tsx loads the project's .ts files as CommonJS: drop project modules (not node_modules, not this harness) from
    // require.cache so the program and its imports are evaluated again; the query defeats the ESM loader's cache.
    if (typeof require !== "undefined") {
        for (const k of Object.keys(require.cache)) {
            if (!k.includes(`${sep}node_modules${sep}`) && dirname(k) !== __dirname) delete require.cache[k];
        }
    }
    return (await import(`${pathToFileURL(programPath).href}?run=${++runCounter}`)) as Record<string, unknown>;
}

/** Waits until the SDK has no registration or output RPC outstanding, twice in a row across a macrotask. */
async function settle(): Promise<void> {
    const wait = (pulumi.runtime as unknown as { waitForRPCs?: () => Promise<void> }).waitForRPCs;
    if (!wait) throw new Error("@pulumi/pulumi has no runtime.waitForRPCs: update run-program.ts for this SDK version");
    for (let i = 0; i < 3; i++) {
        await wait();
        await new Promise((r) => setImmediate(r));
        await sleep(10);
    }
    await wait();
}

export async function runProgram(opts: RunProgramOptions): Promise<ProgramRun> {
    const started = Date.now();
    const timeoutMs = opts.timeoutMs ?? 300_000;
    const programPath = resolve(opts.programPath);
    const projectDir = opts.projectDir ?? findProjectDir(programPath);
    const project = opts.project ?? projectName(projectDir);

    const mocks = new ExecutingMocks({
        projectDir,
        continueOnError: opts.continueOnError,
        injectFailure: opts.injectFailure,
        onCreated: opts.onCreated,
        maxDialRetries: opts.maxDialRetries,
        log: opts.log,
    });
    await mocks.install(project, opts.stack);
    pulumi.runtime.setAllConfig(opts.config, opts.secretKeys ?? []);

    const rejections: string[] = [];
    const saved = process.listeners("unhandledRejection");
    process.removeAllListeners("unhandledRejection");
    const onRejection = (reason: unknown) => {
        rejections.push(message(reason));
    };
    process.on("unhandledRejection", onRejection);

    const errors: string[] = [];
    let timedOut = false;
    const outputs: Record<string, unknown> = {};
    const secretOutputs: string[] = [];
    try {
        let exportsOf: Record<string, unknown> = {};
        const applied = withTimeout(
            (async () => {
                try {
                    exportsOf = await importFresh(programPath);
                } catch (e) {
                    errors.push(`program: ${message(e)}`);
                }
                await settle();
            })(),
            timeoutMs,
        );
        const r = await applied;
        if (!r.ok) {
            if (r.timeout) {
                timedOut = true;
                const running = mocks.running().map((p) => `${p.name} [${p.type}] for ${p.forMs} ms`);
                errors.push(`timed out after ${timeoutMs} ms; still running: ${running.length ? running.join(", ") : "none (waiting on unresolved outputs)"}`);
                mocks.killRunning();
            } else {
                errors.push(`harness: ${message(r.error)}`);
            }
        }
        for (const [key, value] of Object.entries(exportsOf)) {
            if (key === "__esModule") continue;
            const o = pulumi.output(value as pulumi.Input<unknown>) as unknown as { promise(): Promise<unknown>; isSecret: Promise<boolean> };
            const remaining = Math.max(1000, timeoutMs - (Date.now() - started));
            const v = await withTimeout(o.promise(), remaining);
            if (v.ok) {
                outputs[key] = v.value;
                if ((await withTimeout(o.isSecret, 1000).then((s) => s.ok && s.value)) === true) secretOutputs.push(key);
            } else if (!v.timeout) {
                errors.push(`output ${key}: ${message(v.error)}`);
            } else {
                errors.push(`output ${key}: did not resolve`);
            }
        }
        // Let rejections of failed resources surface before the listener goes away.
        await new Promise((r) => setImmediate(r));
        await sleep(20);
    } finally {
        process.off("unhandledRejection", onRejection);
        for (const l of saved) process.on("unhandledRejection", l as (...args: unknown[]) => void);
    }

    const all = [
        ...mocks.records.filter((r) => r.status !== "created").map((r) => `${r.name} [${r.type}]: ${r.error}`),
        ...errors,
        ...rejections,
    ];
    return {
        records: mocks.records,
        outputs,
        secretOutputs,
        errors: [...new Set(all)],
        timedOut,
        durationMs: Date.now() - started,
        mocks,
        teardown: (o) => mocks.teardown(o),
    };
}
