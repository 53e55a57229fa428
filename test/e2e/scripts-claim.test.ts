/**
 * claimScripts, run for real: a lab claims its bridge, fence port and key file on a host; a second lab wanting any of
 * them is refused before anything changes, naming the other lab; a second stack with the same lab name is refused;
 * delete removes only this stack's claim. Uses the real state root with test-only lab names.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { claimScripts, type Claim } from "../../components/scripts/claim";
import { dropState, missingPrereqs, ok, run, skipBecause, stateDirExists, stateFiles } from "./scripts-harness";

const A = "hsct-cla";
const B = "hsct-clb";
const skip = skipBecause("scripts-claim", missingPrereqs(["sed", "grep", "cmp"], () => (process.getuid?.() === 0 ? undefined : "root")));
const claims = (bridge: string, port: string, key: string): Claim[] => [
    { kind: "bridge", value: bridge },
    { kind: "udp-port", value: port },
    { kind: "key-file", value: key },
];

describe.skipIf(skip)("claim script", () => {
    const cleanup = () => {
        dropState(A);
        dropState(B);
    };
    beforeAll(cleanup);
    afterEach(cleanup);

    it("records the claim, is idempotent, and delete removes it", () => {
        const s = claimScripts(A, "stack-a", claims("br-a", "1229", "/etc/cluster/a.key"));
        ok(s.create);
        const first = stateFiles(A);
        expect(first.claims.split("\n").filter(Boolean).sort()).toEqual(
            ["stack stack-a", "bridge br-a", "udp-port 1229", "key-file /etc/cluster/a.key"].sort(),
        );
        ok(s.create);
        expect(stateFiles(A)).toEqual(first);
        ok(s.delete);
        expect(stateDirExists(A)).toBe(false);
    });

    it("refuses a second lab that wants the same bridge, port or key file, naming the lab, and changes nothing", () => {
        ok(claimScripts(A, "stack-a", claims("br-a", "1229", "/etc/cluster/a.key")).create);
        for (const [wanted, named] of [
            [claims("br-a", "1230", "/etc/cluster/b.key"), "bridge br-a (lab hsct-cla)"],
            [claims("br-b", "1229", "/etc/cluster/b.key"), "udp-port 1229 (lab hsct-cla)"],
            [claims("br-b", "1230", "/etc/cluster/a.key"), "key-file /etc/cluster/a.key (lab hsct-cla)"],
        ] as const) {
            const r = run(claimScripts(B, "stack-b", [...wanted]).create);
            expect(r.code).not.toBe(0);
            expect(r.stderr).toContain(`another lab on this host already uses ${named}`);
            expect(stateDirExists(B)).toBe(false);
        }
        ok(claimScripts(B, "stack-b", claims("br-b", "1230", "/etc/cluster/b.key")).create);
        expect(stateFiles(B).claims).toContain("bridge br-b");
    });

    it("refuses another stack with the same lab name, and its delete leaves the owner's claim", () => {
        ok(claimScripts(A, "stack-a", claims("br-a", "1229", "/etc/cluster/a.key")).create);
        const other = claimScripts(A, "stack-x", claims("br-x", "1231", "/etc/cluster/x.key"));
        const r = run(other.create);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain("lab name hsct-cla is already used on this host by stack stack-a");
        ok(other.delete);
        expect(stateFiles(A).claims).toContain("stack stack-a");
    });
});
