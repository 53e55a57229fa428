/**
 * Runs index.ts under recording mocks in this process and returns what it registered and exported.
 * Used by the program tests directly (one run per test file: vitest isolates files) and, through
 * dump-program.ts, in child processes to compare two independent runs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseStackFile } from "../../components/stack-file";
import { installMocks, stackConfig, valueOf, type Recorded } from "./recording-mocks";

export const ROOT = join(__dirname, "..", "..");

/** Fake secret values for every secret a stack may name. */
export const FAKE_SECRETS: Record<string, string> = {
    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE-SSH-KEY-FOR-TESTS-ONLY\n-----END OPENSSH PRIVATE KEY-----\n",
    ipmiPasswordKvm1: "fake-ipmi-password-kvm1",
    ipmiPasswordKvm2: "fake-ipmi-password-kvm2",
};

export interface ProgramRun {
    records: Recorded[];
    outputs: Record<string, { value: unknown; secret: boolean }>;
}

export function loadStack(stack: string): Record<string, unknown> {
    return parseStackFile(readFileSync(join(ROOT, "stacks", `Pulumi.${stack}.yaml`), "utf8")).raw;
}

export async function runUnderMocks(
    stack: string,
    raw: Record<string, unknown>,
    secrets: Record<string, string> = {},
): Promise<ProgramRun> {
    const { config, secretKeys } = stackConfig(raw, secrets);
    const run = await installMocks(stack, config, secretKeys);
    const program = await import("../../index.js");
    await run.settle();
    const outputs: ProgramRun["outputs"] = {};
    for (const [k, v] of Object.entries(program)) {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        outputs[k] = v && typeof v === "object" && "apply" in (v as any) ? await valueOf(v as never) : { value: v, secret: false };
    }
    return { records: run.records, outputs };
}
