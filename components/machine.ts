/**
 * The one place that decides how a command reaches a machine: `local.Command` for the machine running pulumi,
 * `remote.Command` over SSH for everything else. Components call `runOn` and never care which.
 *
 * Every command runs its script with POSIX sh, takes file contents (and secrets) on stdin only, and is replaced by
 * delete-then-create (`deleteBeforeReplace`): host scripts manage fixed paths, so a create-before-delete replacement
 * would let the old delete remove what the new create just wrote.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { Connection } from "./spec";

/** A machine commands run on: a KVM host or a guest's operating system. */
export interface Machine {
    /** Host or guest name, for messages. */
    name: string;
    connection: Connection;
    /** The SSH private key (a secret) when connection.kind is "ssh". */
    privateKey?: pulumi.Input<string>;
}

export interface RunArgs {
    create: string;
    /**
     * Run instead of `create` when an input changes (stdin, environment, the scripts). @pulumi/command sets
     * PULUMI_COMMAND_STDOUT/STDERR to the previous run's output for it. @default create runs again
     */
    update?: string;
    delete: string;
    /**
     * Extra environment variables, for commands on the machine running pulumi only (sshd drops them unless its
     * AcceptEnv lists them). Never a secret itself (a hash of one is fine): a process environment is readable by its user.
     */
    environment?: Record<string, pulumi.Input<string>>;
    /** File content (or a secret) fed to both create and delete on stdin. */
    stdin?: pulumi.Input<string>;
    /** Changing any trigger replaces the command: its delete runs, then its create. */
    triggers?: pulumi.Input<unknown>[];
    /**
     * True when stdin carries a secret: output streaming is turned off and stdout/stderr are stored as secrets.
     * (A failing command's error still carries its output, so secret scripts never print the secret.)
     */
    secret?: boolean;
}

/** How many times remote commands retry a refused/failed SSH dial before failing (a guest may still be booting). */
export const SSH_DIAL_ERROR_LIMIT = 20;

/** Quotes a string for a POSIX shell as one single-quoted word. */
export function shellQuote(text: string): string {
    return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * Wraps a script for a remote login shell: root's login shell may not be POSIX sh (csh, fish), so the script is
 * passed to `sh -c` as one quoted word.
 */
export function remoteScript(script: string): string {
    return `exec /bin/sh -c ${shellQuote(script)}`;
}

export function runOn(
    machine: Machine,
    name: string,
    args: RunArgs,
    opts: pulumi.CustomResourceOptions,
): command.local.Command | command.remote.Command {
    const options: pulumi.CustomResourceOptions = {
        deleteBeforeReplace: true,
        ...(args.secret ? { additionalSecretOutputs: ["stdout", "stderr"] } : {}),
        ...opts,
    };
    const logging = args.secret ? "none" : "stdoutAndStderr";
    const conn = machine.connection;
    switch (conn.kind) {
        case "local":
            return new command.local.Command(
                name,
                {
                    create: args.create,
                    ...(args.update !== undefined ? { update: args.update } : {}),
                    delete: args.delete,
                    ...(args.environment !== undefined ? { environment: args.environment } : {}),
                    stdin: args.stdin,
                    triggers: args.triggers,
                    interpreter: ["/bin/sh", "-c"],
                    logging,
                },
                options,
            );
        case "ssh":
            if (args.environment !== undefined) {
                throw new Error(`kvm-ha-lab: ${name}: environment variables are only passed to commands on the machine running pulumi, not over SSH to ${machine.name}`);
            }
            if (machine.privateKey === undefined) {
                throw new Error(`kvm-ha-lab: machine ${machine.name} is reached over SSH but no private key was given`);
            }
            return new command.remote.Command(
                name,
                {
                    connection: {
                        host: conn.address,
                        port: conn.port,
                        user: conn.user,
                        privateKey: machine.privateKey,
                        dialErrorLimit: SSH_DIAL_ERROR_LIMIT,
                    },
                    create: remoteScript(args.create),
                    ...(args.update !== undefined ? { update: remoteScript(args.update) } : {}),
                    delete: remoteScript(args.delete),
                    stdin: args.stdin,
                    triggers: args.triggers,
                    logging,
                },
                options,
            );
        default: {
            const never: never = conn;
            throw new Error(`unknown connection ${JSON.stringify(never)}`);
        }
    }
}
