/**
 * Synthetic labs for `npm run bench`: H hosts reached over SSH (one /16 cluster network, a bridge on each), G guests
 * spread round-robin over them, the first 16 guests (cman's node limit) forming the guest cluster, and, when the hosts
 * are at most 16, the hosts clustered too (an IPMI fence device each, a VM service per guest outside the guest
 * cluster). Pure: the same sizes give the same config.
 */

/** cman's node limit: a guest or host cluster has at most this many nodes. */
const CMAN_NODES_MAX = 16;

function address(i: number): string {
    // 10.64.0.0/16: hosts from 10.64.0.1, guests from 10.64.4.1 (at most 1024 hosts and 60,000 guests)
    return `10.64.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

export function syntheticLab(hostCount: number, guestCount: number): { raw: Record<string, unknown>; secrets: Record<string, string> } {
    const hosts = Array.from({ length: hostCount }, (_, i) => ({
        name: `kvm${i + 1}`,
        ssh: { address: address(i) },
        bridge: { name: "br0", address: `${address(i)}/16` },
    }));
    const guests = Array.from({ length: guestCount }, (_, i) => ({
        name: `node${i + 1}`,
        host: hosts[i % hostCount].name,
        memoryMiB: 1024,
        disks: [{ path: `/var/lib/libvirt/images/node${i + 1}.qcow2` }],
        ssh: { address: address(1000 + i) },
    }));
    const nodes = guests.slice(0, Math.min(CMAN_NODES_MAX, guestCount)).map((g) => g.name);
    const secrets: Record<string, string> = { sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nBENCH\n-----END OPENSSH PRIVATE KEY-----\n" };
    const raw: Record<string, unknown> = {
        hosts,
        guests,
        guestCluster: { name: "bench", nodes, fencing: { listener: "multicast" } },
    };
    if (hostCount >= 2 && hostCount <= CMAN_NODES_MAX) {
        for (const h of hosts) secrets[`ipmi${h.name}`] = `bench-password-${h.name}`;
        raw.hostCluster = {
            name: "benchhosts",
            fenceDevices: hosts.map((h, i) => ({
                name: `ipmi-${h.name}`,
                agent: "fence_ipmilan",
                host: h.name,
                params: { ipaddr: address(2000 + i), login: "admin", lanplus: "1" },
                passwordSecret: `ipmi${h.name}`,
            })),
            vmServices: guests.slice(nodes.length).map((g) => ({ guest: g.name, autostart: true, recovery: "relocate" })),
        };
    }
    return { raw, secrets };
}
