/**
 * The record → timing computation the real-guest e2e and `npm run bench -- --real-guests` share
 * (test/harness/up-timings.ts).
 */
import { describe, expect, it } from "vitest";
import { bootToSshMs, createdAt, seconds, type TimedRecord } from "../harness/up-timings";

const rec = (name: string, startedAt: number, durationMs: number, status: TimedRecord["status"] = "created"): TimedRecord => ({ name, startedAt, durationMs, status });

describe("up timings from the harness's create records", () => {
    it("boot to SSH runs from the end of <guest>-start to the end of <guest>-ssh-ready", () => {
        const records = [rec("node1-start", 1_000, 500), rec("node2-start", 1_200, 900), rec("node2-ssh-ready", 2_100, 30_000), rec("node1-ssh-ready", 1_500, 41_000)];
        expect(bootToSshMs(records, "node1")).toBe(1_500 + 41_000 - 1_500);
        expect(bootToSshMs(records, "node2")).toBe(2_100 + 30_000 - 2_100);
        expect(createdAt(records, "node2-start")).toBe(2_100);
    });

    it("says nothing for a guest that did not answer, did not start, or is not there", () => {
        const records = [rec("node1-start", 0, 10), rec("node1-ssh-ready", 10, 300_000, "failed"), rec("node2-ssh-ready", 0, 5)];
        expect(bootToSshMs(records, "node1")).toBeUndefined();
        expect(bootToSshMs(records, "node2")).toBeUndefined();
        expect(bootToSshMs(records, "node3")).toBeUndefined();
        expect(bootToSshMs([rec("node1-start", 0, 10, "skipped"), rec("node1-ssh-ready", 10, 5)], "node1")).toBeUndefined();
    });

    it("prints seconds with one decimal", () => {
        expect(seconds(41_349)).toBe("41.3 s");
        expect(seconds(0)).toBe("0.0 s");
    });
});
