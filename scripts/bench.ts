/**
 * `npm run --silent bench [-- --iterations N --guests N --stacks-dir DIR --program-sizes HxG,... --program-timeout S]`
 * `npm run --silent bench -- --real-guests [--rebuild-image] [--stacks-dir DIR]`
 *
 * `--real-guests` measures instead, for real on this machine (root, libvirt, qemu), the guest image, a whole `up` of
 * the lab stack with each guest's boot to SSH, and its destroy (scripts/bench-guests.ts).
 *
 * Otherwise two measurements:
 *
 * 1. The whole program: index.ts evaluated under the program tests' recording mocks (no engine, no command runs) for
 *    synthetic labs of H hosts x G guests (scripts/bench-lab.ts; default 16x64, 32x128, 64x256, 128x512), each in its
 *    own node process: resources registered, dependency edges, bytes of registered inputs, wall time, peak RSS, and
 *    the growth of time, resources, edges and inputs from one size to the next (each size doubles both H and G). A case
 *    that does not finish within --program-timeout seconds (default 300) is reported as such.
 * 2.
 * Measures what `pulumi up` and `npm run render` spend in this program's own code, before any command runs: config
 * validation (validateLabConfig) and rendering every file (renderLab), for each stack in stacks/ and for a synthetic
 * large lab (the lab stack grown to --guests guests on three hosts, the first 16 of them, cman's limit, in the guest
 * cluster). Prints one line per case: median and 95th percentile milliseconds per validate+render, files and bytes
 * rendered, and the heap in use after the run and a forced garbage collection (what the case keeps alive; npm runs
 * node with --expose-gc). No targets are asserted anywhere (tests never assert timings): the numbers are for comparing
 * changes. A stack file that does not parse or validate stops the bench with its messages and exit 2.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { ConfigError, validateLabConfig } from "../components/config";
import { renderLab } from "../components/render/lab-files";
import { parseStackFile, StackFileError } from "../components/stack-file";

interface Args {
    iterations: number;
    guests: number;
    stacksDir: string;
    programSizes: [number, number][];
    programTimeout: number;
    /** `--real-guests`: the lab stack applied for real instead (scripts/bench-guests.ts). */
    realGuests: boolean;
    /** `--rebuild-image` (with --real-guests): measure a real image build even when the image is cached. */
    rebuildImage: boolean;
}

const USAGE =
    "usage: npm run --silent bench -- [--iterations N] [--guests N] [--stacks-dir DIR] [--program-sizes HxG,...|none] [--program-timeout S]\n" +
    "       npm run --silent bench -- --real-guests [--rebuild-image] [--stacks-dir DIR]   (root, libvirt, qemu: the lab stack up and destroyed for real)";

function args(): Args {
    const out = { iterations: 200, guests: 60, "program-timeout": 300 };
    let stacksDir = resolve(__dirname, "..", "stacks");
    let programSizes: [number, number][] = [[16, 64], [32, 128], [64, 256], [128, 512]];
    let realGuests = false;
    let rebuildImage = false;
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, "");
        // flags, without a value
        if (argv[i] === "--real-guests" || argv[i] === "--rebuild-image") {
            if (argv[i] === "--real-guests") realGuests = true;
            else rebuildImage = true;
            i -= 1;
            continue;
        }
        if (key === "stacks-dir" && argv[i + 1] !== undefined) {
            stacksDir = resolve(argv[i + 1]);
            continue;
        }
        if (key === "program-sizes" && argv[i + 1] !== undefined) {
            const sizes = argv[i + 1] === "none" ? [] : argv[i + 1].split(",").map((p) => /^(\d+)x(\d+)$/.exec(p));
            if (sizes.some((m) => m === null || Number(m[1]) < 1 || Number(m[2]) < 2)) {
                process.stderr.write(`bench: bad --program-sizes ${argv[i + 1]}: give HOSTSxGUESTS pairs (at least 1 host and 2 guests), e.g. 16x64,32x128\n${USAGE}\n`);
                process.exit(64);
            }
            programSizes = sizes.map((m) => [Number(m![1]), Number(m![2])]);
            continue;
        }
        const value = Number(argv[i + 1]);
        if (!(key in out) || !Number.isInteger(value) || value < 1) {
            process.stderr.write(`bench: unknown or bad argument ${argv[i]} ${argv[i + 1] ?? ""}\n${USAGE}\n`);
            process.exit(64);
        }
        out[key as keyof typeof out] = value;
    }
    if (rebuildImage && !realGuests) {
        process.stderr.write(`bench: --rebuild-image goes with --real-guests\n${USAGE}\n`);
        process.exit(64);
    }
    return { iterations: out.iterations, guests: out.guests, stacksDir, programSizes, programTimeout: out["program-timeout"], realGuests, rebuildImage };
}

interface ProgramCase {
    hosts: number;
    guests: number;
    resources: number;
    edges: number;
    inputBytes: number;
    ms: number;
    rssMiB: number;
}

/** Evaluates the program for one synthetic lab in a child process (scripts/bench-program.ts). */
function measureProgram(hosts: number, guests: number, timeoutS: number): ProgramCase | string {
    const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", resolve(__dirname, "bench-program.ts"), String(hosts), String(guests)], {
        cwd: resolve(__dirname, ".."),
        encoding: "utf8",
        timeout: timeoutS * 1000,
        maxBuffer: 16 * 1024 * 1024,
    });
    if (r.error && /ETIMEDOUT/.test(String(r.error))) return `did not finish in ${timeoutS} s`;
    if (r.status !== 0) return `failed (exit ${r.status ?? r.signal}): ${(r.stderr ?? "").trim().split("\n")[0]}`;
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as ProgramCase;
}

/** The growth from one size to the next, per doubling of hosts + guests (sizes may skip a doubling: 16x64 → 64x256). */
function ratio(now: number, before: number | undefined, doublings: number): string {
    return before && doublings > 0 ? `x${Math.pow(now / before, 1 / doublings).toFixed(2)}` : "-";
}

function programLine(c: ProgramCase, prev: ProgramCase | undefined): string {
    const size = `program ${c.hosts} hosts x ${c.guests} guests`.padEnd(32);
    const d = prev ? Math.log2((c.hosts + c.guests) / (prev.hosts + prev.guests)) : 0;
    const growth = `growth per doubling: time ${ratio(c.ms, prev?.ms, d)} resources ${ratio(c.resources, prev?.resources, d)} edges ${ratio(c.edges, prev?.edges, d)} inputs ${ratio(c.inputBytes, prev?.inputBytes, d)}`;
    return `${size} ${String(c.resources).padStart(7)} resources ${String(c.edges).padStart(9)} edges ${(c.inputBytes / 1048576).toFixed(1).padStart(8)} MiB inputs ${(c.ms / 1000).toFixed(1).padStart(6)} s  peak RSS ${String(c.rssMiB).padStart(5)} MiB  ${growth}`;
}

interface Case {
    name: string;
    stack: string;
    raw: Record<string, unknown>;
    secretKeys: Set<string>;
}

function readStack(dir: string, stack: string): { raw: Record<string, unknown>; secretKeys: Set<string> } {
    const file = join(dir, `Pulumi.${stack}.yaml`);
    const { raw, secretKeys } = parseStackFile(readFileSync(file, "utf8"), file);
    return { raw, secretKeys };
}

function stackCases(dir: string): Case[] {
    return readdirSync(dir)
        .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
        .filter((s): s is string => s !== undefined)
        .sort()
        .map((stack) => ({ name: `stack ${stack}`, stack, ...readStack(dir, stack) }));
}

/** The lab stack with three hosts and `guests` guests, up to 16 of them nodes of the guest cluster. */
function largeCase(dir: string, guests: number): Case {
    const { raw, secretKeys } = readStack(dir, "lab");
    const big = structuredClone(raw) as { hosts: Record<string, unknown>[]; guests: Record<string, unknown>[]; guestCluster: Record<string, unknown> };
    const host = big.hosts[0] as { bridge: Record<string, unknown> };
    big.hosts = [0, 1, 2].map((i) => ({
        name: `kvm${i + 1}`,
        ...(i === 0 ? { local: true } : { ssh: { address: `10.99.0.${i + 1}` } }),
        bridge: { ...host.bridge, address: `10.99.0.${i + 1}/24` },
    }));
    const template = big.guests[0];
    big.guests = Array.from({ length: guests }, (_, i) => ({ ...template, name: `node${i + 1}`, host: `kvm${(i % 3) + 1}`, address: `10.99.0.${10 + i}` }));
    delete (big.guests[0] as Record<string, unknown>).ssh;
    // cman takes at most 16 nodes: the first 16 guests form the cluster, the rest are plain guests
    big.guestCluster = { ...big.guestCluster, nodes: big.guests.slice(0, 16).map((g) => g.name) };
    return { name: `lab with ${guests} guests on 3 hosts`, stack: "bench", raw: big as unknown as Record<string, unknown>, secretKeys };
}

function measure(c: Case, iterations: number): string {
    const once = () =>
        renderLab(
            validateLabConfig(structuredClone(c.raw), {
                stack: c.stack,
                secretKeys: c.secretKeys,
                requireSecrets: false,
                readFile: () => undefined,
            }),
        );
    const files = once(); // warm-up, and what one run renders
    const bytes = [...files.values()].reduce((n, t) => n + Buffer.byteLength(t), 0);
    const ms: number[] = [];
    for (let i = 0; i < iterations; i++) {
        const t0 = performance.now();
        once();
        ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))].toFixed(2);
    return `${c.name.padEnd(32)} median ${q(0.5).padStart(7)} ms  p95 ${q(0.95).padStart(7)} ms  ${String(files.size).padStart(4)} files ${String(Math.round(bytes / 1024)).padStart(5)} KiB  ${heapAfterGc()}`;
}

/** The heap still in use after a full garbage collection; says so when node runs without --expose-gc. */
function heapAfterGc(): string {
    if (typeof global.gc !== "function") return "heap after GC n/a (run node with --expose-gc)";
    global.gc();
    return `heap after GC ${(process.memoryUsage().heapUsed / 1048576).toFixed(1)} MiB`;
}

async function main(): Promise<number> {
    const { iterations, guests, stacksDir, programSizes, programTimeout, realGuests, rebuildImage } = args();
    if (realGuests) {
        // loaded only here: it pulls in the executing harness (see scripts/bench-guests.ts for why a bench uses it)
        const { runRealGuests } = await import("./bench-guests.js");
        return runRealGuests({ stacksDir, rebuildImage });
    }
    let cases: Case[];
    try {
        cases = [...stackCases(stacksDir), largeCase(stacksDir, guests)];
        // every case must be a valid config before anything is measured
        for (const c of cases) validateLabConfig(structuredClone(c.raw), { stack: c.stack, secretKeys: c.secretKeys, requireSecrets: false, readFile: () => undefined });
    } catch (e) {
        if (e instanceof StackFileError || e instanceof ConfigError) {
            process.stderr.write(`bench: ${e.message}\n`);
            return 2;
        }
        throw e;
    }
    if (programSizes.length > 0) {
        process.stdout.write(`kvm-ha-lab bench: the whole program under mocks, one process per lab (node ${process.version})\n`);
        let prev: ProgramCase | undefined;
        for (const [h, g] of programSizes) {
            const c = measureProgram(h, g, programTimeout);
            if (typeof c === "string") {
                process.stdout.write(`${`program ${h} hosts x ${g} guests`.padEnd(32)} ${c}\n`);
                prev = undefined;
            } else {
                process.stdout.write(`${programLine(c, prev)}\n`);
                prev = c;
            }
        }
    }
    process.stdout.write(`kvm-ha-lab bench: validate + render, ${iterations} iterations each (node ${process.version})\n`);
    for (const c of cases) process.stdout.write(`${measure(c, iterations)}\n`);
    process.stdout.write(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB\n`);
    return 0;
}

main().then(
    (code) => {
        // --real-guests leaves the Pulumi mocks' runtime loaded, which may hold the event loop: exit explicitly
        process.exit(code);
    },
    (e) => {
        process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
        process.exit(1);
    },
);
