/**
 * The shape every host script module returns: a POSIX sh `create` and the `delete` that undoes exactly what `create`
 * did. Both run as root through `/bin/sh -c` (locally) or an SSH login shell (remotely), with any file content on
 * stdin. Both are idempotent: running one twice equals running it once.
 */
export interface HostScripts {
    create: string;
    delete: string;
}
