/**
 * Property tests of the Pacemaker stack over the generated valid stacks of test/unit/arbitraries.ts, mapped onto
 * `stack: pacemaker` (`toPacemaker`, here: the generator itself is shared and stays as it is):
 *
 * (a) validation accepts every mapped config (the mapping only removes what exists in cman alone, or adds what
 *     corosync needs: node addresses);
 * (b) corosync.conf reads back into the cluster's nodes (name = domain name, nodeid, the node's address) with two_node
 *     for exactly two nodes; the CIB has one level-1 stonith resource per node whose pcmk_host_map names the node's
 *     own domain, one group per service, a -INFINITY colocation for every pair of an anti-affinity group, unique ids;
 * (c) rendering is deterministic;
 * (d) crm_verify accepts every guest and host CIB (with a running cluster's status, test/helpers/pacemaker.ts
 *     liveCib), and corosync -t every corosync.conf as its first node reads it.
 *
 * Reproducible: a fixed seed (FC_SEED overrides it, FC_RUNS the number of runs).
 */
import fc from "fast-check";
import { beforeEach, describe, expect, it } from "vitest";
import { ConfigError, validateLabConfig } from "../../components/config";
import { renderGuestCorosyncConf, renderHostCorosyncConf } from "../../components/render/corosync-conf";
import { levelOneDeviceName } from "../../components/cluster-model";
import { renderGuestCib, renderHostCib, serviceGroupId } from "../../components/render/pacemaker-cib";
import type { LabSpec } from "../../components/spec";
import {
    all,
    corosyncAvailable,
    corosyncCheck,
    crmVerify,
    crmVerifyAvailable,
    liveCib,
    nvpairs,
    parseCorosyncConf,
    parseXml,
    type CorosyncSection,
} from "../helpers/pacemaker";
import { need } from "../helpers/tools";
import { validStack, type GeneratedStack } from "./arbitraries";

const SEED = Number(process.env.FC_SEED ?? 14_2026_1130);
const RUNS = Number(process.env.FC_RUNS ?? 60);

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The first three octets of the generated cluster network (every generated address shares one /24). */
function networkPrefix(raw: Raw): string {
    const subnet: string | undefined = raw.guestCluster.fencing?.subnet;
    const from = subnet ?? raw.hosts.map((h: Raw) => h.bridge.address).find((a: string | undefined) => a !== undefined);
    if (from === undefined) throw new Error("toPacemaker: the generated stack has no cluster network");
    return from.split("/")[0].split(".").slice(0, 3).join(".");
}

/**
 * A generated stack on the Pacemaker stack: both clusters `stack: pacemaker`; fenced's delays, rgmanager's
 * child-resource options and vm.sh's migrationMapping/hardRecovery removed; every script an init script
 * (/etc/init.d/<its name>); a service with no resources gets one; every node an address on the cluster network
 * (unused by any other address of the stack); a local host of a host cluster a bridge address.
 */
export function toPacemaker(g: GeneratedStack): GeneratedStack {
    const raw = structuredClone(g.raw) as Raw;
    const gc = raw.guestCluster;
    gc.stack = "pacemaker";
    const prefix = networkPrefix(raw);
    const used = new Set<string>(JSON.stringify(raw).match(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g) ?? []);
    let next = 2;
    const freeAddress = () => {
        while (used.has(`${prefix}.${next}`)) next++;
        if (next > 254) throw new Error("toPacemaker: no free address");
        used.add(`${prefix}.${next}`);
        return `${prefix}.${next}`;
    };
    const withoutDelays = (fd: Raw | undefined) => {
        if (fd === undefined) return undefined;
        const { postJoinDelay: _j, postFailDelay: _f, ...rest } = fd;
        return rest;
    };
    gc.fenceDaemon = withoutDelays(gc.fenceDaemon);
    const strip = (r: Raw) => {
        for (const k of ["independentSubtree", "maxRestarts", "restartExpireTime", "enforceTimeouts"]) delete r[k];
    };
    const scriptNames = new Set<string>((gc.services ?? []).flatMap((s: Raw) => (s.scripts ?? []).map((sc: Raw) => sc.name)));
    for (const s of gc.services ?? []) {
        for (const ip of s.ips ?? []) strip(ip);
        for (const sc of s.scripts ?? []) {
            strip(sc);
            sc.file = `/etc/init.d/${sc.name}`;
        }
        if ((s.ips ?? []).length === 0 && (s.scripts ?? []).length === 0) {
            let name = `${s.name}-run`;
            for (let i = 2; scriptNames.has(name); i++) name = `${s.name}-run${i}`;
            scriptNames.add(name);
            s.scripts = [{ name, file: `/etc/init.d/${name}` }];
        }
    }
    for (const node of gc.nodes) {
        const guest = raw.guests.find((x: Raw) => x.name === node);
        const ssh: string | undefined = guest.ssh?.address;
        if (guest.address === undefined && !(ssh !== undefined && ssh.startsWith(`${prefix}.`) && /^\d+\.\d+\.\d+\.\d+$/.test(ssh))) guest.address = freeAddress();
    }
    if (raw.hostCluster) {
        raw.hostCluster.stack = "pacemaker";
        raw.hostCluster.fenceDaemon = withoutDelays(raw.hostCluster.fenceDaemon);
        for (const s of raw.hostCluster.vmServices ?? []) {
            delete s.migrationMapping;
            delete s.hardRecovery;
        }
        for (const h of raw.hosts) if (h.local === true && h.bridge.address === undefined) h.bridge.address = `${freeAddress()}/24`;
        // corosync needs each host at an address of its own (the generator may give two hosts one SSH address)
        const ring = new Set<string>();
        for (const h of raw.hosts) {
            const address: string = h.ssh?.address ?? h.bridge.address.split("/")[0];
            if (ring.has(address)) h.ssh.address = freeAddress();
            ring.add(h.ssh?.address ?? address);
        }
    }
    return { ...g, raw: raw as GeneratedStack["raw"] };
}

function validated(g: GeneratedStack): LabSpec {
    try {
        return validateLabConfig(g.raw, { stack: g.stack, secretKeys: g.secretKeys, readFile: (p) => g.files[p] });
    } catch (e) {
        if (e instanceof ConfigError) throw new Error(`validation refused a generated pacemaker config:\n${e.message}\n${JSON.stringify(g.raw, null, 1)}`);
        throw e;
    }
}

const stacks = validStack().map(toPacemaker);
const PARAMS: fc.Parameters<[GeneratedStack]> = { seed: SEED, numRuns: RUNS };

function nodesOf(conf: CorosyncSection): Record<string, string>[] {
    return ((conf.nodelist as CorosyncSection[])[0].node as CorosyncSection[]).map((n) => n as Record<string, string>);
}

describe("generated stacks on the Pacemaker stack", () => {
    it("validate, and their files mean what the spec says, deterministically", () => {
        fc.assert(
            fc.property(stacks, (g) => {
                const spec = validated(g);
                const gc = spec.guestCluster;
                // corosync.conf
                const conf = parseCorosyncConf(renderGuestCorosyncConf(spec));
                expect(nodesOf(conf)).toEqual(gc.nodes.map((n, i) => ({ name: n, nodeid: String(i + 1), ring0_addr: spec.guests.find((x) => x.name === n)!.address })));
                expect((conf.quorum as CorosyncSection[])[0].two_node).toBe(gc.nodes.length === 2 ? "1" : undefined);
                // the CIB
                const text = renderGuestCib(spec);
                const cib = parseXml(text);
                const stonith = all(cib, "primitive").filter((p) => p.attrs.class === "stonith");
                for (const n of gc.nodes) {
                    const own = stonith.filter((p) => p.attrs.id === levelOneDeviceName(gc.fencing.listener, n));
                    expect(own).toHaveLength(1);
                    expect(nvpairs(own[0]).pcmk_host_map).toBe(`${n}:${n}`);
                    expect(nvpairs(own[0]).key_file).toBe(gc.fencing.keyFile);
                }
                expect(stonith).toHaveLength(gc.nodes.length + gc.fenceDevices.length);
                expect(all(cib, "group").map((x) => x.attrs.id)).toEqual(gc.services.map((s) => serviceGroupId(s.name)));
                const colocated = new Set(all(cib, "rsc_colocation").map((c) => [c.attrs.rsc, c.attrs["with-rsc"]].sort().join(" ")));
                for (const grp of gc.antiAffinity) {
                    grp.services.forEach((b, j) => grp.services.slice(0, j).forEach((a) => expect(colocated.has([serviceGroupId(a), serviceGroupId(b)].sort().join(" "))).toBe(true)));
                }
                const ids = [...text.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]).filter((id) => !/^\d+$/.test(id));
                expect(new Set(ids).size).toBe(ids.length);
                expect(renderGuestCib(validated(g))).toBe(text);
                if (spec.hostCluster) {
                    const host = parseCorosyncConf(renderHostCorosyncConf(spec));
                    expect(nodesOf(host).map((n) => n.name)).toEqual(spec.hosts.map((h) => h.name));
                    expect(renderHostCib(validated(g), { passwords: {} })).toBe(renderHostCib(spec, { passwords: {} }));
                }
            }),
            PARAMS,
        );
    });
});

describe("real judges over generated stacks", () => {
    beforeEach((ctx) => need(ctx, "crm_verify (Debian: pacemaker-cli-utils)", crmVerifyAvailable()));

    it("crm_verify accepts every guest and host CIB", () => {
        fc.assert(
            fc.property(stacks, (g) => {
                const spec = validated(g);
                const guest = crmVerify(liveCib(renderGuestCib(spec)));
                expect(guest.ok, `${guest.out}\n${renderGuestCib(spec)}`).toBe(true);
                if (spec.hostCluster) {
                    const passwords = Object.fromEntries(spec.hostCluster.fenceDevices.filter((d) => d.passwordSecret).map((d) => [d.name, "pw"]));
                    const host = crmVerify(liveCib(renderHostCib(spec, { passwords })));
                    expect(host.ok, `${host.out}\n${renderHostCib(spec, { passwords })}`).toBe(true);
                }
            }),
            PARAMS,
        );
    });

    it("corosync -t accepts every corosync.conf as its first node reads it", (ctx) => {
        need(ctx, "corosync (Debian: corosync), unshare and ip, as root", corosyncAvailable());
        fc.assert(
            fc.property(stacks, (g) => {
                const spec = validated(g);
                const texts = [renderGuestCorosyncConf(spec), ...(spec.hostCluster ? [renderHostCorosyncConf(spec)] : [])];
                for (const text of texts) {
                    const first = nodesOf(parseCorosyncConf(text))[0];
                    const r = corosyncCheck(text, first.ring0_addr);
                    expect(r.ok, `${r.out}\n${text}`).toBe(true);
                }
            }),
            { ...PARAMS, numRuns: Math.min(RUNS, 25) },
        );
    });
});
