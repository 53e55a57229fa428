/**
 * firewallScripts, run for real inside throwaway network namespaces (each has its own iptables ruleset), with
 * iptables-restore judging the rules.
 */
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

const skip = skipBecause("scripts-firewall", missingPrereqs(["ip", "iptables", "iptables-restore", "iptables-save", "awk", "nft", "iptables-legacy"]));

/** What a namespace's firewall looks like to both backends' tools: iptables-save (comments dropped) and nft. */
function rulesets(n: Netns): { iptables: string; nft: string } {
    return { iptables: iptablesSnapshot(n.name), nft: n.exec("nft list ruleset") };
}

/** PATH with iptables, iptables-save and iptables-restore pointing at the legacy (x_tables) backend. */
function legacyPath(dir: string): string {
    for (const t of ["iptables", "iptables-save", "iptables-restore"]) symlinkSync(`/usr/sbin/${t.replace("iptables", "iptables-legacy")}`, join(dir, t));
    return `${dir}:${process.env.PATH}`;
}

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
        const beforeNft = n.exec("nft list ruleset");
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
        // the user's namespace has no OUTPUT base chain yet (nf_tables makes base chains on first use): ours to remove
        expect(Object.keys(stateFiles(LAB)).sort()).toEqual([`firewall/chain/${FWD}`, `firewall/chain/${IN}`, `firewall/chain/${OUT}`, "firewall/nft/chain/OUTPUT"]);

        const r2 = run(s.create, { netns: n.name, stdin: rules() });
        expect(r2.code, r2.stderr).toBe(0);
        expect(iptablesSnapshot(n.name)).toBe(after1);

        const d = run(s.delete, { netns: n.name });
        expect(d.code, d.stderr).toBe(0);
        expect(iptablesSnapshot(n.name)).toBe(before);
        expect(n.exec("nft list ruleset")).toBe(beforeNft);
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
        expect(Object.keys(stateFiles(LAB)).sort()).toEqual([`firewall/chain/${IN}`, `firewall/chain/${OUT}`, "firewall/nft/chain/OUTPUT"]);
        expect(run(s.delete, { netns: n.name }).code).toBe(0);
        expect(iptablesSnapshot(n.name)).toBe(before);
    });

    it("refuses a chain of our name that it did not create, and leaves it alone on delete", () => {
        const n = userNs("fw3");
        n.exec(`iptables -N ${IN} && iptables -A ${IN} -j RETURN && iptables -I INPUT 1 -j ${IN}`);
        const before = iptablesSnapshot(n.name);
        const beforeNft = n.exec("nft list ruleset");
        const s = firewallScripts(LAB);
        const r = run(s.create, { netns: n.name, stdin: rules() });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(new RegExp(`iptables chain ${IN} exists but was not created by kvm-ha-lab lab ${LAB}: rename or remove it`));
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(iptablesSnapshot(n.name)).toBe(before);
        expect(n.exec("nft list ruleset")).toBe(beforeNft);
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

    describe("the filter table and base chains it had to create (nf_tables)", () => {
        it("a namespace with no filter table at all: create makes it, delete leaves iptables-save and nft byte-identical", () => {
            ns = new Netns("fw6");
            const before = rulesets(ns);
            expect(before.nft).toBe("");
            expect(before.iptables).not.toContain("*filter");
            const s = firewallScripts(LAB);
            const c = run(s.create, { netns: ns.name, stdin: rules() });
            expect(c.code, c.stderr).toBe(0);
            for (const b of ["INPUT", "FORWARD", "OUTPUT"]) expect(ns.exec("nft list chains ip")).toContain(`chain ${b} {`);
            expect(Object.keys(stateFiles(LAB)).filter((k) => k.startsWith("firewall/nft/")).sort()).toEqual([
                "firewall/nft/chain/FORWARD",
                "firewall/nft/chain/INPUT",
                "firewall/nft/chain/OUTPUT",
                "firewall/nft/table",
            ]);
            // a second create (an update) records nothing new and changes nothing
            const after1 = rulesets(ns);
            expect(run(s.create, { netns: ns.name, stdin: rules() }).code).toBe(0);
            expect(rulesets(ns)).toEqual(after1);
            const d = run(s.delete, { netns: ns.name });
            expect(d.code, d.stderr).toBe(0);
            expect(d.stderr).toContain("deleted the filter table it created");
            expect(rulesets(ns)).toEqual(before);
            expect(stateDirExists(LAB)).toBe(false);
        });

        it("a table with only the user's INPUT chain: the base chains it added go, the user's chain and rule stay", () => {
            ns = new Netns("fw7");
            ns.exec("iptables -A INPUT -p tcp --dport 22 -j ACCEPT");
            const before = rulesets(ns);
            expect(before.nft).toContain("chain INPUT");
            expect(before.nft).not.toContain("chain OUTPUT");
            const s = firewallScripts(LAB);
            expect(run(s.create, { netns: ns.name, stdin: rules() }).code).toBe(0);
            expect(Object.keys(stateFiles(LAB)).filter((k) => k.startsWith("firewall/nft/")).sort()).toEqual([
                "firewall/nft/chain/FORWARD",
                "firewall/nft/chain/OUTPUT",
            ]);
            const d = run(s.delete, { netns: ns.name });
            expect(d.code, d.stderr).toBe(0);
            expect(rulesets(ns)).toEqual(before);
        });

        it("a base chain the user used meanwhile stays, with the user's rule", () => {
            ns = new Netns("fw8");
            const s = firewallScripts(LAB);
            expect(run(s.create, { netns: ns.name, stdin: rules() }).code).toBe(0);
            ns.exec("iptables -A OUTPUT -p tcp --dport 80 -j ACCEPT");
            const d = run(s.delete, { netns: ns.name });
            expect(d.code, d.stderr).toBe(0);
            expect(d.stderr).toContain("left the base chain OUTPUT in place: something other than kvm-ha-lab uses it now");
            const now = rulesets(ns);
            expect(now.iptables).toContain("-A OUTPUT -p tcp -m tcp --dport 80 -j ACCEPT");
            expect(now.nft).not.toMatch(/chain (INPUT|FORWARD) /);
            expect(stateDirExists(LAB)).toBe(false);
        });

        it("two labs: the table goes with the last of them, whichever was first", () => {
            ns = new Netns("fw9");
            const other = "hsct-fw2";
            const o = labNames(other).chains;
            const otherRules = rules().replaceAll(IN, o.input).replaceAll(OUT, o.output).replaceAll(FWD, o.forward);
            const before = rulesets(ns);
            const a = firewallScripts(LAB);
            const b = firewallScripts(other);
            try {
                expect(run(a.create, { netns: ns.name, stdin: rules() }).code).toBe(0);
                expect(run(b.create, { netns: ns.name, stdin: otherRules }).code).toBe(0);
                const d1 = run(a.delete, { netns: ns.name });
                expect(d1.code, d1.stderr).toBe(0);
                expect(d1.stderr).toContain(`left the filter table in place for lab ${other}`);
                expect(ns.exec("nft list ruleset")).toContain(o.input);
                expect(stateDirExists(LAB)).toBe(false);
                const d2 = run(b.delete, { netns: ns.name });
                expect(d2.code, d2.stderr).toBe(0);
                expect(rulesets(ns)).toEqual(before);
                expect(stateDirExists(other)).toBe(false);
            } finally {
                dropState(other);
            }
        });
    });

    describe("the legacy (x_tables) backend", () => {
        let bin: string;
        beforeAll(() => {
            bin = mkdtempSync(join(tmpdir(), "kvmlab-legacy-"));
        });
        afterAll(() => rmSync(bin, { recursive: true, force: true }));

        it("a fresh namespace: delete leaves what the kernel shows after a mere look (it cannot remove a legacy table)", () => {
            const env = { PATH: legacyPath(bin) };
            const control = new Netns("fwl0");
            try {
                // the kernel instantiates an empty filter table in a namespace on the first look into it
                control.exec("iptables-legacy -n -L INPUT >/dev/null");
                const looked = control.exec("iptables-legacy-save | grep -v '^#'");
                expect(looked).toContain("*filter");
                ns = new Netns("fwl1");
                expect(ns.exec("iptables-legacy-save")).toBe("");
                const s = firewallScripts(LAB);
                const c = run(s.create, { netns: ns.name, stdin: rules(), env });
                expect(c.code, c.stderr).toBe(0);
                expect(ns.exec("iptables-legacy-save")).toContain(`-A INPUT -j ${IN}`);
                expect(ns.exec("nft list ruleset")).toBe("");
                expect(Object.keys(stateFiles(LAB)).some((k) => k.startsWith("firewall/nft/"))).toBe(false);
                const d = run(s.delete, { netns: ns.name, env });
                expect(d.code, d.stderr).toBe(0);
                expect(ns.exec("iptables-legacy-save | grep -v '^#'")).toBe(looked);
                expect(ns.exec("nft list ruleset")).toBe("");
            } finally {
                control.destroy();
            }
        });

        it("a populated legacy table: create → delete leaves iptables-legacy-save byte-identical", () => {
            const env = { PATH: legacyPath(mkdtempSync(join(bin, "p-"))) };
            ns = new Netns("fwl2");
            ns.exec("iptables-legacy -A INPUT -p tcp --dport 22 -j ACCEPT && iptables-legacy -N USERCHAIN && iptables-legacy -A FORWARD -j USERCHAIN && iptables-legacy -P FORWARD DROP");
            const before = ns.exec("iptables-legacy-save | grep -v '^#'");
            const s = firewallScripts(LAB);
            expect(run(s.create, { netns: ns.name, stdin: rules(), env }).code).toBe(0);
            expect(run(s.delete, { netns: ns.name, env }).code).toBe(0);
            expect(ns.exec("iptables-legacy-save | grep -v '^#'")).toBe(before);
        });
    });
});
