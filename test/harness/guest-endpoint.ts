/**
 * Guest stand-ins: an endpoint that plays a guest's operating system for the program (which delivers the fence key
 * and cluster.conf to guests over SSH), without booting a VM.
 *
 * Each endpoint is:
 *   - a network namespace `<prefix>-<name>` with `eth0` at `address` (CIDR), lo up, a multicast route
 *     (224.0.0.0/4 dev eth0, so fence_xvm can send its requests) and an optional default route; the other end of the
 *     veth pair (`hostIf`, in the root namespace) is enslaved to `bridge`;
 *   - its own mount namespace in which /etc and /run are copy-on-write overlays (upper layers on a tmpfs that lives
 *     only as long as the endpoint): whatever the program writes under /etc on the guest stays on the guest, and the
 *     guest's /etc/cluster starts as an empty directory of its own (opaque: the host's /etc/cluster, with the host's
 *     key, is never visible in it). The host filesystem is not modified (no /run/sshd, no /etc/cluster on the host);
 *   - an sshd on <address>:22 (generated ed25519 host key; authorized_keys = a generated ed25519 client key pair;
 *     PermitRootLogin prohibit-password, UsePAM no, AcceptEnv "LANG LC_*" as on Debian/RHEL, its own pid file) whose
 *     sessions run in that mount namespace;
 *   - exec()/readFile()/stat() run in the same network and mount namespaces (nsenter -t <sshd pid> -m -n), so a test
 *     sees exactly what an SSH session sees.
 *
 * The bridge may not exist yet (the program under test creates it): with `follow` (default) a watcher enslaves the
 * veth whenever the bridge exists and the veth is not in it — also after the program deletes and recreates the bridge.
 * `waitAttached()` waits for that. Alternatively attach from runProgram's `onCreated` hook.
 *
 * destroy() stops only this endpoint's sshd and the processes that ran inside this guest (same mount namespace),
 * deletes the veth and the namespace, and removes its temp directory.
 */
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { descendants, mustRun, pidAlive, pidComm, runProc, sleep, stopPid } from "./proc";

export interface GuestEndpointOptions {
    /** Guest name, e.g. "node1". */
    name: string;
    /** Bridge in the root namespace (e.g. "br-lab"). */
    bridge: string;
    /** The guest's address with prefix length, e.g. "10.99.0.11/24". */
    address: string;
    /** Default route via this address. */
    gateway?: string;
    /** Namespace prefix (use your suite's tag); default "gst". The namespace is `<prefix>-<name>`. */
    prefix?: string;
    /** Keep the veth enslaved to `bridge` whenever the bridge exists (default true). Else the bridge must exist now. */
    follow?: boolean;
    /** Start with an empty /etc/cluster directory, as with the cman package installed (default true). */
    etcCluster?: boolean;
    /** sshd AcceptEnv (default "LANG LC_*"): PULUMI_COMMAND_STDOUT and `environment` do not reach remote scripts. */
    acceptEnv?: string;
    /**
     * The client key root logs in with (e.g. one key for every guest, as a stack has one `sshPrivateKey`); default: a
     * key pair generated for this endpoint. See generateClientKey().
     */
    clientKey?: ClientKey;
}

export interface ClientKey {
    /** OpenSSH private key text. */
    privateKey: string;
    /** One authorized_keys line. */
    publicKey: string;
}

/** A fresh ed25519 key pair (no passphrase), generated in a temp dir that is removed at once. */
export async function generateClientKey(comment = "guest-endpoint-client"): Promise<ClientKey> {
    const dir = mkdtempSync(join(tmpdir(), "guest-key-"));
    try {
        const f = join(dir, "id_ed25519");
        await mustRun("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", f]);
        return { privateKey: readFileSync(f, "utf8"), publicKey: readFileSync(`${f}.pub`, "utf8").trim() };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

export interface ExecResult {
    code: number | null;
    stdout: string;
    stderr: string;
}

export interface GuestEndpoint {
    name: string;
    /** Network namespace name. */
    nsName: string;
    /** IP address without prefix (the SSH host). */
    address: string;
    /** The address as given (CIDR). */
    cidr: string;
    /** Host end of the veth pair (in the root namespace, enslaved to the bridge). */
    hostIf: string;
    sshdPid: number;
    /** OpenSSH private key (ed25519) that logs in as root. A secret: pass it as a secret config value. */
    privateKey: string;
    publicKey: string;
    /** Runs `/bin/sh -c cmd` inside the guest (its network and mount namespaces). */
    exec(cmd: string, opts?: { stdin?: string | Buffer; timeoutMs?: number }): Promise<ExecResult>;
    /** A file's bytes as the guest sees it; throws when missing. */
    readFile(path: string): Promise<Buffer>;
    /** mode (e.g. 0o400), owner, group, size as the guest sees them; undefined when missing. */
    stat(path: string): Promise<{ mode: number; uid: number; gid: number; size: number } | undefined>;
    /** true when the veth is in the bridge now. */
    attached(): boolean;
    /** Enslaves the veth now (throws if the bridge does not exist). */
    attach(): Promise<void>;
    /**
     * Takes the veth out of the bridge and stops following it, as a guest's port leaves the bridge when its domain
     * stops (call it when the program stops the guest's domain, e.g. from teardown's beforeDelete). Idempotent.
     */
    detach(): Promise<void>;
    /** Follows the bridge again (after detach()): the veth is enslaved whenever the bridge exists. */
    follow(): void;
    /** Resolves once the veth is in the bridge (the watcher or attach() did it). */
    waitAttached(timeoutMs?: number): Promise<void>;
    /** Stops this endpoint's processes, deletes veth and namespace, removes temp files. Idempotent. */
    destroy(): Promise<void>;
}

function netnsExists(ns: string): boolean {
    return existsSync(`/run/netns/${ns}`);
}

function masterOf(ifname: string): string | undefined {
    try {
        return basename(readlinkSync(`/sys/class/net/${ifname}/master`));
    } catch {
        return undefined;
    }
}

function mountNs(pid: number): string | undefined {
    try {
        return readlinkSync(`/proc/${pid}/ns/mnt`);
    } catch {
        return undefined;
    }
}

const GUEST_SETUP = `set -e
T="$1"; WANT_CLUSTER="$2"
mount -t tmpfs -o mode=0700 guest-private "$T/priv"
# /etc, /run, /var and /usr/local are the guest's own (copy-on-write over the host's): what a program writes there on
# a guest (key, cluster.conf, its state under /var/lib, scripts under /usr/local) never reaches the host.
for D in etc run var usr-local; do mkdir "$T/priv/$D-up" "$T/priv/$D-work"; done
mount -t overlay guest-etc -o "lowerdir=/etc,upperdir=$T/priv/etc-up,workdir=$T/priv/etc-work" /etc
mount -t overlay guest-run -o "lowerdir=/run,upperdir=$T/priv/run-up,workdir=$T/priv/run-work" /run
mount -t overlay guest-var -o "lowerdir=/var,upperdir=$T/priv/var-up,workdir=$T/priv/var-work" /var
mount -t overlay guest-usr-local -o "lowerdir=/usr/local,upperdir=$T/priv/usr-local-up,workdir=$T/priv/usr-local-work" /usr/local
# Only ever remove inside the overlay (a whiteout in the guest's upper layer; the host is untouched).
[ "$(stat -f -c %T /etc)" = overlayfs ] || { echo "guest /etc is not an overlay" >&2; exit 1; }
rm -rf /etc/cluster
if [ "$WANT_CLUSTER" = yes ]; then mkdir -m 0755 /etc/cluster; fi
mkdir -p -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e -f "$T/sshd_config"
`;

export async function createGuestEndpoint(opts: GuestEndpointOptions): Promise<GuestEndpoint> {
    const prefix = opts.prefix ?? "gst";
    const nsName = `${prefix}-${opts.name}`;
    const [address, plen] = opts.address.split("/");
    if (!address || !plen) throw new Error(`createGuestEndpoint: address must be a CIDR like 10.99.0.11/24, got ${opts.address}`);
    const tag = createHash("sha1").update(nsName).digest("hex").slice(0, 8);
    const hostIf = `vh${tag}`;
    const peerIf = `vp${tag}`;
    if (netnsExists(nsName)) {
        throw new Error(`createGuestEndpoint: network namespace ${nsName} already exists (left by an earlier run?); remove it with: ip netns pids ${nsName} | xargs -r kill; ip netns del ${nsName}`);
    }
    if (existsSync(`/sys/class/net/${hostIf}`)) throw new Error(`createGuestEndpoint: interface ${hostIf} already exists; remove it with: ip link del ${hostIf}`);

    const dir = mkdtempSync(join(tmpdir(), `${nsName}-`));
    chmodSync(dir, 0o700);
    let sshdPid = 0;
    let watcher: NodeJS.Timeout | undefined;
    let destroyed = false;
    let attaching = false;
    let paused = false;

    const destroy = async () => {
        if (destroyed) return;
        destroyed = true;
        if (watcher) clearInterval(watcher);
        if (sshdPid > 0) {
            const mnt = mountNs(sshdPid);
            const kids = descendants(sshdPid);
            if (pidAlive(sshdPid) && pidComm(sshdPid) === "sshd") await stopPid(sshdPid);
            for (const k of kids) if (pidAlive(k)) await stopPid(k, 1000);
            // Anything else that ran inside this guest (e.g. a daemon started over SSH) shares its mount namespace.
            if (mnt && netnsExists(nsName)) {
                const r = await runProc("ip", ["netns", "pids", nsName]);
                for (const p of r.stdout.toString().split(/\s+/).filter(Boolean).map(Number)) {
                    if (mountNs(p) === mnt) await stopPid(p, 1000);
                }
            }
        }
        if (existsSync(`/sys/class/net/${hostIf}`)) await runProc("ip", ["link", "del", hostIf]);
        if (netnsExists(nsName)) await runProc("ip", ["netns", "del", nsName]);
        rmSync(dir, { recursive: true, force: true });
    };

    try {
        const hostKey = join(dir, "host_ed25519");
        await mustRun("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${nsName}-host`, "-f", hostKey]);
        const { privateKey, publicKey } = opts.clientKey ?? (await generateClientKey(`${nsName}-client`));
        writeFileSync(join(dir, "authorized_keys"), publicKey + "\n", { mode: 0o600 });
        writeFileSync(
            join(dir, "sshd_config"),
            [
                `ListenAddress ${address}:22`,
                `HostKey ${hostKey}`,
                `PidFile ${join(dir, "sshd.pid")}`,
                `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                // The temp dir lives under /tmp (sticky, world-writable): StrictModes would refuse the key file.
                "StrictModes no",
                `AcceptEnv ${opts.acceptEnv ?? "LANG LC_*"}`,
                "PrintMotd no",
                "UseDNS no",
                "Subsystem sftp internal-sftp",
                "",
            ].join("\n"),
            { mode: 0o600 },
        );
        mkdirSync(join(dir, "priv"));

        await mustRun("ip", ["netns", "add", nsName]);
        await mustRun("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", peerIf]);
        await mustRun("ip", ["link", "set", peerIf, "netns", nsName]);
        await mustRun("ip", ["-n", nsName, "link", "set", peerIf, "name", "eth0"]);
        await mustRun("ip", ["-n", nsName, "addr", "add", opts.address, "dev", "eth0"]);
        await mustRun("ip", ["-n", nsName, "link", "set", "lo", "up"]);
        await mustRun("ip", ["-n", nsName, "link", "set", "eth0", "up"]);
        await mustRun("ip", ["-n", nsName, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
        if (opts.gateway) await mustRun("ip", ["-n", nsName, "route", "add", "default", "via", opts.gateway]);
        await mustRun("ip", ["link", "set", hostIf, "up"]);

        const attach = async () => {
            if (!existsSync(`/sys/class/net/${opts.bridge}`)) throw new Error(`bridge ${opts.bridge} does not exist`);
            if (masterOf(hostIf) !== opts.bridge) await mustRun("ip", ["link", "set", hostIf, "master", opts.bridge]);
            await mustRun("ip", ["link", "set", hostIf, "up"]);
        };
        if (opts.follow === false) {
            await attach();
        } else {
            const tick = () => {
                if (attaching || destroyed || paused) return;
                if (!existsSync(`/sys/class/net/${opts.bridge}`) || masterOf(hostIf) === opts.bridge) return;
                attaching = true;
                attach()
                    .catch(() => undefined)
                    .finally(() => {
                        attaching = false;
                    });
            };
            tick();
            watcher = setInterval(tick, 200);
            watcher.unref();
        }

        // sshd in the namespace, in a private mount namespace set up by GUEST_SETUP. ip netns exec, unshare and sh
        // all exec, so the child's PID is sshd's.
        const log = openSync(join(dir, "sshd.log"), "a");
        const child = spawn(
            "ip",
            ["netns", "exec", nsName, "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", GUEST_SETUP, "guest-setup", dir, opts.etcCluster === false ? "no" : "yes"],
            { detached: true, stdio: ["ignore", log, log] },
        );
        closeSync(log);
        child.unref();
        child.on("error", () => undefined);
        if (child.pid === undefined) throw new Error("createGuestEndpoint: could not spawn sshd");
        sshdPid = child.pid;

        const deadline = Date.now() + 10_000;
        for (;;) {
            if (!pidAlive(sshdPid)) {
                throw new Error(`createGuestEndpoint ${nsName}: sshd exited:\n${readFileSync(join(dir, "sshd.log"), "utf8")}`);
            }
            const r = await runProc("ip", ["netns", "exec", nsName, "ss", "-Hltn", "sport = :22"]);
            if (r.code === 0 && r.stdout.toString().includes(`${address}:22`) && pidComm(sshdPid) === "sshd") break;
            if (Date.now() > deadline) {
                throw new Error(`createGuestEndpoint ${nsName}: sshd not listening on ${address}:22 after 10 s:\n${readFileSync(join(dir, "sshd.log"), "utf8")}`);
            }
            await sleep(50);
        }

        const exec = async (cmd: string, o: { stdin?: string | Buffer; timeoutMs?: number } = {}): Promise<ExecResult> => {
            const r = await runProc("nsenter", ["-t", String(sshdPid), "-m", "-n", "--", "/bin/sh", "-c", cmd], o);
            return { code: r.code, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8") };
        };
        const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

        return {
            name: opts.name,
            nsName,
            address,
            cidr: opts.address,
            hostIf,
            sshdPid,
            privateKey,
            publicKey,
            exec,
            async readFile(path) {
                const r = await runProc("nsenter", ["-t", String(sshdPid), "-m", "-n", "--", "cat", "--", path]);
                if (r.code !== 0) throw new Error(`${nsName}: cannot read ${path}: ${r.stderr.toString().trim()}`);
                return r.stdout;
            },
            async stat(path) {
                const r = await exec(`stat -c '%a %u %g %s' -- ${q(path)}`);
                if (r.code !== 0) return undefined;
                const [mode, uid, gid, size] = r.stdout.trim().split(" ");
                return { mode: parseInt(mode, 8), uid: Number(uid), gid: Number(gid), size: Number(size) };
            },
            attached: () => masterOf(hostIf) === opts.bridge,
            attach,
            async detach() {
                paused = true;
                while (attaching) await sleep(20);
                if (masterOf(hostIf) !== undefined) await mustRun("ip", ["link", "set", hostIf, "nomaster"]);
            },
            follow() {
                paused = false;
            },
            async waitAttached(timeoutMs = 30_000) {
                const end = Date.now() + timeoutMs;
                while (masterOf(hostIf) !== opts.bridge) {
                    if (Date.now() > end) throw new Error(`${nsName}: ${hostIf} not in bridge ${opts.bridge} after ${timeoutMs} ms`);
                    await sleep(50);
                }
            },
            destroy,
        };
    } catch (e) {
        await destroy();
        throw e;
    }
}
