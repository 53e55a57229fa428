/**
 * bridgeScripts, run for real inside throwaway network namespaces (the root namespace is never touched).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { bridgeScripts } from "../../components/scripts/bridge";
import { dropState, missingPrereqs, netSnapshot, Netns, run, skipBecause, stateDirExists, stateFiles } from "./scripts-harness";

const LAB = "hsct-br";
const LAB2 = "hsct-br2";
const skip = skipBecause("scripts-bridge", missingPrereqs(["ip", "awk"]));

describe.skipIf(skip)("bridge script", () => {
    let ns: Netns;
    beforeAll(() => {
        for (const lab of [LAB, LAB2]) dropState(lab);
    });
    afterEach(() => {
        ns?.destroy();
        for (const lab of [LAB, LAB2]) dropState(lab);
    });
    afterAll(() => ns?.destroy());

    /** A namespace with a veth pair standing in for the host's NIC (hscu0, down, no address). */
    function freshNs(tag: string): Netns {
        ns = new Netns(tag);
        ns.exec("ip link add hscu0 type veth peer name hscu0p");
        return ns;
    }

    it("creates the bridge with address and uplink, is idempotent, and delete restores the namespace exactly", () => {
        const n = freshNs("br1");
        const before = netSnapshot(n.name);
        const s = bridgeScripts(LAB, { name: "hscbr0", address: "10.251.0.1/24", uplink: "hscu0" });

        const r1 = run(s.create, { netns: n.name });
        expect(r1.code, r1.stderr).toBe(0);
        expect(r1.stdout).toBe("");
        const link = n.exec("ip -d link show hscbr0");
        expect(link).toMatch(/\bbridge forward_delay 0\b/);
        expect(link).toMatch(/\bstp_state 0\b/);
        expect(link).toMatch(/[<,]UP[,>]/);
        expect(n.exec("ip -o -4 addr show dev hscbr0")).toContain("inet 10.251.0.1/24");
        expect(n.exec("ip -o link show hscu0")).toContain("master hscbr0");
        expect(n.exec("ip -o link show hscu0")).toMatch(/[<,]UP[,>]/);
        expect(stateFiles(LAB)).toEqual({
            "bridge/hscbr0/created": "yes\n",
            "bridge/hscbr0/address": "10.251.0.1/24\n",
            "bridge/hscbr0/uplink": "hscu0 down\n",
        });

        const after1 = netSnapshot(n.name);
        const markers1 = stateFiles(LAB);
        const r2 = run(s.create, { netns: n.name });
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.stderr).toBe("");
        expect(netSnapshot(n.name)).toBe(after1);
        expect(stateFiles(LAB)).toEqual(markers1);

        const d1 = run(s.delete, { netns: n.name });
        expect(d1.code, d1.stderr).toBe(0);
        expect(netSnapshot(n.name)).toBe(before);
        expect(stateDirExists(LAB)).toBe(false);
        const d2 = run(s.delete, { netns: n.name });
        expect(d2.code, d2.stderr).toBe(0);
        expect(netSnapshot(n.name)).toBe(before);
    });

    it("adopts a user's bridge: adds only its address, and delete leaves the bridge exactly as it was", () => {
        const n = freshNs("br2");
        n.exec("ip link add hscbr1 type bridge && ip addr add 10.253.0.5/24 dev hscbr1");
        const before = netSnapshot(n.name);
        const s = bridgeScripts(LAB, { name: "hscbr1", address: "10.253.0.1/24" });

        const r = run(s.create, { netns: n.name });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/adopted the existing bridge hscbr1/);
        const addrs = n.exec("ip -o -4 addr show dev hscbr1");
        expect(addrs).toContain("10.253.0.5/24");
        expect(addrs).toContain("10.253.0.1/24");
        expect(n.exec("ip -o link show hscbr1")).toMatch(/[<,]UP[,>]/);
        expect(stateFiles(LAB)).toEqual({ "bridge/hscbr1/adopted": "down\n", "bridge/hscbr1/address": "10.253.0.1/24\n" });

        const again = netSnapshot(n.name);
        expect(run(s.create, { netns: n.name }).code).toBe(0);
        expect(netSnapshot(n.name)).toBe(again);

        const d = run(s.delete, { netns: n.name });
        expect(d.code, d.stderr).toBe(0);
        expect(netSnapshot(n.name)).toBe(before);
        expect(n.exec("ip -o -4 addr show dev hscbr1")).toContain("10.253.0.5/24");
    });

    it("a bridge address that pre-exists is left in place by delete", () => {
        const n = freshNs("br3");
        n.exec("ip link add hscbr2 type bridge && ip addr add 10.254.0.1/24 dev hscbr2 && ip link set hscbr2 up");
        const before = netSnapshot(n.name);
        const s = bridgeScripts(LAB, { name: "hscbr2", address: "10.254.0.1/24" });
        expect(run(s.create, { netns: n.name }).code).toBe(0);
        expect(stateFiles(LAB)).toEqual({ "bridge/hscbr2/adopted": "up\n" });
        expect(run(s.delete, { netns: n.name }).code).toBe(0);
        expect(netSnapshot(n.name)).toBe(before);
    });

    it("changing the address on update removes the one it added before", () => {
        const n = freshNs("br4");
        const before = netSnapshot(n.name);
        expect(run(bridgeScripts(LAB, { name: "hscbr0", address: "10.251.0.1/24" }).create, { netns: n.name }).code).toBe(0);
        const s2 = bridgeScripts(LAB, { name: "hscbr0", address: "10.251.1.1/24" });
        const r = run(s2.create, { netns: n.name });
        expect(r.code, r.stderr).toBe(0);
        const addrs = n.exec("ip -o -4 addr show dev hscbr0");
        expect(addrs).toContain("10.251.1.1/24");
        expect(addrs).not.toContain("10.251.0.1/24");
        expect(run(s2.delete, { netns: n.name }).code).toBe(0);
        expect(netSnapshot(n.name)).toBe(before);
    });

    it("refuses a bridge another lab claims, changing nothing", () => {
        const n = freshNs("br5");
        const a = bridgeScripts(LAB, { name: "hscbr0" });
        expect(run(a.create, { netns: n.name }).code).toBe(0);
        const mid = netSnapshot(n.name);
        const b = bridgeScripts(LAB2, { name: "hscbr0", address: "10.251.0.1/24" });
        const r = run(b.create, { netns: n.name });
        expect(r.code).not.toBe(0);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toMatch(/bridge hscbr0 is already used by lab\(s\) hsct-br on this host .*give this lab another bridge name/);
        expect(netSnapshot(n.name)).toBe(mid);
        expect(stateDirExists(LAB2)).toBe(false);
        // the other lab's delete does nothing to it either
        expect(run(b.delete, { netns: n.name }).code).toBe(0);
        expect(netSnapshot(n.name)).toBe(mid);
        expect(run(a.delete, { netns: n.name }).code).toBe(0);
    });

    it("refuses bad input with one clear line and changes nothing", () => {
        const n = freshNs("br6");
        n.exec("ip link add hscnb0 type veth peer name hscnb0p"); // not a bridge
        n.exec("ip link add hscu1 type veth peer name hscu1p && ip addr add 10.9.9.9/24 dev hscu1"); // NIC with an address
        n.exec("ip link add hscbrx type bridge && ip link set hscu0p master hscbrx"); // enslaved elsewhere
        n.exec("ip addr add 10.251.0.1/24 dev hscu0"); // the wanted address, on another interface
        const before = netSnapshot(n.name);
        const cases: [Parameters<typeof bridgeScripts>[1], RegExp][] = [
            [{ name: "hscbr0", uplink: "nosuchnic0" }, /uplink nosuchnic0 does not exist on this host: set bridge.uplink to a NIC/],
            [{ name: "hscnb0" }, /interface hscnb0 exists but is not a bridge: choose another bridge name/],
            [{ name: "hscbr0", uplink: "hscu1" }, /uplink hscu1 has address\(es\) 10\.9\.9\.9\/24 .*enslaving it would cut them off/],
            [{ name: "hscbr0", uplink: "hscu0p" }, /uplink hscu0p is already enslaved to hscbrx: release it first/],
            [{ name: "hscbr0", address: "10.251.0.1/24" }, /address 10\.251\.0\.1 is already configured on hscu0/],
        ];
        for (const [spec, message] of cases) {
            const r = run(bridgeScripts(LAB, spec).create, { netns: n.name });
            expect(r.code, JSON.stringify(spec)).not.toBe(0);
            expect(r.stderr).toMatch(message);
            expect(r.stderr.trim().split("\n")).toHaveLength(1);
            expect(r.stderr).toMatch(/^kvm-ha-lab\[hsct-br\] bridge \S+: error: /);
            expect(netSnapshot(n.name)).toBe(before);
            expect(stateDirExists(LAB)).toBe(false);
        }
    });

    it("does not delete a bridge it created while ports it did not add are attached", () => {
        const n = freshNs("br7");
        const before = netSnapshot(n.name);
        const s = bridgeScripts(LAB, { name: "hscbr0" });
        expect(run(s.create, { netns: n.name }).code).toBe(0);
        n.exec("ip link set hscu0 master hscbr0");
        const r = run(s.delete, { netns: n.name });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/bridge hscbr0 still has ports that this lab did not add: hscu0; stop or detach them/);
        expect(n.exec("ip -o link show hscbr0")).toContain("hscbr0");
        n.exec("ip link set hscu0 nomaster");
        expect(run(s.delete, { netns: n.name }).code).toBe(0);
        expect(netSnapshot(n.name)).toBe(before);
    });

    it("rejects invalid names before rendering", () => {
        expect(() => bridgeScripts(LAB, { name: "this-name-is-too-long" })).toThrow(/not a Linux interface name/);
        expect(() => bridgeScripts(LAB, { name: "br0", address: "10.0.0.1" })).toThrow(/not IPv4 CIDR/);
        expect(() => bridgeScripts("Bad Lab", { name: "br0" })).toThrow(/lab name/);
    });
});
