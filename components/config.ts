/**
 * The stack config schema and its validation. The defaults it applies are components/defaults.ts (the one place they
 * live).
 *
 * `validateLabConfig(raw, env)` takes the stack's config keys (without the `kvm-ha-lab:` prefix) and returns a
 * resolved `LabSpec`, or throws a `ConfigError` listing every problem: one line each, naming the field path, the bad
 * value and the fix. It is pure: files named in the config (a guest's own `xml:`) are read through `env.readFile`.
 */
import { create } from "xmlbuilder2";
import { z } from "zod";
import {
    cidrContains,
    isHostnameOrIpv4,
    isIpv4,
    isMulticastIpv4,
    isUnicastMac,
    isUuid,
    parseCidr,
    stableMac,
    stableUuid,
} from "./net";
import {
    CONFIG_KEY,
    PROJECT,
    checkClusterName,
    checkSecretRef,
    checkUnique,
    guestClusterModelShape,
    hostClusterSchema,
    resolveGuestClusterModel,
    resolveHostCluster,
    show,
    type Report,
} from "./config-cluster";
import { checkPacemakerRules } from "./config-pacemaker";
import { DEFAULTS } from "./defaults";
import type { ValidationEnv } from "./config-env";
import { INTERFACE_NAME } from "./names";
import type { Connection, DiskSpec, FencingSpec, GuestDefinition, GuestSpec, HostSpec, LabSpec, NicSpec, SeedSpec, SshConnection } from "./spec";

/** The Pulumi project name and config namespace. */
export { PROJECT };


const NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const DOMAIN_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const IFNAME = INTERFACE_NAME;
const ABS_PATH = /^\/[^\0\n]*$/;

const hash = z.enum(["none", "sha1", "sha256", "sha512"]);
const port = z.number().int().min(1).max(65535);
const absPath = z.string().regex(ABS_PATH, { error: "must be an absolute path (starting with /)" });

const sshSchema = z.strictObject({
    /** Address or host name sshd listens on. */
    address: z.string(),
    /** @default root */
    user: z.string().min(1).default(DEFAULTS.hosts.ssh.user),
    /** @default 22 */
    port: port.default(DEFAULTS.hosts.ssh.port),
    /** Name of the secret config key holding the private key. @default sshPrivateKey */
    privateKeySecret: z.string().regex(CONFIG_KEY).default(DEFAULTS.hosts.ssh.privateKeySecret),
});

/** A guest's ssh: like a host's, but the address defaults to the guest's cluster address and the key to the lab's. */
const guestSshSchema = sshSchema.extend({
    /** @default guests[].address (the guest's address on the cluster network) */
    address: z.string().optional(),
    /**
     * Name of the secret config key holding the private key. @default the lab's generated key when the guest boots
     * with a cloud-init seed, else sshPrivateKey
     */
    privateKeySecret: z.string().regex(CONFIG_KEY).optional(),
});

const hostSchema = z.strictObject({
    name: z.string(),
    /** Commands run on the machine running pulumi. */
    local: z.boolean().optional(),
    ssh: sshSchema.optional(),
    bridge: z.strictObject({
        name: z.string(),
        uplink: z.string().optional(),
        address: z.string().optional(),
    }),
    /** @default false */
    installPackages: z.boolean().default(DEFAULTS.hosts.installPackages),
});

const diskSchema = z.strictObject({
    path: absPath,
    /** Create the image when it does not exist, with this size in GiB (a whole number: qemu-img is given <n>G). */
    sizeGiB: z.number().int("a whole number of GiB (e.g. 8)").positive().optional(),
    /** Keep an image created from sizeGiB when the lab is destroyed. @default false */
    keepOnDestroy: z.boolean().default(DEFAULTS.guests.disks.keepOnDestroy),
    /** @default qcow2 */
    format: z.enum(["qcow2", "raw"]).default(DEFAULTS.guests.disks.format),
    /** @default virtio */
    bus: z.enum(["virtio", "sata", "scsi", "ide"]).default(DEFAULTS.guests.disks.bus),
});

const nicSchema = z.strictObject({
    /** @default the placement host's bridge */
    bridge: z.string().optional(),
    /** @default derived from stack, guest and NIC index (52:54:00:xx:xx:xx) */
    mac: z.string().optional(),
    /** @default virtio */
    model: z.enum(["virtio", "e1000", "rtl8139"]).default(DEFAULTS.guests.nics.model),
});

const guestSchema = z.strictObject({
    name: z.string(),
    host: z.string(),
    memoryMiB: z.number().int().min(16).optional(),
    vcpus: z.number().int().min(1).max(256).optional(),
    domainType: z.enum(["kvm", "qemu"]).optional(),
    uuid: z.string().optional(),
    disks: z.array(diskSchema).optional(),
    nics: z.array(nicSchema).optional(),
    /** Path of the user's own domain XML, used as-is. */
    xml: absPath.optional(),
    /**
     * Base image (qcow2 or raw, e.g. a distribution's cloud image) on the placement host: disks[0] is created as a
     * qcow2 overlay of it (destroy removes the overlay, never the base). @default none (disks are used as they are)
     */
    image: absPath.optional(),
    /** Direct kernel boot: kernel path on every host (for images without a bootloader). */
    kernel: absPath.optional(),
    /** Direct kernel boot: initrd path on every host (needs kernel). */
    initrd: absPath.optional(),
    /** Direct kernel boot: the kernel command line (needs kernel). */
    cmdline: z.string().optional(),
    /**
     * Attach a cloud-init NoCloud seed: hostname = the guest's name, root's SSH key = the lab's, the guest's static
     * address on the cluster network. @default true when image is set
     */
    cloudInit: z.boolean().optional(),
    ssh: guestSshSchema.optional(),
    /** IPv4 address on the cluster network. @default ssh.address, when that is an IPv4 address on the cluster network */
    address: z.string().optional(),
});

const fencingSchema = z.strictObject({
    /** fence_virtd's listener (and with it the guests' agent: fence_xvm for multicast, fence_virt otherwise). @default multicast */
    listener: z.enum(["multicast", "tcp", "vsock"]).default(DEFAULTS.guestCluster.fencing.listener),
    multicast: z
        .strictObject({
            /** @default 225.0.0.12 */
            address: z.string().default(DEFAULTS.guestCluster.fencing.multicast.address),
            /** @default 1229 */
            port: port.default(DEFAULTS.guestCluster.fencing.multicast.port),
            /** @default ipv4 */
            family: z.enum(["ipv4"]).default(DEFAULTS.guestCluster.fencing.multicast.family),
        })
        .prefault({}),
    /** The tcp listener, bound to each host's bridge address (which must then be set). */
    tcp: z
        .strictObject({
            /** @default 1229 */
            port: port.default(DEFAULTS.guestCluster.fencing.tcp.port),
        })
        .prefault({}),
    /** The vsock listener (guests connect to the host, CID 2, over a virtio vsock device). */
    vsock: z
        .strictObject({
            /** @default 1229 */
            port: port.default(DEFAULTS.guestCluster.fencing.vsock.port),
        })
        .prefault({}),
    /** @default sha256 */
    hash: hash.default(DEFAULTS.guestCluster.fencing.hash),
    /** @default sha256 */
    auth: hash.default(DEFAULTS.guestCluster.fencing.auth),
    /** @default /etc/cluster/fence_xvm.key */
    keyFile: z.string().regex(/^\//, { error: "must be an absolute path (starting with /)" }).default(DEFAULTS.guestCluster.fencing.keyFile),
    /** @default the network of the placement hosts' bridge address */
    subnet: z.string().optional(),
    /** Change (e.g. increase) to rotate the fence key on every host and guest. @default 1 */
    keyVersion: z.number().int().min(1).default(DEFAULTS.guestCluster.fencing.keyVersion),
});

const guestClusterSchema = z.strictObject({
    name: z.string(),
    nodes: z.array(z.string()),
    fencing: fencingSchema.prefault({}),
    /** Fence levels beyond fence_xvm, fence delay and timing, failover domains, services, anti-affinity. */
    ...guestClusterModelShape,
});

/** The stack config keys this program reads (without the `kvm-ha-lab:` namespace). */
export const rawConfigSchema = z.strictObject({
    /** @default the stack name */
    labName: z.string().optional(),
    hosts: z.array(hostSchema),
    guests: z.array(guestSchema),
    guestCluster: guestClusterSchema,
    hostCluster: hostClusterSchema.optional(),
    xmlDir: z
        .strictObject({
            path: absPath.default(DEFAULTS.xmlDir.path),
            shared: z.boolean().default(DEFAULTS.xmlDir.shared),
        })
        .prefault({}),
});

export type RawLabConfig = z.input<typeof rawConfigSchema>;
type ParsedConfig = z.output<typeof rawConfigSchema>;

/** The config keys the program reads; any other non-secret key in the namespace is a typo. */
export const CONFIG_KEYS = Object.keys(rawConfigSchema.shape);

export type { ValidationEnv } from "./config-env";

export interface ConfigProblem {
    path: string;
    message: string;
}

export class ConfigError extends Error {
    constructor(public readonly problems: ConfigProblem[]) {
        super(
            `kvm-ha-lab: invalid stack config (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
                problems.map((p) => `  - ${p.path}: ${p.message}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

function pathOf(segments: readonly PropertyKey[]): string {
    let out = "";
    for (const s of segments) {
        if (typeof s === "number") out += `[${s}]`;
        else out += out === "" ? String(s) : `.${String(s)}`;
    }
    return out === "" ? "(config)" : out;
}

function zodProblems(error: z.ZodError): ConfigProblem[] {
    return error.issues.map((issue) => {
        const path = pathOf(issue.path);
        const input = (issue as { input?: unknown }).input;
        if (issue.code === "unrecognized_keys") {
            return {
                path,
                message: `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map(show).join(", ")}; remove ${issue.keys.length > 1 ? "them" : "it"} or check the spelling`,
            };
        }
        if (input === undefined && issue.code === "invalid_type") {
            return { path, message: `is required (${issue.message.replace(/^Invalid input: /, "")}); set it` };
        }
        return { path, message: `${issue.message.replace(/^Invalid input: /, "")}; got ${show(input)}` };
    });
}

/** Control characters, and text an XML writer would keep as a character or entity reference ("&amp;", "&#9;"). */
const UNSAFE_TEXT = /[\u0000-\u001f\u007f]|&(?:[A-Za-z][A-Za-z0-9._-]*|#[0-9]+|#x[0-9A-Fa-f]+);/;

/**
 * Every string of the config must reach cluster.conf, domain XML and shell scripts exactly as written. The XML
 * writer keeps "&name;"/"&#N;" as references (read back as other characters) and control characters do not survive
 * attributes, so such text is refused here, at the edge, with its path.
 */
function unsafeText(value: unknown, path: (string | number)[] = []): ConfigProblem[] {
    if (typeof value === "string") {
        return UNSAFE_TEXT.test(value)
            ? [{ path: pathOf(path), message: `${show(value)} contains a control character (tab, newline, …) or text that reads as an XML reference ("&name;", "&#N;"); write the characters themselves, without control characters` }]
            : [];
    }
    if (Array.isArray(value)) return value.flatMap((v, i) => unsafeText(v, [...path, i]));
    if (value !== null && typeof value === "object") {
        return Object.entries(value).flatMap(([k, v]) => [...unsafeText(k, path).map((p) => ({ ...p, message: `key ${p.message}` })), ...unsafeText(v, [...path, k])]);
    }
    return [];
}

/**
 * Validates the raw config and resolves it into a `LabSpec`. Throws a `ConfigError` listing every problem.
 */
export function validateLabConfig(raw: unknown, env: ValidationEnv): LabSpec {
    const unsafe = unsafeText(raw);
    if (unsafe.length > 0) throw new ConfigError(unsafe);
    const parsed = rawConfigSchema.safeParse(raw, { reportInput: true });
    if (!parsed.success) throw new ConfigError(zodProblems(parsed.error));
    const problems: ConfigProblem[] = [];
    const spec = resolve(parsed.data, env, (path, message) => problems.push({ path, message }));
    if (problems.length > 0) throw new ConfigError(problems);
    return spec;
}


function resolveSsh(
    ssh: { address: string; user: string; port: number; privateKeySecret?: string },
    path: string,
    env: ValidationEnv,
    report: Report,
): SshConnection {
    if (!isHostnameOrIpv4(ssh.address)) {
        report(`${path}.address`, `${show(ssh.address)} is not an IPv4 address or host name; use e.g. 192.0.2.10 or kvm1.example.com`);
    } else if (ssh.address === "0.0.0.0" || ssh.address === "255.255.255.255" || isMulticastIpv4(ssh.address)) {
        report(`${path}.address`, `${show(ssh.address)} cannot be a machine's address to connect to; use the host's own address, e.g. 192.0.2.10`);
    }
    if (ssh.privateKeySecret !== undefined) checkSecretRef(ssh.privateKeySecret, `${path}.privateKeySecret`, env, report);
    return { kind: "ssh", address: ssh.address, user: ssh.user, port: ssh.port, privateKeySecret: ssh.privateKeySecret };
}

function resolveLabName(cfg: ParsedConfig, env: ValidationEnv, report: Report): string {
    const lab = cfg.labName ?? env.stack;
    if (!/^[a-z][a-z0-9-]{0,14}$/.test(lab)) {
        report(
            "labName",
            `${show(lab)} cannot name this lab on its hosts (firewall chains, fence_virtd instance); ` +
                `it must be 1-15 characters of a-z, 0-9 and '-', starting with a letter: set ${PROJECT}:labName`,
        );
    }
    return lab;
}

/** A host's bridge: a Linux interface name, an uplink that is another interface, an address in CIDR form. */
function checkBridge(bridge: ParsedConfig["hosts"][number]["bridge"], p: string, report: Report) {
    if (bridge.name.length > 15) {
        report(`${p}.bridge.name`, `${show(bridge.name)} is ${bridge.name.length} characters; Linux interface names are at most 15: use a shorter name (e.g. br-lab)`);
    } else if (!IFNAME.test(bridge.name)) {
        report(
            `${p}.bridge.name`,
            `${show(bridge.name)} is not a valid Linux interface name; use 1-15 characters of letters, digits, '_', '.', '-', not starting with '.' (e.g. br-lab)`,
        );
    }
    if (bridge.uplink !== undefined && (!IFNAME.test(bridge.uplink) || bridge.uplink.length > 15)) {
        report(`${p}.bridge.uplink`, `${show(bridge.uplink)} is not a valid Linux interface name; use the NIC's name as \`ip link\` shows it (e.g. eth0)`);
    }
    if (bridge.uplink !== undefined && bridge.uplink === bridge.name) {
        report(`${p}.bridge.uplink`, `${show(bridge.uplink)} is the bridge itself; name the physical NIC to enslave`);
    }
    if (bridge.address !== undefined) {
        const c = parseCidr(bridge.address);
        if (!c || c.prefix === 0 || c.prefix > 30) {
            report(`${p}.bridge.address`, `${show(bridge.address)} is not an IPv4 address in CIDR form with a prefix of /1 to /30; use e.g. 10.99.0.1/24`);
        } else if (c.address === c.network) {
            report(`${p}.bridge.address`, `${show(bridge.address)} is the network address itself; use a host address such as ${c.network.replace(/\.0$/, ".1")}/${c.prefix}`);
        }
    }
}

function resolveHost(h: ParsedConfig["hosts"][number], i: number, env: ValidationEnv, report: Report): HostSpec {
    const p = `hosts[${i}]`;
    if (!NAME.test(h.name) || h.name.length > 63) {
        report(`${p}.name`, `${show(h.name)} is not a valid host name; use 1-63 characters of a-z, 0-9 and '-'`);
    }
    let connection: Connection = { kind: "local" };
    if (h.local === true && h.ssh !== undefined) {
        report(p, `has both local: true and ssh; a host is either the machine running pulumi (local: true) or reached over SSH: remove one`);
    } else if (h.local !== true && h.ssh === undefined) {
        report(p, `has neither local: true nor ssh; set local: true for the machine running pulumi, or ssh: {address: ...}`);
    } else if (h.ssh !== undefined) {
        connection = resolveSsh(h.ssh, `${p}.ssh`, env, report);
    }
    checkBridge(h.bridge, p, report);
    return {
        name: h.name,
        connection,
        bridge: { name: h.bridge.name, uplink: h.bridge.uplink, address: h.bridge.address },
        installPackages: h.installPackages,
    };
}

function resolveHosts(cfg: ParsedConfig, env: ValidationEnv, report: Report): HostSpec[] {
    if (cfg.hosts.length === 0) report("hosts", "is empty; a lab needs at least one KVM host");
    checkUnique(cfg.hosts, (h) => h.name, (i) => `hosts[${i}].name`, "host name", report);
    const localHosts = cfg.hosts.filter((h) => h.local === true);
    if (localHosts.length > 1) {
        report("hosts", `${localHosts.length} hosts are local (${localHosts.map((h) => h.name).join(", ")}); only one host can be the machine running pulumi`);
    }
    return cfg.hosts.map((h, i) => resolveHost(h, i, env, report));
}

function resolveGuests(cfg: ParsedConfig, env: ValidationEnv, hostByName: Map<string, HostSpec>, report: Report): GuestSpec[] {
    checkUnique(cfg.guests, (g) => g.name, (i) => `guests[${i}].name`, "guest name", report);
    const guests: GuestSpec[] = cfg.guests.map((g, i) => resolveGuest(g, i, cfg, env, hostByName, report));
    const macs = guests.flatMap((g, gi) =>
        g.definition.kind === "rendered" ? g.definition.nics.map((n, ni) => ({ mac: n.mac, path: `guests[${gi}].nics[${ni}].mac` })) : [],
    );
    checkUniqueFlat(macs, "MAC address", report);
    const uuids = guests.flatMap((g, gi) => (g.definition.kind === "rendered" ? [{ mac: g.definition.uuid, path: `guests[${gi}].uuid` }] : []));
    checkUniqueFlat(uuids, "UUID", report);
    cfg.guests.forEach((g, i) => {
        if (hostByName.has(g.name)) {
            report(`guests[${i}].name`, `${show(g.name)} is also the name of a host; hosts and guests are machines that each get the fence key: rename the guest or the host`);
        }
    });
    return guests;
}

function checkGuestClusterNodes(gc: ParsedConfig["guestCluster"], guestByName: Map<string, GuestSpec>, report: Report) {
    checkClusterName(gc.name, "guestCluster.name", report);
    if (gc.nodes.length < 2) {
        report("guestCluster.nodes", `has ${gc.nodes.length} node${gc.nodes.length === 1 ? "" : "s"} (${show(gc.nodes)}); a cluster needs at least 2: list 2 or more guest names`);
    }
    if (gc.nodes.length > 16) {
        report("guestCluster.nodes", `has ${gc.nodes.length} nodes; cman supports at most 16`);
    }
    checkUnique(gc.nodes, (n) => n, (i) => `guestCluster.nodes[${i}]`, "node", report);
    gc.nodes.forEach((n, i) => {
        if (!guestByName.has(n)) {
            report(`guestCluster.nodes[${i}]`, `${show(n)} is not a guest; cluster nodes are guests (node name = domain name): use one of ${show([...guestByName.keys()])}`);
        }
    });
}

/** With the vsock listener, a node's own domain XML must have the vsock device the node fences over. */
function checkVsockXml(guests: GuestSpec[], nodes: Set<string>, report: Report) {
    guests.forEach((g, i) => {
        const def = g.definition;
        // (an unreadable file is reported where it is read)
        if (def.kind === "file" && def.xml !== "" && nodes.has(g.name) && !/<vsock\b/.test(def.xml)) {
            report(
                `guests[${i}].xml`,
                `${show(def.path)} has no <vsock> device, but guestCluster.fencing.listener is "vsock": the node fences over its virtio vsock device; add <vsock model='virtio'><cid auto='yes'/></vsock> to its <devices>, or use another listener`,
            );
        }
    });
}

/** A guest's own XML, defined on several hosts, must name the same machine everywhere. */
function checkOwnXmlIdentity(hostCount: number, guests: GuestSpec[], report: Report) {
    if (hostCount <= 1) return;
    guests.forEach((g, i) => {
        const def = g.definition;
        if (def.kind !== "file" || def.xml === "") return;
        const missing = ownXmlIdentityGaps(def.xml);
        if (missing.length > 0) {
            report(
                `guests[${i}].xml`,
                `${show(def.path)} has ${missing.join(" and ")}; the lab defines this domain on all ${hostCount} hosts, and libvirt would make up a different one on each, so the same VM would differ between hosts (and fence_virtd's UUID checks, MAC-based addresses break): add them, e.g. as \`virsh dumpxml\` shows them on one host`,
            );
        }
    });
}

/** Secret keys nobody names: most likely a typo of a config key or of a secret's name. */
function checkSecretKeys(lab: Pick<LabSpec, "hosts" | "guests" | "hostCluster">, env: ValidationEnv, report: Report) {
    const referenced = new Set(referencedSecrets(lab));
    for (const name of referenced) {
        if (CONFIG_KEYS.includes(name)) {
            report(`${PROJECT}:${name}`, `is a config key of this program, so it cannot also hold a secret that privateKeySecret/passwordSecret names; name the secret differently (e.g. ${name}Secret)`);
        }
    }
    for (const key of [...env.secretKeys].sort()) {
        if (!referenced.has(key)) {
            report(
                `${PROJECT}:${key}`,
                `is set but nothing uses it: it is not a config key of this program and no privateKeySecret/passwordSecret names it; remove it (\`pulumi config rm ${PROJECT}:${key}\`) or fix the name`,
            );
        }
    }
}

function resolve(cfg: ParsedConfig, env: ValidationEnv, report: Report): LabSpec {
    const lab = resolveLabName(cfg, env, report);
    const hosts = resolveHosts(cfg, env, report);
    const hostByName = new Map(hosts.map((h) => [h.name, h]));
    const guests = resolveGuests(cfg, env, hostByName, report);
    const guestByName = new Map(guests.map((g) => [g.name, g]));

    const gc = cfg.guestCluster;
    checkGuestClusterNodes(gc, guestByName, report);
    const fencing = resolveFencing(gc.fencing, gc.nodes, cfg, guestByName, hostByName, report);
    resolveGuestAddresses(cfg, guests, fencing.subnet, report);
    resolveGuestOs(cfg, guests, fencing.subnet, hostByName, env, report);
    if (fencing.listener === "vsock") checkVsockXml(guests, new Set(gc.nodes), report);

    const hostCluster = cfg.hostCluster ? resolveHostCluster(cfg.hostCluster, hosts, guestByName, env, report, cfg.xmlDir.path) : undefined;
    checkOwnXmlIdentity(hosts.length, guests, report);
    checkSecretKeys({ hosts, guests, hostCluster }, env, report);

    const spec: LabSpec = {
        stack: env.stack,
        lab,
        hosts,
        guests,
        guestCluster: {
            name: gc.name,
            nodes: [...gc.nodes],
            fencing,
            ...resolveGuestClusterModel(gc, gc.nodes, report, fencing.listener, {
                fencing,
                hostAddresses: new Map(hosts.flatMap((h) => (h.bridge.address && parseCidr(h.bridge.address) ? [[h.name, h.bridge.address.split("/")[0]] as [string, string]] : []))),
                nodeAddresses: new Map(guests.flatMap((g) => (g.address !== undefined ? [[g.name, g.address] as [string, string]] : []))),
            }),
        },
        hostCluster,
        xmlDir: { path: cfg.xmlDir.path.replace(/\/+$/, "") || "/", shared: cfg.xmlDir.shared },
    };
    checkPacemakerRules(spec, report);
    return spec;
}

/** The exact text of /domain/name in a domain XML (as libvirt reads it), or undefined when there is none. */
interface DomNode {
    nodeType: number;
    nodeName: string;
    textContent: string | null;
    childNodes: ArrayLike<DomNode>;
}

function domainNameOf(xml: string): string | undefined {
    let root: DomNode;
    try {
        root = create(xml).root().node as unknown as DomNode;
    } catch {
        return undefined;
    }
    if (root.nodeName !== "domain") return undefined;
    for (const child of Array.from(root.childNodes)) {
        if (child.nodeType === 1 && child.nodeName === "name") return child.textContent ?? "";
    }
    return undefined;
}

/**
 * What a domain XML lacks to define the same machine on every host: a `<uuid>`, and a `<mac address>` on each
 * `<interface>` (libvirt generates both when they are missing, differently on each host).
 */
function ownXmlIdentityGaps(xml: string): string[] {
    let root: DomNode;
    try {
        root = create(xml).root().node as unknown as DomNode;
    } catch {
        return []; // not XML: reported where the domain name is read
    }
    const elements = (n: DomNode, name: string) => Array.from(n.childNodes).filter((c) => c.nodeType === 1 && c.nodeName === name);
    const gaps: string[] = [];
    if (elements(root, "uuid").length === 0) gaps.push("no <uuid>");
    const interfaces = elements(root, "devices").flatMap((d) => elements(d, "interface"));
    const withoutMac = interfaces.filter((nic) => !elements(nic, "mac").some((m) => ((m as unknown as { getAttribute(n: string): string | null }).getAttribute("address") ?? "") !== ""));
    if (withoutMac.length > 0) gaps.push(`${withoutMac.length} <interface> without a fixed <mac address=…>`);
    return gaps;
}

function checkUniqueFlat(items: { mac: string; path: string }[], what: string, report: Report) {
    const seen = new Map<string, string>();
    for (const { mac, path } of items) {
        const first = seen.get(mac);
        if (first !== undefined) report(path, `${what} ${show(mac)} is already used by ${first}; each must be unique`);
        else seen.set(mac, path);
    }
}

type GuestInput = ParsedConfig["guests"][number];
type RenderedDefinition = Extract<GuestDefinition, { kind: "rendered" }>;

/** A guest defined by its own domain XML file, used as-is: nothing else may define it, and its name must be the guest's. */
function resolveOwnXml(g: GuestInput & { xml: string }, p: string, env: ValidationEnv, report: Report): GuestSpec {
    const exclusive = (["memoryMiB", "vcpus", "domainType", "uuid", "disks", "nics", "image", "kernel", "initrd", "cmdline", "cloudInit"] as const).filter(
        (k) => g[k] !== undefined,
    );
    if (exclusive.length > 0) {
        report(p, `sets xml: ${show(g.xml)} and also ${exclusive.join(", ")}; a guest's own domain XML is used as-is: remove ${exclusive.join(", ")} or xml`);
    }
    // The connection is set once the guest's cluster address is known (resolveGuestOs).
    const xml = env.readFile(g.xml);
    if (xml === undefined) {
        report(`${p}.xml`, `${show(g.xml)} cannot be read; give the path of an existing libvirt domain XML file`);
        return { name: g.name, host: g.host, definition: { kind: "file", path: g.xml, xml: "" }, connection: undefined };
    }
    const domainName = domainNameOf(xml);
    if (domainName === undefined) {
        report(`${p}.xml`, `${show(g.xml)} is not a libvirt domain XML (no <domain> with a <name>); export one with \`virsh dumpxml\``);
    } else if (domainName !== g.name) {
        report(`${p}.xml`, `${show(g.xml)} defines domain ${show(domainName)}, but the guest is named ${show(g.name)}; the domain name must equal the guest name (the cluster node name): rename one`);
    }
    return { name: g.name, host: g.host, definition: { kind: "file", path: g.xml, xml }, connection: undefined };
}

/** The target device prefix of a disk bus: vd (virtio), hd (ide), sd (sata, scsi). */
function targetPrefix(bus: string): string {
    return bus === "virtio" ? "vd" : bus === "ide" ? "hd" : "sd";
}

/**
 * A rendered guest's disks with their target devices (counted per prefix in `counters`); a guest booted from an
 * image gets its overlay at a default path when it lists no disks.
 */
function resolveDisks(g: GuestInput, p: string, counters: Map<string, number>, report: Report): DiskSpec[] {
    const rawDisks =
        g.disks ??
        (g.image !== undefined
            ? [{ path: `${DEFAULTS.guests.imageDiskDir}/${g.name}.qcow2`, format: DEFAULTS.guests.disks.format, bus: DEFAULTS.guests.disks.bus, keepOnDestroy: DEFAULTS.guests.disks.keepOnDestroy, sizeGiB: undefined }]
            : []);
    if (g.image !== undefined && rawDisks.length === 0) {
        report(`${p}.disks`, `is empty, but image is set: the guest's first disk becomes the overlay of the image; list a disk (e.g. - path: ${DEFAULTS.guests.imageDiskDir}/${g.name}.qcow2) or remove disks to get that default`);
    }
    const disks = rawDisks.map((d, di) => {
        const prefix = targetPrefix(d.bus);
        const n = counters.get(prefix) ?? 0;
        counters.set(prefix, n + 1);
        if (n >= 26) report(`${p}.disks[${di}]`, `too many ${d.bus} disks; at most 26 per bus`);
        const overlay = di === 0 && g.image !== undefined;
        if (overlay && d.format !== "qcow2") {
            report(`${p}.disks[0].format`, `${show(d.format)} cannot hold an overlay of image ${show(g.image)}: a copy-on-write overlay is a qcow2 file; use format: qcow2 (the base image may be raw or qcow2)`);
        }
        if (overlay && d.path === g.image) {
            report(`${p}.disks[0].path`, `${show(d.path)} is the base image itself; the guest writes to its own overlay: give the overlay another path, e.g. ${DEFAULTS.guests.imageDiskDir}/${g.name}.qcow2`);
        }
        if (d.keepOnDestroy && d.sizeGiB === undefined && !overlay) {
            report(
                `${p}.disks[${di}].keepOnDestroy`,
                `true, but this disk has no sizeGiB: kvm-ha-lab only creates (and so only ever deletes) images given a size, and an existing image is always left in place; remove keepOnDestroy, or set sizeGiB to have the image created`,
            );
        }
        return {
            path: d.path,
            format: d.format,
            bus: d.bus,
            target: `${prefix}${String.fromCharCode(97 + (n % 26))}`,
            createSizeGiB: d.sizeGiB,
            keepOnDestroy: d.keepOnDestroy,
            ...(overlay ? { backingImage: g.image } : {}),
        };
    });
    checkUnique(g.disks ?? [], (d) => d.path, (di) => `${p}.disks[${di}].path`, "disk path", report);
    return disks;
}

/** A rendered guest's NICs: MACs derived when not given, every one on a bridge every host has. */
function resolveNics(g: GuestInput, p: string, env: ValidationEnv, host: HostSpec | undefined, hostByName: Map<string, HostSpec>, report: Report): NicSpec[] {
    return (g.nics ?? [{ model: DEFAULTS.guests.nics.model }]).map((n, ni) => {
        const mac = (n.mac ?? stableMac(env.stack, g.name, ni)).toLowerCase();
        if (n.mac !== undefined && !isUnicastMac(mac)) {
            report(
                `${p}.nics[${ni}].mac`,
                `${show(n.mac)} is not a unicast MAC address; use six colon-separated hex bytes with an even first byte (e.g. ${stableMac(env.stack, g.name, ni)}) or leave it out to derive one`,
            );
        }
        const bridge = n.bridge ?? host?.bridge.name ?? "";
        if (n.bridge !== undefined && !IFNAME.test(n.bridge)) {
            report(`${p}.nics[${ni}].bridge`, `${show(n.bridge)} is not a valid interface name`);
        }
        for (const h of hostByName.values()) {
            if (bridge !== "" && h.bridge.name !== bridge) {
                report(
                    `${p}.nics[${ni}].bridge`,
                    `${show(bridge)} is not the bridge of host ${h.name} (${show(h.bridge.name)}); the same domain XML is defined on every host, so every host's bridge must have this name`,
                );
            }
        }
        return { bridge, mac, model: n.model };
    });
}

function resolveGuest(g: GuestInput, i: number, cfg: ParsedConfig, env: ValidationEnv, hostByName: Map<string, HostSpec>, report: Report): GuestSpec {
    const p = `guests[${i}]`;
    if (!DOMAIN_NAME.test(g.name) || g.name.length > 63) {
        report(
            `${p}.name`,
            `${show(g.name)} cannot be both a libvirt domain name and a cluster node name; use 1-63 characters of letters, digits, '_', '.', '-'`,
        );
    }
    const host = hostByName.get(g.host);
    if (!host) {
        report(`${p}.host`, `${show(g.host)} is not a host of this lab; use one of ${show([...hostByName.keys()])}`);
    }
    if (g.xml !== undefined) return resolveOwnXml({ ...g, xml: g.xml }, p, env, report);

    const uuid = g.uuid ?? stableUuid(env.stack, g.name);
    if (g.uuid !== undefined && !isUuid(g.uuid)) {
        report(`${p}.uuid`, `${show(g.uuid)} is not a UUID; use lower-case 8-4-4-4-12 hex (e.g. ${stableUuid(env.stack, g.name)}) or leave it out to derive one`);
    }
    const counters = new Map<string, number>();
    const disks = resolveDisks(g, p, counters, report);
    // The seed is the next virtio disk (its address and prefix are filled in by resolveGuestOs).
    const seedN = counters.get("vd") ?? 0;
    const seedTarget = `vd${String.fromCharCode(97 + (seedN % 26))}`;
    const nics = resolveNics(g, p, env, host, hostByName, report);
    return {
        name: g.name,
        host: g.host,
        definition: {
            kind: "rendered",
            memoryMiB: g.memoryMiB ?? DEFAULTS.guests.memoryMiB,
            vcpus: g.vcpus ?? DEFAULTS.guests.vcpus,
            domainType: g.domainType ?? DEFAULTS.guests.domainType,
            uuid,
            disks,
            nics,
            // Only the guest cluster's nodes fence; a vsock device needs vhost_vsock on every host.
            vsock: cfg.guestCluster.fencing.listener === "vsock" && cfg.guestCluster.nodes.includes(g.name),
            ...((g.cloudInit ?? g.image !== undefined)
                ? {
                      seed: {
                          path: `${disks.length > 0 ? disks[0].path.replace(/\/[^/]*$/, "") || "" : DEFAULTS.guests.imageDiskDir}/${g.name}-cidata.iso`,
                          target: seedTarget,
                          mac: nics[0]?.mac ?? "",
                          address: "",
                          prefix: 0,
                      },
                  }
                : {}),
        },
        connection: undefined,
    };
}

/** Direct kernel boot of a rendered guest: initrd and cmdline need a kernel. */
function resolveGuestBoot(g: GuestInput, p: string, def: RenderedDefinition, report: Report) {
    if (g.kernel !== undefined) {
        def.boot = { kernel: g.kernel, ...(g.initrd !== undefined ? { initrd: g.initrd } : {}), ...(g.cmdline !== undefined ? { cmdline: g.cmdline } : {}) };
    } else {
        for (const k of ["initrd", "cmdline"] as const) {
            if (g[k] !== undefined) report(`${p}.${k}`, `is set but kernel is not: ${k} only applies to direct kernel boot; set kernel (the kernel's path on the hosts) or remove ${k}`);
        }
    }
}

/** Files named for the machine running pulumi (image, kernel, initrd) are checked here, before anything changes. */
function checkLocalGuestFiles(g: GuestInput, p: string, localHost: string | undefined, env: ValidationEnv, report: Report) {
    if (localHost === undefined || env.exists === undefined) return;
    if (g.image !== undefined && g.host === localHost && !env.exists(g.image)) {
        report(
            `${p}.image`,
            `${show(g.image)} cannot be found on host ${localHost} (the machine running pulumi); build the project's test image with \`npm run image\`, or download a distribution's cloud image (README, "Guest images") and give its path`,
        );
    }
    for (const k of ["kernel", "initrd"] as const) {
        const path = g[k];
        if (path !== undefined && !env.exists(path)) {
            report(`${p}.${k}`, `${show(path)} cannot be found on host ${localHost} (the machine running pulumi); the ${k} must exist on every host the guest is defined on: give the path of an existing file`);
        }
    }
}

/** A seeded guest's NIC and static address on the cluster network (`subnet`, its `prefix`). */
function resolveSeedAddress(g: GuestInput, i: number, guest: GuestSpec, def: RenderedDefinition & { seed: SeedSpec }, subnet: string, prefix: number | undefined, report: Report) {
    const p = `guests[${i}]`;
    const seed = def.seed;
    if (def.nics.length === 0 || seed.mac === "") {
        report(`${p}.nics`, `is empty, but the guest boots with a cloud-init seed that configures its NIC on the cluster network; give it a NIC, or set cloudInit: false`);
    }
    if (guest.address === undefined) {
        if (g.address === undefined) {
            report(
                `${p}.address`,
                `is not set, but the guest boots with a cloud-init seed (${g.cloudInit === true ? "cloudInit: true" : "image is set"}), which gives it its static address on the cluster network${subnet !== "" ? ` ${subnet}` : ""}: set address (e.g. ${subnet !== "" ? subnet.replace(/\.0\/\d+$/, `.${11 + i}`) : "10.99.0.11"}), or set cloudInit: false`,
            );
        }
    } else if (prefix !== undefined) {
        seed.address = guest.address;
        seed.prefix = prefix;
    }
}

/** How the program reaches a guest's OS over SSH: its `ssh`, or with a seed as root at its address with the lab's key. */
function resolveGuestConnection(g: GuestInput, p: string, guest: GuestSpec, env: ValidationEnv, report: Report) {
    const cloudInit = g.cloudInit ?? g.image !== undefined;
    if (g.ssh !== undefined) {
        const address = g.ssh.address ?? guest.address;
        if (address === undefined) {
            report(`${p}.ssh.address`, `is not set and the guest has no address on the cluster network to default to; set ssh.address, or address`);
            return;
        }
        const privateKeySecret = g.ssh.privateKeySecret ?? (cloudInit ? undefined : DEFAULTS.hosts.ssh.privateKeySecret);
        guest.connection = resolveSsh({ ...g.ssh, address, privateKeySecret }, `${p}.ssh`, env, report);
    } else if (cloudInit && guest.address !== undefined) {
        guest.connection = { kind: "ssh", address: guest.address, user: DEFAULTS.hosts.ssh.user, port: DEFAULTS.hosts.ssh.port };
    }
}

/**
 * A guest's operating system: direct kernel boot, the cloud-init seed's address, where its files must exist, and how
 * the program reaches it over SSH (needs the guests' cluster addresses, so it runs after resolveGuestAddresses).
 */
function resolveGuestOs(cfg: ParsedConfig, guests: GuestSpec[], subnet: string, hostByName: Map<string, HostSpec>, env: ValidationEnv, report: Report) {
    const localHost = [...hostByName.values()].find((h) => h.connection.kind === "local")?.name;
    const prefix = parseCidr(subnet)?.prefix;
    cfg.guests.forEach((g, i) => {
        const p = `guests[${i}]`;
        const guest = guests[i];
        const def = guest.definition;
        if (def.kind === "rendered") {
            resolveGuestBoot(g, p, def, report);
            checkLocalGuestFiles(g, p, localHost, env, report);
            if (def.seed !== undefined) resolveSeedAddress(g, i, guest, { ...def, seed: def.seed }, subnet, prefix, report);
        }
        resolveGuestConnection(g, p, guest, env, report);
    });
}

/**
 * A guest's address on the cluster network (`guests[].address`, else its ssh address when that is an IPv4 address on
 * the cluster network): fence_virtd's groups admit requests from these addresses only.
 */
function resolveGuestAddresses(cfg: ParsedConfig, guests: GuestSpec[], subnet: string, report: Report) {
    const owners = new Map<string, string>();
    cfg.guests.forEach((g, i) => {
        const p = `guests[${i}].address`;
        let address: string | undefined;
        if (g.address !== undefined) {
            if (!isIpv4(g.address)) {
                report(p, `${show(g.address)} is not an IPv4 address; give the guest's address on the cluster network, e.g. ${subnet !== "" ? subnet.replace(/\.0\/\d+$/, ".11") : "10.99.0.11"} (without /prefix)`);
                return;
            }
            if (subnet !== "" && !cidrContains(subnet, g.address)) {
                report(p, `${show(g.address)} is outside the cluster network ${subnet}; fence requests come from the guest's address on that network: give that address`);
                return;
            }
            address = g.address;
        } else if (g.ssh?.address !== undefined && isIpv4(g.ssh.address) && subnet !== "" && cidrContains(subnet, g.ssh.address)) {
            address = g.ssh.address;
        }
        if (address === undefined) return;
        const first = owners.get(address);
        if (first !== undefined) {
            report(p, `${show(address)} is already the address of ${first}; each guest has its own address on the cluster network: set guests[${i}].address`);
            return;
        }
        owners.set(address, `guests[${i}]`);
        guests[i].address = address;
    });
}

type FencingInput = ParsedConfig["guestCluster"]["fencing"];

/** The fencing settings each listener, fence_virt.conf and the shared XML directory allow. */
function checkFencing(f: FencingInput, nodes: string[], cfg: ParsedConfig, guestByName: Map<string, GuestSpec>, report: Report) {
    const p = "guestCluster.fencing";
    if (/["\r\n\0]/.test(f.keyFile)) {
        report(
            `${p}.keyFile`,
            `${show(f.keyFile)} contains a '"', a line break or NUL, which fence_virt.conf (every value double-quoted, one line) cannot hold; use a path without them, e.g. ${DEFAULTS.guestCluster.fencing.keyFile}`,
        );
    }
    if (f.listener !== "multicast" && f.auth !== "sha256") {
        // fence-virt's tcp and vsock listeners parse `auth` into their hash setting (fence-agents agents/virt/server
        // tcp.c, vsock.c): their challenge-response always uses sha256, and clients must too.
        report(
            `${p}.auth`,
            `${show(f.auth)} cannot be used with the ${f.listener} listener: fence_virtd's ${f.listener} listener always authenticates with sha256 (it reads \`auth\` into its hash setting, a fence-virt bug); set auth: sha256 or remove it`,
        );
    }
    if (f.listener === "vsock") {
        const placements = [...new Set(nodes.map((n) => guestByName.get(n)?.host).filter((h): h is string => h !== undefined))];
        if (placements.length > 1) {
            report(
                `${p}.listener`,
                `"vsock" reaches only the fence_virtd of the host a node runs on (the host's CID 2), which cannot fence a node on another host; the nodes are placed on ${placements.join(", ")}: place them on one host, or use the tcp or multicast listener`,
            );
        }
    }
    if (f.listener === "tcp") {
        cfg.hosts.forEach((h, i) => {
            if (h.bridge.address === undefined) {
                report(
                    `hosts[${i}].bridge.address`,
                    `is not set, but guestCluster.fencing.listener is "tcp": fence_virtd's tcp listener binds each host's bridge address, where the guests connect; set it to the host's address on the cluster network in CIDR form (e.g. 10.99.0.1/24), or use the multicast listener`,
                );
            }
        });
    }
    if (!isMulticastIpv4(f.multicast.address)) {
        report(`${p}.multicast.address`, `${show(f.multicast.address)} is not an IPv4 multicast address (224.0.0.0/4); use e.g. ${DEFAULTS.guestCluster.fencing.multicast.address}`);
    }
    if (cfg.xmlDir.shared && (f.keyFile === cfg.xmlDir.path || f.keyFile.startsWith(cfg.xmlDir.path.replace(/\/?$/, "/")))) {
        report(
            `${p}.keyFile`,
            `${show(f.keyFile)} is inside the shared XML directory ${show(cfg.xmlDir.path)}; the fence key must never be on a shared filesystem (shared storage needs the cluster, which needs fencing): use e.g. ${DEFAULTS.guestCluster.fencing.keyFile}`,
        );
    }
}

/** The cluster network: `subnet` as given, else the one network of the nodes' placement hosts' bridges ("" with none). */
function resolveSubnet(f: FencingInput, nodes: string[], guestByName: Map<string, GuestSpec>, hostByName: Map<string, HostSpec>, report: Report): string {
    const p = "guestCluster.fencing";
    if (f.subnet !== undefined) {
        const c = parseCidr(f.subnet);
        if (!c) report(`${p}.subnet`, `${show(f.subnet)} is not an IPv4 network in CIDR form; use e.g. 10.99.0.0/24`);
        return c ? c.networkCidr : "";
    }
    const addresses = nodes
        .map((n) => guestByName.get(n)?.host)
        .filter((h): h is string => h !== undefined)
        .map((h) => hostByName.get(h)?.bridge.address)
        .filter((a): a is string => a !== undefined);
    const placement = addresses.filter((a) => parseCidr(a) !== undefined);
    const networks = [...new Set(placement.map((a) => parseCidr(a)!.networkCidr))].sort();
    if (placement.length < addresses.length) {
        // An invalid bridge address is reported where it is; deriving a subnet from the rest would only mislead.
    } else if (networks.length === 1) return networks[0];
    else if (networks.length > 1) {
        report(`${p}.subnet`, `is not set and the cluster nodes' hosts have bridges on different networks (${networks.join(", ")}); set the cluster network explicitly`);
    } else if (f.listener !== "vsock") {
        // (vsock needs no guest network: requests travel over the nodes' vsock devices; subnet then stays "")
        report(`${p}.subnet`, `is not set and no host bridge has an address to derive it from; set the guests' network, e.g. subnet: 192.168.122.0/24`);
    }
    return "";
}

function resolveFencing(
    f: FencingInput,
    nodes: string[],
    cfg: ParsedConfig,
    guestByName: Map<string, GuestSpec>,
    hostByName: Map<string, HostSpec>,
    report: Report,
): FencingSpec {
    checkFencing(f, nodes, cfg, guestByName, report);
    const subnet = resolveSubnet(f, nodes, guestByName, hostByName, report);
    // A host's bridge address, when set, must be on the cluster network: fence replies leave through it.
    if (subnet !== "") {
        for (const [i, h] of cfg.hosts.entries()) {
            const addr = h.bridge.address ? parseCidr(h.bridge.address) : undefined;
            if (addr && !cidrContains(subnet, addr.address)) {
                report(`hosts[${i}].bridge.address`, `${show(h.bridge.address)} is outside the cluster network ${subnet}; put the bridge on that network or set guestCluster.fencing.subnet`);
            }
        }
    }
    return {
        listener: f.listener,
        multicast: { address: f.multicast.address, port: f.multicast.port, family: f.multicast.family },
        tcp: { port: f.tcp.port },
        vsock: { port: f.vsock.port },
        hash: f.hash,
        auth: f.auth,
        keyFile: f.keyFile,
        keyVersion: f.keyVersion,
        subnet,
    };
}

/** Names of the secret config keys a lab reads (SSH private keys, fence device passwords), sorted, unique. */
export function referencedSecrets(spec: Pick<LabSpec, "hosts" | "guests" | "hostCluster">): string[] {
    const names = new Set<string>();
    for (const h of spec.hosts) if (h.connection.kind === "ssh" && h.connection.privateKeySecret !== undefined) names.add(h.connection.privateKeySecret);
    for (const g of spec.guests) if (g.connection?.privateKeySecret !== undefined) names.add(g.connection.privateKeySecret);
    for (const d of spec.hostCluster?.fenceDevices ?? []) if (d.passwordSecret) names.add(d.passwordSecret);
    return [...names].sort();
}

/** True when rgmanager on the host cluster starts this guest (then the program must not start it itself). */
export function isClusterManaged(spec: LabSpec, guest: string): boolean {
    return spec.hostCluster?.vmServices.some((s) => s.guest === guest) ?? false;
}
