/**
 * The README read as a newcomer reads it: the first screen (up to "## What it builds") says how to run the lab as
 * root, what the lab gives after `up` and what it does not, how to reach a guest's console, how to prove fencing by
 * hand, what the stack outputs are (exactly the program's exports), and how to tear down with one command; every
 * `pulumi config set` names its stack; no reference points at documents outside the repository.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULTS } from "../../components/defaults";
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

describe("README, configuration reference", () => {
    const from = README.indexOf("\n## Configuration reference");
    const REFERENCE = README.slice(from, README.indexOf("\n## ", from + 1));

    /** The fields of a table row's first cell: "`a.b` / `.c`" is a.b and a.c; "`disks[].format`" is disks.format. */
    function fieldsOf(cell: string): string[] {
        const names = cell.split(" / ").map((c) => c.replace(/`/g, "").replace(/\[\]/g, ""));
        const parent = names[0].split(".").slice(0, -1).join(".");
        return names.map((n) => (n.startsWith(".") ? parent + n : n));
    }

    /** The reference's table rows under a top-level key's heading: each field with its default cell. */
    function tableDefaults(top: string): Map<string, string> {
        const heading = top === "xmlDir" ? "\n### Other keys" : `\n### \`${top}\``;
        const at = REFERENCE.indexOf(heading);
        if (at < 0) return new Map();
        const next = REFERENCE.indexOf("\n### ", at + 1);
        const out = new Map<string, string>();
        for (const m of REFERENCE.slice(at, next < 0 ? undefined : next).matchAll(/^\| (.+?) \| .+ \| (.+?) \|$/gm)) {
            const fields = fieldsOf(m[1]);
            const values = m[2].split(" / ");
            fields.forEach((f, i) => out.set(f, values.length === fields.length ? values[i] : m[2]));
        }
        return out;
    }

    /** Every leaf of an object with its path. */
    function leaves(value: unknown, path: string[] = []): [string[], unknown][] {
        if (typeof value !== "object" || value === null) return [[path, value]];
        return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
    }

    // Defaults the README states in a sentence or a cell for several keys, not as `field | … | value`.
    const IN_PROSE: Record<string, RegExp> = {
        "cluster.stack": /`cman` \(the default/,
        "cluster.fenceDelay.seconds": /\| `fenceDelay` \|.*\| two nodes: the first node, 15 s \|/,
        "cluster.fenceDaemon.postJoinDelay": /\| `fenceDaemon` \| `\{postJoinDelay, postFailDelay, cleanStart\}`.*\| `30`, `0`, unset \|/,
        "cluster.fenceDaemon.postFailDelay": /\| `fenceDaemon` \| `\{postJoinDelay, postFailDelay, cleanStart\}`.*\| `30`, `0`, unset \|/,
        "guests.imageDiskDir": /required; with `image`: `\/var\/lib\/libvirt\/images\/<name>\.qcow2`/,
    };

    it("shows every default of components/defaults.ts, with its value", () => {
        const inTables: string[] = [];
        for (const [path, value] of leaves(DEFAULTS)) {
            const key = path.join(".");
            const [top, ...rest] = path;
            const cell = tableDefaults(top).get(top === "xmlDir" ? key : rest.join("."));
            if (IN_PROSE[key] !== undefined) expect(README, key).toMatch(IN_PROSE[key]);
            else if (cell !== undefined) {
                expect(cell, `${key}: the README's default is ${cell}`).toContain(`\`${String(value)}\``);
                inTables.push(key);
            } else {
                // the defaults of list items' keys: one sentence under their table, `key: value` each
                expect(REFERENCE, `${key}: the README names no default \`${path[path.length - 1]}: ${String(value)}\``).toContain(`\`${path[path.length - 1]}: ${String(value)}\``);
            }
        }
        expect(inTables.length, "defaults found in the tables").toBeGreaterThanOrEqual(20);
    });
});
