/**
 * kvm-ha-lab: the Pulumi program. The only reader of `pulumi.Config`: it reads the stack's config, validates all of
 * it before any resource is registered (components/config.ts), then builds the lab (components/lab.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_KEYS, ConfigError, PROJECT, referencedSecrets, validateLabConfig } from "./components/config";
import { createLab } from "./components/lab";
import { splitConfig } from "./components/stack-file";
import { existsSync, readFileSync } from "node:fs";

function parseValue(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}

const config = new pulumi.Config(PROJECT);
const all = Object.fromEntries(Object.entries(pulumi.runtime.allConfig()).map(([k, v]) => [k, parseValue(v)]));
// Keys this program reads as structure are plain; any other key of the namespace can only be a secret some field
// names (validation rejects it otherwise). Secret values are never read here: only their names.
const known = new Set(CONFIG_KEYS.map((k) => `${PROJECT}:${k}`));
const { raw, secretKeys } = splitConfig(all, (key) => !known.has(key));

/**
 * A bad config is the user's input, not a crash: as a pulumi.RunError the engine prints just its problems; any other
 * error thrown by the program is printed as "unhandled exception" with its stack trace.
 */
function userInput<T>(validate: () => T): T {
    try {
        return validate();
    } catch (e) {
        throw e instanceof ConfigError ? new pulumi.RunError(e.message) : e;
    }
}

const spec = userInput(() => validateLabConfig(raw, {
    stack: pulumi.getStack(),
    secretKeys,
    readFile: (path) => {
        try {
            return readFileSync(path, "utf8");
        } catch {
            return undefined;
        }
    },
    exists: (path) => existsSync(path),
}));

const secrets = Object.fromEntries(referencedSecrets(spec).map((name) => [name, config.requireSecret(name)]));
const lab = createLab(spec, secrets);

export const labName = spec.lab;
export const hosts = spec.hosts.map((h) => h.name);
/** Domain XML path of every guest. */
export const guests = Object.fromEntries(Object.entries(lab.guests).map(([name, g]) => [name, g.xmlPath]));
export const guestClusterConf = lab.clusterConf.guestClusterConf;
export const hostClusterConf = lab.clusterConf.hostClusterConf;
export const fenceKeyFile = spec.guestCluster.fencing.keyFile;
/**
 * The lab's own SSH key pair (when a guest boots with a cloud-init seed): log in with
 *   pulumi stack output --show-secrets labSshPrivateKey > lab.key && chmod 600 lab.key && ssh -i lab.key root@<address>
 */
export const labSshPrivateKey = lab.sshKey?.privateKeyOpenssh;
export const labSshPublicKey = lab.sshKey?.publicKeyOpenssh;
/** Each guest's address for `ssh root@<address>` (guests reached over SSH). */
export const guestSshAddresses = Object.fromEntries(spec.guests.flatMap((g) => (g.connection ? [[g.name, g.connection.address]] : [])));
