/**
 * The host scripts of guests that boot an OS, run for real as root on this machine (no libvirtd, no network):
 *   - diskImageScripts with a base image: a qcow2 overlay backed by the base (symlinks resolved), created once, left
 *     alone when the path exists, deleted (only the overlay) on delete; a missing base fails before anything changes;
 *   - seedScripts: a cidata volume cloud-init's NoCloud finds (label cidata, the three files, byte for byte), rebuilt in
 *     place on a second run, never written over a file it did not write, removed on delete.
 * Every script runs twice (idempotent) and its delete leaves no marker behind.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labNames } from "../../components/names";
import { seedBundle, type CloudInitSeed } from "../../components/render/cloud-init";
import { diskImageScripts } from "../../components/scripts/disk-image";
import { seedScripts } from "../../components/scripts/seed";
import { missingPrereqs, ok, run, skipBecause } from "./scripts-harness";

const LAB = "hgo";
const skip = skipBecause("scripts-guest-os", missingPrereqs(["qemu-img", "genisoimage", "isoinfo", "sha256sum"]));
const dir = mkdtempSync(join(tmpdir(), "kvmlab-guest-os-"));
const stateDir = labNames(LAB).stateDir;

function markers(prefix: string): string[] {
    const r = run(`cd ${stateDir} 2>/dev/null && find . -type f | sed 's|^./||' | grep '^${prefix}' || true`);
    return r.stdout.split("\n").filter(Boolean);
}

const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

describe.skipIf(skip)("host scripts of guests that boot an OS", () => {
    beforeAll(() => {
        if (existsSync(stateDir)) throw new Error(`${stateDir} exists: leftovers of an earlier run; remove it`);
        ok(`qemu-img create -q -f qcow2 ${dir}/base.qcow2 1G`);
        symlinkSync(`${dir}/base.qcow2`, `${dir}/current.qcow2`);
    });
    afterAll(() => {
        rmSync(dir, { recursive: true, force: true });
        rmSync(stateDir, { recursive: true, force: true });
    });

    it("overlay: a qcow2 backed by the resolved base, created once, deleted alone; the base is only read", () => {
        const baseHash = sha(`${dir}/base.qcow2`);
        const path = `${dir}/guests/node1.qcow2`;
        const s = diskImageScripts(LAB, { path, format: "qcow2", bus: "virtio", target: "vda", backingImage: `${dir}/current.qcow2` });
        const c1 = ok(s.create);
        expect(c1.stderr).toContain(`created disk image ${path} (qcow2 overlay of ${dir}/base.qcow2)`);
        const info = JSON.parse(ok(`qemu-img info -U --output=json ${path}`).stdout) as Record<string, unknown>;
        expect(info).toMatchObject({ format: "qcow2", "backing-filename": `${dir}/base.qcow2`, "backing-filename-format": "qcow2", "virtual-size": 1024 ** 3 });
        const inode = statSync(path).ino;
        ok(s.create); // idempotent: the existing overlay is left as it is
        expect(statSync(path).ino).toBe(inode);
        expect(markers("disk/")).toHaveLength(3); // path, inode, dirs
        // a size grows the overlay beyond the base
        const sized = diskImageScripts(LAB, { path: `${dir}/guests/node2.qcow2`, format: "qcow2", bus: "virtio", target: "vda", backingImage: `${dir}/base.qcow2`, createSizeGiB: 2 });
        ok(sized.create);
        expect(JSON.parse(ok(`qemu-img info -U --output=json ${dir}/guests/node2.qcow2`).stdout)["virtual-size"]).toBe(2 * 1024 ** 3);
        ok(sized.delete);
        const d = ok(s.delete);
        expect(d.stderr).toContain(`removed disk image ${path}`);
        ok(s.delete);
        expect(existsSync(path)).toBe(false);
        expect(existsSync(`${dir}/guests`)).toBe(false); // the directory it created, now empty
        expect(markers("disk/")).toEqual([]);
        expect(sha(`${dir}/base.qcow2`)).toBe(baseHash);
    });

    it("overlay: a missing base image fails with its path before anything is created", () => {
        const s = diskImageScripts(LAB, { path: `${dir}/g2/node1.qcow2`, format: "qcow2", bus: "virtio", target: "vda", backingImage: `${dir}/missing.qcow2` });
        const r = run(s.create);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain(`base image ${dir}/missing.qcow2 (the guest's image) cannot be found on this host`);
        expect(existsSync(`${dir}/g2`)).toBe(false);
        expect(markers("disk/")).toEqual([]);
    });

    const seed: CloudInitSeed = {
        metaData: "instance-id: node1\nlocal-hostname: node1\n",
        userData: "#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3Nza test\n",
        networkConfig: "version: 2\nethernets: {}\n",
    };

    it("seed: a cidata ISO with the three files, rebuilt in place, never over a file it did not write, removed on delete", () => {
        const path = `${dir}/seeds/node1-cidata.iso`;
        const s = seedScripts(LAB, path);
        ok(s.create, { stdin: seedBundle(seed) });
        expect(ok(`isoinfo -d -i ${path} | sed -n 's/^Volume id: //p'`).stdout).toBe("cidata");
        for (const [name, text] of [["meta-data", seed.metaData], ["user-data", seed.userData], ["network-config", seed.networkConfig]]) {
            expect(ok(`isoinfo -R -i ${path} -x /${name}`).stdout + "\n", name).toBe(text);
        }
        expect(statSync(path).mode & 0o777).toBe(0o644);
        // a second run with new content rebuilds it (our file)
        const changed = { ...seed, metaData: "instance-id: node1\nlocal-hostname: renamed\n" };
        ok(s.create, { stdin: seedBundle(changed) });
        expect(ok(`isoinfo -R -i ${path} -x /meta-data`).stdout + "\n").toBe(changed.metaData);
        // delete removes it, and the directory it made
        ok(s.delete);
        ok(s.delete);
        expect(existsSync(path)).toBe(false);
        expect(existsSync(`${dir}/seeds`)).toBe(false);
        expect(markers("seed/")).toEqual([]);
    });

    it("seed: refuses to write over a file that is not its own, and bad stdin", () => {
        const path = `${dir}/user-file.iso`;
        writeFileSync(path, "the user's file");
        const s = seedScripts(LAB, path);
        const r = run(s.create, { stdin: seedBundle(seed) });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain(`${path} exists and is not the seed this lab wrote`);
        expect(readFileSync(path, "utf8")).toBe("the user's file");
        ok(s.delete); // leaves it alone
        expect(readFileSync(path, "utf8")).toBe("the user's file");
        const other = seedScripts(LAB, `${dir}/bad-cidata.iso`);
        expect(run(other.create, { stdin: "vendor-data aGk=\n" }).stderr).toContain("unexpected seed file 'vendor-data'");
        expect(existsSync(`${dir}/bad-cidata.iso`)).toBe(false);
        expect(markers("seed/")).toEqual([]);
    });
});
