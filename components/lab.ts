/**
 * Wires a validated LabSpec into components. Structure comes from the spec (plain values); secrets arrive as
 * Pulumi Inputs by config key name. Order comes from dependencies only:
 *   fence key on a host → that host's fence_virtd;  host ready (libvirtd, bridge) → domain XML + define;
 *   defined on every host → start on the placement host, and → cluster.conf on the cluster nodes;
 *   a guest started → its sshd answers (GuestVm probes it from the machine running pulumi) → the key and cluster.conf on it.
 * Guests booted with a cloud-init seed authorize the lab's own SSH key pair (LabSshKey), which also reaches them.
 */
import * as pulumi from "@pulumi/pulumi";
import { isClusterManaged } from "./config";
import { ClusterConf } from "./cluster-conf";
import { FenceKey } from "./fence-key";
import { GuestVm } from "./guest-vm";
import { KvmHost } from "./kvm-host";
import { LabSshKey } from "./lab-ssh-key";
import type { Machine } from "./machine";
import { renderCloudInitSeed, seedBundle } from "./render/cloud-init";
import type { Connection, LabSpec } from "./spec";

export interface Lab {
    hosts: Record<string, KvmHost>;
    guests: Record<string, GuestVm>;
    fenceKey: FenceKey;
    clusterConf: ClusterConf;
    /** The lab's own SSH key pair, when a guest boots with a seed or is reached without a key of the user's. */
    sshKey?: LabSshKey;
}

function machineFor(name: string, connection: Connection, secrets: Record<string, pulumi.Input<string>>, labKey?: LabSshKey): Machine {
    if (connection.kind === "local") return { name, connection };
    if (connection.privateKeySecret === undefined) {
        if (labKey === undefined) throw new Error(`kvm-ha-lab: ${name}: no private key secret and no lab key`);
        return { name, connection, privateKey: labKey.privateKeyOpenssh };
    }
    const privateKey = secrets[connection.privateKeySecret];
    if (privateKey === undefined) {
        throw new Error(`kvm-ha-lab: ${name}: secret config key ${connection.privateKeySecret} was not provided`);
    }
    return { name, connection, privateKey };
}

export function createLab(spec: LabSpec, secrets: Record<string, pulumi.Input<string>>): Lab {
    const needsLabKey = spec.guests.some(
        (g) => (g.definition.kind === "rendered" && g.definition.seed !== undefined) || (g.connection !== undefined && g.connection.privateKeySecret === undefined),
    );
    const sshKey = needsLabKey ? new LabSshKey("lab-ssh-key") : undefined;
    const hostMachines = spec.hosts.map((h) => machineFor(h.name, h.connection, secrets));
    const guestMachines = spec.guests
        .filter((g) => g.connection !== undefined)
        .map((g) => machineFor(g.name, g.connection!, secrets, sshKey));
    const fencing = spec.guestCluster.fencing;

    const fenceKey = new FenceKey("fence-key", {
        lab: spec.lab,
        keyFile: fencing.keyFile,
        version: fencing.keyVersion,
        // Each host installs the key itself, after its claim (KvmHost); guests get it once they run (below).
        targets: [],
    });

    const hosts: Record<string, KvmHost> = {};
    spec.hosts.forEach((host, i) => {
        hosts[host.name] = new KvmHost(host.name, {
            spec,
            host,
            machine: hostMachines[i],
            fenceKey,
            keyVersion: fencing.keyVersion,
        });
    });

    // Deliveries come from the machine running pulumi: a guest's sshd is probed from there.
    const pulumiMachine: Machine = { name: "pulumi", connection: { kind: "local" } };
    const guests: Record<string, GuestVm> = {};
    for (const guest of spec.guests) {
        guests[guest.name] = new GuestVm(guest.name, {
            lab: spec.lab,
            guest,
            xmlDir: spec.xmlDir,
            hosts: spec.hosts.map((h, i) => ({ name: h.name, machine: hostMachines[i], ready: hosts[h.name].ready })),
            clusterManaged: isClusterManaged(spec, guest.name),
            ...(guest.connection !== undefined ? { sshProbe: { from: pulumiMachine, address: guest.connection.address, port: guest.connection.port } } : {}),
            ...(guest.definition.kind === "rendered" && guest.definition.seed !== undefined && sshKey !== undefined
                ? { seedBundle: sshKey.publicKeyOpenssh.apply((key) => seedBundle(renderCloudInitSeed(spec, guest, key))) }
                : {}),
        });
    }

    // A guest's OS is reachable once its domain runs and its sshd answers: deliveries to it wait for a probe from the
    // machine running pulumi, after the start (when the program starts it; rgmanager starts cluster-managed guests,
    // then the probe waits after the definitions).
    const guestReady: Record<string, pulumi.Resource[]> = {};
    for (const m of guestMachines) {
        const ready = guests[m.name].sshReady;
        if (ready === undefined) throw new Error(`kvm-ha-lab: guest ${m.name} is reached over SSH but has no readiness probe`);
        guestReady[m.name] = [ready];
        fenceKey.installOn(m, guestReady[m.name]);
    }

    const nodeSet = new Set(spec.guestCluster.nodes);
    const passwords: Record<string, pulumi.Input<string>> = {};
    for (const d of spec.hostCluster?.fenceDevices ?? []) {
        if (d.passwordSecret !== undefined) passwords[d.name] = secrets[d.passwordSecret];
    }
    const clusterConf = new ClusterConf("cluster-conf", {
        spec,
        guestNodes: guestMachines.filter((m) => nodeSet.has(m.name)),
        hostNodes: spec.hostCluster ? hostMachines : [],
        passwords,
        domainsDefined: Object.values(guests).flatMap((g) => Object.values(g.defined)),
        nodeReady: guestReady,
    });

    return { hosts, guests, fenceKey, clusterConf, sshKey };
}
