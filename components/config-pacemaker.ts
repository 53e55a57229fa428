/**
 * Validation rules that apply only to a cluster of the Pacemaker stack (`guestCluster.stack` / `hostCluster.stack`:
 * pacemaker): what corosync.conf and the CIB need that cluster.conf does not (every node's address on the cluster
 * network), and the options that exist only in cman/rgmanager, which Pacemaker cannot honour. Each problem names the
 * field path, the value and the fix, like every other rule (components/config.ts calls `checkPacemakerRules` once the
 * lab is resolved).
 */
import { show, type Report } from "./config-cluster";
import { DEFAULTS } from "./defaults";
import { guestRingAddress, hostRingAddress, scriptAgent } from "./cluster-model";
import type { FenceDaemonSpec, HostClusterSpec, LabSpec, SubtreeSpec } from "./spec";

const USE_CMAN = "or set stack: cman";

export function checkPacemakerRules(spec: LabSpec, report: Report): void {
    if (spec.guestCluster.stack === "pacemaker") checkPacemakerGuestCluster(spec, report);
    if (spec.hostCluster?.stack === "pacemaker") checkPacemakerHostCluster(spec, spec.hostCluster, report);
}

/** The guest cluster on Pacemaker: every node's ring address, no fenced timing, services that are resource groups. */
function checkPacemakerGuestCluster(spec: LabSpec, report: Report): void {
    const gc = spec.guestCluster;
    const p = "guestCluster";
    for (const node of gc.nodes) {
        const i = spec.guests.findIndex((g) => g.name === node);
        if (i >= 0 && guestRingAddress(spec, node) === undefined) {
            report(
                `guests[${i}].address`,
                `is not set, and ${show(node)} has no ssh address on the cluster network; with ${p}.stack pacemaker corosync needs every node's address on the cluster network (its ring0_addr): set guests[${i}].address`,
            );
        }
    }
    checkFenceDaemon(gc.fenceDaemon, `${p}.fenceDaemon`, report);
    gc.services.forEach((s, i) => {
        const sp = `${p}.services[${i}]`;
        if (s.ips.length === 0 && s.scripts.length === 0) {
            report(sp, `${show(s.name)} has no ips and no scripts; with stack pacemaker a service is a resource group, which needs at least one resource: add one, or remove the service`);
        }
        s.ips.forEach((ip, j) => checkSubtree(ip, `${sp}.ips[${j}]`, report));
        s.scripts.forEach((sc, j) => {
            checkSubtree(sc, `${sp}.scripts[${j}]`, report);
            if (scriptAgent(sc.file) === undefined) {
                report(
                    `${sp}.scripts[${j}].file`,
                    `${show(sc.file)} is neither an init script in /etc/init.d (Pacemaker's lsb class looks for it there), a systemd unit file (…/systemd/system/<unit>.service) nor an OCF agent (/usr/lib/ocf/resource.d/<provider>/<type>); with stack pacemaker use e.g. /etc/init.d/httpd, /usr/lib/systemd/system/httpd.service or /usr/lib/ocf/resource.d/heartbeat/apache`,
                );
            }
        });
    });
}

/** The host cluster on Pacemaker: every host at its own ring address, no fenced timing, no vm.sh-only options. */
function checkPacemakerHostCluster(spec: LabSpec, hc: HostClusterSpec, report: Report): void {
    const p = "hostCluster";
    const ringOwners = new Map<string, number>();
    spec.hosts.forEach((h, i) => {
        const address = hostRingAddress(h);
        const first = address === undefined ? undefined : ringOwners.get(address);
        if (address !== undefined && first !== undefined) {
            report(
                h.connection.kind === "ssh" ? `hosts[${i}].ssh.address` : `hosts[${i}].bridge.address`,
                `${show(address)} is already the address of hosts[${first}] (${show(spec.hosts[first].name)}); with ${p}.stack pacemaker each host is a corosync node at its own address: give each host its own`,
            );
        } else if (address !== undefined) ringOwners.set(address, i);
        if (address === undefined) {
            report(
                `hosts[${i}].bridge.address`,
                `is not set, and host ${show(h.name)} is local (no ssh address); with ${p}.stack pacemaker corosync needs every host's address (its ring0_addr): set the bridge address (e.g. 10.99.0.1/24)`,
            );
        }
    });
    checkFenceDaemon(hc.fenceDaemon, `${p}.fenceDaemon`, report);
    hc.vmServices.forEach((s, i) => {
        const vp = `${p}.vmServices[${i}]`;
        if (s.migrationMapping !== undefined) {
            report(
                `${vp}.migrationMapping`,
                `is an option of rgmanager's vm.sh only; VirtualDomain has no per-host mapping (it migrates to the node name, or to migrationUri with %s as the target): remove it, ${USE_CMAN}`,
            );
        }
    });
}

function checkFenceDaemon(fd: FenceDaemonSpec, path: string, report: Report): void {
    if (fd.postJoinDelay !== DEFAULTS.cluster.fenceDaemon.postJoinDelay) {
        report(
            `${path}.postJoinDelay`,
            `${show(fd.postJoinDelay)} is fenced's (cman) post_join_delay; Pacemaker has no such setting (it fences nodes it has not seen once dc-deadtime passes, unless cleanStart): remove it, ${USE_CMAN}`,
        );
    }
    if (fd.postFailDelay !== DEFAULTS.cluster.fenceDaemon.postFailDelay) {
        report(`${path}.postFailDelay`, `${show(fd.postFailDelay)} is fenced's (cman) post_fail_delay; Pacemaker fences a failed node at once: remove it, ${USE_CMAN}`);
    }
}

/** rgmanager's independent-subtree settings of a child resource: no Pacemaker equivalent for a group member. */
function checkSubtree(r: SubtreeSpec, path: string, report: Report): void {
    for (const key of ["independentSubtree", "maxRestarts", "restartExpireTime", "enforceTimeouts"] as const) {
        if (r[key] !== undefined) {
            report(`${path}.${key}`, `${show(r[key])} is an rgmanager (cman) child-resource option with no equivalent in a Pacemaker group: remove it, ${USE_CMAN}`);
        }
    }
}
