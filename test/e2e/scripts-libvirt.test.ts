/**
 * libvirtdScripts, domainsScripts, domainStartScripts and diskImageScripts, run for real against this machine's
 * libvirt (qemu:///system, domain type qemu: TCG, as /dev/kvm is not usable here). The suite starts virtlogd and
 * libvirtd through libvirtdScripts when they are not running and stops only what that started. Every domain it makes is
 * named hsc-<purpose>-<pid>: 32 MiB, no disk, no NIC.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { create } from "xmlbuilder2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { diskImageScripts } from "../../components/scripts/disk-image";
import { domainsBundle, domainsScripts } from "../../components/scripts/domains";
import { fileScripts } from "../../components/scripts/file";
import { legacyDefineDelete } from "./legacy-domain-scripts";
import { domainStartScripts } from "../../components/scripts/domain-start";
import { libvirtdScripts } from "../../components/scripts/libvirtd";
import { dropState, fileFacts, missingPrereqs, ok, pidsMatching, run, Shims, skipBecause, stateDirExists, stateFiles } from "./scripts-harness";

const LAB = "hsct-lv";
const LAB_SHIM = "hsct-lvs";
const LAB_OTHER = "hsct-lvo";
const DIR = `/tmp/hsc-libvirt-${process.pid}`;
const OURS = `hsc-dom-${process.pid}`;

function domainXml(name: string, uuid: string): string {
    return create({ version: "1.0" })
        .ele("domain", { type: "qemu" })
        .ele("name").txt(name).up()
        .ele("uuid").txt(uuid).up()
        .ele("memory", { unit: "MiB" }).txt("32").up()
        .ele("vcpu").txt("1").up()
        .ele("os").ele("type", { arch: "x86_64", machine: "pc" }).txt("hvm").up().up()
        .ele("on_poweroff").txt("destroy").up()
        .ele("devices")
        .ele("emulator").txt("/usr/bin/qemu-system-x86_64").up()
        .ele("memballoon", { model: "none" }).up()
        .up()
        .end({ prettyPrint: true });
}

const virsh = (args: string) => run(`virsh -q -c qemu:///system ${args}`);
const domState = (name: string) => virsh(`domstate ${name}`).stdout.trim();
const listAll = () => virsh("list --all --name").stdout.split("\n").filter((n) => n.startsWith("hsc-")).sort().join(",");

const skip = skipBecause(
    "scripts-libvirt",
    missingPrereqs(["virsh", "libvirtd", "qemu-img", "qemu-system-x86_64", "sha256sum"], () =>
        existsSync("/usr/bin/qemu-system-x86_64") ? undefined : "/usr/bin/qemu-system-x86_64",
    ),
);

describe.skipIf(skip)("libvirt scripts", () => {
    let started: Record<string, string> = {};

    beforeAll(() => {
        for (const lab of [LAB, LAB_SHIM, LAB_OTHER]) dropState(lab);
        rmSync(DIR, { recursive: true, force: true });
        mkdirSync(DIR, { recursive: true });
        const r = run(libvirtdScripts(LAB).create, { timeoutMs: 120_000 });
        if (r.code !== 0) throw new Error(`libvirtd could not be started: ${r.stderr}`);
        started = stateFiles(LAB);
    }, 150_000);

    afterAll(() => {
        for (const n of ["a", "b", "c", "m"]) {
            virsh(`destroy ${OURS}-${n}`);
            virsh(`undefine ${OURS}-${n}`);
        }
        const startedPids = Object.entries(started).map(([k, v]) => [k.replace("libvirtd/started/", ""), Number(v.trim().split(" ")[1])] as const);
        const d = run(libvirtdScripts(LAB).delete);
        for (const lab of [LAB, LAB_SHIM, LAB_OTHER]) dropState(lab);
        rmSync(DIR, { recursive: true, force: true });
        expect(d.code, d.stderr).toBe(0);
        // what the suite started is gone, and nothing else was stopped
        for (const [daemon, pid] of startedPids) expect(pidsMatching(daemon, daemon)).not.toContain(pid);
    });

    it("libvirtd: runs and answers; records only what it started (none <pid>); a rerun changes nothing", () => {
        expect(virsh("uri").code).toBe(0);
        for (const [key, value] of Object.entries(started)) {
            const daemon = key.replace("libvirtd/started/", "");
            expect(["libvirtd", "virtlogd"]).toContain(daemon);
            const m = /^none (\d+)\n$/.exec(value);
            expect(m, value).not.toBeNull();
            expect(pidsMatching(daemon, daemon)).toContain(Number(m![1]));
        }
        for (const daemon of ["libvirtd", "virtlogd"]) {
            if (!started[`libvirtd/started/${daemon}`]) expect(pidsMatching(daemon, daemon).length, `${daemon} runs (started by someone else)`).toBeGreaterThan(0);
        }
        const before = { libvirtd: pidsMatching("libvirtd", "libvirtd"), virtlogd: pidsMatching("virtlogd", "virtlogd") };
        const r = run(libvirtdScripts(LAB).create);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toBe("");
        expect(stateFiles(LAB)).toEqual(started);
        expect({ libvirtd: pidsMatching("libvirtd", "libvirtd"), virtlogd: pidsMatching("virtlogd", "virtlogd") }).toEqual(before);
    });

    it("libvirtd with systemd (shims: no systemd runs here): starts inactive units, delete stops exactly those", () => {
        // A fake systemctl: every unit exists ("cat" succeeds) and is inactive; start/stop only record.
        const shims = new Shims("lv-systemd");
        shims.add("systemctl", 'case "$1" in cat|start|stop) exit 0 ;; is-active) exit 3 ;; *) exit 1 ;; esac');
        // and a virsh whose connection check fails ("libvirtd is not answering yet"); everything else is the real virsh
        shims.add("virsh", 'case " $* " in *" uri "*) exit 1 ;; esac; exec /usr/bin/virsh "$@"');
        try {
            const s = libvirtdScripts(LAB_SHIM);
            const env = shims.env({ KVM_HA_LAB_INIT: "systemd" });
            const r = run(s.create, { env });
            expect(r.code, r.stderr).toBe(0);
            expect(shims.calls().filter((c) => !c.startsWith("virsh "))).toEqual([
                "systemctl cat libvirtd.service",
                "systemctl cat virtlogd.service",
                "systemctl is-active --quiet virtlogd.service",
                "systemctl start virtlogd.service",
                "systemctl cat libvirtd.service",
                "systemctl is-active --quiet libvirtd.service",
                "systemctl start libvirtd.service",
            ]);
            expect(stateFiles(LAB_SHIM)).toEqual({ "libvirtd/started/virtlogd": "systemd\n", "libvirtd/started/libvirtd": "systemd\n" });
            expect(shims.calls()).toContain("virsh -c qemu:///system uri");
            shims.clearCalls();
            const d = run(s.delete, { env });
            expect(d.code, d.stderr).toBe(0);
            expect(shims.calls()).toEqual(["systemctl stop libvirtd.service", "systemctl stop virtlogd.service"]);
            expect(stateDirExists(LAB_SHIM)).toBe(false);

            // when qemu:///system already answers (modular daemons, socket activation), libvirtd.service is left alone
            shims.add("virsh", 'exec /usr/bin/virsh "$@"');
            shims.clearCalls();
            expect(run(s.create, { env }).code).toBe(0);
            expect(shims.calls().filter((c) => c.startsWith("systemctl start"))).toEqual(["systemctl start virtlogd.service"]);
            expect(stateFiles(LAB_SHIM)).toEqual({ "libvirtd/started/virtlogd": "systemd\n" });
            expect(run(s.delete, { env }).code).toBe(0);
            expect(stateDirExists(LAB_SHIM)).toBe(false);
        } finally {
            shims.destroy();
        }
    });

    // One flow, because every `virsh define` costs seconds to ~30 s on this machine (libvirt re-probes qemu on each:
    // /dev/kvm is root-only 0600 here, so its "KVM usable" check flips). The flow defines as few times as it can.
    it("domains: one command defines the bundle, autostart off, idempotent, checks before any change, updates only what changed, forgets what left, delete undoes", () => {
        const A = `${OURS}-a`;
        const B = `${OURS}-b`;
        const ua = randomUUID();
        const ub = randomUUID();
        const xmlDir = `${DIR}/xml/defs`;
        const before = listAll();
        const opts = { host: "h1", xmlDir, xmlDirShared: false };
        const dom = domainsScripts(LAB, opts);
        const bundle = (...ds: { name: string; uuid?: string; xml: string; placement?: string }[]) =>
            domainsBundle(ds.map((d) => ({ placement: "h1", ...d })));
        const defines = (stderr: string) => [...stderr.matchAll(/defined domain (\S+)$/gm)].map((m) => m[1]).sort();
        const xa = `${domainXml(A, ua)}\n`; // as rendered; B's file has no final newline (a user's own XML may not)
        const xb = domainXml(B, ub);

        // ---- define both, write both XML files (the directories it made are recorded)
        const r1 = run(dom.create, { stdin: bundle({ name: A, uuid: ua, xml: xa }, { name: B, uuid: ub, xml: xb }) });
        expect(r1.code, r1.stderr).toBe(0);
        expect(defines(r1.stderr)).toEqual([A, B]);
        expect(virsh(`domuuid ${A}`).stdout.trim()).toBe(ua);
        expect(virsh(`domuuid ${B}`).stdout.trim()).toBe(ub);
        for (const n of [A, B]) {
            expect(virsh(`dominfo ${n}`).stdout).toMatch(/Autostart:\s+disable/);
            expect(domState(n)).toBe("shut off");
        }
        expect(readFileSync(`${xmlDir}/${A}.xml`, "utf8")).toBe(xa);
        expect(readFileSync(`${xmlDir}/${B}.xml`, "utf8")).toBe(xb);
        expect(fileFacts(`${xmlDir}/${A}.xml`)).toMatchObject({ mode: "644", uid: 0, gid: 0 });
        expect(stateFiles(LAB)[`domains/${A}/uuid`]).toBe(`${ua}\n`);

        // ---- rerun: nothing changes, nothing is said
        const list1 = listAll();
        const xml1 = virsh(`dumpxml ${A}`).stdout;
        const markers1 = stateFiles(LAB);
        const files1 = fileFacts(`${xmlDir}/${A}.xml`);
        const r2 = run(dom.create, { stdin: bundle({ name: A, uuid: ua, xml: xa }, { name: B, uuid: ub, xml: xb }) });
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.stderr).toBe("");
        expect(listAll()).toBe(list1);
        expect(virsh(`dumpxml ${A}`).stdout).toBe(xml1);
        expect(stateFiles(LAB)).toEqual(markers1);
        expect(fileFacts(`${xmlDir}/${A}.xml`)).toEqual(files1);

        // ---- refused before any change: another lab's (a user's) domain of that name, a wrong <name> or <uuid>, a
        // UUID another domain has, a file at the XML path that is not ours, a damaged bundle
        const untouched = () => {
            expect(listAll()).toBe(list1);
            expect(virsh(`dumpxml ${A}`).stdout).toBe(xml1);
            expect(stateFiles(LAB)).toEqual(markers1);
        };
        const foreign = domainsScripts(LAB_OTHER, { ...opts, xmlDir: `${DIR}/other` });
        const r3 = run(foreign.create, { stdin: bundle({ name: A, uuid: ua, xml: xa }) });
        expect(r3.code).not.toBe(0);
        expect(r3.stderr).toMatch(new RegExp(`a domain named ${A} \\(UUID ${ua}\\) already exists on this host and was not defined by kvm-ha-lab lab ${LAB_OTHER}: rename the guest`));
        expect(r3.stderr.trim().split("\n")).toHaveLength(1);
        expect(existsSync(`${DIR}/other`)).toBe(false);
        expect(run(foreign.delete).code).toBe(0);
        expect(stateDirExists(LAB_OTHER)).toBe(false);
        const C = `${OURS}-c`;
        const uc = randomUUID();
        const refused: [string, RegExp][] = [
            [bundle({ name: A, uuid: ua, xml: xa }, { name: C, uuid: uc, xml: domainXml(`${C}-x`, uc) }), new RegExp(`names the domain '${C}-x', not '${C}': fix <name> in the XML`)],
            [bundle({ name: C, uuid: uc, xml: domainXml(C, randomUUID()) }), /has UUID '[0-9a-f-]+', not '[0-9a-f-]+': fix <uuid> in the XML/],
            [bundle({ name: C, uuid: ua, xml: domainXml(C, ua) }), new RegExp(`UUID ${ua} already belongs to domain ${A} on this host`)],
            ["bm90IGd6aXA=", /the domain bundle on stdin is not base64 gzip/],
        ];
        for (const [stdin, message] of refused) {
            const r = run(dom.create, { stdin });
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(message);
            untouched();
        }
        writeFileSync(`${xmlDir}/${C}.xml`, "a user's file\n");
        const r4 = run(dom.create, { stdin: bundle({ name: A, uuid: ua, xml: xa }, { name: C, uuid: uc, xml: domainXml(C, uc) }) });
        expect(r4.stderr).toMatch(new RegExp(`${xmlDir}/${C}\\.xml exists and was not written by kvm-ha-lab lab ${LAB}`));
        expect(readFileSync(`${xmlDir}/${C}.xml`, "utf8")).toBe("a user's file\n");
        rmSync(`${xmlDir}/${C}.xml`);
        untouched();

        // ---- start A; then B's XML changes: only B is defined again; then A leaves the bundle while it runs: it is
        // undefined and keeps running (transient) until its start step's delete stops it, and its file goes
        const start = domainStartScripts(LAB, A);
        const s1 = run(start.create);
        expect(s1.code, s1.stderr).toBe(0);
        expect(domState(A)).toBe("running");
        const id = virsh(`domid ${A}`).stdout.trim();
        const s2 = run(start.create);
        expect(s2.code, s2.stderr).toBe(0);
        expect(s2.stderr).toBe("");
        expect(virsh(`domid ${A}`).stdout.trim()).toBe(id);
        const xb2 = xb.replace(">32<", ">48<");
        expect(xb2).not.toBe(xb);
        const r5 = run(dom.create, { stdin: bundle({ name: A, uuid: ua, xml: xa }, { name: B, uuid: ub, xml: xb2 }) });
        expect(r5.code, r5.stderr).toBe(0);
        expect(defines(r5.stderr)).toEqual([B]);
        expect(virsh(`dumpxml --inactive ${B}`).stdout).toContain("<memory unit='KiB'>49152</memory>");
        expect(virsh(`domid ${A}`).stdout.trim()).toBe(id);
        const r6 = run(dom.create, { stdin: bundle({ name: B, uuid: ub, xml: xb2 }) });
        expect(r6.code, r6.stderr).toBe(0);
        expect(r6.stderr).toContain(`undefined domain ${A}: it keeps running until it is stopped`);
        expect(domState(A)).toBe("running");
        expect(existsSync(`${xmlDir}/${A}.xml`)).toBe(false);
        expect(Object.keys(stateFiles(LAB)).filter((k) => k.startsWith(`domains/${A}/`))).toEqual([]);
        const sd = run(start.delete);
        expect(sd.code, sd.stderr).toBe(0);
        expect(virsh(`dominfo ${A}`).code).not.toBe(0);
        expect(stateFiles(LAB)[`start/${A}/uuid`]).toBeUndefined();

        // ---- a domain that is not defined: the start says so in one line
        const r7 = run(domainStartScripts(LAB, `${OURS}-none`).create);
        expect(r7.code).not.toBe(0);
        expect(r7.stderr).toMatch(/domain hsc-dom-\d+-none is not defined on this host: define it first/);

        // ---- delete: B (running) is destroyed and undefined, its file and the directories made for it go
        ok(`virsh -q -c qemu:///system start ${B}`);
        const dd = run(dom.delete);
        expect(dd.code, dd.stderr).toBe(0);
        expect(virsh(`dominfo ${B}`).code).not.toBe(0);
        expect(listAll()).toBe(before);
        expect(existsSync(`${DIR}/xml`)).toBe(false);
        expect(run(dom.delete).code).toBe(0);
        expect(Object.keys(stateFiles(LAB)).filter((k) => !k.startsWith("libvirtd/"))).toEqual([]);
    });

    it("domains: takes over a domain and XML file of the per-guest commands of earlier versions, whose deletes then leave them", () => {
        const M = `${OURS}-m`;
        const um = randomUUID();
        const xmlDir = `${DIR}/legacy`;
        const xm = domainXml(M, um);
        const xmlPath = `${xmlDir}/${M}.xml`;
        // what an earlier version left: the XML file (file script `domain-xml-<guest>`) and the domain it defined
        const legacyFile = fileScripts(LAB, { id: `domain-xml-${M}`, path: xmlPath, mode: "0644" });
        expect(run(legacyFile.create, { stdin: xm }).code).toBe(0);
        ok(`virsh -q -c qemu:///system define '${xmlPath}'`);
        const xmlSha = fileFacts(xmlPath)!.sha256;
        ok(`mkdir -p /var/lib/kvm-ha-lab/${LAB}/domain/${M} && printf '%s\\n' ${um} > /var/lib/kvm-ha-lab/${LAB}/domain/${M}/uuid && printf '%s\\n' ${xmlSha} > /var/lib/kvm-ha-lab/${LAB}/domain/${M}/xml.sha256`);

        const dom = domainsScripts(LAB, { host: "h1", xmlDir, xmlDirShared: false });
        const stdin = domainsBundle([{ name: M, uuid: um, xml: xm, placement: "h1" }]);
        const r1 = run(dom.create, { stdin });
        expect(r1.code, r1.stderr).toBe(0);
        expect(r1.stderr).not.toContain("defined domain");
        const markers = stateFiles(LAB);
        expect(markers[`domains/${M}/uuid`]).toBe(`${um}\n`);
        expect(markers[`domains/${M}/file.path`]).toBe(`${xmlPath}\n`);
        expect(Object.keys(markers).filter((k) => k.startsWith("domain/") || k.startsWith("file/"))).toEqual([]);

        // the engine then removes the old commands: their deletes find nothing of theirs
        const file1 = fileFacts(xmlPath);
        expect(run(legacyDefineDelete(LAB, M, xmlPath, um)).code).toBe(0);
        expect(run(legacyFile.delete).code).toBe(0);
        expect(virsh(`domuuid ${M}`).stdout.trim()).toBe(um);
        expect(fileFacts(xmlPath)).toEqual(file1);
        expect(stateFiles(LAB)).toEqual(markers);

        const dd = run(dom.delete);
        expect(dd.code, dd.stderr).toBe(0);
        expect(virsh(`dominfo ${M}`).code).not.toBe(0);
        expect(existsSync(xmlDir)).toBe(false);
        expect(Object.keys(stateFiles(LAB)).filter((k) => !k.startsWith("libvirtd/"))).toEqual([]);
    });

    it("disk image: created only when missing, left when it exists, delete removes only what it created", () => {
        /** The lab's state files under these prefixes. */
        const markers = (...prefixes: string[]) => (stateDirExists(LAB) ? Object.keys(stateFiles(LAB)).filter((k) => prefixes.some((p) => k.startsWith(p))) : []);
        const path = `${DIR}/images/sub/${OURS}.qcow2`;
        const s = diskImageScripts(LAB, { path, format: "qcow2", bus: "virtio", target: "vda", createSizeGiB: 1 });
        const r1 = run(s.create);
        expect(r1.code, r1.stderr).toBe(0);
        const info = JSON.parse(ok(`qemu-img info --output=json '${path}'`).stdout) as { format: string; "virtual-size": number };
        expect(info.format).toBe("qcow2");
        expect(info["virtual-size"]).toBe(1024 ** 3);
        const f1 = fileFacts(path);
        const r2 = run(s.create);
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.stderr).toBe("");
        expect(fileFacts(path)).toEqual(f1);
        const d = run(s.delete);
        expect(d.code, d.stderr).toBe(0);
        expect(existsSync(`${DIR}/images`)).toBe(false);
        expect(existsSync(DIR)).toBe(true);

        // keepOnDestroy: delete leaves the image it created, and its directories, and forgets them; the next create
        // finds an existing image and records nothing, so a later delete leaves it too
        const kept = `${DIR}/kept/sub/${OURS}.qcow2`;
        const sk = diskImageScripts(LAB, { path: kept, format: "qcow2", bus: "virtio", target: "vda", createSizeGiB: 1, keepOnDestroy: true });
        expect(run(sk.create).code).toBe(0);
        const k1 = fileFacts(kept);
        const dk = run(sk.delete);
        expect(dk.code, dk.stderr).toBe(0);
        expect(dk.stderr).toMatch(/kept disk image \S+ \(keepOnDestroy\)/);
        expect(fileFacts(kept)).toEqual(k1);
        expect(markers("disk/", "dirs-pending/")).toEqual([]);
        expect(run(sk.create).code).toBe(0);
        expect(markers("disk/")).toEqual([]);
        expect(run(sk.delete).code).toBe(0);
        expect(fileFacts(kept)).toEqual(k1);
        rmSync(`${DIR}/kept`, { recursive: true, force: true });

        // an existing image (the user's) is left, also by delete
        const user = `${DIR}/user.raw`;
        writeFileSync(user, Buffer.alloc(4096));
        const before = fileFacts(user);
        const su = diskImageScripts(LAB, { path: user, format: "raw", bus: "virtio", target: "vdb", createSizeGiB: 2 });
        expect(run(su.create).code).toBe(0);
        expect(fileFacts(user)).toEqual(before);
        expect(run(su.delete).code).toBe(0);
        expect(fileFacts(user)).toEqual(before);

        // missing and no size: one clear line, nothing created
        const sm = diskImageScripts(LAB, { path: `${DIR}/nope/x.qcow2`, format: "qcow2", bus: "virtio", target: "vda" });
        const r3 = run(sm.create);
        expect(r3.code).not.toBe(0);
        expect(r3.stderr).toMatch(/disk image \S+x\.qcow2 does not exist and no size is set to create it: create it, or set a size/);
        expect(existsSync(`${DIR}/nope`)).toBe(false);
        expect(markers("disk/")).toEqual([]);
    });
});
