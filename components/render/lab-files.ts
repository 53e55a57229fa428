/**
 * Everything a lab deploys that is a file, by relative path: the render command writes these, and tests judge them.
 * Pure: the same spec gives the same map (sorted by path), byte for byte. Secrets are not part of the spec, so the
 * host cluster's fence device passwords are left out here. The guest cluster's anti-affinity guard scripts go next
 * to cluster.conf as guards/<service>.sh (on the nodes: /usr/local/libexec/kvm-ha-lab/<lab>/guard-<service>).
 *
 * A cluster of the Pacemaker stack (`stack: pacemaker`) gets corosync.conf and cib.xml instead of cluster.conf:
 * pacemaker/{corosync.conf,cib.xml} for the guest cluster (no guards: anti-affinity is a colocation constraint there),
 * pacemaker-hosts/{corosync.conf,cib.xml} for the host cluster (fence device passwords left out). The corosync authkey
 * is a secret of the program, never a rendered file.
 */
import { guardFiles } from "./anti-affinity-guard";
import { renderGuestClusterConf, renderHostClusterConf } from "./cluster-conf";
import { renderGuestCorosyncConf, renderHostCorosyncConf } from "./corosync-conf";
import { renderDomainXml } from "./domain-xml";
import { renderFenceVirtConf } from "./fence-virt-conf";
import { renderFirewall } from "./firewall";
import { renderGuestCib, renderHostCib } from "./pacemaker-cib";
import { renderSysctl } from "./sysctl";
import type { LabSpec } from "../spec";

export const RENDER_CONFIG_VERSION = 1;

export function renderLab(spec: LabSpec): Map<string, string> {
    const files = new Map<string, string>();
    if (spec.guestCluster.stack === "pacemaker") {
        files.set("pacemaker/corosync.conf", renderGuestCorosyncConf(spec));
        files.set("pacemaker/cib.xml", renderGuestCib(spec));
    } else {
        files.set("cluster.conf", renderGuestClusterConf(spec, { configVersion: RENDER_CONFIG_VERSION }));
        for (const guard of guardFiles(spec)) files.set(`guards/${guard.service}.sh`, guard.text);
    }
    if (spec.hostCluster?.stack === "pacemaker") {
        files.set("pacemaker-hosts/corosync.conf", renderHostCorosyncConf(spec));
        files.set("pacemaker-hosts/cib.xml", renderHostCib(spec, { passwords: {} }));
    } else if (spec.hostCluster) {
        files.set("host-cluster.conf", renderHostClusterConf(spec, { configVersion: RENDER_CONFIG_VERSION, passwords: {} }));
    }
    for (const g of spec.guests) files.set(`xml_defs/${g.name}.xml`, renderDomainXml(g));
    const sysctl = renderSysctl();
    for (const h of spec.hosts) {
        files.set(`hosts/${h.name}/fence_virt.conf`, renderFenceVirtConf(spec, h));
        files.set(`hosts/${h.name}/iptables.rules`, renderFirewall(spec, h, { clusteredHost: spec.hostCluster !== undefined }));
        files.set(`hosts/${h.name}/sysctl.conf`, sysctl);
    }
    return new Map([...files.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
