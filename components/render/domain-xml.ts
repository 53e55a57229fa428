/**
 * The libvirt domain XML of a guest: the one definition every host of the lab `virsh define`s.
 *
 * The same text is defined on every host (rgmanager or the user may start the guest on any of them), so nothing in it
 * may depend on a host: no `<emulator>` (libvirt picks the host's own qemu binary), no host paths other than the
 * guest's disk images, and the NICs name a bridge every host has (config validation ensures every host's bridge has
 * that name).
 */
import { create } from "xmlbuilder2";
import type { GuestSpec } from "../spec";

type XMLBuilder = ReturnType<typeof create>;
type RenderedDefinition = Extract<GuestSpec["definition"], { kind: "rendered" }>;

/**
 * Returns the guest's domain XML. A guest defined by the user's own XML file (`definition.kind === "file"`) gets that
 * text back unchanged, byte for byte.
 *
 * A rendered domain has no graphics device: the guest is reached with `virsh console <name>` (a serial pty console)
 * or over SSH. A VNC server would open a port on every host the XML is defined on, for no use in a cluster lab.
 * With `definition.vsock` it has a virtio vsock device with an automatic CID, over which fence_virt reaches the
 * host's fence_virtd (the vsock listener); the host needs the vhost_vsock module to start it.
 *
 * A guest that boots an operating system from an image (`definition.seed`, `definition.boot`) also gets:
 *   - direct kernel boot under `<os>` (`<kernel>`, `<initrd>`, `<cmdline>`) when a kernel is given;
 *   - its cloud-init seed as a read-only raw virtio disk (a virtio disk works with every cloud image, where an IDE or
 *     SATA cdrom needs drivers a minimal image may leave out);
 *   - a virtio RNG fed from the host's /dev/urandom (sshd's host keys are generated at first boot);
 *   - the serial console also logged to /var/log/libvirt/qemu/<name>-console.log (virtlogd), so a boot can be read
 *     after the fact.
 * Domain type qemu (TCG, no KVM) gets a 256 MiB translation-block cache (`<features><tcg><tb-cache>`): measured
 * faster than 128 MiB and leaner than qemu's default.
 */
export function renderDomainXml(guest: GuestSpec): string {
    const def = guest.definition;
    switch (def.kind) {
        case "file":
            return def.xml;
        case "rendered":
            return renderDefinition(guest.name, def);
        default: {
            const unreachable: never = def;
            throw new Error(`unknown guest definition ${JSON.stringify(unreachable)}`);
        }
    }
}

function renderDefinition(name: string, def: RenderedDefinition): string {
    const domain = create().ele("domain", { type: def.domainType });
    domain.ele("name").txt(name);
    domain.ele("uuid").txt(def.uuid);
    domain.ele("memory", { unit: "MiB" }).txt(String(def.memoryMiB));
    domain.ele("currentMemory", { unit: "MiB" }).txt(String(def.memoryMiB));
    domain.ele("vcpu", { placement: "static" }).txt(String(def.vcpus));

    const os = domain.ele("os");
    os.ele("type", { arch: "x86_64", machine: "pc" }).txt("hvm");
    if (def.boot !== undefined) {
        os.ele("kernel").txt(def.boot.kernel);
        if (def.boot.initrd !== undefined) os.ele("initrd").txt(def.boot.initrd);
        if (def.boot.cmdline !== undefined) os.ele("cmdline").txt(def.boot.cmdline);
    } else {
        os.ele("boot", { dev: "hd" });
    }

    const features = domain.ele("features");
    features.ele("acpi");
    features.ele("apic");
    if (def.domainType === "qemu") features.ele("tcg").ele("tb-cache", { unit: "MiB" }).txt(String(TCG_TB_CACHE_MIB));

    domain.ele("clock", { offset: "utc" });
    // Fencing is virDomainDestroy (off) or destroy + create (reboot): the guest must not come back on its own after
    // a power-off, but a guest-initiated reboot or a crash restarts it.
    domain.ele("on_poweroff").txt("destroy");
    domain.ele("on_reboot").txt("restart");
    domain.ele("on_crash").txt("restart");

    const devices = domain.ele("devices");
    for (const disk of def.disks) {
        const d = devices.ele("disk", { type: "file", device: "disk" });
        d.ele("driver", { name: "qemu", type: disk.format });
        d.ele("source", { file: disk.path });
        d.ele("target", { dev: disk.target, bus: disk.bus });
    }
    if (def.seed !== undefined) {
        const d = devices.ele("disk", { type: "file", device: "disk" });
        d.ele("driver", { name: "qemu", type: "raw" });
        d.ele("source", { file: def.seed.path });
        d.ele("target", { dev: def.seed.target, bus: "virtio" });
        d.ele("readonly");
    }
    for (const nic of def.nics) {
        const n = devices.ele("interface", { type: "bridge" });
        n.ele("mac", { address: nic.mac });
        n.ele("source", { bridge: nic.bridge });
        n.ele("model", { type: nic.model });
    }
    const bootsOs = def.seed !== undefined || def.boot !== undefined;
    addConsole(devices, bootsOs ? `/var/log/libvirt/qemu/${name}-console.log` : undefined);
    if (bootsOs) devices.ele("rng", { model: "virtio" }).ele("backend", { model: "random" }).txt("/dev/urandom");
    if (def.vsock) {
        // fence_virt's vsock transport: the guest reaches the host (CID 2); libvirt gives the guest a free CID.
        devices.ele("vsock", { model: "virtio" }).ele("cid", { auto: "yes" });
    }

    return domain.end({ prettyPrint: true, headless: true, indent: "  " }) + "\n";
}

/** TCG translation-block cache of a domain of type qemu, MiB. */
export const TCG_TB_CACHE_MIB = 256;

/** A serial port on a host pty (also logged to `logFile` when given), and the console on it (`virsh console`). */
function addConsole(devices: XMLBuilder, logFile?: string): void {
    const serial = devices.ele("serial", { type: "pty" });
    if (logFile !== undefined) serial.ele("log", { file: logFile, append: "off" });
    serial.ele("target", { port: "0" });
    devices.ele("console", { type: "pty" }).ele("target", { type: "serial", port: "0" });
}
