/**
 * Executing mocks: a `pulumi.runtime.Mocks` implementation that really runs what the program declares, so the whole
 * program can be applied against this machine without the Pulumi CLI (which cannot run here).
 *
 *   - `command:local:Command`  runs `create` as @pulumi/command 1.x does: `/bin/sh -c <script>` (or `interpreter`),
 *     environment = process env + `environment`, stdin only when non-empty, cwd = `dir` or the project directory,
 *     one trailing newline trimmed from stdout and stderr; a non-zero exit fails the resource with
 *     `exit status N: running "<script>":\n<stdout+stderr>`.
 *   - `command:remote:Command` runs `create` over SSH with the system `ssh` client and the resource's `connection`
 *     (host, port, user, privateKey written to a 0600 temp file and removed afterwards); the script is the remote
 *     command, stdin is piped; `environment` and PULUMI_COMMAND_STDOUT/STDERR are sent as SSH env requests, which the
 *     server drops unless its sshd_config has `AcceptEnv` for them (exactly as with the provider). Connection errors are
 *     retried with backoff, at most `dialErrorLimit` times (default 10; capped by `maxDialRetries`). A non-zero exit
 *     fails with `Process exited with status N: running "<script>":\n<output>`.
 *   - `random:index/randomBytes:RandomBytes` returns `length` real random bytes as `base64` and `hex`, both marked
 *     secret by the mock itself (mocks do not apply `additionalSecretOutputs`). remote.Command's `connection` output is
 *     marked secret the same way.
 *   - `tls:index/privateKey:PrivateKey` (algorithm ED25519 only) generates a real key pair with `ssh-keygen` and returns
 *     `privateKeyOpenssh` (secret) and `publicKeyOpenssh`, as the tls provider does.
 *   - Component resources (and other non-command custom resources such as explicit providers): inputs become state.
 *   - Unsupported command/random types (CopyToRemote, CopyFile, RandomPassword…) and unsupported inputs (assetPaths,
 *     archivePaths, proxy, password auth) fail the resource loudly instead of pretending.
 *
 * Every registration is recorded in completion order (type, name, URN, parent chain, dependencies, scripts,
 * environment, whether stdin was given and whether it was secret — never its value — stdout, stderr, error).
 * Duplicate URNs fail the second registration, as the engine does.
 *
 * Known differences from the real engine (read these before trusting a green run):
 *   1. No state and no diff: every run is a create. `update`, no-op steps, `triggers` and replacement are not modelled;
 *      a second run re-runs every create script (which is how we test idempotency) and its teardown replaces the
 *      first run's: tear down with the latest run only.
 *   2. Teardown runs the `delete` scripts one at a time in reverse completion order; the engine walks the dependency
 *      graph (in parallel). Dependencies are recorded (`dependencies`) for tests that want to check the graph.
 *   3. After the first failure, creates that had not started yet are skipped (as `pulumi up` does without
 *      `--continue-on-error`); creates already running finish. `continueOnError: true` runs everything it can.
 *      Dependents of a failed resource are never registered (their inputs reject), as with the engine.
 *   4. A failing create rejects every output of that resource; the SDK turns that into many unhandled rejections.
 *      run-program.ts collects them (scoped listener) and bounds the wait with a timeout instead of hanging.
 *   5. `transforms`, `ignoreChanges`, `protect`, `retainOnDelete`, `deletedWith`, `customTimeouts`, aliases and
 *      resource hooks are ignored. `logging` is ignored (nothing is streamed; output is in the records).
 *   6. Preview is not modelled (no unknowns): `isDryRun()` is false.
 *   7. Only the `command` and `random` resources listed above execute. Invokes (`call`) fail.
 *   8. Secret inputs are unwrapped to execute; secrecy of inputs is carried through to the returned state, but
 *      stdout/stderr are never marked secret (the provider does not either). Nothing is persisted (no state file).
 *   9. remote.Command uses the OpenSSH client, not Go's x/crypto/ssh: host keys are not checked (as with the provider
 *      without `hostKey`), only private-key auth is supported, and a dial error is an ssh exit 255 with a
 *      connection-level message (refused, unreachable, timeout, auth), retried with backoff 250 ms → 3 s.
 *  10. No per-command timeout (the provider has none either); runProgram's `timeoutMs` bounds the whole apply and
 *      kills the commands still running (and their children).
 */
import * as pulumi from "@pulumi/pulumi";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { descendants, goQuote, killPid, runProc, sleep, type ProcResult } from "./proc";

const SIG_KEY = pulumi.runtime.specialSigKey;
const SECRET_SIG = pulumi.runtime.specialSecretSig;

export const LOCAL_COMMAND = "command:local:Command";
export const REMOTE_COMMAND = "command:remote:Command";
export const RANDOM_BYTES = "random:index/randomBytes:RandomBytes";
export const TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey";

/** A real ed25519 key pair in OpenSSH form (what tls PrivateKey returns as privateKeyOpenssh / publicKeyOpenssh). */
async function ed25519KeyPair(): Promise<{ privateKeyOpenssh: string; publicKeyOpenssh: string }> {
    const dir = mkdtempSync(join(tmpdir(), "kvmlab-tls-"));
    try {
        const key = join(dir, "key");
        const r = await runProc("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", key], { timeoutMs: 30_000 });
        if (r.code !== 0) throw new Error(`executing mocks: ssh-keygen failed: ${r.stderr.toString()}`);
        return { privateKeyOpenssh: readFileSync(key, "utf8"), publicKeyOpenssh: readFileSync(`${key}.pub`, "utf8") };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/** What the harness records about one registration. Never holds secret values. */
export interface CreateRecord {
    /** Position in completion order (0-based). */
    seq: number;
    urn: string;
    type: string;
    name: string;
    /** false for component resources. */
    custom: boolean;
    /** Parent URN, if any. */
    parent?: string;
    /** Parent URNs, nearest first. */
    parents: string[];
    /** URNs this resource depends on (from dependsOn and from its inputs). */
    dependencies: string[];
    status: "created" | "failed" | "skipped";
    /** true when something really ran (a command, an RNG draw). */
    executed: boolean;
    /** Names of the top-level inputs that were secret. */
    secretInputs: string[];
    create?: string;
    update?: string;
    delete?: string;
    interpreter?: string[];
    dir?: string;
    /** Environment given to the command; "[secret]" when any value was secret. */
    environment?: Record<string, string> | "[secret]";
    stdin?: { present: boolean; secret: boolean; bytes: number };
    connection?: { host: string; port: number; user: string };
    addPreviousOutputInEnv?: boolean;
    /** For RandomBytes. */
    length?: number;
    stdout?: string;
    stderr?: string;
    error?: string;
    startedAt: number;
    durationMs: number;
}

export interface DeleteRecord {
    urn: string;
    type: string;
    name: string;
    script: string;
    ok: boolean;
    stdout?: string;
    stderr?: string;
    error?: string;
    durationMs: number;
}

export interface TeardownResult {
    deletes: DeleteRecord[];
    failures: DeleteRecord[];
}

export interface ExecutingMocksOptions {
    /** cwd of local commands without `dir` (the provider runs in the project directory). */
    projectDir: string;
    /** Run creates that start after a failure (default false: skip them, like `pulumi up`). */
    continueOnError?: boolean;
    /**
     * Fault injection: return a message to make this create fail with it instead of executing (for "interrupted apply"
     * tests). Called for custom resources only.
     */
    injectFailure?: (r: { urn: string; type: string; name: string }) => string | undefined;
    /**
     * Called after a custom resource's create succeeded (not for components), before its outputs resolve (so
     * dependents wait for it). A throw fails the resource. Use it e.g. to attach guest endpoints once the bridge exists.
     */
    onCreated?: (record: CreateRecord) => void | Promise<void>;
    /** Upper bound on SSH dial attempts whatever `dialErrorLimit` says (default 10). */
    maxDialRetries?: number;
    /** Progress lines (no secrets). */
    log?: (line: string) => void;
}

interface StoredResource {
    type: string;
    name: string;
    urn: string;
    /** Unwrapped inputs as stored by the provider at create time (may hold secrets: never logged). */
    inputs: Record<string, unknown>;
    stdout: string;
    stderr: string;
}

interface PendingCreate {
    urn: string;
    name: string;
    type: string;
    startedAt: number;
    child?: ChildProcess;
}

interface RegistrationContext {
    urn: string;
    parent?: string;
    dependencies: string[];
}

/** Wraps a value the way the RPC layer marks a secret. */
export function secretValue<T>(value: T): unknown {
    return { [SIG_KEY]: SECRET_SIG, value };
}

function isSecretWrapper(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** Removes secret wrappers at any depth; reports whether there was one. */
export function unwrapSecrets(v: unknown): { value: unknown; secret: boolean } {
    if (isSecretWrapper(v)) {
        const inner = unwrapSecrets(v.value);
        return { value: inner.value, secret: true };
    }
    if (Array.isArray(v)) {
        let secret = false;
        const value = v.map((e) => {
            const u = unwrapSecrets(e);
            secret ||= u.secret;
            return u.value;
        });
        return { value, secret };
    }
    if (typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
        let secret = false;
        const value: Record<string, unknown> = {};
        for (const [k, e] of Object.entries(v)) {
            const u = unwrapSecrets(e);
            secret ||= u.secret;
            value[k] = u.value;
        }
        return { value, secret };
    }
    return { value: v, secret: false };
}

/** The URN the mock monitor gives a resource (same algorithm as @pulumi/pulumi's MockMonitor). */
export function mockUrn(stack: string, project: string, parent: string | undefined, type: string, name: string): string {
    let qualified = type;
    if (parent) {
        const parentType = parent.split("::")[2].split("$").pop();
        qualified = `${parentType}$${type}`;
    }
    return `urn:pulumi:${stack}::${project}::${qualified}::${name}`;
}

function trimOneNewline(s: string): string {
    return s.endsWith("\n") ? s.slice(0, -1) : s;
}

function str(v: unknown): string | undefined {
    return typeof v === "string" ? v : undefined;
}

function strMap(v: unknown): Record<string, string> | undefined {
    if (typeof v !== "object" || v === null) return undefined;
    const out: Record<string, string> = {};
    for (const [k, e] of Object.entries(v)) out[k] = String(e);
    return out;
}

interface Connection {
    host: string;
    port: number;
    user: string;
    privateKey?: string;
    password?: string;
    privateKeyPassword?: string;
    dialErrorLimit: number;
    perDialTimeout: number;
    proxy?: unknown;
}

function readConnection(v: unknown): Connection {
    const c = (v ?? {}) as Record<string, unknown>;
    if (typeof c.host !== "string" || c.host === "") throw new Error("executing mocks: remote.Command connection.host is required");
    return {
        host: c.host,
        port: typeof c.port === "number" ? c.port : 22,
        user: typeof c.user === "string" && c.user !== "" ? c.user : "root",
        privateKey: str(c.privateKey),
        password: str(c.password),
        privateKeyPassword: str(c.privateKeyPassword),
        dialErrorLimit: typeof c.dialErrorLimit === "number" ? c.dialErrorLimit : 10,
        perDialTimeout: typeof c.perDialTimeout === "number" ? c.perDialTimeout : 15,
        proxy: c.proxy,
    };
}

/** ssh exit 255 with a connection-level message: the provider's dial loop would retry. */
function isDialError(r: ProcResult): boolean {
    if (r.code !== 255 || r.stdout.length > 0) return false;
    const e = r.stderr.toString("utf8");
    return /^ssh: |Connection refused|Connection timed out|No route to host|Network is unreachable|Connection closed by|Connection reset|kex_exchange_identification|Permission denied \(/m.test(e);
}

export class ExecutingMocks implements pulumi.runtime.Mocks {
    /** Every registration, in completion order. */
    readonly records: CreateRecord[] = [];
    /** Delete runs of the last teardown. */
    readonly deletes: DeleteRecord[] = [];
    private readonly stored = new Map<string, StoredResource>();
    private readonly urns = new Set<string>();
    private readonly pending = new Map<string, PendingCreate>();
    private readonly byUrn = new Map<string, CreateRecord>();
    private registering: RegistrationContext | undefined;
    private failed = false;
    private teardownResult: TeardownResult | undefined;
    private project = "project";
    private stack = "stack";

    constructor(private readonly opts: ExecutingMocksOptions) {}

    /**
     * `setMocks(this, project, stack, preview=false)` and hooks the mock monitor so the mock learns each resource's
     * URN, parent and dependencies (newResource is not given them) and rejects duplicate URNs.
     */
    async install(project: string, stack: string): Promise<void> {
        this.project = project;
        this.stack = stack;
        await pulumi.runtime.setMocks(this, project, stack, false);
        const monitor = pulumi.runtime.getMonitor() as unknown as {
            registerResource(req: RegisterRequest, cb: (err: unknown, resp?: unknown) => void): Promise<void>;
        };
        const original = monitor.registerResource.bind(monitor);
        monitor.registerResource = (req, cb) => {
            const parent = req.getParent() || undefined;
            const urn = mockUrn(this.stack, this.project, parent, req.getType(), req.getName());
            if (this.urns.has(urn)) {
                const message = `Duplicate resource URN '${urn}'; try giving it a unique name`;
                this.failed = true;
                this.push({ ...this.baseRecord(urn, req.getType(), req.getName(), req.getCustom(), parent, req.getDependenciesList()), status: "failed", error: message });
                cb(new Error(message));
                return Promise.resolve();
            }
            this.urns.add(urn);
            // MockMonitor calls newResource synchronously, before its first await.
            this.registering = { urn, parent, dependencies: req.getDependenciesList() };
            try {
                return original(req, cb);
            } finally {
                this.registering = undefined;
            }
        };
    }

    call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
        throw new Error(`executing mocks: invoke ${args.token} is not supported`);
    }

    async newResource(args: pulumi.runtime.MockResourceArgs): Promise<{ id: string | undefined; state: Record<string, unknown> }> {
        const ctx = this.registering;
        this.registering = undefined;
        if (!ctx) throw new Error(`executing mocks: ${args.type} ${args.name} registered outside the hooked monitor (call install())`);
        const base = this.baseRecord(ctx.urn, args.type, args.name, args.custom !== false, ctx.parent, ctx.dependencies);
        const inputs = (args.inputs ?? {}) as Record<string, unknown>;
        for (const [k, v] of Object.entries(inputs)) if (unwrapSecrets(v).secret) base.secretInputs.push(k);

        if (args.custom === false) {
            this.push({ ...base, status: "created" });
            return { id: undefined, state: inputs };
        }

        const injected = this.opts.injectFailure?.({ urn: ctx.urn, type: args.type, name: args.name });
        if (injected !== undefined) {
            this.failed = true;
            this.push({ ...base, status: "failed", error: injected });
            throw new Error(injected);
        }
        if (this.failed && !this.opts.continueOnError && (args.type === LOCAL_COMMAND || args.type === REMOTE_COMMAND || args.type === RANDOM_BYTES || args.type === TLS_PRIVATE_KEY)) {
            const message = "not run: an earlier resource failed (the engine stops scheduling after the first error)";
            this.push({ ...base, status: "skipped", error: message });
            throw new Error(message);
        }

        const pend: PendingCreate = { urn: ctx.urn, name: args.name, type: args.type, startedAt: base.startedAt };
        this.pending.set(ctx.urn, pend);
        try {
            let state: Record<string, unknown>;
            let record: CreateRecord;
            switch (args.type) {
                case LOCAL_COMMAND:
                case REMOTE_COMMAND: {
                    const plain = unwrapSecrets(inputs).value as Record<string, unknown>;
                    this.describeCommand(base, inputs, plain);
                    const script = str(plain.create);
                    let stdout = "";
                    let stderr = "";
                    if (script !== undefined) {
                        const out = await this.runScript(args.type, plain, script, undefined, pend);
                        stdout = out.stdout;
                        stderr = out.stderr;
                    }
                    this.stored.set(ctx.urn, { type: args.type, name: args.name, urn: ctx.urn, inputs: plain, stdout, stderr });
                    record = { ...base, status: "created", executed: script !== undefined, stdout, stderr };
                    state = { ...inputs, stdout, stderr };
                    if (args.type === REMOTE_COMMAND && inputs.connection !== undefined && !unwrapSecrets(inputs.connection).secret) {
                        state.connection = secretValue(inputs.connection);
                    }
                    break;
                }
                case RANDOM_BYTES: {
                    const length = Number(unwrapSecrets(inputs.length).value);
                    if (!Number.isInteger(length) || length < 1) throw new Error(`executing mocks: RandomBytes ${args.name}: length must be a positive integer, got ${String(inputs.length)}`);
                    const bytes = randomBytes(length);
                    record = { ...base, status: "created", executed: true, length };
                    state = { ...inputs, base64: secretValue(bytes.toString("base64")), hex: secretValue(bytes.toString("hex")) };
                    break;
                }
                case TLS_PRIVATE_KEY: {
                    const algorithm = unwrapSecrets(inputs.algorithm).value;
                    if (algorithm !== "ED25519") throw new Error(`executing mocks: tls PrivateKey ${args.name}: only algorithm ED25519 is supported, got ${String(algorithm)}`);
                    const pair = await ed25519KeyPair();
                    record = { ...base, status: "created", executed: true };
                    state = { ...inputs, privateKeyOpenssh: secretValue(pair.privateKeyOpenssh), publicKeyOpenssh: pair.publicKeyOpenssh };
                    break;
                }
                default: {
                    if (/^(command|random|tls):/.test(args.type)) {
                        throw new Error(`executing mocks: ${args.type} is not supported (${args.name}); extend test/harness/executing-mocks.ts`);
                    }
                    record = { ...base, status: "created" };
                    state = inputs;
                }
            }
            record.durationMs = Date.now() - base.startedAt;
            this.push(record);
            this.opts.log?.(`created ${args.type} ${args.name} (${record.durationMs} ms)`);
            if (this.opts.onCreated) {
                try {
                    await this.opts.onCreated(record);
                } catch (e) {
                    // The create itself happened (teardown still undoes it); the resource fails.
                    this.failed = true;
                    record.status = "failed";
                    record.error = `onCreated hook failed: ${e instanceof Error ? e.message : String(e)}`;
                    throw new HookError(record.error);
                }
            }
            return { id: `${args.name}-id`, state };
        } catch (e) {
            if (e instanceof HookError) throw new Error(e.message);
            const message = e instanceof Error ? e.message : String(e);
            this.failed = true;
            this.stored.delete(ctx.urn);
            this.push({ ...base, status: "failed", error: message, durationMs: Date.now() - base.startedAt });
            this.opts.log?.(`FAILED ${args.type} ${args.name}: ${message.split("\n")[0]}`);
            throw e instanceof Error ? e : new Error(message);
        } finally {
            this.pending.delete(ctx.urn);
        }
    }

    /** Creates still running (for timeout reports). */
    running(): { urn: string; name: string; type: string; forMs: number }[] {
        const now = Date.now();
        return [...this.pending.values()].map((p) => ({ urn: p.urn, name: p.name, type: p.type, forMs: now - p.startedAt }));
    }

    /** Kills the processes of creates still running and their descendants (only ours, by PID). */
    killRunning(): void {
        for (const p of this.pending.values()) {
            const pid = p.child?.pid;
            if (pid === undefined) continue;
            const tree = descendants(pid);
            killPid(pid, "SIGKILL");
            for (const d of tree) killPid(d, "SIGKILL");
        }
    }

    /** Any create failed (or was skipped). */
    get hasFailures(): boolean {
        return this.failed;
    }

    /**
     * Runs the `delete` scripts in reverse completion order with the inputs stored at create time (script,
     * environment, stdin, connection) and PULUMI_COMMAND_STDOUT/STDERR set to that resource's create outputs (unless
     * addPreviousOutputInEnv is false). Runs every delete even after a failure; throws one error listing every failure
     * unless `throwOnFailure` is false. A second call does nothing and returns the first result.
     */
    async teardown(
        opts: {
            throwOnFailure?: boolean;
            /** Runs before each delete script, e.g. to model what the real world does at that point. */
            beforeDelete?: (r: { urn: string; type: string; name: string }) => void | Promise<void>;
        } = {},
    ): Promise<TeardownResult> {
        if (!this.teardownResult) {
            // Everything whose create ran to completion (a resource failed only by the onCreated hook included).
            const order = this.records.filter((r) => this.stored.has(r.urn)).reverse();
            const failures: DeleteRecord[] = [];
            for (const r of order) {
                const s = this.stored.get(r.urn)!;
                const script = str(s.inputs.delete);
                if (script === undefined) continue;
                const started = Date.now();
                const d: DeleteRecord = { urn: s.urn, type: s.type, name: s.name, script, ok: true, durationMs: 0 };
                try {
                    await opts.beforeDelete?.({ urn: s.urn, type: s.type, name: s.name });
                    const out = await this.runScript(s.type, s.inputs, script, { stdout: s.stdout, stderr: s.stderr });
                    d.stdout = out.stdout;
                    d.stderr = out.stderr;
                    this.opts.log?.(`deleted ${s.type} ${s.name}`);
                } catch (e) {
                    d.ok = false;
                    d.error = e instanceof Error ? e.message : String(e);
                    failures.push(d);
                    this.opts.log?.(`DELETE FAILED ${s.type} ${s.name}: ${d.error.split("\n")[0]}`);
                }
                d.durationMs = Date.now() - started;
                this.deletes.push(d);
            }
            this.stored.clear();
            this.teardownResult = { deletes: [...this.deletes], failures };
        }
        const result = this.teardownResult;
        if (result.failures.length > 0 && opts.throwOnFailure !== false) {
            throw new Error(
                `teardown: ${result.failures.length} of ${result.deletes.length} deletes failed:\n` +
                    result.failures.map((f) => `- ${f.name} [${f.type}]: ${f.error}`).join("\n"),
            );
        }
        return result;
    }

    // ---- internals -------------------------------------------------------------------------------------------

    private baseRecord(urn: string, type: string, name: string, custom: boolean, parent: string | undefined, dependencies: string[]): CreateRecord {
        const parents: string[] = [];
        let p = parent;
        while (p) {
            parents.push(p);
            p = this.byUrn.get(p)?.parent;
        }
        return {
            seq: -1,
            urn,
            type,
            name,
            custom,
            parent,
            parents,
            dependencies: [...dependencies],
            status: "created",
            executed: false,
            secretInputs: [],
            startedAt: Date.now(),
            durationMs: 0,
        };
    }

    private push(r: CreateRecord): void {
        r.seq = this.records.length;
        this.records.push(r);
        this.byUrn.set(r.urn, r);
    }

    /** Copies the non-secret facts of a command's inputs into its record. */
    private describeCommand(rec: CreateRecord, raw: Record<string, unknown>, plain: Record<string, unknown>): void {
        rec.create = str(plain.create);
        rec.update = str(plain.update);
        rec.delete = str(plain.delete);
        if (Array.isArray(plain.interpreter)) rec.interpreter = plain.interpreter.map(String);
        rec.dir = str(plain.dir);
        if (plain.environment !== undefined) rec.environment = unwrapSecrets(raw.environment).secret ? "[secret]" : strMap(plain.environment);
        const stdin = str(plain.stdin) ?? "";
        rec.stdin = { present: stdin.length > 0, secret: unwrapSecrets(raw.stdin).secret, bytes: Buffer.byteLength(stdin) };
        if (typeof plain.addPreviousOutputInEnv === "boolean") rec.addPreviousOutputInEnv = plain.addPreviousOutputInEnv;
        if (plain.connection !== undefined) {
            const c = readConnection(plain.connection);
            rec.connection = { host: c.host, port: c.port, user: c.user };
        }
        for (const k of ["assetPaths", "archivePaths"]) {
            if (plain[k] !== undefined) throw new Error(`executing mocks: ${k} is not supported (${rec.name})`);
        }
    }

    /** Runs one script of a command resource; throws the provider-like error on failure. */
    private async runScript(
        type: string,
        inputs: Record<string, unknown>,
        script: string,
        previous: { stdout: string; stderr: string } | undefined,
        pend?: PendingCreate,
    ): Promise<{ stdout: string; stderr: string }> {
        const env: Record<string, string> = { ...(strMap(inputs.environment) ?? {}) };
        if (previous && inputs.addPreviousOutputInEnv !== false) {
            if (previous.stdout !== "") env.PULUMI_COMMAND_STDOUT = previous.stdout;
            if (previous.stderr !== "") env.PULUMI_COMMAND_STDERR = previous.stderr;
        }
        const stdin = str(inputs.stdin) ?? "";
        const onSpawn = (child: ChildProcess) => {
            if (pend) pend.child = child;
        };
        if (type === LOCAL_COMMAND) {
            const interp = Array.isArray(inputs.interpreter) && inputs.interpreter.length > 0 ? inputs.interpreter.map(String) : ["/bin/sh", "-c"];
            const r = await runProc(interp[0], [...interp.slice(1), script], {
                stdin,
                env: { ...process.env, ...env },
                cwd: str(inputs.dir) ?? this.opts.projectDir,
                onSpawn,
            });
            if (r.code !== 0) {
                const why = r.spawnError
                    ? `exec: ${goQuote(interp[0])}: ${r.spawnError.message}`
                    : r.code === null
                      ? `signal: ${r.signal === "SIGKILL" ? "killed" : r.signal === "SIGTERM" ? "terminated" : r.signal}`
                      : `exit status ${r.code}`;
                throw new Error(`${why}: running ${goQuote(script)}:\n${r.combined.toString("utf8")}`);
            }
            return { stdout: trimOneNewline(r.stdout.toString("utf8")), stderr: trimOneNewline(r.stderr.toString("utf8")) };
        }
        if (type === REMOTE_COMMAND) {
            return this.runRemote(readConnection(inputs.connection), script, stdin, env, onSpawn);
        }
        throw new Error(`executing mocks: cannot run scripts of ${type}`);
    }

    private async runRemote(
        c: Connection,
        script: string,
        stdin: string,
        env: Record<string, string>,
        onSpawn: (child: ChildProcess) => void,
    ): Promise<{ stdout: string; stderr: string }> {
        if (c.proxy !== undefined) throw new Error("executing mocks: remote.Command connection.proxy is not supported");
        if (c.privateKeyPassword !== undefined) throw new Error("executing mocks: encrypted private keys are not supported");
        if (c.privateKey === undefined) throw new Error("executing mocks: remote.Command needs connection.privateKey (password and agent auth are not supported)");
        const dir = mkdtempSync(join(tmpdir(), "exec-mocks-ssh-"));
        const keyFile = join(dir, "id");
        try {
            writeFileSync(keyFile, c.privateKey.endsWith("\n") ? c.privateKey : c.privateKey + "\n", { mode: 0o600 });
            const args = [
                "-F", "/dev/null", "-T",
                "-p", String(c.port), "-l", c.user, "-i", keyFile,
                "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null",
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR",
                "-o", `ConnectTimeout=${Math.max(1, Math.round(c.perDialTimeout))}`,
                "-o", "IdentitiesOnly=yes",
                "-o", "IdentityAgent=none",
                "-o", "PasswordAuthentication=no",
                "-o", "KbdInteractiveAuthentication=no",
                "-o", "ServerAliveInterval=15",
                ...Object.keys(env).flatMap((k) => ["-o", `SendEnv=${k}`]),
                "--", c.host, script,
            ];
            const cap = this.opts.maxDialRetries ?? 10;
            const limit = c.dialErrorLimit < 0 ? cap : Math.min(c.dialErrorLimit, cap);
            let delay = 250;
            for (let dial = 1; ; dial++) {
                const r = await runProc("ssh", args, { stdin, env: { ...process.env, ...env }, onSpawn });
                if (r.spawnError) throw new Error(`executing mocks: cannot run ssh: ${r.spawnError.message}`);
                if (isDialError(r)) {
                    if (dial > limit) {
                        throw new Error(`dial tcp ${c.host}:${c.port} (${dial} attempts): ${r.stderr.toString("utf8").trim()}`);
                    }
                    await sleep(delay);
                    delay = Math.min(delay * 2, 3000);
                    continue;
                }
                if (r.code !== 0) {
                    const why = r.code === null ? `Process killed by ${r.signal}` : `Process exited with status ${r.code}`;
                    throw new Error(`${why}: running ${goQuote(script)}:\n${r.combined.toString("utf8")}`);
                }
                return { stdout: trimOneNewline(r.stdout.toString("utf8")), stderr: trimOneNewline(r.stderr.toString("utf8")) };
            }
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    }
}

class HookError extends Error {}

interface RegisterRequest {
    getType(): string;
    getName(): string;
    getParent(): string;
    getCustom(): boolean;
    getDependenciesList(): string[];
}
