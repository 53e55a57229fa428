/**
 * Reads a stack file (stacks/Pulumi.<stack>.yaml) without the Pulumi CLI: the plain config keys of this project, and
 * the names of the keys set as secrets. Secret values (`secure: v1:...`) are never decrypted: they are left out.
 */
import { parse } from "yaml";
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

/** Parses the text of a Pulumi.<stack>.yaml file. */
export function parseStackFile(text: string): StackConfig {
    const doc = (parse(text) ?? {}) as { config?: Record<string, unknown> };
    const config = doc.config ?? {};
    return splitConfig(config, (k) => isSecure(config[k]));
}

/** Keys in `raw` that the program does not read: they go to validation, which names them as unknown. */
export function knownConfigKeys(): readonly string[] {
    return CONFIG_KEYS;
}
