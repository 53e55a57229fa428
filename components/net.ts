/**
 * Pure helpers for the addresses a lab uses: IPv4, CIDR, MAC and UUID.
 * Everything here is deterministic: no clock, no randomness.
 */
import { createHash } from "node:crypto";

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(text: string): boolean {
    return IPV4.test(text);
}

export function ipv4ToInt(text: string): number {
    if (!isIpv4(text)) throw new Error(`not an IPv4 address: ${JSON.stringify(text)}`);
    return text.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function intToIpv4(n: number): string {
    return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

export interface Cidr {
    /** the address as written, e.g. 10.99.0.1 */
    address: string;
    prefix: number;
    /** the network address, e.g. 10.99.0.0 */
    network: string;
    /** network/prefix, e.g. 10.99.0.0/24 */
    networkCidr: string;
}

/** Parses "a.b.c.d/n"; returns undefined when the text is not a valid IPv4 CIDR. */
export function parseCidr(text: string): Cidr | undefined {
    const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
    if (!m || !isIpv4(m[1])) return undefined;
    const prefix = Number(m[2]);
    if (prefix < 0 || prefix > 32) return undefined;
    const size = 2 ** (32 - prefix);
    const network = intToIpv4(Math.floor(ipv4ToInt(m[1]) / size) * size);
    return { address: m[1], prefix, network, networkCidr: `${network}/${prefix}` };
}

export function cidrContains(cidr: string, address: string): boolean {
    const c = parseCidr(cidr);
    if (!c || !isIpv4(address)) return false;
    const size = 2 ** (32 - c.prefix);
    return Math.floor(ipv4ToInt(address) / size) * size === ipv4ToInt(c.network);
}

/** 224.0.0.0/4 */
export function isMulticastIpv4(address: string): boolean {
    return isIpv4(address) && Number(address.split(".")[0]) >= 224 && Number(address.split(".")[0]) <= 239;
}

const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function isHostnameOrIpv4(text: string): boolean {
    return isIpv4(text) || HOSTNAME.test(text);
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A lower-case, colon-separated, unicast MAC address. */
export function isUnicastMac(text: string): boolean {
    return MAC.test(text) && (parseInt(text.slice(0, 2), 16) & 1) === 0;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(text: string): boolean {
    return UUID.test(text);
}

/**
 * The MAC address of a guest NIC, derived from the stack, the guest and the NIC index, in the
 * 52:54:00 prefix that QEMU/KVM uses for locally administered addresses.
 */
export function stableMac(stack: string, guest: string, nicIndex: number): string {
    const digest = createHash("sha256").update(`kvm-ha-lab/mac/${stack}/${guest}/${nicIndex}`).digest();
    return ["52", "54", "00", ...[0, 1, 2].map((i) => digest[i].toString(16).padStart(2, "0"))].join(":");
}

/** Namespace for name-based UUIDs of kvm-ha-lab domains (itself a v5 UUID of "kvm-ha-lab" in the URL namespace). */
const DOMAIN_UUID_NAMESPACE = "0d6f1a52-58d5-5d4e-9a5f-7d1b0c3e2a41";

/**
 * A name-based (version 5, RFC 9562) UUID for a guest domain, derived from the stack and the guest name.
 * The same XML is defined on every host, so the UUID must be the same everywhere: it is derived, never random.
 */
export function stableUuid(stack: string, guest: string): string {
    const ns = Buffer.from(DOMAIN_UUID_NAMESPACE.replace(/-/g, ""), "hex");
    const digest = createHash("sha1").update(ns).update(`${stack}/${guest}`).digest();
    const bytes = Buffer.from(digest.subarray(0, 16));
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = bytes.toString("hex");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Stable, short content hash used for triggers and config_version bookkeeping. */
export function contentHash(text: string): string {
    return createHash("sha256").update(text).digest("hex");
}
