/**
 * The lab stack (stacks/Pulumi.lab.yaml) applied for real on this machine by the executing harness: the host is this
 * machine (local), node1 and node2 are real qemu (TCG) domains, and each guest's operating system is stood in for by a
 * network namespace on br-lab running sshd (test/harness/guest-endpoint.ts), to which the program delivers the key
 * and cluster.conf over SSH exactly as to a real guest.
 *
 * Reproduces the seeds' acceptance test (seed 000): from node1, fence node2; on the host it goes from running to shut
 * off, and back on. Then: rerun, teardown to the exact before-state, apply/teardown again, and an interrupted apply.
 *
 * The guest cluster is pinned to cman (`guestCluster.stack: cman`; the lab stack itself is on Pacemaker). A stand-in
 * has no OS of its own: only /etc and /run are its own, so corosync and pacemaker started in two stand-ins would share
 * this machine's /var/lib/corosync, /var/lib/pacemaker (the CIB files) and /dev/shm with each other and with the
 * host, and no cluster could form there honestly. With cman the program delivers cluster.conf, which a stand-in can
 * hold and the test can compare. The Pacemaker delivery runs against real corosync and Pacemaker in
 * test/unit/pacemaker-deliver.test.ts and in real guests in test/e2e/pacemaker-guests.test.ts.
 */
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderLab } from "../../components/render/lab-files";
import { validateLabConfig } from "../../components/config";
import { labNames, domainXmlPath } from "../../components/names";
import { createGuestEndpoint, generateClientKey, type GuestEndpoint } from "../harness/guest-endpoint";
import { runProgram, type ProgramRun } from "../harness/run-program";
import { ensureLibvirt, suiteGate, type LibvirtHandle } from "../harness/services";
import { PROJECT_ROOT, loadStackValues, toPulumiConfig } from "../harness/stack-config";
import { detachAtStop, sh, virsh, waitDomState } from "./e2e-helpers";
import { assertNoLeftovers, diffSnapshots, snapshot, type Snapshot } from "./machine-state";

const gate = suiteGate("lab e2e");
const GUESTS = [
    { name: "node1", address: "10.99.0.11" },
    { name: "node2", address: "10.99.0.12" },
];

let libvirt: LibvirtHandle | undefined;
let endpoints: GuestEndpoint[] = [];
let before: Snapshot;
let current: ProgramRun | undefined;
let config: { config: Record<string, string>; secretKeys: string[] };
let values: Record<string, unknown>;


async function apply(opts: { injectFailure?: (r: { name: string }) => string | undefined; timeoutMs?: number } = {}): Promise<ProgramRun> {
    for (const e of endpoints) e.follow();
    const run = await runProgram({
        stack: "lab",
        config: config.config,
        secretKeys: config.secretKeys,
        programPath: join(PROJECT_ROOT, "index.ts"),
        timeoutMs: opts.timeoutMs ?? 400_000,
        injectFailure: opts.injectFailure,
        log: process.env.KVMLAB_E2E_TRACE ? (line: string) => appendFileSync(process.env.KVMLAB_E2E_TRACE!, `${new Date().toISOString()} ${line}\n`) : undefined,
    });
    current = run;
    return run;
}

async function teardown(): Promise<void> {
    const run = current;
    current = undefined;
    if (run) {
        // A guest's port leaves the bridge when its domain stops: the stand-in's veth leaves when `<guest>-start` is
        // deleted (the program deletes everything it put on the guest before that, while the guest is reachable).
        const result = await run.teardown({ beforeDelete: detachAtStop((g) => endpoints.find((e) => e.name === g)) });
        expect(result.failures, JSON.stringify(result.failures, null, 2)).toEqual([]);
    }
}

async function expectMachineAsBefore(): Promise<void> {
    const after = await snapshot();
    expect(diffSnapshots(before, after)).toEqual({});
}

/** The lab's rendered files, from the same config the harness applies. */
function rendered(): Map<string, string> {
    const spec = validateLabConfig(values, { stack: "lab", secretKeys: new Set(["sshPrivateKey"]), readFile: () => undefined });
    return renderLab(spec);
}


describe.skipIf(gate.skip)("lab stack applied for real", () => {
    beforeAll(async () => {
        gate.assertReady();
        // A clean machine is the baseline: leftovers of an interrupted earlier run would hide what teardown does.
        assertNoLeftovers("lab", "br-lab");
        libvirt = await ensureLibvirt();
        const key = await generateClientKey("kvm-ha-lab-e2e");
        endpoints = await Promise.all(
            GUESTS.map((g) => createGuestEndpoint({ name: g.name, bridge: "br-lab", address: `${g.address}/24`, prefix: "kvl", clientKey: key })),
        );
        values = loadStackValues("lab");
        // cman, explicitly: no Pacemaker can run in a stand-in (see the header)
        (values.guestCluster as Record<string, unknown>).stack = "cman";
        // This machine runs qemu without KVM: domain type qemu, and small guests. The stand-ins are network
        // namespaces, not OSes: no image, kernel or cloud-init seed (test/e2e/real-guests.test.ts boots the image),
        // and the stand-ins' own key (sshPrivateKey) instead of the lab's generated one.
        values.guests = (values.guests as Record<string, unknown>[]).map(({ image: _i, kernel: _k, initrd: _r, cmdline: _c, ...g }, i) => ({
            ...g,
            domainType: "qemu",
            memoryMiB: 128,
            disks: [{ path: `/var/lib/libvirt/images/${GUESTS[i].name}.qcow2`, sizeGiB: 8 }],
            ssh: { address: GUESTS[i].address },
        }));
        config = toPulumiConfig(values, { sshPrivateKey: key.privateKey });
        before = await snapshot();
    });

    afterAll(async () => {
        try {
            if (current) await teardown();
        } finally {
            for (const e of endpoints) await e.destroy();
            await libvirt?.stop();
        }
    });

    it("applies the lab stack without errors", async () => {
        const run = await apply();
        expect(run.errors).toEqual([]);
        expect(run.timedOut).toBe(false);
    });

    it("brings the bridge up with its address, hooks the firewall chains, sets the sysctls", async () => {
        const link = await sh("ip -d link show br-lab");
        expect(link.stdout).toMatch(/state UP|,UP/);
        expect(link.stdout).toContain("bridge");
        expect((await sh("ip -o addr show dev br-lab")).stdout).toContain("10.99.0.1/24");
        const chains = labNames("lab").chains;
        const rules = (await sh("iptables -S")).stdout;
        expect(rules).toContain(`-A INPUT -j ${chains.input}`);
        expect(rules).toContain(`-A OUTPUT -j ${chains.output}`);
        expect(rules).toContain(`-A FORWARD -j ${chains.forward}`);
        expect(rules).toMatch(new RegExp(`-A ${chains.input} .*-d 225\\.0\\.0\\.12/32 -i br-lab -p udp .*--dport 1229 .*-j ACCEPT`));
        expect(rules).toMatch(new RegExp(`-A ${chains.forward} -m physdev --physdev-is-bridged .*-j ACCEPT`));
        for (const k of ["iptables", "ip6tables", "arptables"]) {
            expect(readFileSync(`/proc/sys/net/bridge/bridge-nf-call-${k}`, "utf8").trim()).toBe("0");
        }
    });

    it("installs the same 4096-byte key, 0400 root, on the host and every guest", async () => {
        const keyFile = "/etc/cluster/fence_xvm.key";
        const hostKey = readFileSync(keyFile);
        const st = statSync(keyFile);
        expect(hostKey.length).toBe(4096);
        expect(st.mode & 0o777).toBe(0o400);
        expect(st.uid).toBe(0);
        for (const e of endpoints) {
            const guestKey = await e.readFile(keyFile);
            expect(createHash("sha256").update(guestKey).digest("hex"), e.name).toBe(createHash("sha256").update(hostKey).digest("hex"));
            expect(await e.stat(keyFile), e.name).toMatchObject({ mode: 0o400, uid: 0, gid: 0, size: 4096 });
        }
    });

    it("runs fence_virtd with the rendered config, listening on 1229", async () => {
        const names = labNames("lab");
        expect(readFileSync(names.fenceVirtd.configFile, "utf8")).toBe(rendered().get("hosts/kvmhost/fence_virt.conf"));
        const pid = Number(readFileSync(names.fenceVirtd.pidFile, "utf8").trim());
        expect(readFileSync(`/proc/${pid}/comm`, "utf8").trim()).toBe("fence_virtd");
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        expect(cmdline).toContain(names.fenceVirtd.configFile);
        const ss = await sh("ss -lunp");
        expect(ss.stdout).toMatch(new RegExp(`:1229\\b.*pid=${pid}\\b`));
    });

    it("defines every guest from the rendered XML, autostart off, running on its placement host", async () => {
        const files = rendered();
        for (const g of GUESTS) {
            const xmlPath = domainXmlPath("/var/lib/libvirt/images/xml_defs", g.name);
            const renderedXml = files.get(`xml_defs/${g.name}.xml`)!;
            expect(readFileSync(xmlPath, "utf8")).toBe(renderedXml);
            const live = await virsh("dumpxml", "--inactive", g.name);
            const uuid = /<uuid>([^<]+)<\/uuid>/.exec(renderedXml)![1];
            const mac = /<mac address="([^"]+)"/.exec(renderedXml)![1];
            expect(live).toContain(`<uuid>${uuid}</uuid>`);
            expect(live).toContain(`<mac address='${mac}'/>`);
            expect(live).toContain("<source bridge='br-lab'/>");
            expect(await virsh("dominfo", g.name)).toMatch(/Autostart:\s+disable/);
            expect(await virsh("domstate", g.name)).toBe("running");
        }
    });

    it("delivers the rendered cluster.conf to every guest", async () => {
        const conf = rendered().get("cluster.conf")!;
        for (const e of endpoints) expect((await e.readFile("/etc/cluster/cluster.conf")).toString("utf8"), e.name).toBe(conf);
    });

    it("fences node2 from node1 with fence_xvm: list, off, on, status (seed 000's acceptance test)", async () => {
        const node1 = endpoints[0];
        const list = await node1.exec("fence_xvm -t 10 -o list", { timeoutMs: 60_000 });
        expect(list.code, list.stderr).toBe(0);
        expect(list.stdout).toMatch(/^node1\s/m);
        expect(list.stdout).toMatch(/^node2\s/m);

        const off = await node1.exec("fence_xvm -t 10 -H node2 -o off", { timeoutMs: 60_000 });
        expect(off.code, off.stderr).toBe(0);
        expect(await waitDomState("node2", "shut off")).toBe("shut off");
        const statusOff = await node1.exec("fence_xvm -t 10 -H node2 -o status", { timeoutMs: 60_000 });
        expect(statusOff.code).toBe(2); // fence agents: 2 = off

        const on = await node1.exec("fence_xvm -t 10 -H node2 -o on", { timeoutMs: 60_000 });
        expect(on.code, on.stderr).toBe(0);
        expect(await waitDomState("node2", "running")).toBe("running");
        const statusOn = await node1.exec("fence_xvm -t 10 -H node2 -o status", { timeoutMs: 60_000 });
        expect(statusOn.code, statusOn.stderr).toBe(0);
    });

    it("refuses a fence request signed with a wrong key and fences nothing", async () => {
        const node1 = endpoints[0];
        await node1.exec("umask 077; cat > /tmp/wrong.key", { stdin: randomBytes(4096) });
        const off = await node1.exec("fence_xvm -t 5 -k /tmp/wrong.key -H node2 -o off", { timeoutMs: 60_000 });
        expect(off.code).not.toBe(0);
        expect(await virsh("domstate", "node2")).toBe("running");
        await node1.exec("rm -f /tmp/wrong.key");
    });

    it("applies a second time without errors and keeps the same state (every script is idempotent)", async () => {
        const run = await apply();
        expect(run.errors).toEqual([]);
        for (const g of GUESTS) expect(await virsh("domstate", g.name)).toBe("running");
        // The harness has no state: a rerun generates a new key, which replaces ours everywhere and restarts fence_virtd.
        const hostKey = readFileSync("/etc/cluster/fence_xvm.key");
        for (const e of endpoints) expect((await e.readFile("/etc/cluster/fence_xvm.key")).equals(hostKey), e.name).toBe(true);
        const list = await endpoints[1].exec("fence_xvm -t 10 -o list", { timeoutMs: 60_000 });
        expect(list.code, list.stderr).toBe(0);
        expect(list.stdout).toMatch(/^node1\s/m);
    });

    it("tears down to exactly the state before", async () => {
        await teardown();
        await expectMachineAsBefore();
    });

    it("applies and tears down again over a populated filter table, which keeps the user's rule", async () => {
        // A user's own rule in INPUT (on a fresh host it also creates the filter table the lab then shares).
        const userRule = "INPUT -s 127.0.0.2/32 -p tcp --dport 9 -m comment --comment kvm-ha-lab-e2e-user-rule -j ACCEPT";
        const hadTable = (await sh("nft list table ip filter")).code === 0;
        expect((await sh(`iptables -A ${userRule}`)).code).toBe(0);
        const original = before;
        try {
            before = await snapshot();
            expect(before.iptables).toContain("kvm-ha-lab-e2e-user-rule");
            const run = await apply();
            expect(run.errors).toEqual([]);
            expect(await virsh("domstate", "node1")).toBe("running");
            await teardown();
            await expectMachineAsBefore();
        } finally {
            before = original;
            await sh(`iptables -D ${userRule}`);
            if (!hadTable) await sh("nft delete table ip filter");
        }
        await expectMachineAsBefore();
    });

    it("converges after an apply interrupted in the middle, and still tears down to the state before", async () => {
        // An interrupted apply: the harness bounds the wait for what the failure left unresolved (see executing-mocks.ts).
        const failed = await apply({
            injectFailure: (r) => (r.name === "kvmhost-domains" ? "forced failure for the fault test" : undefined),
            timeoutMs: 90_000,
        });
        expect(failed.errors.join("\n")).toContain("forced failure for the fault test");
        const run = await apply();
        expect(run.errors).toEqual([]);
        for (const g of GUESTS) expect(await virsh("domstate", g.name)).toBe("running");
        const conf = rendered().get("cluster.conf")!;
        for (const e of endpoints) expect((await e.readFile("/etc/cluster/cluster.conf")).toString("utf8")).toBe(conf);
        await teardown();
        await expectMachineAsBefore();
    });
});
