/**
 * Everything a delivered cluster.conf points at exists after `up`: the program's own resources (run under recording
 * mocks, one config per child process) are walked like a node would walk the file it received.
 *
 * For every cluster.conf delivery (the file as it reaches the node, read from the command's stdin):
 * - every fence_xvm / fence_virt device, at every fence level: the key file it names (or the agent's default) is
 *   written on that node, and a fence_virtd of the lab listens where the device sends requests, with that key, hash
 *   and auth: the multicast group and port (fence_xvm), the host's bridge address and port (fence_virt over tcp), or
 *   the vsock port on every host a node is placed on, whose domain XML then has a `<vsock>` device (fence_virt over
 *   vsock). A device without a transport (fence_virt's serial default) has no listener and fails here;
 * - every `<script file>` the lab renders (anti-affinity guards) is written on that node;
 * - every `<vm>`: the XML vm.sh reads (`xmlfile`, or `<path>/<name>.xml` for each directory of `path`) is written on
 *   that host, or once on the shared XML directory.
 * Scripts of the user's own (`services[].scripts[].file`) are the user's: not checked.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { create } from "xmlbuilder2";
import { CLUSTER_CONF_STDIN_BOUNDARY } from "../../components/scripts/cluster-conf-deliver";
import { readDomainsBundle } from "../../components/scripts/domains";
import { unwrap, type Recorded } from "./recording-mocks";
import { FAKE_SECRETS, ROOT } from "./run-under-mocks";

/** fence_xvm's and fence_virt's defaults, as their `-o metadata` declares them (render-cluster-conf.test.ts reads them). */
const AGENT_DEFAULTS: Record<string, string> = { key_file: "/etc/cluster/fence_xvm.key", ipport: "1229", hash: "sha256", auth: "sha256" };
const GUARD_DIR = "/usr/local/libexec/kvm-ha-lab/";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function devStack(): Raw {
    const file = parseYaml(readFileSync(join(ROOT, "stacks/Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> };
    return Object.fromEntries(Object.entries(file.config).map(([k, v]) => [k.replace(/^kvm-ha-lab:/, ""), structuredClone(v)]));
}

/** The configs walked: the dev stack, and the dev stack with each listener, extra fence levels, guards and VM XML files. */
const CONFIGS: Record<string, () => Raw> = {
    dev: devStack,
    "dev-services": () => {
        const raw = devStack();
        raw.xmlDir.shared = false;
        const gc = raw.guestCluster;
        gc.fencing.keyFile = "/etc/cluster/devguests.key";
        gc.fencing.multicast.port = 1240;
        gc.fenceDevices = [{ name: "xvm-patient", agent: "fence_xvm", params: { timeout: "60" } }];
        gc.fenceLevels = [{ devices: [{ device: "xvm-patient" }] }];
        gc.services = [{ name: "web1", ips: [{ address: "192.0.2.61" }], scripts: [{ name: "httpd1", file: "/etc/init.d/httpd" }] }, { name: "web2" }];
        gc.antiAffinity = [{ name: "web", services: ["web1", "web2"] }];
        raw.hostCluster.vmServices[1].xmlFile = "/var/lib/libvirt/images/xml_defs/gnode2.xml";
        return raw;
    },
    "dev-tcp": () => {
        const raw = devStack();
        raw.guestCluster.fencing = { listener: "tcp", tcp: { port: 1250 }, hash: "sha512" };
        raw.guestCluster.fenceDevices = [{ name: "virt-kvm2", agent: "fence_virt", params: { ipaddr: "192.0.2.12", timeout: "20" } }];
        raw.guestCluster.fenceLevels = [{ devices: [{ device: "virt-kvm2" }] }];
        return raw;
    },
    "dev-vsock": () => {
        const raw = devStack();
        for (const g of raw.guests) g.host = "kvm1";
        raw.guestCluster.fencing = { listener: "vsock", vsock: { port: 1260 } };
        raw.guestCluster.fenceDevices = [{ name: "virt-again", agent: "fence_virt", params: { timeout: "20" } }];
        raw.guestCluster.fenceLevels = [{ devices: [{ device: "virt-again" }] }];
        delete raw.hostCluster;
        return raw;
    },
};

/** The program under mocks in a child process, with fake values for the secrets `raw` names. */
async function runProgram(name: string, raw: Raw): Promise<Recorded[]> {
    const text = JSON.stringify(raw);
    const secrets = Object.fromEntries(Object.entries(FAKE_SECRETS).filter(([k]) => k === "sshPrivateKey" || text.includes(`"${k}"`)));
    const child = promisify(execFile)(join(ROOT, "node_modules", ".bin", "tsx"), [join(__dirname, "dump-config.ts")], {
        cwd: ROOT,
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
    });
    child.child.stdin!.end(JSON.stringify({ stack: "dev", raw, secrets }));
    try {
        return JSON.parse((await child).stdout) as Recorded[];
    } catch (e) {
        // (a plain Error: vitest cannot map the child's stack trace)
        throw new Error(`the program under mocks failed for config ${name}: ${e instanceof Error ? e.message.slice(0, 4000) : String(e)}`);
    }
}

// ---------------------------------------------------------------- what the resources do on which machine

interface Command {
    name: string;
    machine: string;
    /** The script's variables (DEST, CONF, WHAT, ...). */
    vars: Record<string, string>;
    stdin: string;
}

/** The script of a command (`exec /bin/sh -c '<script>'`) and its NAME='value' variables. */
function scriptVars(create: string): Record<string, string> {
    const m = /^exec \/bin\/sh -c '([\s\S]*)'\s*$/.exec(create);
    const text = m ? m[1].replace(/'\\''/g, "'") : create;
    const out: Record<string, string> = {};
    for (const line of text.split("\n")) {
        const v = /^([A-Z_][A-Z0-9_]*)='(.*)'$/.exec(line);
        if (v && !(v[1] in out)) out[v[1]] = v[2];
    }
    return out;
}

function commands(records: Recorded[], raw: Raw): Command[] {
    const byAddress = new Map<string, string>();
    for (const h of raw.hosts) if (h.ssh) byAddress.set(h.ssh.address, h.name);
    for (const g of raw.guests) if (g.ssh) byAddress.set(g.ssh.address, g.name);
    const local = raw.hosts.find((h: Raw) => h.local)?.name ?? "(local)";
    return records
        .filter((r) => r.type.startsWith("command:") && typeof unwrap(r.inputs.create) === "string")
        .map((r) => {
            const conn = unwrap(r.inputs.connection) as { host?: string } | undefined;
            return {
                name: r.name,
                machine: conn?.host !== undefined ? (byAddress.get(conn.host) ?? conn.host) : local,
                vars: scriptVars(unwrap(r.inputs.create) as string),
                stdin: typeof unwrap(r.inputs.stdin) === "string" ? (unwrap(r.inputs.stdin) as string) : "",
            };
        });
}

interface El {
    nodeName: string;
    getAttribute(name: string): string | null;
    getElementsByTagName(name: string): ArrayLike<El>;
}
const all = (el: El, tag: string): El[] => Array.from(el.getElementsByTagName(tag));
const parseXml = (xml: string) => create(xml).root().node as unknown as El;

/** fence_virt.conf: the listener and its block's settings (`listeners { <listener> { key = "value"; } }`). */
function listenerOf(conf: string): { listener: string; settings: Record<string, string> } {
    const listener = /fence_virtd \{[^}]*listener = "([a-z]+)";/.exec(conf)?.[1] ?? "";
    const block = new RegExp(`listeners \\{\\s*${listener} \\{([^}]*)\\}`).exec(conf)?.[1] ?? "";
    const settings: Record<string, string> = {};
    for (const m of block.matchAll(/([a-z_]+) = "([^"]*)";/g)) settings[m[1]] = m[2];
    return { listener, settings };
}

interface Walk {
    raw: Raw;
    cmds: Command[];
    /** machine → the paths of the files the program writes there */
    files: Map<string, Set<string>>;
    /** "<machine> <guest>" → the domain XML the program writes there */
    xmls: Map<string, string>;
    /** host → its fence_virtd listener */
    listeners: Map<string, ReturnType<typeof listenerOf>>;
    /** cluster.conf deliveries: which file (guest or host cluster) to which machine */
    deliveries: { which: "guest" | "host"; machine: string; conf: El }[];
}

function walk(raw: Raw, records: Recorded[]): Walk {
    const cmds = commands(records, raw);
    const files = new Map<string, Set<string>>();
    const write = (machine: string, path: string) => files.set(machine, new Set([...(files.get(machine) ?? []), path]));
    for (const c of cmds) if (c.vars.DEST !== undefined) write(c.machine, c.vars.DEST);
    // the domains command of each host writes the XML files of the bundle's domains (on shared storage: the placement
    // host's only)
    const xmls = new Map<string, string>();
    for (const c of cmds.filter((x) => x.vars.WHAT?.startsWith("domains on "))) {
        for (const d of readDomainsBundle(c.stdin)) {
            if (c.vars.XML_SHARED === "no" || d.placement === c.vars.HOST) {
                write(c.machine, `${c.vars.XMLDIR.replace(/\/+$/, "")}/${d.name}.xml`);
                xmls.set(`${c.machine} ${d.name}`, d.xml);
            }
        }
    }
    const listeners = new Map(cmds.filter((c) => c.vars.WHAT?.startsWith("fence_virtd ")).map((c) => [c.machine, listenerOf(c.stdin)]));
    const deliveries = cmds
        .filter((c) => c.vars.WHAT?.startsWith("cluster.conf "))
        .map((c) => ({
            which: (c.vars.WHAT.includes("host-cluster") ? "host" : "guest") as "guest" | "host",
            machine: c.machine,
            conf: parseXml(c.stdin.split(`${CLUSTER_CONF_STDIN_BOUNDARY}\n`)[1]),
        }));
    return { raw, cmds, files, xmls, listeners, deliveries };
}

/** The problems of one delivered file: each reference that points at nothing. */
function dangling(w: Walk, d: Walk["deliveries"][number]): string[] {
    const problems: string[] = [];
    const on = (machine: string, path: string) => w.files.get(machine)?.has(path) ?? false;
    const where = `${d.which} cluster.conf on ${d.machine}`;
    const hostOf = (guest: string) => w.raw.guests.find((g: Raw) => g.name === guest)?.host as string;
    const nodes = all(d.conf, "clusternode").map((n) => n.getAttribute("name")!);
    for (const dev of all(d.conf, "fencedevice")) {
        const agent = dev.getAttribute("agent")!;
        if (agent !== "fence_xvm" && agent !== "fence_virt") continue; // a BMC or power switch: outside the lab
        const get = (a: string) => dev.getAttribute(a) ?? AGENT_DEFAULTS[a];
        const name = `${where}: device ${dev.getAttribute("name")}`;
        if (!on(d.machine, get("key_file"))) problems.push(`${name}: key file ${get("key_file")} is not written on ${d.machine}`);
        const matches = (l: { listener: string; settings: Record<string, string> }, listener: string, extra: Record<string, string>) =>
            l.listener === listener &&
            l.settings.key_file === get("key_file") &&
            l.settings.hash === get("hash") &&
            (listener !== "multicast" || l.settings.auth === get("auth")) &&
            Object.entries(extra).every(([k, v]) => l.settings[k] === v);
        if (agent === "fence_xvm") {
            const ok = [...w.listeners.values()].some((l) => matches(l, "multicast", { address: dev.getAttribute("multicast_address") ?? "", port: get("ipport") }));
            if (!ok) problems.push(`${name}: no fence_virtd listens on multicast ${dev.getAttribute("multicast_address")}:${get("ipport")} with its key and hash`);
        } else if (dev.getAttribute("ipaddr") !== null) {
            const ok = [...w.listeners.values()].some((l) => matches(l, "tcp", { address: dev.getAttribute("ipaddr")!, port: get("ipport") }));
            if (!ok) problems.push(`${name}: no fence_virtd listens on tcp ${dev.getAttribute("ipaddr")}:${get("ipport")} with its key and hash`);
        } else if (dev.getAttribute("vsock") !== null) {
            for (const node of nodes) {
                const l = w.listeners.get(hostOf(node));
                if (!l || !matches(l, "vsock", { port: get("ipport") })) problems.push(`${name}: no fence_virtd on ${hostOf(node)} (${node}'s host) listens on vsock port ${get("ipport")}`);
                const xml = w.xmls.get(`${hostOf(node)} ${node}`);
                if (!xml || all(parseXml(xml), "vsock").length === 0) problems.push(`${name}: ${node}'s domain XML on ${hostOf(node)} has no <vsock> device`);
            }
        } else {
            problems.push(`${name}: fence_virt without ipaddr or vsock uses its serial transport, and no fence_virtd listens on a serial channel`);
        }
    }
    for (const sc of all(d.conf, "script")) {
        const file = sc.getAttribute("file");
        if (file?.startsWith(GUARD_DIR) && !on(d.machine, file)) problems.push(`${where}: script ${file} is not written on ${d.machine}`);
    }
    for (const vm of all(d.conf, "vm")) {
        const name = vm.getAttribute("name")!;
        const candidates = vm.getAttribute("xmlfile") !== null ? [vm.getAttribute("xmlfile")!] : vm.getAttribute("path")!.split(":").map((dir) => `${dir.replace(/\/?$/, "/")}${name}.xml`);
        const shared = w.raw.xmlDir?.shared === true;
        const ok = candidates.some((p) => (shared ? [...w.files.values()].some((s) => s.has(p)) : on(d.machine, p)));
        if (!ok) problems.push(`${where}: vm ${name}: none of ${candidates.join(", ")} is written ${shared ? "on the shared XML directory" : `on ${d.machine}`}`);
    }
    return problems;
}

// ---------------------------------------------------------------- the walk

const walks = new Map<string, Walk>();

beforeAll(async () => {
    const runs = await Promise.all(Object.entries(CONFIGS).map(async ([name, make]) => [name, make(), await runProgram(name, make())] as const));
    for (const [name, raw, records] of runs) walks.set(name, walk(raw, records));
}, 240_000);

describe("everything a delivered cluster.conf points at exists after up", () => {
    it.each(Object.keys(CONFIGS))("%s", (name) => {
        const w = walks.get(name)!;
        expect(w.deliveries.length, "cluster.conf is delivered somewhere").toBeGreaterThan(0);
        expect(w.deliveries.flatMap((d) => dangling(w, d))).toEqual([]);
    });

    it("walks every kind of reference (the check is not vacuous)", () => {
        const seen = new Set<string>();
        for (const w of walks.values()) {
            for (const d of w.deliveries) {
                for (const dev of all(d.conf, "fencedevice")) {
                    const agent = dev.getAttribute("agent");
                    if (agent === "fence_xvm") seen.add("multicast");
                    if (agent === "fence_virt") seen.add(dev.getAttribute("ipaddr") !== null ? "tcp" : "vsock");
                }
                for (const n of all(d.conf, "clusternode")) if (all(n, "method").length > 1) seen.add("fence level 2");
                if (all(d.conf, "script").some((s) => s.getAttribute("file")?.startsWith(GUARD_DIR))) seen.add("guard script");
                for (const vm of all(d.conf, "vm")) seen.add(vm.getAttribute("xmlfile") !== null ? "vm xmlfile" : "vm path");
                if (d.conf.getElementsByTagName("fencedevice").length > 0 && all(d.conf, "fencedevice").some((f) => f.getAttribute("key_file") !== null)) seen.add("explicit key file");
            }
            if (!w.raw.xmlDir?.shared) seen.add("per-host XML");
        }
        expect([...seen].sort()).toEqual(["explicit key file", "fence level 2", "guard script", "multicast", "per-host XML", "tcp", "vm path", "vm xmlfile", "vsock"]);
    });

    it("finds a dangling reference: a key file, a listener and a VM's XML the program did not write", () => {
        const w = walks.get("dev-services")!;
        const guest = w.deliveries.find((d) => d.which === "guest")!;
        const host = w.deliveries.find((d) => d.which === "host")!;
        const key = all(guest.conf, "fencedevice")[0].getAttribute("key_file")!;
        const without = (machine: string, path: string): Walk => ({ ...w, files: new Map([...w.files].map(([m, s]) => [m, new Set([...s].filter((p) => m !== machine || p !== path))])) });
        expect(dangling(without(guest.machine, key), guest)).toEqual(expect.arrayContaining([expect.stringMatching(/key file \/etc\/cluster\/devguests\.key is not written/)]));
        expect(dangling({ ...w, listeners: new Map() }, guest)).toEqual(expect.arrayContaining([expect.stringMatching(/no fence_virtd listens on multicast 225\.0\.0\.12:1240/)]));
        const xml = all(host.conf, "vm").find((v) => v.getAttribute("xmlfile") !== null)!.getAttribute("xmlfile")!;
        expect(dangling(without(host.machine, xml), host)).toEqual(expect.arrayContaining([expect.stringMatching(/vm gnode2: none of .* is written on/)]));
    });
});
