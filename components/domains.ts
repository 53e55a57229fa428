/**
 * Domains: every guest of the lab defined on every host — one command per host (`<host>-domains`,
 * scripts/domains.ts), not one per guest and host — and one barrier, `<name>-defined`, that stands for "every domain
 * is defined on every host". Starts and cluster.conf deliveries depend on the barrier alone, so the dependency edges
 * grow with hosts + guests: H edges into the barrier, one out of it per dependent.
 *
 * The barrier is a local command whose create and delete do nothing (`:`). Depending on a ComponentResource would not
 * do: it expands to every child. On destroy it goes after its dependents (starts, deliveries) and before the domains
 * commands, so a guest is stopped and its deliveries are removed before any host undefines it.
 */
import * as pulumi from "@pulumi/pulumi";
import { runOn, type Machine } from "./machine";
import { domainXmlPath } from "./names";
import { domainsBundle, domainsScripts, type BundledDomain } from "./scripts/domains";
import type { XmlDirSpec } from "./spec";

export interface DomainsHost {
    name: string;
    machine: Machine;
    /** What must exist on that host before its domains are defined (libvirtd running, the bridge up). */
    ready: pulumi.Resource[];
}

export interface DomainsArgs {
    lab: string;
    xmlDir: XmlDirSpec;
    /** Every host of the lab: each defines every domain. */
    hosts: DomainsHost[];
    /** Every guest's domain, in the lab's order. */
    domains: BundledDomain[];
}

/** The machine running pulumi: where the barrier runs (it runs nothing). */
const PULUMI_MACHINE: Machine = { name: "the machine running pulumi", connection: { kind: "local" } };

export class Domains extends pulumi.ComponentResource {
    /** `<host>-domains` by host name. */
    declare public readonly perHost: Record<string, pulumi.Resource>;
    /** Every domain defined on every host. */
    declare public readonly defined: pulumi.Resource;
    /** `<xmlDir>/<guest>.xml` by guest name. */
    declare public readonly xmlPaths: Record<string, string>;

    constructor(name: string, args: DomainsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:Domains", name, {}, opts);
        // One text for every host (each script decides from the placement field what it writes): built once.
        const bundle = domainsBundle(args.domains);
        const perHost: Record<string, pulumi.Resource> = {};
        for (const h of args.hosts) {
            perHost[h.name] = runOn(
                h.machine,
                `${h.name}-${name}`,
                { ...domainsScripts(args.lab, { host: h.name, xmlDir: args.xmlDir.path, xmlDirShared: args.xmlDir.shared }), stdin: bundle },
                { parent: this, dependsOn: h.ready },
            );
        }
        const defined = runOn(
            PULUMI_MACHINE,
            `${name}-defined`,
            { create: ":", delete: ":" },
            { parent: this, dependsOn: Object.values(perHost) },
        );
        this.perHost = perHost;
        this.defined = defined;
        this.xmlPaths = Object.fromEntries(args.domains.map((d) => [d.name, domainXmlPath(args.xmlDir.path, d.name)]));
        this.registerOutputs({});
    }
}
