/**
 * GuestVm: what is per guest — new disk images (and overlays of a base image) and its cloud-init seed on its placement
 * host, its start there, the probe of its sshd, and, when the guest's OS is reached over SSH, the shared script library
 * on it (what the lab delivers to the guest depends on that).
 *
 * The domain itself is defined on every host by the lab's Domains component (one command per host, autostart off:
 * libvirt must never start it by itself on a second host); the start waits for its barrier, "defined on every host".
 * It is started on its placement host only when no cluster manages it; with a host cluster, rgmanager starts it.
 */
import * as pulumi from "@pulumi/pulumi";
import { runOn, withLibrary, type Machine } from "./machine";
import { diskImageScripts, domainStartScripts } from "./scripts";
import { guestReadyScripts } from "./scripts/guest-ready";
import { seedScripts } from "./scripts/seed";
import type { DiskSpec } from "./spec";

export interface GuestVmArgs {
    lab: string;
    /** The libvirt domain name (= the guest's name). */
    domain: string;
    /** The placement host's machine and what must exist there first (libvirtd running, the bridge up). */
    placement: { machine: Machine; ready: pulumi.Resource[] };
    /**
     * The disks whose image the lab makes on the placement host (from a size, or as an overlay of a base image), in
     * the guest's order: `<name>-disk-<i>` each.
     */
    createDisks: DiskSpec[];
    /** The guest's cloud-init seed: its path on the placement host and its files as the seed script reads them. No secret. */
    seed?: { path: string; bundle: pulumi.Input<string> };
    /** Every domain defined on every host (Domains.defined). */
    domainsDefined: pulumi.Resource;
    /** The guest's rendered domain XML and its path on the hosts (for outputs). */
    domainXml: string;
    xmlPath: string;
    /** True when rgmanager (the host cluster) starts this guest. */
    clusterManaged: boolean;
    /**
     * When the program reaches the guest's OS over SSH: the guest's machine, and where its sshd is probed from (`from`,
     * the machine running pulumi, where deliveries come from) after the start; `sshReady` is what deliveries wait for.
     */
    ssh?: { machine: Machine; from: Machine; address: string; port: number };
}

export class GuestVm extends pulumi.ComponentResource {
    /** `virsh start` on the placement host, when the program starts the guest. */
    declare public readonly started: pulumi.Resource | undefined;
    /** The sshd probe (with `ssh`): the guest's OS answers SSH. */
    declare public readonly sshReady: pulumi.Resource | undefined;
    /** The guest's OS with the script library installed (after sshReady), when it is reached over SSH. */
    declare public readonly machine: Machine | undefined;
    declare public readonly domainXml: string;
    declare public readonly xmlPath: string;

    constructor(name: string, args: GuestVmArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:GuestVm", name, {}, opts);
        const { lab, placement } = args;
        const onPlacement = { parent: this, dependsOn: placement.ready };
        const disks = args.createDisks.map((d, i) => runOn(placement.machine, `${name}-disk-${i}`, diskImageScripts(lab, d), onPlacement));
        const seeds = args.seed ? [runOn(placement.machine, `${name}-seed`, { ...seedScripts(lab, args.seed.path), stdin: args.seed.bundle }, onPlacement)] : [];

        const started = args.clusterManaged
            ? undefined
            : runOn(placement.machine, `${name}-start`, domainStartScripts(lab, args.domain), {
                  parent: this,
                  // Defined everywhere before it starts anywhere.
                  dependsOn: [args.domainsDefined, ...disks, ...seeds],
              });

        // Started (or, when rgmanager starts it, defined everywhere) before its sshd can answer.
        const sshReady = args.ssh
            ? runOn(
                  args.ssh.from,
                  `${name}-ssh-ready`,
                  guestReadyScripts({ guest: args.domain, address: args.ssh.address, port: args.ssh.port }),
                  { parent: this, dependsOn: started ? [started] : [args.domainsDefined] },
              )
            : undefined;

        this.started = started;
        this.sshReady = sshReady;
        this.machine = args.ssh && withLibrary(args.ssh.machine, lab, name, { parent: this, dependsOn: [sshReady!] });
        this.domainXml = args.domainXml;
        this.xmlPath = args.xmlPath;
        this.registerOutputs({ domainXml: args.domainXml, xmlPath: args.xmlPath });
    }
}
