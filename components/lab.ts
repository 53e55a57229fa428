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
import { ClusterConf, clusterFiles } from "./cluster-conf";
import { Domains } from "./domains";
import { FenceKey } from "./fence-key";
import { GuestVm, type GuestVmArgs } from "./guest-vm";
import { KvmHost } from "./kvm-host";
import { LabSshKey } from "./lab-ssh-key";
import type { Machine } from "./machine";
import { domainXmlPath } from "./names";
import { renderDomainXml } from "./render/domain-xml";
import { renderCloudInitSeed, seedBundle } from "./render/cloud-init";
import { renderFenceVirtConf } from "./render/fence-virt-conf";
import { renderFirewall } from "./render/firewall";
import type { Connection, GuestSpec, LabSpec } from "./spec";

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

/** The lab's own SSH key pair, when a guest boots with a seed or is reached without a key of the user's. */
function labSshKey(spec: LabSpec): LabSshKey | undefined {
    const needsLabKey = spec.guests.some(
        (g) => (g.definition.kind === "rendered" && g.definition.seed !== undefined) || (g.connection !== undefined && g.connection.privateKeySecret === undefined),
    );
    return needsLabKey ? new LabSshKey("lab-ssh-key") : undefined;
}

/**
 * The hosts. Each host's fence_virtd waits for the fence key's file there, which FenceKey installs once every machine
 * exists (createLab resolves `keyInstalled` then).
 */
function createHosts(spec: LabSpec, machines: Map<string, Machine>, keyInstalled: Promise<Record<string, pulumi.Resource>>): Record<string, KvmHost> {
    const hosts: Record<string, KvmHost> = {};
    for (const host of spec.hosts) {
        hosts[host.name] = new KvmHost(host.name, {
            lab: spec.lab,
            stack: spec.stack,
            host,
            machine: machines.get(host.name)!,
            fencing: spec.guestCluster.fencing,
            keyInstalled: keyInstalled.then((installed) => installed[host.name]),
            fenceVirtConf: renderFenceVirtConf(spec, host),
            firewallRules: renderFirewall(spec, host, { clusteredHost: spec.hostCluster !== undefined }),
        });
    }
    return hosts;
}

function createDomains(spec: LabSpec, hosts: Record<string, KvmHost>, xmls: string[]): Domains {
    return new Domains("domains", {
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
}

/** The guest's cloud-init seed, with the lab's public key in it, when its definition has one. */
function guestSeed(spec: LabSpec, guest: GuestSpec, sshKey: LabSshKey | undefined): GuestVmArgs["seed"] {
    const seed = guest.definition.kind === "rendered" ? guest.definition.seed : undefined;
    if (seed === undefined) return undefined;
    if (sshKey === undefined) throw new Error(`kvm-ha-lab: guest ${guest.name} has a cloud-init seed but the lab has no SSH key`);
    return { path: seed.path, bundle: sshKey.publicKeyOpenssh.apply((key) => seedBundle(renderCloudInitSeed(spec, guest, key))) };
}

function createGuests(
    spec: LabSpec,
    machines: Map<string, Machine>,
    sshKey: LabSshKey | undefined,
    hosts: Record<string, KvmHost>,
    domains: Domains,
    xmls: string[],
): Record<string, GuestVm> {
    // Deliveries come from the machine running pulumi: a guest's sshd is probed from there.
    const pulumiMachine: Machine = { name: "pulumi", connection: { kind: "local" } };
    const guests: Record<string, GuestVm> = {};
    spec.guests.forEach((guest, i) => {
        const def = guest.definition;
        const conn = guest.connection;
        const machine = machines.get(guest.name);
        guests[guest.name] = new GuestVm(guest.name, {
            lab: spec.lab,
            domain: guest.name,
            placement: { machine: hosts[guest.host].machine, ready: hosts[guest.host].ready },
            createDisks: def.kind === "rendered" ? def.disks.filter((d) => d.createSizeGiB !== undefined || d.backingImage !== undefined) : [],
            seed: guestSeed(spec, guest, sshKey),
            domainsDefined: domains.defined,
            domainXml: xmls[i],
            xmlPath: domainXmlPath(spec.xmlDir.path, guest.name),
            clusterManaged: isClusterManaged(spec, guest.name),
            ...(conn !== undefined && machine !== undefined ? { ssh: { machine, from: pulumiMachine, address: conn.address, port: conn.port } } : {}),
        });
    });
    return guests;
}

export function createLab(spec: LabSpec, secrets: Record<string, pulumi.Input<string>>): Lab {
    const sshKey = labSshKey(spec);
    // Every machine's connection, before any command is registered.
    const machines = new Map<string, Machine>([
        ...spec.hosts.map((h): [string, Machine] => [h.name, machineFor(h.name, h.connection, secrets)]),
        ...spec.guests.flatMap((g): [string, Machine][] => (g.connection !== undefined ? [[g.name, machineFor(g.name, g.connection, secrets, sshKey)]] : [])),
    ]);
    let keyInstalled!: (installed: Record<string, pulumi.Resource>) => void;
    const hosts = createHosts(spec, machines, new Promise((resolve) => (keyInstalled = resolve)));
    const xmls = spec.guests.map((g) => renderDomainXml(g));
    const domains = createDomains(spec, hosts, xmls);
    const guests = createGuests(spec, machines, sshKey, hosts, domains, xmls);

    // A guest's OS is reachable once its domain runs and its sshd answers: deliveries to it wait for a probe from the
    // machine running pulumi, after the start (when the program starts it; rgmanager starts cluster-managed guests,
    // then the probe waits after the definitions). Commands on the guest also wait for its script library (runOn).
    const reachable = spec.guests.flatMap(({ name }) => {
        const { machine, sshReady } = guests[name];
        if (!machines.has(name)) return [];
        if (machine === undefined || sshReady === undefined) throw new Error(`kvm-ha-lab: guest ${name} is reached over SSH but has no readiness probe`);
        return [{ machine, sshReady }];
    });
    const guestReady: Record<string, pulumi.Resource[]> = Object.fromEntries(reachable.map((g) => [g.machine.name, [g.sshReady]]));

    // The key on every host after its claim, and on every guest once it runs.
    const fencing = spec.guestCluster.fencing;
    const fenceKey = new FenceKey("fence-key", {
        lab: spec.lab,
        keyFile: fencing.keyFile,
        version: fencing.keyVersion,
        targets: [
            ...spec.hosts.map((h) => ({ machine: hosts[h.name].machine, after: hosts[h.name].claimed })),
            ...reachable.map((g) => ({ machine: g.machine, after: guestReady[g.machine.name] })),
        ],
    });
    keyInstalled(fenceKey.installed);

    const clusterConf = createClusterConf(spec, secrets, hosts, reachable.map((g) => g.machine), domains, guestReady);
    return { hosts, guests, domains, fenceKey, clusterConf, sshKey };
}

function createClusterConf(
    spec: LabSpec,
    secrets: Record<string, pulumi.Input<string>>,
    hosts: Record<string, KvmHost>,
    reachableGuests: Machine[],
    domains: Domains,
    guestReady: Record<string, pulumi.Resource[]>,
): ClusterConf {
    const nodeSet = new Set(spec.guestCluster.nodes);
    const passwords: Record<string, pulumi.Input<string>> = {};
    for (const d of spec.hostCluster?.fenceDevices ?? []) {
        if (d.passwordSecret !== undefined) passwords[d.name] = secrets[d.passwordSecret];
    }
    return new ClusterConf("cluster-conf", {
        lab: spec.lab,
        ...clusterFiles(spec),
        guestNodes: reachableGuests.filter((m) => nodeSet.has(m.name)),
        hostNodes: spec.hostCluster ? spec.hosts.map((h) => hosts[h.name].machine) : [],
        passwords,
        domainsDefined: [domains.defined],
        nodeReady: guestReady,
    });
}
