import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, type TestContext } from "vitest";
import { validateLabConfig } from "../../components/config";
import { FENCE_VIRTD_LIBVIRT_URI, renderFenceVirtConf } from "../../components/render/fence-virt-conf";
import type { LabSpec } from "../../components/spec";
import { parseStackFile } from "../../components/stack-file";

// ---- helpers ------------------------------------------------------------------------------------------------------

const DEV_SECRETS = ["sshPrivateKey", "ipmiPasswordKvm1", "ipmiPasswordKvm2"];

function loadStack(stack: "lab" | "dev"): LabSpec {
    const { raw, secretKeys } = parseStackFile(readFileSync(`stacks/Pulumi.${stack}.yaml`, "utf8"));
    const secrets = new Set([...secretKeys, ...(stack === "dev" ? DEV_SECRETS : [])]);
    return validateLabConfig(raw, { stack, secretKeys: secrets, readFile: () => undefined });
}

function run(cmd: string, args: string[]) {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 20_000 });
    return { status: r.status, stdout: r.stdout ?? "", out: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}` };
}

const hasTool = (name: string) => run("sh", ["-c", `command -v ${name}`]).status === 0;

function need(ctx: TestContext, what: string, ok: boolean): void {
    if (ok) return;
    const msg = `skipped: ${what}`;
    if (process.env.CI) throw new Error(`${msg} (CI is set, so this fails instead of skipping)`);
    console.warn(msg);
    ctx.skip(msg);
}

interface Block {
    values: Map<string, string[]>;
    blocks: Map<string, Block[]>;
}

/**
 * A reading of the file by fence_virtd's grammar (agents/virt/config: config.l + config.y): `#` comments, blocks
 * `name { ... }`, assignments `name = "value";` where the value must be a non-empty double-quoted string. Anything
 * else throws, as the daemon's "syntax error on line N" would.
 */
function parseFenceVirtConf(text: string): Block {
    const tokens: { t: string; v: string; line: number }[] = [];
    let line = 1;
    const re = /(#[^\n]*)|(\n)|([ \t\r]+)|(\{)|(\})|(=)|(;)|("[^"]+")|([A-Za-z_][A-Za-z0-9_]*)|(.)/gy;
    for (let m = re.exec(text); m !== null && m[0] !== ""; m = re.exec(text)) {
        if (m[2]) line++;
        else if (m[4] || m[5] || m[6] || m[7]) tokens.push({ t: m[0], v: m[0], line });
        else if (m[8]) tokens.push({ t: "VAL", v: m[8].slice(1, -1), line });
        else if (m[9]) tokens.push({ t: "ID", v: m[9], line });
        else if (m[10]) throw new Error(`syntax error on line ${line}: unexpected ${JSON.stringify(m[10])}`);
    }
    let i = 0;
    const expectTok = (t: string) => {
        const tok = tokens[i++];
        if (!tok || tok.t !== t) throw new Error(`syntax error on line ${tok?.line ?? line}: expected ${t}, got ${tok ? JSON.stringify(tok.v) : "end of file"}`);
        return tok.v;
    };
    const parseBlock = (top: boolean): Block => {
        const b: Block = { values: new Map(), blocks: new Map() };
        while (i < tokens.length && tokens[i].t !== "}") {
            const name = expectTok("ID");
            if (tokens[i]?.t === "{") {
                i++;
                const child = parseBlock(false);
                expectTok("}");
                b.blocks.set(name, [...(b.blocks.get(name) ?? []), child]);
            } else {
                expectTok("=");
                const v = expectTok("VAL");
                expectTok(";");
                b.values.set(name, [...(b.values.get(name) ?? []), v]);
            }
        }
        if (top && i < tokens.length) throw new Error(`syntax error on line ${tokens[i].line}: unexpected }`);
        return b;
    };
    return parseBlock(true);
}

function one(b: Block, path: string): Block {
    let cur = b;
    for (const name of path.split("/")) {
        const found = cur.blocks.get(name) ?? [];
        expect(found, `exactly one block ${path}`).toHaveLength(1);
        cur = found[0];
    }
    return cur;
}

function values(b: Block): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, vs] of b.values) {
        expect(vs, `key ${k} set once`).toHaveLength(1);
        out[k] = vs[0];
    }
    return out;
}

const stacks = { lab: loadStack("lab"), dev: loadStack("dev") };
const allHosts = (Object.entries(stacks) as [string, LabSpec][]).flatMap(([stack, spec]) => spec.hosts.map((host) => ({ stack, spec, host })));

// ---- meaning --------------------------------------------------------------------------------------------------------

describe("renderFenceVirtConf: what the file says", () => {
    it("covers the hosts of both stacks", () => {
        expect(allHosts.map((h) => `${h.stack}/${h.host.name}`)).toEqual(["lab/kvmhost", "dev/kvm1", "dev/kvm2"]);
    });

    it.each(allHosts.map((h) => [`${h.stack}/${h.host.name}`, h] as const))("%s: multicast listener on the host bridge with the lab key, libvirt backend", (_, { spec, host }) => {
        const text = renderFenceVirtConf(spec, host);
        const f = spec.guestCluster.fencing;
        const conf = parseFenceVirtConf(text);
        expect([...conf.blocks.keys()]).toEqual(["fence_virtd", "listeners", "backends"]);
        expect(conf.values.size).toBe(0);
        // module_path left out: the compiled default is right on Debian and on RHEL
        expect(values(one(conf, "fence_virtd"))).toEqual({ listener: "multicast", backend: "libvirt" });
        expect([...one(conf, "listeners").blocks.keys()]).toEqual(["multicast"]);
        expect(values(one(conf, "listeners/multicast"))).toEqual({
            key_file: f.keyFile,
            address: f.multicast.address,
            port: String(f.multicast.port),
            interface: host.bridge.name,
            family: "ipv4",
            hash: f.hash,
            auth: f.auth,
        });
        expect(one(conf, "listeners/multicast").values.get("key_file")).toEqual([spec.guestCluster.fencing.keyFile]);
        expect(values(one(conf, "backends/libvirt"))).toEqual({ uri: "qemu:///system" });
        expect(FENCE_VIRTD_LIBVIRT_URI).toBe("qemu:///system");
        // no groups section: access control is the lab's own key (see the report on shared hosts)
        expect(conf.blocks.has("groups")).toBe(false);
        // the header names the lab
        expect(text.split("\n")[0]).toMatch(new RegExp(`^# kvm-ha-lab: fence_virtd of lab "${spec.lab}" on host "${host.name}"`));
    });

    it("quotes every value and ends every assignment with ';' (bare numbers are a syntax error for fence_virtd)", () => {
        for (const { spec, host } of allHosts) {
            const lines = renderFenceVirtConf(spec, host).split("\n").filter((l) => l.includes("="));
            expect(lines.length).toBe(10);
            for (const l of lines) expect(l).toMatch(/^\t*[a-z_]+ = "[^"]+";$/);
            expect(renderFenceVirtConf(spec, host)).toMatch(/\tport = "1229";\n/);
        }
        expect(() => parseFenceVirtConf('a { port = 1229; }')).toThrow(/syntax error/);
        expect(() => parseFenceVirtConf('a { port = ""; }')).toThrow(/syntax error/);
    });

    it("follows the spec's fencing settings (port, address, hash, auth, key) and is deterministic", () => {
        const spec = structuredClone(stacks.lab);
        Object.assign(spec.guestCluster.fencing, { hash: "sha512", auth: "sha1", keyFile: "/etc/cluster/other.key" });
        spec.guestCluster.fencing.multicast = { address: "239.1.2.3", port: 1300, family: "ipv4" };
        const host = { ...spec.hosts[0], bridge: { name: "br-other" } };
        const text = renderFenceVirtConf(spec, host);
        expect(values(one(parseFenceVirtConf(text), "listeners/multicast"))).toEqual({
            key_file: "/etc/cluster/other.key",
            address: "239.1.2.3",
            port: "1300",
            interface: "br-other",
            family: "ipv4",
            hash: "sha512",
            auth: "sha1",
        });
        expect(renderFenceVirtConf(structuredClone(spec), structuredClone(host))).toBe(text);
        expect(renderFenceVirtConf(loadStack("dev"), loadStack("dev").hosts[1])).toBe(renderFenceVirtConf(stacks.dev, stacks.dev.hosts[1]));
    });

    it("refuses a value fence_virtd cannot read instead of writing a broken file", () => {
        const spec = structuredClone(stacks.lab);
        spec.guestCluster.fencing.keyFile = '/etc/cluster/"odd".key';
        expect(() => renderFenceVirtConf(spec, spec.hosts[0])).toThrow(/key_file .*cannot be written/);
    });
});

// ---- judged by the real fence_virtd ------------------------------------------------------------------------------

interface Daemon {
    pid: number;
    output: () => string;
    exited: Promise<number | null>;
    isRunning: () => boolean;
}

/** Starts fence_virtd in the foreground inside the namespace; `ip netns exec` execs, so the PID is fence_virtd's. */
function startDaemon(ns: string, conf: string, pidFile: string, debug: number): Daemon {
    const child = spawn("ip", ["netns", "exec", ns, "fence_virtd", "-F", "-f", conf, "-p", pidFile, `-d${debug}`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let running = true;
    child.stdout.on("data", (d) => (out += String(d)));
    child.stderr.on("data", (d) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) =>
        child.on("exit", (code) => {
            running = false;
            resolve(code);
        }),
    );
    return { pid: child.pid!, output: () => out, exited, isRunning: () => running };
}

/** Stops only the daemon this test started, by its PID. */
async function stopDaemon(d: Daemon): Promise<void> {
    if (!d.isRunning()) return;
    process.kill(d.pid, "SIGTERM");
    const code = await Promise.race([d.exited, new Promise((r) => setTimeout(() => r("timeout"), 3000))]);
    if (code === "timeout" && d.isRunning()) {
        process.kill(d.pid, "SIGKILL");
        await d.exited;
    }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => boolean, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!check()) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
        await sleep(100);
    }
}

describe("renderFenceVirtConf: judged by fence_virtd (inside a throwaway network namespace)", () => {
    const tmp = mkdtempSync(join(tmpdir(), "hra-fv-"));
    const ns = `hra-fv-${process.pid}`;
    const keyFile = join(tmp, "fence_xvm.key");
    const daemons: Daemon[] = [];
    let nsReady = false;

    // The lab stack as rendered, with the key file moved to a throwaway one (fence_virtd chmods the key it reads).
    const spec = structuredClone(stacks.lab);
    spec.guestCluster.fencing.keyFile = keyFile;
    const host = spec.hosts[0];
    const fencing = spec.guestCluster.fencing;

    function setup(ctx: TestContext) {
        need(ctx, "fence_virtd is not installed (Debian: fence-virtd)", hasTool("fence_virtd"));
        need(ctx, "ip (iproute2) is not installed", hasTool("ip"));
        need(ctx, "not root (network namespaces need root)", process.getuid?.() === 0);
        if (nsReady) return;
        writeFileSync(keyFile, randomBytes(4096), { mode: 0o600 });
        const steps = [
            ["netns", "add", ns],
            ["netns", "exec", ns, "ip", "link", "set", "lo", "up"],
            ["netns", "exec", ns, "ip", "link", "add", host.bridge.name, "type", "bridge"],
            ["netns", "exec", ns, "ip", "link", "set", host.bridge.name, "up"],
            ["netns", "exec", ns, "ip", "addr", "add", host.bridge.address!, "dev", host.bridge.name],
        ];
        nsReady = true;
        for (const s of steps) {
            const r = run("ip", s);
            expect(r.status, `ip ${s.join(" ")}: ${r.out}`).toBe(0);
        }
    }

    afterAll(async () => {
        for (const d of daemons) await stopDaemon(d);
        if (nsReady) run("ip", ["netns", "del", ns]);
        rmSync(tmp, { recursive: true, force: true });
    });

    it("parses the file as rendered: no syntax error, every key read back in its -d5 config dump", async (ctx) => {
        setup(ctx);
        const conf = join(tmp, "as-rendered.conf");
        writeFileSync(conf, renderFenceVirtConf(spec, host));
        const d = startDaemon(ns, conf, join(tmp, "as-rendered.pid"), 5);
        daemons.push(d);
        // Without libvirtd the libvirt backend fails to initialize and the daemon exits; with libvirtd it runs on.
        await Promise.race([d.exited, sleep(2000)]);
        await stopDaemon(d);
        const out = d.output();
        expect(out).not.toMatch(/syntax error|Failed to parse/);
        expect(out).toContain("Backend plugin: libvirt");
        expect(out).toContain("Listener plugin: multicast");
        expect(out).toContain("Registered listener plugin multicast");
        for (const line of [
            `key_file = "${keyFile}";`,
            `interface = "${host.bridge.name}";`,
            `address = "${fencing.multicast.address}";`,
            `port = "${fencing.multicast.port}";`,
            `hash = "${fencing.hash}";`,
            `auth = "${fencing.auth}";`,
            `family = "ipv4";`,
            `uri = "qemu:///system";`,
            `listener = "multicast";`,
            `backend = "libvirt";`,
        ]) {
            expect(out, out).toContain(line);
        }
        expect(out).toContain(`Got ${keyFile} for key_file`);
    });

    it("the judge can fail: a bare number makes fence_virtd report a syntax error", async (ctx) => {
        setup(ctx);
        const conf = join(tmp, "broken.conf");
        writeFileSync(conf, renderFenceVirtConf(spec, host).replace(`port = "${fencing.multicast.port}";`, `port = ${fencing.multicast.port};`));
        const d = startDaemon(ns, conf, join(tmp, "broken.pid"), 1);
        daemons.push(d);
        const code = await Promise.race([d.exited, sleep(3000).then(() => "running")]);
        await stopDaemon(d);
        expect(code).not.toBe(0);
        expect(d.output()).toMatch(/syntax error on line \d+/);
    });

    it("runs the listener it describes: joins the group on the bridge, binds the port, and fence_xvm with the key lists domains", async (ctx) => {
        setup(ctx);
        // Only the backend URI differs: libvirt's built-in test driver needs no libvirtd and has one domain, "test".
        const rendered = renderFenceVirtConf(spec, host);
        const uriLine = `uri = "${FENCE_VIRTD_LIBVIRT_URI}";`;
        expect(rendered.split(uriLine)).toHaveLength(2);
        const conf = join(tmp, "listening.conf");
        writeFileSync(conf, rendered.replace(uriLine, `uri = "test:///default";`));
        const pidFile = join(tmp, "listening.pid");
        const d = startDaemon(ns, conf, pidFile, 3);
        daemons.push(d);
        const inNs = (...args: string[]) => run("ip", ["netns", "exec", ns, ...args]);
        try {
            await waitFor(
                `fence_virtd to bind udp ${fencing.multicast.port}`,
                () => !d.isRunning() || inNs("ss", "-Hulnp").stdout.includes(`:${fencing.multicast.port} `),
                5000,
            );
            expect(d.isRunning(), d.output()).toBe(true);
            expect(readFileSync(pidFile, "utf8").trim()).toBe(String(d.pid));
            expect(readFileSync(`/proc/${d.pid}/comm`, "utf8").trim()).toBe("fence_virtd");
            const ss = inNs("ss", "-Hulnp").stdout;
            expect(ss).toMatch(new RegExp(`0\\.0\\.0\\.0:${fencing.multicast.port}\\s.*fence_virtd",pid=${d.pid}`));
            // joined on the interface named in the file (the lab bridge)
            expect(inNs("ip", "maddr", "show", "dev", host.bridge.name).stdout).toMatch(new RegExp(`inet\\s+${fencing.multicast.address.replace(/\./g, "\\.")}\\b`));

            const xvm = (key: string, timeout: string) =>
                inNs("fence_xvm", "-a", fencing.multicast.address, "-p", String(fencing.multicast.port), "-k", key, "-c", fencing.hash, "-C", fencing.auth, "-o", "list", "-t", timeout);
            const good = xvm(keyFile, "5");
            expect(good.status, good.out + d.output()).toBe(0);
            expect(good.stdout).toMatch(/^test\s+[0-9a-f-]{36}\s+on$/m);

            const wrongKey = join(tmp, "wrong.key");
            writeFileSync(wrongKey, randomBytes(4096), { mode: 0o600 });
            // (a timeout below the 2 s retransmit interval makes fence_xvm wait forever)
            const bad = xvm(wrongKey, "2");
            expect(bad.status).not.toBe(0);
            expect(bad.stdout).not.toMatch(/^test\s/m);
        } finally {
            await stopDaemon(d);
        }
        // the daemon did receive the wrongly signed request, and refused it for the key (stdout is flushed at exit)
        expect(d.output()).toContain("Key mismatch; dropping packet");
        expect(existsSync(`/proc/${d.pid}`) && readFileSync(`/proc/${d.pid}/comm`, "utf8").trim() === "fence_virtd").toBe(false);
    });
});
