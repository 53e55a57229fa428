/**
 * Patterns that validation and the host scripts share have one definition: an interface name the config refuses is
 * refused by the bridge script too ('.' and '..' included), and the remote wrapper quotes with the scripts' own shq
 * (which refuses NUL). What validation and the renderers both need lives on the config side: no config module
 * (components/config*.ts) imports a renderer or a host script module, directly or through another module.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { validateLabConfig } from "../../components/config";
import { remoteScript } from "../../components/machine";
import { isInterfaceName } from "../../components/names";
import { bridgeScripts } from "../../components/scripts/bridge";
import { loadStack } from "../program/run-under-mocks";

describe("shared name patterns", () => {
    it("interface names: the config and the bridge script accept and refuse the same names", () => {
        for (const name of [".", "..", "...", ".br", "", "a".repeat(16), "br lab", "br/lab"]) {
            expect(isInterfaceName(name), name).toBe(false);
            expect(() => bridgeScripts("lab", { name }), name).toThrow(/is not a Linux interface name/);
            const raw = loadStack("lab") as { hosts: { bridge: { name: string } }[] };
            raw.hosts[0].bridge.name = name;
            expect(() => validateLabConfig(raw, { stack: "lab", secretKeys: new Set(), readFile: () => undefined }), name).toThrow(/hosts\[0\]\.bridge\.name/);
        }
        for (const name of ["br-lab", "br0", "a.b", "br.10", "_x", "a".repeat(15)]) {
            expect(isInterfaceName(name), name).toBe(true);
            expect(() => bridgeScripts("lab", { name }), name).not.toThrow();
        }
    });

    it("the remote wrapper quotes with shq: any text reaches sh -c unchanged, NUL is refused", () => {
        expect(remoteScript("echo 'it''s'")).toBe(`exec /bin/sh -c 'echo '\\''it'\\'''\\''s'\\'''`);
        expect(() => remoteScript("a\0b")).toThrow(/NUL/);
    });
});

const COMPONENTS = resolve(__dirname, "../../components");

/** The project modules `file` imports (static imports and re-exports with a relative specifier), as absolute paths. */
export function relativeImports(file: string): string[] {
    const text = readFileSync(file, "utf8");
    const specs = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"/gms)].map((m) => m[1]);
    return specs.map((spec) => {
        const base = resolve(dirname(file), spec.replace(/\.js$/, ""));
        const found = [`${base}.ts`, join(base, "index.ts")].find((f) => existsSync(f));
        if (found === undefined) throw new Error(`${file}: cannot resolve import ${spec}`);
        return found;
    });
}

/** Every project module `file` reaches through imports, with the chain that reaches it. */
function reachable(file: string): Map<string, string[]> {
    const seen = new Map<string, string[]>([[file, [file]]]);
    const queue = [file];
    while (queue.length > 0) {
        const f = queue.shift()!;
        for (const dep of relativeImports(f)) {
            if (seen.has(dep)) continue;
            seen.set(dep, [...seen.get(f)!, dep]);
            queue.push(dep);
        }
    }
    return seen;
}

describe("validation needs no renderer", () => {
    const configModules = readdirSync(COMPONENTS)
        .filter((f) => /^config.*\.ts$/.test(f))
        .map((f) => join(COMPONENTS, f));

    it("finds the config modules and reads their imports", () => {
        expect(configModules.map((f) => relative(COMPONENTS, f))).toEqual(expect.arrayContaining(["config.ts", "config-cluster.ts", "config-env.ts", "config-pacemaker.ts"]));
        // the reader sees multi-line imports and type imports (it would otherwise pass by seeing nothing)
        expect(relativeImports(join(COMPONENTS, "config-cluster.ts")).map((f) => relative(COMPONENTS, f))).toEqual(
            expect.arrayContaining(["cluster-model.ts", "spec.ts", "config-env.ts"]),
        );
        expect(relativeImports(join(COMPONENTS, "render/corosync-conf.ts")).map((f) => relative(COMPONENTS, f))).toContain("cluster-model.ts");
    });

    for (const file of configModules) {
        it(`${relative(COMPONENTS, file)} imports no module under components/render or components/scripts`, () => {
            const offending = [...reachable(file).entries()]
                .filter(([f]) => /^(render|scripts)\//.test(relative(COMPONENTS, f)))
                .map(([, chain]) => chain.map((f) => relative(COMPONENTS, f)).join(" -> "));
            expect(offending).toEqual([]);
        });
    }
});
