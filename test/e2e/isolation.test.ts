/**
 * Several labs on one host (issue 5), applied for real on this machine:
 *   - lab A (multicast, port 1229, key /etc/cluster/fence_xvm-laba.key, bridge br-laba) and lab B (tcp listener on
 *     its bridge address, port 1230, key /etc/cluster/fence_xvm-labb.key, bridge br-labb) side by side;
 *   - a third lab wanting lab A's bridge is refused by the claim before anything changes;
 *   - a node of lab A, with key A, can fence lab A's guests and never lab B's;
 *   - lab B fences over tcp;
 *   - a fence request from outside lab A's subnet (a namespace on another subnet, on lab A's bridge, holding key A)
 *     is dropped by the firewall;
 *   - rotating lab A's key: the old key no longer fences, the new one does;
 *   - destroying lab B leaves lab A fencing; destroying both leaves the machine as it was.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labNames } from "../../components/names";
import { createGuestEndpoint, generateClientKey, type ClientKey, type GuestEndpoint } from "../harness/guest-endpoint";
import { runProgram, type ProgramRun } from "../harness/run-program";
import { ensureLibvirt, suiteGate, type LibvirtHandle } from "../harness/services";
import { PROJECT_ROOT, toPulumiConfig } from "../harness/stack-config";
import { detachAtStop, sh, virsh, waitDomState } from "./e2e-helpers";
import { assertNoLeftovers, diffSnapshots, snapshot, type Snapshot } from "./machine-state";

const gate = suiteGate("isolation e2e");

interface LabDef {
    stack: string;
    bridge: string;
    net: string; // first three octets
    keyFile: string;
    guests: string[];
    fencing: Record<string, unknown>;
}

const LAB_A: LabDef = {
    stack: "laba",
    bridge: "br-laba",
    net: "10.97.0",
    keyFile: "/etc/cluster/fence_xvm-laba.key",
    guests: ["a1", "a2"],
    fencing: { listener: "multicast", multicast: { address: "225.0.0.12", port: 1229 } },
};
const LAB_B: LabDef = {
    stack: "labb",
    bridge: "br-labb",
    net: "10.96.0",
    keyFile: "/etc/cluster/fence_xvm-labb.key",
    guests: ["b1", "b2"],
    fencing: { listener: "tcp", tcp: { port: 1230 } },
};

function labValues(def: LabDef, extra: { keyVersion?: number; bridge?: string } = {}): Record<string, unknown> {
    return {
        hosts: [{ name: "kvmhost", local: true, bridge: { name: extra.bridge ?? def.bridge, address: `${def.net}.1/24` } }],
        guests: def.guests.map((g, i) => ({
            name: g,
            host: "kvmhost",
            domainType: "qemu",
            memoryMiB: 64,
            ssh: { address: `${def.net}.${11 + i}` },
        })),
        guestCluster: {
            name: `${def.stack}cluster`,
            nodes: def.guests,
            fencing: { ...def.fencing, keyFile: def.keyFile, keyVersion: extra.keyVersion ?? 1 },
        },
    };
}

let libvirt: LibvirtHandle | undefined;
let clientKey: ClientKey;
const endpoints = new Map<string, GuestEndpoint>();
const runs = new Map<string, ProgramRun>();
let before: Snapshot;




/** Fences `victim` off, then on, from `from` with `agent` (the fence command without -H/-o); the domain follows. */
async function fenceOffThenOn(from: GuestEndpoint, agent: string, victim: string): Promise<void> {
    const off = await from.exec(`${agent} -H ${victim} -o off`, { timeoutMs: 60_000 });
    expect(off.code, off.stderr).toBe(0);
    expect(await waitDomState(victim, "shut off")).toBe("shut off");
    const on = await from.exec(`${agent} -H ${victim} -o on`, { timeoutMs: 60_000 });
    expect(on.code, on.stderr).toBe(0);
    expect(await waitDomState(victim, "running")).toBe("running");
}

async function apply(def: LabDef, extra: { keyVersion?: number; bridge?: string; timeoutMs?: number } = {}): Promise<ProgramRun> {
    for (const g of def.guests) endpoints.get(g)?.follow();
    const { config, secretKeys } = toPulumiConfig(labValues(def, extra), { sshPrivateKey: clientKey.privateKey });
    const run = await runProgram({ stack: def.stack, config, secretKeys, programPath: join(PROJECT_ROOT, "index.ts"), timeoutMs: extra.timeoutMs ?? 400_000 });
    runs.set(def.stack, run);
    return run;
}

async function destroy(def: LabDef): Promise<void> {
    const run = runs.get(def.stack);
    runs.delete(def.stack);
    if (!run) return;
    const result = await run.teardown({ beforeDelete: detachAtStop((g) => endpoints.get(g)) });
    expect(result.failures, JSON.stringify(result.failures, null, 2)).toEqual([]);
}

describe.skipIf(gate.skip)("several labs on one host", () => {
    beforeAll(async () => {
        gate.assertReady();
        for (const def of [LAB_A, LAB_B]) assertNoLeftovers(def.stack, def.bridge);
        libvirt = await ensureLibvirt();
        clientKey = await generateClientKey("kvm-ha-lab-isolation");
        for (const def of [LAB_A, LAB_B]) {
            for (const [i, g] of def.guests.entries()) {
                endpoints.set(g, await createGuestEndpoint({ name: g, bridge: def.bridge, address: `${def.net}.${11 + i}/24`, prefix: "kvi", clientKey }));
            }
        }
        // Outside lab A's subnet, but on lab A's bridge.
        endpoints.set("x1", await createGuestEndpoint({ name: "x1", bridge: LAB_A.bridge, address: "10.95.0.5/24", prefix: "kvi", clientKey }));
        before = await snapshot();
    });

    afterAll(async () => {
        try {
            for (const def of [LAB_B, LAB_A]) {
                const run = runs.get(def.stack);
                if (run) await run.teardown({ throwOnFailure: false, beforeDelete: detachAtStop((g) => endpoints.get(g)) });
            }
        } finally {
            for (const e of endpoints.values()) await e.destroy();
            await libvirt?.stop();
        }
    });

    it("applies lab A (multicast) and lab B (tcp) side by side", async () => {
        const a = await apply(LAB_A);
        expect(a.errors).toEqual([]);
        const b = await apply(LAB_B);
        expect(b.errors).toEqual([]);
        for (const g of [...LAB_A.guests, ...LAB_B.guests]) expect(await virsh("domstate", g), g).toBe("running");
        // Two fence_virtd instances, one per lab, each with its own config.
        for (const def of [LAB_A, LAB_B]) {
            const names = labNames(def.stack);
            const pid = Number(readFileSync(names.fenceVirtd.pidFile, "utf8").trim());
            expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).toContain(names.fenceVirtd.configFile);
        }
        expect((await sh("ss -ltnp")).stdout).toMatch(/10\.96\.0\.1:1230\b.*fence_virtd/);
    });

    it("refuses a third lab that wants lab A's bridge, before changing anything", async () => {
        const mid = await snapshot();
        const lab: LabDef = { ...LAB_A, stack: "labc", net: "10.94.0", keyFile: "/etc/cluster/fence_xvm-labc.key", guests: ["c1", "c2"], fencing: { listener: "multicast", multicast: { port: 1231 } } };
        // A refused apply leaves SDK registrations waiting on the failed claim: bound the wait (see executing-mocks.ts).
        const run = await apply(lab, { bridge: LAB_A.bridge, timeoutMs: 60_000 });
        expect(run.errors.join("\n")).toContain("another lab on this host already uses bridge br-laba (lab laba)");
        await destroy(lab);
        expect(diffSnapshots(mid, await snapshot())).toEqual({});
    });

    it("lets a node of lab A fence lab A's guests, and never lab B's", async () => {
        const a1 = endpoints.get("a1")!;
        const keyA = `-k ${LAB_A.keyFile}`;
        const list = await a1.exec(`fence_xvm -t 10 ${keyA} -o list`, { timeoutMs: 60_000 });
        expect(list.code, list.stderr).toBe(0);
        expect(list.stdout).toMatch(/^a2\s/m);
        expect(list.stdout).not.toMatch(/^b[12]\s/m);
        const offB = await a1.exec(`fence_xvm -t 5 ${keyA} -H b1 -o off`, { timeoutMs: 60_000 });
        expect(offB.code).not.toBe(0);
        const offBviaB = await a1.exec(`fence_xvm -t 5 ${keyA} -a 225.0.0.12 -p 1230 -H b1 -o off`, { timeoutMs: 60_000 });
        expect(offBviaB.code).not.toBe(0);
        expect(await virsh("domstate", "b1")).toBe("running");

        await fenceOffThenOn(a1, `fence_xvm -t 10 ${keyA}`, "a2");
    });

    it("fences over tcp in lab B", async () => {
        const b1 = endpoints.get("b1")!;
        const tcp = `-T ${LAB_B.net}.1 -p 1230 -k ${LAB_B.keyFile}`;
        await fenceOffThenOn(b1, `fence_virt -t 10 ${tcp}`, "b2");
    });

    it("drops a fence request from outside lab A's subnet, even with key A", async () => {
        const x1 = endpoints.get("x1")!;
        await x1.exec(`mkdir -p /etc/cluster && umask 077 && cat > ${LAB_A.keyFile}`, { stdin: readFileSync(LAB_A.keyFile) });
        const chain = labNames("laba").chains.input;
        const drops = async () => {
            const out = (await sh(`iptables -nvxL ${chain}`)).stdout;
            return out
                .split("\n")
                .filter((l) => /\bDROP\b/.test(l) && /dpt:1229/.test(l) && /udp/.test(l))
                .reduce((n, l) => n + Number(l.trim().split(/\s+/)[0]), 0);
        };
        const dropsBefore = await drops();
        const off = await x1.exec(`fence_xvm -t 5 -k ${LAB_A.keyFile} -H a2 -o off`, { timeoutMs: 60_000 });
        expect(off.code).not.toBe(0);
        expect(await virsh("domstate", "a2")).toBe("running");
        expect(await drops()).toBeGreaterThan(dropsBefore);
    });

    it("rotates lab A's key: the old key no longer fences, the new one does", async () => {
        const a1 = endpoints.get("a1")!;
        await a1.exec(`cp ${LAB_A.keyFile} /tmp/old.key`);
        const oldHost = readFileSync(LAB_A.keyFile);
        const run = await apply(LAB_A, { keyVersion: 2 });
        expect(run.errors).toEqual([]);
        const newHost = readFileSync(LAB_A.keyFile);
        expect(newHost.equals(oldHost)).toBe(false);
        for (const g of LAB_A.guests) expect((await endpoints.get(g)!.readFile(LAB_A.keyFile)).equals(newHost), g).toBe(true);
        const old = await a1.exec("fence_xvm -t 5 -k /tmp/old.key -H a2 -o off", { timeoutMs: 60_000 });
        expect(old.code).not.toBe(0);
        expect(await virsh("domstate", "a2")).toBe("running");
        const status = await a1.exec(`fence_xvm -t 10 -k ${LAB_A.keyFile} -H a2 -o status`, { timeoutMs: 60_000 });
        expect(status.code, status.stderr).toBe(0);
        await a1.exec("rm -f /tmp/old.key");
    });

    it("destroying lab B leaves lab A fencing", async () => {
        await destroy(LAB_B);
        expect(existsSync("/sys/class/net/br-labb")).toBe(false);
        const a1 = endpoints.get("a1")!;
        await fenceOffThenOn(a1, `fence_xvm -t 10 -k ${LAB_A.keyFile}`, "a2");
    });

    it("destroying lab A too leaves the machine as it was", async () => {
        // The outside stand-in is not a guest of lab A: it leaves the bridge first, or lab A's bridge (rightly) stays.
        await endpoints.get("x1")!.detach();
        await destroy(LAB_A);
        expect(diffSnapshots(before, await snapshot())).toEqual({});
    });
});
