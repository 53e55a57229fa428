/**
 * KvmHost follows fence_virtd's listener: the lab stack switched to the tcp listener, under mocks. The claim names
 * the tcp port (not the udp one), fence_virtd's script waits on a tcp socket of that port, and the rendered
 * fence_virt.conf and firewall it ships are the tcp ones.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { fenceVirtdSocket } from "../../components/kvm-host";
import { unwrap, type Recorded } from "./recording-mocks";
import { loadStack, runUnderMocks, type ProgramRun } from "./run-under-mocks";

let run: ProgramRun;
const input = (name: string, key: string): string => {
    const r: Recorded | undefined = run.records.find((x) => x.name === name);
    if (!r) throw new Error(`no resource named ${name}`);
    return String(unwrap(r.inputs[key]));
};

beforeAll(async () => {
    const raw = structuredClone(loadStack("lab")) as { guestCluster: { fencing: Record<string, unknown> } };
    raw.guestCluster.fencing.listener = "tcp";
    raw.guestCluster.fencing.tcp = { port: 1240 };
    run = await runUnderMocks("lab", raw as Record<string, unknown>);
});

describe("KvmHost with the tcp listener (lab stack, under mocks)", () => {
    it("claims tcp-port 1240 on the host, not the udp port", () => {
        const claim = input("kvmhost-claim", "create");
        expect(claim).toMatch(/^tcp-port 1240'?$/m);
        expect(claim).not.toMatch(/udp-port/);
    });

    it("runs fence_virtd's script for a tcp socket on port 1240, with the tcp fence_virt.conf on stdin", () => {
        const create = input("kvmhost-fence-virtd", "create");
        expect(create).toContain("PORT='1240'\nPROTO='tcp'\nPORT_KEY='tcp'\n");
        const conf = input("kvmhost-fence-virtd", "stdin");
        expect(conf).toContain('\tlistener = "tcp";');
        expect(conf).toMatch(/\ttcp \{\n\t\tkey_file = "\/etc\/cluster\/fence_xvm.key";\n\t\taddress = "10.99.0.1";\n\t\tport = "1240";/);
        expect(input("kvmhost-firewall", "stdin")).toMatch(/-d 10\.99\.0\.1\/32 -i br-lab -p tcp -m tcp --dport 1240 /);
    });

    it("maps every listener to its socket", () => {
        const fencing = { multicast: { address: "225.0.0.12", port: 1, family: "ipv4" as const }, tcp: { port: 2 }, vsock: { port: 3 } };
        const f = (listener: "multicast" | "tcp" | "vsock") => fenceVirtdSocket({ ...fencing, listener, hash: "sha256", auth: "sha256", keyFile: "/k", keyVersion: 1, subnet: "10.0.0.0/24" });
        expect([f("multicast"), f("tcp"), f("vsock")]).toEqual([
            { protocol: "udp", port: 1 },
            { protocol: "tcp", port: 2 },
            { protocol: "vsock", port: 3 },
        ]);
    });
});
