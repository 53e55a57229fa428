/**
 * Every host script, as text: deterministic, parsed by dash and bash (Debian's and RHEL's /bin/sh), values quoted, no
 * TypeScript leftovers; and a few scripts run for real under bash (RHEL's /bin/sh) as well, since the other e2e files
 * run them under this machine's /bin/sh (dash).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import {
    bridgeScripts,
    diskImageScripts,
    domainsScripts,
    domainStartScripts,
    fenceVirtdScripts,
    fileScripts,
    firewallScripts,
    libraryScripts,
    libvirtdScripts,
    packagesScripts,
    sysctlScripts,
    type HostScripts,
} from "../../components/scripts";
import { prelude, shq, shVars } from "../../components/scripts/prelude";
import { dropState, iptablesSnapshot, missingPrereqs, Netns, netSnapshot, run, skipBecause, stateDirExists } from "./scripts-harness";

const LAB = "hsct-render";

const all = (): [string, HostScripts][] => [
    ["packages", packagesScripts(LAB, "multicast")],
    ["libvirtd", libvirtdScripts(LAB)],
    ["bridge", bridgeScripts(LAB, { name: "br-lab", uplink: "eth1", address: "10.99.0.1/24" })],
    ["sysctl", sysctlScripts(LAB)],
    ["firewall", firewallScripts(LAB)],
    ["fence-virtd", fenceVirtdScripts(LAB, { keyFile: "/etc/cluster/fence_xvm.key", port: 1229, keyRevision: "3" })],
    ["file", fileScripts(LAB, { id: "fence-key", path: "/etc/cluster/fence_xvm.key", mode: "0400", owner: "root", decodeBase64: true, refuseSharedFs: true, sizeBytes: 4096 })],
    ["domains", domainsScripts(LAB, { host: "kvm1", xmlDir: "/var/lib/libvirt/images/xml_defs", xmlDirShared: true })],
    ["library", libraryScripts(LAB)],
    ["start", domainStartScripts(LAB, "node1")],
    ["disk", diskImageScripts(LAB, { path: "/var/lib/libvirt/images/node1.qcow2", format: "qcow2", bus: "virtio", target: "vda", createSizeGiB: 8 })],
];

const shells = ["sh", "dash", "bash"].filter((s) => run(`command -v ${s}`).code === 0);
const TMP = `/tmp/hsc-render-${process.pid}`;

afterAll(() => rmSync(TMP, { recursive: true, force: true }));

describe("host scripts as text", () => {

    it("are deterministic and start strict", () => {
        const a = all();
        const b = all();
        expect(a.map(([, s]) => s)).toEqual(b.map(([, s]) => s));
        for (const [name, s] of a) {
            for (const text of [s.create, s.delete]) {
                expect(text.startsWith("#!/bin/sh\n"), name).toBe(true);
                expect(text.split("\n").slice(0, 4)).toContain("set -eu");
                expect(text, name).not.toMatch(/='undefined'|='NaN'|\[object Object\]|\$\{\s*\}/);
                // shell variables are `${...}` only after the sh tag's translation: no stray `\${` remains
                expect(text, name).not.toContain("\\${");
                expect(text).toContain("VIRSH_URI='qemu:///system'");
                expect(text).toContain(`STATE_DIR='/var/lib/kvm-ha-lab/${LAB}'`);
            }
        }
    });

    it("parse in every POSIX shell here (dash = Debian's /bin/sh, bash = RHEL's)", () => {
        mkdirSync(TMP, { recursive: true });
        for (const [name, s] of all()) {
            for (const [which, text] of [["create", s.create], ["delete", s.delete]] as const) {
                const path = `${TMP}/${name}-${which}.sh`;
                writeFileSync(path, text);
                for (const shell of shells) {
                    const r = run(`${shell} -n '${path}'`);
                    expect(r.code, `${shell} -n ${name} ${which}: ${r.stderr}`).toBe(0);
                }
                if (shells.includes("bash")) expect(run(`bash --posix -n '${path}'`).code, `${name} ${which}`).toBe(0);
            }
        }
    });

    it("quote values so any text reaches the script unchanged", () => {
        for (const value of ["plain", "it's", "a b", "$(touch /tmp/hsc-pwned)", "`id`", '"; rm -rf / #', "back\\slash", "new\nline"]) {
            const r = run(`${shVars({ V: value })}printf '%s' "$V"`);
            expect(r.code).toBe(0);
            expect(r.stdout).toBe(value.replace(/\n$/, ""));
            expect(shq(value)).toMatch(/^'.*'$/s);
        }
        expect(existsSync("/tmp/hsc-pwned")).toBe(false);
        expect(() => shq("nul\0")).toThrow(/NUL/);
        expect(() => prelude("Bad_Lab", "x")).toThrow(/lab name/);
    });

    it("carry no secret: the key travels on stdin only", () => {
        const key = randomBytes(4096).toString("base64");
        const s = fileScripts(LAB, { id: "fence-key", path: "/etc/cluster/fence_xvm.key", mode: "0400", decodeBase64: true });
        expect(s.create).not.toContain(key.slice(0, 16));
        expect(s.create).not.toMatch(/set -x|set -o xtrace/);
    });
});

const skipReal = skipBecause("scripts-render (bash runs)", missingPrereqs(["bash", "ip", "iptables-restore", "sha256sum", "base64"]));

describe.skipIf(skipReal)("host scripts under bash (RHEL's /bin/sh)", () => {
    it("file, bridge and firewall: create, rerun, delete", () => {
        const lab = "hsct-bash";
        dropState(lab);
        const ns = new Netns("bash");
        try {
            mkdirSync(TMP, { recursive: true });
            const key = randomBytes(4096);
            const f = fileScripts(lab, { id: "k", path: `${TMP}/d/key`, mode: "0400", decodeBase64: true, sizeBytes: 4096 });
            for (let i = 0; i < 2; i++) expect(run(f.create, { shell: "/bin/bash", stdin: key.toString("base64") }).code).toBe(0);
            expect(readFileSync(`${TMP}/d/key`).equals(key)).toBe(true);
            expect(run(f.delete, { shell: "/bin/bash" }).code).toBe(0);
            expect(existsSync(`${TMP}/d`)).toBe(false);

            ns.exec("iptables -A INPUT -p tcp --dport 22 -j ACCEPT"); // a user rule (and so, with iptables-nft, the filter table)
            const netBefore = netSnapshot(ns.name);
            const fwBefore = iptablesSnapshot(ns.name);
            const b = bridgeScripts(lab, { name: "hscbb0", address: "10.250.9.1/24" });
            const { input } = { input: `KVMLAB-HSCT-BASH-IN` };
            const rules = `*filter\n:${input} - [0:0]\n-A ${input} -p igmp -j ACCEPT\n-I INPUT 1 -j ${input}\nCOMMIT\n`;
            const fw = firewallScripts(lab);
            for (let i = 0; i < 2; i++) {
                const rb = run(b.create, { shell: "/bin/bash", netns: ns.name });
                expect(rb.code, rb.stderr).toBe(0);
                const rf = run(fw.create, { shell: "/bin/bash", netns: ns.name, stdin: rules });
                expect(rf.code, rf.stderr).toBe(0);
            }
            expect(ns.exec("ip -o -4 addr show dev hscbb0")).toContain("10.250.9.1/24");
            expect(iptablesSnapshot(ns.name)).toContain(`-A INPUT -j ${input}`);
            expect(run(fw.delete, { shell: "/bin/bash", netns: ns.name }).code).toBe(0);
            expect(run(b.delete, { shell: "/bin/bash", netns: ns.name }).code).toBe(0);
            expect(netSnapshot(ns.name)).toBe(netBefore);
            expect(iptablesSnapshot(ns.name)).toBe(fwBefore);
            expect(stateDirExists(lab)).toBe(false);
        } finally {
            ns.destroy();
            dropState(lab);
        }
    });
});
