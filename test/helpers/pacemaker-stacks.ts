/**
 * The project's stacks with their clusters on the Pacemaker stack, for the tests of the Pacemaker renderers and
 * crm_simulate: `pacemakerRaw(stack, edit)` is the stack file's config with `guestCluster.stack` (and
 * `hostCluster.stack`) set to pacemaker (the lab's nodes get their addresses on br-lab's network, which corosync needs),
 * then changed by `edit`; `pacemakerSpec` validates it.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { validateLabConfig } from "../../components/config";
import type { LabSpec } from "../../components/spec";
import { parseStackFile } from "../../components/stack-file";

const ROOT = resolve(__dirname, "../..");
export type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The secret config keys each stack names (validation requires them to be set). */
export const STACK_SECRETS: Record<"lab" | "dev", Set<string>> = {
    lab: new Set(),
    dev: new Set(["sshPrivateKey", "ipmiPasswordKvm1", "ipmiPasswordKvm2"]),
};

export function rawStack(stack: "lab" | "dev"): Raw {
    return structuredClone(parseStackFile(readFileSync(join(ROOT, `stacks/Pulumi.${stack}.yaml`), "utf8")).raw) as Raw;
}

export function pacemakerRaw(stack: "lab" | "dev", edit: (raw: Raw) => void = () => {}): Raw {
    const raw = rawStack(stack);
    raw.guestCluster.stack = "pacemaker";
    if (raw.hostCluster) raw.hostCluster.stack = "pacemaker";
    if (stack === "lab") raw.guests.forEach((g: Raw, i: number) => (g.address ??= `10.99.0.${11 + i}`));
    edit(raw);
    return raw;
}

export function specOf(stack: "lab" | "dev", raw: Raw): LabSpec {
    return validateLabConfig(raw, { stack, secretKeys: STACK_SECRETS[stack], readFile: () => undefined });
}

export function pacemakerSpec(stack: "lab" | "dev", edit: (raw: Raw) => void = () => {}): LabSpec {
    return specOf(stack, pacemakerRaw(stack, edit));
}
