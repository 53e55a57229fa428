/**
 * The lab stack (stacks/Pulumi.lab.yaml) applied for real, with REAL guests: node1 and node2 are qemu (TCG) domains
 * booting Debian 12 from the project's guest image (scripts/guest-image.sh) through per-guest qcow2 overlays, on the
 * lab's private bridge br-lab (10.99.0.0/24, no uplink: nothing the guests send leaves this machine). cloud-init gives
 * them their hostnames, addresses and the lab's SSH key; the program delivers the fence key and cluster.conf into
 * their OS over SSH. Then the product's acceptance test runs from inside node1's OS (seed 000): fence_xvm lists both
 * nodes, reboots node2 (running → off → running, its OS answers SSH again), off/on/status behave, and a request
 * signed with a wrong key changes nothing. Teardown leaves the machine exactly as before: overlays and seeds gone,
 * the base image untouched (hashed).
 *
 * The guest cluster is pinned to cman (`guestCluster.stack: cman`): the lab stack itself is on Pacemaker (its guests
 * run Debian; test/e2e/pacemaker-guests.test.ts applies it as it is). This suite is the reference for the stack of the
 * posts the product started from (cluster.conf delivered over SSH) and for fence_xvm run by hand from inside node1:
 * the Debian image has no cman, so no cluster daemon reacts when node2 is rebooted or powered off below (on the
 * Pacemaker stack, node1 would fence node2 on its own).
 *
 * This is the reference for the fencing acceptance test (test/e2e/lab.test.ts runs the same program against
 * network-namespace stand-ins). Never skipped under CI. Timings (image, boot to SSH, whole up) are printed, not
 * asserted.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, createReadStream, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateLabConfig } from "../../components/config";
import { renderLab } from "../../components/render/lab-files";
import { runProc } from "../harness/proc";
import { runProgram, type ProgramRun } from "../harness/run-program";
import { E2E_BINARIES, ensureLibvirt, suiteGate, type LibvirtHandle } from "../harness/services";
import { PROJECT_ROOT, loadStackValues, toPulumiConfig } from "../harness/stack-config";
import { bootToSshMs, seconds } from "../harness/up-timings";
import { virsh, waitDomState } from "./e2e-helpers";
import { assertNoLeftovers, diffSnapshots, snapshot, type Snapshot } from "./machine-state";

const gate = suiteGate("real guests e2e", [...E2E_BINARIES, "qemu-img", "mmdebstrap", "mkfs.ext4", "genisoimage"]);
const GUESTS = [
    { name: "node1", address: "10.99.0.11" },
    { name: "node2", address: "10.99.0.12" },
];
const IMAGE_LINK = "/var/lib/libvirt/images/kvm-ha-lab-debian12";
const BOOT_BOUND_MS = 300_000;

let libvirt: LibvirtHandle | undefined;
let before: Snapshot;
let current: ProgramRun | undefined;
let values: Record<string, unknown>;
let tmp: string;
let keyFile: string;
let baseHashes: Record<string, string>;
const timings: Record<string, string> = {};

async function sha256File(path: string): Promise<string> {
    const h = createHash("sha256");
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
    return h.digest("hex");
}

async function hashBase(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const f of ["disk.qcow2", "vmlinuz", "initrd.img"]) out[f] = await sha256File(realpathSync(join(IMAGE_LINK, f)));
    return out;
}

/** Runs a command in a guest's OS over SSH with the lab's key (OpenSSH client; host keys are the guests' own, new each boot). */
async function ssh(address: string, command: string, opts: { stdin?: Buffer; timeoutMs?: number } = {}) {
    const r = await runProc(
        "ssh",
        [
            "-i", keyFile,
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=5",
            `root@${address}`,
            command,
        ],
        { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 120_000 },
    );
    return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

async function waitSsh(address: string, timeoutMs = BOOT_BOUND_MS): Promise<number> {
    const start = Date.now();
    let last = "";
    while (Date.now() - start < timeoutMs) {
        const r = await ssh(address, "true", { timeoutMs: 15_000 });
        if (r.code === 0) return Date.now() - start;
        last = r.stderr.trim();
        await new Promise((res) => setTimeout(res, 1000));
    }
    throw new Error(`${address} did not answer SSH within ${timeoutMs} ms (last: ${last})`);
}

const bootId = async (address: string) => (await ssh(address, "cat /proc/sys/kernel/random/boot_id")).stdout.trim();

/**
 * libvirt's lifecycle events of a domain while `during` runs ("Stopped Destroyed", "Started Booted", …): a power cycle
 * shows even when it is too quick for polling `virsh domstate` to see it off.
 */
async function lifecycleEvents(name: string, during: () => Promise<void>, settleMs = 2_000): Promise<string[]> {
    const child = spawn("virsh", ["-c", "qemu:///system", "event", "--domain", name, "--event", "lifecycle", "--loop", "--timeout", "600"], {
        stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
        await new Promise((res) => setTimeout(res, 1_000)); // registered before the request goes out
        await during();
        await new Promise((res) => setTimeout(res, settleMs));
    } finally {
        child.kill("SIGTERM");
    }
    return [...out.matchAll(/event 'lifecycle' for domain '?([^':]+)'?: (\w+ \w+)/g)].filter((m) => m[1] === name).map((m) => m[2]);
}

function rendered(): Map<string, string> {
    return renderLab(validateLabConfig(values, { stack: "lab", secretKeys: new Set(), readFile: () => undefined }));
}

describe.skipIf(gate.skip)("real guests: the lab stack boots node1 and node2 and fences from inside node1", () => {
    beforeAll(async () => {
        gate.assertReady();
        assertNoLeftovers("lab", "br-lab");
        // The image (built when missing; cached by its recipe's hash) and its stable link, before the baseline.
        const t0 = Date.now();
        const image = await runProc("bash", [join(PROJECT_ROOT, "scripts/guest-image.sh")], { timeoutMs: 1_500_000 });
        expect(image.code, image.stderr.toString()).toBe(0);
        timings.image = `${((Date.now() - t0) / 1000).toFixed(1)} s (${image.stderr.toString().trim().split("\n").pop()})`;
        baseHashes = await hashBase();
        libvirt = await ensureLibvirt();
        tmp = mkdtempSync(join(tmpdir(), "kvmlab-real-"));
        values = loadStackValues("lab");
        // cman, explicitly (see the header): the posts' stack, and fence_xvm by hand from node1 with no cluster
        // daemon fencing node2 on its own when it is powered off and on below
        (values.guestCluster as Record<string, unknown>).stack = "cman";
        before = await snapshot();
    }, 1_600_000);

    afterAll(async () => {
        try {
            if (current) await current.teardown();
        } finally {
            await libvirt?.stop();
            if (tmp) rmSync(tmp, { recursive: true, force: true });
            console.log(`[real guests] timings: ${JSON.stringify(timings, null, 2)}`);
        }
    }, 600_000);

    it("applies the lab stack: both guests boot from the image and answer SSH", async () => {
        const { config, secretKeys } = toPulumiConfig(values);
        const t0 = Date.now();
        const run = await runProgram({
            stack: "lab",
            config,
            secretKeys,
            programPath: join(PROJECT_ROOT, "index.ts"),
            timeoutMs: 900_000,
            // a TCG guest on a busy machine can be slow to answer once it is up (the provider's own default is 10)
            maxDialRetries: 40,
            log: process.env.KVMLAB_E2E_TRACE ? (line: string) => appendFileSync(process.env.KVMLAB_E2E_TRACE!, `${new Date().toISOString()} ${line}\n`) : undefined,
        });
        current = run;
        timings.up = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
        for (const g of GUESTS) {
            const boot = bootToSshMs(run.records, g.name); // the bench reports the same (npm run bench -- --real-guests)
            if (boot !== undefined) timings[`${g.name} boot to SSH`] = seconds(boot);
        }
        // The lab's key (a secret output) is how the user logs in, and how the tests below do.
        keyFile = join(tmp, "lab.key");
        if (typeof run.outputs.labSshPrivateKey === "string") writeFileSync(keyFile, run.outputs.labSshPrivateKey, { mode: 0o600 });
        expect(run.errors).toEqual([]);
        expect(run.timedOut).toBe(false);
        expect(run.secretOutputs).toContain("labSshPrivateKey");
        expect(run.secretOutputs).not.toContain("labSshPublicKey");
        expect(String(run.outputs.labSshPublicKey)).toMatch(/^ssh-ed25519 \S+$/);
        for (const g of GUESTS) expect(await virsh("domstate", g.name)).toBe("running");
    }, 1_000_000);

    it("each guest runs its own overlay of the base image and has its seed attached", async () => {
        const base = realpathSync(join(IMAGE_LINK, "disk.qcow2"));
        for (const g of GUESTS) {
            const overlay = `/var/lib/libvirt/images/${g.name}.qcow2`;
            const info = await runProc("qemu-img", ["info", "-U", "--output=json", overlay]);
            const json = JSON.parse(info.stdout.toString()) as Record<string, unknown>;
            expect(json.format).toBe("qcow2");
            expect(json["backing-filename"]).toBe(base);
            expect(existsSync(`/var/lib/libvirt/images/${g.name}-cidata.iso`)).toBe(true);
            const xml = await virsh("dumpxml", g.name);
            expect(xml).toContain(`<source file='${overlay}'`);
            expect(xml).toContain(`<source file='/var/lib/libvirt/images/${g.name}-cidata.iso'`);
            expect(xml).toMatch(/<tb-cache unit='(MiB|KiB)'>/);
        }
    });

    it("cloud-init gave each guest its hostname, its address on br-lab, the lab's key for root and the cluster's /etc/hosts", { timeout: 700_000 }, async () => {
        for (const g of GUESTS) {
            const r = await ssh(g.address, "hostname; ip -4 -o addr show; cat /etc/hosts");
            expect(r.code, r.stderr).toBe(0);
            const lines = r.stdout.split("\n");
            expect(lines[0]).toBe(g.name);
            expect(r.stdout).toContain(`inet ${g.address}/24`);
            expect(r.stdout).toMatch(/^10\.99\.0\.11 node1$/m);
            expect(r.stdout).toMatch(/^10\.99\.0\.12 node2$/m);
            // cloud-init's last stage may still run under TCG once sshd answers: wait for it (bounded)
            const status = await ssh(g.address, "timeout 300 cloud-init status --wait --long; grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log | tail -20", { timeoutMs: 330_000 });
            expect(status.stdout, status.stdout).toMatch(/^status: done$/m);
            // cloud-init judges the user-data it was given against its own schema
            const schema = await ssh(g.address, "cloud-init schema --system");
            expect(schema.code, schema.stdout + schema.stderr).toBe(0);
            // sshd started once in this boot: nothing (cloud-init's ssh_pwauth did) restarts it after it first answered,
            // when the lab's deliveries and the user's first login already use it
            const sshd = await ssh(g.address, "journalctl -b -o cat -u ssh.service | grep -c '^Server listening on 0.0.0.0 port 22'");
            expect(sshd.stdout.trim(), sshd.stderr).toBe("1");
        }
        // the guests reach each other on the cluster network
        const ping = await ssh("10.99.0.11", "ping -c 1 -W 5 node2");
        expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    });

    it("delivered the fence key (0400, the host's) and the rendered cluster.conf into each guest's OS", async () => {
        const hostKey = createHash("sha256").update(readFileSync("/etc/cluster/fence_xvm.key")).digest("hex");
        for (const g of GUESTS) {
            const r = await ssh(g.address, "stat -c '%a %u %s' /etc/cluster/fence_xvm.key; sha256sum < /etc/cluster/fence_xvm.key");
            expect(r.code, r.stderr).toBe(0);
            const [stat, sum] = r.stdout.trim().split("\n");
            expect(stat).toBe("400 0 4096");
            expect(sum.split(" ")[0]).toBe(hostKey);
            const conf = await ssh(g.address, "cat /etc/cluster/cluster.conf");
            expect(conf.stdout).toBe(rendered().get("cluster.conf"));
        }
    });

    it("from inside node1: fence_xvm -o list lists both nodes", async () => {
        const list = await ssh("10.99.0.11", "fence_xvm -t 10 -o list");
        expect(list.code, list.stderr).toBe(0);
        expect(list.stdout).toMatch(/^node1\s+[0-9a-f-]{36}\s+on$/m);
        expect(list.stdout).toMatch(/^node2\s+[0-9a-f-]{36}\s+on$/m);
    });

    it("from inside node1: fence_xvm -H node2 -o reboot takes node2 running → off → running, and its OS answers SSH again", async () => {
        const bootBefore = await bootId("10.99.0.12");
        const idBefore = await virsh("domid", "node2");
        expect(await virsh("domstate", "node2")).toBe("running");
        const events = await lifecycleEvents("node2", async () => {
            const reboot = await ssh("10.99.0.11", "fence_xvm -t 30 -H node2 -o reboot", { timeoutMs: 120_000 });
            expect(reboot.code, reboot.stderr).toBe(0);
            expect(await waitDomState("node2", "running")).toBe("running");
        });
        // off (destroyed), then started again: libvirt's own events, and a new domain id
        const stopped = events.findIndex((e) => e.startsWith("Stopped"));
        expect(stopped, events.join(", ")).toBeGreaterThanOrEqual(0);
        expect(events.slice(stopped + 1).some((e) => e.startsWith("Started")), events.join(", ")).toBe(true);
        expect(await virsh("domstate", "node2")).toBe("running");
        expect(await virsh("domid", "node2")).not.toBe(idBefore);
        timings["node2 reboot to SSH"] = `${((await waitSsh("10.99.0.12")) / 1000).toFixed(1)} s`;
        expect(await bootId("10.99.0.12")).not.toBe(bootBefore);
    }, 400_000);

    it("from inside node1: -o off powers node2 off (status 2), -o on starts it (status 0) and it boots again", async () => {
        const off = await ssh("10.99.0.11", "fence_xvm -t 30 -H node2 -o off");
        expect(off.code, off.stderr).toBe(0);
        expect(await waitDomState("node2", "shut off")).toBe("shut off");
        const statusOff = await ssh("10.99.0.11", "fence_xvm -t 30 -H node2 -o status");
        expect(statusOff.code).toBe(2);
        const on = await ssh("10.99.0.11", "fence_xvm -t 30 -H node2 -o on");
        expect(on.code, on.stderr).toBe(0);
        expect(await waitDomState("node2", "running")).toBe("running");
        const statusOn = await ssh("10.99.0.11", "fence_xvm -t 30 -H node2 -o status");
        expect(statusOn.code, statusOn.stderr).toBe(0);
        timings["node2 on to SSH"] = `${((await waitSsh("10.99.0.12")) / 1000).toFixed(1)} s`;
    }, 400_000);

    it("from inside node1: a request signed with a wrong key changes nothing", async () => {
        const idBefore = await virsh("domid", "node2");
        const put = await ssh("10.99.0.11", "umask 077; cat > /root/wrong.key", { stdin: randomBytes(4096) });
        expect(put.code, put.stderr).toBe(0);
        const off = await ssh("10.99.0.11", "fence_xvm -t 5 -k /root/wrong.key -H node2 -o off");
        expect(off.code).not.toBe(0);
        expect(await virsh("domstate", "node2")).toBe("running");
        expect(await virsh("domid", "node2")).toBe(idBefore);
        await ssh("10.99.0.11", "rm -f /root/wrong.key");
    }, 120_000);

    it("tears down to exactly the state before: domains, overlays and seeds gone, the base image untouched", async () => {
        const run = current!;
        current = undefined;
        const result = await run.teardown();
        expect(result.failures, JSON.stringify(result.failures, null, 2)).toEqual([]);
        for (const g of GUESTS) {
            expect(existsSync(`/var/lib/libvirt/images/${g.name}.qcow2`)).toBe(false);
            expect(existsSync(`/var/lib/libvirt/images/${g.name}-cidata.iso`)).toBe(false);
        }
        expect(diffSnapshots(before, await snapshot())).toEqual({});
        expect(await hashBase()).toEqual(baseHashes);
        expect(statSync(realpathSync(join(IMAGE_LINK, "disk.qcow2"))).mode & 0o777).toBe(0o444);
    }, 600_000);
});
