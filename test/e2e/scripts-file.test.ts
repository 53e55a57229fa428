/**
 * fileScripts, run for real on this machine under a private temporary directory.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { labNames } from "../../components/names";
import { fileScripts } from "../../components/scripts/file";
import { dropState, fileFacts, missingPrereqs, run, sha256, Shims, skipBecause, stateDirExists, stateFiles } from "./scripts-harness";

const LAB = "hsct-file";
const ROOT = `/tmp/hsc-file-${process.pid}`;
const skip = skipBecause("scripts-file", missingPrereqs(["sha256sum", "base64", "mktemp", "stat"]));

describe.skipIf(skip)("file script", () => {
    beforeAll(() => {
        dropState(LAB);
        rmSync(ROOT, { recursive: true, force: true });
    });
    afterEach(() => {
        dropState(LAB);
        rmSync(ROOT, { recursive: true, force: true });
    });
    afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

    const keyOpts = (path: string) => ({ id: "fence-key", path, mode: "0400", owner: "root" as const, decodeBase64: true, refuseSharedFs: true, sizeBytes: 4096 });

    it("installs a base64 key as 4096 bytes, 0400 root, creating and recording its directories; never prints it", () => {
        mkdirSync(ROOT);
        const path = `${ROOT}/etc/cluster/fence_xvm.key`;
        const key = randomBytes(4096);
        const b64 = key.toString("base64");
        const s = fileScripts(LAB, keyOpts(path));
        expect(s.create).not.toContain(b64.slice(0, 40));

        const r1 = run(s.create, { stdin: b64 });
        expect(r1.code, r1.stderr).toBe(0);
        const f1 = fileFacts(path)!;
        expect(f1).toMatchObject({ size: 4096, mode: "400", uid: 0, gid: 0, sha256: sha256(key) });
        expect(readFileSync(path).equals(key)).toBe(true);
        expect(fileFacts(labNames(LAB).stateDir)).toMatchObject({ mode: "700", uid: 0 });
        expect(stateFiles(LAB)).toEqual({
            "file/fence-key/sha256": `${sha256(key)}\n`,
            "file/fence-key/path": `${path}\n`,
            "file/fence-key/dirs": `${ROOT}/etc\n${ROOT}/etc/cluster\n`,
        });
        for (const out of [r1.stdout, r1.stderr]) {
            expect(out).not.toContain(b64.slice(0, 24));
            expect(out).not.toContain(key.toString("hex").slice(0, 24));
        }
        // no temporary file left next to it
        expect(run(`ls -A ${ROOT}/etc/cluster`).stdout).toBe("fence_xvm.key");

        // again: nothing changes, not even the inode or mtime
        const r2 = run(s.create, { stdin: b64 });
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.stderr).toBe("");
        expect(fileFacts(path)).toEqual(f1);

        // rotation: the file is ours (its hash is the recorded one), so new content replaces it
        const key2 = randomBytes(4096);
        const r3 = run(s.create, { stdin: key2.toString("base64") });
        expect(r3.code, r3.stderr).toBe(0);
        expect(fileFacts(path)).toMatchObject({ sha256: sha256(key2), mode: "400" });
        expect(stateFiles(LAB)["file/fence-key/sha256"]).toBe(`${sha256(key2)}\n`);

        // mode drift (e.g. fence_virtd sets 0600) is repaired
        chmodSync(path, 0o600);
        expect(run(s.create, { stdin: key2.toString("base64") }).code).toBe(0);
        expect(fileFacts(path)?.mode).toBe("400");

        const d = run(s.delete);
        expect(d.code, d.stderr).toBe(0);
        expect(existsSync(`${ROOT}/etc`)).toBe(false);
        expect(existsSync(ROOT)).toBe(true); // it existed before
        expect(stateDirExists(LAB)).toBe(false);
        expect(run(s.delete).code).toBe(0);
    });

    it("handles paths with spaces and quotes, and plain (not base64) content", () => {
        mkdirSync(ROOT);
        const path = `${ROOT}/it's a dir/cluster.conf`;
        const text = "<cluster name='x'>\n$(touch /tmp/hsc-should-not-exist)\n</cluster>\n";
        const s = fileScripts(LAB, { id: "conf", path, mode: "640" });
        const r = run(s.create, { stdin: text });
        expect(r.code, r.stderr).toBe(0);
        expect(readFileSync(path, "utf8")).toBe(text);
        expect(fileFacts(path)?.mode).toBe("640");
        expect(existsSync("/tmp/hsc-should-not-exist")).toBe(false);
        expect(run(s.delete).code).toBe(0);
        expect(existsSync(`${ROOT}/it's a dir`)).toBe(false);
    });

    it("refuses a user's file with other content, and leaves it on delete", () => {
        mkdirSync(`${ROOT}/etc`, { recursive: true });
        const path = `${ROOT}/etc/fence_xvm.key`;
        writeFileSync(path, "the user's key", { mode: 0o600 });
        const before = fileFacts(path);
        const s = fileScripts(LAB, keyOpts(path));
        const r = run(s.create, { stdin: randomBytes(4096).toString("base64") });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/fence_xvm\.key exists and was not written by kvm-ha-lab lab hsct-file \(or was changed since\): move it away/);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(fileFacts(path)).toEqual(before);
        expect(run(`ls -A ${ROOT}/etc`).stdout).toBe("fence_xvm.key");
        expect(stateDirExists(LAB)).toBe(false);
        expect(run(s.delete).code).toBe(0);
        expect(fileFacts(path)).toEqual(before);
    });

    it("adopts a file that already has exactly the content, mode and owner, and leaves it on delete", () => {
        mkdirSync(`${ROOT}/etc`, { recursive: true });
        const path = `${ROOT}/etc/fence_xvm.key`;
        const key = randomBytes(4096);
        writeFileSync(path, key, { mode: 0o400 });
        const before = fileFacts(path);
        const s = fileScripts(LAB, keyOpts(path));
        const r = run(s.create, { stdin: key.toString("base64") });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/already has exactly this content, mode and owner: left as it is/);
        expect(fileFacts(path)).toEqual(before);
        expect(run(s.delete).code).toBe(0);
        expect(fileFacts(path)).toEqual(before);
    });

    it("a file changed after we wrote it is refused by create and left by delete, which says so", () => {
        mkdirSync(ROOT);
        const path = `${ROOT}/app.conf`;
        const s = fileScripts(LAB, { id: "app", path, mode: "0644" });
        expect(run(s.create, { stdin: "ours\n" }).code).toBe(0);
        writeFileSync(path, "edited by the admin\n");
        const r = run(s.create, { stdin: "ours, new\n" });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/app\.conf exists and was not written by kvm-ha-lab lab hsct-file \(or was changed since\)/);
        const d = run(s.delete);
        expect(d.code).toBe(0);
        expect(d.stderr).toMatch(/left .*app\.conf in place: it changed since this lab wrote it/);
        expect(readFileSync(path, "utf8")).toBe("edited by the admin\n");
    });

    it("moves the file when its path changes", () => {
        mkdirSync(ROOT);
        const a = fileScripts(LAB, { id: "moved", path: `${ROOT}/a/f`, mode: "0644" });
        const b = fileScripts(LAB, { id: "moved", path: `${ROOT}/b/f`, mode: "0644" });
        expect(run(a.create, { stdin: "x\n" }).code).toBe(0);
        const r = run(b.create, { stdin: "x\n" });
        expect(r.code, r.stderr).toBe(0);
        expect(existsSync(`${ROOT}/a/f`)).toBe(false);
        expect(readFileSync(`${ROOT}/b/f`, "utf8")).toBe("x\n");
        expect(run(b.delete).code).toBe(0);
        expect(existsSync(`${ROOT}/b`)).toBe(false);
        expect(existsSync(`${ROOT}/a`)).toBe(false);
    });

    it("refuses bad content before creating anything", () => {
        mkdirSync(ROOT);
        const path = `${ROOT}/new/dir/fence_xvm.key`;
        const s = fileScripts(LAB, keyOpts(path));
        const cases: [string, RegExp][] = [
            ["@@@ not base64 @@@\n", /the content on stdin is not valid base64/],
            [randomBytes(100).toString("base64"), /is 100 bytes, not 4096: pass the complete file/],
        ];
        for (const [stdin, message] of cases) {
            const r = run(s.create, { stdin });
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(message);
            expect(existsSync(`${ROOT}/new`)).toBe(false);
            expect(stateDirExists(LAB)).toBe(false);
        }
    });

    it("refuses a shared filesystem (findmnt shim reporting nfs4/glusterfs: no network filesystem can be mounted here)", () => {
        mkdirSync(ROOT);
        const shims = new Shims("file");
        try {
            for (const fstype of ["nfs4", "fuse.glusterfs", "gfs2"]) {
                shims.add("findmnt", `echo ${fstype}`);
                const s = fileScripts(LAB, keyOpts(`${ROOT}/shared/fence_xvm.key`));
                const r = run(s.create, { stdin: randomBytes(4096).toString("base64"), env: shims.env() });
                expect(r.code).not.toBe(0);
                expect(r.stderr).toMatch(new RegExp(`would be on a shared filesystem \\(${fstype.replace(".", "\\.")} at ${ROOT}\\)`));
                expect(existsSync(`${ROOT}/shared`)).toBe(false);
            }
            // without refuseSharedFs the same directory is fine
            const plain = fileScripts(LAB, { id: "plain", path: `${ROOT}/shared/x`, mode: "0644" });
            expect(run(plain.create, { stdin: "x", env: shims.env() }).code).toBe(0);
            expect(run(plain.delete).code).toBe(0);
        } finally {
            shims.destroy();
        }
    });

    it("removes a directory two files share with whichever delete removes the last file (creates run in parallel)", () => {
        mkdirSync(ROOT);
        const dir = `${ROOT}/xml_defs`;
        const a = fileScripts(LAB, { id: "domain-xml-a", path: `${dir}/a.xml`, mode: "0644" });
        const b = fileScripts(LAB, { id: "domain-xml-b", path: `${dir}/b.xml`, mode: "0644" });
        // a makes the directory (and records it); b finds it there.
        expect(run(a.create, { stdin: "<domain/>" }).code).toBe(0);
        expect(run(b.create, { stdin: "<domain/>" }).code).toBe(0);
        // a goes first while b's file is still inside: the directory cannot go yet ...
        const da = run(a.delete);
        expect(da.code, da.stderr).toBe(0);
        expect(existsSync(dir)).toBe(true);
        expect(existsSync(`${dir}/b.xml`)).toBe(true);
        // ... and goes with b's file, though b never recorded creating it.
        const db = run(b.delete);
        expect(db.code, db.stderr).toBe(0);
        expect(existsSync(dir)).toBe(false);
        expect(existsSync(ROOT)).toBe(true);
        expect(stateDirExists(LAB)).toBe(false);
    });

    it("leaves a shared directory that holds a user's file, removing only ours", () => {
        mkdirSync(ROOT);
        const dir = `${ROOT}/xml_defs`;
        const a = fileScripts(LAB, { id: "domain-xml-a", path: `${dir}/a.xml`, mode: "0644" });
        expect(run(a.create, { stdin: "<domain/>" }).code).toBe(0);
        writeFileSync(`${dir}/users.xml`, "<domain/>");
        expect(run(a.delete).code).toBe(0);
        expect(existsSync(`${dir}/a.xml`)).toBe(false);
        expect(readFileSync(`${dir}/users.xml`, "utf8")).toBe("<domain/>");
    });

    it("rejects invalid options before rendering", () => {
        expect(() => fileScripts(LAB, { id: "a/b", path: "/x", mode: "0644" })).toThrow(/file id/);
        expect(() => fileScripts(LAB, { id: "a", path: "relative", mode: "0644" })).toThrow(/absolute path/);
        expect(() => fileScripts(LAB, { id: "a", path: "/x/../y", mode: "0644" })).toThrow(/absolute path/);
        expect(() => fileScripts(LAB, { id: "a", path: "/x", mode: "rw" })).toThrow(/octal mode/);
    });
});
