/**
 * firewallScripts, run for real inside throwaway network namespaces (each has its own iptables ruleset), with
 * iptables-restore judging the rules.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { labNames } from "../../components/names";
import { firewallScripts } from "../../components/scripts/firewall";
import { dropState, iptablesSnapshot, missingPrereqs, Netns, run, skipBecause, stateDirExists, stateFiles } from "./scripts-harness";

const LAB = "hsct-fw";
const { input: IN, output: OUT, forward: FWD } = labNames(LAB).chains;

/** The kind of file the firewall renderer produces: our three chains, filled and hooked. */
function rules(opts: { forward?: boolean; port?: number } = {}): string {
    const port = opts.port ?? 1229;
    const forward = opts.forward ?? true;
    return [
        "*filter",
        `:${IN} - [0:0]`,
        `:${OUT} - [0:0]`,
        ...(forward ? [`:${FWD} - [0:0]`] : []),
        `-A ${IN} -i hscbr0 -p udp -s 10.99.0.0/24 -d 225.0.0.12 --dport ${port} -j ACCEPT`,
        `-A ${IN} -i hscbr0 -p igmp -s 10.99.0.0/24 -j ACCEPT`,
        `-A ${OUT} -o hscbr0 -p tcp -d 10.99.0.0/24 --dport ${port} -j ACCEPT`,
        ...(forward ? [`-A ${FWD} -m physdev --physdev-is-bridged -j ACCEPT`] : []),
        `-I INPUT 1 -j ${IN}`,
        `-I OUTPUT 1 -j ${OUT}`,
        ...(forward ? [`-I FORWARD 1 -j ${FWD}`] : []),
        "COMMIT",
        "",
    ].join("\n");
}

const skip = skipBecause("scripts-firewall", missingPrereqs(["ip", "iptables", "iptables-restore", "iptables-save", "awk"]));

describe.skipIf(skip)("firewall script", () => {
    let ns: Netns;
    beforeAll(() => dropState(LAB));
    afterEach(() => {
        ns?.destroy();
        dropState(LAB);
    });
    afterAll(() => ns?.destroy());

    /** A namespace with the user's own rules: an INPUT rule, a user chain hooked from FORWARD, a DROP policy. */
    function userNs(tag: string): Netns {
        ns = new Netns(tag);
        ns.exec("iptables -A INPUT -p tcp --dport 22 -j ACCEPT && iptables -N USERCHAIN && iptables -A USERCHAIN -j RETURN");
        ns.exec("iptables -A FORWARD -j USERCHAIN && iptables -P FORWARD DROP");
        return ns;
    }

    it("adds our chains and hooks them first; is idempotent; delete restores iptables-save exactly", () => {
        const n = userNs("fw1");
        const before = iptablesSnapshot(n.name);
        const s = firewallScripts(LAB);

        const r1 = run(s.create, { netns: n.name, stdin: rules() });
        expect(r1.code, r1.stderr).toBe(0);
        const after1 = iptablesSnapshot(n.name);
        for (const [builtin, chain] of [["INPUT", IN], ["OUTPUT", OUT], ["FORWARD", FWD]]) {
            const hooks = after1.split("\n").filter((l) => l.startsWith(`-A ${builtin} `));
            expect(hooks[0]).toBe(`-A ${builtin} -j ${chain}`);
            expect(hooks.filter((l) => l.endsWith(`-j ${chain}`))).toHaveLength(1);
        }
        expect(after1).toContain(`-A ${IN} -s 10.99.0.0/24 -d 225.0.0.12/32 -i hscbr0 -p udp -m udp --dport 1229 -j ACCEPT`);
        expect(after1).toContain(`-A ${FWD} -m physdev --physdev-is-bridged -j ACCEPT`);
        // the user's rules are all still there
        for (const line of before.split("\n").filter((l) => l.startsWith("-A") || l.startsWith(":USERCHAIN"))) expect(after1).toContain(line);
        expect(after1).toContain(":FORWARD DROP");
        expect(Object.keys(stateFiles(LAB)).sort()).toEqual([`firewall/chain/${FWD}`, `firewall/chain/${IN}`, `firewall/chain/${OUT}`]);

        const r2 = run(s.create, { netns: n.name, stdin: rules() });
        expect(r2.code, r2.stderr).toBe(0);
        expect(iptablesSnapshot(n.name)).toBe(after1);

        const d = run(s.delete, { netns: n.name });
        expect(d.code, d.stderr).toBe(0);
        expect(iptablesSnapshot(n.name)).toBe(before);
        expect(stateDirExists(LAB)).toBe(false);
        expect(run(s.delete, { netns: n.name }).code).toBe(0);
        expect(iptablesSnapshot(n.name)).toBe(before);
    });

    it("an update refills the chains and drops a chain the new rules no longer declare", () => {
        const n = userNs("fw2");
        const before = iptablesSnapshot(n.name);
        const s = firewallScripts(LAB);
        expect(run(s.create, { netns: n.name, stdin: rules() }).code).toBe(0);
        const r = run(s.create, { netns: n.name, stdin: rules({ forward: false, port: 2229 }) });
        expect(r.code, r.stderr).toBe(0);
        const now = iptablesSnapshot(n.name);
        expect(now).toContain("--dport 2229");
        expect(now).not.toContain("--dport 1229");
        expect(now).not.toContain(FWD);
        expect(Object.keys(stateFiles(LAB)).sort()).toEqual([`firewall/chain/${IN}`, `firewall/chain/${OUT}`]);
        expect(run(s.delete, { netns: n.name }).code).toBe(0);
        expect(iptablesSnapshot(n.name)).toBe(before);
    });

    it("refuses a chain of our name that it did not create, and leaves it alone on delete", () => {
        const n = userNs("fw3");
        n.exec(`iptables -N ${IN} && iptables -A ${IN} -j RETURN && iptables -I INPUT 1 -j ${IN}`);
        const before = iptablesSnapshot(n.name);
        const s = firewallScripts(LAB);
        const r = run(s.create, { netns: n.name, stdin: rules() });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(new RegExp(`iptables chain ${IN} exists but was not created by kvm-ha-lab lab ${LAB}: rename or remove it`));
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(iptablesSnapshot(n.name)).toBe(before);
        expect(stateDirExists(LAB)).toBe(false);
        expect(run(s.delete, { netns: n.name }).code).toBe(0);
        expect(iptablesSnapshot(n.name)).toBe(before);
    });

    it("refuses rules that touch anything but our chains, or that iptables-restore rejects, changing nothing", () => {
        const n = userNs("fw4");
        const before = iptablesSnapshot(n.name);
        const s = firewallScripts(LAB);
        const good = rules();
        const cases: [string, RegExp][] = [
            [good.replace("COMMIT", "-A INPUT -j ACCEPT\nCOMMIT"), /a rule in INPUT must jump to one of this lab's chains: -A INPUT -j ACCEPT/],
            [good.replace("*filter\n", "*filter\n:INPUT DROP [0:0]\n"), /declares chain INPUT, which is not one of this lab's chains/],
            [good.replace("COMMIT", "-A USERCHAIN -j DROP\nCOMMIT"), /a rule in chain USERCHAIN, which is not one of this lab's chains/],
            [good.replace("*filter", "*nat"), /only the filter table may be used, not \*nat/],
            [good.replace("COMMIT", "-F INPUT\nCOMMIT"), /not allowed in the lab firewall: -F INPUT/],
            [good.replace("-p igmp", "-p no-such-protocol"), /iptables-restore rejects the firewall rules: .*line/],
            ["", /declare none of this lab's chains/],
        ];
        for (const [text, message] of cases) {
            const r = run(s.create, { netns: n.name, stdin: text });
            expect(r.code, text).not.toBe(0);
            expect(r.stderr).toMatch(message);
            expect(r.stderr.trim().split("\n")).toHaveLength(1);
            expect(iptablesSnapshot(n.name)).toBe(before);
            expect(stateDirExists(LAB)).toBe(false);
        }
    });

    it("delete fails clearly while a rule it did not add still jumps to our chain", () => {
        const n = userNs("fw5");
        const s = firewallScripts(LAB);
        expect(run(s.create, { netns: n.name, stdin: rules() }).code).toBe(0);
        n.exec(`iptables -A USERCHAIN -j ${IN}`);
        const d = run(s.delete, { netns: n.name });
        expect(d.code).not.toBe(0);
        expect(d.stderr).toMatch(new RegExp(`cannot delete chain ${IN}: .*another rule still jumps to it`));
        n.exec(`iptables -D USERCHAIN -j ${IN}`);
        expect(run(s.delete, { netns: n.name }).code).toBe(0);
        expect(iptablesSnapshot(n.name)).not.toContain("KVMLAB-HSCT-FW");
    });
});
