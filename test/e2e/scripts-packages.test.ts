/**
 * packagesScripts. Installing or removing real packages is not something a test may do to this machine (and package
 * repositories may be unreachable), so the install/remove logic runs against SHIMS put first on PATH: fake
 * `apt-get`/`dpkg-query` (Debian) and `dnf`/`rpm` (RHEL) that record their calls and keep a fake package database in
 * a temporary directory. The only real run is the one that must change nothing: on this machine every package the lab
 * needs is already installed, so the real create installs nothing and records nothing.
 */
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { packagesScripts } from "../../components/scripts/packages";
import { dropState, missingPrereqs, run, Shims, skipBecause, stateDirExists, stateFiles } from "./scripts-harness";

const LAB = "hsct-pkg";
const DEBIAN = ["libvirt-daemon-system", "libvirt-clients", "qemu-system-x86", "qemu-utils", "fence-virtd", "iptables", "iproute2"];
const RHEL = ["libvirt", "qemu-kvm", "qemu-img", "fence-virtd", "fence-virtd-libvirt", "fence-virtd-multicast", "iptables", "iproute"];

const skip = skipBecause("scripts-packages", missingPrereqs(["sh", "sed", "sort"], () => (run("uname -m").stdout === "x86_64" ? undefined : "an x86_64 machine (the test lists qemu-system-x86)")));

/** Fake package tools over a package "database" directory ($SHIM_DIR/pkgs/<name> = installed). */
function packageShims(kind: "apt" | "dnf", installed: string[]): Shims {
    const shims = new Shims(`pkg-${kind}`);
    const db = join(shims.dir, "pkgs");
    mkdirSync(db);
    for (const p of installed) writeFileSync(join(db, p), "");
    const common = String.raw`
db="$SHIM_DIR/pkgs"
verb=''; sim=no; pkgs=''
for a in "$@"; do
    case "$a" in
        -s) sim=yes ;;
        -*) ;;
        *) if [ -z "$verb" ]; then verb=$a; else pkgs="$pkgs $a"; fi ;;
    esac
done`;
    if (kind === "apt") {
        shims.add("dpkg-query", 'for n; do :; done; if [ -e "$SHIM_DIR/pkgs/$n" ]; then printf "install ok installed"; else echo "dpkg-query: no packages found matching $n" >&2; exit 1; fi');
        shims.add(
            "apt-get",
            common +
                String.raw`
case "$verb" in
    update) ;;
    install) rc=0; for p in $pkgs; do if [ -e "$SHIM_DIR/broken-$p" ]; then echo "E: Unable to locate package $p"; rc=100; else : > "$db/$p"; fi; done; exit $rc ;;
    remove)
        if [ "$sim" = yes ]; then
            for p in $pkgs; do echo "Remv $p [1.0-1]"; done
            if [ -e "$SHIM_DIR/dependents" ]; then echo "Remv $(cat "$SHIM_DIR/dependents") [2.0-1]"; fi
        else
            for p in $pkgs; do rm -f "$db/$p"; done
        fi ;;
    *) exit 1 ;;
esac`,
        );
    } else {
        shims.add(
            "rpm",
            String.raw`
case "$1 $2" in
    "-q --whatprovides") [ -e "$SHIM_DIR/pkgs/$3" ] ;;
    "-e --test") if [ -e "$SHIM_DIR/dependents" ]; then echo "error: Failed dependencies: libvirt is needed by (installed) $(cat "$SHIM_DIR/dependents")"; exit 1; fi ;;
    *) exit 1 ;;
esac`,
        );
        shims.add(
            "dnf",
            common +
                String.raw`
case "$verb" in
    install) for p in $pkgs; do : > "$db/$p"; done ;;
    remove) for p in $pkgs; do rm -f "$db/$p"; done ;;
    *) exit 1 ;;
esac`,
        );
    }
    return shims;
}

const installedIn = (shims: Shims) => readdirSync(join(shims.dir, "pkgs")).sort();

describe.skipIf(skip)("packages script", () => {
    let shims: Shims | undefined;
    beforeAll(() => dropState(LAB));
    afterEach(() => {
        shims?.destroy();
        shims = undefined;
        dropState(LAB);
    });

    it("apt-get: installs exactly what is missing, once; delete removes exactly those", () => {
        const pre = ["libvirt-daemon-system", "libvirt-clients", "qemu-utils", "iproute2"];
        shims = packageShims("apt", pre);
        const s = packagesScripts(LAB, "multicast");
        const env = shims.env();
        const r1 = run(s.create, { env });
        expect(r1.code, r1.stderr).toBe(0);
        expect(r1.stdout).toBe("");
        expect(shims.calls().filter((c) => c.startsWith("apt-get"))).toEqual(["apt-get -y -q install qemu-system-x86 fence-virtd iptables"]);
        expect(installedIn(shims)).toEqual([...DEBIAN].sort());
        expect(stateFiles(LAB)).toEqual({ "packages/installed": "fence-virtd\niptables\nqemu-system-x86\n", "packages/manager": "apt-get\n" });

        shims.clearCalls();
        const r2 = run(s.create, { env });
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.stderr).toBe("");
        expect(shims.calls().filter((c) => c.startsWith("apt-get"))).toEqual([]);

        shims.clearCalls();
        const d = run(s.delete, { env });
        expect(d.code, d.stderr).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("apt-get"))).toEqual([
            "apt-get -s remove fence-virtd iptables qemu-system-x86",
            "apt-get -y -q remove fence-virtd iptables qemu-system-x86",
        ]);
        expect(installedIn(shims)).toEqual([...pre].sort());
        expect(stateDirExists(LAB)).toBe(false);
        shims.clearCalls();
        expect(run(s.delete, { env }).code).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("apt-get"))).toEqual([]);
    });

    it("apt-get: a failed install says so, records what did get installed, and delete removes only that", () => {
        shims = packageShims("apt", DEBIAN.filter((p) => p !== "fence-virtd" && p !== "iptables"));
        writeFileSync(join(shims.dir, "broken-iptables"), "");
        const s = packagesScripts(LAB, "multicast");
        const env = shims.env();
        const r = run(s.create, { env });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/apt-get could not install fence-virtd iptables \(exit 100, output above\): fix the package repositories or install them by hand/);
        // it retried once after refreshing the package lists
        expect(shims.calls().filter((c) => c.startsWith("apt-get"))).toEqual([
            "apt-get -y -q install fence-virtd iptables",
            "apt-get -q update",
            "apt-get -y -q install fence-virtd iptables",
        ]);
        expect(stateFiles(LAB)["packages/installed"]).toBe("fence-virtd\n");
        shims.clearCalls();
        expect(run(s.delete, { env }).code).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("apt-get -y"))).toEqual(["apt-get -y -q remove fence-virtd"]);
    });

    it("apt-get: delete leaves the packages when removing them would take other packages along", () => {
        shims = packageShims("apt", DEBIAN.filter((p) => p !== "fence-virtd"));
        const s = packagesScripts(LAB, "multicast");
        const env = shims.env();
        expect(run(s.create, { env }).code).toBe(0);
        writeFileSync(join(shims.dir, "dependents"), "virt-manager");
        const d = run(s.delete, { env });
        expect(d.code, d.stderr).toBe(0);
        expect(d.stderr).toMatch(/left packages fence-virtd installed: removing them would also remove packages this lab did not install: virt-manager$/);
        expect(shims.calls().filter((c) => c.startsWith("apt-get -y -q remove"))).toEqual([]);
        expect(installedIn(shims)).toContain("fence-virtd");
        expect(stateDirExists(LAB)).toBe(false);
    });

    it("dnf: installs the RHEL package set (with the fence-virtd plugins) when missing; delete removes exactly those", () => {
        const pre = ["libvirt", "qemu-kvm", "qemu-img", "iptables", "iproute"];
        shims = packageShims("dnf", pre);
        const s = packagesScripts(LAB, "multicast");
        const env = shims.env();
        const r = run(s.create, { env });
        expect(r.code, r.stderr).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("dnf"))).toEqual(["dnf -y install fence-virtd fence-virtd-libvirt fence-virtd-multicast"]);
        expect(installedIn(shims)).toEqual([...RHEL].sort());
        shims.clearCalls();
        expect(run(s.create, { env }).code).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("dnf"))).toEqual([]);
        const d = run(s.delete, { env });
        expect(d.code, d.stderr).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("dnf") || c.startsWith("rpm -e"))).toEqual([
            "rpm -e --test fence-virtd fence-virtd-libvirt fence-virtd-multicast",
            "dnf -y remove fence-virtd fence-virtd-libvirt fence-virtd-multicast",
        ]);
        expect(installedIn(shims)).toEqual([...pre].sort());
    });

    it("dnf: the fence_virtd listener decides the plugin package (tcp: fence-virtd-tcp; vsock: none beyond fence-virtd)", () => {
        const base = ["libvirt", "qemu-kvm", "qemu-img", "fence-virtd", "fence-virtd-libvirt", "iptables", "iproute"];
        shims = packageShims("dnf", base);
        const env = shims.env();
        expect(run(packagesScripts(LAB, "vsock").create, { env }).code).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("dnf"))).toEqual([]);
        expect(stateDirExists(LAB)).toBe(false);

        const r = run(packagesScripts(LAB, "tcp").create, { env });
        expect(r.code, r.stderr).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("dnf"))).toEqual(["dnf -y install fence-virtd-tcp"]);
        expect(installedIn(shims)).not.toContain("fence-virtd-multicast");

        // the listener changes to multicast: create runs again (an update) and adds that plugin to the record
        shims.clearCalls();
        expect(run(packagesScripts(LAB, "multicast").create, { env }).code).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("dnf"))).toEqual(["dnf -y install fence-virtd-multicast"]);
        expect(stateFiles(LAB)["packages/installed"]).toBe("fence-virtd-multicast\nfence-virtd-tcp\n");

        // delete (whichever listener its script was rendered for) removes both, and nothing it did not install
        shims.clearCalls();
        const d = run(packagesScripts(LAB, "multicast").delete, { env });
        expect(d.code, d.stderr).toBe(0);
        expect(shims.calls().filter((c) => c.startsWith("dnf"))).toEqual(["dnf -y remove fence-virtd-multicast fence-virtd-tcp"]);
        expect(installedIn(shims)).toEqual([...base].sort());
    });

    it("for real on this machine: with everything installed, create installs and records nothing", () => {
        const missing = DEBIAN.filter((p) => run(`dpkg-query -W -f='\${Status}' ${p} 2>/dev/null | grep -qx 'install ok installed'`).code !== 0);
        if (run("command -v apt-get && ! command -v dnf && ! command -v yum").code !== 0 || missing.length > 0) {
            // never install real packages from a test
            console.warn(`scripts-packages: real run skipped (${missing.length > 0 ? `not installed here: ${missing.join(" ")}` : "not an apt-only machine"})`);
            return;
        }
        const r = run(packagesScripts(LAB, "multicast").create);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toBe("");
        expect(stateDirExists(LAB)).toBe(false);
        expect(run(packagesScripts(LAB, "multicast").delete).code).toBe(0);
    });
});
