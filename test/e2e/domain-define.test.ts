/**
 * A real libvirtd defines the rendered domain XML of a guest of each stack (copies named kvd-*, on a throwaway
 * bridge, domain type qemu because qemu cannot use /dev/kvm here), and reads back the same UUID, MACs, bridge, vCPUs
 * and memory, with autostart off. One guest per stack: the guests of a stack differ only in names, UUID, MAC and
 * paths, and every define takes several seconds here (libvirt re-probes qemu when /dev/kvm is unusable).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateLabConfig } from "../../components/config";
import { stableUuid } from "../../components/net";
import { renderDomainXml } from "../../components/render/domain-xml";
import { parseStackFile } from "../../components/stack-file";
import { runProc } from "../harness/proc";
import { ensureLibvirt, suiteGate, type LibvirtHandle } from "../harness/services";
import { PROJECT_ROOT } from "../harness/stack-config";

const gate = suiteGate("domain define e2e");
const BRIDGE = "kvd-br0";
const DEV_SECRETS = ["sshPrivateKey", "ipmiPasswordKvm1", "ipmiPasswordKvm2"];

async function virsh(...args: string[]) {
    const r = await runProc("virsh", ["-c", "qemu:///system", ...args], { timeoutMs: 180_000 });
    return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe.skipIf(gate.skip)("rendered domain XML defined by a real libvirtd", () => {
    let libvirt: LibvirtHandle | undefined;
    const tmp = mkdtempSync(join(tmpdir(), "kvd-"));
    const defined: string[] = [];

    beforeAll(async () => {
        gate.assertReady();
        libvirt = await ensureLibvirt();
        await runProc("ip", ["link", "del", BRIDGE]);
        const made = await runProc("ip", ["link", "add", BRIDGE, "type", "bridge"]);
        expect(made.code, made.stderr.toString()).toBe(0);
    });

    afterAll(async () => {
        for (const name of defined) await virsh("undefine", name);
        await runProc("ip", ["link", "del", BRIDGE]);
        rmSync(tmp, { recursive: true, force: true });
        await libvirt?.stop();
    });

    for (const stack of ["lab", "dev"] as const) {
        it(`defines a guest of the ${stack} stack`, async () => {
            const { raw, secretKeys } = parseStackFile(readFileSync(join(PROJECT_ROOT, "stacks", `Pulumi.${stack}.yaml`), "utf8"));
            const spec = validateLabConfig(raw, { stack, secretKeys: new Set([...secretKeys, ...(stack === "dev" ? DEV_SECRETS : [])]), readFile: () => undefined });
            const guest = structuredClone(spec.guests[0]);
            if (guest.definition.kind !== "rendered") throw new Error("expected a rendered guest");
            const def = guest.definition;
            guest.name = `kvd-${stack}-${guest.name}`;
            def.uuid = stableUuid(`kvd-${process.pid}`, guest.name);
            def.domainType = "qemu";
            def.nics = def.nics.map((n) => ({ ...n, bridge: BRIDGE }));
            def.disks = def.disks.map((d) => ({ ...d, path: join(tmp, `${guest.name}-${d.target}.${d.format}`) }));
            const file = join(tmp, `${guest.name}.xml`);
            writeFileSync(file, renderDomainXml(guest));

            const r = await virsh("define", file);
            if (r.code === 0) defined.push(guest.name);
            expect(r.code, r.stderr).toBe(0);
            const live = (await virsh("dumpxml", "--inactive", guest.name)).stdout;
            expect(live).toContain(`<name>${guest.name}</name>`);
            expect(live).toContain(`<uuid>${def.uuid}</uuid>`);
            for (const n of def.nics) expect(live).toContain(`<mac address='${n.mac}'/>`);
            expect(live).toContain(`<source bridge='${BRIDGE}'/>`);
            expect(live).toMatch(new RegExp(`<vcpu placement='static'>${def.vcpus}</vcpu>`));
            expect(live).toContain(`<memory unit='KiB'>${def.memoryMiB * 1024}</memory>`);
            expect((await virsh("dominfo", guest.name)).stdout).toMatch(/Autostart:\s+disable/);
        }, 300_000);
    }
});
