/**
 * fenceVirtdScripts, run for real. The instance runs inside a throwaway network namespace (its UDP port and multicast
 * group are the namespace's own); libvirtd runs in the root namespace (started by libvirtdScripts if not running, and
 * stopped at the end only if this file started it). The key is installed with fileScripts, as the lab does.
 *
 * No init system runs on this machine (PID 1 is not systemd or SysV init), so the init-less path runs for real; the
 * systemd and SysV paths run against SHIMS put first on PATH: a fake `systemctl` that records its calls and emulates
 * start/stop from the unit's ExecStart/PIDFile, a fake `service` that records its calls and runs our real init script,
 * and fake `chkconfig`/`update-rc.d` that only record. The generated unit is judged by `systemd-analyze verify`, the
 * init script by `sh -n`/`bash -n` and by running it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ETC_ROOT, labNames } from "../../components/names";
import { fenceVirtdScripts, renderFenceVirtdInitScript, renderFenceVirtdUnit } from "../../components/scripts/fence-virtd";
import { fileScripts } from "../../components/scripts/file";
import { libvirtdScripts } from "../../components/scripts/libvirtd";
import {
    dropState,
    fileFacts,
    missingPrereqs,
    Netns,
    ok,
    pidsMatching,
    run,
    sha256,
    Shims,
    skipBecause,
    stateDirExists,
    stateFiles,
} from "./scripts-harness";

const LAB = "hsct-fv";
const LV_LAB = "hsct-fvlv";
const N = labNames(LAB).fenceVirtd;
const DIR = `/tmp/hsc-fv-${process.pid}`;
const KEY = `${DIR}/fence_xvm.key`;
const PORT = 1229;

function conf(opts: { hash?: string; key?: string } = {}): string {
    return [
        "fence_virtd {",
        '\tlistener = "multicast";',
        '\tbackend = "libvirt";',
        "}",
        "listeners {",
        "\tmulticast {",
        `\t\tkey_file = "${opts.key ?? KEY}";`,
        '\t\taddress = "225.0.0.12";',
        `\t\tport = "${PORT}";`,
        '\t\tinterface = "hscv0";',
        '\t\tfamily = "ipv4";',
        `\t\thash = "${opts.hash ?? "sha256"}";`,
        '\t\tauth = "sha256";',
        "\t}",
        "}",
        "backends {",
        "\tlibvirt {",
        '\t\turi = "qemu:///system";',
        "\t}",
        "}",
        "",
    ].join("\n");
}

/** The same instance with the tcp listener, bound to the namespace's 10.252.0.1 (as a lab binds its bridge address). */
function tcpConf(opts: { port?: number } = {}): string {
    return conf()
        .replace('listener = "multicast";', 'listener = "tcp";')
        .replace("\tmulticast {", "\ttcp {")
        .replace('\t\taddress = "225.0.0.12";\n', '\t\taddress = "10.252.0.1";\n')
        .replace(`\t\tport = "${PORT}";`, `\t\tport = "${opts.port ?? PORT}";`)
        .replace('\t\tinterface = "hscv0";\n', "");
}

/** The same instance with the vsock listener (vsock ports are not per namespace: an unusual one). */
const VSOCK_PORT = 17231;
function vsockConf(): string {
    return tcpConf({ port: VSOCK_PORT })
        .replace('listener = "tcp";', 'listener = "vsock";')
        .replace("\ttcp {", "\tvsock {")
        .replace('\t\taddress = "10.252.0.1";\n', "")
        .replace('\t\tfamily = "ipv4";\n', "");
}

const skip = skipBecause(
    "scripts-fence-virtd",
    missingPrereqs(["ip", "ss", "fence_virtd", "fence_xvm", "fence_virt", "libvirtd", "virsh", "sha256sum"], () =>
        existsSync("/usr/sbin/fence_virtd") ? undefined : "/usr/sbin/fence_virtd",
    ),
);

describe.skipIf(skip)("fence_virtd script", () => {
    let ns: Netns;
    const key = fileScripts(LAB, { id: "fence-key", path: KEY, mode: "0400", decodeBase64: true, sizeBytes: 4096 });
    const installKey = (bytes: Buffer = randomBytes(4096)) => {
        ok(key.create, { stdin: bytes.toString("base64") });
        return bytes;
    };
    const ours = () => pidsMatching("fence_virtd", N.configFile);
    const listeners = () => ok("ss -lunp", { netns: ns.name }).stdout;
    const distConf = () => fileFacts("/etc/fence_virt.conf");
    let distBefore: ReturnType<typeof fileFacts>;

    function cleanup(): void {
        for (const pid of ours()) run(`kill ${pid}`);
        run(`rm -f '${N.systemdUnitFile}' '${N.sysvInitScript}' '${N.pidFile}' '${N.configFile}'; rmdir '${labNames(LAB).etcDir}' '${ETC_ROOT}' 2>/dev/null`);
        rmSync(DIR, { recursive: true, force: true });
        dropState(LAB);
    }

    beforeAll(() => {
        cleanup();
        dropState(LV_LAB);
        ok(libvirtdScripts(LV_LAB).create);
        distBefore = distConf();
    });
    afterEach(() => {
        ns?.destroy();
        cleanup();
    });
    afterAll(() => {
        ns?.destroy();
        ok(libvirtdScripts(LV_LAB).delete);
        dropState(LV_LAB);
        // the distribution's own fence_virtd configuration was never touched
        expect(distConf()).toEqual(distBefore);
    });

    function freshNs(tag: string): Netns {
        ns = new Netns(tag);
        ns.exec("ip link add hscv0 type veth peer name hscv0p && ip addr add 10.252.0.1/24 dev hscv0 && ip link set hscv0 up && ip link set hscv0p up");
        mkdirSync(DIR, { recursive: true });
        return ns;
    }

    it("refuses to run without the key, with a key others can read, or with a config naming another key", () => {
        const n = freshNs("fv1");
        const s = fenceVirtdScripts(LAB, { keyFile: KEY, port: PORT });
        const expectNothing = () => {
            expect(ours()).toEqual([]);
            expect(existsSync(N.configFile)).toBe(false);
            expect(existsSync(labNames(LAB).etcDir)).toBe(false);
            expect(Object.keys(stateFiles(LAB)).filter((k) => k.startsWith("fence-virtd/"))).toEqual([]);
        };
        const r1 = run(s.create, { netns: n.name, stdin: conf() });
        expect(r1.code).not.toBe(0);
        expect(r1.stderr).toMatch(/fence key \S+fence_xvm\.key does not exist: deliver the key first \(without it fence_virtd would run WITHOUT authentication\)/);
        expect(r1.stderr.trim().split("\n")).toHaveLength(1);
        expectNothing();

        const loose = fileScripts(LAB, { id: "loose-key", path: KEY, mode: "0644", decodeBase64: true });
        ok(loose.create, { stdin: randomBytes(4096).toString("base64") });
        const r2 = run(s.create, { netns: n.name, stdin: conf() });
        expect(r2.code).not.toBe(0);
        expect(r2.stderr).toMatch(/has owner uid 0 and mode 644; it must be owned by root and readable by root only/);
        expectNothing();
        ok(loose.delete);

        installKey();
        const r3 = run(s.create, { netns: n.name, stdin: conf({ key: "/etc/fence_virt.key" }) });
        expect(r3.code).not.toBe(0);
        expect(r3.stderr).toMatch(/does not set key_file = "\/tmp\/hsc-fv-\d+\/fence_xvm\.key": the instance must use the lab's fence key/);
        expectNothing();
    });

    it("refuses a udp port another process listens on, naming it", async () => {
        const n = freshNs("fv2");
        installKey();
        let blocker: ChildProcess | undefined;
        try {
            blocker = spawn("ip", ["netns", "exec", n.name, process.execPath, "-e", `require("dgram").createSocket("udp4").bind(${PORT}); setTimeout(() => {}, 60000)`], {
                stdio: "ignore",
            });
            for (let i = 0; i < 100 && !listeners().includes(`:${PORT} `); i++) await new Promise((r) => setTimeout(r, 50));
            const s = fenceVirtdScripts(LAB, { keyFile: KEY, port: PORT });
            const r = run(s.create, { netns: n.name, stdin: conf() });
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(new RegExp(`udp port ${PORT} is already in use by pid \\d+ \\(\\S*node -e .*: give this lab another fencing port`));
            expect(ours()).toEqual([]);
            expect(existsSync(N.configFile)).toBe(false);
        } finally {
            blocker?.kill();
        }
    });

    it("without an init system: starts, reruns without a restart, restarts on config or key change, and delete stops exactly it", () => {
        const n = freshNs("fv3");
        const keyBytes = installKey();
        const s = fenceVirtdScripts(LAB, { keyFile: KEY, port: PORT });
        const env = { KVM_HA_LAB_INIT: "none" };

        const r1 = run(s.create, { netns: n.name, stdin: conf(), env });
        expect(r1.code, r1.stderr).toBe(0);
        expect(r1.stdout).toBe("");
        const [pid1] = ours();
        expect(pid1).toBeGreaterThan(0);
        expect(ours()).toHaveLength(1);
        expect(readFileSync(N.pidFile, "utf8").trim()).toBe(String(pid1));
        expect(listeners()).toMatch(new RegExp(`:${PORT} .*"fence_virtd",pid=${pid1},`));
        const conf1 = fileFacts(N.configFile)!;
        expect(conf1).toMatchObject({ sha256: sha256(conf()), mode: "600", uid: 0 });
        // fence_virtd turned its key to 0600 when it started; the script gave it back its 0400
        expect(r1.stderr).toMatch(/restored mode 0400 on \S+ \(fence_virtd changes its key file to 0600 when it starts\)/);
        expect(fileFacts(KEY)).toMatchObject({ mode: "400", sha256: sha256(keyBytes) });
        expect(stateFiles(LAB)).toMatchObject({
            "fence-virtd/init": "none\n",
            "fence-virtd/config.sha256": `${sha256(conf())}\n`,
            "fence-virtd/key.sha256": `${sha256(keyBytes)}\n`,
        });

        // it really serves authenticated requests with the key, and drops requests signed with another key
        const list = run(`fence_xvm -o list -a 225.0.0.12 -p ${PORT} -k ${KEY} -t 10`, { netns: n.name });
        expect(list.code, list.stderr).toBe(0);
        writeFileSync(`${DIR}/wrong.key`, randomBytes(4096), { mode: 0o400 });
        const wrong = run(`fence_xvm -o list -a 225.0.0.12 -p ${PORT} -k ${DIR}/wrong.key -t 2 -r 1`, { netns: n.name });
        expect(wrong.code).not.toBe(0);

        // again: same process, same files, nothing said
        const r2 = run(s.create, { netns: n.name, stdin: conf(), env });
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.stderr).toBe("");
        expect(ours()).toEqual([pid1]);
        expect(fileFacts(N.configFile)).toEqual(conf1);

        // a new config restarts it
        const r3 = run(s.create, { netns: n.name, stdin: conf({ hash: "sha512" }), env });
        expect(r3.code, r3.stderr).toBe(0);
        expect(r3.stderr).toMatch(new RegExp(`stopped ${N.service} \\(pid ${pid1}\\) to restart it`));
        const [pid2] = ours();
        expect(pid2).not.toBe(pid1);
        expect(ours()).toHaveLength(1);
        expect(readFileSync(N.configFile, "utf8")).toBe(conf({ hash: "sha512" }));

        // a new key (same config) restarts it
        const key2 = installKey();
        const r4 = run(s.create, { netns: n.name, stdin: conf({ hash: "sha512" }), env });
        expect(r4.code, r4.stderr).toBe(0);
        const [pid3] = ours();
        expect(pid3).not.toBe(pid2);
        expect(stateFiles(LAB)["fence-virtd/key.sha256"]).toBe(`${sha256(key2)}\n`);

        const d = run(s.delete, { netns: n.name, env });
        expect(d.code, d.stderr).toBe(0);
        expect(ours()).toEqual([]);
        expect(listeners()).not.toContain(`:${PORT} `);
        for (const p of [N.configFile, N.pidFile, labNames(LAB).etcDir]) expect(existsSync(p), p).toBe(false);
        expect(Object.keys(stateFiles(LAB)).filter((k) => k.startsWith("fence-virtd/"))).toEqual([]);
        ok(key.delete);
        expect(stateDirExists(LAB)).toBe(false);
        expect(run(s.delete, { netns: n.name, env }).code).toBe(0);
    });

    it("tcp listener without an init system: waits for the tcp socket, serves fence_virt -T, refuses a taken tcp port, delete stops it", async () => {
        const n = freshNs("fv7");
        installKey();
        const s = fenceVirtdScripts(LAB, { keyFile: KEY, port: PORT, protocol: "tcp" });
        const env = { KVM_HA_LAB_INIT: "none" };
        const tcpListeners = () => ok("ss -ltnp", { netns: n.name }).stdout;
        expect(tcpConf()).toMatch(/listener = "tcp";[\s\S]*\ttcp \{\n\t\tkey_file = "[^"]+";\n\t\taddress = "10\.252\.0\.1";\n\t\tport = "1229";\n\t\tfamily = "ipv4";/);

        // a tcp port another process listens on: refused, naming it, nothing changed
        let blocker: ChildProcess | undefined;
        try {
            blocker = spawn("ip", ["netns", "exec", n.name, process.execPath, "-e", `require("net").createServer().listen(${PORT}); setTimeout(() => {}, 60000)`], { stdio: "ignore" });
            for (let i = 0; i < 100 && !tcpListeners().includes(`:${PORT} `); i++) await new Promise((r) => setTimeout(r, 50));
            const r = run(s.create, { netns: n.name, stdin: tcpConf(), env });
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(new RegExp(`tcp port ${PORT} is already in use by pid \\d+ \\(\\S*node -e .*: give this lab another fencing port \\(guestCluster\\.fencing\\.tcp\\.port\\)`));
            expect(ours()).toEqual([]);
            expect(existsSync(N.configFile)).toBe(false);
        } finally {
            blocker?.kill();
        }
        for (let i = 0; i < 100 && tcpListeners().includes(`:${PORT} `); i++) await new Promise((r) => setTimeout(r, 50));
        // a udp socket on the same port number is no obstacle to a tcp listener
        expect(listeners()).not.toContain(`:${PORT} `);

        const r1 = run(s.create, { netns: n.name, stdin: tcpConf(), env });
        expect(r1.code, r1.stderr).toBe(0);
        const [pid] = ours();
        expect(pid).toBeGreaterThan(0);
        // the script waited for this very socket: tcp, on the bridge-like address, owned by our instance
        expect(tcpListeners()).toMatch(new RegExp(`10\\.252\\.0\\.1:${PORT}\\s.*"fence_virtd",pid=${pid},`));
        expect(listeners()).not.toContain(`:${PORT} `);
        const list = run(`fence_virt -T 10.252.0.1 -p ${PORT} -k ${KEY} -o list -t 10`, { netns: n.name });
        expect(list.code, list.stderr).toBe(0);
        writeFileSync(`${DIR}/wrong.key`, randomBytes(4096), { mode: 0o400 });
        expect(run(`fence_virt -T 10.252.0.1 -p ${PORT} -k ${DIR}/wrong.key -o list -t 5`, { netns: n.name }).code).not.toBe(0);

        // again: nothing to do
        const r2 = run(s.create, { netns: n.name, stdin: tcpConf(), env });
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.stderr).toBe("");
        expect(ours()).toEqual([pid]);

        const d = run(s.delete, { netns: n.name, env });
        expect(d.code, d.stderr).toBe(0);
        expect(ours()).toEqual([]);
        expect(tcpListeners()).not.toContain(`:${PORT} `);
        expect(existsSync(N.configFile)).toBe(false);
        ok(key.delete);
    });

    it("the tcp wait can fail: a tcp instance whose address is not on any interface never listens, and create says so", () => {
        const n = freshNs("fv8");
        installKey();
        // -w makes fence_virtd retry the listener every 5 s; the script gives up after 30 s with the reason
        const s = fenceVirtdScripts(LAB, { keyFile: KEY, port: PORT, protocol: "tcp" });
        const r = run(s.create, { netns: n.name, stdin: tcpConf().replace('address = "10.252.0.1";', 'address = "10.252.9.9";'), env: { KVM_HA_LAB_INIT: "none" } });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/does not listen on tcp 1229 after 30 s: .*the bridge has the listener address/);
        const d = run(s.delete, { netns: n.name, env: { KVM_HA_LAB_INIT: "none" } });
        expect(d.code, d.stderr).toBe(0);
        expect(ours()).toEqual([]);
        ok(key.delete);
    });

    it("vsock listener without an init system: runs; waits for the vsock socket only where ss can list them (vsock_diag), else says so", () => {
        const n = freshNs("fv9");
        installKey();
        const s = fenceVirtdScripts(LAB, { keyFile: KEY, port: VSOCK_PORT, protocol: "vsock" });
        const env = { KVM_HA_LAB_INIT: "none" };
        const r1 = run(s.create, { netns: n.name, stdin: vsockConf(), env });
        expect(r1.code, r1.stderr).toBe(0);
        const [pid] = ours();
        expect(pid).toBeGreaterThan(0);
        if (existsSync("/sys/module/vsock_diag")) {
            expect(run("ss --vsock -lp").stdout).toMatch(new RegExp(`:${VSOCK_PORT}\\s.*pid=${pid},`));
        } else {
            expect(r1.stderr).toMatch(new RegExp(`cannot check vsock port ${VSOCK_PORT} \\(ss lists vsock sockets only with the kernel's vsock_diag module\\)`));
            expect(r1.stderr).toMatch(new RegExp(`not waiting for ${N.service} \\(pid ${pid}\\) to listen on vsock ${VSOCK_PORT}`));
        }
        const d = run(s.delete, { netns: n.name, env });
        expect(d.code, d.stderr).toBe(0);
        expect(ours()).toEqual([]);
        ok(key.delete);
    });

    it("systemd (shims: no systemd runs here): writes a unit systemd-analyze accepts, enables and starts it once", () => {
        const n = freshNs("fv4");
        installKey();
        const shims = new Shims("fv-systemd");
        // A fake systemctl: records its calls; start/stop/is-active emulate systemd from the unit's ExecStart and PIDFile.
        shims.add(
            "systemctl",
            String.raw`
verb=''; unit=''
for a in "$@"; do case "$a" in -*) ;; *) if [ -z "$verb" ]; then verb=$a; else unit=/etc/systemd/system/$a; fi ;; esac; done
pidf() { sed -n 's/^PIDFile=//p' "$unit"; }
active() { p=$(cat "$(pidf)" 2>/dev/null) && [ -n "$p" ] && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q fence_virtd; }
start() { $(sed -n 's/^ExecStart=//p' "$unit") </dev/null >/dev/null 2>&1; }
stop() { p=$(cat "$(pidf)" 2>/dev/null) || return 0; kill "$p" 2>/dev/null; i=0; while active && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; rm -f "$(pidf)"; }
case "$verb" in
    is-active) active ;;
    start) active || start ;;
    stop) stop ;;
    restart) stop; start ;;
    daemon-reload|enable|disable) ;;
    *) exit 1 ;;
esac`,
        );
        try {
            const s = fenceVirtdScripts(LAB, { keyFile: KEY, port: PORT });
            const env = shims.env({ KVM_HA_LAB_INIT: "systemd" });
            const svc = `${N.service}.service`;
            const r1 = run(s.create, { netns: n.name, stdin: conf(), env });
            expect(r1.code, r1.stderr).toBe(0);
            expect(readFileSync(N.systemdUnitFile, "utf8")).toBe(renderFenceVirtdUnit(LAB));
            expect(fileFacts(N.systemdUnitFile)?.mode).toBe("644");
            expect(shims.calls()).toEqual([`systemctl daemon-reload`, `systemctl enable ${svc}`, `systemctl is-active --quiet ${svc}`, `systemctl start ${svc}`]);
            expect(ours()).toHaveLength(1);
            expect(listeners()).toContain(`:${PORT} `);

            shims.clearCalls();
            const r2 = run(s.create, { netns: n.name, stdin: conf(), env });
            expect(r2.code, r2.stderr).toBe(0);
            expect(shims.calls()).toEqual([`systemctl enable ${svc}`, `systemctl is-active --quiet ${svc}`]);

            shims.clearCalls();
            expect(run(s.create, { netns: n.name, stdin: conf({ hash: "sha512" }), env }).code).toBe(0);
            expect(shims.calls()).toEqual([`systemctl enable ${svc}`, `systemctl is-active --quiet ${svc}`, `systemctl restart ${svc}`]);

            shims.clearCalls();
            const d = run(s.delete, { netns: n.name, env });
            expect(d.code, d.stderr).toBe(0);
            expect(shims.calls()).toEqual([`systemctl stop ${svc}`, `systemctl disable ${svc}`, `systemctl daemon-reload`]);
            expect(ours()).toEqual([]);
            expect(existsSync(N.systemdUnitFile)).toBe(false);
            expect(existsSync(N.configFile)).toBe(false);
        } finally {
            shims.destroy();
        }
    });

    for (const registrar of ["chkconfig", "update-rc.d"] as const) {
        it(`SysV with ${registrar} (shims: no SysV init runs here): installs, registers and runs its init script`, () => {
            const n = freshNs(registrar === "chkconfig" ? "fv5" : "fv6");
            installKey();
            const shims = new Shims(`fv-${registrar}`);
            // A fake service(8): records the call, then runs our real init script. Fake registrars only record.
            shims.add("service", 'name=$1; shift; exec "/etc/init.d/$name" "$@"');
            shims.add(registrar, "exit 0");
            if (registrar === "update-rc.d" && run("command -v chkconfig").code === 0) {
                throw new Error("a real chkconfig is installed: the update-rc.d branch cannot be reached on this machine");
            }
            try {
                const s = fenceVirtdScripts(LAB, { keyFile: KEY, port: PORT });
                const env = shims.env({ KVM_HA_LAB_INIT: "sysv" });
                const r1 = run(s.create, { netns: n.name, stdin: conf(), env });
                expect(r1.code, r1.stderr).toBe(0);
                expect(readFileSync(N.sysvInitScript, "utf8")).toBe(renderFenceVirtdInitScript(LAB));
                expect(fileFacts(N.sysvInitScript)?.mode).toBe("755");
                const register = registrar === "chkconfig" ? `chkconfig --add ${N.service}` : `update-rc.d ${N.service} defaults`;
                expect(shims.calls()).toEqual([register, `service ${N.service} status`, `service ${N.service} start`]);
                const [pid] = ours();
                expect(pid).toBeGreaterThan(0);
                expect(listeners()).toContain(`pid=${pid},`);
                expect(run(`${N.sysvInitScript} status`, { netns: n.name }).stdout).toContain(`running (pid ${pid})`);

                shims.clearCalls();
                expect(run(s.create, { netns: n.name, stdin: conf(), env }).code).toBe(0);
                expect(shims.calls()).toEqual([`service ${N.service} status`]);
                expect(ours()).toEqual([pid]);

                shims.clearCalls();
                expect(run(s.create, { netns: n.name, stdin: conf({ hash: "sha512" }), env }).code).toBe(0);
                expect(shims.calls()).toEqual([`service ${N.service} status`, `service ${N.service} restart`]);
                expect(ours()).not.toEqual([pid]);
                expect(ours()).toHaveLength(1);

                shims.clearCalls();
                const d = run(s.delete, { netns: n.name, env });
                expect(d.code, d.stderr).toBe(0);
                const deregister = registrar === "chkconfig" ? `chkconfig --del ${N.service}` : `update-rc.d -f ${N.service} remove`;
                expect(shims.calls()).toEqual([`service ${N.service} stop`, deregister]);
                expect(ours()).toEqual([]);
                expect(existsSync(N.sysvInitScript)).toBe(false);
                expect(existsSync(N.pidFile)).toBe(false);
            } finally {
                shims.destroy();
            }
        });
    }

    it("the unit passes systemd-analyze verify and the init script parses in sh and bash", () => {
        const unitPath = `${DIR}/${N.service}.service`;
        mkdirSync(DIR, { recursive: true });
        writeFileSync(unitPath, renderFenceVirtdUnit(LAB));
        if (run("command -v systemd-analyze").code === 0) {
            const v = run(`systemd-analyze verify '${unitPath}'`);
            expect(v.code, v.stderr).toBe(0);
            expect(v.stderr).toBe("");
        }
        const initPath = `${DIR}/init`;
        writeFileSync(initPath, renderFenceVirtdInitScript(LAB));
        for (const shell of ["sh", "dash", "bash"]) {
            if (run(`command -v ${shell}`).code === 0) expect(run(`${shell} -n '${initPath}'`).code, shell).toBe(0);
        }
        // status of a stopped instance is "program is not running" (LSB exit 3)
        const st = run(`sh '${initPath}' status`);
        expect(st.code).toBe(3);
        expect(st.stdout).toContain("stopped");
    });
});
