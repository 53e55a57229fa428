/**
 * Mocks for program tests: the Pulumi engine cannot run here, so `pulumi.runtime.setMocks` stands in for it.
 * Every registered resource is recorded with what the engine would see: type, name, parent URN, the URNs it depends
 * on, its inputs (secret inputs stay marked), and its resource options that matter here (deleteBeforeReplace,
 * additionalSecretOutputs). The mock monitor does not pass parents or dependencies to `newResource`, so the recorder
 * wraps the monitor's `registerResource` to read them from the real request.
 */
import * as pulumi from "@pulumi/pulumi";

export const PROJECT = "kvm-ha-lab";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

/** A deterministic stand-in for the fence key, so leak tests know what to look for. */
export const FAKE_KEY = Buffer.alloc(4096, "kvm-ha-lab fake fence key 0123456789 ");
/** The lab's SSH key pair as the mocks return it from tls PrivateKey (fake: never a usable key). */
export const FAKE_LAB_KEY = {
    privateKeyOpenssh: "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE-LAB-SSH-KEY-FOR-TESTS-ONLY\n-----END OPENSSH PRIVATE KEY-----\n",
    publicKeyOpenssh: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEZBS0UtTEFCLUtFWS1GT1ItVEVTVFMtT05MWS0xMjM0\n",
};

export interface Recorded {
    type: string;
    name: string;
    urn: string;
    parent: string;
    dependencies: string[];
    deleteBeforeReplace: boolean;
    additionalSecretOutputs: string[];
    /** Inputs as deserialized by the mock monitor: secrets are `{ secret: true, value }`. */
    inputs: Record<string, unknown>;
}

export function isSecretValue(v: unknown): v is { [k: string]: unknown; value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** Removes secret wrappers (for comparing plain structure). */
export function unwrap(v: unknown): unknown {
    if (isSecretValue(v)) return unwrap(v.value);
    if (Array.isArray(v)) return v.map(unwrap);
    if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]));
    return v;
}

export interface MockRun {
    records: Recorded[];
    /** Resolves once every registration seen so far has been answered. */
    settle(): Promise<void>;
}

/**
 * Installs recording mocks and the given config. Call BEFORE importing the program (`await import("../../index")`).
 * `config` maps full keys (`kvm-ha-lab:hosts`) to values; objects are passed as JSON text, as the engine does.
 */
export async function installMocks(
    stack: string,
    config: Record<string, unknown>,
    secretKeys: string[] = [],
    opts: {
        /** What a command prints, by resource name (default: nothing). */
        commandStdout?: (name: string) => string;
    } = {},
): Promise<MockRun> {
    const records: Recorded[] = [];
    const pending = new Set<Promise<unknown>>();
    await pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                const state: Record<string, unknown> = { ...args.inputs };
                if (args.type === "random:index/randomBytes:RandomBytes") {
                    state.base64 = { [SIG_KEY]: SECRET_SIG, value: FAKE_KEY.toString("base64") };
                    state.hex = { [SIG_KEY]: SECRET_SIG, value: FAKE_KEY.toString("hex") };
                }
                if (args.type === "tls:index/privateKey:PrivateKey") {
                    // Mocks do not apply additionalSecretOutputs: the private key is marked secret here.
                    state.privateKeyOpenssh = { [SIG_KEY]: SECRET_SIG, value: FAKE_LAB_KEY.privateKeyOpenssh };
                    state.privateKeyPem = { [SIG_KEY]: SECRET_SIG, value: FAKE_LAB_KEY.privateKeyOpenssh };
                    state.publicKeyOpenssh = FAKE_LAB_KEY.publicKeyOpenssh;
                }
                if (args.type.startsWith("command:")) {
                    state.stdout = opts.commandStdout?.(args.name) ?? "";
                    state.stderr = "";
                }
                return { id: args.custom ? `${args.name}-id` : undefined, state };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                return args.inputs;
            },
        },
        PROJECT,
        stack,
        false,
    );
    pulumi.runtime.setAllConfig(
        Object.fromEntries(Object.entries(config).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])),
        secretKeys,
    );
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const monitor = (pulumi.runtime as any).getMonitor();
    const original = monitor.registerResource.bind(monitor);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    monitor.registerResource = (req: any, callback: (err: unknown, resp: any) => void) => {
        const p = new Promise((resolve) => {
            // eslint-disable-next-line @typescript-eslint/no-explicit-any
            original(req, (err: unknown, resp: any) => {
                if (!err) {
                    const rpc = require("@pulumi/pulumi/runtime/rpc");
                    records.push({
                        type: req.getType(),
                        name: req.getName(),
                        urn: resp.getUrn(),
                        parent: req.getParent(),
                        dependencies: [...req.getDependenciesList()].sort(),
                        deleteBeforeReplace: req.getDeletebeforereplace(),
                        additionalSecretOutputs: [...req.getAdditionalsecretoutputsList()],
                        inputs: rpc.deserializeProperties(req.getObject()),
                    });
                }
                callback(err, resp);
                resolve(undefined);
            });
        });
        pending.add(p);
        void p.then(() => pending.delete(p));
    };
    return {
        records,
        async settle() {
            // Registrations chain (children after parents, dependents after dependencies): wait until quiet.
            for (let quiet = 0; quiet < 5; ) {
                await new Promise((r) => setTimeout(r, 20));
                if (pending.size === 0) quiet++;
                else {
                    quiet = 0;
                    await Promise.all([...pending]);
                }
            }
        },
    };
}

/** Awaits an Output's value with a timeout (an Output that never resolves must fail the test, not hang it). */
export function valueOf<T>(output: pulumi.Output<T>, timeoutMs = 10_000): Promise<{ value: T; secret: boolean }> {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("output did not resolve in time")), timeoutMs);
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const o = output as any;
        Promise.all([o.promise(), o.isSecret])
            .then(([value, secret]: [T, boolean]) => {
                clearTimeout(timer);
                resolve({ value, secret });
            })
            .catch((e: unknown) => {
                clearTimeout(timer);
                reject(e);
            });
    });
}

/** The stack config of a stack file, as full keys, plus fake values for its secrets. */
export function stackConfig(raw: Record<string, unknown>, secrets: Record<string, string> = {}): { config: Record<string, unknown>; secretKeys: string[] } {
    const config: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) config[`${PROJECT}:${k}`] = v;
    for (const [k, v] of Object.entries(secrets)) config[`${PROJECT}:${k}`] = v;
    return { config, secretKeys: Object.keys(secrets).map((k) => `${PROJECT}:${k}`) };
}
