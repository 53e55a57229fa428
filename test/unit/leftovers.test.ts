/**
 * The e2e suites' baseline guard (test/e2e/machine-state.ts assertNoLeftovers): a fence_virtd still running with a
 * lab's config is a leftover, named with its pid; another lab's, or none, is not.
 */
import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { labNames } from "../../components/names";
import { assertNoLeftovers } from "../e2e/machine-state";

describe("assertNoLeftovers", () => {
    const LAB = `leftover-probe-${process.pid}`;
    let child: ReturnType<typeof spawn> | undefined;
    afterEach(() => {
        child?.kill("SIGKILL");
        child = undefined;
    });

    function fakeFenceVirtd(lab: string): Promise<number> {
        // a process whose command line reads like the lab's fence_virtd: node with those words as arguments
        child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", "fence_virtd", "-f", labNames(lab).fenceVirtd.configFile], { stdio: "ignore" });
        return new Promise((res) => setTimeout(() => res(child!.pid!), 300));
    }

    it("passes on a clean machine", () => {
        expect(() => assertNoLeftovers(LAB, "kvmlab-nobr0")).not.toThrow();
    });

    it("names a fence_virtd still running with the lab's config, by pid", async () => {
        const pid = await fakeFenceVirtd(LAB);
        expect(() => assertNoLeftovers(LAB, "kvmlab-nobr0")).toThrow(new RegExp(`leftovers of an earlier run of lab ${LAB}: fence_virtd pid ${pid} `));
        // another lab's daemon is not this lab's leftover
        expect(() => assertNoLeftovers(`${LAB}-other`, "kvmlab-nobr0")).not.toThrow();
    });

    it("names a bridge of the lab's name", () => {
        expect(() => assertNoLeftovers(LAB, "lo")).toThrow(/\/sys\/class\/net\/lo/);
    });
});
