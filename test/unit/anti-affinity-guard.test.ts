/**
 * The anti-affinity guard, run for real by /bin/sh (dash) and bash, with gawk and with mawk, against recorded clustat
 * outputs (test/fixtures/clustat/*.txt) served by a fake `clustat` on PATH: a collision refuses the start (non-zero,
 * naming the other member), no collision starts (exit 0), and a member that only last ran here (parentheses), is
 * stopped/disabled/failed or has no owner does not count. stop and status always succeed.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLUSTAT_SERVICE_NAME_MAX } from "../../components/cluster-model";
import { guardFiles, guardScriptPath, renderAntiAffinityGuard } from "../../components/render/anti-affinity-guard";
import { validateLabConfig } from "../../components/config";
import { parseStackFile } from "../../components/stack-file";
import { readFileSync } from "node:fs";

const FIXTURES = resolve(__dirname, "../fixtures/clustat");
const SHELLS = ["/bin/sh", "/bin/bash"].filter((s) => existsSync(s));
const AWKS = ["gawk", "mawk"].filter((a) => spawnSync("sh", ["-c", `command -v ${a}`]).status === 0);

let dir = "";
beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "hc4-guard-"));
});
afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** A bin directory with a fake clustat printing `fixture` (or none), a fake uname, and `awk` pointing at `awk`. */
function binDir(name: string, opts: { fixture?: string; clustatExit?: number; uname?: string; awk?: string }): string {
    const bin = join(dir, name);
    rmSync(bin, { recursive: true, force: true });
    spawnSync("mkdir", ["-p", bin]);
    const put = (file: string, text: string) => {
        writeFileSync(join(bin, file), text);
        chmodSync(join(bin, file), 0o755);
    };
    if (opts.fixture !== undefined) put("clustat", `#!/bin/sh\ncat '${join(FIXTURES, opts.fixture)}'\nexit ${opts.clustatExit ?? 0}\n`);
    if (opts.uname !== undefined) put("uname", `#!/bin/sh\n[ "$1" = -n ] && echo '${opts.uname}' && exit 0\nexec /bin/uname "$@"\n`);
    if (opts.awk !== undefined) put("awk", `#!/bin/sh\nexec ${opts.awk} "$@"\n`);
    // logger would write to the host's syslog: a no-op stand-in keeps the test to itself
    put("logger", "#!/bin/sh\nexit 0\n");
    return bin;
}

interface Run {
    status: number | null;
    out: string;
}

function runGuard(script: string, action: string, bin: string, shell = "/bin/sh"): Run {
    const file = join(dir, `guard-${Math.random().toString(36).slice(2)}.sh`);
    writeFileSync(file, script);
    chmodSync(file, 0o755);
    // Only our bin dir and the system directories: no real clustat can interfere.
    const r = spawnSync(shell, [file, action], { encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin`, LC_ALL: "C" }, timeout: 20_000 });
    rmSync(file, { force: true });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const guard = (service: string, others: string[], group = "web") => renderAntiAffinityGuard({ lab: "lab", group, service, others });

interface Case {
    fixture: string;
    service: string;
    others: string[];
    /** undefined: allowed to start; else the text the refusal must contain. */
    refuses?: RegExp;
    uname?: string;
    why: string;
}

const CASES: Case[] = [
    { fixture: "two-nodes-collision.txt", service: "web2", others: ["web1"], refuses: /refusing to start service:web2 on node1: service:web1 \(started\) already runs on this node/, why: "web1 runs on this node" },
    { fixture: "two-nodes-apart.txt", service: "web2", others: ["web1"], why: "web1 runs on the other node" },
    { fixture: "three-nodes-last-owner.txt", service: "web3", others: ["web1", "web2"], why: "web1 failed and web2 stopped here: (last owner) only; db1 here is not a member" },
    { fixture: "three-nodes-last-owner.txt", service: "web3", others: ["db1", "web1"], refuses: /service:db1 \(started\)/, why: "the same node, but db1 (started here) is a member of this group" },
    { fixture: "three-nodes-starting.txt", service: "web3", others: ["web1", "web2"], refuses: /on gnode3: service:web1 \(starting\)/, why: "web1 is starting here" },
    { fixture: "three-nodes-starting.txt", service: "web1", others: ["web2", "web3"], why: "web2 runs on gnode1, web3 is stopped; web1 itself does not count" },
    { fixture: "frozen.txt", service: "web2", others: ["web1"], refuses: /service:web1 \(started\)/, why: "a frozen member still runs here" },
    { fixture: "recovering.txt", service: "web2", others: ["web1", "web3"], why: "web1 recovers with no owner, web3 is disabled" },
    { fixture: "tty-names.txt", service: "web2", others: ["web1"], refuses: /service:web1 \(started\)/, why: "names without the service: prefix (tty output)" },
    { fixture: "no-local.txt", service: "web2", others: ["web1"], uname: "node2.example.com", refuses: /on node2\.example\.com: service:web1/, why: "no Local row: uname -n, compared by short name" },
    { fixture: "no-local.txt", service: "web2", others: ["web1"], uname: "node1", why: "no Local row, and uname -n is the other node" },
    { fixture: "long-node-names.txt", service: "web2", others: ["web1"], refuses: /on lab-guest-node-with-a-long-name-1: service:web1/, why: "an owner cut at 30 characters still matches this node" },
    { fixture: "inquorate.txt", service: "web2", others: ["web1"], why: "inquorate, nothing runs" },
];

describe.each(SHELLS.flatMap((shell) => AWKS.map((awk) => ({ shell, awk }))))("the guard under $shell with $awk", ({ shell, awk }) => {
    it.each(CASES)("$fixture, start $service: $why", (c) => {
        const bin = binDir(`bin-${c.fixture}-${awk}`, { fixture: c.fixture, uname: c.uname, awk });
        const r = runGuard(guard(c.service, c.others), "start", bin, shell);
        if (c.refuses === undefined) {
            expect(r.status, r.out).toBe(0);
            expect(r.out).not.toMatch(/refusing/);
        } else {
            expect(r.status, r.out).toBe(1);
            expect(r.out).toMatch(c.refuses);
            expect(r.out).toMatch(/anti-affinity group web: refusing/);
            expect(r.out).toMatch(/rgmanager will try another node/);
        }
    });

    it.each(["stop", "status", "monitor", "restart", ""])("%s succeeds even where a collision is", (action) => {
        const bin = binDir(`bin-stop-${awk}`, { fixture: "two-nodes-collision.txt", awk });
        const r = runGuard(guard("web2", ["web1"]), action, bin, shell);
        expect(r.status, r.out).toBe(0);
    });
});

describe("when clustat cannot tell", () => {
    it("without clustat, the start goes ahead and says why", () => {
        const r = runGuard(guard("web2", ["web1"]), "start", binDir("bin-none", {}));
        expect(r.status, r.out).toBe(0);
        expect(r.out).toMatch(/clustat is not installed, so service:web2 cannot be checked against service:web1; starting it/);
    });

    it("with a clustat that fails and prints no table, the start goes ahead and says why", () => {
        const bin = binDir("bin-broken", {});
        writeFileSync(join(bin, "clustat"), "#!/bin/sh\necho 'Could not connect to CMAN: Connection refused' >&2\nexit 1\n");
        chmodSync(join(bin, "clustat"), 0o755);
        const r = runGuard(guard("web2", ["web1"]), "start", bin);
        expect(r.status, r.out).toBe(0);
        expect(r.out).toMatch(/clustat printed no service table/);
    });

    it("a clustat exit code alone does not hide a collision it printed", () => {
        const r = runGuard(guard("web2", ["web1"]), "start", binDir("bin-exit2", { fixture: "two-nodes-collision.txt", clustatExit: 2 }));
        expect(r.status, r.out).toBe(1);
    });
});

describe("renderAntiAffinityGuard", () => {
    it("is deterministic and carries the service, group and other members, quoted", () => {
        const text = guard("web2", ["web1", "web3"]);
        expect(guard("web2", ["web1", "web3"])).toBe(text);
        expect(text.startsWith("#!/bin/sh\n")).toBe(true);
        expect(text).toContain("SERVICE='service:web2'\nGROUP='web'\nOTHERS='service:web1 service:web3'\n");
        expect(spawnSync("sh", ["-n"], { input: text }).status).toBe(0);
    });

    it.each([
        [{ lab: "lab", group: "web", service: "web1", others: [] }, /no other members/],
        [{ lab: "lab", group: "web", service: "web1", others: ["web1"] }, /lists itself/],
        [{ lab: "lab", group: "web", service: "we'b1", others: ["web2"] }, /not a valid group or service name/],
        [{ lab: "Lab!", group: "web", service: "web1", others: ["web2"] }, /lab name/],
    ])("refuses %j", (input, why) => {
        expect(() => renderAntiAffinityGuard(input)).toThrow(why);
    });

    it("one guard per member of every group, at the lab's path, each naming the others", () => {
        const raw = structuredClone(parseStackFile(readFileSync(resolve(__dirname, "../../stacks/Pulumi.lab.yaml"), "utf8")).raw) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
        raw.guestCluster.stack = "cman"; // the guards are cman's (rgmanager); the lab stack itself is on Pacemaker
        raw.guestCluster.services = [{ name: "a" }, { name: "b" }, { name: "c" }];
        raw.guestCluster.antiAffinity = [{ name: "ab", services: ["a", "b"] }];
        const spec = validateLabConfig(raw, { stack: "lab", secretKeys: new Set(), readFile: () => undefined });
        const files = guardFiles(spec);
        expect(files.map((f) => [f.group, f.service, f.path])).toEqual([
            ["ab", "a", guardScriptPath("lab", "a")],
            ["ab", "b", guardScriptPath("lab", "b")],
        ]);
        expect(files[0].text).toContain("OTHERS='service:b'");
        expect(files[1].text).toContain("OTHERS='service:a'");
        expect(guardScriptPath("lab", "a")).toBe("/usr/local/libexec/kvm-ha-lab/lab/guard-a");
        expect(CLUSTAT_SERVICE_NAME_MAX).toBe(22);
    });
});
