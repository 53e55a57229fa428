/**
 * fast-check generators of VALID raw stack configs: the shape `validateLabConfig` (components/config.ts) accepts,
 * written from the documented rules (README, the schema's comments, the error messages), not from the validator's
 * own regular expressions, so that a disagreement between the two shows up as a failing property.
 *
 * `validStack()` yields `{ stack, raw, secretKeys, files }`:
 * - 1-3 hosts (at most one `local: true`, the others over SSH), every bridge with one shared name and addresses in
 *   one /24;
 * - 2-5 guests with optional memory, vcpus, domain type, UUID, disks and NICs (explicit MACs, upper or lower case),
 *   SSH, or a domain XML file of their own (its text is in `files`, read through `env.readFile`);
 * - a guest cluster of 2 or more of the guests: fencing options over any listener (multicast twice as often as tcp or
 *   vsock; vsock puts the nodes on one host, tcp gives every bridge an address), an optional second fence level, fence delay,
 *   fenced/totem timing, failover domains, services with ips and scripts, anti-affinity groups;
 * - with 2 or more hosts, optionally a host cluster: fence devices for every host (one or two levels), failover
 *   domains, VM services, an anti-affinity group;
 * - `secretKeys`: exactly the secret config keys the config names (SSH keys, fence device passwords); validation
 *   refuses both a missing one and one nothing uses.
 *
 * Names are random within their rules, from small alphabets now and then so that collisions (which the rules must
 * catch or the renderers must survive) are likely. Free texts and paths mostly use plain characters and sometimes
 * characters that need quoting or escaping (quotes, '&', '<', '$', blanks, non-ASCII).
 *
 * `KnownGaps`: inputs the validator accepts that the renderers cannot take (bugs found by the properties, reported);
 * left out unless asked for (`validStack({ gaps })`, FC_GAPS in the test).
 *
 * `mutation` picks one rule to break in a valid config (see `applyMutation`); the test expects a ConfigError whose
 * problem names the mutated field and its value.
 */
import fc from "fast-check";
import { create } from "xmlbuilder2";
import { CONFIG_KEYS, type RawLabConfig } from "../../components/config";
import { rgServiceSettings } from "../../components/config-cluster";
import { DEFAULTS } from "../../components/defaults";
import type { FenceListener } from "../../components/spec";

// ---------------------------------------------------------------- characters and words

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = LOWER.toUpperCase();
const DIGITS = "0123456789";
/**
 * Optional parameters of the power-switch agents the host cluster takes (fence_apc_snmp, fence_wti), with valid values
 * as their metadata and the README describe them (ipaddr and port, the host's outlet, are always given).
 */
const PDU_OPTIONAL: Record<"fence_apc_snmp" | "fence_wti", Record<string, fc.Arbitrary<string>>> = {
    fence_apc_snmp: {
        login: fc.constantFrom("apc", "fence"),
        community: fc.constantFrom("private", "lab"),
        snmp_version: fc.constantFrom("1", "2c", "3"),
        snmp_auth_prot: fc.constantFrom("MD5", "SHA"),
        snmp_sec_level: fc.constantFrom("noAuthNoPriv", "authNoPriv", "authPriv"),
        ipport: fc.constantFrom("161", "1161"),
        power_wait: fc.constantFrom("0", "5"),
        login_timeout: fc.constantFrom("5", "10"),
    },
    fence_wti: {
        login: fc.constantFrom("wti", "fence"),
        secure: fc.constantFrom("0", "1"),
        cmd_prompt: fc.constantFrom("RSM>", "IPS>"),
        ipport: fc.constantFrom("23", "2323"),
        power_timeout: fc.constantFrom("20", "30"),
        shell_timeout: fc.constantFrom("3", "5"),
    },
};

/** vm.sh's defaults (README: a <vm> carries at most 11 attributes, those at their default not counted). */
const VM_DEFAULTS: Record<string, unknown> = { autostart: true, exclusive: false, recovery: "restart", maxRestarts: 0, restartExpireTime: 0, migrate: "live", dependMode: "hard", hypervisor: "auto", tunnelled: false };
/** At most this many attributes on one cluster.conf element (README). */
const MAX_ELEMENT_ATTRIBUTES = 11;

const charOf = (chars: string) => fc.constantFrom(...chars.split(""));

/**
 * A word of `first` + `middle`* + `last` characters, 1 to `max` long. A one-character word takes a character allowed
 * both first and last.
 */
function word(first: string, middle: string, last: string, max: number): fc.Arbitrary<string> {
    const single = first.split("").filter((c) => last.includes(c)).join("");
    const long = fc
        .tuple(charOf(first), fc.string({ unit: charOf(middle), maxLength: Math.max(0, max - 2) }), charOf(last))
        .map(([a, b, c]) => a + b + c);
    return max === 1 || single === "" ? (max === 1 ? charOf(single) : long) : fc.oneof(charOf(single), long);
}

/** Either the full alphabet or a tiny one (collisions on purpose). */
function wordOf(first: string, middle: string, last: string, max: number, tiny: [string, string, string]): fc.Arbitrary<string> {
    return fc.oneof({ weight: 3, arbitrary: word(first, middle, last, max) }, { weight: 1, arbitrary: word(tiny[0], tiny[1], tiny[2], Math.min(max, 6)) });
}

const AZ09 = LOWER + DIGITS;
const ALNUM = LOWER + UPPER + DIGITS;

/** Host names: 1-63 of a-z, 0-9, '-', not starting or ending with '-'. */
export const hostName = wordOf(AZ09, AZ09 + "-", AZ09, 63, ["ab", "ab-", "ab"]);
/** Guest (libvirt domain, cluster node) names: letters, digits, '_', '.', '-', alphanumeric at both ends, 1-63. */
export const guestName = wordOf(ALNUM, ALNUM + "_.-", ALNUM, 63, ["aB1", "aB1._-", "aB1"]);
/** cman cluster names: 1-15 of letters, digits, '_', '-', starting with a letter or digit. */
export const clusterName = word(ALNUM, ALNUM + "_-", ALNUM + "_-", 15);
/** Labels (failover domains, services, scripts): letters, digits, '_', '.', '-', starting alphanumeric. */
export function label(max: number): fc.Arbitrary<string> {
    return wordOf(ALNUM, ALNUM + "_.-", ALNUM + "_.-", max, ["ab", "ab-", "ab-"]);
}
/** Anti-affinity group names: 1-32 of a-z, 0-9, '-', alphanumeric at both ends. */
export const groupName = wordOf(AZ09, AZ09 + "-", AZ09, 32, ["ab", "ab-", "ab"]);
/** XML names (fence devices): a letter or '_' first, then letters, digits, '_', '.', '-'. */
export const xmlName = word(LOWER + UPPER + "_", ALNUM + "_.-", ALNUM + "_.-", 40);
/** Lab names: 1-15 of a-z, 0-9, '-', starting with a letter. */
export const labName = word(LOWER, AZ09 + "-", AZ09 + "-", 15);
/** Linux interface names as the config takes them: 1-15 of letters, digits, '_', '.', '-', not starting with '.' (so never "." or "..", which the kernel refuses). */
export const ifName = fc.string({ unit: charOf(ALNUM + "_.-"), minLength: 1, maxLength: 15 }).filter((n) => !n.startsWith("."));
/** Secret config key names: a letter, then letters, digits, '_', '-'; never one of the program's config keys. */
export const secretName = word(LOWER + UPPER, ALNUM + "_-", ALNUM + "_-", 24).map((n) => (CONFIG_KEYS.includes(n) ? `${n}Key` : n));

/**
 * Characters (and a few sequences) that need quoting or escaping somewhere: shells, XML (including text that reads
 * like an entity reference, and TAB/CR, which an XML parser turns into spaces in attribute values), fence_virt.conf,
 * iptables-restore. No character references (`&#10;`): xmlbuilder2's parser decodes `&amp;#10;` twice, so the
 * read-back checks could not judge them.
 */
export const AWKWARD_CHARS = [" ", "'", '"', "&", "<", ">", "$", "`", "\\", ";", "#", "%", "*", "\t", "\r", "é", "ß", "\u00a0", "\u{1F600}", "&amp;", "&lt;", "&x;"];

/** Free text (one line, not blank): mostly plain, sometimes awkward. */
export function text(max: number, awkward = AWKWARD_CHARS): fc.Arbitrary<string> {
    const unit = fc.oneof({ weight: 12, arbitrary: charOf(ALNUM + "_.-/:=,+@") }, { weight: 1, arbitrary: fc.constantFrom(...awkward) });
    return fc.tuple(charOf(ALNUM), fc.string({ unit, maxLength: max - 1 })).map(([a, b]) => a + b);
}

/** An absolute path: "/" + segments of plain (and now and then awkward) characters. */
export function absPath(awkward = AWKWARD_CHARS): fc.Arbitrary<string> {
    const unit = fc.oneof({ weight: 12, arbitrary: charOf(ALNUM + "_.-") }, { weight: 1, arbitrary: fc.constantFrom(...awkward) });
    const segment = fc.string({ unit, minLength: 1, maxLength: 12 });
    return fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join("/")}`);
}

// ---------------------------------------------------------------- addresses

const octet = fc.integer({ min: 0, max: 255 });
export const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));
export const dnsName = fc
    .array(word(ALNUM, ALNUM + "-", ALNUM, 20), { minLength: 1, maxLength: 3 })
    .map((labels) => labels.join("."))
    // an all-digit dotted name such as "1.2" reads as a broken IPv4 address: not a host name anyone writes
    .filter((n) => !/^[0-9.]+$/.test(n));
/** A machine's address to connect to: not 0.0.0.0, broadcast or multicast (validation refuses those). */
export const sshAddress = fc.oneof(
    ipv4.filter((a) => a !== "0.0.0.0" && a !== "255.255.255.255" && !(Number(a.split(".")[0]) >= 224 && Number(a.split(".")[0]) <= 239)),
    dnsName,
);
export const multicastAddress = fc.tuple(fc.integer({ min: 224, max: 239 }), octet, octet, octet).map((o) => o.join("."));
export const port = fc.integer({ min: 1, max: 65535 });
const hexByte = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, "0"));
const hashAlg = fc.constantFrom("none", "sha1", "sha256", "sha512");

// ---------------------------------------------------------------- the generated stack

export interface GeneratedStack {
    /** The Pulumi stack name (the lab name when labName is not set). */
    stack: string;
    raw: RawLabConfig;
    /** Exactly the secret keys the config names. */
    secretKeys: Set<string>;
    /** Files the config names (guests' own domain XML), for `env.readFile`. */
    files: Record<string, string>;
}

/** Appends a counter to names that repeat (case-sensitively) and to names in `taken`, keeping them valid. */
function distinct(names: string[], taken: Iterable<string> = [], max = 63): string[] {
    const seen = new Set(taken);
    return names.map((n) => {
        let out = n;
        for (let i = 2; seen.has(out); i++) out = `${n.slice(0, max - String(i).length - 1)}0${i}`.slice(-max);
        seen.add(out);
        return out;
    });
}

/** `arb` one time in `n`, undefined otherwise. */
function rarely<T>(arb: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | undefined> {
    return fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
}

/** Picks `list[i % length]`. */
const pick = <T>(list: readonly T[], i: number): T => list[i % list.length];

/** A generated failover domain: member picks (index into the candidates, optional priority). */
interface GeneratedDomain {
    ordered?: boolean;
    restricted?: boolean;
    nofailback?: boolean;
    members: [number, number | undefined][];
}

/**
 * Raw failover domains from generated ones: members picked from `candidates` (guest cluster nodes or host cluster
 * hosts), each written under `key` ("node" or "host"), duplicates dropped.
 */
function rawFailoverDomains<K extends "node" | "host">(domains: GeneratedDomain[], names: string[], candidates: string[], key: K) {
    return domains.map((d, i) => {
        const members = [...new Set(d.members.map(([m]) => pick(candidates, m)))];
        return compact({
            name: names[i],
            ordered: d.ordered,
            restricted: d.restricted,
            nofailback: d.nofailback,
            members: members.map((m, mi) => ({ [key]: m, ...compact({ priority: d.members[mi][1] }) }) as { [P in K]: string } & { priority?: number }),
        });
    });
}

/** Drops undefined fields, so that the raw config looks like parsed YAML (no key with an undefined value). */
function compact<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
    return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/**
 * How a user's own domain XML may be written. The first three are what `virsh dumpxml` and editors produce; the
 * others (known gap ownXmlNameByRegex) are legal XML that validation reads with a regular expression instead of a
 * parser: "padded" and "decoy" name a different domain than the guest (libvirt keeps blanks in a name), "charref" and
 * "cdata" name the guest but are refused.
 */
export interface OwnXmlStyle {
    decl: boolean;
    comment: boolean;
    quote: boolean;
    name: "plain" | "padded" | "decoy" | "charref" | "cdata";
}

/** A libvirt domain XML file of the user's own, whose domain is `name` (except the "padded"/"decoy" styles). */
export function domainXmlFile(name: string, style: OwnXmlStyle, uuid?: string): string {
    const doc = style.decl ? create({ version: "1.0" }) : create();
    if (style.comment) doc.com(" exported with virsh dumpxml ");
    const d = doc.ele("domain", { type: "qemu" });
    if (style.name === "decoy") d.com(` <name>${name}</name> `);
    // "padded": libvirt defines " name " (blanks kept), not the guest's name
    const nameText = style.name === "padded" ? ` ${name} ` : style.name === "decoy" ? `${name}-other` : style.name === "charref" || style.name === "cdata" ? "@NAME@" : name;
    d.ele("name").txt(nameText);
    // a lab of several hosts defines the domain on each: it must carry its own UUID (README, guests[].xml)
    if (uuid !== undefined) d.ele("uuid").txt(uuid);
    d.ele("memory", { unit: "KiB" }).txt("524288");
    d.ele("vcpu").txt("1");
    d.ele("os").ele("type", { arch: "x86_64" }).txt("hvm");
    let xml = d.end({ prettyPrint: true, headless: !style.decl });
    // the same name, written as a character reference for its first character, or as a CDATA section
    if (style.name === "charref") xml = xml.replace("@NAME@", `&#${name.codePointAt(0)};${name.slice(1)}`);
    if (style.name === "cdata") xml = xml.replace("@NAME@", `<![CDATA[${name}]]>`);
    return style.quote ? xml.replace(/"/g, "'") : xml;
}

interface Sizes {
    hosts: number;
    guests: number;
}

const sizes: fc.Arbitrary<Sizes> = fc.record({ hosts: fc.integer({ min: 1, max: 3 }), guests: fc.integer({ min: 2, max: 5 }) });

/**
 * Valid raw stack configs with the secret keys they need. `awkward: false` keeps paths and free texts to plain
 * characters.
 */
export function validStack(opts: { awkward?: boolean; gaps?: Partial<KnownGaps> } = {}): fc.Arbitrary<GeneratedStack> {
    const gaps: KnownGaps = { ...NO_GAPS, ...opts.gaps };
    const awk = opts.awkward === false ? ["_"] : AWKWARD_CHARS;
    // Known gap xmlEscaping: text xmlbuilder2 would write unescaped ("&name;", TAB, CR) is changed here unless asked for.
    const xmlSafe = (v: string) => (gaps.xmlEscaping ? v : v.replace(/&(?=[A-Za-z][A-Za-z0-9._-]*;|#[0-9]+;|#x[0-9A-Fa-f]+;)/g, "&_").replace(/[\t\r]/g, " "));
    const path = absPath(awk).map(xmlSafe);
    const freeText = (max: number) => text(max, awk).map(xmlSafe);
    return sizes.chain((n) => stackOf(n, path, freeText, gaps));
}

/**
 * Inputs the validator accepts but the renderers (or the cluster.conf schema) cannot take: known bugs, reported,
 * which the generator leaves out unless asked (test/unit/render-property.test.ts pins each with its minimal
 * counterexample). Remove an entry once validation refuses the input or the renderer takes it.
 */
export interface KnownGaps {
    /** hostCluster.vmServices[].migrationMapping: {} renders migration_mapping="", which the schema refuses. */
    emptyMigrationMapping: boolean;
    /**
     * Text with "&name;" (or "&#N;"), TAB or CR in any value rendered into XML: xmlbuilder2 writes "&name;" as-is (an
     * entity reference: undefined, or decoded into another character) and TAB/CR raw (read back as spaces), so the
     * value that cman or libvirt reads differs from the config.
     */
    xmlEscaping: boolean;
    /** A guest's own domain XML: validation finds the domain name with a regular expression (see OwnXmlStyle). */
    ownXmlNameByRegex: boolean;
    /**
     * Two anti-affinity groups whose failover domains "aa-<group>-<member>" have the same name (group "a" with member
     * "b-c", group "a-b" with member "c"): validation accepts them and cluster.conf gets two domains of one name.
     */
    antiAffinityDomainClash: boolean;
}

export const NO_GAPS: KnownGaps = {
    emptyMigrationMapping: false,
    xmlEscaping: false,
    ownXmlNameByRegex: false,
    antiAffinityDomainClash: false,
};

/** Every known gap turned on (FC_GAPS=all), or those named (FC_GAPS=xmlEscaping,emptyMigrationMapping). */
export function gapsFrom(spec: string | undefined): Partial<KnownGaps> {
    if (spec === undefined || spec === "") return {};
    const names = spec === "all" ? Object.keys(NO_GAPS) : spec.split(",").map((x) => x.trim());
    for (const n of names) if (!(n in NO_GAPS)) throw new Error(`FC_GAPS: unknown gap ${JSON.stringify(n)}; known: ${Object.keys(NO_GAPS).join(", ")}`);
    return Object.fromEntries(names.map((n) => [n, true]));
}

function stackOf(n: Sizes, path: fc.Arbitrary<string>, freeText: (max: number) => fc.Arbitrary<string>, gaps: KnownGaps): fc.Arbitrary<GeneratedStack> {
    const host = fc.record({
        name: hostName,
        ssh: fc.record(
            { address: sshAddress, user: word(LOWER + "_", AZ09 + "_-", AZ09 + "_-", 16), port, secret: fc.nat() },
            { requiredKeys: ["address"] },
        ),
        uplink: fc.option(ifName, { nil: undefined }),
        hasAddress: fc.boolean(),
        installPackages: fc.option(fc.boolean(), { nil: undefined }),
    });
    const nic = fc.record(
        { bridge: fc.constant(true), mac: fc.tuple(fc.integer({ min: 0, max: 127 }), hexByte, hexByte, hexByte, fc.boolean()), model: fc.constantFrom("virtio", "e1000", "rtl8139") },
        { requiredKeys: [] },
    );
    const disk = fc.record(
        { path, sizeGiB: fc.integer({ min: 1, max: 500 }), keepOnDestroy: fc.boolean(), format: fc.constantFrom("qcow2", "raw"), bus: fc.constantFrom("virtio", "sata", "scsi", "ide") },
        { requiredKeys: ["path"] },
    ).map(({ keepOnDestroy, ...d }) => (d.sizeGiB !== undefined && keepOnDestroy !== undefined ? { ...d, keepOnDestroy } : d)); // keepOnDestroy needs sizeGiB
    const guest = fc.record({
        name: guestName,
        host: fc.nat(),
        memoryMiB: fc.option(fc.integer({ min: 16, max: 65536 }), { nil: undefined }),
        vcpus: fc.option(fc.integer({ min: 1, max: 256 }), { nil: undefined }),
        domainType: fc.option(fc.constantFrom("kvm", "qemu"), { nil: undefined }),
        uuid: fc.boolean(),
        disks: fc.option(fc.uniqueArray(disk, { maxLength: 3, selector: (d) => d.path }), { nil: undefined }),
        nics: fc.option(fc.array(nic, { maxLength: 3 }), { nil: undefined }),
        ssh: fc.option(fc.record({ address: sshAddress, secret: fc.nat() }, { requiredKeys: ["address"] }), { nil: undefined }),
        /** 1 in 8 guests brings its own domain XML */
        xmlFile: rarely(
            fc.tuple(
                path,
                fc.record({
                    decl: fc.boolean(),
                    comment: fc.boolean(),
                    quote: fc.boolean(),
                    name: gaps.ownXmlNameByRegex ? fc.constantFrom<OwnXmlStyle["name"]>("plain", "padded", "decoy", "charref", "cdata") : fc.constant<OwnXmlStyle["name"]>("plain"),
                }),
            ),
            8,
        ),
    });
    const service = fc.record({
        name: label(22),
        failoverDomain: fc.option(fc.nat(), { nil: undefined }),
        autostart: fc.option(fc.boolean(), { nil: undefined }),
        exclusive: fc.option(fc.boolean(), { nil: undefined }),
        recovery: fc.option(fc.constantFrom("restart", "relocate", "disable"), { nil: undefined }),
        maxRestarts: fc.option(fc.nat(10), { nil: undefined }),
        restartExpireTime: fc.option(fc.nat(3600), { nil: undefined }),
        depend: fc.option(fc.tuple(fc.nat(), fc.option(fc.constantFrom("hard", "soft"), { nil: undefined })), { nil: undefined }),
        ips: fc.array(
            fc.record({
                /** a free address of the cluster network (net.0/24): its last octet, and whether /24 is written */
                address: fc.tuple(fc.integer({ min: 1, max: 254 }), fc.option(fc.constant(24), { nil: undefined })),
                monitorLink: fc.option(fc.boolean(), { nil: undefined }),
                subtree: fc.option(fc.tuple(fc.constantFrom("restart", "non-critical"), fc.nat(5), fc.nat(600)), { nil: undefined }),
            }),
            { maxLength: 2 },
        ),
        scripts: fc.array(
            fc.record({
                name: label(30),
                file: path,
                subtree: fc.option(fc.tuple(fc.constantFrom("restart", "non-critical"), fc.nat(5), fc.nat(600)), { nil: undefined }),
                enforceTimeouts: fc.option(fc.boolean(), { nil: undefined }),
            }),
            { maxLength: 2 },
        ),
    });
    const failoverDomain = fc.record({
        name: label(40),
        ordered: fc.option(fc.boolean(), { nil: undefined }),
        restricted: fc.option(fc.boolean(), { nil: undefined }),
        nofailback: fc.option(fc.boolean(), { nil: undefined }),
        members: fc.array(fc.tuple(fc.nat(), fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined })), { minLength: 1, maxLength: 5 }),
    });
    const delay = fc.option(
        fc.record({ node: fc.option(fc.nat(), { nil: undefined }), seconds: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }) }),
        { nil: undefined },
    );
    const daemon = fc.option(
        fc.record(
            { postJoinDelay: fc.integer({ min: -1, max: 3600 }), postFailDelay: fc.integer({ min: 0, max: 3600 }), cleanStart: fc.boolean() },
            { requiredKeys: [] },
        ),
        { nil: undefined },
    );
    const totem = fc.option(fc.record({ token: fc.integer({ min: 1000, max: 300000 }) }, { requiredKeys: [] }), { nil: undefined });
    const hostFenceDevice = fc.record({
        name: xmlName,
        kind: fc.constantFrom("ipmi", "ipmi", "ipmi", "other"),
        ipaddr: sshAddress,
        login: freeText(16),
        lanplus: fc.option(fc.constantFrom("0", "1"), { nil: undefined }),
        privlvl: fc.option(fc.constantFrom("callback", "user", "operator", "administrator"), { nil: undefined }),
        // an agent kvm-ha-lab does not model (fence_apc_snmp): parameters from its metadata, values taken as given
        pdu: fc.record({
            agent: fc.constantFrom("fence_apc_snmp" as const, "fence_wti" as const),
            port: fc.oneof(fc.integer({ min: 1, max: 24 }).map(String), fc.constantFrom("A1", "B2")),
            optional: fc.record({ fence_apc_snmp: fc.record(PDU_OPTIONAL.fence_apc_snmp, { requiredKeys: [] }), fence_wti: fc.record(PDU_OPTIONAL.fence_wti, { requiredKeys: [] }) }),
        }),
        secondLevel: fc.boolean(),
        password: fc.option(fc.nat(), { nil: undefined }),
    });
    const vmService = fc.record({
        failoverDomain: fc.option(fc.nat(), { nil: undefined }),
        autostart: fc.option(fc.boolean(), { nil: undefined }),
        exclusive: fc.option(fc.boolean(), { nil: undefined }),
        recovery: fc.option(fc.constantFrom("restart", "relocate", "disable"), { nil: undefined }),
        maxRestarts: fc.option(fc.nat(10), { nil: undefined }),
        restartExpireTime: fc.option(fc.nat(3600), { nil: undefined }),
        migrate: fc.option(fc.constantFrom("live", "pause"), { nil: undefined }),
        /** vm.sh's xmlfile: only the file the program writes (<xmlDir>/<guest>.xml) is accepted */
        xmlFile: rarely(fc.constant(true), 4),
        depend: rarely(fc.tuple(fc.nat(), fc.option(fc.constantFrom("hard", "soft"), { nil: undefined })), 4),
        migrationMapping: rarely(fc.array(fc.tuple(fc.nat(), sshAddress), { maxLength: 3 }), 4),
        hypervisor: rarely(fc.constantFrom("auto", "qemu"), 4),
        migrationUri: rarely(fc.constantFrom("qemu+ssh://%s/system", "qemu+tcp://%s/system", "tcp://%s"), 4),
        statusProgram: rarely(freeText(30), 4),
        tunnelled: rarely(fc.boolean(), 4),
    });

    return fc
        .record({
            stack: labName,
            labName: fc.option(labName, { nil: undefined }),
            secretPool: fc.uniqueArray(secretName, { minLength: 1, maxLength: 3 }),
            bridge: ifName,
            net: fc.tuple(fc.integer({ min: 1, max: 223 }), octet, octet),
            hosts: fc.array(host, { minLength: n.hosts, maxLength: n.hosts }),
            localHost: fc.option(fc.nat(n.hosts - 1), { nil: undefined }),
            guests: fc.array(guest, { minLength: n.guests, maxLength: n.guests }),
            uuids: fc.uniqueArray(fc.uuid(), { minLength: n.guests, maxLength: n.guests }),
            octets: fc.uniqueArray(fc.integer({ min: 1, max: 254 }), { minLength: n.hosts, maxLength: n.hosts }),
            xmlDir: fc.option(fc.record({ path, shared: fc.boolean() }, { requiredKeys: [] }), { nil: undefined }),
            cluster: fc.record({
                name: clusterName,
                nodes: fc.shuffledSubarray([...Array(n.guests).keys()], { minLength: 2 }),
                multicast: fc.option(fc.record({ address: multicastAddress, port }, { requiredKeys: [] }), { nil: undefined }),
                listener: fc.constantFrom<FenceListener>("multicast", "multicast", "tcp", "vsock"),
                listenerPort: fc.option(port, { nil: undefined }),
                hash: fc.option(hashAlg, { nil: undefined }),
                auth: fc.option(hashAlg, { nil: undefined }),
                keyFile: fc.option(path, { nil: undefined }),
                keyVersion: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
                subnet: fc.constantFrom("omit", "network", "host-address"),
                secondLevel: fc.option(
                    fc.record({ name: xmlName, agent: fc.constantFrom("fence_xvm", "fence_virt"), port: fc.option(fc.tuple(fc.nat(), guestName), { nil: undefined }) }),
                    { nil: undefined },
                ),
                delay,
                daemon,
                totem,
                failoverDomains: fc.array(failoverDomain, { maxLength: 3 }),
                services: fc.array(service, { maxLength: 4 }),
                antiAffinity: fc.array(fc.record({ name: groupName, size: fc.integer({ min: 2, max: 5 }), failback: fc.option(fc.boolean(), { nil: undefined }) }), {
                    maxLength: 2,
                }),
            }),
            hostCluster: fc.option(
                fc.record({
                    name: clusterName,
                    devices: fc.array(hostFenceDevice, { minLength: n.hosts, maxLength: n.hosts }),
                    delay,
                    daemon,
                    totem,
                    failoverDomains: fc.array(failoverDomain, { maxLength: 2 }),
                    vmGuests: fc.subarray([...Array(n.guests).keys()]),
                    vmServices: fc.array(vmService, { minLength: n.guests, maxLength: n.guests }),
                    antiAffinity: fc.option(fc.record({ name: groupName, size: fc.integer({ min: 2, max: 3 }), failback: fc.option(fc.boolean(), { nil: undefined }) }), {
                        nil: undefined,
                    }),
                }),
                { nil: undefined },
            ),
        })
        .map((g): GeneratedStack => {
            const secretsUsed = new Set<string>();
            const secretRef = (i: number | undefined): string | undefined => {
                const name = i === undefined ? undefined : pick(g.secretPool, i);
                secretsUsed.add(name ?? "sshPrivateKey");
                return name;
            };
            const files: Record<string, string> = {};

            // ---- the fence listener: vsock needs every node on one host, and a node with its own XML would need a
            // <vsock> device in it (validation says so), so such clusters use tcp; tcp needs every bridge address
            const c = g.cluster;
            const nodeIdx = new Set(c.nodes);
            const listener: FenceListener = c.listener === "vsock" && c.nodes.some((i) => g.guests[i].xmlFile !== undefined) ? "tcp" : c.listener;

            // ---- hosts: one bridge name, addresses in one /24
            const hostNames = distinct(g.hosts.map((h) => h.name));
            const octets = g.octets;
            const net = g.net.join(".");
            const hosts = g.hosts.map((h, i) => {
                const local = g.localHost === i;
                return compact({
                    name: hostNames[i],
                    ...(local
                        ? { local: true }
                        : {
                              ssh: compact({
                                  address: h.ssh.address,
                                  user: h.ssh.user,
                                  port: h.ssh.port,
                                  privateKeySecret: secretRef(h.ssh.secret),
                              }),
                          }),
                    bridge: compact({
                        name: g.bridge,
                        uplink: h.uplink === g.bridge ? undefined : h.uplink,
                        address: h.hasAddress || listener === "tcp" ? `${net}.${octets[i]}/24` : undefined,
                    }),
                    installPackages: h.installPackages,
                });
            });

            // ---- guests
            const guestNames = distinct(g.guests.map((x) => x.name), hostNames);
            const vsockHost = pick(hostNames, g.guests[c.nodes[0]].host);
            const guests = g.guests.map((x, i) => {
                const base = {
                    name: guestNames[i],
                    host: listener === "vsock" && nodeIdx.has(i) ? vsockHost : pick(hostNames, x.host),
                    ssh: x.ssh && compact({ address: x.ssh.address, privateKeySecret: secretRef(x.ssh.secret === undefined || x.ssh.secret % 2 === 0 ? undefined : x.ssh.secret) }),
                };
                if (x.xmlFile !== undefined) {
                    const [file, style] = x.xmlFile;
                    const filePath = `${file}/${guestNames[i]}.xml`;
                    files[filePath] = domainXmlFile(guestNames[i], style, g.uuids[i]);
                    return compact({ ...base, xml: filePath });
                }
                return compact({
                    ...base,
                    memoryMiB: x.memoryMiB,
                    vcpus: x.vcpus,
                    domainType: x.domainType,
                    uuid: x.uuid ? g.uuids[i] : undefined,
                    disks: x.disks,
                    nics: x.nics?.map((nc, ni) =>
                        compact({
                            bridge: nc.bridge === undefined ? undefined : g.bridge,
                            // unique by construction: guest and NIC index in the last two bytes; never QEMU's 52:54:00
                            mac:
                                nc.mac === undefined
                                    ? undefined
                                    : (([b0, b1, b2, b3, upper]) => {
                                          const mac = [((b0 * 2) % 256 === 0x52 ? 0x02 : (b0 * 2) % 256).toString(16).padStart(2, "0"), b1, b2, b3, i.toString(16).padStart(2, "0"), ni.toString(16).padStart(2, "0")].join(":");
                                          return upper ? mac.toUpperCase() : mac;
                                      })(nc.mac),
                            model: nc.model,
                        }),
                    ),
                });
            });

            // ---- guest cluster
            const nodes = c.nodes.map((i) => guestNames[i]);
            const nodeHosts = new Set(nodes.map((nd) => guests.find((x) => x.name === nd)!.host));
            const derivable = hosts.some((h) => nodeHosts.has(h.name) && h.bridge.address !== undefined);
            const subnet =
                c.subnet === "network" || (c.subnet === "omit" && !derivable)
                    ? `${net}.0/24`
                    : c.subnet === "host-address"
                      ? `${net}.${octets[0]}/24`
                      : undefined;
            // Keep the key off the shared XML directory: a distinct top-level directory for each.
            const xmlDir = g.xmlDir && compact({ path: g.xmlDir.path === undefined ? undefined : `/xml${g.xmlDir.path}`, shared: g.xmlDir.shared });
            // (validation refuses '"', CR and LF in a key path: fence_virt.conf cannot hold them)
            const keyFile = c.keyFile === undefined ? undefined : `/key${c.keyFile.replace(/["\r\n]/g, "_")}`;
            const fencing = compact({
                listener: listener === "multicast" ? undefined : listener,
                multicast: c.multicast,
                ...(listener !== "multicast" && c.listenerPort !== undefined ? { [listener]: { port: c.listenerPort } } : {}),
                hash: c.hash,
                // the tcp and vsock listeners authenticate with sha256 only (validation refuses another auth there)
                auth: listener === "multicast" || c.auth === undefined ? c.auth : "sha256",
                keyFile,
                keyVersion: c.keyVersion,
                subnet,
            });

            const builtIn = new Set(nodes.map((nd) => (listener === "multicast" ? `xvm-${nd}` : `virt-${nd}`)));
            const extra = c.secondLevel && { ...c.secondLevel, name: distinct([c.secondLevel.name], builtIn, 40)[0] };
            // an extra device reaches the lab's own fence_virtd (README: the listener's agent, address and key; other
            // timing): fence_xvm for multicast, fence_virt to a host's bridge address (tcp) or over vsock
            const fenceDevices = extra
                ? [
                      {
                          name: extra.name,
                          agent: listener === "multicast" ? "fence_xvm" : "fence_virt",
                          params: (listener === "multicast"
                              ? extra.agent === "fence_xvm"
                                  ? { timeout: "60", retrans: "10" }
                                  : { ip_family: "ipv4" }
                              : listener === "tcp"
                                ? { ipaddr: `${net}.${octets[0]}`, timeout: "20" }
                                : { timeout: "20" }) as Record<string, string>,
                      },
                  ]
                : undefined;
            const fenceLevels = extra
                ? [{ devices: [compact({ device: extra.name, ports: extra.port ? { [pick(nodes, extra.port[0])]: extra.port[1] } : undefined })] }]
                : undefined;

            const domainNames = distinct(c.failoverDomains.map((d) => (d.name.startsWith("aa-") ? `x${d.name}` : d.name)), [], 64);
            const failoverDomains = rawFailoverDomains(c.failoverDomains, domainNames, nodes, "node");

            const serviceNames = distinct(c.services.map((s) => s.name), [], 22);
            // anti-affinity groups take disjoint runs of services, each at most as large as the node count
            const groups: { name: string; services: string[]; failback?: boolean }[] = [];
            let next = 0;
            const aaDomain = (group: string, member: string) => `aa-${group}-${member}`;
            for (const a of c.antiAffinity) {
                const size = Math.min(a.size, nodes.length, serviceNames.length - next);
                if (size < 2) break;
                let name = distinct([a.name], groups.map((x) => x.name), 32)[0];
                const members = serviceNames.slice(next, next + size);
                const first = groups[0];
                const clash = first && `z-${members[0]}`;
                if (gaps.antiAffinityDomainClash && first && first.name.length <= 30 && clash!.length <= 22 && !serviceNames.includes(clash!)) {
                    // group "<g1>-z" with member m renders the failover domain "aa-<g1>-z-<m>", as group g1's member "z-<m>" does
                    name = `${first.name}-z`;
                    serviceNames[serviceNames.indexOf(first.services[0])] = clash!;
                    first.services[0] = clash!;
                }
                const taken = new Set(groups.flatMap((x) => x.services.map((m) => aaDomain(x.name, m))));
                if (!gaps.antiAffinityDomainClash && members.some((m) => taken.has(aaDomain(name, m)))) break;
                groups.push(compact({ name, services: members, failback: a.failback }));
                next += size;
            }
            const grouped = new Set(groups.flatMap((x) => x.services));
            // service addresses: free addresses of the cluster network (not a host's bridge address, not a guest's)
            const ipKeys = new Set<number>([0, 255, ...octets]);
            for (const x of guests) {
                const a = x.ssh?.address;
                if (a !== undefined && a.startsWith(`${net}.`)) ipKeys.add(Number(a.slice(net.length + 1)));
            }
            const scriptNames = new Set<string>();
            const services = c.services.map((s, i) =>
                compact({
                    name: serviceNames[i],
                    failoverDomain: s.failoverDomain === undefined || grouped.has(serviceNames[i]) || domainNames.length === 0 ? undefined : pick(domainNames, s.failoverDomain),
                    ...rgServiceSettings(s),
                    ...(s.depend !== undefined && serviceNames.length > 1
                        ? { depend: pick(serviceNames.filter((x) => x !== serviceNames[i]), s.depend[0]), ...compact({ dependMode: s.depend[1] }) }
                        : {}),
                    ips: s.ips
                        .filter((ip) => !ipKeys.has(ip.address[0]) && (ipKeys.add(ip.address[0]), true))
                        .map((ip) =>
                            compact({
                                address: ip.address[1] === undefined ? `${net}.${ip.address[0]}` : `${net}.${ip.address[0]}/${ip.address[1]}`,
                                monitorLink: ip.monitorLink,
                                ...(ip.subtree ? { independentSubtree: ip.subtree[0], maxRestarts: ip.subtree[1], restartExpireTime: ip.subtree[2] } : {}),
                            }),
                        ),
                    scripts: s.scripts.map((sc) => {
                        const name = distinct([sc.name.startsWith("aa-guard-") ? `x${sc.name}` : sc.name], scriptNames, 64)[0];
                        scriptNames.add(name);
                        return compact({
                            name,
                            file: sc.file,
                            ...(sc.subtree ? { independentSubtree: sc.subtree[0], maxRestarts: sc.subtree[1], restartExpireTime: sc.subtree[2] } : {}),
                            enforceTimeouts: sc.enforceTimeouts,
                        });
                    }),
                }),
            );

            const guestCluster = compact({
                name: c.name,
                nodes,
                fencing: Object.keys(fencing).length > 0 ? fencing : undefined,
                fenceDevices,
                fenceLevels,
                fenceDelay: c.delay && compact({ node: c.delay.node === undefined ? undefined : pick(nodes, c.delay.node), seconds: c.delay.seconds }),
                fenceDaemon: c.daemon,
                totem: c.totem,
                failoverDomains: failoverDomains.length > 0 ? failoverDomains : undefined,
                services: services.length > 0 ? services : undefined,
                antiAffinity: groups.length > 0 ? groups : undefined,
            });

            // ---- host cluster (2+ hosts): a device for every host, sometimes a second level
            let hostCluster: RawLabConfig["hostCluster"];
            if (g.hostCluster !== undefined && hostNames.length >= 2) {
                const hc = g.hostCluster;
                const deviceNames = distinct(
                    hc.devices.flatMap((d) => [d.name, `${d.name}-b`]),
                    [],
                    45,
                );
                const fenceDevices = hc.devices.flatMap((d, i) => {
                    const params =
                        d.kind === "ipmi"
                            ? compact({ ipaddr: d.ipaddr, login: d.login, lanplus: d.lanplus, privlvl: d.privlvl })
                            : { ipaddr: d.ipaddr, port: d.pdu.port, ...Object.fromEntries(Object.entries(d.pdu.optional[d.pdu.agent]).slice(0, 3)) };
                    const device = compact({
                        name: deviceNames[2 * i],
                        agent: d.kind === "ipmi" ? "fence_ipmilan" : d.pdu.agent,
                        host: hostNames[i],
                        params,
                        passwordSecret: d.password === undefined ? undefined : secretRef(d.password),
                    });
                    // a second BMC-like device at level 2 (e.g. a PDU behind an IPMI gateway)
                    const second = { name: deviceNames[2 * i + 1], agent: "fence_ipmilan", host: hostNames[i], level: 2, params: { ipaddr: `${net}.${250 - i}`, login: "fence" } };
                    return d.secondLevel ? [device, second] : [device];
                });
                const hcDomains = distinct(hc.failoverDomains.map((d) => (d.name.startsWith("aa-") ? `x${d.name}` : d.name)), [], 64);
                const vmGuests = hc.vmGuests.map((i) => guestNames[i]);
                const aa =
                    hc.antiAffinity && vmGuests.length >= 2
                        ? compact({ name: hc.antiAffinity.name, services: vmGuests.slice(0, Math.min(hc.antiAffinity.size, vmGuests.length, hostNames.length)), failback: hc.antiAffinity.failback })
                        : undefined;
                const vmServices = vmGuests.map((guestName, i) => {
                    const s = hc.vmServices[i];
                    const vm: Record<string, unknown> = compact({
                        guest: guestName,
                        failoverDomain: s.failoverDomain === undefined || hcDomains.length === 0 || aa?.services.includes(guestName) ? undefined : pick(hcDomains, s.failoverDomain),
                        ...rgServiceSettings(s),
                        migrate: s.migrate,
                        xmlFile: s.xmlFile ? `${xmlDir?.path ?? DEFAULTS.xmlDir.path}/${guestName}.xml` : undefined,
                        ...(s.depend !== undefined && vmGuests.length > 1
                            ? { depend: pick(vmGuests.filter((x) => x !== guestName), s.depend[0]), ...compact({ dependMode: s.depend[1] }) }
                            : {}),
                        migrationMapping: gaps.emptyMigrationMapping || s.migrationMapping?.length ? s.migrationMapping && Object.fromEntries(s.migrationMapping.map(([h, target]) => [pick(hostNames, h), target])) : undefined,
                        hypervisor: s.hypervisor,
                        migrationUri: s.migrationUri,
                        statusProgram: s.statusProgram,
                        tunnelled: s.tunnelled,
                    });
                    // a <vm> carries name, path (or xmlfile), use_virsh, its failover domain and every setting that differs
                    // from vm.sh's default: at most MAX_ELEMENT_ATTRIBUTES, so settings are dropped from the end until it fits
                    const count = () =>
                        3 +
                        (vm.failoverDomain !== undefined || aa?.services.includes(guestName) ? 1 : 0) +
                        Object.entries(vm).filter(([k, v]) => !["guest", "failoverDomain", "xmlFile"].includes(k) && v !== undefined && VM_DEFAULTS[k] !== v).length;
                    for (const k of ["tunnelled", "statusProgram", "migrationUri", "hypervisor", "migrationMapping", "dependMode", "depend", "migrate", "restartExpireTime", "maxRestarts"]) {
                        if (count() <= MAX_ELEMENT_ATTRIBUTES) break;
                        delete vm[k];
                    }
                    return vm as NonNullable<RawLabConfig["hostCluster"]>["vmServices"] extends (infer V)[] | undefined ? V : never;
                });
                hostCluster = compact({
                    name: hc.name,
                    fenceDevices,
                    fenceDelay: hc.delay && compact({ node: hc.delay.node === undefined ? undefined : pick(hostNames, hc.delay.node), seconds: hc.delay.seconds }),
                    fenceDaemon: hc.daemon,
                    totem: hc.totem,
                    failoverDomains: hc.failoverDomains.length > 0 ? rawFailoverDomains(hc.failoverDomains, hcDomains, hostNames, "host") : undefined,
                    vmServices: vmServices.length > 0 ? vmServices : undefined,
                    antiAffinity: aa ? [aa] : undefined,
                });
            }

            const raw = compact({
                labName: g.labName,
                hosts,
                guests,
                guestCluster,
                hostCluster,
                xmlDir,
            }) as RawLabConfig;
            return { stack: g.stack, raw, secretKeys: secretsUsed, files };
        });
}

// ---------------------------------------------------------------- mutations that break one rule

export type MutationKind = "duplicate-guest-name" | "unicast-multicast-address" | "node-not-a-guest" | "long-bridge-name" | "port-zero";

export interface Mutation {
    kind: MutationKind;
    /** Random choices the mutation uses (which guest, which host, what value). */
    i: number;
    j: number;
    value: string;
}

export const mutation: fc.Arbitrary<Mutation> = fc.record({
    kind: fc.constantFrom<MutationKind>("duplicate-guest-name", "unicast-multicast-address", "node-not-a-guest", "long-bridge-name", "port-zero"),
    i: fc.nat(),
    j: fc.nat(),
    value: fc.string({ unit: charOf(LOWER + DIGITS + "-"), minLength: 16, maxLength: 30 }),
});

/** What a mutation changed: the field path validation must name, and the bad value it must show. */
export interface Applied {
    path: string;
    value: unknown;
}

/**
 * Breaks one rule of a valid raw config (mutating it in place) and returns the path of the field it broke:
 * - duplicate-guest-name: guests[k].name = the name of an earlier guest;
 * - unicast-multicast-address: guestCluster.fencing.multicast.address = 10.x.y.z;
 * - node-not-a-guest: guestCluster.nodes[k] = a name no guest has;
 * - long-bridge-name: hosts[k].bridge.name = 16-30 characters;
 * - port-zero: an SSH port or the fence port = 0.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function applyMutation(raw: any, m: Mutation): Applied {
    switch (m.kind) {
        case "duplicate-guest-name": {
            const k = 1 + (m.i % (raw.guests.length - 1));
            const from = m.j % k;
            raw.guests[k].name = raw.guests[from].name;
            return { path: `guests[${k}].name`, value: raw.guests[from].name };
        }
        case "unicast-multicast-address": {
            const address = `10.${m.i % 256}.${m.j % 256}.${(m.i + m.j) % 256}`;
            raw.guestCluster.fencing ??= {};
            raw.guestCluster.fencing.multicast ??= {};
            raw.guestCluster.fencing.multicast.address = address;
            return { path: "guestCluster.fencing.multicast.address", value: address };
        }
        case "node-not-a-guest": {
            const k = m.i % raw.guestCluster.nodes.length;
            const names = new Set<string>(raw.guests.map((g: { name: string }) => g.name));
            let name = `x${m.value}`;
            while (names.has(name)) name += "x";
            raw.guestCluster.nodes[k] = name;
            return { path: `guestCluster.nodes[${k}]`, value: name };
        }
        case "long-bridge-name": {
            const k = m.i % raw.hosts.length;
            raw.hosts[k].bridge.name = m.value;
            return { path: `hosts[${k}].bridge.name`, value: m.value };
        }
        case "port-zero": {
            const places: { path: string; set: () => void }[] = [
                {
                    path: "guestCluster.fencing.multicast.port",
                    set: () => {
                        raw.guestCluster.fencing ??= {};
                        raw.guestCluster.fencing.multicast ??= {};
                        raw.guestCluster.fencing.multicast.port = 0;
                    },
                },
            ];
            raw.hosts.forEach((h: { ssh?: { port?: number } }, k: number) => {
                if (h.ssh) places.push({ path: `hosts[${k}].ssh.port`, set: () => (h.ssh!.port = 0) });
            });
            raw.guests.forEach((g: { ssh?: { port?: number } }, k: number) => {
                if (g.ssh) places.push({ path: `guests[${k}].ssh.port`, set: () => (g.ssh!.port = 0) });
            });
            const place = pick(places, m.i);
            place.set();
            return { path: place.path, value: 0 };
        }
        default: {
            const never: never = m.kind;
            throw new Error(`unknown mutation ${String(never)}`);
        }
    }
}
