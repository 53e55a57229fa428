/**
 * ClusterConf: renders the guest cluster's cluster.conf (and the host cluster's, when there is one) and delivers each
 * to the cluster nodes that have a connection, after every domain is defined on every host.
 */
import * as pulumi from "@pulumi/pulumi";
import { runOn, type Machine } from "./machine";
import { renderGuestClusterConf, renderHostClusterConf } from "./render/cluster-conf";
import { fileScripts } from "./scripts";
import type { LabSpec } from "./spec";

export const CLUSTER_CONF_PATH = "/etc/cluster/cluster.conf";

export interface ClusterConfArgs {
    spec: LabSpec;
    /** Guest cluster nodes reachable over SSH. */
    guestNodes: Machine[];
    /** Host cluster nodes (the hosts), when there is a host cluster. */
    hostNodes: Machine[];
    /** Fence device passwords of the host cluster by device name (secrets). */
    passwords: Record<string, pulumi.Input<string>>;
    /** cluster.conf's config_version. */
    configVersion: number;
    /** Every domain defined on every host: a cluster must never reference a domain a host does not know. */
    domainsDefined: pulumi.Resource[];
}

export class ClusterConf extends pulumi.ComponentResource {
    declare public readonly guestClusterConf: string;
    /** Secret when it carries fence device passwords. */
    declare public readonly hostClusterConf: pulumi.Output<string> | undefined;

    constructor(name: string, args: ClusterConfArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:ClusterConf", name, {}, opts);
        const { spec } = args;
        const guestClusterConf = renderGuestClusterConf(spec, { configVersion: args.configVersion });
        for (const node of args.guestNodes) {
            runOn(
                node,
                `${name}-guest-${node.name}`,
                { ...fileScripts(spec.lab, { id: "guest-cluster-conf", path: CLUSTER_CONF_PATH, mode: "0640" }), stdin: guestClusterConf },
                { parent: this, dependsOn: args.domainsDefined },
            );
        }

        let hostClusterConf: pulumi.Output<string> | undefined;
        if (spec.hostCluster) {
            const names = Object.keys(args.passwords).sort();
            hostClusterConf = pulumi
                .all(names.map((n) => args.passwords[n]))
                .apply((values) =>
                    renderHostClusterConf(spec, {
                        configVersion: args.configVersion,
                        passwords: Object.fromEntries(names.map((n, i) => [n, values[i]])),
                    }),
                );
            const secret = names.length > 0;
            for (const node of args.hostNodes) {
                runOn(
                    node,
                    `${name}-host-${node.name}`,
                    {
                        ...fileScripts(spec.lab, { id: "host-cluster-conf", path: CLUSTER_CONF_PATH, mode: "0640" }),
                        stdin: hostClusterConf,
                        secret,
                    },
                    { parent: this, dependsOn: args.domainsDefined },
                );
            }
        }

        this.guestClusterConf = guestClusterConf;
        this.hostClusterConf = hostClusterConf;
        this.registerOutputs({ guestClusterConf, hostClusterConf });
    }
}
