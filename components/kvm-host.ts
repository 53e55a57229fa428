/**
 * KvmHost: prepares one KVM host of a lab — packages (optional), libvirtd running, the bridge, the bridge-netfilter
 * sysctls, the lab's firewall chains and the lab's own fence_virtd instance.
 */
import * as pulumi from "@pulumi/pulumi";
import { runOn, withLibrary, type Machine } from "./machine";
import { renderSysctl } from "./render/sysctl";
import { fencePortClaim } from "./scripts/claim";
import type { FenceVirtdProtocol } from "./scripts/fence-virtd";
import {
    bridgeScripts,
    claimScripts,
    fenceVirtdScripts,
    firewallScripts,
    libvirtdScripts,
    packagesScripts,
    sysctlScripts,
} from "./scripts";
import type { FencingSpec, HostSpec } from "./spec";

/** fence_virtd's listening socket for the lab's listener: its kind and port. */
export function fenceVirtdSocket(fencing: FencingSpec): { protocol: FenceVirtdProtocol; port: number } {
    switch (fencing.listener) {
        case "multicast":
            return { protocol: "udp", port: fencing.multicast.port };
        case "tcp":
            return { protocol: "tcp", port: fencing.tcp.port };
        case "vsock":
            return { protocol: "vsock", port: fencing.vsock.port };
        default: {
            const unreachable: never = fencing.listener;
            throw new Error(`unknown fence_virtd listener ${JSON.stringify(unreachable)}`);
        }
    }
}

export interface KvmHostArgs {
    /** The lab (state directory, firewall chains, fence_virtd instance) and its stack (named in the claims). */
    lab: string;
    stack: string;
    /** The host's bridge and whether its packages are installed. */
    host: Pick<HostSpec, "bridge" | "installPackages">;
    machine: Machine;
    /** The guest cluster's fencing: fence_virtd's listener and port, the key file, the key's version. */
    fencing: FencingSpec;
    /**
     * The fence key's file on this host (FenceKey installs it after `claimed`): fence_virtd starts after it, never
     * without it. A promise: the lab makes the key's installs once every machine exists.
     */
    keyInstalled: pulumi.Input<pulumi.Resource>;
    /** The host's fence_virt.conf and firewall rules, as the lab rendered them. */
    fenceVirtConf: string;
    firewallRules: string;
}

export class KvmHost extends pulumi.ComponentResource {
    /** Host prerequisites other components wait for: libvirtd running and the bridge up. */
    declare public readonly ready: pulumi.Resource[];
    /** The lab's claim on this host (and its packages): what the fence key's install here waits for. */
    declare public readonly claimed: pulumi.Resource[];
    /** The lab's fence_virtd instance on this host. */
    declare public readonly fenceVirtd: pulumi.Resource;
    /** The host with the script library installed: what every command on it runs through. */
    declare public readonly machine: Machine;
    /** The rendered fence_virt.conf and firewall, for outputs and review. */
    declare public readonly fenceVirtConf: string;
    declare public readonly firewallRules: string;

    constructor(name: string, args: KvmHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:KvmHost", name, {}, opts);
        const { lab, host, fencing, fenceVirtConf, firewallRules } = args;
        const parent = { parent: this };
        // The shared shell functions every script of the lab on this host sources, installed before any of them.
        const machine = withLibrary(args.machine, lab, name, parent);

        // First, on its own: the lab claims its bridge, fence port and key file on this host, or stops the apply
        // before anything changes when another lab there already uses one of them.
        const socket = fenceVirtdSocket(fencing);
        const claim = runOn(
            machine,
            `${name}-claim`,
            claimScripts(lab, args.stack, [
                { kind: "bridge", value: host.bridge.name },
                fencePortClaim(socket.protocol, socket.port),
                { kind: "key-file", value: fencing.keyFile },
            ]),
            parent,
        );
        const packages = host.installPackages
            ? [runOn(machine, `${name}-packages`, packagesScripts(lab, fencing.listener), { parent: this, dependsOn: [claim] })]
            : [];
        const after = (deps: pulumi.Input<pulumi.Resource>[]) => ({ parent: this, dependsOn: [claim, ...packages, ...deps] });

        const libvirtd = runOn(machine, `${name}-libvirtd`, libvirtdScripts(lab), after([]));
        const bridge = runOn(machine, `${name}-bridge`, bridgeScripts(lab, host.bridge), after([]));
        const sysctlText = renderSysctl();
        const sysctl = runOn(machine, `${name}-sysctl`, { ...sysctlScripts(lab), stdin: sysctlText }, after([bridge]));
        const firewall = runOn(machine, `${name}-firewall`, { ...firewallScripts(lab), stdin: firewallRules }, after([bridge]));
        const fenceVirtd = runOn(
            machine,
            `${name}-fence-virtd`,
            {
                ...fenceVirtdScripts(lab, { keyFile: fencing.keyFile, port: socket.port, protocol: socket.protocol }),
                stdin: fenceVirtConf,
                // A new key replaces the instance: stopped, then started with the new key.
                triggers: [fencing.keyVersion],
            },
            after([args.keyInstalled, libvirtd, bridge, firewall, sysctl]),
        );

        this.machine = machine;
        this.ready = [claim, libvirtd, bridge];
        this.claimed = [claim, ...packages];
        this.fenceVirtd = fenceVirtd;
        this.fenceVirtConf = fenceVirtConf;
        this.firewallRules = firewallRules;
        this.registerOutputs({ fenceVirtConf, firewallRules });
    }
}
