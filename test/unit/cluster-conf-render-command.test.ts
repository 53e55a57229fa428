/**
 * The render command (scripts/render.ts) writes the anti-affinity guard scripts next to cluster.conf
 * (`<out>/guards/<service>.sh`), exactly the scripts the program delivers, and the cluster.conf it writes names them
 * at the path they get on the nodes.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "xmlbuilder2";
import { stringify } from "yaml";
import { validateLabConfig } from "../../components/config";
import { guardFiles, guardResourceName, guardScriptPath } from "../../components/render/anti-affinity-guard";
import { parseStackFile } from "../../components/stack-file";
import { validateRelaxNg, xmllintAvailable } from "../helpers/relaxng";
import { skipUnless } from "../helpers/tools";

const ROOT = resolve(__dirname, "../..");
const STACK = "aalab";

let dir = "";
let raw: Record<string, any> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
let result: ReturnType<typeof spawnSync>;

beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "hc4-render-"));
    raw = structuredClone(parseStackFile(readFileSync(join(ROOT, "stacks/Pulumi.lab.yaml"), "utf8")).raw);
    // the guards are cman's (rgmanager scripts); the lab stack itself is on Pacemaker, whose anti-affinity is a
    // colocation constraint (test/unit/render-pacemaker.test.ts)
    raw.guestCluster.stack = "cman";
    raw.guestCluster.services = [
        { name: "web1", ips: [{ address: "10.99.0.51/24" }], scripts: [{ name: "httpd1", file: "/etc/init.d/httpd" }] },
        { name: "web2", ips: [{ address: "10.99.0.52/24" }], scripts: [{ name: "httpd2", file: "/etc/init.d/httpd" }] },
        { name: "cron" },
    ];
    raw.guestCluster.antiAffinity = [{ name: "web", services: ["web1", "web2"] }];
    const stacks = join(dir, "stacks");
    mkdirSync(stacks);
    writeFileSync(
        join(stacks, `Pulumi.${STACK}.yaml`),
        stringify({ config: Object.fromEntries(Object.entries(raw).map(([k, v]) => [`kvm-ha-lab:${k}`, v])) }),
    );
    result = spawnSync(join(ROOT, "node_modules/.bin/tsx"), [join(ROOT, "scripts/render.ts"), "--stack", STACK, "--out", join(dir, "out"), "--stacks-dir", stacks], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 60_000,
    });
});
afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

describe("render command with anti-affinity", () => {
    it("succeeds and lists the guard scripts among the files it wrote", () => {
        expect(result.status, String(result.stderr)).toBe(0);
        const listed = String(result.stdout).trim().split("\n");
        expect(listed).toEqual(expect.arrayContaining([join(dir, "out/cluster.conf"), join(dir, "out/guards/web1.sh"), join(dir, "out/guards/web2.sh")]));
        expect(readdirSync(join(dir, "out/guards")).sort()).toEqual(["web1.sh", "web2.sh"]);
    });

    it("writes exactly the guards the program delivers", () => {
        const spec = validateLabConfig(raw, { stack: STACK, secretKeys: new Set(), readFile: () => undefined });
        for (const g of guardFiles(spec)) {
            expect(readFileSync(join(dir, `out/guards/${g.service}.sh`), "utf8")).toBe(g.text);
            expect(spawnSync("sh", ["-n", join(dir, `out/guards/${g.service}.sh`)]).status).toBe(0);
        }
    });

    it("the cluster.conf next to them wires each guard into its member, at its path on the nodes", () => {
        const root = create(readFileSync(join(dir, "out/cluster.conf"), "utf8")).root().node as unknown as {
            getElementsByTagName(n: string): ArrayLike<{ getAttribute(a: string): string | null }>;
        };
        const scripts = Array.from(root.getElementsByTagName("script")).map((s) => [s.getAttribute("name"), s.getAttribute("file")]);
        expect(scripts).toEqual(
            expect.arrayContaining([
                [guardResourceName("web1"), guardScriptPath(STACK, "web1")],
                [guardResourceName("web2"), guardScriptPath(STACK, "web2")],
            ]),
        );
        expect(scripts.filter(([n]) => n?.startsWith("aa-guard-"))).toHaveLength(2);
    });

    it.skipIf(skipUnless("xmllint", xmllintAvailable()))("and that cluster.conf is valid against schema/cluster-conf.rng", () => {
        const r = validateRelaxNg(join(ROOT, "schema/cluster-conf.rng"), join(dir, "out/cluster.conf"));
        expect(r.ok, r.output).toBe(true);
    });

    it("a stack without anti-affinity gets no guards directory", () => {
        const out = join(dir, "plain");
        const r = spawnSync(join(ROOT, "node_modules/.bin/tsx"), [join(ROOT, "scripts/render.ts"), "--stack", "dev", "--out", out], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
        expect(r.status, r.stderr).toBe(0);
        expect(existsSync(join(out, "cluster.conf"))).toBe(true);
        expect(existsSync(join(out, "guards"))).toBe(false);
    });

    it("a Pacemaker stack with anti-affinity gets no guards either (a colocation constraint in its CIB does their work)", () => {
        const stacks = join(dir, "pcmk-stacks");
        mkdirSync(stacks);
        const pcmk = structuredClone(raw);
        pcmk.guestCluster.stack = "pacemaker";
        pcmk.guestCluster.services[2].scripts = [{ name: "cron", file: "/etc/init.d/cron" }];
        writeFileSync(join(stacks, "Pulumi.pcmk.yaml"), stringify({ config: Object.fromEntries(Object.entries(pcmk).map(([k, v]) => [`kvm-ha-lab:${k}`, v])) }));
        const out = join(dir, "pcmk");
        const r = spawnSync(join(ROOT, "node_modules/.bin/tsx"), [join(ROOT, "scripts/render.ts"), "--stack", "pcmk", "--out", out, "--stacks-dir", stacks], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
        expect(r.status, r.stderr).toBe(0);
        expect(existsSync(join(out, "pacemaker/cib.xml"))).toBe(true);
        expect(readFileSync(join(out, "pacemaker/cib.xml"), "utf8")).toMatch(/<rsc_colocation [^>]*score="-INFINITY"/);
        expect(existsSync(join(out, "cluster.conf"))).toBe(false);
        expect(existsSync(join(out, "guards"))).toBe(false);
    });
});
