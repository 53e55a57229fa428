/**
 * A guest's cloud-init NoCloud seed: the three files of a `cidata` volume, rendered from plain values.
 *
 *   - meta-data: instance-id and local-hostname, both the node name (cloud-init runs its once-per-instance modules
 *     again only when the instance-id changes, so a rebuilt seed does not re-provision a guest that booted already);
 *   - user-data (#cloud-config): root may log in with the lab's SSH public key (no passwords), and
 *     /etc/hosts names every guest cluster node with its cluster address (cman and corosync resolve node names);
 *   - network-config (version 2): the NIC on the cluster network, matched by its MAC, with the node's static address.
 *     No gateway and no DNS: lab networks are private; a lab with an uplink adds its own routes.
 *
 * No secret ever goes into a seed (it is a file on the host): the fence key and cluster.conf travel over SSH after boot.
 */
import { stringify } from "yaml";
import type { GuestSpec, LabSpec } from "../spec";

export interface CloudInitSeed {
    metaData: string;
    userData: string;
    networkConfig: string;
}

/** The cluster nodes' names and addresses (those that have one), in the order of guestCluster.nodes. */
function clusterHosts(spec: LabSpec): { name: string; address: string }[] {
    const byName = new Map(spec.guests.map((g) => [g.name, g]));
    return spec.guestCluster.nodes.flatMap((n) => {
        const address = byName.get(n)?.address;
        return address !== undefined ? [{ name: n, address }] : [];
    });
}

const YAML_OPTIONS = { lineWidth: 0 } as const;

/** Renders the seed of `guest` (which must have a seed) authorizing `sshPublicKey` (an OpenSSH public key line) for root. */
export function renderCloudInitSeed(spec: LabSpec, guest: GuestSpec, sshPublicKey: string): CloudInitSeed {
    const def = guest.definition;
    if (def.kind !== "rendered" || def.seed === undefined) throw new Error(`guest ${guest.name} has no cloud-init seed`);
    const seed = def.seed;
    const key = sshPublicKey.trim();
    if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( [^\n]*)?$/.test(key)) {
        throw new Error(`guest ${guest.name}: the SSH public key is not one OpenSSH public key line`);
    }
    if (seed.address === "" || seed.prefix < 1) throw new Error(`guest ${guest.name}: the seed has no address on the cluster network`);

    const metaData = stringify({ "instance-id": guest.name, "local-hostname": guest.name }, YAML_OPTIONS);

    const hosts = clusterHosts(spec)
        .map((h) => `${h.address} ${h.name}\n`)
        .join("");
    const userConfig: Record<string, unknown> = {
        // Keys go to root (cloud-init's ssh module adds them to root, without a refusing prefix, when disable_root is
        // false), and to the image's default user if it has one.
        disable_root: false,
        // No ssh_pwauth: when it changes sshd_config, cloud-init restarts sshd in its config stage, after sshd first
        // answered, so the lab's deliveries and the user's first login would race a closed port 22. The project's image
        // turns password logins off itself; a user's image keeps its own setting.
        ssh_authorized_keys: [key],
        preserve_hostname: false,
        hostname: guest.name,
        manage_etc_hosts: false,
        ...(hosts !== ""
            ? { write_files: [{ path: "/etc/hosts", append: true, permissions: "0644", content: `# kvm-ha-lab: cluster nodes\n${hosts}` }] }
            : {}),
    };
    const userData = `#cloud-config\n${stringify(userConfig, YAML_OPTIONS)}`;

    const networkConfig = stringify(
        {
            version: 2,
            ethernets: {
                cluster0: {
                    match: { macaddress: seed.mac },
                    addresses: [`${seed.address}/${seed.prefix}`],
                    dhcp4: false,
                    dhcp6: false,
                },
            },
        },
        YAML_OPTIONS,
    );
    return { metaData, userData, networkConfig };
}

/** The seed's file names on the cidata volume, in a fixed order. */
export const SEED_FILES = ["meta-data", "user-data", "network-config"] as const;

/**
 * The seed as the seed script reads it on stdin: one line per file, `<name> <base64 of the content>`.
 * (One stream carries the three files; base64 keeps any YAML text on one line.)
 */
export function seedBundle(seed: CloudInitSeed): string {
    const content: Record<(typeof SEED_FILES)[number], string> = {
        "meta-data": seed.metaData,
        "user-data": seed.userData,
        "network-config": seed.networkConfig,
    };
    return SEED_FILES.map((f) => `${f} ${Buffer.from(content[f], "utf8").toString("base64")}\n`).join("");
}
