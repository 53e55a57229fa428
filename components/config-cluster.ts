/**
 * The cluster parts of the stack config: the cman/rgmanager model of both clusters (fence levels and devices, the
 * two-node fence delay, fenced and totem timing, failover domains, the guest cluster's services, the host cluster's
 * `<vm>` services, anti-affinity groups), their zod schemas (with the defaults of components/defaults.ts) and their
 * validation, which names the field path, the bad value and the fix for every problem.
 *
 * components/config.ts composes these into the full config schema and calls `resolveGuestClusterModel` and
 * `resolveHostCluster`; the small validation helpers shared by both files live here.
 */
import { z } from "zod";
import { cidrContains, ipv4ToInt, isHostnameOrIpv4, isIpv4, isMulticastIpv4, parseCidr } from "./net";
import {
    AGENT_DEFAULTS,
    ANTI_AFFINITY_DOMAIN_PREFIX,
    ANTI_AFFINITY_GUARD_SCRIPT_PREFIX,
    antiAffinityDomainName,
    CLUSTAT_SERVICE_NAME_MAX,
    FENCE_LEVELS_MAX,
    FENCE_DEVICES_PER_LEVEL_MAX,
    HOST_VSOCK_CID,
    levelOneAgent,
    levelOneDeviceName,
    MAX_ELEMENT_ATTRIBUTES,
    TARGET_RELEASE,
    vmServiceAttributes,
} from "./cluster-model";
import { DEFAULTS } from "./defaults";
import { domainXmlPath } from "./names";
import type {
    AntiAffinitySpec,
    ClusterServiceSpec,
    FenceDaemonSpec,
    FenceDelaySpec,
    FenceListener,
    FencingSpec,
    GuestClusterSpec,
    GuestFailoverDomainSpec,
    GuestFenceDeviceSpec,
    GuestFenceLevelSpec,
    GuestSpec,
    HostClusterSpec,
    HostSpec,
    SubtreeSpec,
    TotemSpec,
    VmServiceSpec,
} from "./spec";
import type { ValidationEnv } from "./config-env";

/** The Pulumi project name and config namespace. */
export const PROJECT = "kvm-ha-lab";


export const CONFIG_KEY = /^[A-Za-z][A-Za-z0-9_-]*$/;
const ABS_PATH = /^\/[^\0\n]*$/;
const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
/** Names rgmanager and cman take as labels (failover domains, services, script resources, anti-affinity groups). */
const LABEL = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** An XML name: cman types fence device names as xsd:ID. */
const XML_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const DOMAIN_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

export const absPath = z.string().regex(ABS_PATH, { error: "must be an absolute path (starting with /)" });

// ---------------------------------------------------------------- shared validation helpers

export type Report = (path: string, message: string) => void;

export function show(value: unknown): string {
    return JSON.stringify(value) ?? String(value);
}

export function checkUnique<T>(items: T[], key: (t: T) => string, path: (i: number) => string, what: string, report: Report) {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
        const k = key(item);
        const first = seen.get(k);
        if (first !== undefined) report(path(i), `${what} ${show(k)} is already used by ${path(first)}; ${what}s must be unique`);
        else seen.set(k, i);
    });
}

export function checkSecretRef(name: string, path: string, env: ValidationEnv, report: Report) {
    if (env.requireSecrets !== false && !env.secretKeys.has(name)) {
        report(
            path,
            `names the secret config key ${show(name)}, which is not set as a secret; run \`pulumi config set --secret ${PROJECT}:${name} < FILE\``,
        );
    }
}

export function checkClusterName(name: string, path: string, report: Report) {
    if (name.length > 15) {
        report(path, `${show(name)} is ${name.length} characters; cman allows at most 15: use a shorter name`);
    } else if (!CLUSTER_NAME.test(name)) {
        report(path, `${show(name)} is not a valid cluster name; use letters, digits, '_' and '-', starting with a letter or digit`);
    }
}

function checkLabel(name: string, path: string, what: string, report: Report) {
    if (!LABEL.test(name) || name.length > 64) {
        report(path, `${show(name)} is not a valid ${what}; use 1-64 characters of letters, digits, '_', '.', '-', starting with a letter or digit`);
    }
}

// ---------------------------------------------------------------- fence agent parameters (as schema/cluster-conf.rng models them)

type ParamCheck = [test: (v: string) => boolean, what: string];
const isInt = (v: string) => /^(0|[1-9][0-9]{0,8})$/.test(v);
const INT: ParamCheck = [isInt, "a whole number of seconds"];
const POS_INT: ParamCheck = [(v) => isInt(v) && Number(v) > 0, "a positive whole number"];
const PORT: ParamCheck = [(v) => isInt(v) && Number(v) >= 1 && Number(v) <= 65535, "a port number 1-65535"];
const BOOL01: ParamCheck = [(v) => v === "0" || v === "1", '"0" or "1"'];
const HASH: ParamCheck = [(v) => ["none", "sha1", "sha256", "sha512"].includes(v), "none, sha1, sha256 or sha512"];
const PATH: ParamCheck = [(v) => ABS_PATH.test(v), "an absolute path"];
const HOST: ParamCheck = [(v) => isHostnameOrIpv4(v), "an IPv4 address or host name"];
const TEXT: ParamCheck = [(v) => v.length > 0 && !/[\0\n]/.test(v), "non-empty text"];
const oneOf = (...values: string[]): ParamCheck => [(v) => values.includes(v), values.join(", ")];

/** The parameters fence_apc_snmp and fence_wti share (a switched PDU: its address, the host's outlet, login, timing). */
const SWITCHED_PDU_PARAMS: Record<string, ParamCheck> = {
    ipaddr: HOST,
    port: TEXT,
    login: TEXT,
    passwd_script: PATH,
    ipport: PORT,
    power_wait: INT,
    power_timeout: INT,
    login_timeout: INT,
    shell_timeout: INT,
    retry_on: POS_INT,
};

/**
 * The fence agents config validation accepts, each with the parameters it accepts and their value checks: exactly
 * what schema/cluster-conf.rng models (and what cman's fence definitions, generated from the agents' metadata,
 * hold; test/unit/render-cluster-conf.test.ts checks both). A parameter not listed is refused.
 */
export const FENCE_AGENT_PARAMS: Record<string, Record<string, ParamCheck>> = {
    fence_xvm: {
        key_file: PATH,
        multicast_address: [(v) => isMulticastIpv4(v) || /^[fF][fF][0-9a-fA-F]{2}:[0-9a-fA-F:]*$/.test(v), "a multicast address (e.g. 225.0.0.13)"],
        ipport: PORT,
        hash: HASH,
        auth: HASH,
        ip_family: oneOf("auto", "ipv4", "ipv6"),
        retrans: POS_INT,
        timeout: POS_INT,
        use_uuid: BOOL01,
    },
    fence_virt: {
        serial_device: PATH,
        serial_params: TEXT,
        channel_address: [isIpv4, "an IPv4 address"],
        ipaddr: HOST,
        ipport: PORT,
        vsock: [(v) => isInt(v) && Number(v) >= 2, "a vsock CID (2 or more)"],
        hash: HASH,
        auth: HASH,
        key_file: PATH,
        timeout: POS_INT,
    },
    fence_ipmilan: {
        ipaddr: HOST,
        login: TEXT,
        passwd_script: PATH,
        lanplus: BOOL01,
        auth: oneOf("md5", "password", "none"),
        cipher: [(v) => isInt(v) && Number(v) <= 17, "a cipher suite number 0-17"],
        privlvl: oneOf("callback", "user", "operator", "administrator"),
        method: oneOf("onoff", "cycle"),
        ipport: PORT,
        power_wait: INT,
        power_timeout: INT,
        login_timeout: INT,
    },
    fence_apc_snmp: {
        ...SWITCHED_PDU_PARAMS,
        community: TEXT,
        snmp_version: oneOf("1", "2c", "3"),
        snmp_auth_prot: oneOf("MD5", "SHA"),
        snmp_sec_level: oneOf("noAuthNoPriv", "authNoPriv", "authPriv"),
        snmp_priv_prot: oneOf("DES", "AES"),
    },
    fence_wti: { ...SWITCHED_PDU_PARAMS, secure: BOOL01, cmd_prompt: TEXT, identity_file: PATH, ssh_options: TEXT },
};

/** The guest cluster's agents (they talk to the lab's fence_virtd) and the host cluster's (BMCs and power switches). */
export const GUEST_FENCE_AGENTS = ["fence_xvm", "fence_virt"] as const;
export const HOST_FENCE_AGENTS = ["fence_ipmilan", "fence_apc_snmp", "fence_wti"] as const;

/** Programs named fence_* that are not fence agents cman can run for a node. */
const NOT_FENCE_AGENTS: Record<string, string> = {
    fence_tool: "fenced's control tool (join, leave, ls)",
    fence_ack_manual: "the manual override an administrator runs after fencing a node by hand",
    fence_node: "the command that asks fenced to fence a node",
    fence_virtd: "the host daemon fence_xvm and fence_virt talk to",
    fence_legacy: "a wrapper for heartbeat's STONITH plugins",
    fence_manual: "the manual fencing of cman 2 (removed: it fenced nothing)",
};

/** Parameter names fence-agents 4 added as aliases, with the name the target release's agents read. */
const NEWER_PARAM_NAMES: Record<string, string> = { ip: "ipaddr", username: "login", password_script: "passwd_script", plug: "port" };

/** The attributes that name a fence victim: set per node on `<device>`, never on `<fencedevice>`. */
const VICTIM_PARAMS = ["port", "plug", "domain", "nodename"];

/**
 * `shared`: the device fences every node (guest cluster levels), so a victim parameter on it would fence the same
 * machine for every node; a host cluster device belongs to one host and may carry its `port` (e.g. a PDU outlet).
 */
function checkFenceParams(agent: string, params: Record<string, string>, path: string, report: Report, shared: boolean, passwordSecret?: string) {
    for (const [key, value] of Object.entries(params)) {
        const p = `${path}.${key}`;
        if (["passwd", "password"].includes(key)) {
            report(p, `${show(key)} cannot be a fence device parameter here; put the password in a secret config key and name it in passwordSecret`);
            continue;
        }
        if (["name", "agent"].includes(key) || !/^[a-z][a-z0-9_]*$/.test(key)) {
            report(p, `${show(key)} cannot be a fence device parameter here; use a lower-case agent parameter name`);
            continue;
        }
        if (key === "delay") {
            report(p, `fence delay is not set per device here: set fenceDelay on the cluster (it goes on one node's device, so two nodes never fence each other at once)`);
            continue;
        }
        if (shared && VICTIM_PARAMS.includes(key)) {
            report(p, `${show(key)} names the victim, which is set per node on the cluster node's <device>, not on the shared <fencedevice>: remove it`);
            continue;
        }
        const table = FENCE_AGENT_PARAMS[agent];
        if (table === undefined) continue; // the agent itself is refused where it is named
        const renamed = NEWER_PARAM_NAMES[key];
        if (renamed !== undefined && table[renamed] !== undefined) {
            report(p, `${show(key)} is fence-agents 4's name for ${renamed}; the target release's ${agent} (${TARGET_RELEASE}) reads only ${renamed}: write ${renamed}`);
            continue;
        }
        const check = table[key];
        if (check === undefined) {
            report(p, `${show(key)} is not a parameter of ${agent}; use one of ${show(Object.keys(table))}`);
        } else if (!check[0](value)) {
            report(p, `${show(value)} is not valid for ${agent} ${key}; use ${check[1]}`);
        }
    }
    if ((agent === "fence_apc_snmp" || agent === "fence_wti") && (params.ipaddr === undefined || params.port === undefined)) {
        report(path, `${agent} needs the switch's address and this host's outlet: set ipaddr and port`);
    }
    if (passwordSecret !== undefined && params.passwd_script !== undefined) {
        report(path, `sets both passwordSecret and passwd_script; the agent takes one password source: remove one`);
    }
    if (agent === "fence_ipmilan" && params.ipaddr === undefined) report(path, `fence_ipmilan needs the BMC's address: set ipaddr`);
}

// ---------------------------------------------------------------- schemas shared by both clusters

const recovery = z.enum(["restart", "relocate", "disable"]);
/** The cluster stack (see ClusterStack in ./spec). */
const clusterStack = z.enum(["cman", "pacemaker"]).default(DEFAULTS.cluster.stack);
const dependMode = z.enum(["hard", "soft"]);

const fenceDelaySchema = z.strictObject({
    /** The node that survives a fencing race. @default the cluster's first node */
    node: z.string().optional(),
    /** Seconds; 0 turns the delay off. @default 15 */
    seconds: z.number().int().min(0).max(300).optional(),
});

const fenceDaemonSchema = z
    .strictObject({
        /** Seconds; -1 waits for every node and never fences at startup. @default 30 */
        postJoinDelay: z.number().int().min(-1).max(3600).default(DEFAULTS.cluster.fenceDaemon.postJoinDelay),
        /** @default 0 */
        postFailDelay: z.number().int().min(0).max(3600).default(DEFAULTS.cluster.fenceDaemon.postFailDelay),
        /** @default unset (fenced's default: startup fencing on) */
        cleanStart: z.boolean().optional(),
    })
    .prefault({});

const totemSchema = z
    .strictObject({
        /** Milliseconds. @default unset (cman's default, 10000) */
        token: z.number().int().min(1000).max(300000).optional(),
    })
    .prefault({});

const antiAffinitySchema = z
    .array(
        z.strictObject({
            name: z.string(),
            services: z.array(z.string()),
            /** @default false */
            failback: z.boolean().default(DEFAULTS.cluster.antiAffinity.failback),
        }),
    )
    .default([]);

// ---------------------------------------------------------------- guest cluster

const subtreeShape = {
    independentSubtree: z.enum(["restart", "non-critical"]).optional(),
    maxRestarts: z.number().int().min(0).optional(),
    restartExpireTime: z.number().int().min(0).optional(),
    enforceTimeouts: z.boolean().optional(),
};

/** The flags of a `<failoverdomain>`, the same for the guest and the host cluster (their members differ). */
const failoverDomainFlags = {
    ordered: z.boolean().default(DEFAULTS.cluster.failoverDomains.ordered),
    restricted: z.boolean().default(DEFAULTS.cluster.failoverDomains.restricted),
    nofailback: z.boolean().default(DEFAULTS.cluster.failoverDomains.nofailback),
};

/** Fencing delay, fenced and totem timing: the same keys in both clusters. */
const clusterTimingShape = {
    fenceDelay: fenceDelaySchema.optional(),
    fenceDaemon: fenceDaemonSchema,
    totem: totemSchema,
};

/** A cluster's failover domains, whose members are its nodes (`node`) or its hosts (`host`). */
function failoverDomainsSchema<K extends "node" | "host">(memberKey: K) {
    const member = { [memberKey]: z.string() } as Record<K, z.ZodString>;
    return z
        .array(
            z.strictObject({
                name: z.string(),
                ...failoverDomainFlags,
                members: z.array(z.strictObject({ ...member, priority: z.number().int().min(1).max(100).optional() })),
            }),
        )
        .default([]);
}

/** The rgmanager attributes a `<service>` and a `<vm>` share, with their defaults. */
const rgServiceShape = {
    /** @default true */
    autostart: z.boolean().default(DEFAULTS.cluster.rgService.autostart),
    /** @default false */
    exclusive: z.boolean().default(DEFAULTS.cluster.rgService.exclusive),
    /** @default restart */
    recovery: recovery.default(DEFAULTS.cluster.rgService.recovery),
    /** @default 0 */
    maxRestarts: z.number().int().min(0).default(DEFAULTS.cluster.rgService.maxRestarts),
    /** @default 0 */
    restartExpireTime: z.number().int().min(0).default(DEFAULTS.cluster.rgService.restartExpireTime),
};

const serviceSchema = z.strictObject({
    name: z.string(),
    failoverDomain: z.string().optional(),
    ...rgServiceShape,
    depend: z.string().optional(),
    dependMode: dependMode.optional(),
    ips: z
        .array(
            z.strictObject({
                address: z.string(),
                /** @default true */
                monitorLink: z.boolean().default(DEFAULTS.guestCluster.services.ips.monitorLink),
                ...subtreeShape,
            }),
        )
        .default([]),
    scripts: z.array(z.strictObject({ name: z.string(), file: absPath, ...subtreeShape })).default([]),
});

/**
 * The guest cluster keys beyond name, nodes and fencing (components/config.ts adds these to its guestCluster
 * schema).
 */
export const guestClusterModelShape = {
    /** cman (cluster.conf) or pacemaker (corosync.conf + CIB); pacemaker-only rules: components/config-pacemaker.ts. @default cman */
    stack: clusterStack,
    fenceDevices: z
        .array(
            z.strictObject({
                name: z.string(),
                agent: z.enum(["fence_xvm", "fence_virt"]),
                params: z.record(z.string(), z.string()).default({}),
            }),
        )
        .default([]),
    fenceLevels: z
        .array(
            z.strictObject({
                devices: z.array(
                    z.strictObject({
                        device: z.string(),
                        /** Victim per node. @default the node's own name (= its libvirt domain) */
                        ports: z.record(z.string(), z.string()).default({}),
                    }),
                ),
            }),
        )
        .default([]),
    ...clusterTimingShape,
    failoverDomains: failoverDomainsSchema("node"),
    services: z.array(serviceSchema).default([]),
    antiAffinity: antiAffinitySchema,
};

const guestClusterModelSchema = z.strictObject(guestClusterModelShape);
type GuestClusterModelInput = z.output<typeof guestClusterModelSchema>;
export type GuestClusterModel = Omit<GuestClusterSpec, "name" | "nodes" | "fencing">;

function resolveFenceDelay(
    given: z.output<typeof fenceDelaySchema> | undefined,
    nodes: string[],
    nodeSet: Set<string>,
    path: string,
    what: string,
    report: Report,
): FenceDelaySpec | undefined {
    if (given === undefined) {
        // Two nodes: neither has quorum to lose, so both may shoot at once; a delay on one decides the race.
        return nodes.length === 2 ? { node: nodes[0], seconds: DEFAULTS.cluster.fenceDelay.seconds } : undefined;
    }
    const node = given.node ?? nodes[0];
    if (given.node !== undefined && !nodeSet.has(given.node)) {
        report(`${path}.node`, `${show(given.node)} is not a ${what} of this cluster; use one of ${show(nodes)}`);
    }
    const seconds = given.seconds ?? DEFAULTS.cluster.fenceDelay.seconds;
    return seconds === 0 || node === undefined ? undefined : { node, seconds };
}

function resolveFenceDaemon(f: z.output<typeof fenceDaemonSchema>): FenceDaemonSpec {
    return { postJoinDelay: f.postJoinDelay, postFailDelay: f.postFailDelay, ...(f.cleanStart !== undefined ? { cleanStart: f.cleanStart } : {}) };
}

function resolveTotem(t: z.output<typeof totemSchema>): TotemSpec {
    return t.token !== undefined ? { token: t.token } : {};
}

function checkSubtree(r: SubtreeSpec, path: string, report: Report) {
    if (r.independentSubtree === undefined) {
        for (const key of ["maxRestarts", "restartExpireTime"] as const) {
            if (r[key] !== undefined) {
                report(`${path}.${key}`, `is set (${show(r[key])}) but independentSubtree is not; it only applies to an independent subtree: set independentSubtree: restart, or remove it`);
            }
        }
    }
}

function subtreeOf(r: SubtreeSpec): SubtreeSpec {
    const out: SubtreeSpec = {};
    if (r.independentSubtree !== undefined) out.independentSubtree = r.independentSubtree;
    if (r.maxRestarts !== undefined) out.maxRestarts = r.maxRestarts;
    if (r.restartExpireTime !== undefined) out.restartExpireTime = r.restartExpireTime;
    if (r.enforceTimeouts !== undefined) out.enforceTimeouts = r.enforceTimeouts;
    return out;
}

/** Each member's failover domain is aa-<group>-<member>: names with '-' can make two of them the same. */
function checkAntiAffinityDomainNames(groups: AntiAffinitySpec[], path: string, memberWhat: string, report: Report) {
    const domains = new Map<string, string>();
    groups.forEach((g, i) =>
        g.services.forEach((s, si) => {
            const d = antiAffinityDomainName(g.name, s);
            const first = domains.get(d);
            if (first !== undefined && first !== `${g.name}/${s}`) {
                report(
                    `${path}[${i}].services[${si}]`,
                    `${show(s)} of group ${show(g.name)} would get the failover domain ${show(d)}, which ${first.replace("/", "'s member ")} already gets; rename the group or the ${memberWhat}`,
                );
            } else domains.set(d, `${g.name}/${s}`);
        }),
    );
}

/**
 * Anti-affinity groups, shared rules: unique names, two or more members that exist, each in one group only, at most
 * as many members as nodes (each member needs a node of its own), members without a failover domain of their own.
 */
function checkAntiAffinity(
    groups: AntiAffinitySpec[],
    path: string,
    members: Map<string, { path: string; failoverDomain?: string }>,
    memberWhat: string,
    nodeCount: number,
    nodeWhat: string,
    report: Report,
) {
    checkUnique(groups, (g) => g.name, (i) => `${path}[${i}].name`, "anti-affinity group name", report);
    checkAntiAffinityDomainNames(groups, path, memberWhat, report);
    const grouped = new Map<string, string>();
    groups.forEach((g, i) => {
        const p = `${path}[${i}]`;
        if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(g.name) || g.name.length > 32) {
            report(`${p}.name`, `${show(g.name)} is not a valid anti-affinity group name; use 1-32 characters of a-z, 0-9 and '-'`);
        }
        if (g.services.length < 2) {
            report(`${p}.services`, `has ${g.services.length} member${g.services.length === 1 ? "" : "s"}; an anti-affinity group keeps 2 or more ${memberWhat}s apart: list at least 2`);
        }
        if (g.services.length > nodeCount) {
            report(
                `${p}.services`,
                `has ${g.services.length} members but the cluster has ${nodeCount} ${nodeWhat}${nodeCount === 1 ? "" : "s"}; members that must never share a ${nodeWhat} need one each: remove members or add ${nodeWhat}s`,
            );
        }
        checkUnique(g.services, (s) => s, (si) => `${p}.services[${si}]`, "member", report);
        g.services.forEach((s, si) => {
            const sp = `${p}.services[${si}]`;
            const m = members.get(s);
            if (m === undefined) {
                report(sp, `${show(s)} is not a ${memberWhat} of this cluster; use one of ${show([...members.keys()])}`);
                return;
            }
            const other = grouped.get(s);
            if (other !== undefined && other !== p) {
                report(sp, `${show(s)} is already a member of ${other}; a ${memberWhat} can be in one anti-affinity group (its failover domain comes from the group)`);
            }
            grouped.set(s, p);
            if (m.failoverDomain !== undefined) {
                report(
                    `${m.path}.failoverDomain`,
                    `${show(m.failoverDomain)} cannot be set on ${show(s)}: it is a member of anti-affinity group ${show(g.name)}, which gives it an ordered failover domain of its own; remove failoverDomain`,
                );
            }
        });
    });
}

function checkDomainMembers(
    domains: { name: string; members: { key: string; priority?: number }[] }[],
    path: string,
    memberKey: string,
    nodes: string[],
    what: string,
    report: Report,
) {
    const nodeSet = new Set(nodes);
    checkUnique(domains, (d) => d.name, (i) => `${path}[${i}].name`, "failover domain name", report);
    domains.forEach((d, i) => {
        checkLabel(d.name, `${path}[${i}].name`, "failover domain name", report);
        if (d.name.startsWith(ANTI_AFFINITY_DOMAIN_PREFIX)) {
            report(`${path}[${i}].name`, `${show(d.name)} starts with ${show(ANTI_AFFINITY_DOMAIN_PREFIX)}, which is reserved for anti-affinity failover domains: rename it`);
        }
        if (d.members.length === 0) report(`${path}[${i}].members`, `is empty; list the ${what}s of this failover domain`);
        checkUnique(d.members, (m) => m.key, (mi) => `${path}[${i}].members[${mi}].${memberKey}`, "member", report);
        d.members.forEach((m, mi) => {
            if (!nodeSet.has(m.key)) {
                report(`${path}[${i}].members[${mi}].${memberKey}`, `${show(m.key)} is not a ${what} of this ${what === "host" ? "lab" : "cluster"}; use one of ${show(nodes)}`);
            }
        });
    });
}

function checkIpAddress(address: string, path: string, report: Report) {
    const [ip, prefix] = address.split("/", 2);
    const ok = isIpv4(ip) && (prefix === undefined || (parseCidr(address) !== undefined && Number(prefix) >= 1 && Number(prefix) <= 32));
    if (!ok) report(path, `${show(address)} is not an IPv4 address (optionally with /prefix); use e.g. 10.99.0.50/24`);
}

/** What the guest cluster's model is checked against: the lab's fencing and the addresses on the cluster network. */
export interface GuestClusterNetwork {
    /** The lab's fencing (listener, transports, key, hash): extra fence devices must reach this fence_virtd. */
    fencing: FencingSpec;
    /** Host name → its bridge address without prefix (hosts without one are left out). */
    hostAddresses: Map<string, string>;
    /** Guest name → its address on the cluster network (guests without one are left out). */
    nodeAddresses: Map<string, string>;
}

/**
 * An extra guest fence device must reach the lab's own fence_virtd, the only listener there is: the agent of the
 * lab's listener (fence_xvm for multicast, fence_virt for tcp and vsock), the listener's address and port, the lab's
 * key, hash and auth. A parameter left out takes the agent's default, which must then be the lab's value too;
 * where the lab's value differs from that default it is filled in (so the device points at the lab's listener and
 * key). Returns the device's parameters.
 */
function reconcileGuestFenceDevice(
    d: { name: string; agent: "fence_xvm" | "fence_virt"; params: Record<string, string> },
    path: string,
    net: GuestClusterNetwork,
    report: Report,
): Record<string, string> {
    const f = net.fencing;
    const expected = levelOneAgent(f.listener);
    if (d.agent !== expected) {
        report(
            `${path}.agent`,
            `${show(d.agent)} cannot reach this lab's fence_virtd: it listens over ${f.listener} (guestCluster.fencing.listener), which only ${expected} speaks; use agent: ${expected}`,
        );
        return { ...d.params };
    }
    for (const key of ["serial_device", "serial_params", "channel_address"]) {
        if (d.params[key] !== undefined) {
            report(
                `${path}.params.${key}`,
                `selects fence_virt's serial (VMChannel) transport, but this lab's fence_virtd has no serial listener and its domains no serial channel for it; remove ${key} (the device then uses the lab's ${f.listener} listener)`,
            );
        }
    }
    const params = { ...d.params };
    const defaults = AGENT_DEFAULTS[d.agent] ?? {};
    const want: Record<string, string> = { key_file: f.keyFile, hash: f.hash, auth: f.auth };
    if (f.listener === "multicast") Object.assign(want, { multicast_address: f.multicast.address, ipport: String(f.multicast.port) });
    else if (f.listener === "tcp") want.ipport = String(f.tcp.port);
    else Object.assign(want, { vsock: String(HOST_VSOCK_CID), ipport: String(f.vsock.port) });
    const fields: Record<string, string> = {
        key_file: "guestCluster.fencing.keyFile (the only key the lab installs)",
        hash: "guestCluster.fencing.hash",
        auth: "guestCluster.fencing.auth",
        multicast_address: "guestCluster.fencing.multicast.address",
        ipport: `guestCluster.fencing.${f.listener}.port`,
        vsock: "the host's CID (every host is CID 2 to its guests)",
    };
    for (const [key, value] of Object.entries(want)) {
        const given = params[key];
        if (given !== undefined && given !== value) {
            report(`${path}.params.${key}`, `${show(given)} is not what this lab's fence_virtd uses (${fields[key]}: ${show(value)}); no listener answers there: set ${key}: ${show(value)} or remove it`);
        } else if (given === undefined && defaults[key] !== value) {
            params[key] = value;
        }
    }
    if (f.listener === "tcp") {
        const addresses = [...net.hostAddresses.values()];
        if (params.ipaddr === undefined) {
            report(`${path}.params.ipaddr`, `is not set: over tcp fence_virt connects to one host's fence_virtd (without ipaddr it would use the serial transport); set it to a host's bridge address, one of ${show(addresses)}`);
        } else if (!addresses.includes(params.ipaddr)) {
            report(`${path}.params.ipaddr`, `${show(params.ipaddr)} is not a host's bridge address, where this lab's fence_virtd listens over tcp; use one of ${show(addresses)}`);
        }
    } else if (params.ipaddr !== undefined) {
        report(`${path}.params.ipaddr`, `selects fence_virt's tcp transport, but this lab's fence_virtd listens over ${f.listener}; remove ipaddr`);
    }
    return params;
}

/** A floating service address must be a free address of the cluster network (fencing.subnet). */
function checkServiceAddress(address: string, path: string, net: GuestClusterNetwork | undefined, report: Report) {
    if (net === undefined) return;
    const ip = address.split("/")[0];
    if (!isIpv4(ip)) return; // reported by checkIpAddress
    const subnet = net.fencing.subnet;
    const c = subnet === "" ? undefined : parseCidr(subnet);
    if (c !== undefined) {
        if (!cidrContains(subnet, ip)) {
            report(path, `${show(address)} is outside the cluster network ${subnet}; rgmanager's ip.sh brings a floating address up on the node's interface on that network: use an address in ${subnet}`);
            return;
        }
        const prefix = address.split("/")[1];
        if (prefix !== undefined && Number(prefix) !== c.prefix) {
            report(path, `${show(address)} has prefix /${prefix}, but the cluster network is ${subnet}; write /${c.prefix} or leave the prefix out (ip.sh takes it from the interface)`);
        }
        const size = 2 ** (32 - c.prefix);
        if (c.prefix <= 30 && (ip === c.network || ipv4ToInt(ip) === ipv4ToInt(c.network) + size - 1)) {
            report(path, `${show(address)} is the network or broadcast address of ${subnet}; use a host address of that network`);
        }
    }
    for (const [host, a] of net.hostAddresses) {
        if (a === ip) report(path, `${show(address)} is the bridge address of host ${show(host)}; a floating service address must be free: use another address of the cluster network`);
    }
    for (const [node, a] of net.nodeAddresses) {
        if (a === ip) report(path, `${show(address)} is the address of guest ${show(node)}; a floating service address must be free: use another address of the cluster network`);
    }
}

/** The rgmanager settings a `<service>` and a `<vm>` share (rgServiceShape's keys), in the order both render them. */
export const RG_SERVICE_KEYS = ["autostart", "exclusive", "recovery", "maxRestarts", "restartExpireTime"] as const;
type RgServiceKey = (typeof RG_SERVICE_KEYS)[number];

/** `s`'s rgmanager settings (RG_SERVICE_KEYS), in that order. */
export function rgServiceSettings<T extends { [K in RgServiceKey]?: unknown }>(s: T): Pick<T, RgServiceKey> {
    return { autostart: s.autostart, exclusive: s.exclusive, recovery: s.recovery, maxRestarts: s.maxRestarts, restartExpireTime: s.restartExpireTime };
}

/** A service's or VM service's `failoverDomain` names a configured failover domain. */
function checkDomainRef(failoverDomain: string | undefined, path: string, cluster: string, domainNames: Set<string>, report: Report) {
    if (failoverDomain !== undefined && !domainNames.has(failoverDomain)) {
        report(`${path}.failoverDomain`, `${show(failoverDomain)} is not a failover domain; define it in ${cluster}.failoverDomains or use one of ${show([...domainNames])}`);
    }
}

/** What `depend` names, in the words of the guest cluster's services or the host cluster's VM services. */
interface DependWords {
    /** "service" or "VM service". */
    what: string;
    /** What to name instead of itself. */
    other: string;
    /** What depend is set to. */
    target: string;
}

/** `depend` names another member of `names`; `dependMode` needs `depend`. */
function checkDepend(s: { depend?: string; dependMode?: string }, self: string, path: string, names: Set<string>, words: DependWords, report: Report) {
    if (s.depend !== undefined) {
        if (s.depend === self) report(`${path}.depend`, `${show(s.depend)} is this ${words.what} itself; name ${words.other}`);
        else if (!names.has(s.depend)) report(`${path}.depend`, `${show(s.depend)} is not a ${words.what} of this cluster; use one of ${show([...names])}`);
    }
    if (s.dependMode !== undefined && s.depend === undefined) {
        report(`${path}.dependMode`, `is set (${show(s.dependMode)}) but depend is not; set depend to ${words.target} this one needs, or remove dependMode`);
    }
}

/** The failover domains of either cluster (members keyed `node` or `host`), checked against the cluster's members. */
function checkFailoverDomains<K extends "node" | "host">(
    domains: { name: string; members: ({ [P in K]: string } & { priority?: number })[] }[],
    memberKey: K,
    path: string,
    members: string[],
    report: Report,
) {
    const keyed = domains.map((d) => ({ name: d.name, members: d.members.map((m) => ({ key: m[memberKey] as string, priority: m.priority })) }));
    checkDomainMembers(keyed, path, memberKey, members, memberKey, report);
}

/** The guest cluster's extra fence devices: names, parameters, reconciled with the lab's fence_virtd. */
function resolveGuestFenceDevices(gc: GuestClusterModelInput, nodes: string[], listener: FenceListener, net: GuestClusterNetwork | undefined, report: Report): GuestFenceDeviceSpec[] {
    const p = "guestCluster";
    const builtIn = new Set(nodes.map((n) => levelOneDeviceName(listener, n)));
    checkUnique(gc.fenceDevices, (d) => d.name, (i) => `${p}.fenceDevices[${i}].name`, "fence device name", report);
    gc.fenceDevices.forEach((d, i) => {
        const dp = `${p}.fenceDevices[${i}]`;
        if (!XML_NAME.test(d.name)) {
            report(`${dp}.name`, `${show(d.name)} is not a valid fence device name; cman needs an XML name: start with a letter or '_', then letters, digits, '_', '.', '-' (e.g. xvm-second)`);
        } else if (builtIn.has(d.name)) {
            report(`${dp}.name`, `${show(d.name)} is the name of a level-1 ${levelOneAgent(listener)} device this lab renders for each node; choose another name`);
        }
        checkFenceParams(d.agent, d.params, `${dp}.params`, report, true);
    });
    return gc.fenceDevices.map((d, i) => ({
        name: d.name,
        agent: d.agent,
        params: net === undefined ? { ...d.params } : reconcileGuestFenceDevice(d, `${p}.fenceDevices[${i}]`, net, report),
    }));
}

/** The guest cluster's fence levels 2, 3, ...: within fenced's limits, naming configured devices and real nodes. */
function resolveGuestFenceLevels(gc: GuestClusterModelInput, nodes: string[], listener: FenceListener, report: Report): GuestFenceLevelSpec[] {
    const p = "guestCluster";
    const nodeSet = new Set(nodes);
    const deviceNames = new Set(gc.fenceDevices.map((d) => d.name));
    if (gc.fenceLevels.length + 1 > FENCE_LEVELS_MAX) {
        report(`${p}.fenceLevels`, `has ${gc.fenceLevels.length} levels; with level 1 (${levelOneAgent(listener)}) that is more than the ${FENCE_LEVELS_MAX} methods fenced reads: remove some`);
    }
    gc.fenceLevels.forEach((l, li) => {
        const lp = `${p}.fenceLevels[${li}]`;
        if (l.devices.length === 0) report(`${lp}.devices`, `is empty; a fence level needs at least one device from ${p}.fenceDevices`);
        if (l.devices.length > FENCE_DEVICES_PER_LEVEL_MAX) {
            report(`${lp}.devices`, `has ${l.devices.length} devices; fenced reads at most ${FENCE_DEVICES_PER_LEVEL_MAX} per method`);
        }
        l.devices.forEach((d, di) => {
            const dp = `${lp}.devices[${di}]`;
            if (!deviceNames.has(d.device)) {
                report(`${dp}.device`, `${show(d.device)} is not a fence device of ${p}.fenceDevices; define it there or use one of ${show([...deviceNames])}`);
            }
            for (const [node, port] of Object.entries(d.ports)) {
                if (!nodeSet.has(node)) report(`${dp}.ports.${node}`, `${show(node)} is not a node of this cluster; use one of ${show(nodes)}`);
                if (!DOMAIN_NAME.test(port) || port.length > 63) {
                    report(`${dp}.ports.${node}`, `${show(port)} is not a libvirt domain name; use 1-63 characters of letters, digits, '_', '.', '-'`);
                }
            }
        });
    });
    return gc.fenceLevels.map((l) => ({ devices: l.devices.map((d) => ({ device: d.device, ports: { ...d.ports } })) }));
}

type ServiceInput = GuestClusterModelInput["services"][number];

/** Floating addresses and script resources are each one service's: the owners seen so far, by address and by name. */
interface ServiceResourceOwners {
    ips: Map<string, string>;
    scripts: Map<string, string>;
}

function checkServiceResources(s: ServiceInput, path: string, owners: ServiceResourceOwners, net: GuestClusterNetwork | undefined, report: Report) {
    s.ips.forEach((ip, ii) => {
        const ipp = `${path}.ips[${ii}]`;
        checkIpAddress(ip.address, `${ipp}.address`, report);
        checkServiceAddress(ip.address, `${ipp}.address`, net, report);
        const key = ip.address.split("/")[0];
        const first = owners.ips.get(key);
        if (first !== undefined) report(`${ipp}.address`, `${show(ip.address)} is already used by ${first}; a floating address belongs to one service`);
        else owners.ips.set(key, `${ipp}.address`);
        checkSubtree(ip, ipp, report);
    });
    s.scripts.forEach((sc, si) => {
        const scp = `${path}.scripts[${si}]`;
        checkLabel(sc.name, `${scp}.name`, "script resource name", report);
        if (sc.name.startsWith(ANTI_AFFINITY_GUARD_SCRIPT_PREFIX)) {
            report(`${scp}.name`, `${show(sc.name)} starts with ${show(ANTI_AFFINITY_GUARD_SCRIPT_PREFIX)}, which is reserved for the anti-affinity guards: rename it`);
        }
        const first = owners.scripts.get(sc.name);
        if (first !== undefined) report(`${scp}.name`, `script resource name ${show(sc.name)} is already used by ${first}; rgmanager identifies script resources by name: rename one`);
        else owners.scripts.set(sc.name, `${scp}.name`);
        checkSubtree(sc, scp, report);
    });
}

/** The guest cluster's services: names, references, their addresses and scripts. */
function resolveGuestServices(gc: GuestClusterModelInput, domainNames: Set<string>, net: GuestClusterNetwork | undefined, report: Report): ClusterServiceSpec[] {
    const sp = "guestCluster.services";
    checkUnique(gc.services, (s) => s.name, (i) => `${sp}[${i}].name`, "service name", report);
    const serviceNames = new Set(gc.services.map((s) => s.name));
    const guarded = new Set(gc.antiAffinity.flatMap((g) => g.services));
    const owners: ServiceResourceOwners = { ips: new Map(), scripts: new Map() };
    gc.services.forEach((s, i) => {
        const p1 = `${sp}[${i}]`;
        checkLabel(s.name, `${p1}.name`, "service name", report);
        checkDomainRef(s.failoverDomain, p1, "guestCluster", domainNames, report);
        checkDepend(s, s.name, p1, serviceNames, { what: "service", other: "another service it needs", target: "the service" }, report);
        checkServiceResources(s, p1, owners, net, report);
        if (guarded.has(s.name) && s.name.length > CLUSTAT_SERVICE_NAME_MAX) {
            report(
                `${p1}.name`,
                `${show(s.name)} is ${s.name.length} characters; a member of an anti-affinity group can have at most ${CLUSTAT_SERVICE_NAME_MAX}, because clustat (which its guard reads) cuts "service:<name>" at 30 characters: use a shorter name`,
            );
        }
    });
    return gc.services.map((s) => ({
        name: s.name,
        ...(s.failoverDomain !== undefined ? { failoverDomain: s.failoverDomain } : {}),
        ...rgServiceSettings(s),
        ...(s.depend !== undefined ? { depend: s.depend } : {}),
        ...(s.dependMode !== undefined ? { dependMode: s.dependMode } : {}),
        ips: s.ips.map((ip) => ({ address: ip.address, monitorLink: ip.monitorLink, ...subtreeOf(ip) })),
        scripts: s.scripts.map((sc) => ({ name: sc.name, file: sc.file, ...subtreeOf(sc) })),
    }));
}

/**
 * Validates the guest cluster's model (fence levels and devices, delays, failover domains, services, anti-affinity)
 * for the cluster `nodes` and returns it resolved. `listener` (fence_virtd's, default multicast) decides the names of
 * the level-1 devices the renderer adds, which configured devices must not take. `net` (the lab's fencing and
 * addresses) reconciles extra fence devices with the lab's fence_virtd and checks service addresses; without it
 * those checks are left out.
 */
export function resolveGuestClusterModel(
    gc: GuestClusterModelInput,
    nodes: string[],
    report: Report,
    listener: FenceListener = DEFAULTS.guestCluster.fencing.listener,
    net?: GuestClusterNetwork,
): GuestClusterModel {
    const p = "guestCluster";
    const fenceDevices = resolveGuestFenceDevices(gc, nodes, listener, net, report);
    const fenceLevels = resolveGuestFenceLevels(gc, nodes, listener, report);
    const fenceDelay = resolveFenceDelay(gc.fenceDelay, nodes, new Set(nodes), `${p}.fenceDelay`, "node", report);

    checkFailoverDomains(gc.failoverDomains, "node", `${p}.failoverDomains`, nodes, report);
    const failoverDomains: GuestFailoverDomainSpec[] = gc.failoverDomains.map((d) => ({
        name: d.name,
        ordered: d.ordered,
        restricted: d.restricted,
        nofailback: d.nofailback,
        members: d.members.map((m) => ({ node: m.node, ...(m.priority !== undefined ? { priority: m.priority } : {}) })),
    }));
    const services = resolveGuestServices(gc, new Set(failoverDomains.map((d) => d.name)), net, report);

    const members = new Map(gc.services.map((s, i) => [s.name, { path: `${p}.services[${i}]`, failoverDomain: s.failoverDomain }]));
    const antiAffinity: AntiAffinitySpec[] = gc.antiAffinity.map((g) => ({ name: g.name, services: [...g.services], failback: g.failback }));
    checkAntiAffinity(antiAffinity, `${p}.antiAffinity`, members, "service", nodes.length, "node", report);

    return {
        stack: gc.stack,
        fenceDevices,
        fenceLevels,
        ...(fenceDelay !== undefined ? { fenceDelay } : {}),
        fenceDaemon: resolveFenceDaemon(gc.fenceDaemon),
        totem: resolveTotem(gc.totem),
        failoverDomains,
        services,
        antiAffinity,
    };
}

// ---------------------------------------------------------------- host cluster

export const hostClusterSchema = z.strictObject({
    name: z.string(),
    /** cman (cluster.conf) or pacemaker (corosync.conf + CIB). @default cman */
    stack: clusterStack,
    fenceDevices: z.array(
        z.strictObject({
            name: z.string(),
            agent: z.string().regex(/^fence_[a-z0-9_]+$/, { error: "must be a fence agent name such as fence_ipmilan" }),
            host: z.string(),
            /** Fence level (method) of its host; 1 is tried first. @default 1 */
            level: z.number().int().min(1).max(FENCE_LEVELS_MAX).default(DEFAULTS.hostCluster.fenceDevices.level),
            params: z.record(z.string(), z.string()).default({}),
            passwordSecret: z.string().regex(CONFIG_KEY).optional(),
        }),
    ),
    ...clusterTimingShape,
    failoverDomains: failoverDomainsSchema("host"),
    vmServices: z
        .array(
            z.strictObject({
                guest: z.string(),
                ...rgServiceShape,
                failoverDomain: z.string().optional(),
                /** @default live */
                migrate: z.enum(["live", "pause"]).default(DEFAULTS.hostCluster.vmServices.migrate),
                /** @default true */
                useVirsh: z.boolean().default(DEFAULTS.hostCluster.vmServices.useVirsh),
                xmlFile: absPath.optional(),
                hardRecovery: z.boolean().optional(),
                depend: z.string().optional(),
                dependMode: dependMode.optional(),
                migrationMapping: z.record(z.string(), z.string()).optional(),
                hypervisor: z.enum(["auto", "xen", "qemu"]).optional(),
                hypervisorUri: z.string().optional(),
                migrationUri: z.string().optional(),
                snapshot: absPath.optional(),
                statusProgram: z.string().optional(),
                tunnelled: z.boolean().optional(),
            }),
        )
        .default([]),
    antiAffinity: antiAffinitySchema,
});

type HostClusterInput = z.output<typeof hostClusterSchema>;

/** cman's limit on the nodes of one cluster. */
export const CMAN_MAX_NODES = 16;

type HostFenceDeviceInput = HostClusterInput["fenceDevices"][number];
type VmServiceInput = HostClusterInput["vmServices"][number];

/** One host fence device: the host it fences, its name, a fence agent the lab models, its parameters and secret. */
function checkHostFenceDevice(d: HostFenceDeviceInput, path: string, hostNames: Set<string>, env: ValidationEnv, report: Report) {
    if (!hostNames.has(d.host)) {
        report(`${path}.host`, `${show(d.host)} is not a host of this lab; use one of ${show([...hostNames])}`);
    }
    if (!XML_NAME.test(d.name)) {
        report(`${path}.name`, `${show(d.name)} is not a valid fence device name; cman needs an XML name: start with a letter or '_', then letters, digits, '_', '.', '-' (e.g. ipmi-kvm1)`);
    }
    const ap = `${path}.agent`;
    if (NOT_FENCE_AGENTS[d.agent] !== undefined) {
        report(ap, `${show(d.agent)} is not a fence agent but ${NOT_FENCE_AGENTS[d.agent]}; fenced cannot power a host off with it: use one of ${show([...HOST_FENCE_AGENTS])}`);
    } else if (!(HOST_FENCE_AGENTS as readonly string[]).includes(d.agent)) {
        report(ap, `${show(d.agent)} is not a fence agent kvm-ha-lab models for hosts; its schema and the validation of its parameters know ${show([...HOST_FENCE_AGENTS])}: use one of them`);
    }
    checkFenceParams(d.agent, d.params, `${path}.params`, report, false, d.passwordSecret);
    const count = 2 + Object.keys(d.params).length + (d.passwordSecret !== undefined ? 1 : 0);
    if (count > MAX_ELEMENT_ATTRIBUTES) {
        report(
            `${path}.params`,
            `gives ${Object.keys(d.params).length} parameters, so the <fencedevice> would carry ${count} attributes (with name, agent${d.passwordSecret !== undefined ? " and passwd" : ""}); cman's validator (xmllint) takes time exponential in that number, so at most ${MAX_ELEMENT_ATTRIBUTES} are allowed: leave out parameters that keep the agent's default`,
        );
    }
    if (d.passwordSecret !== undefined) checkSecretRef(d.passwordSecret, `${path}.passwordSecret`, env, report);
}

/** Every host has a fence device; a host's levels are 1, 2, ... without a gap, each within fenced's limit. */
function checkHostFenceLevels(devices: HostFenceDeviceInput[], hosts: HostSpec[], report: Report) {
    const p = "hostCluster";
    for (const h of hosts) {
        const own = devices.map((d, i) => ({ d, i })).filter(({ d }) => d.host === h.name);
        if (own.length === 0) {
            report(`${p}.fenceDevices`, `no device fences host ${show(h.name)}; every cluster node needs a fence device (e.g. fence_ipmilan for its BMC)`);
            continue;
        }
        const levels = [...new Set(own.map(({ d }) => d.level))].sort((a, b) => a - b);
        levels.forEach((level, li) => {
            if (level !== li + 1) {
                const at = own.find(({ d }) => d.level === level)!;
                report(
                    `${p}.fenceDevices[${at.i}].level`,
                    `${level} for host ${show(h.name)}, which has no device at level ${li + 1}; fence levels of a host are tried 1, 2, ... and must not skip one: use level ${li + 1}`,
                );
            }
            const inLevel = own.filter(({ d }) => d.level === level);
            if (inLevel.length > FENCE_DEVICES_PER_LEVEL_MAX) {
                report(`${p}.fenceDevices`, `host ${show(h.name)} has ${inLevel.length} devices at level ${level}; fenced reads at most ${FENCE_DEVICES_PER_LEVEL_MAX} per method`);
            }
        });
    }
}

/** What a VM service is checked against. */
interface VmServiceContext {
    guestByName: Map<string, GuestSpec>;
    domainNames: Set<string>;
    vmGuests: Set<string>;
    hostNames: Set<string>;
    hostList: string[];
    xmlDir: string | undefined;
}

/** A VM service's references: its guest, failover domain, the file vm.sh reads, the VM service it depends on. */
function checkVmServiceRefs(s: VmServiceInput, vp: string, ctx: VmServiceContext, report: Report) {
    if (!ctx.guestByName.has(s.guest)) {
        report(`${vp}.guest`, `${show(s.guest)} is not a guest of this lab; use one of ${show([...ctx.guestByName.keys()])}`);
    }
    checkDomainRef(s.failoverDomain, vp, "hostCluster", ctx.domainNames, report);
    if (!s.useVirsh) {
        report(`${vp}.useVirsh`, `is false, which makes vm.sh manage the guest with Xen's xm; this lab's guests are KVM domains, which need virsh: set it to true (or remove it)`);
    }
    if (s.hardRecovery !== undefined) {
        report(
            `${vp}.hardRecovery`,
            `is set (${show(s.hardRecovery)}), but vm.sh's hardrecovery exists only in rgmanager 2.x (RHEL 5); the rendered cluster.conf targets ${TARGET_RELEASE}, whose schema refuses the attribute (ccs_config_validate would reject the file): remove hardRecovery (rgmanager 3 recovers a VM that fails to stop by fencing its host)`,
        );
    }
    const written = ctx.xmlDir === undefined ? undefined : domainXmlPath(ctx.xmlDir, s.guest);
    if (s.xmlFile !== undefined && written !== undefined && s.xmlFile !== written) {
        report(
            `${vp}.xmlFile`,
            `${show(s.xmlFile)} is not a file kvm-ha-lab writes: it writes ${show(s.guest)}'s domain XML to ${show(written)} (xmlDir.path) on every host, where vm.sh finds it through path; remove xmlFile, or set it to ${show(written)}`,
        );
    }
    checkDepend(s, s.guest, vp, ctx.vmGuests, { what: "VM service", other: "another VM service's guest", target: "the guest" }, report);
}

/** A VM service's migration and hypervisor settings. */
function checkVmServiceSettings(s: VmServiceInput, vp: string, ctx: VmServiceContext, report: Report) {
    if (s.migrationMapping !== undefined && Object.keys(s.migrationMapping).length === 0) {
        report(`${vp}.migrationMapping`, `is empty; map each host to the name or address it migrates over (e.g. {${ctx.hostList[0] ?? "kvm1"}: 10.0.0.11}) or leave migrationMapping out`);
    }
    for (const [member, target] of Object.entries(s.migrationMapping ?? {})) {
        if (!ctx.hostNames.has(member)) {
            report(`${vp}.migrationMapping.${member}`, `${show(member)} is not a host of this cluster; keys are cluster host names: use one of ${show(ctx.hostList)}`);
        }
        if (!isHostnameOrIpv4(target)) {
            report(`${vp}.migrationMapping.${member}`, `${show(target)} is not a host name or IPv4 address to migrate to; use e.g. ${member}-migration or 10.0.0.11`);
        }
    }
    if (s.hypervisorUri !== undefined && !/^[a-z][a-z0-9+.-]*:\/\/[^\s]*$/.test(s.hypervisorUri)) {
        report(`${vp}.hypervisorUri`, `${show(s.hypervisorUri)} is not a libvirt URI; use e.g. qemu:///system`);
    }
    if (s.migrationUri !== undefined && (!/^[a-z][a-z0-9+.-]*:\/\/\S*$/.test(s.migrationUri) || s.migrationUri.split("%s").length !== 2)) {
        report(`${vp}.migrationUri`, `${show(s.migrationUri)} is not a migration URI with one %s for the target host; use e.g. qemu+ssh://%s/system`);
    }
    if (s.statusProgram !== undefined && (s.statusProgram.trim() === "" || /[\0\n]/.test(s.statusProgram))) {
        report(`${vp}.statusProgram`, `${show(s.statusProgram)} is not a command; give the program (and arguments) vm.sh runs to check the guest's services`);
    }
    if (s.hypervisor === "xen") {
        report(`${vp}.hypervisor`, `"xen" is not this lab's hypervisor; the guests are KVM domains: use "qemu" or "auto"`);
    }
}

/** The optional vm.sh settings a VM service passes on as given. */
const VM_SERVICE_OPTIONAL_KEYS = ["failoverDomain", "xmlFile", "depend", "dependMode", "hypervisor", "hypervisorUri", "migrationUri", "snapshot", "statusProgram", "tunnelled"] as const;

/** A VM service resolved, checked against cman's attribute limit (its `<vm>` as the renderer writes it). */
function resolveVmService(s: VmServiceInput, vp: string, aaMembers: Set<string>, ctx: VmServiceContext, report: Report): VmServiceSpec {
    const out: VmServiceSpec = { guest: s.guest, ...rgServiceSettings(s), migrate: s.migrate, useVirsh: s.useVirsh };
    for (const key of VM_SERVICE_OPTIONAL_KEYS) {
        if (s[key] !== undefined) (out as unknown as Record<string, unknown>)[key] = s[key];
    }
    if (s.migrationMapping !== undefined) out.migrationMapping = { ...s.migrationMapping };
    const domain = aaMembers.has(s.guest) ? antiAffinityDomainName("group", s.guest) : s.failoverDomain;
    const attrs = Object.keys(vmServiceAttributes(out, domain, `${ctx.xmlDir ?? "/"}/`, ctx.hostList));
    if (attrs.length > MAX_ELEMENT_ATTRIBUTES) {
        report(
            vp,
            `would render a <vm> with ${attrs.length} attributes (${attrs.join(", ")}); cman's validator (xmllint) takes time exponential in that number, so at most ${MAX_ELEMENT_ATTRIBUTES} are allowed: leave out settings that keep vm.sh's default or are not needed`,
        );
    }
    return out;
}

export function resolveHostCluster(
    hc: HostClusterInput,
    hosts: HostSpec[],
    guestByName: Map<string, GuestSpec>,
    env: ValidationEnv,
    report: Report,
    /** The shared XML directory (xmlDir.path), where the program writes `<guest>.xml`. */
    xmlDir?: string,
): HostClusterSpec {
    const p = "hostCluster";
    checkClusterName(hc.name, `${p}.name`, report);
    const hostNames = new Set(hosts.map((h) => h.name));
    const hostList = hosts.map((h) => h.name);
    if (hosts.length < 2) {
        report(p, `is set but the lab has ${hosts.length} host; a host cluster needs at least 2 hosts: add hosts or remove hostCluster`);
    }
    if (hosts.length > CMAN_MAX_NODES) {
        report(p, `is set but the lab has ${hosts.length} hosts, and every host is a node of the host cluster; cman supports at most ${CMAN_MAX_NODES} nodes: split the hosts into labs of at most ${CMAN_MAX_NODES}, or remove hostCluster`);
    }
    checkUnique(hc.fenceDevices, (d) => d.name, (i) => `${p}.fenceDevices[${i}].name`, "fence device name", report);
    hc.fenceDevices.forEach((d, i) => checkHostFenceDevice(d, `${p}.fenceDevices[${i}]`, hostNames, env, report));
    checkHostFenceLevels(hc.fenceDevices, hosts, report);
    const fenceDelay = resolveFenceDelay(hc.fenceDelay, hostList, hostNames, `${p}.fenceDelay`, "host", report);

    checkFailoverDomains(hc.failoverDomains, "host", `${p}.failoverDomains`, hostList, report);
    checkUnique(hc.vmServices, (s) => s.guest, (i) => `${p}.vmServices[${i}].guest`, "VM service guest", report);
    const ctx: VmServiceContext = {
        guestByName,
        domainNames: new Set(hc.failoverDomains.map((d) => d.name)),
        vmGuests: new Set(hc.vmServices.map((s) => s.guest)),
        hostNames,
        hostList,
        xmlDir,
    };
    hc.vmServices.forEach((s, i) => {
        checkVmServiceRefs(s, `${p}.vmServices[${i}]`, ctx, report);
        checkVmServiceSettings(s, `${p}.vmServices[${i}]`, ctx, report);
    });

    const members = new Map(hc.vmServices.map((s, i) => [s.guest, { path: `${p}.vmServices[${i}]`, failoverDomain: s.failoverDomain }]));
    const antiAffinity: AntiAffinitySpec[] = hc.antiAffinity.map((g) => ({ name: g.name, services: [...g.services], failback: g.failback }));
    checkAntiAffinity(antiAffinity, `${p}.antiAffinity`, members, "VM service", hosts.length, "host", report);
    const aaMembers = new Set(hc.antiAffinity.flatMap((g) => g.services));
    const vmServices = hc.vmServices.map((s, i) => resolveVmService(s, `${p}.vmServices[${i}]`, aaMembers, ctx, report));

    return {
        name: hc.name,
        stack: hc.stack,
        fenceDevices: hc.fenceDevices.map((d) => ({ ...d, params: { ...d.params } })),
        ...(fenceDelay !== undefined ? { fenceDelay } : {}),
        fenceDaemon: resolveFenceDaemon(hc.fenceDaemon),
        totem: resolveTotem(hc.totem),
        failoverDomains: hc.failoverDomains.map((d) => ({ ...d, members: d.members.map((m) => ({ ...m })) })),
        vmServices,
        antiAffinity,
    };
}
