/**
 * Guests that boot an OS: `image` (overlay on disks[0]), direct kernel boot, the cloud-init seed, the guest's SSH
 * connection defaults, and the field-named errors validation gives before anything changes.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, validateLabConfig, type ValidationEnv } from "../../components/config";
import type { LabSpec } from "../../components/spec";
import { parseStackFile } from "../../components/stack-file";

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const IMAGE_DIR = "/var/lib/libvirt/images/kvm-ha-lab-debian12";

function lab(edit?: (raw: Raw) => void): Raw {
    const { raw } = parseStackFile(readFileSync("stacks/Pulumi.lab.yaml", "utf8"));
    const cfg = structuredClone(raw) as Raw;
    edit?.(cfg);
    return cfg;
}

function env(over: Partial<ValidationEnv> = {}): ValidationEnv {
    return { stack: "lab", secretKeys: new Set(), readFile: () => undefined, ...over };
}

function problems(raw: Raw, e: ValidationEnv = env()): { path: string; message: string }[] {
    try {
        validateLabConfig(raw, e);
    } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems;
    }
    throw new Error("config was accepted");
}

function rendered(spec: LabSpec, i: number) {
    const def = spec.guests[i].definition;
    if (def.kind !== "rendered") throw new Error("expected a rendered guest");
    return def;
}

describe("guests booted from an image: what the spec says", () => {
    it("the lab stack: overlay of the image on disks[0], direct kernel boot, a seed with the cluster address, SSH with the lab key", () => {
        const spec = validateLabConfig(lab(), env());
        for (const [i, name] of ["node1", "node2"].entries()) {
            const def = rendered(spec, i);
            expect(def.domainType).toBe("qemu");
            expect(def.disks).toEqual([
                { path: `/var/lib/libvirt/images/${name}.qcow2`, format: "qcow2", bus: "virtio", target: "vda", createSizeGiB: undefined, keepOnDestroy: false, backingImage: `${IMAGE_DIR}/disk.qcow2` },
            ]);
            expect(def.boot).toEqual({ kernel: `${IMAGE_DIR}/vmlinuz`, initrd: `${IMAGE_DIR}/initrd.img`, cmdline: "console=ttyS0 root=/dev/vda rw net.ifnames=0 mitigations=off" });
            expect(def.seed).toEqual({ path: `/var/lib/libvirt/images/${name}-cidata.iso`, target: "vdb", mac: def.nics[0].mac, address: `10.99.0.${11 + i}`, prefix: 24 });
            // reached at its cluster address as root, with the lab's own key (no secret config key)
            expect(spec.guests[i].connection).toEqual({ kind: "ssh", address: `10.99.0.${11 + i}`, user: "root", port: 22 });
        }
    });

    it("an image without disks gets its overlay at the default path; cloudInit: false means no seed and no connection", () => {
        const spec = validateLabConfig(
            lab((raw) => {
                delete raw.guests[0].disks;
                raw.guests[1].cloudInit = false;
            }),
            env(),
        );
        expect(rendered(spec, 0).disks.map((d) => [d.path, d.backingImage])).toEqual([["/var/lib/libvirt/images/node1.qcow2", `${IMAGE_DIR}/disk.qcow2`]]);
        expect(rendered(spec, 1).seed).toBeUndefined();
        expect(spec.guests[1].connection).toBeUndefined();
        expect(rendered(spec, 1).disks[0].backingImage).toBe(`${IMAGE_DIR}/disk.qcow2`);
    });

    it("ssh: the address defaults to the cluster address; a user's key secret replaces the lab's", () => {
        const spec = validateLabConfig(
            lab((raw) => {
                raw.guests[0].ssh = { port: 2222 };
                raw.guests[1].ssh = { privateKeySecret: "myKey", user: "admin" };
            }),
            env({ secretKeys: new Set(["myKey"]) }),
        );
        expect(spec.guests[0].connection).toEqual({ kind: "ssh", address: "10.99.0.11", user: "root", port: 2222, privateKeySecret: undefined });
        expect(spec.guests[1].connection).toEqual({ kind: "ssh", address: "10.99.0.12", user: "admin", port: 22, privateKeySecret: "myKey" });
    });

    it("a guest without an image keeps the old default: ssh with the sshPrivateKey secret, no seed", () => {
        const raw = lab((r) => {
            for (const k of ["image", "kernel", "initrd", "cmdline"]) delete r.guests[0][k];
            r.guests[0].ssh = {};
        });
        const spec = validateLabConfig(raw, env({ secretKeys: new Set(["sshPrivateKey"]) }));
        expect(spec.guests[0].connection).toEqual({ kind: "ssh", address: "10.99.0.11", user: "root", port: 22, privateKeySecret: "sshPrivateKey" });
        expect(rendered(spec, 0).seed).toBeUndefined();
        expect(rendered(spec, 0).disks[0].backingImage).toBeUndefined();
    });

    it("checks the image, kernel and initrd exist on the machine running pulumi (a local host), when it can", () => {
        const seen: string[] = [];
        const spec = validateLabConfig(lab(), env({ exists: (p) => (seen.push(p), true) }));
        expect(spec.guests).toHaveLength(2);
        expect([...new Set(seen)].sort()).toEqual([`${IMAGE_DIR}/disk.qcow2`, `${IMAGE_DIR}/initrd.img`, `${IMAGE_DIR}/vmlinuz`]);
    });
});

describe("guests booted from an image: errors name the field, the value and the fix", () => {
    it("an image that cannot be found on the host", () => {
        const found = problems(lab(), env({ exists: (p) => !p.endsWith("disk.qcow2") }));
        expect(found.map((p) => p.path)).toEqual(["guests[0].image", "guests[1].image"]);
        expect(found[0].message).toContain(`"${IMAGE_DIR}/disk.qcow2" cannot be found on host kvmhost`);
        expect(found[0].message).toContain("npm run image");
    });

    it("a kernel or initrd that cannot be found", () => {
        const found = problems(lab(), env({ exists: (p) => !p.endsWith("vmlinuz") && !p.endsWith("initrd.img") }));
        expect(found.map((p) => p.path)).toEqual(["guests[0].kernel", "guests[0].initrd", "guests[1].kernel", "guests[1].initrd"]);
        expect(found[0].message).toMatch(/vmlinuz" cannot be found on host kvmhost/);
    });

    // These two pin the guest cluster to cman: the lab stack's Pacemaker cluster adds its own problem at the same
    // field (corosync needs every node's address), which is not what these rules are about.
    it("a seed without an address on the cluster network", () => {
        const found = problems(lab((r) => ((r.guestCluster.stack = "cman"), delete r.guests[1].address)));
        expect(found).toEqual([
            {
                path: "guests[1].address",
                message: expect.stringMatching(/^is not set, but the guest boots with a cloud-init seed \(image is set\), which gives it its static address on the cluster network 10\.99\.0\.0\/24: set address \(e\.g\. 10\.99\.0\.12\), or set cloudInit: false$/),
            },
        ]);
    });

    it("a guest address outside the cluster subnet", () => {
        const found = problems(lab((r) => ((r.guestCluster.stack = "cman"), (r.guests[0].address = "192.168.7.11"))));
        expect(found.map((p) => p.path)).toEqual(["guests[0].address"]);
        expect(found[0].message).toContain('"192.168.7.11" is outside the cluster network 10.99.0.0/24');
    });

    it("initrd or cmdline without a kernel", () => {
        const found = problems(lab((r) => delete r.guests[0].kernel));
        expect(found.map((p) => p.path)).toEqual(["guests[0].initrd", "guests[0].cmdline"]);
        expect(found[0].message).toContain("set kernel");
    });

    it("an overlay that is not qcow2, or is the image itself", () => {
        expect(problems(lab((r) => (r.guests[0].disks[0].format = "raw")))).toEqual([
            { path: "guests[0].disks[0].format", message: expect.stringContaining("a copy-on-write overlay is a qcow2 file; use format: qcow2") },
        ]);
        expect(problems(lab((r) => (r.guests[0].disks[0].path = `${IMAGE_DIR}/disk.qcow2`))).map((p) => p.path)).toEqual(["guests[0].disks[0].path"]);
    });

    it("an image, kernel or seed together with the guest's own XML", () => {
        const xml = "<domain type='kvm'><name>node1</name><uuid>11111111-1111-4111-8111-111111111111</uuid></domain>";
        const found = problems(
            lab((r) => {
                r.guests[0] = { name: "node1", host: "kvmhost", xml: "/srv/node1.xml", image: `${IMAGE_DIR}/disk.qcow2`, cloudInit: true, address: "10.99.0.11" };
            }),
            env({ readFile: () => xml }),
        );
        expect(found.map((p) => p.path)).toContain("guests[0]");
        expect(found.find((p) => p.path === "guests[0]")!.message).toMatch(/also image, cloudInit/);
    });

    it("a relative image path", () => {
        expect(problems(lab((r) => (r.guests[0].image = "images/disk.qcow2"))).map((p) => p.path)).toEqual(["guests[0].image"]);
    });
});
