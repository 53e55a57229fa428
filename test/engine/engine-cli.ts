/**
 * The real Pulumi CLI that `npm run engine` builds (.engine/v<SDK version>/bin/pulumi), run against a temporary copy
 * of this project with everything it writes kept in a temporary folder: file backend, PULUMI_HOME and HOME (so `~` in
 * Pulumi.yaml's backend URL cannot reach the user's state), a passphrase for secrets, no update check and no plugin
 * downloads (only the registries are reachable; the engine's plugins come from the same bin folder, on PATH).
 *
 *   const gate = engineGate("engine cli");                 // fails under CI, skips elsewhere, when the CLI is missing
 *   const project = makeProject();                          // Pulumi.yaml + stacks/ copied into a temp folder
 *   const r = await pulumi(project, ["config", "--json", "--stack", "lab"]);
 */
import { accessSync, constants, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { runProc, type ProcResult } from "../harness/proc";
import { PROJECT_ROOT } from "../harness/stack-config";

/** The CLI release: the one @pulumi/pulumi is pinned to (scripts/engine.sh builds that version). */
export const CLI_VERSION = (JSON.parse(readFileSync(join(PROJECT_ROOT, "node_modules/@pulumi/pulumi/package.json"), "utf8")) as { version: string }).version;
export const ENGINE_BIN = join(PROJECT_ROOT, ".engine", `v${CLI_VERSION}`, "bin");
export const PULUMI = join(ENGINE_BIN, "pulumi");

function executable(path: string): boolean {
    try {
        accessSync(path, constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

export interface EngineGate {
    skip: boolean;
    reason: string;
    assertReady(): void;
}

/** Like suiteGate: a missing CLI skips the suite with one line, except under CI, where assertReady() fails it. */
export function engineGate(suite: string, binaries: readonly string[] = ["pulumi"]): EngineGate {
    const missing = binaries.filter((b) => !executable(join(ENGINE_BIN, b)));
    const reason = missing.length ? `${suite}: missing ${missing.map((b) => join(ENGINE_BIN, b)).join(", ")} (run \`npm run engine\`)` : "";
    const ci = !!process.env.CI && process.env.CI !== "false" && process.env.CI !== "0";
    const skip = missing.length > 0 && !ci;
    if (skip) console.log(`[skip] ${reason}`);
    return {
        skip,
        reason,
        assertReady() {
            if (missing.length) throw new Error(`${reason}${ci ? " (CI is set: a missing requirement fails instead of skipping)" : ""}`);
        },
    };
}

export interface EngineProject {
    /** The project copy: Pulumi.yaml and stacks/ (the CLI's working directory). */
    dir: string;
    /** The file backend's folder (PULUMI_BACKEND_URL=file://<state>). */
    state: string;
    home: string;
    passphrase: string;
    /** Removes everything this project wrote. */
    remove(): void;
}

/** A temporary copy of Pulumi.yaml and stacks/*.yaml (index.ts linked), with its own backend, PULUMI_HOME and HOME. */
export function makeProject(passphrase = "engine-test-passphrase"): EngineProject {
    const root = mkdtempSync(join(tmpdir(), "kvmlab-engine-"));
    const dir = join(root, "project");
    const state = join(root, "state");
    const home = join(root, "home");
    for (const d of [dir, join(dir, "stacks"), state, home]) mkdirSync(d, { recursive: true });
    copyFileSync(join(PROJECT_ROOT, "Pulumi.yaml"), join(dir, "Pulumi.yaml"));
    // The CLI checks that Pulumi.yaml's `main` exists; the program itself is always the one in the work tree.
    symlinkSync(join(PROJECT_ROOT, "index.ts"), join(dir, "index.ts"));
    for (const f of readdirSync(join(PROJECT_ROOT, "stacks"))) {
        if (/^Pulumi\..+\.yaml$/.test(f)) copyFileSync(join(PROJECT_ROOT, "stacks", f), join(dir, "stacks", f));
    }
    return { dir, state, home, passphrase, remove: () => rmSync(root, { recursive: true, force: true }) };
}

/** makeProject, then `pulumi stack init <stack>` in it; throws with the CLI's output when the init fails. */
export async function initProject(stack: string, passphrase?: string): Promise<EngineProject> {
    const project = makeProject(passphrase);
    const init = await pulumi(project, ["stack", "init", stack]);
    if (init.code !== 0) {
        project.remove();
        throw new Error(`pulumi stack init ${stack} exited ${init.code}: ${init.all}`);
    }
    return project;
}

/** The CLI's environment: nothing of the caller's Pulumi setup, nothing reaching outside the temp folder. */
export function engineEnv(p: EngineProject, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PULUMI_")) env[k] = v;
    return {
        ...env,
        HOME: p.home,
        PATH: `${ENGINE_BIN}${delimiter}${process.env.PATH ?? ""}`,
        PULUMI_HOME: join(p.home, ".pulumi"),
        PULUMI_BACKEND_URL: `file://${p.state}`,
        PULUMI_CONFIG_PASSPHRASE: p.passphrase,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_SKIP_CONFIRMATIONS: "true",
        ...extra,
    };
}

export interface PulumiRun extends ProcResult {
    /** stdout as text. */
    out: string;
    /** stdout and stderr, for assertion messages. */
    all: string;
}

/** Runs the real CLI in the project copy (non-interactive); never rejects. */
export async function pulumi(
    p: EngineProject,
    args: readonly string[],
    opts: { stdin?: string | Buffer; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<PulumiRun> {
    const r = await runProc(PULUMI, ["--non-interactive", ...args], {
        cwd: p.dir,
        env: engineEnv(p, opts.env),
        stdin: opts.stdin,
        timeoutMs: opts.timeoutMs ?? 120_000,
    });
    return { ...r, out: r.stdout.toString(), all: `$ pulumi ${args.join(" ")}\n${r.combined.toString()}${r.spawnError ? String(r.spawnError) : ""}` };
}
