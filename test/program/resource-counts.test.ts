/**
 * How many resources and dependency edges the program registers, as the README's formulas say (section "Cost: resources
 * and edges"), checked against the program under mocks for synthetic labs of several sizes (scripts/bench-lab.ts: every
 * guest reached over SSH, the first 16 guests in the guest cluster, the hosts clustered when 2-16 of them, a VM
 * service for each guest outside the guest cluster). Both grow with hosts + guests: no term multiplies them.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { syntheticLab } from "../../scripts/bench-lab";
import { ROOT } from "./run-under-mocks";

interface Counts {
    resources: number;
    edges: number;
}

/**
 * The README's formulas for a cman lab without disks to create, seeds, installPackages, guards or a lab SSH key:
 * H hosts, G guests (S reached over SSH, here all), N guest cluster nodes reached over SSH, M guests started by the host
 * cluster (VM services), hc = 1 with a host cluster.
 */
export function expectedCounts(H: number, G: number, N: number, M: number, hc: 0 | 1): Counts {
    const S = G;
    return {
        resources: 6 + 10 * H + G + 3 * S + (G - M) + N + hc * (1 + H),
        edges: 26 * H + 5 * S + 2 * (G - M) + (5 * N - 1) + hc * (4 * H - 1),
    };
}

function measured(H: number, G: number, hostCluster: boolean): Counts {
    const args = [join(ROOT, "scripts", "bench-program.ts"), String(H), String(G), ...(hostCluster ? [] : ["--no-host-cluster"])];
    const r = spawnSync(process.execPath, ["--import", "tsx", ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    if (r.status !== 0) throw new Error(`bench-program.ts ${args.slice(1).join(" ")} exited ${r.status}: ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as Counts;
    return { resources: out.resources, edges: out.edges };
}

const SIZES: [number, number, boolean][] = [
    [1, 2, false],
    [2, 4, false],
    [2, 4, true],
    [3, 7, false],
    [3, 7, true],
    [3, 20, true], // 16 guest cluster nodes, 4 guests started by the host cluster
    [17, 20, false], // more hosts than cman's 16: no host cluster
];

describe("resources and dependency edges grow with hosts + guests, as the README's formulas say", () => {
    for (const [H, G, withHc] of SIZES) {
        it(`${H} hosts x ${G} guests, ${withHc ? "with" : "without"} a host cluster`, () => {
            const { raw } = syntheticLab(H, G);
            if (!withHc) delete raw.hostCluster;
            const hc = raw.hostCluster as { vmServices: unknown[] } | undefined;
            expect(hc !== undefined, "the synthetic lab has a host cluster exactly when asked").toBe(withHc);
            const N = (raw.guestCluster as { nodes: string[] }).nodes.length;
            const M = hc?.vmServices.length ?? 0;
            expect(measured(H, G, withHc)).toEqual(expectedCounts(H, G, N, M, withHc ? 1 : 0));
        }, 130_000);
    }
});
