/**
 * corosync.conf (corosync 3, knet) for a cluster of the Pacemaker stack (`stack: pacemaker`):
 *
 * - the guest cluster (`renderGuestCorosyncConf`): the guests are the nodes; each node's `name` is its libvirt domain
 *   name (= the Pacemaker node name, so the CIB's fence devices and constraints name the same machines), its `nodeid`
 *   its position in `guestCluster.nodes` (from 1, as in cluster.conf), its `ring0_addr` its address on the cluster
 *   network (`guests[].address`, resolved by validation);
 * - the host cluster (`renderHostCorosyncConf`): the KVM hosts in `hosts` order, each at its SSH address, else its
 *   bridge address (`hostRingAddress`).
 *
 * totem: `transport: knet` with `crypto_cipher: aes256`/`crypto_hash: sha256`, authenticated and encrypted with
 * /etc/corosync/authkey (the lab's corosync key, delivered by the program); `token` when the cluster sets
 * `totem.token`. quorum: votequorum; two nodes get `two_node: 1` (which also turns on wait_for_all: a fresh two-node
 * cluster waits until both nodes were seen once, then one survivor is quorate and fencing decides the race).
 *
 * Pure: the same spec gives byte-identical text. corosync's parser wants `node {` alone on its line and takes a value
 * up to the end of the line; a value with a brace, a line break or a leading/trailing blank could not be read back,
 * so the renderer refuses one (validation never lets one through).
 */
import { guestRingAddress, hostRingAddress } from "../cluster-model";
import type { LabSpec } from "../spec";

/** Where corosync reads its configuration and its key (the same paths on RHEL, Debian and SUSE). */
export const COROSYNC_CONF_PATH = "/etc/corosync/corosync.conf";
export const COROSYNC_AUTHKEY_PATH = "/etc/corosync/authkey";

export interface CorosyncNode {
    /** Node name = Pacemaker node name (= the libvirt domain name for guests). */
    name: string;
    nodeid: number;
    /** IPv4 address or host name of the node on the cluster network. */
    address: string;
}

export interface CorosyncConfInput {
    clusterName: string;
    nodes: CorosyncNode[];
    /** totem token timeout in ms; undefined keeps corosync's default. */
    token?: number;
}

export function renderGuestCorosyncConf(spec: LabSpec): string {
    const gc = spec.guestCluster;
    return renderCorosyncConf({
        clusterName: gc.name,
        nodes: gc.nodes.map((name, i) => ({ name, nodeid: i + 1, address: required(guestRingAddress(spec, name), `guest ${name}`, "set guests[].address") })),
        ...(gc.totem.token !== undefined ? { token: gc.totem.token } : {}),
    });
}

export function renderHostCorosyncConf(spec: LabSpec): string {
    const hc = spec.hostCluster;
    if (hc === undefined) throw new Error("renderHostCorosyncConf: the lab has no hostCluster; render it only when spec.hostCluster is set");
    return renderCorosyncConf({
        clusterName: hc.name,
        nodes: spec.hosts.map((h, i) => ({ name: h.name, nodeid: i + 1, address: required(hostRingAddress(h), `host ${h.name}`, "reach it over ssh or set hosts[].bridge.address") })),
        ...(hc.totem.token !== undefined ? { token: hc.totem.token } : {}),
    });
}

export function renderCorosyncConf(input: CorosyncConfInput): string {
    const lines: string[] = [];
    const section = (name: string, body: () => void, indent = "") => {
        lines.push(`${indent}${name} {`);
        body();
        lines.push(`${indent}}`);
    };
    const kv = (key: string, value: string | number, indent: string) => lines.push(`${indent}${key}: ${value1(key, value)}`);
    lines.push(`# corosync.conf of cluster ${value1("cluster_name", input.clusterName)}, written by kvm-ha-lab: change the stack config, not this file`);
    section("totem", () => {
        kv("version", 2, "    ");
        kv("cluster_name", input.clusterName, "    ");
        kv("transport", "knet", "    ");
        kv("crypto_cipher", "aes256", "    ");
        kv("crypto_hash", "sha256", "    ");
        if (input.token !== undefined) kv("token", input.token, "    ");
    });
    lines.push("");
    section("nodelist", () => {
        for (const n of input.nodes) {
            section(
                "node",
                () => {
                    kv("name", n.name, "        ");
                    kv("nodeid", n.nodeid, "        ");
                    kv("ring0_addr", n.address, "        ");
                },
                "    ",
            );
        }
    });
    lines.push("");
    section("quorum", () => {
        kv("provider", "corosync_votequorum", "    ");
        if (input.nodes.length === 2) kv("two_node", 1, "    ");
    });
    lines.push("");
    section("logging", () => {
        kv("to_syslog", "yes", "    ");
        kv("to_stderr", "no", "    ");
        kv("timestamp", "on", "    ");
    });
    return `${lines.join("\n")}\n`;
}

function value1(key: string, value: string | number): string {
    const text = String(value);
    if (text === "" || /[{}\r\n\0#]/.test(text) || text.trim() !== text) {
        throw new Error(`corosync.conf ${key}: ${JSON.stringify(text)} cannot be written as a corosync value (empty, a brace, '#', a line break or blanks at its ends)`);
    }
    return text;
}

function required(address: string | undefined, what: string, fix: string): string {
    if (address === undefined) throw new Error(`corosync.conf: ${what} has no address on the cluster network; ${fix}`);
    return address;
}
