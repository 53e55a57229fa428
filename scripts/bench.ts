/**
 * `npm run --silent bench [-- --iterations N --guests N]`
 *
 * Measures what `pulumi up` and `npm run render` spend in this program's own code, before any command runs: config
 * validation (validateLabConfig) and rendering every file (renderLab), for each stack in stacks/ and for a synthetic
 * large lab (the lab stack grown to --guests guests on three hosts, the first 16 of them, cman's limit, in the guest
 * cluster). Prints one line per case: median and 95th percentile milliseconds per validate+render, files and bytes
 * rendered, and the heap growth over the run. No targets are asserted anywhere (tests never assert timings): the numbers are for comparing changes.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { validateLabConfig } from "../components/config";
import { renderLab } from "../components/render/lab-files";
import { parseStackFile } from "../components/stack-file";

const STACKS = resolve(__dirname, "..", "stacks");

function args(): { iterations: number; guests: number } {
    const out = { iterations: 200, guests: 60 };
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, "");
        const value = Number(argv[i + 1]);
        if (!(key in out) || !Number.isInteger(value) || value < 1) {
            process.stderr.write(`bench: unknown or bad argument ${argv[i]} ${argv[i + 1] ?? ""}\nusage: npm run --silent bench -- [--iterations N] [--guests N]\n`);
            process.exit(64);
        }
        out[key as keyof typeof out] = value;
    }
    return out;
}

interface Case {
    name: string;
    stack: string;
    raw: Record<string, unknown>;
    secretKeys: Set<string>;
}

function readStack(stack: string): { raw: Record<string, unknown>; secretKeys: Set<string> } {
    const { raw, secretKeys } = parseStackFile(readFileSync(join(STACKS, `Pulumi.${stack}.yaml`), "utf8"));
    return { raw, secretKeys };
}

function stackCases(): Case[] {
    return readdirSync(STACKS)
        .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
        .filter((s): s is string => s !== undefined)
        .sort()
        .map((stack) => ({ name: `stack ${stack}`, stack, ...readStack(stack) }));
}

/** The lab stack with three hosts and `guests` guests, up to 16 of them nodes of the guest cluster. */
function largeCase(guests: number): Case {
    const { raw, secretKeys } = readStack("lab");
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
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const ms: number[] = [];
    for (let i = 0; i < iterations; i++) {
        const t0 = performance.now();
        once();
        ms.push(performance.now() - t0);
    }
    const heapAfter = process.memoryUsage().heapUsed;
    ms.sort((a, b) => a - b);
    const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))].toFixed(2);
    return `${c.name.padEnd(32)} median ${q(0.5).padStart(7)} ms  p95 ${q(0.95).padStart(7)} ms  ${String(files.size).padStart(4)} files ${String(Math.round(bytes / 1024)).padStart(5)} KiB  heap ${heapAfter >= heapBefore ? "+" : "-"}${(Math.abs(heapAfter - heapBefore) / 1048576).toFixed(1)} MiB`;
}

function main(): void {
    const { iterations, guests } = args();
    process.stdout.write(`kvm-ha-lab bench: validate + render, ${iterations} iterations each (node ${process.version})\n`);
    for (const c of [...stackCases(), largeCase(guests)]) process.stdout.write(`${measure(c, iterations)}\n`);
    process.stdout.write(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB\n`);
}

main();
