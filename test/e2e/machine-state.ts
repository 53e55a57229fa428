/**
 * A snapshot of everything the lab program may change on this machine, to prove that teardown leaves the machine as
 * it was: firewall, links and addresses, bridge sysctls, the files the program writes (under /etc, the XML and image
 * directories, libvirt's own domain configs, the lab state dir), libvirt's domains, and the set of running daemons.
 */
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { labNames } from "../../components/names";
import { runProc } from "../harness/proc";

export const WATCHED_DIRS = [
    "/etc/cluster",
    "/etc/kvm-ha-lab",
    "/etc/sysctl.d",
    "/etc/systemd/system",
    "/etc/init.d",
    "/etc/libvirt/qemu",
    "/var/lib/libvirt/images",
    "/var/lib/kvm-ha-lab",
];
export const WATCHED_DAEMONS = ["libvirtd", "virtlogd", "fence_virtd", "qemu-system-x86", "sshd", "dnsmasq"];

async function out(cmd: string, args: string[]): Promise<string> {
    const r = await runProc(cmd, args, { timeoutMs: 30_000 });
    return r.stdout.toString();
}

function listFiles(dir: string, acc: string[] = []): string[] {
    if (!existsSync(dir)) return acc;
    for (const name of readdirSync(dir).sort()) {
        const p = join(dir, name);
        const st = lstatSync(p);
        const mode = (st.mode & 0o7777).toString(8);
        if (st.isDirectory()) {
            acc.push(`${p}/ d ${mode} ${st.uid}`);
            listFiles(p, acc);
        } else if (st.isFile()) {
            const hash = createHash("sha256").update(readFileSync(p)).digest("hex").slice(0, 16);
            acc.push(`${p} f ${mode} ${st.uid} ${st.size} ${hash}`);
        } else acc.push(`${p} ${st.isSymbolicLink() ? "l" : "o"} ${mode}`);
    }
    return acc;
}

function bridgeSysctls(): string {
    const dir = "/proc/sys/net/bridge";
    if (!existsSync(dir)) return "(no br_netfilter)";
    return readdirSync(dir)
        .sort()
        .map((k) => `${k}=${readFileSync(join(dir, k), "utf8").trim()}`)
        .join("\n");
}

export type Snapshot = Record<string, string>;

export async function snapshot(): Promise<Snapshot> {
    const iptables = (await out("iptables-save", []))
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .map((l) => l.replace(/\[\d+:\d+\]/g, "[0:0]"))
        .join("\n");
    // The same firewall as nf_tables sees it: iptables-save cannot tell a missing base chain from an empty one.
    const nft = (await out("/bin/sh", ["-c", "command -v nft >/dev/null && nft list ruleset || echo '(no nft)'"]))
        .replace(/counter packets \d+ bytes \d+/g, "counter")
        .trim();
    const links = (await out("ip", ["-d", "-o", "link", "show"]))
        .split("\n")
        // Bridge timers (hello_timer, gc_timer, …) tick; they are not state.
        .map((l) => l.replace(/^\d+: /, "").replace(/\b(\w+_timer)\s+[\d.]+/g, "$1"))
        .sort()
        .join("\n");
    const addrs = (await out("ip", ["-o", "addr", "show"]))
        .split("\n")
        .map((l) => l.replace(/^\d+: /, "").replace(/ (tentative|optimistic|dadfailed)\b/g, ""))
        .sort()
        .join("\n");
    const domains = await out("virsh", ["-c", "qemu:///system", "list", "--all", "--name"]);
    // PID 1 here does not reap orphans: a stopped daemon can linger as a zombie, which is not running.
    const ps = await out("ps", ["-eo", "stat=,comm="]);
    const running = ps
        .split("\n")
        .map((l) => l.trim().split(/\s+/))
        .filter(([stat, comm]) => stat !== undefined && !stat.startsWith("Z") && WATCHED_DAEMONS.includes(comm))
        .map(([, comm]) => comm);
    const daemons = [...new Set(running)].sort().join(",");
    return {
        iptables,
        nft,
        links,
        addrs,
        sysctl: bridgeSysctls(),
        files: WATCHED_DIRS.flatMap((d) => listFiles(d)).join("\n"),
        domains: domains.trim(),
        daemons,
    };
}

/** Lines that differ, per aspect, for a readable failure. */
export function diffSnapshots(before: Snapshot, after: Snapshot): Record<string, { gone: string[]; added: string[] }> {
    const diff: Record<string, { gone: string[]; added: string[] }> = {};
    for (const k of Object.keys(before)) {
        const a = new Set(before[k].split("\n"));
        const b = new Set((after[k] ?? "").split("\n"));
        const gone = [...a].filter((l) => !b.has(l));
        const added = [...b].filter((l) => !a.has(l));
        if (gone.length || added.length) diff[k] = { gone, added };
    }
    return diff;
}

/**
 * What an interrupted earlier run of a lab leaves on this machine: its bridge, its state and config directories, and a
 * fence_virtd still running with its config (a leftover daemon would be adopted by the next create and stopped by its
 * delete, so the teardown check would see a daemon "gone" that the run never started). Throws, naming each, so that a
 * suite starts only from a clean baseline.
 */
export function assertNoLeftovers(lab: string, bridge: string): void {
    const n = labNames(lab);
    const left = [`/sys/class/net/${bridge}`, n.stateDir, n.etcDir].filter((p) => existsSync(p));
    for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
        let cmdline = "";
        try {
            cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
        } catch {
            continue; // gone meanwhile
        }
        if (cmdline.includes("fence_virtd") && cmdline.includes(n.fenceVirtd.configFile)) left.push(`fence_virtd pid ${pid} (${cmdline.trim()})`);
    }
    if (left.length > 0) {
        throw new Error(`leftovers of an earlier run of lab ${lab}: ${left.join(", ")}; remove them (ip link del ${bridge}; rm -rf ${n.stateDir} ${n.etcDir}; kill the fence_virtd) and run again`);
    }
}
