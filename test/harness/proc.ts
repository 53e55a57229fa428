/**
 * Child-process helpers shared by the test harness: run a program to completion with optional stdin, capture stdout,
 * stderr and their interleaving, and kill only what we started (by PID).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface ProcResult {
    /** Exit code, or null when killed by a signal. */
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: Buffer;
    stderr: Buffer;
    /** stdout and stderr interleaved in arrival order (what the command provider puts in its error message). */
    combined: Buffer;
    /** The spawn itself failed (binary missing, bad cwd). */
    spawnError?: Error;
}

export interface ProcOptions {
    /** Piped to the child only when non-empty; otherwise the child's stdin is /dev/null. */
    stdin?: string | Buffer;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    /** Kill (SIGKILL) the child after this long. */
    timeoutMs?: number;
    /** Called once the child has a PID, so a caller can kill it on its own timeout. */
    onSpawn?: (child: ChildProcess) => void;
}

/** Runs `file args...` to completion. Never rejects: failures are in the result. */
export function runProc(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
    return new Promise((resolve) => {
        const stdinData = opts.stdin === undefined || opts.stdin.length === 0 ? undefined : opts.stdin;
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const both: Buffer[] = [];
        let child: ChildProcess;
        try {
            child = spawn(file, [...args], {
                cwd: opts.cwd,
                env: opts.env ?? process.env,
                stdio: [stdinData === undefined ? "ignore" : "pipe", "pipe", "pipe"],
            });
        } catch (e) {
            resolve({ code: null, signal: null, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), combined: Buffer.alloc(0), spawnError: e as Error });
            return;
        }
        opts.onSpawn?.(child);
        let timer: NodeJS.Timeout | undefined;
        if (opts.timeoutMs !== undefined) {
            timer = setTimeout(() => {
                if (child.pid !== undefined) killPid(child.pid, "SIGKILL");
            }, opts.timeoutMs);
        }
        child.stdout!.on("data", (b: Buffer) => {
            out.push(b);
            both.push(b);
        });
        child.stderr!.on("data", (b: Buffer) => {
            err.push(b);
            both.push(b);
        });
        if (stdinData !== undefined) {
            // The provider ignores EPIPE when a command does not read its stdin.
            child.stdin!.on("error", () => undefined);
            child.stdin!.end(stdinData);
        }
        let spawnError: Error | undefined;
        child.on("error", (e) => {
            spawnError = e;
        });
        child.on("close", (code, signal) => {
            if (timer) clearTimeout(timer);
            resolve({
                code,
                signal,
                stdout: Buffer.concat(out),
                stderr: Buffer.concat(err),
                combined: Buffer.concat(both),
                spawnError,
            });
        });
    });
}

/** Runs a command and throws (with its output) unless it exits 0. Returns stdout as text. */
export async function mustRun(file: string, args: readonly string[], opts: ProcOptions = {}): Promise<string> {
    const r = await runProc(file, args, opts);
    if (r.code !== 0) {
        const why = r.spawnError ? r.spawnError.message : r.code === null ? `killed by ${r.signal}` : `exit ${r.code}`;
        throw new Error(`${[file, ...args].join(" ")}: ${why}\n${r.combined.toString("utf8").trim()}`);
    }
    return r.stdout.toString("utf8");
}

/** Sends a signal to one PID; false when it does not exist. */
export function killPid(pid: number, signal: NodeJS.Signals = "SIGTERM"): boolean {
    try {
        process.kill(pid, signal);
        return true;
    } catch {
        return false;
    }
}

export function pidAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
    } catch {
        return false;
    }
    // A zombie still answers kill(0): look at its state.
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
        return state !== "Z" && state !== "X";
    } catch {
        return false;
    }
}

/** The command name (/proc/PID/comm) of a PID, or undefined. */
export function pidComm(pid: number): string | undefined {
    try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
        return undefined;
    }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Resolves when the PID is gone (or after the SIGKILL wait). */
export async function stopPid(pid: number, graceMs = 3000): Promise<void> {
    if (!killPid(pid, "SIGTERM")) return;
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
        if (!pidAlive(pid)) return;
        await sleep(50);
    }
    killPid(pid, "SIGKILL");
    const hard = Date.now() + 2000;
    while (Date.now() < hard && pidAlive(pid)) await sleep(50);
}

/** Every descendant PID of `pid` (children, grandchildren…), read from /proc. */
export function descendants(pid: number): number[] {
    const children = new Map<number, number[]>();
    let entries: string[] = [];
    try {
        entries = readdirSync("/proc");
    } catch {
        return [];
    }
    for (const e of entries) {
        if (!/^\d+$/.test(e)) continue;
        try {
            const stat = readFileSync(`/proc/${e}/stat`, "utf8");
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            const list = children.get(ppid) ?? [];
            list.push(Number(e));
            children.set(ppid, list);
        } catch {
            // gone meanwhile
        }
    }
    const found: number[] = [];
    const stack = [pid];
    while (stack.length > 0) {
        const p = stack.pop()!;
        for (const c of children.get(p) ?? []) {
            found.push(c);
            stack.push(c);
        }
    }
    return found;
}

export function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

/** Go's %q for a string (what the command provider uses to quote the script in its error message). */
export function goQuote(s: string): string {
    let out = '"';
    for (const ch of s) {
        const c = ch.codePointAt(0)!;
        if (ch === '"') out += '\\"';
        else if (ch === "\\") out += "\\\\";
        else if (ch === "\n") out += "\\n";
        else if (ch === "\t") out += "\\t";
        else if (ch === "\r") out += "\\r";
        else if (ch === "\x07") out += "\\a";
        else if (ch === "\b") out += "\\b";
        else if (ch === "\f") out += "\\f";
        else if (ch === "\v") out += "\\v";
        else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
        else out += ch;
    }
    return out + '"';
}
