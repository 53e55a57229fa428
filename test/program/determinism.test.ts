/**
 * A second `pulumi up` with the same config must see no changes: two independent program runs (separate processes)
 * register the same resources with identical inputs, in the same order.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./run-under-mocks";

function dump(stack: string): string {
    return execFileSync(join(ROOT, "node_modules", ".bin", "tsx"), [join(__dirname, "dump-program.ts"), stack], {
        cwd: ROOT,
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
    });
}

/** JSON with object keys sorted: the engine compares inputs by key, so key order is not a change. */
function canonicalJson(v: unknown): string {
    const sortKeys = (x: unknown): unknown =>
        Array.isArray(x) ? x.map(sortKeys) : x && typeof x === "object" ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, sortKeys((x as Record<string, unknown>)[k])])) : x;
    return JSON.stringify(sortKeys(v));
}

describe("determinism", () => {
    for (const stack of ["lab", "dev"]) {
        it(`registers identical resources and inputs on two runs of the ${stack} stack`, () => {
            const first = dump(stack);
            const second = dump(stack);
            expect(JSON.parse(first).length).toBeGreaterThan(10);
            const canon = (text: string) =>
                (JSON.parse(text) as { urn: string; inputs: unknown; dependencies: string[] }[])
                    .map((r) => canonicalJson([r.urn, r.inputs, r.dependencies]))
                    .sort();
            expect(canon(second)).toEqual(canon(first));
        });
    }
});
