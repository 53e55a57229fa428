/**
 * Proves the suite-setup helpers: requirement gating (skip with one line, fail under CI) and libvirt started only
 * when not running, stopped only if we started it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { pidAlive, runProc } from "../harness/proc";
import { ensureLibvirt, LIBVIRT_URI, requirements, suiteGate, type LibvirtHandle } from "../harness/services";
import { loadStackValues, toPulumiConfig } from "../harness/stack-config";

describe("requirement gate", () => {
    const saved = process.env.CI;
    afterEach(() => {
        if (saved === undefined) delete process.env.CI;
        else process.env.CI = saved;
    });

    it("names what is missing", () => {
        expect(requirements(["sh", "hex-no-such-binary"])).toEqual(
            process.getuid?.() === 0 ? ["hex-no-such-binary"] : [`root (running as uid ${process.getuid?.()})`, "hex-no-such-binary"],
        );
    });

    it("skips without CI and fails under CI", () => {
        delete process.env.CI;
        const local = suiteGate("probe", ["hex-no-such-binary"]);
        expect(local.skip).toBe(true);
        expect(local.reason).toContain("probe: missing");
        expect(local.reason).toContain("hex-no-such-binary");
        process.env.CI = "true";
        const ci = suiteGate("probe", ["hex-no-such-binary"]);
        expect(ci.skip).toBe(false);
        expect(() => ci.assertReady()).toThrow(/probe: missing .*hex-no-such-binary.*CI is set/);
        const ok = suiteGate("probe", []);
        expect(ok.skip).toBe(false);
        expect(() => ok.assertReady()).not.toThrow();
    });
});

describe("stack config for runProgram", () => {
    it("turns a stack file plus overrides into setAllConfig's map", () => {
        const values = loadStackValues("lab");
        const guests = values.guests as { name: string; ssh?: unknown }[];
        values.guests = guests.map((g, i) => ({ ...g, domainType: "qemu", ssh: { address: `10.99.0.${11 + i}` } }));
        const { config, secretKeys } = toPulumiConfig(values, { sshPrivateKey: "KEY" });
        expect(secretKeys).toEqual(["kvm-ha-lab:sshPrivateKey"]);
        expect(config["kvm-ha-lab:sshPrivateKey"]).toBe("KEY");
        expect(JSON.parse(config["kvm-ha-lab:hosts"])[0].bridge.name).toBe("br-lab");
        expect(JSON.parse(config["kvm-ha-lab:guests"]).map((g: { ssh: { address: string } }) => g.ssh.address)).toEqual(["10.99.0.11", "10.99.0.12"]);
        // The stack file itself is untouched by the overrides.
        expect((loadStackValues("lab").guests as { ssh?: unknown }[])[0].ssh).toBeUndefined();
    });
});

const gate = suiteGate("libvirt services", ["virsh", "libvirtd", "virtlogd", "pidof"]);

describe.skipIf(gate.skip)("ensureLibvirt", () => {
    let handle: LibvirtHandle | undefined;
    afterEach(async () => {
        await handle?.stop();
    });

    it("makes virsh work and stops only what it started", async () => {
        gate.assertReady();
        const pidsOf = async (n: string) => (await runProc("pidof", [n])).stdout.toString().split(/\s+/).filter(Boolean).map(Number);
        const before = [...(await pidsOf("libvirtd")), ...(await pidsOf("virtlogd"))];
        handle = await ensureLibvirt();
        expect((await runProc("virsh", ["-c", LIBVIRT_URI, "list", "--all"])).code).toBe(0);
        // What it started was not running before and is running now; it started nothing already running.
        for (const p of handle.startedPids) {
            expect(before).not.toContain(p.pid);
            expect(pidAlive(p.pid)).toBe(true);
        }
        expect(handle.alreadyRunning).toBe(handle.startedPids.length === 0);
        expect((await pidsOf("libvirtd")).length).toBeGreaterThan(0);
        // A second call finds everything running and owns nothing.
        const second = await ensureLibvirt();
        expect(second.startedPids).toEqual([]);
        expect(second.alreadyRunning).toBe(true);
        await second.stop();
        expect((await runProc("virsh", ["-c", LIBVIRT_URI, "list"])).code).toBe(0);
        // stop() ends exactly what the first call started and leaves the others alone.
        await handle.stop();
        for (const p of handle.startedPids) expect(pidAlive(p.pid)).toBe(false);
    });
});
