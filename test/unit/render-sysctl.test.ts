import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BRIDGE_SYSCTLS, renderSysctl } from "../../components/render/sysctl";
import { hasTool, need, run } from "../helpers/tools";




const KEYS = ["net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables"];

/** Reads a sysctl.d file the way sysctl does: `key = value` lines, `#`/`;` comments, blank lines. */
function parseSysctlD(text: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const raw of text.split("\n")) {
        const line = raw.trim();
        if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
        const m = /^([A-Za-z0-9_.\-/]+)\s*=\s*(.*)$/.exec(line);
        if (!m) throw new Error(`not a sysctl line: ${JSON.stringify(raw)}`);
        expect(out.has(m[1]), `${m[1]} set twice`).toBe(false);
        out.set(m[1], m[2]);
    }
    return out;
}

describe("renderSysctl", () => {
    it("sets exactly the three bridge-nf-call keys to 0", () => {
        const settings = parseSysctlD(renderSysctl());
        expect([...settings.keys()].sort()).toEqual([...KEYS].sort());
        for (const k of KEYS) expect(settings.get(k)).toBe("0");
        expect(renderSysctl().startsWith("# kvm-ha-lab")).toBe(true);
        expect(renderSysctl().endsWith("\n")).toBe(true);
        expect(renderSysctl()).toBe(renderSysctl());
    });

    it("BRIDGE_SYSCTLS lists the same settings, with their /proc/sys paths", () => {
        expect(BRIDGE_SYSCTLS.map((s) => s.key)).toEqual([...parseSysctlD(renderSysctl()).keys()]);
        for (const s of BRIDGE_SYSCTLS) {
            expect(s.value).toBe("0");
            expect(s.procPath).toBe(`/proc/sys/${s.key.split(".").join("/")}`);
        }
        expect(Object.isFrozen(BRIDGE_SYSCTLS)).toBe(true);
    });

    it("sysctl -p loads the file inside a throwaway network namespace (the settings are per namespace) and sets every key to 0", (ctx) => {
        need(ctx, "sysctl (procps) or ip (iproute2) is not installed", hasTool("sysctl") && hasTool("ip"));
        need(ctx, "not root (network namespaces need root)", process.getuid?.() === 0);
        need(ctx, "the br_netfilter module is not loaded here (no /proc/sys/net/bridge)", existsSync("/proc/sys/net/bridge"));
        const ns = `hra-sysctl-${process.pid}`;
        const dir = mkdtempSync(join(tmpdir(), "hra-sysctl-"));
        const rootBefore = BRIDGE_SYSCTLS.map((s) => readFileSync(s.procPath, "utf8"));
        const inNs = (...args: string[]) => run("ip", ["netns", "exec", ns, ...args]);
        expect(run("ip", ["netns", "add", ns]).status).toBe(0);
        try {
            // start from 1 so that loading the file visibly changes every key
            for (const s of BRIDGE_SYSCTLS) expect(inNs("sysctl", "-w", `${s.key}=1`).status).toBe(0);
            const file = join(dir, "90-kvm-ha-lab-test.conf");
            writeFileSync(file, renderSysctl());
            const r = inNs("sysctl", "-p", file);
            expect(r.status, r.out).toBe(0);
            for (const s of BRIDGE_SYSCTLS) {
                expect(inNs("sysctl", "-n", s.key).stdout.trim(), s.key).toBe("0");
                expect(inNs("cat", s.procPath).stdout.trim(), s.procPath).toBe("0");
            }
        } finally {
            run("ip", ["netns", "del", ns]);
            rmSync(dir, { recursive: true, force: true });
        }
        // the machine's own namespace was not touched
        expect(BRIDGE_SYSCTLS.map((s) => readFileSync(s.procPath, "utf8"))).toEqual(rootBefore);
    });
});

