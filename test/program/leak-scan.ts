/**
 * Finds secrets where they must never be: in what a program run under the recording mocks shows to anyone who reads
 * a script, an environment, the Pulumi state or a log.
 *
 * - `secretForms` turns each secret into what to look for: the fence key as raw text (latin1 and utf8 decodings, any
 *   window of 32 characters), base64 (standard and url-safe) and hex (lower and upper case), any window worth 32 key
 *   bytes or more; any other secret whole, base64 and hex, plus each line of a multi-line secret (a PEM/OpenSSH body
 *   line) that is not armour.
 * - `exposures` lists every text a run makes visible, each with where it is: per command its create/update/delete,
 *   environment, triggers, interpreter and dir read through secret wrappers (a secret in a script text or an
 *   environment leaks even when Pulumi hides it in the state: the host sees it), its stdin only when not secret, its
 *   connection without the secret-wrapped values; every other recorded input and every registered component output
 *   outside secret wrappers; every program output not marked secret.
 * - `findLeaks` scans the exposures for the forms; `keyLocations` finds every place the key appears in the inputs at
 *   all (secret or not); `policyViolations` checks that a command whose stdin is secret turns logging off and keeps
 *   stdout/stderr secret.
 *
 * Run as a script (`tsx test/program/leak-scan.ts <variant>`), it runs the program under mocks for one of `VARIANTS`
 * and prints the run as JSON: vitest runs the program once per test file, so each variant needs its own process.
 */
import { readDomainsBundle } from "../../components/scripts/domains";
import { FAKE_KEY, isSecretValue, unwrap, type Recorded } from "./recording-mocks";
import { FAKE_SECRETS, loadStack, runUnderMocks, type ProgramRun } from "./run-under-mocks";

// ---------------------------------------------------------------- what a run shows

/** A program run under mocks, plus what components registered as their outputs (`registerOutputs`). */
export interface LeakRun extends ProgramRun {
    componentOutputs: { urn: string; outputs: Record<string, unknown> }[];
}

/** One text a run makes visible, and where. */
export interface Exposure {
    /** e.g. `command fence-key-kvm1 .create`, `output guestClusterConf`. */
    where: string;
    text: string;
}

/** Every string in a value (and every object key), with its path; `throughSecrets: false` skips secret wrappers. */
export function stringsIn(value: unknown, path: string, throughSecrets: boolean, out: Exposure[] = []): Exposure[] {
    if (isSecretValue(value)) {
        if (throughSecrets) stringsIn(value.value, `${path}<secret>`, throughSecrets, out);
    } else if (typeof value === "string") {
        out.push({ where: path, text: value });
    } else if (Buffer.isBuffer(value)) {
        out.push({ where: `${path}<buffer>`, text: value.toString("latin1") });
    } else if (Array.isArray(value)) {
        value.forEach((v, i) => stringsIn(v, `${path}[${i}]`, throughSecrets, out));
    } else if (typeof value === "object" && value !== null) {
        for (const [k, v] of Object.entries(value)) {
            out.push({ where: `${path}{key}`, text: k });
            stringsIn(v, `${path}.${k}`, throughSecrets, out);
        }
    } else if (typeof value === "number" || typeof value === "boolean") {
        out.push({ where: path, text: String(value) });
    }
    return out;
}

/** Inputs of a command that reach the machine as visible text: scanned through secret wrappers. */
export const COMMAND_TEXT_INPUTS = ["create", "update", "delete", "environment", "triggers", "interpreter", "dir"] as const;

export const isCommand = (r: Pick<Recorded, "type">) => r.type.startsWith("command:");

/** Every visible text of a run (see the header). */
export function exposures(run: LeakRun): Exposure[] {
    const out: Exposure[] = [];
    for (const r of run.records) {
        const at = `${isCommand(r) ? "command" : r.type} ${r.name} `;
        for (const [key, value] of Object.entries(r.inputs)) {
            if (isCommand(r) && (COMMAND_TEXT_INPUTS as readonly string[]).includes(key)) stringsIn(value, `${at}.${key}`, true, out);
            else stringsIn(value, `${at}.${key}`, false, out); // stdin, connection and any other input: secret wrappers skipped
        }
        // the domains command's stdin is compressed: its XMLs are scanned as the host reads them
        if (isCommand(r) && typeof r.inputs.stdin === "string" && /^WHAT='domains on /m.test(String(unwrap(r.inputs.create)).replace(/'\\''/g, "'"))) {
            for (const d of readDomainsBundle(r.inputs.stdin)) out.push({ where: `${at}.stdin<bundle ${d.name}>`, text: d.xml });
        }
    }
    for (const c of run.componentOutputs) stringsIn(c.outputs, `component outputs ${c.urn} `, false, out);
    for (const [name, o] of Object.entries(run.outputs)) if (!o.secret) stringsIn(o.value, `output ${name}`, false, out);
    return out;
}

// ---------------------------------------------------------------- what to look for

/** One secret's searchable forms: exact texts, and sliding windows (a set of strings of one length). */
export interface SecretForms {
    label: string;
    exact: { form: string; text: string }[];
    windows: { form: string; length: number; set: Set<string> }[];
}

function windowsOf(text: string, length: number): Set<string> {
    const set = new Set<string>();
    for (let i = 0; i + length <= text.length; i++) set.add(text.slice(i, i + length));
    return set;
}

/** Window sizes: 32 key bytes as raw characters, base64 (44 characters per 33 bytes) and hex (64 characters). */
export const KEY_WINDOW_BYTES = 32;

/** The fence key's forms: raw (latin1, utf8), base64 (standard, url-safe), hex (lower, upper), any 32-byte window. */
export function keyForms(key: Buffer, label = "fence key"): SecretForms {
    const b64 = key.toString("base64");
    const b64url = key.toString("base64url");
    const hex = key.toString("hex");
    const raw = [
        { form: "raw latin1", text: key.toString("latin1") },
        { form: "raw utf8", text: key.toString("utf8") },
    ];
    return {
        label,
        exact: [],
        windows: [
            ...raw.map((r) => ({ form: `${r.form} (${KEY_WINDOW_BYTES}-character window)`, length: KEY_WINDOW_BYTES, set: windowsOf(r.text, KEY_WINDOW_BYTES) })),
            { form: "base64 (44-character window)", length: 44, set: new Set([...windowsOf(b64, 44), ...windowsOf(b64url, 44)]) },
            { form: "hex (64-character window)", length: 64, set: new Set([...windowsOf(hex, 64), ...windowsOf(hex.toUpperCase(), 64)]) },
        ],
    };
}

/**
 * A text secret's forms: whole, base64, hex, and each line of 12 characters or more that is not PEM/OpenSSH armour
 * (`-----BEGIN ...-----`), so that a body line printed on its own is found too.
 */
export function textForms(label: string, secret: string): SecretForms {
    const lines = secret
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l.length >= 12 && !/^-----(BEGIN|END) [A-Z0-9 ]+-----$/.test(l) && l !== secret.trim());
    return {
        label,
        exact: [
            { form: "text", text: secret.trim() },
            { form: "base64", text: Buffer.from(secret).toString("base64") },
            { form: "hex", text: Buffer.from(secret).toString("hex") },
            ...lines.map((l) => ({ form: "line", text: l })),
        ],
        windows: [],
    };
}

/** The forms of the mocks' fence key and of every given text secret. */
export function secretForms(secrets: Record<string, string>, key: Buffer = FAKE_KEY): SecretForms[] {
    return [keyForms(key), ...Object.entries(secrets).map(([name, value]) => textForms(`secret ${name}`, value))];
}

/** The first place `text` shows one of the forms, or undefined. */
export function matchIn(text: string, forms: SecretForms): { form: string; at: number } | undefined {
    for (const e of forms.exact) {
        const at = text.indexOf(e.text);
        if (at >= 0) return { form: e.form, at };
    }
    for (const w of forms.windows) {
        for (let i = 0; i + w.length <= text.length; i++) if (w.set.has(text.slice(i, i + w.length))) return { form: w.form, at: i };
    }
    return undefined;
}

export interface Leak {
    secret: string;
    form: string;
    where: string;
    /** The matching text with some context, secrets cut short. */
    excerpt: string;
}

export function findLeaks(items: Exposure[], forms: SecretForms[]): Leak[] {
    const leaks: Leak[] = [];
    for (const item of items) {
        for (const f of forms) {
            const m = matchIn(item.text, f);
            if (m) leaks.push({ secret: f.label, form: m.form, where: item.where, excerpt: JSON.stringify(item.text.slice(Math.max(0, m.at - 20), m.at + 24)) });
        }
    }
    return leaks;
}

// ---------------------------------------------------------------- where the key goes, and how

/** Every input of every record where the fence key shows in any form, and whether it is inside a secret wrapper. */
export function keyLocations(run: Pick<LeakRun, "records">, forms: SecretForms): { record: string; path: string; secret: boolean }[] {
    const out: { record: string; path: string; secret: boolean }[] = [];
    for (const r of run.records) {
        for (const e of stringsIn(r.inputs, "", true)) {
            if (matchIn(e.text, forms)) out.push({ record: r.name, path: e.where, secret: e.where.includes("<secret>") });
        }
    }
    return out;
}

/** Commands whose stdin is secret must not stream their output, and must keep stdout and stderr secret. */
export function policyViolations(run: Pick<LeakRun, "records">): string[] {
    const out: string[] = [];
    for (const r of run.records.filter(isCommand)) {
        if (!isSecretValue(r.inputs.stdin)) continue;
        const logging = isSecretValue(r.inputs.logging) ? r.inputs.logging.value : r.inputs.logging;
        if (logging !== "none") out.push(`${r.name}: stdin is secret but logging is ${JSON.stringify(logging)}, not "none"`);
        for (const o of ["stdout", "stderr"]) {
            if (!r.additionalSecretOutputs.includes(o)) out.push(`${r.name}: stdin is secret but ${o} is not in additionalSecretOutputs (${JSON.stringify(r.additionalSecretOutputs)})`);
        }
    }
    return out;
}

// ---------------------------------------------------------------- the runs

export interface Variant {
    stack: string;
    raw: () => Record<string, unknown>;
    secrets: Record<string, string>;
}

export const VARIANTS: Record<string, Variant> = {
    /** Two SSH hosts, three guests with SSH, a host cluster whose fence devices have passwords. */
    dev: { stack: "dev", raw: () => loadStack("dev"), secrets: FAKE_SECRETS },
    /**
     * The local lab stack with SSH to both guests with the user's own key (not the lab's generated one): the fence key,
     * and the Pacemaker guest cluster's corosync authkey, corosync.conf and CIB, go to the guests too.
     */
    "lab-ssh-guests": {
        stack: "lab",
        raw: () => {
            const raw = structuredClone(loadStack("lab")) as { guests: Record<string, unknown>[] };
            raw.guests.forEach((g, i) => (g.ssh = { address: `10.99.0.${11 + i}`, privateKeySecret: "sshPrivateKey" }));
            return raw;
        },
        secrets: { sshPrivateKey: FAKE_SECRETS.sshPrivateKey },
    },
};

/**
 * A positive control: the lab stack with a fence password's text put into a plain config value (a disk path), where
 * the scan must find it (in the domain XML on stdin, the disk script, the component outputs).
 */
export const PLANTED: Variant & { planted: Record<string, string> } = {
    stack: "lab",
    raw: () => {
        const raw = structuredClone(loadStack("lab")) as { guests: { disks: { path: string }[] }[] };
        raw.guests[0].disks[0].path = `/var/lib/libvirt/images/${FAKE_SECRETS.ipmiPasswordKvm1}.qcow2`;
        return raw;
    },
    secrets: {},
    planted: { ipmiPasswordKvm1: FAKE_SECRETS.ipmiPasswordKvm1 },
};

/**
 * Runs one variant under the recording mocks in this process (once per process: the program is imported once), also
 * recording what components register as outputs.
 */
export async function runVariant(name: string): Promise<LeakRun> {
    const v = name === "planted" ? PLANTED : VARIANTS[name];
    if (!v) throw new Error(`unknown variant ${name}; have ${Object.keys(VARIANTS).join(", ")}, planted`);
    return runCapturing(v);
}

/** Runs a variant (of any test's own) under the recording mocks, recording what components register as outputs. */
export async function runCapturing(v: Variant): Promise<LeakRun> {
    const componentOutputs: LeakRun["componentOutputs"] = [];
    // The mock monitor keeps registerResourceOutputs to itself: record them on the way in.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks") as { MockMonitor: { prototype: Record<string, unknown> } };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const rpc = require("@pulumi/pulumi/runtime/rpc") as { deserializeProperties(s: unknown): Record<string, unknown> };
    const original = MockMonitor.prototype.registerResourceOutputs as (req: unknown, cb: unknown) => void;
    MockMonitor.prototype.registerResourceOutputs = function (this: unknown, req: { getUrn(): string; getOutputs(): unknown }, cb: unknown) {
        componentOutputs.push({ urn: req.getUrn(), outputs: req.getOutputs() ? rpc.deserializeProperties(req.getOutputs()) : {} });
        return original.call(this, req, cb);
    };
    const run = await runUnderMocks(v.stack, v.raw(), v.secrets);
    return { ...run, componentOutputs };
}

// `tsx test/program/leak-scan.ts <variant>` prints the run as JSON.
if (/leak-scan\.ts$/.test(process.argv[1] ?? "")) {
    runVariant(process.argv[2] ?? "dev").then(
        (run) => process.stdout.write(JSON.stringify(run)),
        (e: unknown) => {
            process.stderr.write(String(e instanceof Error ? e.stack : e));
            process.exit(1);
        },
    );
}
