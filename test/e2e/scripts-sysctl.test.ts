/**
 * sysctlScripts, run for real inside throwaway network namespaces: net.bridge.bridge-nf-call-* are per network
 * namespace, so the root namespace's values are never touched. The sysctl.d file is the real per-lab path
 * (/etc/sysctl.d/90-kvm-ha-lab-<lab>.conf) of test-only lab names, removed by the scripts' delete.
 */
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { labNames } from "../../components/names";
import { sysctlScripts } from "../../components/scripts/sysctl";
import { dropState, fileFacts, missingPrereqs, Netns, run, sha256, skipBecause, stateDirExists, stateFiles } from "./scripts-harness";

const LAB = "hsct-sys";
const LAB2 = "hsct-sys2";
const KEYS = ["net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables"];
const TEXT = "# kvm-ha-lab: bridged traffic bypasses iptables\n" + KEYS.map((k) => `${k} = 0`).join("\n") + "\n";

const skip = skipBecause(
    "scripts-sysctl",
    missingPrereqs(["ip", "awk", "sha256sum"], () =>
        existsSync("/proc/sys/net/bridge/bridge-nf-call-iptables") ? undefined : "the br_netfilter module (no /proc/sys/net/bridge)",
    ),
);

describe.skipIf(skip)("sysctl script", () => {
    let ns: Netns;
    const values = () => KEYS.map((k) => ns.exec(`cat /proc/sys/${k.replace(/\./g, "/")}`)).join(" ");
    const cleanup = () => {
        for (const lab of [LAB, LAB2]) {
            rmSync(labNames(lab).sysctlFile, { force: true });
            dropState(lab);
        }
    };
    beforeAll(cleanup);
    afterEach(() => {
        ns?.destroy();
        cleanup();
    });
    afterAll(() => ns?.destroy());

    it("sets the values and writes the file; is idempotent; delete restores the values and removes the file", () => {
        ns = new Netns("sys1");
        ns.exec("for k in iptables ip6tables arptables; do echo 1 > /proc/sys/net/bridge/bridge-nf-call-$k; done");
        const before = values();
        expect(before).toBe("1 1 1");
        const s = sysctlScripts(LAB);
        const file = labNames(LAB).sysctlFile;

        const r1 = run(s.create, { netns: ns.name, stdin: TEXT });
        expect(r1.code, r1.stderr).toBe(0);
        expect(values()).toBe("0 0 0");
        const f1 = fileFacts(file);
        expect(f1).toMatchObject({ sha256: sha256(TEXT), mode: "644", uid: 0 });
        expect(stateFiles(LAB)).toMatchObject({
            "sysctl/net.bridge.bridge-nf-call-iptables.prev": "1\n",
            "sysctl/net.bridge.bridge-nf-call-iptables.ours": "0\n",
            "sysctl/file.sha256": `${sha256(TEXT)}\n`,
        });

        const markers = stateFiles(LAB);
        const r2 = run(s.create, { netns: ns.name, stdin: TEXT });
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.stderr).toBe("");
        expect(values()).toBe("0 0 0");
        expect(fileFacts(file)).toEqual(f1);
        expect(stateFiles(LAB)).toEqual(markers); // the recorded previous value is still the original 1

        const d = run(s.delete, { netns: ns.name });
        expect(d.code, d.stderr).toBe(0);
        expect(values()).toBe(before);
        expect(existsSync(file)).toBe(false);
        expect(stateDirExists(LAB)).toBe(false);
    });

    it("two labs on one host: the first to leave keeps the value, the last restores the host's own", () => {
        ns = new Netns("sys2");
        ns.exec("for k in iptables ip6tables arptables; do echo 1 > /proc/sys/net/bridge/bridge-nf-call-$k; done");
        const a = sysctlScripts(LAB);
        const b = sysctlScripts(LAB2);
        expect(run(a.create, { netns: ns.name, stdin: TEXT }).code).toBe(0);
        expect(run(b.create, { netns: ns.name, stdin: TEXT }).code).toBe(0);
        // lab B saw 0 (lab A's value) but recorded the host's original 1
        expect(stateFiles(LAB2)["sysctl/net.bridge.bridge-nf-call-iptables.prev"]).toBe("1\n");
        const da = run(a.delete, { netns: ns.name });
        expect(da.code, da.stderr).toBe(0);
        expect(da.stderr).toMatch(/stays as it is: lab\(s\) hsct-sys2 on this host still use it/);
        expect(values()).toBe("0 0 0");
        expect(run(b.delete, { netns: ns.name }).code).toBe(0);
        expect(values()).toBe("1 1 1");
    });

    it("a value changed by someone else after create is left in place by delete, which says so", () => {
        ns = new Netns("sys3");
        ns.exec("echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables");
        const s = sysctlScripts(LAB);
        expect(run(s.create, { netns: ns.name, stdin: "net.bridge.bridge-nf-call-iptables = 0\n" }).code).toBe(0);
        ns.exec("echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables");
        ns.exec("echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables");
        const d = run(s.delete, { netns: ns.name });
        expect(d.code).toBe(0);
        expect(d.stderr).toMatch(/left net\.bridge\.bridge-nf-call-iptables = 1 in place: it changed since this lab set it to 0/);
    });

    it("a missing net.bridge key means br_netfilter is not loaded: nothing to set, recorded, and no error", () => {
        ns = new Netns("sys4");
        const s = sysctlScripts(LAB);
        const text = "net.bridge.hsc-not-a-real-key = 0\n";
        const r = run(s.create, { netns: ns.name, stdin: text });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/br_netfilter is not loaded, so bridged traffic does not traverse iptables; nothing to set now/);
        expect(stateFiles(LAB)).toEqual({
            "sysctl/net.bridge.hsc-not-a-real-key.absent": "br_netfilter not loaded\n",
            "sysctl/file.sha256": `${sha256(text)}\n`,
        });
        expect(run(s.create, { netns: ns.name, stdin: text }).stderr).toBe("");
        expect(run(s.delete, { netns: ns.name }).code).toBe(0);
        expect(stateDirExists(LAB)).toBe(false);
        expect(existsSync(labNames(LAB).sysctlFile)).toBe(false);
    });

    it("refuses bad input and a file it did not write, changing nothing", () => {
        ns = new Netns("sys5");
        ns.exec("for k in iptables ip6tables arptables; do echo 1 > /proc/sys/net/bridge/bridge-nf-call-$k; done");
        const s = sysctlScripts(LAB);
        const cases: [string, RegExp][] = [
            ["net.bridge.bridge-nf-call-iptables = 0\nthis is not a setting\n", /line 2 of the sysctl text is not 'key = value': this is not a setting/],
            ["net.bridge.bridge-nf-call-iptables = 0\nnet.hsc.nonexistent = 1\n", /kernel setting net\.hsc\.nonexistent does not exist on this host/],
            ["net.bridge.bridge-nf-call-iptables = zero\n", /kernel setting net\.bridge\.bridge-nf-call-iptables takes an integer, not 'zero'/],
            ["# only a comment\n", /the sysctl text on stdin sets nothing/],
        ];
        for (const [text, message] of cases) {
            const r = run(s.create, { netns: ns.name, stdin: text });
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(message);
            expect(r.stderr.trim().split("\n")).toHaveLength(1);
            expect(values()).toBe("1 1 1");
            expect(existsSync(labNames(LAB).sysctlFile)).toBe(false);
            expect(stateDirExists(LAB)).toBe(false);
        }
        // a file at the lab's path that this lab did not write
        const file = labNames(LAB).sysctlFile;
        writeFileSync(file, "# the admin's own\n");
        const r = run(s.create, { netns: ns.name, stdin: TEXT });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/90-kvm-ha-lab-hsct-sys\.conf exists and was not written by kvm-ha-lab lab hsct-sys/);
        expect(values()).toBe("1 1 1");
        expect(fileFacts(file)?.sha256).toBe(sha256("# the admin's own\n"));
        expect(run(s.delete, { netns: ns.name }).code).toBe(0);
        expect(fileFacts(file)?.sha256).toBe(sha256("# the admin's own\n"));
    });
});
