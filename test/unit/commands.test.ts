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
import { parseStackFile } from "../../components/stack-file";
import { all, corosyncAvailable, corosyncCheck, crmVerify, crmVerifyAvailable, liveCib, nvpairs, parseXml } from "../helpers/pacemaker";
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
    it("writes what the lab stack deploys: a Pacemaker guest cluster (corosync.conf and the CIB), no cluster.conf", () => {
        const out = join(tmp, "lab");
        const r = render(["--stack", "lab", "--out", out]);
        expect(r.status, r.stderr).toBe(0);
        expect(files(out)).toEqual([
            "hosts/kvmhost/fence_virt.conf",
            "hosts/kvmhost/iptables.rules",
            "hosts/kvmhost/sysctl.conf",
            "pacemaker/cib.xml",
            "pacemaker/corosync.conf",
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

    it("the lab stack says stack: pacemaker (Debian guests) and the dev stack cman (RHEL/CentOS 6): each renders its own", () => {
        const stackOf = (s: string) => (parseStackFile(readFileSync(join(ROOT, `stacks/Pulumi.${s}.yaml`), "utf8")).raw as { guestCluster: { stack?: string } }).guestCluster.stack;
        expect(stackOf("lab")).toBe("pacemaker");
        expect(stackOf("dev") ?? "cman").toBe("cman");
        // lab: corosync 3 over knet with both nodes at their br-lab addresses, two_node; a fence_xvm stonith resource
        // per node (its own domain, the lab's key and multicast address), never on the node it fences; node1 favoured
        const conf = readFileSync(join(tmp, "lab/pacemaker/corosync.conf"), "utf8");
        expect(conf).toMatch(/cluster_name: labcluster\n/);
        expect(conf).toMatch(/transport: knet\n/);
        expect(conf).toMatch(/name: node1\n\s+nodeid: 1\n\s+ring0_addr: 10\.99\.0\.11\n/);
        expect(conf).toMatch(/name: node2\n\s+nodeid: 2\n\s+ring0_addr: 10\.99\.0\.12\n/);
        expect(conf).toMatch(/two_node: 1\n/);
        const cib = parseXml(readFileSync(join(tmp, "lab/pacemaker/cib.xml"), "utf8"));
        const stonith = all(cib, "primitive").filter((p) => p.attrs.class === "stonith");
        expect(stonith.map((p) => [p.attrs.id, p.attrs.type])).toEqual([
            ["xvm-node1", "fence_xvm"],
            ["xvm-node2", "fence_xvm"],
        ]);
        for (const [i, p] of stonith.entries()) {
            const node = `node${i + 1}`;
            expect(nvpairs(p)).toMatchObject({ pcmk_host_map: `${node}:${node}`, key_file: "/etc/cluster/fence_xvm.key", multicast_address: "225.0.0.12", ipport: "1229" });
            expect(all(cib, "rsc_location").find((l) => l.attrs.rsc === p.attrs.id)?.attrs).toMatchObject({ node, score: "-INFINITY" });
        }
        // the two-node fence delay (cman's delay on node1's device) is pcmk_delay_base on node1's device only
        expect(nvpairs(stonith[0]).pcmk_delay_base).toBe("15s");
        expect(nvpairs(stonith[1]).pcmk_delay_base).toBeUndefined();
        // dev: cman's cluster.conf for both clusters, nothing of Pacemaker
        expect(files(join(tmp, "dev")).filter((f) => f.startsWith("pacemaker"))).toEqual([]);
        expect(readFileSync(join(tmp, "dev/cluster.conf"), "utf8")).toMatch(/<cluster name="devguests" config_version="1">/);
    });

    it("the lab stack's CIB is accepted by crm_verify and its corosync.conf by corosync's own parser, on each node", (ctx) => {
        need(ctx, "crm_verify is not installed (Debian: pacemaker-cli-utils)", crmVerifyAvailable());
        need(ctx, "corosync, unshare and ip as root are needed (Debian: corosync, util-linux, iproute2)", corosyncAvailable());
        const v = crmVerify(liveCib(readFileSync(join(tmp, "lab/pacemaker/cib.xml"), "utf8")));
        expect(v.ok, v.out).toBe(true);
        const conf = readFileSync(join(tmp, "lab/pacemaker/corosync.conf"), "utf8");
        for (const address of ["10.99.0.11", "10.99.0.12"]) {
            const c = corosyncCheck(conf, address);
            expect(c.ok, `${address}: ${c.out}`).toBe(true);
        }
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
