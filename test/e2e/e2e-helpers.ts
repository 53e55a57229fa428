/**
 * Helpers the lab and isolation suites share: a shell command's result as text, a libvirt domain's state (and
 * waiting for one), and the teardown hook that takes a guest stand-in off its bridge when the program stops its domain.
 */
import type { GuestEndpoint } from "../harness/guest-endpoint";
import { runProc } from "../harness/proc";

export async function sh(cmd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const r = await runProc("/bin/sh", ["-c", cmd], { timeoutMs: 120_000 });
    return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

export async function virsh(...args: string[]): Promise<string> {
    const r = await runProc("virsh", ["-c", "qemu:///system", ...args], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`virsh ${args.join(" ")}: ${r.stderr.toString()}`);
    return r.stdout.toString().trim();
}

export async function waitDomState(name: string, state: string, timeoutMs = 30_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < until) {
        last = await virsh("domstate", name);
        if (last === state) return last;
        await new Promise((r) => setTimeout(r, 250));
    }
    return last;
}

/**
 * A guest's port leaves the bridge when its domain stops: as teardown's beforeDelete, this takes the stand-in of
 * guest X off the bridge when `X-start` is deleted (the program deletes what it put on the guest before that).
 */
export function detachAtStop(endpoint: (guest: string) => GuestEndpoint | undefined) {
    return async (r: { name: string }): Promise<void> => {
        const guest = /^(.*)-start$/.exec(r.name)?.[1];
        if (guest !== undefined) await endpoint(guest)?.detach();
    };
}
