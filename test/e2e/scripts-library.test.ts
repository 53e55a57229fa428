/**
 * The script library (components/scripts/library.ts) for real: installed once per machine by its own script (which
 * loads the library from its stdin), sourced by every other host script (run here as they are, not with the library written in), shared by labs
 * (each lab's marker counts as a reference: the file goes with the last lab), and a clear line when it is missing.
 */
import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STATE_ROOT } from "../../components/names";
import { libraryScripts } from "../../components/scripts/library";
import { hostScript, SCRIPT_LIBRARY, SCRIPT_LIBRARY_PATH, SCRIPT_LIBRARY_SHA256, sh } from "../../components/scripts/prelude";
import { dropState, missingPrereqs, run, skipBecause, stateDirExists, stateFiles } from "./scripts-harness";

const LAB_A = "hsct-liba";
const LAB_B = "hsct-libb";
const skip = skipBecause("scripts-library", missingPrereqs(["sha256sum"]));

/** A host script that uses the library's functions (a marker write and read). */
const probe = (lab: string) => hostScript(lab, "library probe", {}, sh`
m_put probe/value "$LAB"
printf 'read back %s\n' "$(m_get probe/value)"
m_del probe/value
`);

describe.skipIf(skip)("script library", () => {
    // Another lab's library on this machine (e.g. an e2e suite's own lab) is never touched by these tests.
    const otherUsers = () => run(`ls ${STATE_ROOT}/*/lib/${SCRIPT_LIBRARY_SHA256} 2>/dev/null`).stdout;
    let preexisting = "";

    beforeAll(() => {
        for (const lab of [LAB_A, LAB_B]) dropState(lab);
        preexisting = otherUsers();
    });
    afterAll(() => {
        for (const lab of [LAB_A, LAB_B]) dropState(lab);
    });

    it("a script run where the library is missing stops with one line before anything changes", () => {
        if (preexisting !== "") return expect(existsSync(SCRIPT_LIBRARY_PATH)).toBe(true);
        const r = run(probe(LAB_A), { asIs: true });
        expect(r.code).toBe(1);
        expect(r.stderr).toBe(
            `kvm-ha-lab[${LAB_A}] library probe: error: the shared script library ${SCRIPT_LIBRARY_PATH} is missing on this machine: it is installed by the lab's <machine>-lib step; run pulumi up again`,
        );
        expect(stateDirExists(LAB_A)).toBe(false);
    });

    it("is installed once, checked against its hash, sourced by every script, shared by labs and removed with the last", () => {
        const a = libraryScripts(LAB_A);
        const b = libraryScripts(LAB_B);
        // the library travels once, on stdin (create and delete both load it from there), never in the script text
        expect(a.stdin).toBe(SCRIPT_LIBRARY);
        for (const text of [a.create, a.delete]) expect(text).not.toContain("rmdir_pending() {");
        const bad = run(a.create, { stdin: `${a.stdin}# changed\n`, asIs: true });
        expect(bad.code).not.toBe(0);
        expect(bad.stderr).toMatch(/the script library on stdin is not the one with sha256 [0-9a-f]{64}/);

        for (let i = 0; i < 2; i++) {
            const r = run(a.create, { stdin: a.stdin, asIs: true });
            expect(r.code, r.stderr).toBe(0);
        }
        expect(readFileSync(SCRIPT_LIBRARY_PATH, "utf8")).toBe(SCRIPT_LIBRARY);
        expect(run(`stat -c '%a %u' ${SCRIPT_LIBRARY_PATH}`).stdout).toBe("644 0");
        expect(stateFiles(LAB_A)).toEqual({ [`lib/${SCRIPT_LIBRARY_SHA256}`]: `${SCRIPT_LIBRARY_PATH}\n` });
        const p = run(probe(LAB_A), { asIs: true });
        expect(p.code, p.stderr).toBe(0);
        expect(p.stdout).toBe(`read back ${LAB_A}`);

        expect(run(b.create, { stdin: b.stdin, asIs: true }).code).toBe(0);
        expect(run(a.delete, { stdin: a.stdin, asIs: true }).code).toBe(0);
        expect(stateDirExists(LAB_A)).toBe(false);
        expect(existsSync(SCRIPT_LIBRARY_PATH)).toBe(true);
        expect(run(probe(LAB_B), { asIs: true }).stdout).toBe(`read back ${LAB_B}`);
        expect(run(b.delete, { stdin: b.stdin, asIs: true }).code).toBe(0);
        expect(run(b.delete, { stdin: b.stdin, asIs: true }).code).toBe(0);
        expect(stateDirExists(LAB_B)).toBe(false);
        expect(existsSync(SCRIPT_LIBRARY_PATH)).toBe(preexisting !== "");
        expect(existsSync(`${STATE_ROOT}/.lib-lock`)).toBe(false);
        if (preexisting === "") expect(existsSync(`${STATE_ROOT}/.lib`)).toBe(false);
    });
});
