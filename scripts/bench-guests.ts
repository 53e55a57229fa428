/**
 * `npm run --silent bench -- --real-guests [--rebuild-image]`: what a user waits for on a machine with libvirt and qemu
 * (root), measured for real on this machine and asserted nowhere:
 *
 * 1. the guest image (scripts/guest-image.sh): the check of a cached build (the recipe's hash is built: only the time
 *    of the check), and a real build when the image is missing or with --rebuild-image (guest-image.sh --force, which
 *    replaces the cached build of the same recipe; refused while a libvirt domain uses the image). By default a cached
 *    image is never deleted or rebuilt;
 * 2. a whole `up` of the lab stack (stacks/Pulumi.lab.yaml) with every command executed for real (libvirtd, qemu, the
 *    guests booting the image, cloud-init, deliveries over SSH, whatever cluster the stack forms), and per guest its
 *    boot to SSH (test/harness/up-timings.ts: from its `<guest>-start` command's end to its `<guest>-ssh-ready`
 *    command's end) with the qemu process's RSS after the up;
 * 3. the destroy of it all, after which the machine is as before (libvirtd and virtlogd are stopped again when this
 *    started them).
 *
 * It refuses to start (exit 1, nothing changed) when the lab already has something on this machine: its bridge, its
 * state or config directory, a guest's disk or seed, or a domain of a guest's name. Such a run would not be a clean
 * measurement, and its destroy would remove a user's running lab.
 *
 * Why a bench script imports from test/harness: the Pulumi engine cannot run programs on this machine (issue #10: no
 * language host or provider plugins), so the project's engine stand-in is the executing harness the e2e suites apply
 * the lab with (test/harness/run-program.ts: index.ts evaluated under executing mocks that run every command the
 * program declares, as @pulumi/command would, and a teardown that runs their deletes). When `pulumi up` can run here,
 * this measures `pulumi up` and `pulumi destroy` instead.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { labNames } from "../components/names";
import { runProc } from "../test/harness/proc";
import { runProgram } from "../test/harness/run-program";
import { E2E_BINARIES, ensureLibvirt, LIBVIRT_URI, requirements } from "../test/harness/services";
import { loadStackValues, PROJECT_ROOT, toPulumiConfig } from "../test/harness/stack-config";
import { bootToSshMs } from "../test/harness/up-timings";

const STACK = "lab";
/** Bound on the whole up (the e2e's): two TCG guests' first boot and cloud-init on a busy 2-core machine fit well. */
const UP_TIMEOUT_MS = 900_000;
const IMAGE_TIMEOUT_MS = 1_500_000;
const GUEST_IMAGE = join(PROJECT_ROOT, "scripts", "guest-image.sh");
/** The stable path guest-image.sh publishes the current build at (the lab stack names it). */
const IMAGE_LINK = "/var/lib/libvirt/images/kvm-ha-lab-debian12";

export interface RealGuestsOptions {
    stacksDir: string;
    rebuildImage: boolean;
}

interface ImageRun {
    ms: number;
    /** guest-image.sh's last stderr line, without its prefix. */
    said: string;
    built: boolean;
}

export interface RealGuestsReport {
    guests: string[];
    imageCheck: ImageRun;
    /** A real build: when the image was missing, or with --rebuild-image. */
    imageBuild?: ImageRun;
    up: { ms: number; commands: number; errors: string[]; timedOut: boolean };
    boot: { guest: string; ms?: number; qemuRssMiB?: number }[];
    destroy: { ms: number; deletes: number; failures: string[] };
    interrupted: boolean;
}

class Refused extends Error {}

interface StackGuest {
    name: string;
    disks?: { path: string }[];
}

function log(line: string): void {
    process.stderr.write(`bench: ${line}\n`);
}

/** Whatever the lab stack already has on this machine (paths and bridges; domains are checked once libvirt runs). */
function leftovers(values: Record<string, unknown>): string[] {
    const hosts = (values.hosts ?? []) as { local?: boolean; bridge?: { name?: string } }[];
    const guests = (values.guests ?? []) as StackGuest[];
    const names = labNames(STACK);
    const paths = [
        ...hosts.filter((h) => h.local && h.bridge?.name).map((h) => `/sys/class/net/${h.bridge!.name}`),
        names.stateDir,
        names.etcDir,
        ...guests.flatMap((g) => (g.disks ?? []).map((d) => d.path)),
        ...guests.map((g) => join(dirname(g.disks?.[0]?.path ?? "/var/lib/libvirt/images/x"), `${g.name}-cidata.iso`)),
    ];
    return paths.filter((p) => existsSync(p));
}

async function virsh(...args: string[]): Promise<{ code: number | null; out: string }> {
    const r = await runProc("virsh", ["-c", LIBVIRT_URI, ...args], { timeoutMs: 60_000 });
    return { code: r.code, out: r.stdout.toString() };
}

/** Domains (any, not only the lab's) whose definition or disks' backing chains name the image. */
async function domainsUsingImage(): Promise<string[]> {
    const marks = [IMAGE_LINK, ...(existsSync(IMAGE_LINK) ? [realpathSync(IMAGE_LINK)] : [])];
    const names = (await virsh("list", "--all", "--name")).out.split("\n").map((l) => l.trim()).filter(Boolean);
    const using: string[] = [];
    for (const name of names) {
        const xml = (await virsh("dumpxml", name)).out;
        let text = xml;
        for (const m of xml.matchAll(/<source file='([^']+)'/g)) {
            const info = await runProc("qemu-img", ["info", "-U", "--backing-chain", "--output=json", m[1]], { timeoutMs: 60_000 });
            text += info.stdout.toString();
        }
        if (marks.some((m) => text.includes(m))) using.push(name);
    }
    return using;
}

async function guestImage(...args: string[]): Promise<ImageRun> {
    const t0 = Date.now();
    const r = await runProc("bash", [GUEST_IMAGE, ...args], { timeoutMs: IMAGE_TIMEOUT_MS });
    const ms = Date.now() - t0;
    const last = r.stderr.toString().trim().split("\n").pop() ?? "";
    if (r.code !== 0) throw new Error(`scripts/guest-image.sh ${args.join(" ")} failed (exit ${r.code ?? r.signal}): ${r.stderr.toString().trim()}`);
    return { ms, said: last.replace(/^guest-image: /, ""), built: /^guest-image: built /.test(last) };
}

/** The qemu process's resident memory for a running domain (libvirt's pid file), or undefined. */
function qemuRssMiB(guest: string): number | undefined {
    try {
        const pid = readFileSync(`/run/libvirt/qemu/${guest}.pid`, "utf8").trim();
        const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
        return kb ? Math.round(Number(kb[1]) / 1024) : undefined;
    } catch {
        return undefined;
    }
}

async function measure(opts: RealGuestsOptions): Promise<RealGuestsReport> {
    const missing = requirements([...E2E_BINARIES, "qemu-img", "mmdebstrap", "mkfs.ext4", "genisoimage"]);
    if (missing.length > 0) throw new Refused(`--real-guests needs root and libvirt, qemu, fence-virt, mmdebstrap (see .ci/run); missing: ${missing.join(", ")}`);
    const values = loadStackValues(STACK, opts.stacksDir);
    const guests = ((values.guests ?? []) as StackGuest[]).map((g) => g.name);
    const found = leftovers(values);
    if (found.length > 0) {
        throw new Refused(`the ${STACK} stack already has things on this machine (${found.join(", ")}): not a clean measurement, and its destroy would remove them. Destroy that lab first (npm run destroy), or remove what an interrupted run left.`);
    }

    log("starting libvirtd unless it runs");
    const libvirt = await ensureLibvirt();
    let interrupted = false;
    const onSignal = (sig: NodeJS.Signals) => {
        if (interrupted) {
            log(`${sig} again: exiting now; the lab may be left (see README "After an interrupted up")`);
            process.exit(130);
        }
        interrupted = true;
        log(`${sig}: the lab is destroyed as soon as the up returns (bounded by ${UP_TIMEOUT_MS / 1000} s); ${sig} again exits at once`);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
        const defined: string[] = [];
        for (const g of guests) if ((await virsh("domstate", g)).code === 0) defined.push(g);
        if (defined.length > 0) throw new Refused(`libvirt already has domains named ${defined.join(", ")}: not a clean measurement, and the destroy would remove them`);

        // The image: a check of the cached build (built here first when missing), then a real build if asked for.
        log("guest image (scripts/guest-image.sh)");
        let imageBuild: ImageRun | undefined;
        let imageCheck = await guestImage();
        if (imageCheck.built) {
            imageBuild = imageCheck;
            imageCheck = await guestImage();
        } else if (opts.rebuildImage) {
            const users = await domainsUsingImage();
            if (users.length > 0) throw new Refused(`--rebuild-image: libvirt domains ${users.join(", ")} use the image ${IMAGE_LINK}; rebuilding it under them would corrupt their disks`);
            log("--rebuild-image: building the image again (guest-image.sh --force, a few minutes)");
            imageBuild = await guestImage("--force");
        }

        log(`applying the ${STACK} stack for real: ${guests.join(", ")} boot under libvirt (a few minutes under TCG)`);
        // This process is never a vitest worker, even when a test started it (and it inherited VITEST): runProgram
        // must take its plain-node path (require.cache), not vitest's module reset.
        delete process.env.VITEST;
        const { config, secretKeys } = toPulumiConfig(values);
        const run = await runProgram({
            stack: STACK,
            config,
            secretKeys,
            programPath: join(PROJECT_ROOT, "index.ts"),
            timeoutMs: UP_TIMEOUT_MS,
            // as the real-guest e2e: a TCG guest on a busy machine can be slow to answer once it is up
            maxDialRetries: 40,
        });
        const boot = guests.map((g) => ({ guest: g, ms: bootToSshMs(run.records, g), qemuRssMiB: qemuRssMiB(g) }));
        const up = { ms: run.durationMs, commands: run.records.filter((r) => r.custom && r.executed).length, errors: run.errors, timedOut: run.timedOut };

        log("destroying the lab");
        const t0 = Date.now();
        const down = await run.teardown();
        const destroy = {
            ms: Date.now() - t0,
            deletes: down.deletes.length,
            failures: down.failures.map((f) => `${f.name} [${f.type}]: ${f.error ?? f.stderr ?? "failed"}`),
        };
        return { guests, imageCheck, imageBuild, up, boot, destroy, interrupted };
    } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        await libvirt.stop();
    }
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1).padStart(7)} s`;
const label = (s: string) => s.padEnd(32);

/** The report, in the bench's line style: one line per measurement, label padded to 32 columns, then the time. */
export function reportLines(r: RealGuestsReport): string[] {
    const lines = [
        `${label("guest image check (cached)")} ${secs(r.imageCheck.ms)}  ${r.imageCheck.said}`,
        r.imageBuild
            ? `${label("guest image build")} ${secs(r.imageBuild.ms)}  ${r.imageBuild.said}`
            : `${label("guest image build")} not run: the image is cached (--rebuild-image rebuilds it)`,
        `${label(`up (whole, ${r.guests.length} guests)`)} ${secs(r.up.ms)}  ${r.up.commands} commands run${r.up.errors.length ? `, FAILED: ${r.up.errors.length} errors` : ""}${r.up.timedOut ? " (timed out)" : ""}`,
        ...r.boot.map((b) =>
            b.ms === undefined
                ? `${label(`${b.guest} boot to SSH`)} not measured: it did not answer SSH`
                : `${label(`${b.guest} boot to SSH`)} ${secs(b.ms)}  qemu RSS after up ${b.qemuRssMiB ?? "n/a"} MiB`,
        ),
        `${label("destroy")} ${secs(r.destroy.ms)}  ${r.destroy.deletes} deletes${r.destroy.failures.length ? `, FAILED: ${r.destroy.failures.length}` : ""}`,
    ];
    return lines;
}

/** Runs the measurement and prints it; the exit code: 0, or 1 when refused, when anything failed or was interrupted. */
export async function runRealGuests(opts: RealGuestsOptions): Promise<number> {
    let report: RealGuestsReport;
    try {
        report = await measure(opts);
    } catch (e) {
        log(e instanceof Refused ? `refused: ${e.message}` : e instanceof Error ? e.message : String(e));
        return 1;
    }
    process.stdout.write(
        `kvm-ha-lab bench: the ${STACK} stack applied and destroyed for real on this machine (libvirt, qemu; the executing harness runs every command; node ${process.version})\n`,
    );
    for (const l of reportLines(report)) process.stdout.write(`${l}\n`);
    for (const e of report.up.errors) log(`up: ${e}`);
    for (const f of report.destroy.failures) log(`destroy: ${f}`);
    const failed = report.up.errors.length > 0 || report.boot.some((b) => b.ms === undefined) || report.destroy.failures.length > 0;
    if (report.interrupted) log("interrupted: the lab was destroyed");
    return failed || report.interrupted ? 1 : 0;
}
