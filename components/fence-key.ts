/**
 * FenceKey: one 4096-byte random key (a Pulumi secret) installed as a 0400 root file on every host and every guest
 * that has a connection. The key travels on stdin only (base64, decoded on the machine); the command's logging is
 * off and its outputs are secret. Never written to a shared filesystem: the install script refuses one.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { runOn, type Machine } from "./machine";
import { fileScripts } from "./scripts";

/** fence_xvm's own example uses 4096 bytes from /dev/urandom (the fence_xvm notes). */
export const FENCE_KEY_BYTES = 4096;

/** A machine that gets the key, and what must be done there first. */
export interface FenceKeyTarget {
    machine: Machine;
    /**
     * What the install waits for: a host's claim (and packages), a guest's running OS (its sshd answers: guests are
     * started after the hosts, whose fence_virtd needs the key first).
     */
    after: pulumi.Resource[];
}

export interface FenceKeyArgs {
    /** The lab (state directory on each machine). */
    lab: string;
    /** Absolute path of the key on every machine. */
    keyFile: string;
    /** Rotation counter: a new value generates a new key. */
    version: number;
    /** Every machine that gets the key, in the lab's order (one `<name>-<machine>` command each). */
    targets: FenceKeyTarget[];
}

export class FenceKey extends pulumi.ComponentResource {
    /** The key, base64-encoded: a secret. */
    declare public readonly keyBase64: pulumi.Output<string>;
    /** The key file command per machine name. */
    declare public readonly installed: Record<string, pulumi.Resource>;

    constructor(name: string, args: FenceKeyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:FenceKey", name, {}, opts);
        const bytes = new random.RandomBytes(
            `${name}-bytes`,
            { length: FENCE_KEY_BYTES, keepers: { version: String(args.version) } },
            { parent: this },
        );
        // RandomBytes marks base64 secret under the engine; wrapping again keeps it secret whatever the provider does.
        const keyBase64 = pulumi.secret(bytes.base64);
        const installed: Record<string, pulumi.Resource> = {};
        for (const { machine, after } of args.targets) {
            if (installed[machine.name]) throw new Error(`kvm-ha-lab: the fence key is already installed on ${machine.name}`);
            installed[machine.name] = runOn(
                machine,
                `${name}-${machine.name}`,
                {
                    ...fileScripts(args.lab, {
                        id: "fence-key",
                        path: args.keyFile,
                        mode: "0400",
                        owner: "root",
                        decodeBase64: true,
                        refuseSharedFs: true,
                        sizeBytes: FENCE_KEY_BYTES,
                    }),
                    stdin: keyBase64,
                    secret: true,
                    triggers: [args.version],
                },
                { parent: this, dependsOn: after },
            );
        }
        this.keyBase64 = keyBase64;
        this.installed = installed;
        this.registerOutputs({ keyBase64 });
    }
}
