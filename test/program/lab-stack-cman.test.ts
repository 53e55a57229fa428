/**
 * The program under mocks with the lab stack pinned to cman (`guestCluster.stack: cman`, as on RHEL/CentOS 6 guests;
 * the stack file itself says pacemaker, test/program/lab-stack.test.ts): the guest cluster is delivered as cluster.conf,
 * with its config_version counter, to each seeded guest over SSH once its sshd answers, and nothing of Pacemaker is
 * registered. The real-guest suite (test/e2e/real-guests.test.ts) applies this same configuration for real.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { validateLabConfig } from "../../components/config";
import { renderGuestClusterConf } from "../../components/render/cluster-conf";
import { FAKE_LAB_KEY, isSecretValue, unwrap, type Recorded } from "./recording-mocks";
import { loadStack, runUnderMocks, type ProgramRun } from "./run-under-mocks";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function cmanLab(): Raw {
    const raw = structuredClone(loadStack("lab")) as Raw;
    expect(raw.guestCluster.stack).toBe("pacemaker"); // what this test overrides
    raw.guestCluster.stack = "cman";
    return raw;
}

let run: ProgramRun;
const byName = (name: string): Recorded => {
    const r = run.records.find((x) => x.name === name);
    if (!r) throw new Error(`no resource named ${name}; have ${run.records.map((x) => x.name).join(", ")}`);
    return r;
};
const urnOf = (name: string) => byName(name).urn;

beforeAll(async () => {
    run = await runUnderMocks("lab", cmanLab());
});

describe("lab stack pinned to cman, under mocks", () => {
    it("registers the cman guest cluster: a config_version counter and cluster.conf per node, nothing of Pacemaker", () => {
        const cluster = run.records.filter((r) => r.name.startsWith("cluster-conf")).map((r) => `${r.type} ${r.name}`).sort();
        expect(cluster).toEqual(
            [
                "kvmlab:index:ClusterConf cluster-conf",
                "command:local:Command cluster-conf-guest-version",
                "command:remote:Command cluster-conf-guest-node1",
                "command:remote:Command cluster-conf-guest-node2",
            ].sort(),
        );
        expect(run.records.filter((r) => r.type === "random:index/randomBytes:RandomBytes").map((r) => r.name)).toEqual(["fence-key-bytes"]);
        expect(run.records.some((r) => /corosync|pacemaker|cib/.test(r.name))).toBe(false);
    });

    it("delivers cluster.conf to each guest after its sshd answers, with the lab's private key (secret); node1 last, reloading cman", () => {
        for (const [i, g] of ["node1", "node2"].entries()) {
            const r = byName(`cluster-conf-guest-${g}`);
            expect(r.dependencies, g).toContain(urnOf(`${g}-ssh-ready`));
            const conn = r.inputs.connection as Record<string, unknown>;
            expect(isSecretValue(conn) || isSecretValue(conn.privateKey), `${g}: private key is secret`).toBe(true);
            expect(unwrap(conn)).toMatchObject({ host: `10.99.0.${11 + i}`, port: 22, user: "root", privateKey: FAKE_LAB_KEY.privateKeyOpenssh });
            expect(String(unwrap(r.inputs.stdin))).toContain('<cluster name="labcluster"');
        }
        expect(byName("cluster-conf-guest-node1").dependencies).toContain(urnOf("cluster-conf-guest-node2"));
    });

    it("exports the rendered cluster.conf (version 1 from the counter), not secret", () => {
        const spec = validateLabConfig(cmanLab(), { stack: "lab", secretKeys: new Set(), readFile: () => undefined });
        expect(spec.guestCluster.stack).toBe("cman");
        expect(run.outputs.guestClusterConf).toEqual({ value: renderGuestClusterConf(spec, { configVersion: 1 }), secret: false });
        for (const g of ["node1", "node2"]) expect(String(run.outputs.guestClusterConf.value)).toContain(`<fencedevice name="xvm-${g}" agent="fence_xvm"`);
    });
});
