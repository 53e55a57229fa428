/** Invalid config fails before any resource is registered, with every problem named. */
import { describe, expect, it } from "vitest";
import { installMocks, stackConfig } from "./recording-mocks";
import { loadStack } from "./run-under-mocks";

describe("invalid config under mocks", () => {
    it("throws a ConfigError naming field, value and fix, and registers nothing but the stack", async () => {
        const raw = loadStack("lab") as Record<string, any>;
        raw.guestCluster = { ...raw.guestCluster, name: "a-cluster-name-far-too-long", nodes: ["node1"] };
        raw.hosts = [{ ...raw.hosts[0], bridge: { name: "br-lab", address: "10.99.0.300/24" } }];
        const { config, secretKeys } = stackConfig(raw);
        const run = await installMocks("lab", config, secretKeys);
        const error: unknown = await import("../../index.js").then(() => undefined, (e: unknown) => e);
        await run.settle();
        expect(error).toBeInstanceOf(Error);
        const msg = String((error as Error).message);
        expect(msg).toMatch(/invalid stack config \(3 problems\)/);
        expect(msg).toContain('guestCluster.name: "a-cluster-name-far-too-long" is 27 characters; cman allows at most 15');
        expect(msg).toContain("guestCluster.nodes: has 1 node");
        expect(msg).toContain('hosts[0].bridge.address: "10.99.0.300/24" is not an IPv4 address in CIDR form');
        expect(run.records.filter((r) => r.type !== "pulumi:pulumi:Stack")).toEqual([]);
    });
});
