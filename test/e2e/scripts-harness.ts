/**
 * Shared helpers for the host-script e2e tests (test/e2e/scripts-*.test.ts): run a script the way @pulumi/command's
 * local provider does (`/bin/sh -c <script>`, content on stdin), optionally inside a throwaway network namespace;
 * prerequisite gating (skip with one line naming what is missing; fail instead when CI is set); state snapshots.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { labNames } from "../../components/names";
import { inlineLibrary } from "../../components/scripts/prelude";

export interface RunResult {
    code: number;
    stdout: string;
    stderr: string;
}

export interface RunOptions {
    stdin?: string | Buffer;
    /** Run inside this network namespace (`ip netns exec`). */
    netns?: string;
    /** Extra environment (on top of this process's). */
    env?: Record<string, string>;
    timeoutMs?: number;
    /** The shell, /bin/sh by default (dash here); "/bin/bash" runs the script as RHEL's /bin/sh would. */
    shell?: string;
}

/**
 * Runs `script` with `/bin/sh -c`, like @pulumi/command's local.Command (one trailing newline trimmed). A host script
 * runs with the script library written into it (inlineLibrary): these tests run each script alone, where the lab's
 * `<machine>-lib` step has not installed the library (scripts-library.test.ts tests that step and the sourcing).
 */
export function run(script: string, opts: RunOptions & { asIs?: boolean } = {}): RunResult {
    if (!opts.asIs) script = inlineLibrary(script);
    const shell = opts.shell ?? "/bin/sh";
    const [cmd, args] = opts.netns ? ["ip", ["netns", "exec", opts.netns, shell, "-c", script]] : [shell, ["-c", script]];
    const r = spawnSync(cmd, args, {
        input: opts.stdin ?? "",
        env: { ...process.env, ...opts.env },
        timeout: opts.timeoutMs ?? 90_000,
        maxBuffer: 64 * 1024 * 1024,
    });
    if (r.error) throw new Error(`running ${cmd}: ${r.error.message}`);
    return {
        code: r.status ?? -1,
        stdout: r.stdout.toString("utf8").replace(/\n$/, ""),
        stderr: r.stderr.toString("utf8").replace(/\n$/, ""),
    };
}

/** Runs a script that must succeed; returns its result (throws with its stderr otherwise). */
export function ok(script: string, opts: RunOptions = {}): RunResult {
    const r = run(script, opts);
    if (r.code !== 0) throw new Error(`script failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
    return r;
}

/** Runs a plain shell command that must succeed; returns its stdout. */
export function sh(command: string, netns?: string): string {
    return ok(command, { netns }).stdout;
}

/** A one-line description of what this machine lacks for a test file, or undefined when nothing is missing. */
export function missingPrereqs(commands: string[], extra: () => string | undefined = () => undefined): string | undefined {
    const missing: string[] = [];
    if (typeof process.getuid === "function" && process.getuid() !== 0) missing.push("root");
    for (const c of commands) {
        if (run(`command -v ${c} >/dev/null 2>&1 || [ -x /usr/sbin/${c} ] || [ -x /sbin/${c} ]`).code !== 0) missing.push(c);
    }
    const more = extra();
    if (more) missing.push(more);
    return missing.length > 0 ? `needs ${missing.join(", ")}` : undefined;
}

/**
 * Gate for a test file: returns true when it must be skipped. With CI set, a missing prerequisite throws instead,
 * so the run fails rather than skipping silently.
 */
export function skipBecause(file: string, missing: string | undefined): boolean {
    if (!missing) return false;
    if (process.env.CI) throw new Error(`${file}: ${missing} (CI is set, so this fails instead of skipping)`);
    console.warn(`${file}: skipped, ${missing}`);
    return true;
}

/** A throwaway network namespace, with lo up. */
export class Netns {
    readonly name: string;
    constructor(tag: string) {
        this.name = `hsc-${tag}-${process.pid}`;
        run(`ip netns del ${this.name} 2>/dev/null`);
        sh(`ip netns add ${this.name} && ip -n ${this.name} link set lo up`);
    }
    exec(command: string): string {
        return sh(command, this.name);
    }
    destroy(): void {
        run(`ip netns del ${this.name}`);
    }
}

/**
 * `ip -d link` + `ip addr` inside a namespace, without the ever-changing timer fields and without the qdisc name: a link
 * that was never up shows "noop", and once set up and down again "noqueue" (the kernel attaches its default qdisc on the
 * first up and never takes it away); nothing a script can or should undo.
 */
export function netSnapshot(netns: string): string {
    const links = sh("ip -d -o link show", netns)
        .replace(/\b[a-z_]*timer\s+\S+/g, "")
        .replace(/\bqdisc \S+/g, "qdisc *")
        .replace(/\s+/g, " ");
    const addrs = sh("ip -o addr show", netns).replace(/\s+/g, " ");
    return `${links}\n${addrs}`;
}

/** `iptables-save` without the comment lines (they carry the time). */
export function iptablesSnapshot(netns: string): string {
    return sh("iptables-save", netns)
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .join("\n");
}

/** Every marker of a lab's state directory: relative path → content. Empty when the directory is absent. */
export function stateFiles(lab: string): Record<string, string> {
    const root = labNames(lab).stateDir;
    const out: Record<string, string> = {};
    const walk = (dir: string, rel: string) => {
        if (!existsSync(dir)) return;
        for (const e of readdirSync(dir, { withFileTypes: true })) {
            const p = join(dir, e.name);
            const r = rel ? `${rel}/${e.name}` : e.name;
            if (e.isDirectory()) walk(p, r);
            else out[r] = readFileSync(p, "utf8");
        }
    };
    walk(root, "");
    return out;
}

export function stateDirExists(lab: string): boolean {
    return existsSync(labNames(lab).stateDir);
}

/** Test cleanup only: removes a test lab's state directory (after its delete scripts ran). */
export function dropState(lab: string): void {
    rmSync(labNames(lab).stateDir, { recursive: true, force: true });
    run(`rmdir ${labNames(lab).stateDir.replace(/\/[^/]+$/, "")} 2>/dev/null`);
}

export function sha256(data: string | Buffer): string {
    return createHash("sha256").update(data).digest("hex");
}

export interface FileFacts {
    sha256: string;
    mode: string;
    uid: number;
    gid: number;
    ino: number;
    mtimeMs: number;
    size: number;
}

export function fileFacts(path: string): FileFacts | undefined {
    if (!existsSync(path)) return undefined;
    const s = statSync(path);
    return {
        sha256: s.isDirectory() ? "" : sha256(readFileSync(path)),
        mode: (s.mode & 0o7777).toString(8),
        uid: s.uid,
        gid: s.gid,
        ino: s.ino,
        mtimeMs: s.mtimeMs,
        size: s.size,
    };
}

/**
 * A directory of command shims put first on PATH. Each shim records its argv (one line: name + args) in `log`, then
 * runs the given sh body. These stand in for tools whose real effect cannot be had here (no systemd runs, no package
 * repositories), and let the tests assert exactly which calls a script made.
 */
export class Shims {
    readonly dir: string;
    readonly log: string;
    constructor(tag: string) {
        this.dir = `/tmp/hsc-shims-${tag}-${process.pid}`;
        rmSync(this.dir, { recursive: true, force: true });
        mkdirSync(this.dir, { recursive: true });
        this.log = join(this.dir, "calls.log");
        writeFileSync(this.log, "");
    }
    add(name: string, body: string): void {
        const p = join(this.dir, name);
        writeFileSync(p, `#!/bin/sh\nprintf '%s\\n' "${name} $*" >> '${this.log}'\n${body}\n`);
        chmodSync(p, 0o755);
    }
    /** Environment that puts the shims first on PATH. */
    env(extra: Record<string, string> = {}): Record<string, string> {
        return { PATH: `${this.dir}:${process.env.PATH ?? "/usr/bin:/bin"}`, SHIM_DIR: this.dir, ...extra };
    }
    calls(): string[] {
        return readFileSync(this.log, "utf8").split("\n").filter((l) => l !== "");
    }
    clearCalls(): void {
        writeFileSync(this.log, "");
    }
    destroy(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}

/** PIDs of live (non-zombie) processes named `comm` whose command line contains every string. */
export function pidsMatching(comm: string, ...strings: string[]): number[] {
    const out: number[] = [];
    for (const e of readdirSync("/proc")) {
        if (!/^\d+$/.test(e)) continue;
        try {
            if (readFileSync(`/proc/${e}/comm`, "utf8").trim() !== comm) continue;
            const cl = readFileSync(`/proc/${e}/cmdline`, "utf8").replace(/\0/g, " ");
            if (cl !== "" && strings.every((s) => cl.includes(s))) out.push(Number(e));
        } catch {
            // gone
        }
    }
    return out;
}
