/**
 * The program under mocks with the dev stack on the Pacemaker stack (guest cluster and host cluster: `stack:
 * pacemaker`): the exact cluster resources (per node the corosync authkey, corosync.conf and the running stack; the CIB
 * on the first node; no cluster.conf, no config_version counter, no guard), their order, what each command takes on
 * stdin (the rendered corosync.conf, the CIB's configuration), and that the corosync authkey, the fence key, the SSH
 * key and the fence passwords never show outside secret values (the leak scanner of test/program/leak-scan.ts: the
 * mocks give every RandomBytes the same fake key bytes, so the scan for the fence key finds the authkey too), and that
 * two independent runs register identical inputs (a second `pulumi up` changes nothing).
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { validateLabConfig } from "../../components/config";
import { renderGuestCorosyncConf, renderHostCorosyncConf } from "../../components/render/corosync-conf";
import { renderGuestCib, renderHostCib } from "../../components/render/pacemaker-cib";
import { cibConfiguration } from "../../components/scripts/pacemaker-deliver";
import { exposures, findLeaks, isCommand, keyForms, keyLocations, policyViolations, runCapturing, secretForms, type LeakRun } from "./leak-scan";
import { FAKE_KEY, isSecretValue, unwrap, type Recorded } from "./recording-mocks";
import { FAKE_SECRETS, ROOT, loadStack } from "./run-under-mocks";
import { SCRIPT_LIBRARY_SHA256 } from "../../components/scripts/prelude";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Object keys sorted: the engine compares inputs by key, so key order is not a change. */
const sortKeys = (x: unknown): unknown =>
    Array.isArray(x) ? x.map(sortKeys) : x && typeof x === "object" ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, sortKeys((x as Record<string, unknown>)[k])])) : x;

function pacemakerDev(): Raw {
    const raw = structuredClone(loadStack("dev")) as Raw;
    raw.guestCluster.stack = "pacemaker";
    raw.hostCluster.stack = "pacemaker";
    return raw;
}

const spec = validateLabConfig(pacemakerDev(), { stack: "dev", secretKeys: new Set(Object.keys(FAKE_SECRETS)), readFile: () => undefined });
const GUESTS = ["gnode1", "gnode2", "gnode3"];
const HOSTS = ["kvm1", "kvm2"];

let run: LeakRun;
const byName = (name: string): Recorded => {
    const r = run.records.find((x) => x.name === name);
    if (!r) throw new Error(`no resource named ${name}`);
    return r;
};
/** The script library command of a machine (named by the library's hash). */
const LIB = (machine: string) => `${machine}-lib-${SCRIPT_LIBRARY_SHA256.slice(0, 12)}`;
const depNames = (r: Recorded) => r.dependencies.map((u) => run.records.find((x) => x.urn === u)?.name).filter((n): n is string => n !== undefined).sort();

beforeAll(async () => {
    run = await runCapturing({ stack: "dev", raw: pacemakerDev, secrets: FAKE_SECRETS });
}, 120_000);

describe("dev stack with stack: pacemaker, under mocks", () => {
    it("registers per node the authkey, corosync.conf and the running stack, the CIB on the first node, and nothing of cman", () => {
        const cluster = run.records
            .filter((r) => r.name.startsWith("cluster-conf"))
            .map((r) => `${r.type} ${r.name}`)
            .sort();
        const perNode = (kind: "guest" | "host", node: string, remote: boolean) =>
            ["authkey", "corosync-conf", "stack"].map((s) => `command:${remote ? "remote" : "local"}:Command cluster-conf-${kind}-${node}-${s}`);
        expect(cluster).toEqual(
            [
                "kvmlab:index:ClusterConf cluster-conf",
                "random:index/randomBytes:RandomBytes cluster-conf-guest-corosync-key",
                "random:index/randomBytes:RandomBytes cluster-conf-host-corosync-key",
                ...GUESTS.flatMap((g) => perNode("guest", g, true)),
                "command:remote:Command cluster-conf-guest-gnode1-cib",
                ...HOSTS.flatMap((h) => perNode("host", h, true)),
                "command:remote:Command cluster-conf-host-kvm1-cib",
            ].sort(),
        );
        for (const kind of ["guest", "host"]) {
            expect(byName(`cluster-conf-${kind}-corosync-key`).inputs.length).toBe(256);
        }
    });

    it("orders: authkey and corosync.conf after the domains are defined, the stack after both, the CIB after every node's stack", () => {
        for (const [kind, nodes] of [["guest", GUESTS], ["host", HOSTS]] as const) {
            for (const n of nodes) {
                const stack = byName(`cluster-conf-${kind}-${n}-stack`);
                // (and, as every command on a machine, the machine's script library)
                expect(depNames(stack)).toEqual([`cluster-conf-${kind}-${n}-authkey`, `cluster-conf-${kind}-${n}-corosync-conf`, LIB(n)].sort());
                for (const s of ["authkey", "corosync-conf"]) {
                    const deps = depNames(byName(`cluster-conf-${kind}-${n}-${s}`));
                    // every guest is defined on every host first (the barrier after every host's domains command)
                    expect(deps, `${kind} ${n} ${s}`).toContain("domains-defined");
                    expect(depNames(byName("domains-defined"))).toEqual(HOSTS.map((h) => `${h}-domains`).sort());
                }
            }
            expect(depNames(byName(`cluster-conf-${kind}-${nodes[0]}-cib`))).toEqual([...nodes.map((n) => `cluster-conf-${kind}-${n}-stack`), LIB(nodes[0])].sort());
        }
    });

    it("sends the rendered corosync.conf and the CIB's configuration; the host cluster's CIB (with the fence passwords) only as a secret", () => {
        for (const g of GUESTS) expect(byName(`cluster-conf-guest-${g}-corosync-conf`).inputs.stdin).toBe(renderGuestCorosyncConf(spec));
        for (const h of HOSTS) expect(byName(`cluster-conf-host-${h}-corosync-conf`).inputs.stdin).toBe(renderHostCorosyncConf(spec));
        const guestCib = byName("cluster-conf-guest-gnode1-cib");
        expect(isSecretValue(guestCib.inputs.stdin)).toBe(false);
        expect(guestCib.inputs.stdin).toBe(cibConfiguration(renderGuestCib(spec)));
        const hostCib = byName("cluster-conf-host-kvm1-cib");
        expect(isSecretValue(hostCib.inputs.stdin)).toBe(true);
        const passwords = { "ipmi-kvm1": FAKE_SECRETS.ipmiPasswordKvm1, "ipmi-kvm2": FAKE_SECRETS.ipmiPasswordKvm2 };
        expect(unwrap(hostCib.inputs.stdin)).toBe(cibConfiguration(renderHostCib(spec, { passwords })));
        expect(String(unwrap(hostCib.inputs.stdin))).toContain(FAKE_SECRETS.ipmiPasswordKvm1);
        // the CIB is loaded with cibadmin, never copied into Pacemaker's own directory
        const script = String(unwrap(guestCib.inputs.create));
        expect(script).toContain("cibadmin --replace --scope configuration");
        expect(script).not.toContain("/var/lib/pacemaker");
        expect(run.outputs.guestClusterConf).toMatchObject({ secret: false });
        expect(String(run.outputs.guestClusterConf.value)).toBe(renderGuestCib(spec));
        expect(run.outputs.hostClusterConf.secret).toBe(true);
        // each guest node waits for the fence key (installed at the same time) before it starts the stack
        for (const g of GUESTS) {
            // (the remote script is quoted once more for `sh -c`: its ' reads as '\'')
            expect(String(unwrap(byName(`cluster-conf-guest-${g}-stack`).inputs.create))).toContain("REQUIRE_FILES='\\''/etc/cluster/fence_xvm.key'\\''");
        }
    });

    it("sends each cluster's authkey (and the fence key) only as a secret stdin, with logging off and secret outputs", () => {
        const locations = keyLocations(run, keyForms(FAKE_KEY));
        const authkeys = [...GUESTS.map((g) => `cluster-conf-guest-${g}-authkey`), ...HOSTS.map((h) => `cluster-conf-host-${h}-authkey`)];
        // positive control: the scanner sees the key where it is allowed
        expect(locations.map((l) => l.record)).toEqual(expect.arrayContaining(authkeys));
        for (const l of locations) {
            expect(l, `${l.record}${l.path}`).toMatchObject({ path: ".stdin<secret>", secret: true });
            expect(l.record.startsWith("fence-key-") || authkeys.includes(l.record), l.record).toBe(true);
        }
        for (const a of authkeys) {
            const r = byName(a);
            expect(Buffer.from(String(unwrap(r.inputs.stdin)), "base64").equals(FAKE_KEY), `${a} carries the key`).toBe(true);
            expect(String(unwrap(r.inputs.create))).toContain("/etc/corosync/authkey");
        }
        for (const kind of ["guest", "host"]) {
            const bytes = byName(`cluster-conf-${kind}-corosync-key`);
            expect(bytes.additionalSecretOutputs).toEqual(expect.arrayContaining(["base64", "hex"]));
            const consumers = run.records.filter((r) => r.dependencies.includes(bytes.urn)).map((r) => r.name).sort();
            expect(consumers).toEqual(authkeys.filter((a) => a.startsWith(`cluster-conf-${kind}-`)).sort());
        }
        expect(policyViolations(run)).toEqual([]);
    });

    it("a second up sees no change: two independent runs register the same resources with identical inputs", () => {
        const dump = () =>
            (
                JSON.parse(
                    execFileSync(join(ROOT, "node_modules", ".bin", "tsx"), [join(__dirname, "dump-config.ts")], {
                        cwd: ROOT,
                        encoding: "utf8",
                        input: JSON.stringify({ stack: "dev", raw: pacemakerDev(), secrets: FAKE_SECRETS }),
                        maxBuffer: 64 * 1024 * 1024,
                    }),
                ) as { urn: string; inputs: unknown; dependencies: string[] }[]
            )
                .map((r) => JSON.stringify([r.urn, sortKeys(r.inputs), [...r.dependencies].sort()]))
                .sort();
        const first = dump();
        expect(first.some((r) => r.includes("cluster-conf-guest-gnode1-cib"))).toBe(true);
        expect(dump()).toEqual(first);
    }, 120_000);

    it("shows no secret (keys, SSH key, fence passwords) in any script, environment, plain stdin, input or output", () => {
        const items = exposures(run);
        expect(items.some((i) => i.where === "command cluster-conf-guest-gnode1-cib .stdin")).toBe(true);
        // secretForms covers the key bytes (fence key and, under the mocks, every authkey) and every secret value
        expect(findLeaks(items, secretForms(FAKE_SECRETS))).toEqual([]);
        expect(run.records.filter(isCommand).length).toBeGreaterThan(20);
    });
});
