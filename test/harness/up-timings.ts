/**
 * Times read from the executing harness's create records of an applied lab (runProgram's `records`), one definition
 * shared by the real-guest e2e (test/e2e/real-guests.test.ts, which prints them) and `npm run bench -- --real-guests`
 * (scripts/bench-guests.ts, which reports them). Nothing here asserts a number.
 *
 *   const ms = bootToSshMs(run.records, "node1");   // undefined when the guest did not get that far
 *   console.log(`node1 boot to SSH ${seconds(ms)}`); // "node1 boot to SSH 41.3 s"
 */
import type { CreateRecord } from "./executing-mocks";

export type TimedRecord = Pick<CreateRecord, "name" | "status" | "startedAt" | "durationMs">;

/** When the create named `name` finished (epoch ms), or undefined when there is none or it did not succeed. */
export function createdAt(records: readonly TimedRecord[], name: string): number | undefined {
    const r = records.find((x) => x.name === name);
    return r && r.status === "created" ? r.startedAt + r.durationMs : undefined;
}

/**
 * A guest's boot to SSH: from the end of its `<guest>-start` command (libvirt started the domain) to the end of its
 * `<guest>-ssh-ready` command (the readiness probe saw the guest's sshd answer). undefined when either is missing or
 * failed (a guest that did not boot, or one the cluster starts, which has no `-start`).
 */
export function bootToSshMs(records: readonly TimedRecord[], guest: string): number | undefined {
    const started = createdAt(records, `${guest}-start`);
    const ready = createdAt(records, `${guest}-ssh-ready`);
    return started !== undefined && ready !== undefined ? ready - started : undefined;
}

/** Milliseconds as seconds with one decimal: "41.3 s". */
export function seconds(ms: number): string {
    return `${(ms / 1000).toFixed(1)} s`;
}
