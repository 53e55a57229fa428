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
import { libraryScripts } from "./scripts/library";
import { SCRIPT_LIBRARY_SHA256, shq } from "./scripts/prelude";
import type { Connection, SshConnection } from "./spec";

/** A machine commands run on: a KVM host or a guest's operating system. */
export interface Machine {
    /** Host or guest name, for messages. */
    name: string;
    connection: Connection;
    /** The SSH private key (a secret) when connection.kind is "ssh". */
    privateKey?: pulumi.Input<string>;
    /**
     * The command that installs the shared script library on this machine (`withLibrary`): every command `runOn`
     * registers for the machine depends on it, so it is there before them and goes after them.
     */
    library?: pulumi.Resource;
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

/**
 * Wraps a script for a remote login shell: root's login shell may not be POSIX sh (csh, fish), so the script is
 * passed to `sh -c` as one quoted word.
 */
export function remoteScript(script: string): string {
    return `exec /bin/sh -c ${shq(script)}`;
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
        ...(machine.library ? { dependsOn: [machine.library, ...dependencyList(opts.dependsOn)] } : {}),
    };
    const conn = machine.connection;
    switch (conn.kind) {
        case "local":
            return localCommand(name, args, options);
        case "ssh":
            return remoteCommand(machine, conn, name, args, options);
        default: {
            const never: never = conn;
            throw new Error(`unknown connection ${JSON.stringify(never)}`);
        }
    }
}

/** What a command logs: nothing when its stdin carries a secret. */
function logging(args: RunArgs): "none" | "stdoutAndStderr" {
    return args.secret ? "none" : "stdoutAndStderr";
}

/** A command on the machine running pulumi, its scripts run by POSIX sh. */
function localCommand(name: string, args: RunArgs, options: pulumi.CustomResourceOptions): command.local.Command {
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
            logging: logging(args),
        },
        options,
    );
}

/** A command over SSH, its scripts wrapped for the remote login shell (`remoteScript`). */
function remoteCommand(machine: Machine, conn: SshConnection, name: string, args: RunArgs, options: pulumi.CustomResourceOptions): command.remote.Command {
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
            logging: logging(args),
        },
        options,
    );
}

function dependencyList(deps: pulumi.CustomResourceOptions["dependsOn"]): pulumi.Input<pulumi.Resource>[] {
    if (deps === undefined) return [];
    if (Array.isArray(deps)) return deps;
    if (pulumi.Resource.isInstance(deps)) return [deps];
    throw new Error("kvm-ha-lab: runOn takes dependsOn as resources or a list of them");
}

/**
 * Installs the shared script library on `machine` (one command, `<name>-lib-<first 12 hex of its hash>`: a new library
 * version is a new resource, and the old one is deleted after every command whose stored scripts still use it) and
 * returns the machine with `library` set, for every later `runOn` on it.
 */
export function withLibrary(machine: Machine, lab: string, name: string, opts: pulumi.CustomResourceOptions): Machine {
    if (machine.library) throw new Error(`kvm-ha-lab: the script library is already installed on ${machine.name}`);
    const library = runOn(machine, `${name}-lib-${SCRIPT_LIBRARY_SHA256.slice(0, 12)}`, libraryScripts(lab), opts);
    return { ...machine, library };
}
