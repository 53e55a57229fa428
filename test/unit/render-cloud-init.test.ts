/**
 * The cloud-init NoCloud seed renderer: what each file means (parsed back as YAML), that it holds no secret, that it is
 * deterministic.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { validateLabConfig } from "../../components/config";
import { renderCloudInitSeed, seedBundle, SEED_FILES } from "../../components/render/cloud-init";
import type { LabSpec } from "../../components/spec";
import { parseStackFile } from "../../components/stack-file";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Qta2V5LWZvci1yZW5kZXItY2xvdWQtaW5pdA== lab";

function labSpec(edit?: (raw: Record<string, any>) => void): LabSpec { // eslint-disable-line @typescript-eslint/no-explicit-any
    const { raw } = parseStackFile(readFileSync("stacks/Pulumi.lab.yaml", "utf8"));
    const cfg = structuredClone(raw) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    edit?.(cfg);
    return validateLabConfig(cfg, { stack: "lab", secretKeys: new Set(), readFile: () => undefined });
}

describe("renderCloudInitSeed: what the seed says", () => {
    const spec = labSpec();

    it.each(["node1", "node2"].map((n, i) => [n, i] as const))("%s: hostname, root's key, static address on its cluster NIC", (name, i) => {
        const guest = spec.guests[i];
        const def = guest.definition;
        if (def.kind !== "rendered" || def.seed === undefined) throw new Error("the lab stack's guests have seeds");
        const seed = renderCloudInitSeed(spec, guest, KEY);

        expect(parse(seed.metaData)).toEqual({ "instance-id": name, "local-hostname": name });

        expect(seed.userData.startsWith("#cloud-config\n")).toBe(true);
        const user = parse(seed.userData);
        expect(user.ssh_authorized_keys).toEqual([KEY]);
        expect(user.disable_root).toBe(false);
        // cloud-init restarts sshd whenever ssh_pwauth changes sshd_config: after the readiness probe has seen it
        expect(user).not.toHaveProperty("ssh_pwauth");
        expect(user.hostname).toBe(name);
        // every cluster node resolves to its cluster address
        expect(user.write_files).toEqual([
            { path: "/etc/hosts", append: true, permissions: "0644", content: "# kvm-ha-lab: cluster nodes\n10.99.0.11 node1\n10.99.0.12 node2\n" },
        ]);

        const net = parse(seed.networkConfig);
        expect(net).toEqual({
            version: 2,
            ethernets: { cluster0: { match: { macaddress: def.nics[0].mac }, addresses: [`10.99.0.${11 + i}/24`], dhcp4: false, dhcp6: false } },
        });
        // no gateway, no DNS: the lab network is private
        expect(seed.networkConfig).not.toMatch(/gateway|routes|nameservers/);
    });

    it("holds no secret and no private key, only the public key given", () => {
        const seed = renderCloudInitSeed(spec, spec.guests[0], KEY);
        const all = seed.metaData + seed.userData + seed.networkConfig;
        expect(all).not.toMatch(/PRIVATE|password|passwd|fence_xvm\.key/i);
        expect(all.split(KEY)).toHaveLength(2);
    });

    it("is deterministic, and the bundle carries exactly the three files", () => {
        const a = renderCloudInitSeed(spec, spec.guests[1], KEY);
        expect(renderCloudInitSeed(labSpec(), labSpec().guests[1], KEY)).toEqual(a);
        const bundle = seedBundle(a);
        const lines = bundle.trimEnd().split("\n").map((l) => l.split(" "));
        expect(lines.map(([n]) => n)).toEqual([...SEED_FILES]);
        const back = Object.fromEntries(lines.map(([n, b]) => [n, Buffer.from(b, "base64").toString("utf8")]));
        expect(back).toEqual({ "meta-data": a.metaData, "user-data": a.userData, "network-config": a.networkConfig });
    });

    it("follows the spec: another subnet and prefix, a given MAC, a cluster of three", () => {
        const s = labSpec((raw) => {
            raw.hosts[0].bridge.address = "192.168.50.1/26";
            raw.guests[0].address = "192.168.50.21";
            raw.guests[1].address = "192.168.50.22";
            raw.guests[0].nics = [{ mac: "52:54:00:aa:bb:cc" }];
            raw.guests.push({ ...raw.guests[1], name: "node3", address: "192.168.50.23", disks: [{ path: "/var/lib/libvirt/images/node3.qcow2" }] });
            raw.guestCluster.nodes.push("node3");
        });
        const seed = renderCloudInitSeed(s, s.guests[0], KEY);
        expect(parse(seed.networkConfig).ethernets.cluster0).toMatchObject({ match: { macaddress: "52:54:00:aa:bb:cc" }, addresses: ["192.168.50.21/26"] });
        expect(parse(seed.userData).write_files[0].content).toBe("# kvm-ha-lab: cluster nodes\n192.168.50.21 node1\n192.168.50.22 node2\n192.168.50.23 node3\n");
        expect(parse(renderCloudInitSeed(s, s.guests[2], KEY).metaData)["local-hostname"]).toBe("node3");
    });

    it("refuses a guest without a seed and a key that is not one public key line", () => {
        const s = labSpec((raw) => (raw.guests[0].cloudInit = false));
        expect(() => renderCloudInitSeed(s, s.guests[0], KEY)).toThrow(/has no cloud-init seed/);
        expect(() => renderCloudInitSeed(spec, spec.guests[0], "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")).toThrow(/not one OpenSSH public key line/);
        expect(() => renderCloudInitSeed(spec, spec.guests[0], `${KEY}\n${KEY}`)).toThrow(/not one OpenSSH public key line/);
    });
});

// cloud-init itself judges the seed inside a real guest: test/e2e/real-guests.test.ts (cloud-init schema --system).
