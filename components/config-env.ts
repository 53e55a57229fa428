/**
 * What validation needs from outside the config (the stack name, which secrets are set, file reads): its own module, so
 * that config.ts and config-cluster.ts, which both take it, do not import each other.
 */
export interface ValidationEnv {
    /** The stack name; feeds derived MACs and UUIDs and the default lab name. */
    stack: string;
    /** Names (without namespace) of the config keys that are set and secret. */
    secretKeys: ReadonlySet<string>;
    /**
     * Whether referenced secrets must be set (default true). The render command, which never needs secret values,
     * turns this off and reports unset secrets as notes instead.
     */
    requireSecrets?: boolean;
    /** Reads a file named by the config (a guest's own domain XML); undefined when it cannot be read. */
    readFile(path: string): string | undefined;
    /**
     * Whether a path exists on the machine running pulumi: base images, kernels and initrds named for a local host
     * are checked with it. Unset: not checked here (the disk script checks the base image on the host before it
     * creates anything).
     */
    exists?(path: string): boolean;
}
