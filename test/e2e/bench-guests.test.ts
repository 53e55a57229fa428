/**
 * `npm run bench -- --real-guests` run for real, once (a few minutes: the lab stack's guests boot under TCG): its report
 * names the guest image's check and build, each guest's boot to SSH, the whole up and the destroy, each with a
 * number; guests that do not boot make it fail (exit 1, no boot line). The machine is as before afterwards (the e2e
 * snapshot), and with the lab's bridge already there it refuses to start and changes nothing. Numbers are printed,
 * never compared with a target.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runProc } from "../harness/proc";
import { E2E_BINARIES, suiteGate } from "../harness/services";
import { loadStackValues, PROJECT_ROOT } from "../harness/stack-config";
import { diffSnapshots, snapshot, type Snapshot } from "./machine-state";

const gate = suiteGate("bench --real-guests e2e", [...E2E_BINARIES, "qemu-img", "mmdebstrap", "mkfs.ext4", "genisoimage"]);
const lab = loadStackValues("lab") as { hosts: { local?: boolean; bridge?: { name: string } }[]; guests: { name: string }[] };
const GUESTS = lab.guests.map((g) => g.name);
const BRIDGE = lab.hosts.find((h) => h.local && h.bridge)!.bridge!.name;

/** As `npm run bench` runs it (package.json). */
async function bench(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const script = (JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as { scripts: { bench: string } }).scripts.bench;
    const r = await runProc("bash", ["-c", `${script} "$@"`, "bench", ...args], { cwd: PROJECT_ROOT, timeoutMs: 1_700_000 });
    return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

const number = "[0-9]+\\.[0-9]";

describe.skipIf(gate.skip)("npm run bench -- --real-guests: the lab stack up and destroyed for real, measured", () => {
    let before: Snapshot;

    beforeAll(async () => {
        gate.assertReady();
        // The image and its stable link are kept by design (cached by the recipe's hash, as .ci/run builds them):
        // made before the baseline.
        const image = await runProc("bash", [join(PROJECT_ROOT, "scripts/guest-image.sh")], { timeoutMs: 1_500_000 });
        expect(image.code, image.stderr.toString()).toBe(0);
        before = await snapshot();
    }, 1_600_000);

    it(`refuses to start while the lab's bridge ${BRIDGE} exists (a user's lab), and changes nothing`, async () => {
        const add = await runProc("ip", ["link", "add", BRIDGE, "type", "bridge"]);
        expect(add.code, add.stderr.toString()).toBe(0);
        let r: Awaited<ReturnType<typeof bench>>;
        try {
            r = await bench("--real-guests");
        } finally {
            await runProc("ip", ["link", "del", BRIDGE]);
        }
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toContain(`bench: refused: the lab stack already has things on this machine (/sys/class/net/${BRIDGE})`);
        expect(r.stdout).toBe("");
        expect(diffSnapshots(before, await snapshot())).toEqual({});
    }, 120_000);

    it("reports the image check and build, each guest's boot to SSH, the whole up and the destroy, with numbers", async () => {
        const r = await bench("--real-guests");
        console.log(`[bench --real-guests]\n${r.stdout}`);
        expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
        const lines = r.stdout.trim().split("\n");
        expect(lines[0]).toMatch(/^kvm-ha-lab bench: the lab stack applied and destroyed for real on this machine/);
        const line = (re: RegExp) => {
            const found = lines.filter((l) => re.test(l));
            expect(found, `${re} in\n${r.stdout}`).toHaveLength(1);
            return re.exec(found[0])!;
        };
        line(new RegExp(`^guest image check \\(cached\\) +${number} s {2}cached `));
        line(new RegExp(`^guest image build +(not run: the image is cached \\(--rebuild-image rebuilds it\\)|${number} s {2}built )`));
        const up = line(new RegExp(`^up \\(whole, ${GUESTS.length} guests\\) +(${number}) s {2}(\\d+) commands run$`));
        expect(Number(up[1])).toBeGreaterThan(0);
        expect(Number(up[2])).toBeGreaterThan(0);
        for (const g of GUESTS) {
            const boot = line(new RegExp(`^${g} boot to SSH +(${number}) s {2}qemu RSS after up (\\d+) MiB$`));
            expect(Number(boot[1])).toBeGreaterThan(0);
            expect(Number(boot[1])).toBeLessThan(Number(up[1]));
            expect(Number(boot[2])).toBeGreaterThan(0);
        }
        const destroy = line(new RegExp(`^destroy +(${number}) s {2}(\\d+) deletes$`));
        expect(Number(destroy[2])).toBeGreaterThan(0);
        expect(lines).toHaveLength(4 + GUESTS.length + 1);
    }, 1_800_000);

    it("leaves the machine as it was: the lab destroyed, the daemons it started stopped", async () => {
        expect(diffSnapshots(before, await snapshot())).toEqual({});
    }, 120_000);
});
