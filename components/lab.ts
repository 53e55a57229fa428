/**
 * Wires a validated LabSpec into components. Structure comes from the spec (plain values); secrets arrive as
 * Pulumi Inputs by config key name. Order comes from dependencies only:
 *   fence key on a host → that host's fence_virtd;  host ready (libvirtd, bridge) → domain XML + define;
 *   defined on every host → start on the placement host, and → cluster.conf on the cluster nodes.
 */
import * as pulumi from "@pulumi/pulumi";
import { isClusterManaged } from "./config";
import { ClusterConf } from "./cluster-conf";
import { FenceKey } from "./fence-key";
import { GuestVm } from "./guest-vm";
import { KvmHost } from "./kvm-host";
import type { Machine } from "./machine";
import type { Connection, LabSpec } from "./spec";

export interface Lab {
    hosts: Record<string, KvmHost>;
    guests: Record<string, GuestVm>;
    fenceKey: FenceKey;
    clusterConf: ClusterConf;
}

function machineFor(name: string, connection: Connection, secrets: Record<string, pulumi.Input<string>>): Machine {
    if (connection.kind === "local") return { name, connection };
    const privateKey = secrets[connection.privateKeySecret];
    if (privateKey === undefined) {
        throw new Error(`kvm-ha-lab: ${name}: secret config key ${connection.privateKeySecret} was not provided`);
    }
    return { name, connection, privateKey };
}

export function createLab(spec: LabSpec, secrets: Record<string, pulumi.Input<string>>): Lab {
    const hostMachines = spec.hosts.map((h) => machineFor(h.name, h.connection, secrets));
    const guestMachines = spec.guests
        .filter((g) => g.connection !== undefined)
        .map((g) => machineFor(g.name, g.connection!, secrets));
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

    const guests: Record<string, GuestVm> = {};
    for (const guest of spec.guests) {
        guests[guest.name] = new GuestVm(guest.name, {
            lab: spec.lab,
            guest,
            xmlDir: spec.xmlDir,
            hosts: spec.hosts.map((h, i) => ({ name: h.name, machine: hostMachines[i], ready: hosts[h.name].ready })),
            clusterManaged: isClusterManaged(spec, guest.name),
        });
    }

    // A guest's OS is reachable once its domain runs: deliveries to it wait for the start (when the program starts it;
    // rgmanager starts cluster-managed guests, then only the definitions can be waited for).
    const guestReady: Record<string, pulumi.Resource[]> = {};
    for (const m of guestMachines) {
        const g = guests[m.name];
        guestReady[m.name] = g.started ? [g.started] : Object.values(g.defined);
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

    return { hosts, guests, fenceKey, clusterConf };
}
