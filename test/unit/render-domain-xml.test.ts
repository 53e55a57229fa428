import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { create } from "xmlbuilder2";
import { validateLabConfig } from "../../components/config";
import { stableUuid } from "../../components/net";
import { renderDomainXml } from "../../components/render/domain-xml";
import type { GuestSpec, LabSpec } from "../../components/spec";
import { parseStackFile } from "../../components/stack-file";
import { hasTool, need, run } from "../helpers/tools";

// ---- helpers ------------------------------------------------------------------------------------------------------

const DEV_SECRETS = ["sshPrivateKey", "ipmiPasswordKvm1", "ipmiPasswordKvm2"];

function loadStack(stack: "lab" | "dev", files: Record<string, string> = {}): LabSpec {
    const { raw, secretKeys } = parseStackFile(readFileSync(`stacks/Pulumi.${stack}.yaml`, "utf8"));
    const secrets = new Set([...secretKeys, ...(stack === "dev" ? DEV_SECRETS : [])]);
    return validateLabConfig(raw, { stack, secretKeys: secrets, readFile: (p) => files[p] });
}




type Node = Record<string, unknown>;
interface DomElement {
    getElementsByTagName(name: string): ArrayLike<DomElement>;
    getAttribute(name: string): string | null;
}
const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/**
 * Parses the XML (the builder's parser, not our renderer) into the plain-object form: `@attr`, `#` text. That form
 * re-escapes entities, so it is used only where values hold no XML special characters.
 */
function parseDomain(xml: string): Node {
    const doc = create(xml).end({ format: "object" }) as Node;
    expect(Object.keys(doc)).toEqual(["domain"]);
    return doc.domain as Node;
}
const text = (n: unknown): string => (typeof n === "string" ? n : String((n as Node)["#"]));

function rendered(guest: GuestSpec) {
    if (guest.definition.kind !== "rendered") throw new Error(`${guest.name} is not rendered`);
    return guest.definition;
}

const tmp = mkdtempSync(join(tmpdir(), "hra-domain-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const stacks = { lab: loadStack("lab"), dev: loadStack("dev") };
const allGuests = (Object.entries(stacks) as [string, LabSpec][]).flatMap(([stack, spec]) => spec.guests.map((g) => ({ stack, spec, guest: g })));

// ---- meaning --------------------------------------------------------------------------------------------------------

describe("renderDomainXml: what the XML says", () => {
    it("covers guests of both stacks", () => {
        expect(allGuests.map((g) => `${g.stack}/${g.guest.name}`)).toEqual(["lab/node1", "lab/node2", "dev/gnode1", "dev/gnode2", "dev/gnode3"]);
    });

    it.each(allGuests.map((g) => [`${g.stack}/${g.guest.name}`, g] as const))("%s: name, uuid, memory, vcpus, os, lifecycle", (_, { spec, guest }) => {
        const def = rendered(guest);
        const d = parseDomain(renderDomainXml(guest));
        expect(d["@type"]).toBe(def.domainType);
        expect(text(d.name)).toBe(guest.name);
        expect(text(d.uuid)).toBe(def.uuid);
        for (const el of ["memory", "currentMemory"]) {
            expect((d[el] as Node)["@unit"]).toBe("MiB");
            expect(Number(text(d[el]))).toBe(def.memoryMiB);
        }
        expect(Number(text(d.vcpu))).toBe(def.vcpus);
        const os = d.os as Node;
        expect(os.type).toEqual({ "@arch": "x86_64", "@machine": "pc", "#": "hvm" });
        if (def.boot !== undefined) {
            // direct kernel boot: the kernel, initrd and command line the spec names; no boot device
            expect(text(os.kernel)).toBe(def.boot.kernel);
            expect(os.initrd === undefined ? undefined : text(os.initrd)).toBe(def.boot.initrd);
            expect(os.cmdline === undefined ? undefined : text(os.cmdline)).toBe(def.boot.cmdline);
            expect(os.boot).toBeUndefined();
        } else {
            expect(os.boot).toEqual({ "@dev": "hd" });
        }
        const features = d.features as Node;
        expect(Object.keys(features).sort()).toEqual(def.domainType === "qemu" ? ["acpi", "apic", "tcg"] : ["acpi", "apic"]);
        // TCG (domain type qemu): a 256 MiB translation-block cache
        if (def.domainType === "qemu") expect(features.tcg).toEqual({ "tb-cache": { "@unit": "MiB", "#": "256" } });
        expect([text(d.on_poweroff), text(d.on_reboot), text(d.on_crash)]).toEqual(["destroy", "restart", "restart"]);
        // the guest cluster's node names are the domain names
        if (spec.guestCluster.nodes.includes(guest.name)) expect(spec.guestCluster.nodes).toContain(text(d.name));
    });

    it.each(allGuests.map((g) => [`${g.stack}/${g.guest.name}`, g] as const))("%s: disks, NICs on the host bridge, console; no emulator, no graphics", (_, { spec, guest }) => {
        const def = rendered(guest);
        const devices = parseDomain(renderDomainXml(guest)).devices as Node;
        const allDisks = asArray(devices.disk as Node | Node[]);
        expect(allDisks).toHaveLength(def.disks.length + (def.seed !== undefined ? 1 : 0));
        const disks = allDisks.slice(0, def.disks.length);
        expect(disks.length).toBeGreaterThan(0);
        if (def.seed !== undefined) {
            // the cloud-init seed: read-only raw virtio disk, after the guest's own disks
            expect(allDisks[def.disks.length]).toEqual({
                "@type": "file",
                "@device": "disk",
                driver: { "@name": "qemu", "@type": "raw" },
                source: { "@file": def.seed.path },
                target: { "@dev": def.seed.target, "@bus": "virtio" },
                readonly: {},
            });
        }
        disks.forEach((disk, i) => {
            const want = def.disks[i];
            expect(disk["@type"]).toBe("file");
            expect(disk["@device"]).toBe("disk");
            expect(disk.driver).toEqual({ "@name": "qemu", "@type": want.format });
            expect(disk.source).toEqual({ "@file": want.path });
            expect(disk.target).toEqual({ "@dev": want.target, "@bus": want.bus });
        });

        const hostBridge = spec.hosts.find((h) => h.name === guest.host)!.bridge.name;
        const nics = asArray(devices.interface as Node | Node[]);
        expect(nics).toHaveLength(def.nics.length);
        expect(nics.length).toBeGreaterThan(0);
        nics.forEach((nic, i) => {
            expect(nic["@type"]).toBe("bridge");
            expect((nic.mac as Node)["@address"]).toBe(def.nics[i].mac);
            expect((nic.source as Node)["@bridge"]).toBe(hostBridge);
            expect((nic.model as Node)["@type"]).toBe(def.nics[i].model);
        });

        const bootsOs = def.seed !== undefined || def.boot !== undefined;
        // a guest that boots an OS logs its serial console to a file and has a virtio RNG
        expect(devices.serial).toEqual({
            "@type": "pty",
            ...(bootsOs ? { log: { "@file": `/var/log/libvirt/qemu/${guest.name}-console.log`, "@append": "off" } } : {}),
            target: { "@port": "0" },
        });
        expect(devices.console).toEqual({ "@type": "pty", target: { "@type": "serial", "@port": "0" } });
        if (bootsOs) expect(devices.rng).toEqual({ "@model": "virtio", backend: { "@model": "random", "#": "/dev/urandom" } });
        expect(Object.keys(devices).sort()).toEqual(["console", "disk", "interface", ...(bootsOs ? ["rng"] : []), "serial"]);
        expect(devices.emulator).toBeUndefined();
        expect(devices.graphics).toBeUndefined();
    });

    it("is byte-identical across renders and across fresh config resolutions (UUID and MAC are derived, not random)", () => {
        for (const stack of ["lab", "dev"] as const) {
            const a = loadStack(stack).guests.map(renderDomainXml);
            const b = loadStack(stack).guests.map(renderDomainXml);
            expect(b).toEqual(a);
            expect(stacks[stack].guests.map(renderDomainXml)).toEqual(a);
        }
        // the derivation depends on the stack: the same guests in another stack get other identities
        const { raw, secretKeys } = parseStackFile(readFileSync("stacks/Pulumi.lab.yaml", "utf8"));
        const other = validateLabConfig(raw, { stack: "lab2", secretKeys, readFile: () => undefined });
        expect(rendered(other.guests[0]).uuid).not.toBe(rendered(stacks.lab.guests[0]).uuid);
        expect(rendered(other.guests[0]).nics[0].mac).not.toBe(rendered(stacks.lab.guests[0]).nics[0].mac);
    });

    it("distinct guests get distinct UUIDs and MACs", () => {
        for (const spec of Object.values(stacks)) {
            const docs = spec.guests.map((g) => parseDomain(renderDomainXml(g)));
            const uuids = docs.map((d) => text(d.uuid));
            const macs = docs.flatMap((d) => asArray((d.devices as Node).interface as Node | Node[]).map((n) => (n.mac as Node)["@address"]));
            expect(new Set(uuids).size).toBe(uuids.length);
            expect(new Set(macs).size).toBe(macs.length);
        }
    });

    it("escapes through the XML builder: odd characters in a disk path survive a parse round-trip", () => {
        const g = structuredClone(stacks.lab.guests[0]);
        const path = `/var/lib/libvirt/images/a&b <"c'> .qcow2`;
        rendered(g).disks[0].path = path;
        const xml = renderDomainXml(g);
        // the DOM (the object form re-escapes entities, so it cannot show what a parser reads)
        const root = create(xml).root().node as unknown as DomElement;
        expect(root.getElementsByTagName("source")[0].getAttribute("file")).toBe(path);
        expect(xml).not.toContain(path);
    });

    it("returns a guest's own XML (kind file) unchanged, byte for byte", () => {
        const own = `<?xml version="1.0"?>\n<!-- mine -->\n<domain type='qemu'>\n  <name>node1</name>\n  <memory unit='KiB'>524288</memory>\n  <os><type>hvm</type></os>\n  <devices/>\n</domain>\n\n`;
        const { raw, secretKeys } = parseStackFile(readFileSync("stacks/Pulumi.lab.yaml", "utf8"));
        const cfg = structuredClone(raw) as { guests: Record<string, unknown>[] };
        cfg.guests[0] = { name: "node1", host: "kvmhost", xml: "/etc/hra/node1.xml", address: "10.99.0.11" };
        const spec = validateLabConfig(cfg, { stack: "lab", secretKeys, readFile: (p) => (p === "/etc/hra/node1.xml" ? own : undefined) });
        expect(spec.guests[0].definition.kind).toBe("file");
        expect(renderDomainXml(spec.guests[0])).toBe(own);
        expect(renderDomainXml(spec.guests[1])).not.toBe(own);
    });
});

// ---- judged by libvirt's own tools -----------------------------------------------------------------------------------

describe("renderDomainXml: judged by libvirt", () => {
    it("every guest of both stacks passes virt-xml-validate (domain schema)", (ctx) => {
        need(ctx, "virt-xml-validate is not installed (Debian: libvirt-clients)", hasTool("virt-xml-validate"));
        for (const { stack, guest } of allGuests) {
            const file = join(tmp, `${stack}-${guest.name}.xml`);
            writeFileSync(file, renderDomainXml(guest));
            const r = run("virt-xml-validate", [file, "domain"]);
            expect(r.out, `${stack}/${guest.name}`).toContain("validates");
            expect(r.status, `${stack}/${guest.name}: ${r.out}`).toBe(0);
        }
    });

    it("virt-xml-validate rejects a broken domain (the judge can fail)", (ctx) => {
        need(ctx, "virt-xml-validate is not installed (Debian: libvirt-clients)", hasTool("virt-xml-validate"));
        const file = join(tmp, "broken.xml");
        writeFileSync(file, renderDomainXml(stacks.lab.guests[0]).replace("<vcpu", "<vcpus").replace("</vcpu>", "</vcpus>"));
        expect(run("virt-xml-validate", [file, "domain"]).status).not.toBe(0);
    });

    // A real libvirtd defining the rendered XML of both stacks: test/e2e/domain-define.test.ts (the e2e project runs
    // its files one at a time and starts libvirtd itself; here, in parallel with other files, it could not).
});

// ---- the vsock device (fence_virt over the vsock listener) ---------------------------------------------------------

describe("renderDomainXml: a virtio vsock device for the vsock listener", () => {
    /** The lab stack with the vsock listener and one more guest that is not a cluster node. */
    function vsockSpec(listener: "vsock" | "tcp" | "multicast"): LabSpec {
        const { raw, secretKeys } = parseStackFile(readFileSync("stacks/Pulumi.lab.yaml", "utf8"));
        const cfg = structuredClone(raw) as { guests: Record<string, unknown>[]; guestCluster: { fencing: Record<string, unknown> } };
        cfg.guests.push({ name: "htrloner", host: "kvmhost", domainType: "qemu" });
        cfg.guestCluster.fencing.listener = listener;
        return validateLabConfig(cfg, { stack: "lab", secretKeys, readFile: () => undefined });
    }
    const vsockOf = (xml: string) => (parseDomain(xml).devices as Node).vsock;

    it("every guest cluster node gets <vsock model=virtio> with an automatic CID; a guest outside the cluster does not", () => {
        const spec = vsockSpec("vsock");
        for (const g of spec.guests) {
            const node = spec.guestCluster.nodes.includes(g.name);
            expect(rendered(g).vsock, g.name).toBe(node);
            expect(vsockOf(renderDomainXml(g)), g.name).toEqual(node ? { "@model": "virtio", cid: { "@auto": "yes" } } : undefined);
        }
    });

    it("no vsock device with the multicast or tcp listener", () => {
        for (const listener of ["multicast", "tcp"] as const) {
            for (const g of vsockSpec(listener).guests) {
                expect(rendered(g).vsock).toBe(false);
                expect(vsockOf(renderDomainXml(g))).toBeUndefined();
            }
        }
    });

    it("virt-xml-validate accepts the node's XML with the vsock device, and libvirt's test driver keeps it on define", (ctx) => {
        need(ctx, "virt-xml-validate is not installed (Debian: libvirt-clients)", hasTool("virt-xml-validate"));
        const guest = vsockSpec("vsock").guests[0];
        const file = join(tmp, "vsock-node1.xml");
        writeFileSync(file, renderDomainXml(guest));
        const r = run("virt-xml-validate", [file, "domain"]);
        expect(r.status, r.out).toBe(0);
        expect(r.out).toContain("validates");
        // the judge can fail: a vsock device of an unknown model
        const broken = join(tmp, "vsock-broken.xml");
        writeFileSync(broken, renderDomainXml(guest).replace('<vsock model="virtio">', '<vsock model="carrier-pigeon">'));
        expect(run("virt-xml-validate", [broken, "domain"]).status).not.toBe(0);
        if (hasTool("virsh")) {
            // the test driver (in-process, no libvirtd) parses the definition the way libvirtd does
            const dumped = run("virsh", ["-c", "test:///default", `define ${file}; dumpxml ${guest.name}`]);
            expect(dumped.status, dumped.out).toBe(0);
            expect(dumped.stdout).toMatch(/<vsock model='virtio'>\s*<cid auto='yes'\/>\s*<\/vsock>/);
        }
    });
});
