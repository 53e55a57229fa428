/**
 * The commands a newcomer runs first, on a fresh clone: `npm run lab` / `npm run destroy` (scripts/lab.sh), and
 * `npm run render` / `npm run bench` (scripts/run-ts.sh) — without node_modules, without the Pulumi CLI, and with a
 * stack file that is not valid YAML. Each runs on a copy of the repository's tracked files in a temporary folder, with
 * `npm` and `pulumi` replaced by recording stand-ins on PATH where the test needs to see what would run.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");
let base = "";

/** A fresh clone's files (what git tracks) in a new folder, without node_modules. */
function freshClone(tag: string): string {
    const dir = join(base, tag);
    const files = spawnSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" }).stdout.split("\0").filter((f) => f !== "");
    for (const f of files) {
        if (!existsSync(join(ROOT, f))) continue;
        mkdirSync(dirname(join(dir, f)), { recursive: true });
        cpSync(join(ROOT, f), join(dir, f));
    }
    return dir;
}

/** A folder of recording stand-ins: each appends its arguments to `<dir>/calls` and runs `body`. */
function standIns(dir: string, tools: Record<string, string>): string {
    const bin = join(dir, ".stand-in-bin");
    mkdirSync(bin, { recursive: true });
    for (const [name, body] of Object.entries(tools)) {
        writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${JSON.stringify(join(dir, "calls"))}\n${body}\n`);
        chmodSync(join(bin, name), 0o755);
    }
    return bin;
}

/** PATH with the stand-ins first, then the system's directories only (no pulumi of the developer's). */
function pathWith(bin: string): string {
    return [bin, dirname(process.execPath), "/usr/sbin", "/usr/bin", "/sbin", "/bin"].join(":");
}

function run(dir: string, args: string[], path: string) {
    return spawnSync("bash", args, { cwd: dir, encoding: "utf8", timeout: 120_000, env: { PATH: path, HOME: dir } });
}

function calls(dir: string): string[] {
    const f = join(dir, "calls");
    return existsSync(f) ? readFileSync(f, "utf8").trim().split("\n") : [];
}

beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), "kvmlab-newcomer-"));
});
afterAll(() => {
    if (base !== "") rmSync(base, { recursive: true, force: true });
});

describe("npm run lab / destroy on a fresh clone", () => {
    it("installs the npm dependencies before anything else, then says in one line how to get the Pulumi CLI", () => {
        const dir = freshClone("no-deps");
        // the stand-in npm "installs" what the scripts look for
        const bin = standIns(dir, { npm: `mkdir -p node_modules/tsx && echo '{}' > node_modules/tsx/package.json` });
        const r = run(dir, ["scripts/lab.sh", "up"], pathWith(bin));
        expect(calls(dir)).toEqual(["npm ci --no-audit --no-fund"]);
        expect(r.status).toBe(127);
        const lines = r.stderr.trim().split("\n");
        expect(lines.at(-1)).toMatch(/^kvm-ha-lab: the Pulumi CLI is not installed; install it from https:\/\/www\.pulumi\.com\/docs\/install\/ .*npm run engine/);
        expect(r.stderr).not.toMatch(/\n\s+at /);
    });

    it("up validates and renders, creates the stack, then runs pulumi up with the extra arguments", () => {
        const dir = freshClone("up");
        symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
        const bin = standIns(dir, { pulumi: "exit 0" });
        // the guest image is "built" already: an image folder of the test's own
        mkdirSync(join(dir, "img/kvm-ha-lab-debian12"), { recursive: true });
        writeFileSync(join(dir, "img/kvm-ha-lab-debian12/disk.qcow2"), "");
        const r = spawnSync("bash", ["scripts/lab.sh", "up", "lab", "--yes"], {
            cwd: dir,
            encoding: "utf8",
            timeout: 120_000,
            env: { PATH: pathWith(bin), HOME: dir, KVMLAB_IMAGE_DIR: join(dir, "img/kvm-ha-lab-debian12") },
        });
        expect(r.status, r.stderr).toBe(0);
        expect(calls(dir)).toEqual(["pulumi stack select --create lab", "pulumi up --stack lab --yes"]);
        // the lab stack's guest cluster is on Pacemaker: corosync.conf and the CIB
        expect(existsSync(join(dir, ".render/lab/pacemaker/cib.xml"))).toBe(true);
        expect(existsSync(join(dir, ".render/lab/pacemaker/corosync.conf"))).toBe(true);
    });

    it("up builds the guest image first when the stack boots guests from it and it is missing", () => {
        const dir = freshClone("image");
        symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
        const bin = standIns(dir, { pulumi: "exit 0" });
        // the image builder is replaced by a recording stand-in (the real one is tested by the guest e2e suite)
        writeFileSync(join(dir, "scripts/guest-image.sh"), `echo "guest-image $*" >> ${JSON.stringify(join(dir, "calls"))}\n`);
        const r = spawnSync("bash", ["scripts/lab.sh", "up", "lab"], {
            cwd: dir,
            encoding: "utf8",
            timeout: 120_000,
            env: { PATH: pathWith(bin), HOME: dir, KVMLAB_IMAGE_DIR: join(dir, "img/kvm-ha-lab-debian12") },
        });
        expect(r.status, r.stderr).toBe(0);
        expect(calls(dir)).toEqual(["guest-image ", "pulumi stack select --create lab", "pulumi up --stack lab"]);
        expect(r.stderr).toContain("kvm-ha-lab: building the guest image first (npm run image");
    });

    it("up stops before pulumi on a stack file with a YAML error, with one line naming file, line and column", () => {
        const dir = freshClone("bad-yaml");
        symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
        const file = join(dir, "stacks/Pulumi.lab.yaml");
        writeFileSync(file, readFileSync(file, "utf8").replace("    - name: node2\n", "\t- name: node2\n"));
        const bin = standIns(dir, { pulumi: "exit 0" });
        const r = run(dir, ["scripts/lab.sh", "up"], pathWith(bin));
        expect(r.status).toBe(2);
        expect(calls(dir)).toEqual([]);
        const line = readFileSync(file, "utf8").split("\n").findIndex((l) => l.startsWith("\t")) + 1;
        expect(r.stderr.trim()).toBe(`${file}:${line}:1: YAML error: Tabs are not allowed as indentation; indent with spaces, never tabs`);
    });

    it("destroy runs pulumi destroy on the stack; an unknown stack or action is refused with the choices", () => {
        const dir = freshClone("destroy");
        symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
        const bin = standIns(dir, { pulumi: "exit 0" });
        const r = run(dir, ["scripts/lab.sh", "destroy", "dev", "--yes"], pathWith(bin));
        expect(r.status, r.stderr).toBe(0);
        expect(calls(dir)).toEqual(["pulumi stack select dev", "pulumi destroy --stack dev --yes"]);
        const unknown = run(dir, ["scripts/lab.sh", "destroy", "nosuch"], pathWith(bin));
        expect(unknown.status).toBe(64);
        expect(unknown.stderr.trim()).toBe("kvm-ha-lab: no stack file stacks/Pulumi.nosuch.yaml; stacks are: dev lab");
        expect(run(dir, ["scripts/lab.sh", "remove"], pathWith(bin)).status).toBe(64);
        const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
        expect(pkg.scripts.destroy).toBe("bash scripts/lab.sh destroy");
        expect(pkg.scripts.lab).toBe("bash scripts/lab.sh up");
    });
});

describe("npm run render / bench", () => {
    it("without node_modules: one line saying to run npm ci, exit 127", () => {
        const dir = freshClone("no-tsx");
        const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
        for (const script of [pkg.scripts.render, pkg.scripts.bench]) {
            const r = run(dir, ["-c", script], pathWith(join(dir, "no-such-dir")));
            expect(r.status, script).toBe(127);
            expect(r.stderr.trim().split("\n"), script).toEqual([`kvm-ha-lab: the npm dependencies are not installed: run \`npm ci\` in ${dir} first`]);
        }
    });

    it("render and bench give exit 2 and one clean message for a stack file with a YAML error", () => {
        const dir = freshClone("yaml-errors");
        symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
        const stacks = join(dir, "stacks");
        const bad = join(stacks, "Pulumi.broken.yaml");
        writeFileSync(bad, "config:\n  kvm-ha-lab:labName: a\n   kvm-ha-lab:hosts: []\n");
        const render = run(dir, ["scripts/run-ts.sh", "scripts/render.ts", "--stack", "broken", "--out", join(dir, "out")], pathWith(join(dir, "x")));
        expect(render.status).toBe(2);
        expect(render.stderr.trim()).toMatch(new RegExp(`^${bad.replace(/[.]/g, "\\.")}:2:\\d+: YAML error: [^\\n]+; fix the YAML there`));
        expect(render.stderr.trim().split("\n")).toHaveLength(1);
        const bench = run(dir, ["scripts/run-ts.sh", "--expose-gc", "scripts/bench.ts", "--iterations", "1", "--program-sizes", "none", "--stacks-dir", stacks], pathWith(join(dir, "x")));
        expect(bench.status).toBe(2);
        expect(bench.stdout).toBe("");
        expect(bench.stderr.trim().split("\n")).toEqual([expect.stringMatching(new RegExp(`^bench: ${bad.replace(/[.]/g, "\\.")}:2:\\d+: YAML error: `))]);
    });

    it("bench stops with the config's own messages when a stack file in stacks/ is invalid", () => {
        const dir = freshClone("bench-invalid");
        symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
        const stacks = join(dir, "stacks");
        const lab = readFileSync(join(stacks, "Pulumi.lab.yaml"), "utf8");
        expect(lab).toMatch(/memoryMiB: \d+/);
        writeFileSync(join(stacks, "Pulumi.wrong.yaml"), lab.replace(/memoryMiB: \d+/, "memoryMiB: -5"));
        const bench = run(dir, ["scripts/run-ts.sh", "--expose-gc", "scripts/bench.ts", "--iterations", "1", "--program-sizes", "none", "--stacks-dir", stacks], pathWith(join(dir, "x")));
        expect(bench.status).toBe(2);
        expect(bench.stderr).toMatch(/^bench: kvm-ha-lab: invalid stack config \(1 problem\):\n {2}- guests\[0\]\.memoryMiB: /);
        expect(bench.stderr).not.toMatch(/\n\s+at /);
    });
});
