/**
 * The host firewall of a lab: an iptables-restore file for `iptables-restore --noflush` that touches only the lab's
 * own three chains (components/names.ts), never a built-in chain's rules or policy, nor any other chain.
 *
 * Loading it: the host script first deletes the old hook rules (`firewallUnhookArgs`), then restores this file. The
 * `:CHAIN - [0:0]` lines create the chains or, when they exist, flush them (that is what a chain line does under
 * --noflush), and the `-I <BUILTIN> 1 -j <CHAIN>` lines hook them first in INPUT, OUTPUT and FORWARD. Loading it
 * twice therefore gives the same state as loading it once.
 *
 * Rule lines are written in the canonical form `iptables -S` prints them back in, so a test (or an operator) can
 * compare the live chain with the file line by line.
 */
import { labNames } from "../names";
import type { HostSpec, LabSpec } from "../spec";

export type BuiltinChain = "INPUT" | "OUTPUT" | "FORWARD";

export interface FirewallHook {
    /** The built-in chain the lab's chain is hooked from. */
    builtin: BuiltinChain;
    /** The lab's own chain. */
    chain: string;
}

/** The lab's chains and the built-in chain each is hooked from, in the order the file declares them. */
export function firewallHooks(lab: string): FirewallHook[] {
    const { chains } = labNames(lab);
    return [
        { builtin: "INPUT", chain: chains.input },
        { builtin: "OUTPUT", chain: chains.output },
        { builtin: "FORWARD", chain: chains.forward },
    ];
}

/** The lab's chain names (input, output, forward). */
export function firewallChains(lab: string): string[] {
    return firewallHooks(lab).map((h) => h.chain);
}

/** The hook rules as they appear in the file (`-I INPUT 1 -j KVMLAB-<LAB>-IN`, ...). */
export function firewallHookLines(lab: string): string[] {
    return firewallHooks(lab).map((h) => `-I ${h.builtin} 1 -j ${h.chain}`);
}

/**
 * The iptables arguments that delete one hook rule each (`["-D", "INPUT", "-j", "KVMLAB-<LAB>-IN"]`, ...). A script
 * repeats each until it fails, so that no hook is left however many a broken earlier run inserted.
 */
export function firewallUnhookArgs(lab: string): string[][] {
    return firewallHooks(lab).map((h) => ["-D", h.builtin, "-j", h.chain]);
}

/** Ports the cman/rgmanager host cluster uses (the CentOS 5.5 HA virtualization guide, from Red Hat's Cluster Administration guide). */
export const HOST_CLUSTER_PORTS: readonly { proto: "udp" | "tcp"; port: string; service: string }[] = [
    { proto: "udp", port: "5404:5405", service: "cman (corosync totem)" },
    { proto: "tcp", port: "11111", service: "ricci" },
    { proto: "tcp", port: "16851", service: "modclusterd" },
    { proto: "tcp", port: "21064", service: "dlm" },
];

export interface FirewallOptions {
    /** The host is a member of the host cluster: open the cman, ricci, modclusterd and dlm ports. */
    clusteredHost: boolean;
}

function comment(text: string): string {
    // Only characters iptables-restore's tokenizer passes through unquoted inside double quotes.
    if (!/^[A-Za-z0-9 _.:/,()-]+$/.test(text)) throw new Error(`firewall comment ${JSON.stringify(text)} has characters iptables-restore would mangle`);
    return `-m comment --comment "${text}"`;
}

/**
 * Renders the lab's firewall for one host. The fence rules follow fence_virtd's listener:
 *
 * multicast (fence_xvm). Input chain, on the lab bridge:
 *  - fence_xvm's multicast request (udp to the multicast address and port) and IGMP from the cluster subnet: ACCEPT;
 *  - replies on fence_virtd's connection back to fence_xvm (tcp from the subnet, source port = the fence port,
 *    ESTABLISHED only): ACCEPT;
 *  - any other udp/tcp to the fence port from outside the cluster subnet: DROP (only subnet members may ask).
 *  Output chain: fence_virtd's connection back to fence_xvm on the guest (tcp to the subnet, port = the fence port,
 *  out of the bridge) and IGMP membership reports on the bridge: ACCEPT.
 * tcp (fence_virt connects to the host's bridge address; no connect-back, no multicast):
 *  - input: tcp to the bridge address and tcp port from the cluster subnet, on the bridge: ACCEPT; tcp to the bridge
 *    address and port from outside the subnet, on any interface: DROP. The DROP names the bridge address, so another
 *    lab's listener on the same port (on its own bridge address) is not affected;
 *  - output: fence_virtd's replies on those connections (from the bridge address and port, ESTABLISHED): ACCEPT.
 * vsock: no IP rules for fencing at all: requests travel over the guests' virtio vsock devices, never through
 *  netfilter.
 * Forward chain: bridged frames (`-m physdev --physdev-is-bridged`): ACCEPT (the CentOS 5.5 HA virtualization guide), whatever the listener.
 * Clustered host: the host cluster's ports (HOST_CLUSTER_PORTS), IGMP for totem multicast and the ESTABLISHED
 *  replies of connections the host opened to those tcp ports: ACCEPT in the input chain; the same ports out.
 *  Like the CentOS 5.5 HA virtualization guide's rules, these are not limited to an interface: cman runs on whichever network the host names resolve to.
 *
 * Every rule only ACCEPTs or DROPs matched traffic; anything else returns to the built-in chain unchanged.
 */
export function renderFirewall(spec: LabSpec, host: HostSpec, opts: FirewallOptions): string {
    const { chains } = labNames(spec.lab);
    const tag = `kvm-ha-lab ${spec.lab}`;
    const { inRules, outRules, note } = fenceRules(spec, host, tag);
    const fwdRules: string[] = [`-m physdev --physdev-is-bridged ${comment(`${tag}: bridged guest traffic`)} -j ACCEPT`];

    if (opts.clusteredHost) {
        for (const p of HOST_CLUSTER_PORTS) {
            inRules.push(`-p ${p.proto} -m ${p.proto} --dport ${p.port} ${comment(`${tag}: host cluster ${p.service}`)} -j ACCEPT`);
        }
        const tcpPorts = HOST_CLUSTER_PORTS.filter((p) => p.proto === "tcp").map((p) => p.port);
        inRules.push(
            `-p tcp -m multiport --sports ${tcpPorts.join(",")} -m conntrack --ctstate ESTABLISHED ${comment(`${tag}: host cluster replies`)} -j ACCEPT`,
            `-p igmp ${comment(`${tag}: host cluster totem multicast membership`)} -j ACCEPT`,
        );
        for (const p of HOST_CLUSTER_PORTS) {
            outRules.push(`-p ${p.proto} -m ${p.proto} --dport ${p.port} ${comment(`${tag}: host cluster ${p.service}`)} -j ACCEPT`);
        }
    }

    const fencing = spec.guestCluster.fencing;
    const lines = [
        `# kvm-ha-lab: firewall of lab "${spec.lab}" on host "${host.name}" (bridge ${host.bridge.name}, cluster subnet ${fencing.subnet}, ${fencing.listener} fencing${opts.clusteredHost ? ", host cluster member" : ""}).`,
        "# Generated by kvm-ha-lab; load with `iptables-restore --noflush` after deleting the old hook rules. Touches only the chains below.",
        ...note.map((n) => `# ${n}`),
        "*filter",
        `:${chains.input} - [0:0]`,
        `:${chains.output} - [0:0]`,
        `:${chains.forward} - [0:0]`,
        ...inRules.map((r) => `-A ${chains.input} ${r}`),
        ...outRules.map((r) => `-A ${chains.output} ${r}`),
        ...fwdRules.map((r) => `-A ${chains.forward} ${r}`),
        ...firewallHookLines(spec.lab),
        "COMMIT",
    ];
    return lines.join("\n") + "\n";
}

/** The fence rules of the input and output chains for the spec's listener (see `renderFirewall`). */
function fenceRules(spec: LabSpec, host: HostSpec, tag: string): { inRules: string[]; outRules: string[]; note: string[] } {
    const fencing = spec.guestCluster.fencing;
    const br = host.bridge.name;
    const subnet = fencing.subnet;
    switch (fencing.listener) {
        case "multicast": {
            const port = fencing.multicast.port;
            const group = `${fencing.multicast.address}/32`;
            return {
                inRules: [
                    `-s ${subnet} -d ${group} -i ${br} -p udp -m udp --dport ${port} ${comment(`${tag}: fence_xvm request`)} -j ACCEPT`,
                    `-s ${subnet} -i ${br} -p igmp ${comment(`${tag}: IGMP on the cluster bridge`)} -j ACCEPT`,
                    `-s ${subnet} -i ${br} -p tcp -m tcp --sport ${port} -m conntrack --ctstate ESTABLISHED ${comment(`${tag}: fence_virtd connect-back replies`)} -j ACCEPT`,
                    `! -s ${subnet} -i ${br} -p udp -m udp --dport ${port} ${comment(`${tag}: fence request from outside the cluster`)} -j DROP`,
                    `! -s ${subnet} -i ${br} -p tcp -m tcp --dport ${port} ${comment(`${tag}: fence request from outside the cluster`)} -j DROP`,
                ],
                outRules: [
                    `-d ${subnet} -o ${br} -p tcp -m tcp --dport ${port} ${comment(`${tag}: fence_virtd connect-back to fence_xvm`)} -j ACCEPT`,
                    `-o ${br} -p igmp ${comment(`${tag}: IGMP on the cluster bridge`)} -j ACCEPT`,
                ],
                note: [],
            };
        }
        case "tcp": {
            const port = fencing.tcp.port;
            const address = host.bridge.address?.split("/")[0];
            if (address === undefined || address === "") {
                throw new Error(`firewall: host ${host.name} has no bridge address for fence_virtd's tcp listener; set hosts[].bridge.address`);
            }
            const listener = `${address}/32`;
            return {
                inRules: [
                    `-s ${subnet} -d ${listener} -i ${br} -p tcp -m tcp --dport ${port} ${comment(`${tag}: fence_virt request`)} -j ACCEPT`,
                    `! -s ${subnet} -d ${listener} -p tcp -m tcp --dport ${port} ${comment(`${tag}: fence request from outside the cluster`)} -j DROP`,
                ],
                outRules: [
                    `-s ${listener} -o ${br} -p tcp -m tcp --sport ${port} -m conntrack --ctstate ESTABLISHED ${comment(`${tag}: fence_virtd replies to fence_virt`)} -j ACCEPT`,
                ],
                note: [],
            };
        }
        case "vsock":
            return {
                inRules: [],
                outRules: [],
                note: ["No fence rules: fence_virt reaches fence_virtd over the guests' virtio vsock devices, which netfilter never sees."],
            };
        default: {
            const unreachable: never = fencing.listener;
            throw new Error(`unknown fence_virtd listener ${JSON.stringify(unreachable)}`);
        }
    }
}
