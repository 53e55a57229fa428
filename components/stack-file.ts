/**
 * Reads a stack file (stacks/Pulumi.<stack>.yaml) without the Pulumi CLI: the plain config keys of this project, and
 * the names of the keys set as secrets. Secret values (`secure: v1:...`) are never decrypted: they are left out.
 */
import { parseDocument } from "yaml";
import { CONFIG_KEYS, PROJECT } from "./config";

export interface StackConfig {
    /** The project's plain config keys, without the `kvm-ha-lab:` prefix. */
    raw: Record<string, unknown>;
    /** Keys (without prefix) whose value is a secret. */
    secretKeys: Set<string>;
}

function isSecure(value: unknown): boolean {
    return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && "secure" in value;
}

/**
 * Splits a project's config map (`kvm-ha-lab:key` → value) into plain values and secret key names. A key that is
 * neither a known config key nor a secret is reported by `validateLabConfig` as unknown.
 */
export function splitConfig(config: Record<string, unknown>, isSecret: (key: string) => boolean): StackConfig {
    const raw: Record<string, unknown> = {};
    const secretKeys = new Set<string>();
    for (const [fullKey, value] of Object.entries(config)) {
        const sep = fullKey.indexOf(":");
        const ns = sep < 0 ? PROJECT : fullKey.slice(0, sep);
        const key = sep < 0 ? fullKey : fullKey.slice(sep + 1);
        if (ns !== PROJECT) continue;
        if (isSecret(fullKey)) secretKeys.add(key);
        else raw[key] = value;
    }
    return { raw, secretKeys };
}

/** A stack file that is not YAML of the expected shape: `message` is one line naming the file, line and column. */
export class StackFileError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "StackFileError";
    }
}

function isMapping(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses the text of a Pulumi.<stack>.yaml file. `file` names it in errors. A YAML error (a tab in the indentation, a
 * bad indent, an unclosed quote) or a `config:` that is not a mapping throws StackFileError with one line:
 * `<file>:<line>:<column>: <what is wrong>; <how to fix it>`.
 */
export function parseStackFile(text: string, file = "stack file"): StackConfig {
    const doc = parseDocument(text, { prettyErrors: true });
    const error = doc.errors[0];
    if (error) {
        const at = error.linePos?.[0];
        const where = at ? `${file}:${at.line}:${at.col}` : file;
        const what = error.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
        const hint = /tab/i.test(what) ? "indent with spaces, never tabs" : "fix the YAML there (indentation is 2 spaces per level; quote values with ':' or '#')";
        throw new StackFileError(`${where}: YAML error: ${what}; ${hint}`);
    }
    const top: unknown = doc.toJS() ?? {};
    if (!isMapping(top)) throw new StackFileError(`${file}:1:1: a stack file is a YAML mapping with a \`config:\` key, not ${JSON.stringify(top)}`);
    const config: unknown = top.config ?? {};
    if (!isMapping(config)) throw new StackFileError(`${file}: \`config:\` must be a mapping of \`${PROJECT}:<key>: value\` entries, not ${JSON.stringify(config)}`);
    return splitConfig(config, (k) => isSecure(config[k]));
}

/** Keys in `raw` that the program does not read: they go to validation, which names them as unknown. */
export function knownConfigKeys(): readonly string[] {
    return CONFIG_KEYS;
}
