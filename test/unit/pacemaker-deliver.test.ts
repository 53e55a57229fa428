/**
 * The Pacemaker delivery scripts (components/scripts/pacemaker-deliver.ts) run for real, as root, against the real
 * corosync 3 and Pacemaker of this machine, inside a private mount, network and PID namespace standing in for a
 * cluster node (its own /etc/corosync, /var/lib (with only dpkg's database), /run, /dev/shm, logs, and the node's address on its
 * loopback; the namespace dies with everything in it). The node is node1 of the lab's two-node cluster whose peer never
 * comes: corosync runs without quorum (wait_for_all), as on a first node, and the CIB must still take the
 * configuration.
 *
 * In order: the authkey (0400, 256 bytes); corosync.conf refusing a foreign file, then taking over the distribution's
 * own unmodified default (kept to put back); corosync and pacemaker started (no init system here: directly); the CIB's
 * configuration loaded with cibadmin (the CIB manager validates it; the running fencer then lists node2's own
 * fence_xvm device as the one that fences node2, and none for node1, whose device is banned there), a rerun that changes nothing (same epoch), a
 * changed configuration replacing the old one in place, an invalid one refused with the CIB unchanged; a changed
 * corosync.conf reloaded by the running corosync; then every delete: the CIB's earlier configuration back, the stack
 * stopped, the default corosync.conf back, the key gone, no state left. Last, a node that runs the distribution's
 * placeholder cluster (as Debian starts one at boot): the lab's file restarts corosync with it, delete puts both back.
 */
import { spawnSync } from "node:child_process";
import { inlineLibrary } from "../../components/scripts/prelude";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { renderGuestCorosyncConf } from "../../components/render/corosync-conf";
import { renderGuestCib } from "../../components/render/pacemaker-cib";
import {
    cibConfiguration,
    cibLoadScripts,
    clusterStackScripts,
    corosyncAuthkeyScripts,
    corosyncConfScripts,
} from "../../components/scripts/pacemaker-deliver";
import { hasTool, need } from "../helpers/tools";
import { pacemakerSpec } from "../helpers/pacemaker-stacks";

const LAB = "pcmkdeliver";
const ID = "guest-pacemaker";
const ADDRESS = "10.99.0.11";
const HAVE =
    process.getuid?.() === 0 &&
    ["corosync", "pacemakerd", "cibadmin", "corosync-cfgtool", "corosync-cmapctl", "unshare", "ip", "setsid"].every(hasTool) &&
    existsSync("/etc/corosync/corosync.conf");

const spec = pacemakerSpec("lab");
const specV2 = pacemakerSpec("lab", (r) => (r.guestCluster.services = [{ name: "web", ips: [{ address: "10.99.0.50/24" }] }]));
const specToken = pacemakerSpec("lab", (r) => (r.guestCluster.totem = { token: 7000 }));
const KEY = Buffer.alloc(256, "corosync test key 0123456789");

/** The steps, run in order by one shell inside the namespace; each prints `@@ <step> rc=<n>` then its own output. */
const STEPS: [name: string, script: "authkey" | "conf" | "stack" | "cib" | "shell", which: "create" | "delete" | "", stdin: string][] = [];

let dir = "";
let out = "";
const results = new Map<string, { rc: number; out: string }>();

function step(name: string, script: (typeof STEPS)[number][1], which: (typeof STEPS)[number][2], stdin = "") {
    STEPS.push([name, script, which, stdin]);
}

beforeAll(() => {
    if (!HAVE) return;
    dir = mkdtempSync(join(tmpdir(), "pcmk-deliver-"));
    const stateRoot = join(dir, "state");
    const scripts = {
        authkey: corosyncAuthkeyScripts(LAB, { id: ID, stateRoot }),
        conf: corosyncConfScripts(LAB, { id: ID, stateRoot }),
        stack: clusterStackScripts(LAB, { id: ID, stateRoot, requireFiles: ["/etc/corosync/authkey"] }),
        cib: cibLoadScripts(LAB, { id: ID, stateRoot, waitSeconds: 60 }),
    };
    for (const [k, s] of Object.entries(scripts)) {
        writeFileSync(join(dir, `${k}.create`), inlineLibrary(s.create));
        writeFileSync(join(dir, `${k}.delete`), inlineLibrary(s.delete));
    }
    const epoch = 'cibadmin --query | sed -n "1s/.* epoch=\\"\\([0-9]*\\)\\".*/epoch=\\1/p"';
    step("authkey", "authkey", "create", KEY.toString("base64"));
    step("authkey-file", "shell", "", 'stat -c "%a %s %u" /etc/corosync/authkey');
    step("foreign-conf", "shell", "", 'echo "# not ours" > /etc/corosync/corosync.conf');
    step("conf-refused", "conf", "create", renderGuestCorosyncConf(spec));
    step("foreign-kept", "shell", "", "cat /etc/corosync/corosync.conf");
    step("default-conf", "shell", "", `cp "${join(dir, "default.conf")}" /etc/corosync/corosync.conf`);
    step("conf", "conf", "create", renderGuestCorosyncConf(spec));
    step("conf-file", "shell", "", "cat /etc/corosync/corosync.conf");
    step("conf-again", "conf", "create", renderGuestCorosyncConf(spec));
    step("stack", "stack", "create");
    step("stack-again", "stack", "create");
    step("running", "shell", "", "for n in corosync pacemakerd; do for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = $n ] && echo $n && break; done; done");
    step("cib", "cib", "create", cibConfiguration(renderGuestCib(spec)));
    step("cib-1", "shell", "", `${epoch}; cibadmin --query --scope resources`);
    // the fencer reads the devices from the CIB: which would fence node2, and node1 (its own device is banned here)
    step(
        "fencer",
        "shell",
        "",
        'i=0; until stonith_admin --list-registered 2>/dev/null | grep -q xvm-node2; do i=$((i+1)); [ $i -lt 150 ] || break; sleep 0.2; done; echo "== node2"; stonith_admin --list node2; echo "== node1"; stonith_admin --list node1; true',
    );
    step("cib-again", "cib", "create", cibConfiguration(renderGuestCib(spec)));
    step("cib-1-again", "shell", "", epoch);
    step("cib-v2", "cib", "create", cibConfiguration(renderGuestCib(specV2)));
    step("cib-2", "shell", "", `${epoch}; cibadmin --query --scope resources`);
    step("cib-invalid", "cib", "create", cibConfiguration(renderGuestCib(spec)).replace('class="stonith"', 'class="stonith" bogus="1"'));
    step("cib-2-after-invalid", "shell", "", `${epoch}; cibadmin --query --scope resources`);
    step("conf-token", "conf", "create", renderGuestCorosyncConf(specToken));
    step("token", "shell", "", "corosync-cmapctl -g totem.token");
    step("cib-delete", "cib", "delete");
    step("cib-restored", "shell", "", "cibadmin --query --scope resources");
    step("stack-delete", "stack", "delete");
    step("stopped", "shell", "", "sleep 1; for n in corosync pacemakerd; do for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = $n ] && echo $n && break; done; done; true");
    step("conf-delete", "conf", "delete");
    step("conf-restored", "shell", "", "md5sum < /etc/corosync/corosync.conf");
    step("authkey-delete", "authkey", "delete");
    step("key-gone", "shell", "", "ls -A /etc/corosync");
    step("state", "shell", "", `find "${stateRoot}" /var/lib/kvm-ha-lab -type f 2>/dev/null; true`);
    // a node that runs the distribution's placeholder cluster (Debian starts one at boot with its default file)
    step("placeholder", "shell", "", "corosync && sleep 1 && corosync-cmapctl -g totem.cluster_name");
    step("authkey-2", "authkey", "create", KEY.toString("base64"));
    step("conf-over-placeholder", "conf", "create", renderGuestCorosyncConf(spec));
    step("placeholder-replaced", "shell", "", "sleep 1; corosync-cmapctl -g totem.cluster_name; corosync-cmapctl -g nodelist.node.0.ring0_addr");
    step("conf-over-placeholder-delete", "conf", "delete");
    step("placeholder-back", "shell", "", "sleep 1; corosync-cmapctl -g totem.cluster_name; md5sum < /etc/corosync/corosync.conf");
    step("authkey-2-delete", "authkey", "delete");

    writeFileSync(join(dir, "default.conf"), readFileSync("/etc/corosync/corosync.conf"));
    const lines = [
        "set -u",
        // a private /var/lib with only dpkg's database in it: the scripts' state (/var/lib/kvm-ha-lab), corosync's and
        // pacemaker's never touch the machine's own, which other suites snapshot
        `mkdir -p "${join(dir, "dpkg")}" && mount --bind /var/lib/dpkg "${join(dir, "dpkg")}"`,
        "mount -t tmpfs -o mode=0755 tmpfs /var/lib",
        `mkdir -p /var/lib/dpkg /var/lib/corosync /var/lib/pacemaker && mount --bind "${join(dir, "dpkg")}" /var/lib/dpkg`,
        "mount -t tmpfs -o mode=0755 tmpfs /etc/corosync",
        "mount -t tmpfs -o mode=0755 tmpfs /var/lib/corosync",
        "mount -t tmpfs -o mode=0755 tmpfs /var/lib/pacemaker",
        "mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/cores /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox",
        "chown -R hacluster:haclient /var/lib/pacemaker",
        "mkdir -p /var/log/pacemaker && mount -t tmpfs -o mode=0770 tmpfs /var/log/pacemaker && chown hacluster:haclient /var/log/pacemaker",
        "mount -t tmpfs -o mode=0755 tmpfs /run",
        "mount -t tmpfs -o mode=1777 tmpfs /dev/shm",
        "ip link set lo up",
        `ip addr add ${ADDRESS}/32 dev lo`,
        "export KVM_HA_LAB_INIT=none",
    ];
    STEPS.forEach(([name, script, which, stdin], i) => {
        const input = join(dir, `stdin-${i}`);
        writeFileSync(input, stdin);
        const cmd = script === "shell" ? `sh "${input}" </dev/null` : `sh "${join(dir, `${script}.${which}`)}" < "${input}"`;
        lines.push(`echo "@@ ${name} begin"`, `${cmd} 2>&1; echo "@@ ${name} rc=$?"`);
    });
    writeFileSync(join(dir, "driver.sh"), `${lines.join("\n")}\n`);
    const r = spawnSync("unshare", ["--mount", "--net", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sh", join(dir, "driver.sh")], {
        encoding: "utf8",
        timeout: 240_000,
    });
    out = `${r.stdout}${r.stderr}`;
    for (const m of out.matchAll(/^@@ (\S+) begin\n([\s\S]*?)^@@ \1 rc=(\d+)$/gm)) results.set(m[1], { rc: Number(m[3]), out: m[2] });
}, 300_000);

afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** The machine's own state directory of the test lab: the namespace has a private /var/lib, so it never appears. */
const HOST_STATE = `/var/lib/kvm-ha-lab/${LAB}`;

const res = (name: string) => {
    const r = results.get(name);
    if (r === undefined) throw new Error(`step ${name} did not run:\n${out.slice(-4000)}`);
    return r;
};
const ok = (name: string) => expect(res(name).rc, `${name}:\n${res(name).out}`).toBe(0);

describe("Pacemaker delivery on a node, for real (corosync 3 and Pacemaker in a namespace)", () => {
    beforeEach((ctx) => need(ctx, "root, corosync, pacemaker (pacemakerd, cibadmin), unshare, ip, setsid and Debian's /etc/corosync/corosync.conf", HAVE));

    it("installs the authkey: 0400, 256 bytes, root", () => {
        ok("authkey");
        expect(res("authkey-file").out.trim()).toBe("400 256 0");
    });

    it("refuses a corosync.conf it did not write (left as it was), takes over the distribution's default, and a rerun changes nothing", () => {
        expect(res("conf-refused").rc).not.toBe(0);
        expect(res("conf-refused").out).toMatch(/corosync.conf exists and was not written by kvm-ha-lab/);
        expect(res("foreign-kept").out).toBe("# not ours\n");
        ok("conf");
        expect(res("conf").out).toMatch(/kept the distribution's default/);
        expect(res("conf-file").out).toBe(renderGuestCorosyncConf(spec));
        ok("conf-again");
        expect(res("conf-again").out).toBe("");
    });

    it("starts corosync and pacemaker, once", () => {
        ok("stack");
        expect(res("stack").out).toMatch(/started corosync \(none\)[\s\S]*started pacemaker \(none\)/);
        ok("stack-again");
        expect(res("stack-again").out).toBe("");
        expect(res("running").out.trim().split("\n")).toEqual(["corosync", "pacemakerd"]);
    });

    it("loads the CIB's configuration with cibadmin; the same again changes nothing; a change replaces it in place; an invalid one is refused", () => {
        ok("cib");
        expect(res("cib-1").out).toMatch(/<primitive id="xvm-node1" class="stonith" type="fence_xvm">/);
        expect(res("cib-1").out).not.toMatch(/ip-web-1/);
        const epoch = (name: string) => Number(/epoch=(\d+)/.exec(res(name).out)?.[1]);
        // the running fencer takes node2's fence_xvm device from the CIB, and keeps node1's own device off node1
        const [node2, node1] = res("fencer").out.split("== node1");
        expect(node2).toMatch(/xvm-node2/);
        expect(node2).not.toMatch(/xvm-node1/);
        expect(node1).not.toMatch(/xvm-node/);
        ok("cib-again");
        expect(epoch("cib-1-again")).toBe(epoch("cib-1"));
        ok("cib-v2");
        expect(res("cib-2").out).toMatch(/<primitive id="ip-web-1" class="ocf" provider="heartbeat" type="IPaddr2">/);
        expect(epoch("cib-2")).toBeGreaterThan(epoch("cib-1"));
        expect(res("cib-invalid").rc).not.toBe(0);
        expect(res("cib-invalid").out).toMatch(/cibadmin refused the new configuration/);
        expect(epoch("cib-2-after-invalid")).toBe(epoch("cib-2"));
        expect(res("cib-2-after-invalid").out).toMatch(/ip-web-1/);
    });

    it("reloads a changed corosync.conf into the running corosync", () => {
        ok("conf-token");
        expect(res("conf-token").out).toMatch(/corosync-cfgtool -R/);
        expect(res("token").out).toMatch(/= 7000/);
    });

    it("deletes: the CIB's earlier configuration back, the stack stopped, the default corosync.conf back, the key gone, no state left", () => {
        ok("cib-delete");
        expect(res("cib-restored").out).not.toMatch(/primitive/);
        ok("stack-delete");
        expect(res("stopped").out.trim()).toBe("");
        ok("conf-delete");
        const wanted = spawnSync("md5sum", [join(dir, "default.conf")], { encoding: "utf8" }).stdout.split(" ")[0];
        expect(res("conf-restored").out.split(" ")[0]).toBe(wanted);
        ok("authkey-delete");
        expect(res("key-gone").out.trim()).toBe("corosync.conf");
        expect(res("state").out.trim()).toBe("");
        expect(existsSync(HOST_STATE), `${HOST_STATE} on this machine`).toBe(false);
    });

    it("restarts a corosync that runs the distribution's placeholder cluster with the lab's file, and puts both back on delete", () => {
        ok("placeholder");
        const placeholder = /= (.*)$/m.exec(res("placeholder").out)?.[1];
        expect(placeholder).toBeDefined();
        expect(placeholder).not.toBe("labcluster");
        ok("authkey-2");
        ok("conf-over-placeholder");
        expect(res("conf-over-placeholder").out).toMatch(/not lab pcmkdeliver's: restarted corosync/);
        expect(res("placeholder-replaced").out).toMatch(/totem.cluster_name \(str\) = labcluster/);
        expect(res("placeholder-replaced").out).toMatch(/= 10\.99\.0\.11/);
        ok("conf-over-placeholder-delete");
        expect(res("placeholder-back").out).toContain(`= ${placeholder}`);
        ok("authkey-2-delete");
    });
});
