/**
 * Suite setup for the e2e tests: what the machine lacks (so a suite can skip with one line, or fail under CI), and
 * libvirt started only when it is not already running, stopped afterwards only if we started it.
 *
 *   const gate = suiteGate("lab e2e");
 *   describe.skipIf(gate.skip)("lab e2e", () => {
 *       let libvirt: LibvirtHandle;
 *       beforeAll(async () => { gate.assertReady(); libvirt = await ensureLibvirt(); });
 *       afterAll(async () => { await libvirt?.stop(); });
 *   });
 */
import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { pidAlive, pidComm, runProc, sleep, stopPid } from "./proc";

export const LIBVIRT_URI = "qemu:///system";

/** Binaries the lab e2e needs (the harness itself needs ssh, ssh-keygen, sshd, ip, nsenter, unshare). */
export const E2E_BINARIES = [
    "virsh",
    "libvirtd",
    "virtlogd",
    "qemu-system-x86_64",
    "fence_virtd",
    "fence_xvm",
    "tini",
    "iptables",
    "iptables-save",
    "ip",
    "sshd",
    "ssh",
    "ssh-keygen",
    "xmllint",
    "nsenter",
    "unshare",
    "mount",
] as const;

/** Full path of a binary on PATH or in the sbin directories, or undefined. */
export function which(bin: string): string | undefined {
    const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    for (const d of dirs) {
        if (!d) continue;
        const p = join(d, bin);
        try {
            accessSync(p, constants.X_OK);
            return p;
        } catch {
            // next
        }
    }
    return undefined;
}

/** What is missing for the e2e suites: "root" and binary names. Empty when everything is there. */
export function requirements(binaries: readonly string[] = E2E_BINARIES): string[] {
    const missing: string[] = [];
    if (typeof process.getuid === "function" && process.getuid() !== 0) missing.push(`root (running as uid ${process.getuid()})`);
    for (const b of binaries) if (!which(b)) missing.push(b);
    return missing;
}

export interface SuiteGate {
    missing: string[];
    /** true only when something is missing and CI is not set. */
    skip: boolean;
    /** One line saying what is missing ("" when nothing is). */
    reason: string;
    /** Throws when something is missing (the CI case: the suite runs and fails here instead of skipping). */
    assertReady(): void;
}

/**
 * Decides whether a suite runs. Missing requirements skip the suite with one printed line, except when env CI is set:
 * then `skip` is false and `assertReady()` (call it in beforeAll) fails the suite with the same line.
 */
export function suiteGate(suite: string, binaries: readonly string[] = E2E_BINARIES): SuiteGate {
    const missing = requirements(binaries);
    const reason = missing.length ? `${suite}: missing ${missing.join(", ")}` : "";
    const ci = !!process.env.CI && process.env.CI !== "false" && process.env.CI !== "0";
    const skip = missing.length > 0 && !ci;
    if (skip) console.log(`[skip] ${reason} (run as root on a machine with libvirt, qemu, fence-virt, iptables, iproute2, openssh)`);
    return {
        missing,
        skip,
        reason,
        assertReady() {
            if (missing.length) throw new Error(`${reason}${ci ? " (CI is set: a missing requirement fails instead of skipping)" : ""}`);
        },
    };
}

export interface LibvirtHandle {
    /** true when this call started nothing (libvirtd was already there, or someone else started it meanwhile). */
    alreadyRunning: boolean;
    /** PIDs of the daemons this call started (virtlogd, libvirtd). */
    startedPids: { name: string; pid: number }[];
    /** Stops only the daemons this call started, by PID (reverse order). Idempotent. */
    stop(): Promise<void>;
}

async function pidsOf(name: string): Promise<number[]> {
    const r = await runProc("pidof", [name]);
    return r.code === 0 ? r.stdout.toString().trim().split(/\s+/).filter(Boolean).map(Number) : [];
}

async function virshWorks(command: string, timeoutMs = 10_000): Promise<boolean> {
    const r = await runProc("virsh", ["-c", LIBVIRT_URI, command], { timeoutMs });
    return r.code === 0;
}

function readPidFile(path: string): number | undefined {
    try {
        const n = Number(readFileSync(path, "utf8").trim());
        return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
        return undefined;
    }
}

/**
 * Starts `<daemon>` unless one runs; returns the PID we started (read from its pid file), if any.
 *
 * PID 1 on these machines does not reap orphans, and libvirtd's QEMU capability probes end up orphaned: as zombies
 * they make libvirtd hang (virsh define never returns, SIGTERM is ignored). So the daemon runs in the foreground under
 * `tini -s`, a child subreaper that reaps every orphan below it; stopping the daemon by its PID ends tini too.
 */
async function startDaemon(name: string, pidFile: string): Promise<number | undefined> {
    const before = await pidsOf(name);
    if (before.length > 0) return undefined;
    const bin = which(name);
    if (!bin) throw new Error(`ensureLibvirt: ${name} not found`);
    const tini = which("tini");
    if (!tini) throw new Error("ensureLibvirt: tini not found (apt-get install tini): libvirtd needs a subreaper here");
    const child = spawn(tini, ["-s", "--", bin, "-p", pidFile], { detached: true, stdio: "ignore" });
    child.unref();
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
        const pid = readPidFile(pidFile);
        if (pid !== undefined && !before.includes(pid) && pidAlive(pid) && pidComm(pid) === name) return pid;
        await sleep(50);
    }
    // Someone else may have started it at the same moment (their pid file won the lock): then it is not ours.
    if ((await pidsOf(name)).length > 0) return undefined;
    throw new Error(`ensureLibvirt: ${name} did not start under tini (pid file ${pidFile} never named it)`);
}

/**
 * Makes `virsh -c qemu:///system list` work: starts virtlogd and libvirtd (`-d`, pid files in /run) only when they are
 * not running, then waits until libvirtd answers. No systemd here: daemons are started directly.
 */
export async function ensureLibvirt(opts: { timeoutMs?: number } = {}): Promise<LibvirtHandle> {
    const startedPids: { name: string; pid: number }[] = [];
    let stopped = false;
    const handle: LibvirtHandle = {
        alreadyRunning: false,
        startedPids,
        async stop() {
            if (stopped) return;
            stopped = true;
            for (const { name, pid } of [...startedPids].reverse()) {
                if (pidComm(pid) === name) await stopPid(pid, 10_000);
            }
        },
    };
    try {
        // libvirtd answers slowly while it probes QEMU (tens of seconds with TCG): decide by process, not by virsh.
        const logd = await startDaemon("virtlogd", "/run/virtlogd.pid");
        if (logd !== undefined) startedPids.push({ name: "virtlogd", pid: logd });
        const lvd = await startDaemon("libvirtd", "/run/libvirtd.pid");
        if (lvd !== undefined) startedPids.push({ name: "libvirtd", pid: lvd });
        // Started nothing: daemons someone else runs (or started meanwhile); they are not ours to stop.
        handle.alreadyRunning = startedPids.length === 0;
        const timeoutMs = opts.timeoutMs ?? 90_000;
        const deadline = Date.now() + timeoutMs;
        while (!(await virshWorks("list", Math.max(1000, deadline - Date.now())))) {
            if (Date.now() > deadline) throw new Error(`ensureLibvirt: virsh -c ${LIBVIRT_URI} list still fails after ${timeoutMs} ms`);
            await sleep(200);
        }
        return handle;
    } catch (e) {
        await handle.stop();
        throw e;
    }
}
