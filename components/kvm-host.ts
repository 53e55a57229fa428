/**
 * KvmHost: prepares one KVM host of a lab — packages (optional), libvirtd running, the bridge, the bridge-netfilter
 * sysctls, the lab's firewall chains and the lab's own fence_virtd instance.
 */
import * as pulumi from "@pulumi/pulumi";
import { runOn, type Machine } from "./machine";
import { renderFenceVirtConf } from "./render/fence-virt-conf";
import { renderFirewall } from "./render/firewall";
import { renderSysctl } from "./render/sysctl";
import {
    bridgeScripts,
    fenceVirtdScripts,
    firewallScripts,
    libvirtdScripts,
    packagesScripts,
    sysctlScripts,
} from "./scripts";
import type { HostSpec, LabSpec } from "./spec";

export interface KvmHostArgs {
    spec: LabSpec;
    host: HostSpec;
    machine: Machine;
    /** The fence key file on this host: fence_virtd never starts without it. */
    fenceKey: pulumi.Resource;
    /** Changes when the key is rotated, so fence_virtd restarts with the new key. */
    keyVersion: number;
}

export class KvmHost extends pulumi.ComponentResource {
    /** Host prerequisites other components wait for: libvirtd running and the bridge up. */
    declare public readonly ready: pulumi.Resource[];
    /** The lab's fence_virtd instance on this host. */
    declare public readonly fenceVirtd: pulumi.Resource;
    /** The rendered fence_virt.conf and firewall, for outputs and review. */
    declare public readonly fenceVirtConf: string;
    declare public readonly firewallRules: string;

    constructor(name: string, args: KvmHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:KvmHost", name, {}, opts);
        const { spec, host, machine } = args;
        const lab = spec.lab;
        const parent = { parent: this };

        const packages = host.installPackages
            ? [runOn(machine, `${name}-packages`, packagesScripts(lab), parent)]
            : [];
        const after = (deps: pulumi.Resource[]) => ({ parent: this, dependsOn: [...packages, ...deps] });

        const libvirtd = runOn(machine, `${name}-libvirtd`, libvirtdScripts(lab), after([]));
        const bridge = runOn(machine, `${name}-bridge`, bridgeScripts(lab, host.bridge), after([]));
        const sysctlText = renderSysctl();
        const sysctl = runOn(machine, `${name}-sysctl`, { ...sysctlScripts(lab), stdin: sysctlText }, after([bridge]));
        const firewallRules = renderFirewall(spec, host, { clusteredHost: spec.hostCluster !== undefined });
        const firewall = runOn(machine, `${name}-firewall`, { ...firewallScripts(lab), stdin: firewallRules }, after([bridge]));
        const fenceVirtConf = renderFenceVirtConf(spec, host);
        const fenceVirtd = runOn(
            machine,
            `${name}-fence-virtd`,
            {
                ...fenceVirtdScripts(lab, {
                    keyFile: spec.guestCluster.fencing.keyFile,
                    port: spec.guestCluster.fencing.multicast.port,
                }),
                stdin: fenceVirtConf,
                // A new key replaces the instance: stopped, then started with the new key.
                triggers: [args.keyVersion],
            },
            after([args.fenceKey, libvirtd, bridge, firewall, sysctl]),
        );

        this.ready = [libvirtd, bridge];
        this.fenceVirtd = fenceVirtd;
        this.fenceVirtConf = fenceVirtConf;
        this.firewallRules = firewallRules;
        this.registerOutputs({ fenceVirtConf, firewallRules });
    }
}
