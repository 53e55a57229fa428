/**
 * ClusterConf: renders the guest cluster's cluster.conf (and the host cluster's, when there is one), keeps each
 * file's config_version, and delivers each to the cluster nodes that have a connection, after every domain is
 * defined on every host (a cluster must never reference a domain a host does not know). The guest cluster's
 * anti-affinity guard scripts go to its nodes before the cluster.conf that refers to them.
 *
 * config_version, derived and kept (issue 4, item 3):
 *   content  = the rendered file with config_version omitted (renderXClusterConf(spec, { configVersion: undefined }))
 *   counter  = a local command `<name>-<cluster>-version` on the machine running pulumi, with input
 *              environment KVMLAB_CONTENT_SHA256 = sha256(content) (a secret when the content carries passwords);
 *              its `create` prints 1, its `update` prints PULUMI_COMMAND_STDOUT + 1 (the previous number, which
 *              @pulumi/command passes to update), so the number lives in the Pulumi state.
 *   file     = the content rendered with config_version = counter.
 * A change of the rendered content changes the hash, an input of the counter, so the engine runs `update`: +1. An
 * unchanged content leaves every input as it was: no step runs and the number (and the file, and its deliveries)
 * stay the same, so a no-op `pulumi up` changes nothing. cman only loads a higher version, which this guarantees.
 *
 * Delivery (components/scripts/cluster-conf-deliver.ts): every node but the first gets the file (validated on the
 * node, backed up, atomically replaced); then the first node gets it and runs `cman_tool version -r -S`, so cman
 * reloads only once every member has the new file.
 *
 * A cluster of the Pacemaker stack (`stack: pacemaker`) gets, instead (components/scripts/pacemaker-deliver.ts), on
 * every node: the cluster's corosync authkey (256 random bytes, a secret of the program's state, one per cluster, on
 * stdin only, 0400), then corosync.conf, then corosync and pacemaker started; then, on the first node once every node
 * runs them, the CIB's configuration loaded with `cibadmin --replace --scope configuration`. No counter: Pacemaker
 * versions the CIB itself (epoch). The rendered files are inputs (stdin) of these commands, so an unchanged file
 * changes nothing on `pulumi up`, and a changed CIB is replaced in place (resources it keeps keep running). The
 * outputs `guestClusterConf`/`hostClusterConf` carry the cluster's CIB then (secret when it holds fence passwords).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { runOn, type Machine } from "./machine";
import { guardFiles, guardResourceName, type GuardFile } from "./render/anti-affinity-guard";
import { renderGuestClusterConf, renderHostClusterConf } from "./render/cluster-conf";
import { renderGuestCorosyncConf, renderHostCorosyncConf } from "./render/corosync-conf";
import { renderGuestCib, renderHostCib } from "./render/pacemaker-cib";
import { fileScripts } from "./scripts";
import { CLUSTER_CONF_PATH, clusterConfDeliverScripts, clusterConfDeliverStdin } from "./scripts/cluster-conf-deliver";
import {
    COROSYNC_AUTHKEY_BYTES,
    cibConfiguration,
    cibLoadScripts,
    clusterStackScripts,
    corosyncAuthkeyScripts,
    corosyncConfScripts,
} from "./scripts/pacemaker-deliver";
import type { LabSpec } from "./spec";

export { CLUSTER_CONF_PATH };

/** The project's cluster.conf schema, sent to the nodes with every file (xmllint checks against it there). */
export const CLUSTER_CONF_SCHEMA_FILE = join(__dirname, "..", "schema", "cluster-conf.rng");

/** The environment variable of the version counter that carries the content hash. */
export const CONTENT_HASH_VARIABLE = "KVMLAB_CONTENT_SHA256";

/**
 * The config_version counter's scripts (run by /bin/sh on the machine running pulumi). `update` refuses a previous
 * output that is not a number rather than restart from 1, which cman would refuse to load.
 */
export const CONFIG_VERSION_SCRIPTS = {
    create: "echo 1",
    update:
        'case "${PULUMI_COMMAND_STDOUT:-}" in\n' +
        "    ''|*[!0-9]*) echo \"kvm-ha-lab: the previous config_version '${PULUMI_COMMAND_STDOUT:-}' is not a number; the counter cannot go on from it\" >&2; exit 1 ;;\n" +
        "esac\n" +
        "echo $((PULUMI_COMMAND_STDOUT + 1))",
    delete: ":",
} as const;

/** The machine running pulumi: where the counters run. */
const PULUMI_MACHINE: Machine = { name: "the machine running pulumi", connection: { kind: "local" } };

export function contentSha256(text: string): string {
    return createHash("sha256").update(text).digest("hex");
}

/**
 * The counter's stdout as a config_version. An empty stdout happens only under resource mocks (which do not run
 * the command); the engine always has the output of `create` ("1") or `update`, so it is read as 1.
 */
export function parseConfigVersion(stdout: string): number {
    const text = stdout.trim();
    if (text === "") return 1;
    if (!/^[1-9][0-9]{0,9}$/.test(text)) throw new Error(`kvm-ha-lab: the config_version counter printed ${JSON.stringify(stdout)}, not a positive integer`);
    return Number(text);
}

/** The guest cluster's files: cman's cluster.conf (rendered for a config_version) and guards, or Pacemaker's. */
export type GuestClusterFiles =
    | { stack: "cman"; render: (configVersion: number | undefined) => string; guards: GuardFile[] }
    | {
          stack: "pacemaker";
          corosyncConf: string;
          cib: string;
          /** Files the cluster's resources read, which other commands deliver at the same time (the fence key). */
          requireFiles: string[];
      };

/** The host cluster's files: cman's cluster.conf or Pacemaker's, both rendered with the fence devices' passwords. */
export type HostClusterFiles =
    | { stack: "cman"; render: (configVersion: number | undefined, passwords: Record<string, string>) => string }
    | { stack: "pacemaker"; corosyncConf: string; cib: (passwords: Record<string, string>) => string };

type CmanGuestFiles = Extract<GuestClusterFiles, { stack: "cman" }>;
type PacemakerGuestFiles = Extract<GuestClusterFiles, { stack: "pacemaker" }>;
type CmanHostFiles = Extract<HostClusterFiles, { stack: "cman" }>;
type PacemakerHostFiles = Extract<HostClusterFiles, { stack: "pacemaker" }>;

/** A cman cluster's cluster.conf and its config_version. */
interface CmanConf {
    conf: pulumi.Output<string>;
    version: pulumi.Output<number>;
}

/** What ClusterConf delivers for a lab: its clusters' files, bound to the spec's renderers. */
export function clusterFiles(spec: LabSpec): { guest: GuestClusterFiles; host?: HostClusterFiles } {
    const key = spec.guestCluster.fencing.keyFile;
    const guest: GuestClusterFiles =
        spec.guestCluster.stack === "cman"
            ? { stack: "cman", render: (configVersion) => renderGuestClusterConf(spec, { configVersion }), guards: guardFiles(spec) }
            : // the stonith resources read the fence key, which FenceKey installs at the same time: each node waits for it
              { stack: "pacemaker", corosyncConf: renderGuestCorosyncConf(spec), cib: renderGuestCib(spec), requireFiles: /\s/.test(key) ? [] : [key] };
    const hc = spec.hostCluster;
    if (hc === undefined) return { guest };
    const host: HostClusterFiles =
        hc.stack === "cman"
            ? { stack: "cman", render: (configVersion, passwords) => renderHostClusterConf(spec, { configVersion, passwords }) }
            : { stack: "pacemaker", corosyncConf: renderHostCorosyncConf(spec), cib: (passwords) => renderHostCib(spec, { passwords }) };
    return { guest, host };
}

export interface ClusterConfArgs {
    /** The lab (state directory on each node). */
    lab: string;
    guest: GuestClusterFiles;
    /** The host cluster's files, when there is a host cluster. */
    host?: HostClusterFiles;
    /** Guest cluster nodes reachable over SSH. */
    guestNodes: Machine[];
    /** Host cluster nodes (the hosts), when there is a host cluster. */
    hostNodes: Machine[];
    /** Fence device passwords of the host cluster by device name (secrets). */
    passwords: Record<string, pulumi.Input<string>>;
    /** Every domain defined on every host: a cluster must never reference a domain a host does not know. */
    domainsDefined: pulumi.Resource[];
    /**
     * Per guest node, what must exist before anything is delivered to it: its domain started (when the program starts
     * it). Deliveries then also go before the stop on destroy, while the guest can still be reached.
     */
    nodeReady?: Record<string, pulumi.Resource[]>;
}

export class ClusterConf extends pulumi.ComponentResource {
    /** The guest cluster's cluster.conf (cman), or its CIB (pacemaker). */
    declare public readonly guestClusterConf: pulumi.Output<string>;
    /** cman only: the guest cluster.conf's config_version. */
    declare public readonly guestConfigVersion: pulumi.Output<number> | undefined;
    /** Secret when it carries fence device passwords. */
    declare public readonly hostClusterConf: pulumi.Output<string> | undefined;
    declare public readonly hostConfigVersion: pulumi.Output<number> | undefined;

    constructor(name: string, args: ClusterConfArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:ClusterConf", name, {}, opts);
        const { guest, host } = args;
        const schema = readFileSync(CLUSTER_CONF_SCHEMA_FILE, "utf8");

        // ---- guest cluster: cman (counter, guards, cluster.conf) or pacemaker (authkey, corosync.conf, stack, CIB)
        const cmanGuest = guest.stack === "cman" ? this.cmanGuest(name, args, guest, schema) : undefined;
        const guestClusterConf = guest.stack === "cman" ? cmanGuest!.conf : this.pacemakerGuest(name, args, guest);
        const guestConfigVersion = cmanGuest?.version;

        // ---- host cluster, when there is one
        const cmanHost = host?.stack === "cman" ? this.cmanHost(name, args, host, schema) : undefined;
        const hostClusterConf = host?.stack === "pacemaker" ? this.pacemakerHost(name, args, host) : cmanHost?.conf;
        const hostConfigVersion = cmanHost?.version;

        this.guestClusterConf = guestClusterConf;
        this.guestConfigVersion = guestConfigVersion;
        this.hostClusterConf = hostClusterConf;
        this.hostConfigVersion = hostConfigVersion;
        this.registerOutputs({ guestClusterConf, guestConfigVersion, hostClusterConf, hostConfigVersion });
    }

    /** The cman guest cluster: counter, guards, cluster.conf delivered. */
    private cmanGuest(name: string, args: ClusterConfArgs, files: CmanGuestFiles, schema: string): CmanConf {
        const guestCounter = this.counter(`${name}-guest-version`, contentSha256(files.render(undefined)));
        const guestConfigVersion = pulumi.unsecret(guestCounter.apply(parseConfigVersion));
        // The guest cluster's file carries no secret (its fence agents authenticate with the key file).
        const guestClusterConf = pulumi.unsecret(guestConfigVersion.apply((configVersion) => files.render(configVersion)));
        const guards = files.guards;
        const guardsOn = new Map<string, pulumi.Resource[]>();
        for (const node of args.guestNodes) {
            guardsOn.set(
                node.name,
                guards.map((g) =>
                    runOn(
                        node,
                        `${name}-guest-${node.name}-guard-${g.service}`,
                        { ...fileScripts(args.lab, { id: guardResourceName(g.service), path: g.path, mode: "0755" }), stdin: g.text },
                        { parent: this, dependsOn: args.nodeReady?.[node.name] ?? [] },
                    ),
                ),
            );
        }
        const guestDeps = new Map(args.guestNodes.map((n) => [n.name, [...(args.nodeReady?.[n.name] ?? []), ...(guardsOn.get(n.name) ?? [])]]));
        this.deliver(`${name}-guest`, args.lab, "guest-cluster-conf", args.guestNodes, guestClusterConf, schema, false, args.domainsDefined, guestDeps);
        return { conf: guestClusterConf, version: guestConfigVersion };
    }

    /** The cman host cluster: counter, cluster.conf (a secret when it carries fence passwords) delivered to the hosts. */
    private cmanHost(name: string, args: ClusterConfArgs, files: CmanHostFiles, schema: string): CmanConf {
        const names = Object.keys(args.passwords).sort();
        const passwords = pulumi
            .all(names.map((n) => args.passwords[n]))
            .apply((values) => Object.fromEntries(names.map((n, i) => [n, values[i]])) as Record<string, string>);
        const secret = names.length > 0;
        const hash = passwords.apply((pw) => contentSha256(files.render(undefined, pw)));
        const version = this.counter(`${name}-host-version`, secret ? pulumi.secret(hash) : hash).apply(parseConfigVersion);
        let conf = pulumi.all([version, passwords]).apply(([configVersion, pw]) => files.render(configVersion, pw));
        if (secret) conf = pulumi.secret(conf);
        this.deliver(`${name}-host`, args.lab, "host-cluster-conf", args.hostNodes, conf, schema, secret, args.domainsDefined, new Map());
        return { conf, version };
    }

    /** The Pacemaker guest cluster: its CIB (no secret in it: the fence agents authenticate with the key file). */
    private pacemakerGuest(name: string, args: ClusterConfArgs, files: PacemakerGuestFiles): pulumi.Output<string> {
        const cib = pulumi.output(files.cib);
        const deps = new Map(args.guestNodes.map((n) => [n.name, args.nodeReady?.[n.name] ?? []]));
        this.deliverPacemaker(`${name}-guest`, args.lab, "guest-pacemaker", args.guestNodes, files.corosyncConf, cib, false, args.domainsDefined, deps, files.requireFiles);
        return cib;
    }

    /** The Pacemaker host cluster: its CIB carries the fence devices' passwords (then a secret). */
    private pacemakerHost(name: string, args: ClusterConfArgs, files: PacemakerHostFiles): pulumi.Output<string> {
        const names = Object.keys(args.passwords).sort();
        const secret = names.length > 0;
        let cib = pulumi
            .all(names.map((n) => args.passwords[n]))
            .apply((values) => files.cib(Object.fromEntries(names.map((n, i) => [n, values[i]]))));
        if (secret) cib = pulumi.secret(cib);
        this.deliverPacemaker(`${name}-host`, args.lab, "host-pacemaker", args.hostNodes, files.corosyncConf, cib, secret, args.domainsDefined, new Map());
        return cib;
    }

    /**
     * Delivers a Pacemaker cluster to `nodes` (see the header): per node the authkey, corosync.conf and the running
     * stack; then the CIB on the first node, after every node runs the stack.
     */
    private deliverPacemaker(
        prefix: string,
        lab: string,
        id: string,
        nodes: Machine[],
        corosyncConf: string,
        cib: pulumi.Output<string>,
        secret: boolean,
        domainsDefined: pulumi.Resource[],
        extraDeps: Map<string, pulumi.Resource[]>,
        requireFiles: string[] = [],
    ): void {
        if (nodes.length === 0) return;
        const key = new random.RandomBytes(`${prefix}-corosync-key`, { length: COROSYNC_AUTHKEY_BYTES }, { parent: this });
        // RandomBytes marks base64 secret under the engine; wrapping again keeps it secret whatever the provider does.
        const keyBase64 = pulumi.secret(key.base64);
        const running = nodes.map((node) => {
            const after = [...domainsDefined, ...(extraDeps.get(node.name) ?? [])];
            const authkey = runOn(
                node,
                `${prefix}-${node.name}-authkey`,
                { ...corosyncAuthkeyScripts(lab, { id }), stdin: keyBase64, secret: true },
                { parent: this, dependsOn: after },
            );
            const conf = runOn(node, `${prefix}-${node.name}-corosync-conf`, { ...corosyncConfScripts(lab, { id }), stdin: corosyncConf }, { parent: this, dependsOn: after });
            return runOn(node, `${prefix}-${node.name}-stack`, clusterStackScripts(lab, { id, requireFiles }), { parent: this, dependsOn: [authkey, conf] });
        });
        const stdin = cib.apply(cibConfiguration);
        runOn(
            nodes[0],
            `${prefix}-${nodes[0].name}-cib`,
            { ...cibLoadScripts(lab, { id }), stdin: secret ? pulumi.secret(stdin) : stdin, secret },
            { parent: this, dependsOn: running },
        );
    }

    /** The config_version counter of one cluster (see the header); returns its stdout. */
    private counter(name: string, contentHash: pulumi.Input<string>): pulumi.Output<string> {
        const command = runOn(
            PULUMI_MACHINE,
            name,
            { ...CONFIG_VERSION_SCRIPTS, environment: { [CONTENT_HASH_VARIABLE]: contentHash } },
            { parent: this },
        );
        return command.stdout;
    }

    /**
     * Delivers `conf` to `nodes`: every node but the first without reloading cman, then the first node, which
     * depends on the others' deliveries and reloads cman once all of them have the file.
     */
    private deliver(
        prefix: string,
        lab: string,
        id: string,
        nodes: Machine[],
        conf: pulumi.Output<string>,
        schema: string,
        secret: boolean,
        domainsDefined: pulumi.Resource[],
        extraDeps: Map<string, pulumi.Resource[]>,
    ): void {
        if (nodes.length === 0) return;
        const stdin = conf.apply((text) => clusterConfDeliverStdin(text, schema));
        const one = (node: Machine, reload: boolean, after: pulumi.Resource[]) =>
            runOn(
                node,
                `${prefix}-${node.name}`,
                { ...clusterConfDeliverScripts(lab, { id, reload }), stdin: secret ? pulumi.secret(stdin) : stdin, secret },
                { parent: this, dependsOn: [...domainsDefined, ...(extraDeps.get(node.name) ?? []), ...after] },
            );
        const others = nodes.slice(1).map((node) => one(node, false, []));
        one(nodes[0], true, others);
    }
}
