/**
 * GuestVm: one guest defined from one domain XML on every host, so it can run anywhere, started in one place only.
 *
 * - The XML goes to `<xmlDir>/<name>.xml` on every host, or once (on the placement host) when the directory is on
 *   shared storage.
 * - New disk images (and overlays of a base image) are created on the placement host, and so is its cloud-init seed.
 * - `virsh define` runs on every host (autostart off: libvirt must never start it by itself on a second host).
 * - It is started on its placement host only when no cluster manages it; with a host cluster, rgmanager starts it.
 */
import * as pulumi from "@pulumi/pulumi";
import { runOn, type Machine } from "./machine";
import { domainXmlPath } from "./names";
import { renderDomainXml } from "./render/domain-xml";
import { diskImageScripts, domainScripts, domainStartScripts, fileScripts } from "./scripts";
import { guestReadyScripts } from "./scripts/guest-ready";
import { seedScripts } from "./scripts/seed";
import type { GuestSpec, XmlDirSpec } from "./spec";

export interface GuestVmHost {
    name: string;
    machine: Machine;
    /** What must exist on that host before the domain is defined (libvirtd running, the bridge up). */
    ready: pulumi.Resource[];
}

export interface GuestVmArgs {
    lab: string;
    guest: GuestSpec;
    xmlDir: XmlDirSpec;
    /** Every host of the lab; the guest's placement host is among them. */
    hosts: GuestVmHost[];
    /** True when rgmanager (the host cluster) starts this guest. */
    clusterManaged: boolean;
    /**
     * The guest's cloud-init seed files as the seed script reads them (render/cloud-init.ts seedBundle), when its
     * definition has a seed. No secret.
     */
    seedBundle?: pulumi.Input<string>;
    /**
     * When the program reaches the guest's OS over SSH: probe its sshd from `from` (the machine running pulumi, where
     * deliveries come from) after the start; `sshReady` is what deliveries to the guest wait for.
     */
    sshProbe?: { from: Machine; address: string; port: number };
}

export class GuestVm extends pulumi.ComponentResource {
    /** `virsh define` on every host, by host name. */
    declare public readonly defined: Record<string, pulumi.Resource>;
    /** `virsh start` on the placement host, when the program starts the guest. */
    declare public readonly started: pulumi.Resource | undefined;
    /** The sshd probe (with `sshProbe`): the guest's OS answers SSH. */
    declare public readonly sshReady: pulumi.Resource | undefined;
    declare public readonly domainXml: string;
    declare public readonly xmlPath: string;

    constructor(name: string, args: GuestVmArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:GuestVm", name, {}, opts);
        const { lab, guest, xmlDir } = args;
        const placement = args.hosts.find((h) => h.name === guest.host);
        if (!placement) throw new Error(`kvm-ha-lab: guest ${guest.name} is placed on unknown host ${guest.host}`);

        const domainXml = renderDomainXml(guest);
        const xmlPath = domainXmlPath(xmlDir.path, guest.name);
        const xmlHosts = xmlDir.shared ? [placement] : args.hosts;
        const xmlFiles: Record<string, pulumi.Resource> = {};
        for (const h of xmlHosts) {
            xmlFiles[h.name] = runOn(
                h.machine,
                `${name}-xml-${h.name}`,
                { ...fileScripts(lab, { id: `domain-xml-${guest.name}`, path: xmlPath, mode: "0644" }), stdin: domainXml },
                { parent: this, dependsOn: h.ready },
            );
        }
        const xmlOnEveryHost = Object.values(xmlFiles);

        const disks =
            guest.definition.kind === "rendered"
                ? guest.definition.disks
                      .filter((d) => d.createSizeGiB !== undefined || d.backingImage !== undefined)
                      .map((d, i) =>
                          runOn(placement.machine, `${name}-disk-${i}`, diskImageScripts(lab, d), {
                              parent: this,
                              dependsOn: placement.ready,
                          }),
                      )
                : [];

        const seed = guest.definition.kind === "rendered" ? guest.definition.seed : undefined;
        if (seed !== undefined && args.seedBundle === undefined) throw new Error(`kvm-ha-lab: guest ${guest.name} has a cloud-init seed but no seed content was given`);
        const seeds =
            seed !== undefined
                ? [runOn(placement.machine, `${name}-seed`, { ...seedScripts(lab, seed.path), stdin: args.seedBundle }, { parent: this, dependsOn: placement.ready })]
                : [];

        const uuid = guest.definition.kind === "rendered" ? guest.definition.uuid : undefined;
        const defined: Record<string, pulumi.Resource> = {};
        for (const h of args.hosts) {
            defined[h.name] = runOn(
                h.machine,
                `${name}-define-${h.name}`,
                {
                    ...domainScripts(lab, { name: guest.name, xmlPath, uuid }),
                    // The script defines from the file at xmlPath; the XML also rides on stdin so that a changed XML
                    // updates this command (create runs again: `virsh define` updates the definition in place)
                    // instead of replacing it (which would destroy and undefine a running guest).
                    stdin: domainXml,
                },
                // On shared storage the one XML file must exist before any host defines from it.
                { parent: this, dependsOn: [...h.ready, ...(xmlDir.shared ? xmlOnEveryHost : [xmlFiles[h.name]])] },
            );
        }

        const started = args.clusterManaged
            ? undefined
            : runOn(placement.machine, `${name}-start`, domainStartScripts(lab, guest.name), {
                  parent: this,
                  // Defined everywhere before it starts anywhere.
                  dependsOn: [...Object.values(defined), ...disks, ...seeds],
              });

        // Started (or, when rgmanager starts it, defined everywhere) before its sshd can answer.
        const sshReady = args.sshProbe
            ? runOn(
                  args.sshProbe.from,
                  `${name}-ssh-ready`,
                  guestReadyScripts({ guest: guest.name, address: args.sshProbe.address, port: args.sshProbe.port }),
                  { parent: this, dependsOn: started ? [started] : Object.values(defined) },
              )
            : undefined;

        this.defined = defined;
        this.started = started;
        this.sshReady = sshReady;
        this.domainXml = domainXml;
        this.xmlPath = xmlPath;
        this.registerOutputs({ domainXml, xmlPath });
    }
}
