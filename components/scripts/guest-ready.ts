/**
 * Readiness of a guest's operating system: waits on the machine running pulumi (where the deliveries to the guest
 * come from) until the guest's sshd answers with its SSH banner, bounded. Everything delivered to the guest depends
 * on this command, so a guest that never boots fails here with one clear message naming the guest, its address and
 * what was tried, instead of as an SSH dial error deep inside a delivery.
 *
 * It changes nothing: delete does nothing. It uses Node (which runs the Pulumi program, so it is there) for the TCP
 * probe, because POSIX sh has none.
 */
import { shq } from "./prelude";
import type { HostScripts } from "./types";

/** Boot to SSH measured 14-40 s under TCG on a busy 2-core machine; minutes on a cold cloud image. */
export const GUEST_READY_TIMEOUT_SECONDS = 300;

export interface GuestReadyOptions {
    guest: string;
    address: string;
    port: number;
    timeoutSeconds?: number;
}

// The probe: connect, read until the banner line starts with "SSH-", retry every 2 s until the deadline.
const PROBE = `
const [guest, host, port, seconds] = process.argv.slice(1);
const net = require("net");
const deadline = Date.now() + Number(seconds) * 1000;
let tries = 0;
let last = "no attempt";
function attempt() {
    tries++;
    const s = net.connect({ host, port: Number(port), timeout: 5000 });
    let got = "";
    const done = (ok, why) => {
        s.destroy();
        if (ok) { console.log("guest " + guest + ": sshd at " + host + ":" + port + " answered after " + tries + " attempt(s)"); process.exit(0); }
        last = why;
        if (Date.now() + 2000 > deadline) {
            console.error("kvm-ha-lab: guest " + guest + " is not reachable over SSH: no SSH banner from " + host + ":" + port + " within " + seconds + " s (" + tries + " attempts, TCP connect + read of the banner every 2 s from the machine running pulumi; last: " + last + "). Check that the guest boots (virsh console " + guest + ", or its serial log), that its address on the cluster network is " + host + " and that sshd runs.");
            process.exit(1);
        }
        setTimeout(attempt, 2000);
    };
    s.on("data", (d) => { got += d.toString("latin1"); if (got.startsWith("SSH-")) done(true); else if (got.includes("\\n")) done(false, "answer is not an SSH banner: " + JSON.stringify(got.slice(0, 40))); });
    s.on("timeout", () => done(false, "timed out after 5 s"));
    s.on("error", (e) => done(false, e.code || e.message));
    s.on("close", () => { if (!got.startsWith("SSH-")) done(false, got ? "closed after " + JSON.stringify(got.slice(0, 40)) : "connection closed without a banner"); });
}
attempt();
`;

export function guestReadyScripts(o: GuestReadyOptions): HostScripts {
    const seconds = o.timeoutSeconds ?? GUEST_READY_TIMEOUT_SECONDS;
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`port ${o.port} is not a TCP port`);
    if (!Number.isInteger(seconds) || seconds < 1) throw new Error(`timeout ${seconds} s is not a positive whole number`);
    const create =
        "#!/bin/sh\n" +
        `# kvm-ha-lab: wait until guest ${o.guest.replace(/[^A-Za-z0-9._-]/g, "?")} answers SSH\n` +
        "set -eu\n" +
        "command -v node >/dev/null 2>&1 || { echo 'kvm-ha-lab: node is not on PATH (it runs the Pulumi program); cannot probe guest SSH' >&2; exit 1; }\n" +
        `exec node -e ${shq(PROBE)} ${shq(o.guest)} ${shq(o.address)} ${shq(String(o.port))} ${shq(String(seconds))}\n`;
    return { create, delete: "exit 0\n" };
}
