/**
 * .ci/run installs packages with apt_get (.ci/lib.sh), which waits while another apt or dpkg run holds the package
 * manager's lock instead of failing at once, and gives up with one clear line after KVMLAB_APT_LOCK_WAIT seconds.
 * The lock is held here the way apt holds it (an fcntl write lock on /var/lib/dpkg/lock-frontend); the install is of a
 * package that is already installed, so nothing on the machine changes.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { missingPrereqs, skipBecause } from "./scripts-harness";

const ROOT = resolve(__dirname, "../..");
const skip = skipBecause("ci-apt-lock", missingPrereqs(["apt-get", "dpkg", "python3"]));
let holder: ChildProcess | undefined;

/** Holds the dpkg frontend lock for `seconds`; resolves once it is held. */
function holdLock(seconds: number): Promise<void> {
    const py = `import fcntl, sys, time
f = open("/var/lib/dpkg/lock-frontend", "w")
fcntl.lockf(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(${seconds})`;
    holder = spawn("python3", ["-c", py], { stdio: ["ignore", "pipe", "inherit"] });
    return new Promise((res, rej) => {
        holder!.stdout!.on("data", (d) => (String(d).includes("held") ? res() : undefined));
        holder!.on("exit", (code) => rej(new Error(`lock holder exited ${code}`)));
    });
}

function aptGet(wait: number) {
    return spawnSync("bash", ["-c", ". .ci/lib.sh && apt_get install -y -qq --no-install-recommends procps"], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 180_000,
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive", KVMLAB_APT_LOCK_WAIT: String(wait) },
    });
}

afterEach(() => {
    if (holder && holder.exitCode === null) holder.kill("SIGKILL");
    holder = undefined;
});

describe.skipIf(skip)("apt_get and the package manager's lock", () => {
    it("waits while another run holds the lock, then installs", async () => {
        await holdLock(14);
        const r = aptGet(120);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toContain("ci: waiting for the package manager lock held by another apt/dpkg run");
    });

    it("gives up with one clear line when the lock stays held past the wait", async () => {
        await holdLock(60);
        const r = aptGet(3);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/^ci: apt-get install -y -qq --no-install-recommends procps: the package manager is still locked by another run after 3 s; wait for it to finish \(or end it\) and run again$/m);
    });
});
