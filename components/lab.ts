/**
 * Wires a validated LabSpec into components. Structure comes from the spec (plain values); secrets arrive as
 * Pulumi Inputs by config key name. Order comes from dependencies only:
 *   script library on a machine → every other command there;  fence key on a host → that host's fence_virtd;
 *   host ready (libvirtd, bridge) → that host's domains command (every domain of the lab);  every host's domains
 *   command → the barrier "defined" → start on the placement host, and → cluster.conf on the cluster nodes;
 *   a guest started → its sshd answers (GuestVm probes it from the machine running pulumi) → the script library, the key
 *   and cluster.conf on it.
 * Guests booted with a cloud-init seed authorize the lab's own SSH key pair (LabSshKey), which also reaches them.
 */
import * as pulumi from "@pulumi/pulumi";
import { isClusterManaged } from "./config";
import { ClusterConf } from "./cluster-conf";
import { Domains } from "./domains";
import { FenceKey } from "./fence-key";
import { GuestVm } from "./guest-vm";
import { KvmHost } from "./kvm-host";
import { LabSshKey } from "./lab-ssh-key";
import type { Machine } from "./machine";
import { domainXmlPath } from "./names";
import { renderDomainXml } from "./render/domain-xml";
import { renderCloudInitSeed, seedBundle } from "./render/cloud-init";
import type { Connection, LabSpec } from "./spec";

export interface Lab {
    hosts: Record<string, KvmHost>;
    guests: Record<string, GuestVm>;
    domains: Domains;
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
        // Each host installs the key itself, after its claim (KvmHost); guests get it once they run (below): installOn.
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

    const xmls = spec.guests.map((g) => renderDomainXml(g));
    const domains = new Domains("domains", {
        lab: spec.lab,
        xmlDir: spec.xmlDir,
        hosts: spec.hosts.map((h) => ({ name: h.name, machine: hosts[h.name].machine, ready: hosts[h.name].ready })),
        domains: spec.guests.map((g, i) => ({
            name: g.name,
            uuid: g.definition.kind === "rendered" ? g.definition.uuid : undefined,
            xml: xmls[i],
            placement: g.host,
        })),
    });

    // Deliveries come from the machine running pulumi: a guest's sshd is probed from there.
    const pulumiMachine: Machine = { name: "pulumi", connection: { kind: "local" } };
    const guestMachineByName = new Map(guestMachines.map((m) => [m.name, m]));
    const guests: Record<string, GuestVm> = {};
    spec.guests.forEach((guest, i) => {
        const machine = guestMachineByName.get(guest.name);
        guests[guest.name] = new GuestVm(guest.name, {
            lab: spec.lab,
            guest,
            placement: { machine: hosts[guest.host].machine, ready: hosts[guest.host].ready },
            domainsDefined: domains.defined,
            domainXml: xmls[i],
            xmlPath: domainXmlPath(spec.xmlDir.path, guest.name),
            clusterManaged: isClusterManaged(spec, guest.name),
            ...(machine !== undefined && guest.connection !== undefined
                ? { ssh: { machine, from: pulumiMachine, address: guest.connection.address, port: guest.connection.port } }
                : {}),
            ...(guest.definition.kind === "rendered" && guest.definition.seed !== undefined && sshKey !== undefined
                ? { seedBundle: sshKey.publicKeyOpenssh.apply((key) => seedBundle(renderCloudInitSeed(spec, guest, key))) }
                : {}),
        });
    });

    // A guest's OS is reachable once its domain runs and its sshd answers: deliveries to it wait for a probe from the
    // machine running pulumi, after the start (when the program starts it; rgmanager starts cluster-managed guests,
    // then the probe waits after the definitions). Commands on the guest also wait for its script library (runOn).
    const guestReady: Record<string, pulumi.Resource[]> = {};
    const reachableGuests: Machine[] = [];
    for (const m of guestMachines) {
        const g = guests[m.name];
        if (g.sshReady === undefined || g.machine === undefined) throw new Error(`kvm-ha-lab: guest ${m.name} is reached over SSH but has no readiness probe`);
        guestReady[m.name] = [g.sshReady];
        reachableGuests.push(g.machine);
        fenceKey.installOn(g.machine, guestReady[m.name]);
    }

    const nodeSet = new Set(spec.guestCluster.nodes);
    const passwords: Record<string, pulumi.Input<string>> = {};
    for (const d of spec.hostCluster?.fenceDevices ?? []) {
        if (d.passwordSecret !== undefined) passwords[d.name] = secrets[d.passwordSecret];
    }
    const clusterConf = new ClusterConf("cluster-conf", {
        spec,
        guestNodes: reachableGuests.filter((m) => nodeSet.has(m.name)),
        hostNodes: spec.hostCluster ? spec.hosts.map((h) => hosts[h.name].machine) : [],
        passwords,
        domainsDefined: [domains.defined],
        nodeReady: guestReady,
    });

    return { hosts, guests, domains, fenceKey, clusterConf, sshKey };
}
