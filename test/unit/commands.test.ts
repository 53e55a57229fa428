/**
 * `npm run render`, which a user runs without Pulumi's engine: writes what a stack would deploy; a bad config exits 2
 * with the validation messages; usage errors exit 64. (`npm run lab` without the Pulumi CLI is tested on a fresh clone
 * in newcomer-commands.test.ts: this checkout may hold an engine that `npm run engine` built.)
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { validateRelaxNg, xmllintAvailable } from "../helpers/relaxng";
import { hasTool, need, run } from "../helpers/tools";

const ROOT = resolve(__dirname, "../..");
const tmp = mkdtempSync(join(tmpdir(), "kvl-commands-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function render(args: string[]) {
    return spawnSync(join(ROOT, "node_modules/.bin/tsx"), [join(ROOT, "scripts/render.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
}

function files(dir: string): string[] {
    const out: string[] = [];
    const walk = (d: string) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
            if (e.isDirectory()) walk(join(d, e.name));
            else out.push(relative(dir, join(d, e.name)));
        }
    };
    walk(dir);
    return out.sort();
}

describe("npm run render", () => {
    it("writes what the lab stack deploys", () => {
        const out = join(tmp, "lab");
        const r = render(["--stack", "lab", "--out", out]);
        expect(r.status, r.stderr).toBe(0);
        expect(files(out)).toEqual([
            "cluster.conf",
            "hosts/kvmhost/fence_virt.conf",
            "hosts/kvmhost/iptables.rules",
            "hosts/kvmhost/sysctl.conf",
            "xml_defs/node1.xml",
            "xml_defs/node2.xml",
        ]);
    });

    it("writes what the dev stack deploys, host cluster included, noting the secrets it needs but never reading them", () => {
        const out = join(tmp, "dev");
        const r = render(["--stack", "dev", "--out", out]);
        expect(r.status, r.stderr).toBe(0);
        expect(files(out)).toEqual([
            "cluster.conf",
            "host-cluster.conf",
            ...["kvm1", "kvm2"].flatMap((h) => [`hosts/${h}/fence_virt.conf`, `hosts/${h}/iptables.rules`, `hosts/${h}/sysctl.conf`]),
            "xml_defs/gnode1.xml",
            "xml_defs/gnode2.xml",
            "xml_defs/gnode3.xml",
        ]);
        expect(r.stderr).toContain("secret kvm-ha-lab:sshPrivateKey is not set");
        expect(readFileSync(join(out, "host-cluster.conf"), "utf8")).not.toMatch(/passwd=/);
    });

    it("writes domain XML that virt-xml-validate accepts and cluster.conf files our cman schema accepts", (ctx) => {
        need(ctx, "virt-xml-validate is not installed (Debian: libvirt-clients)", hasTool("virt-xml-validate"));
        need(ctx, "xmllint is not installed (Debian: libxml2-utils)", xmllintAvailable());
        for (const stack of ["lab", "dev"]) {
            const out = join(tmp, stack);
            for (const f of files(join(out, "xml_defs"))) {
                const v = run("virt-xml-validate", [join(out, "xml_defs", f), "domain"]);
                expect(v.status, v.out).toBe(0);
            }
            for (const f of ["cluster.conf", "host-cluster.conf"].filter((f) => files(out).includes(f))) {
                const v = validateRelaxNg(join(ROOT, "schema/cluster-conf.rng"), join(out, f));
                expect(v.ok, v.output).toBe(true);
            }
        }
    });

    it("exits 2 with every validation problem for a bad config, and writes nothing", () => {
        const stacks = join(tmp, "stacks");
        mkdirSync(stacks, { recursive: true });
        const text = readFileSync(join(ROOT, "stacks/Pulumi.lab.yaml"), "utf8")
            .replace("name: labcluster", "name: labcluster-far-too-long")
            .replace("address: 225.0.0.12", "address: 10.0.0.12");
        writeFileSync(join(stacks, "Pulumi.bad.yaml"), text);
        const out = join(tmp, "bad");
        const r = render(["--stack", "bad", "--out", out, "--stacks-dir", stacks]);
        expect(r.status).toBe(2);
        expect(r.stderr).toContain("invalid stack config (2 problems)");
        expect(r.stderr).toContain('guestCluster.name: "labcluster-far-too-long" is 23 characters; cman allows at most 15');
        expect(r.stderr).toContain('guestCluster.fencing.multicast.address: "10.0.0.12" is not an IPv4 multicast address');
        expect(() => readdirSync(out)).toThrow();
    });

    it("exits 64 on usage errors", () => {
        expect(render(["--stack", "lab"]).status).toBe(64);
        expect(render(["--out", join(tmp, "x")]).status).toBe(64);
        expect(render(["--stack", "nosuch", "--out", join(tmp, "x")]).status).toBe(64);
        expect(render(["--bogus"]).status).toBe(64);
    });
});
