/**
 * Stack config for runProgram: read stacks/Pulumi.<stack>.yaml (secure values left out), change what a test needs,
 * and turn it into the map `pulumi.runtime.setAllConfig` takes (full keys; objects and arrays as JSON text, as the
 * Pulumi CLI passes them).
 *
 *   const values = loadStackValues("lab");                       // { hosts: [...], guests: [...], guestCluster: {...} }
 *   values.guests = (values.guests as Guest[]).map((g) => ({ ...g, domainType: "qemu", ssh: { address: "10.99.0.11" } }));
 *   const { config, secretKeys } = toPulumiConfig(values, { sshPrivateKey: endpoint.privateKey });
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseStackFile } from "../../components/stack-file";

export const PROJECT_ROOT = join(__dirname, "..", "..");

/** Plain config values of a stack file, keys without the project prefix. Secure (encrypted) values are omitted. */
export function loadStackValues(stack: string, stacksDir = join(PROJECT_ROOT, "stacks")): Record<string, unknown> {
    const parsed = parseStackFile(readFileSync(join(stacksDir, `Pulumi.${stack}.yaml`), "utf8"));
    return structuredClone(parsed.raw);
}

/**
 * Builds setAllConfig's arguments. `values` and `secrets` use keys without prefix (or full `ns:key` keys, kept as
 * given); `secrets` are listed in `secretKeys`.
 */
export function toPulumiConfig(
    values: Record<string, unknown>,
    secrets: Record<string, unknown> = {},
    project = "kvm-ha-lab",
): { config: Record<string, string>; secretKeys: string[] } {
    const full = (k: string) => (k.includes(":") ? k : `${project}:${k}`);
    const text = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) if (v !== undefined) config[full(k)] = text(v);
    const secretKeys: string[] = [];
    for (const [k, v] of Object.entries(secrets)) {
        if (v === undefined) continue;
        config[full(k)] = text(v);
        secretKeys.push(full(k));
    }
    return { config, secretKeys };
}
