/**
 * The README read as a newcomer reads it: the first screen (up to "## What it builds") says how to run the lab as
 * root, what the lab gives after `up` and what it does not, how to reach a guest's console, how to prove fencing by
 * hand, what the stack outputs are (exactly the program's exports), and how to tear down with one command; every
 * `pulumi config set` names its stack; no reference points at documents outside the repository.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseStackFile } from "../../components/stack-file";

const ROOT = resolve(__dirname, "../..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const FIRST_SCREEN = README.slice(0, README.indexOf("\n## What it builds"));
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

describe("README, first screen", () => {
    it("exists and comes before the reference", () => {
        expect(README.indexOf("\n## What it builds")).toBeGreaterThan(0);
        expect(README.indexOf("\n## Configuration reference")).toBeGreaterThan(FIRST_SCREEN.length);
    });

    it("says to run as root, and how with sudo", () => {
        expect(FIRST_SCREEN).toMatch(/as \*\*root\*\*/);
        expect(FIRST_SCREEN).toMatch(/sudo -E npm run lab/);
    });

    it("shows the commands that exist: run, outputs, console, destroy", () => {
        for (const cmd of ["npm run lab", "pulumi stack output --stack lab", "virsh console node1", "npm run destroy"]) expect(FIRST_SCREEN).toContain(cmd);
        expect(pkg.scripts.lab).toBeDefined();
        expect(pkg.scripts.destroy).toBeDefined();
    });

    it("says what the lab gives after up, and whether the default guests boot an OS, as the lab stack has it", () => {
        expect(FIRST_SCREEN).toMatch(/\*\*What you get after `up` today\*\*/);
        const lab = parseStackFile(readFileSync(join(ROOT, "stacks/Pulumi.lab.yaml"), "utf8")).raw as { guests: { image?: string }[] };
        const boots = lab.guests.every((g) => g.image !== undefined);
        if (boots) {
            expect(FIRST_SCREEN).not.toMatch(/boot no operating system/);
            expect(FIRST_SCREEN).toMatch(/`npm run image` builds it/);
            expect(FIRST_SCREEN).toMatch(/ssh -i lab\.key root@10\.99\.0\.11/);
        } else expect(FIRST_SCREEN).toMatch(/\*\*What you do not get yet\*\*: the default guests boot no operating system/);
        expect(FIRST_SCREEN).toMatch(/\*\*What you do not get yet\*\*/);
    });

    it("shows how to prove fencing by hand: fence_xvm from node1, virsh domstate on the host", () => {
        expect(FIRST_SCREEN).toMatch(/fence_xvm -o list/);
        expect(FIRST_SCREEN).toMatch(/fence_xvm -H node2 -o reboot/);
        expect(FIRST_SCREEN).toMatch(/virsh domstate node2/);
    });

    it("lists exactly the stack outputs the program exports", () => {
        const exported = [...readFileSync(join(ROOT, "index.ts"), "utf8").matchAll(/^export const (\w+)/gm)].map((m) => m[1]).sort();
        expect(exported.length).toBeGreaterThan(0);
        const table = FIRST_SCREEN.slice(FIRST_SCREEN.indexOf("**Stack outputs**"));
        const documented = [...table.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]).sort();
        expect(documented).toEqual(exported);
    });
});

describe("README, everywhere", () => {
    it("every pulumi config set names its stack", () => {
        const sets = README.split("\n").filter((l) => /pulumi config set\b/.test(l) && !/`pulumi config set`/.test(l));
        expect(sets.length).toBeGreaterThan(0);
        for (const l of sets) expect(l).toMatch(/--stack \S+/);
    });

    it("points at no document outside the repository", () => {
        expect(README).not.toMatch(/\bseed \d+|\bseeds?\/|\bissue #?\d+|\bitem \d+/i);
    });

    it("documents every npm script a user runs", () => {
        for (const s of ["lab", "destroy", "render", "bench"]) expect(README).toMatch(new RegExp(`npm run (--silent )?${s}\\b`));
        expect(README).toContain("npm test");
    });
});
