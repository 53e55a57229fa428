import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it, type TestContext } from "vitest";
import { validateLabConfig } from "../../components/config";
import { labNames } from "../../components/names";
import {
    HOST_CLUSTER_PORTS,
    firewallChains,
    firewallHookLines,
    firewallHooks,
    firewallUnhookArgs,
    renderFirewall,
} from "../../components/render/firewall";
import type { HostSpec, LabSpec } from "../../components/spec";
import { parseStackFile } from "../../components/stack-file";
import { hasTool, need, run } from "../helpers/tools";

// ---- helpers ------------------------------------------------------------------------------------------------------

const DEV_SECRETS = ["sshPrivateKey", "ipmiPasswordKvm1", "ipmiPasswordKvm2"];

function loadStack(stack: "lab" | "dev"): LabSpec {
    const { raw, secretKeys } = parseStackFile(readFileSync(`stacks/Pulumi.${stack}.yaml`, "utf8"));
    const secrets = new Set([...secretKeys, ...(stack === "dev" ? DEV_SECRETS : [])]);
    return validateLabConfig(raw, { stack, secretKeys: secrets, readFile: () => undefined });
}




function needNetns(ctx: TestContext) {
    need(ctx, "iptables/iptables-restore is not installed", hasTool("iptables-restore") && hasTool("iptables") && hasTool("iptables-save"));
    need(ctx, "ip (iproute2) is not installed", hasTool("ip"));
    need(ctx, "not root (network namespaces need root)", process.getuid?.() === 0);
}

/** Rule lines (`-A CHAIN ...`) of one chain in a rendered file. */
const fileRules = (text: string, chain: string) => text.split("\n").filter((l) => l.startsWith(`-A ${chain} `));

const stacks = { lab: loadStack("lab"), dev: loadStack("dev") };
const clustered = (spec: LabSpec) => spec.hostCluster !== undefined;
const allHosts = (Object.entries(stacks) as [string, LabSpec][]).flatMap(([stack, spec]) =>
    spec.hosts.map((host) => ({ stack, spec, host, opts: { clusteredHost: clustered(spec) } })),
);

// ---- meaning --------------------------------------------------------------------------------------------------------

describe("renderFirewall: what the file says", () => {
    it("covers the hosts of both stacks; only the dev hosts are a host cluster", () => {
        expect(allHosts.map((h) => `${h.stack}/${h.host.name}:${h.opts.clusteredHost}`)).toEqual(["lab/kvmhost:false", "dev/kvm1:true", "dev/kvm2:true"]);
    });

    it("exports the lab's chains and their hooks", () => {
        const { chains } = labNames("lab");
        expect(firewallChains("lab")).toEqual([chains.input, chains.output, chains.forward]);
        expect(firewallChains("lab")).toEqual(["KVMLAB-LAB-IN", "KVMLAB-LAB-OUT", "KVMLAB-LAB-FWD"]);
        expect(firewallHooks("lab").map((h) => h.builtin)).toEqual(["INPUT", "OUTPUT", "FORWARD"]);
        expect(firewallHookLines("lab")).toEqual(["-I INPUT 1 -j KVMLAB-LAB-IN", "-I OUTPUT 1 -j KVMLAB-LAB-OUT", "-I FORWARD 1 -j KVMLAB-LAB-FWD"]);
        expect(firewallUnhookArgs("lab")).toEqual([
            ["-D", "INPUT", "-j", "KVMLAB-LAB-IN"],
            ["-D", "OUTPUT", "-j", "KVMLAB-LAB-OUT"],
            ["-D", "FORWARD", "-j", "KVMLAB-LAB-FWD"],
        ]);
    });

    it.each(allHosts.map((h) => [`${h.stack}/${h.host.name}`, h] as const))("%s: touches only the lab's chains, declares and hooks each once", (_, { spec, host, opts }) => {
        const text = renderFirewall(spec, host, opts);
        const chains = firewallChains(spec.lab);
        const lines = text.split("\n");
        expect(lines[0]).toMatch(new RegExp(`^# kvm-ha-lab: firewall of lab "${spec.lab}" on host "${host.name}"`));
        expect(text.endsWith("COMMIT\n")).toBe(true);
        const code = lines.filter((l) => l !== "" && !l.startsWith("#"));
        expect(code[0]).toBe("*filter");
        expect(code.filter((l) => l.startsWith("*"))).toEqual(["*filter"]);
        expect(code.filter((l) => l === "COMMIT")).toHaveLength(1);
        expect(code.filter((l) => l.startsWith(":"))).toEqual(chains.map((c) => `:${c} - [0:0]`));
        expect(code.filter((l) => l.startsWith("-I "))).toEqual(firewallHookLines(spec.lab));
        for (const l of code.slice(1, -1)) {
            // nothing but chain lines, rules appended to our chains, and the hooks: no -P, -F, -X, -D, no other chain
            expect(l).toMatch(new RegExp(`^(:(${chains.join("|")}) - \\[0:0\\]|-A (${chains.join("|")}) .*-j (ACCEPT|DROP)|-I (INPUT|OUTPUT|FORWARD) 1 -j (${chains.join("|")}))$`));
        }
    });

    it.each(allHosts.map((h) => [`${h.stack}/${h.host.name}`, h] as const))("%s: fence traffic on the bridge from the cluster subnet, connect-back out, the rest of it dropped", (_, { spec, host, opts }) => {
        const text = renderFirewall(spec, host, opts);
        const { chains } = labNames(spec.lab);
        const f = spec.guestCluster.fencing;
        const br = host.bridge.name;
        expect(f.subnet).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
        const input = fileRules(text, chains.input);
        const idx = (re: RegExp) => {
            const i = input.findIndex((l) => re.test(l));
            expect(i, `${re} in\n${input.join("\n")}`).toBeGreaterThanOrEqual(0);
            return i;
        };
        const q = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
        const request = idx(new RegExp(`^-A \\S+ -s ${q(f.subnet)} -d ${q(f.multicast.address)}/32 -i ${q(br)} -p udp -m udp --dport ${f.multicast.port} .*-j ACCEPT$`));
        idx(new RegExp(`^-A \\S+ -s ${q(f.subnet)} -i ${q(br)} -p igmp .*-j ACCEPT$`));
        const dropUdp = idx(new RegExp(`^-A \\S+ ! -s ${q(f.subnet)} -i ${q(br)} -p udp -m udp --dport ${f.multicast.port} .*-j DROP$`));
        const dropTcp = idx(new RegExp(`^-A \\S+ ! -s ${q(f.subnet)} -i ${q(br)} -p tcp -m tcp --dport ${f.multicast.port} .*-j DROP$`));
        expect(request).toBeLessThan(dropUdp);
        expect(dropUdp).toBeLessThan(dropTcp);
        // DROP only ever applies to traffic from outside the cluster subnet
        expect(input.filter((l) => l.endsWith("-j DROP")).every((l) => l.includes(`! -s ${f.subnet} -i ${br} `))).toBe(true);

        const output = fileRules(text, chains.output);
        expect(output).toContainEqual(expect.stringMatching(new RegExp(`^-A \\S+ -d ${q(f.subnet)} -o ${q(br)} -p tcp -m tcp --dport ${f.multicast.port} .*-j ACCEPT$`)));
        expect(fileRules(text, chains.forward)).toEqual([expect.stringMatching(/^-A \S+ -m physdev --physdev-is-bridged .*-j ACCEPT$/)]);
    });

    it("opens the cman/ricci/modclusterd/dlm ports only on a clustered host", () => {
        const spec = stacks.lab;
        const host = spec.hosts[0];
        const { chains } = labNames(spec.lab);
        const plain = renderFirewall(spec, host, { clusteredHost: false });
        const member = renderFirewall(spec, host, { clusteredHost: true });
        const ports = ["5404:5405", "11111", "16851", "21064"];
        expect(HOST_CLUSTER_PORTS.map((p) => `${p.proto}/${p.port}`)).toEqual(["udp/5404:5405", "tcp/11111", "tcp/16851", "tcp/21064"]);
        for (const p of ports) expect(plain).not.toContain(p);
        for (const { proto, port } of HOST_CLUSTER_PORTS) {
            expect(fileRules(member, chains.input)).toContainEqual(expect.stringMatching(new RegExp(`^-A \\S+ -p ${proto} -m ${proto} --dport ${port} .*-j ACCEPT$`)));
        }
        expect(fileRules(member, chains.input)).toContainEqual(expect.stringMatching(/^-A \S+ -p igmp .*-j ACCEPT$/));
        // the fence rules are the same either way
        expect(fileRules(member, chains.input).slice(0, fileRules(plain, chains.input).length)).toEqual(fileRules(plain, chains.input));
        expect(fileRules(member, chains.forward)).toEqual(fileRules(plain, chains.forward));
    });

    it("is deterministic", () => {
        for (const { spec, host, opts } of allHosts) {
            expect(renderFirewall(structuredClone(spec), structuredClone(host), opts)).toBe(renderFirewall(spec, host, opts));
        }
        expect(renderFirewall(loadStack("dev"), loadStack("dev").hosts[0], { clusteredHost: true })).toBe(renderFirewall(stacks.dev, stacks.dev.hosts[0], { clusteredHost: true }));
    });
});

// ---- judged by iptables, inside throwaway network namespaces ------------------------------------------------------

describe("renderFirewall: judged by iptables-restore (inside throwaway network namespaces)", () => {
    const made: string[] = [];
    let seq = 0;
    function netns(tag: string): { name: string; ipt: (...args: string[]) => ReturnType<typeof run>; restore: (text: string, ...flags: string[]) => ReturnType<typeof run> } {
        const name = `hra-fw${tag}-${process.pid}-${seq++}`;
        const r = run("ip", ["netns", "add", name]);
        expect(r.status, r.out).toBe(0);
        made.push(name);
        return {
            name,
            ipt: (...args) => run("ip", ["netns", "exec", name, "iptables", ...args]),
            restore: (text, ...flags) => run("ip", ["netns", "exec", name, "iptables-restore", ...flags], text),
        };
    }
    afterAll(() => {
        for (const n of made) run("ip", ["netns", "del", n]);
    });

    /** iptables-save without comments and counters. */
    const save = (ns: string, table = "") =>
        run("ip", ["netns", "exec", ns, "iptables-save", ...(table ? ["-t", table] : [])])
            .stdout.split("\n")
            .filter((l) => l !== "" && !l.startsWith("#"))
            .map((l) => l.replace(/ \[\d+:\d+\]$/, ""));

    /** What the host script does before restoring: delete every hook rule of the lab, however many there are. */
    function unhook(ns: ReturnType<typeof netns>, lab: string) {
        for (const args of firewallUnhookArgs(lab)) {
            for (let i = 0; i < 10 && ns.ipt(...args).status === 0; i++);
        }
    }

    /** The lab's chains hold exactly the file's rules, each hooked exactly once and first. */
    function expectLoaded(ns: ReturnType<typeof netns>, lab: string, text: string) {
        for (const { builtin, chain } of firewallHooks(lab)) {
            const live = ns.ipt("-S", chain);
            expect(live.status, live.out).toBe(0);
            expect(live.stdout.trimEnd().split("\n")).toEqual([`-N ${chain}`, ...fileRules(text, chain)]);
            const hooks = ns.ipt("-S", builtin).stdout.split("\n").filter((l) => l.includes(`-j ${chain}`));
            expect(hooks, `${builtin} hooks ${chain} exactly once`).toEqual([`-A ${builtin} -j ${chain}`]);
            expect(ns.ipt("-S", builtin).stdout.split("\n").filter((l) => l.startsWith("-A "))[0]).toBe(`-A ${builtin} -j ${chain}`);
        }
    }

    /** The namespace's rules with the lab's chains, rules and hooks taken out. */
    const withoutLab = (lines: string[], lab: string) => {
        const chains = firewallChains(lab);
        return lines.filter((l) => !chains.some((c) => l === `:${c} -` || l.startsWith(`-A ${c} `) || l.endsWith(` -j ${c}`)));
    };

    it("iptables-restore --test --noflush accepts every host's file of both stacks, both variants, and changes nothing", (ctx) => {
        needNetns(ctx);
        const ns = netns("t");
        const before = save(ns.name);
        for (const { stack, spec, host } of allHosts) {
            for (const clusteredHost of [false, true]) {
                const r = ns.restore(renderFirewall(spec, host, { clusteredHost }), "--test", "--noflush");
                expect(r.status, `${stack}/${host.name} clustered=${clusteredHost}: ${r.out}`).toBe(0);
            }
        }
        expect(save(ns.name)).toEqual(before);
        // the judge can fail
        const broken = renderFirewall(stacks.lab, stacks.lab.hosts[0], { clusteredHost: false }).replace("--dport 1229", "--dport 1229x");
        expect(ns.restore(broken, "--test", "--noflush").status).not.toBe(0);
    });

    it("restored twice (hooks removed in between, as the host script does): same chains, one hook each, nothing else touched", (ctx) => {
        needNetns(ctx);
        const ns = netns("r");
        // Someone else's firewall: rules in INPUT, a chain of theirs, a policy, a nat rule.
        for (const args of [
            ["-N", "HRA-OTHER"],
            ["-A", "HRA-OTHER", "-p", "tcp", "--dport", "2222", "-j", "RETURN"],
            ["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
            ["-A", "INPUT", "-j", "HRA-OTHER"],
            ["-A", "FORWARD", "-i", "hra-x", "-j", "DROP"],
            ["-P", "FORWARD", "DROP"],
            ["-t", "nat", "-A", "POSTROUTING", "-o", "hra-x", "-j", "MASQUERADE"],
        ]) {
            const r = ns.ipt(...args);
            expect(r.status, `iptables ${args.join(" ")}: ${r.out}`).toBe(0);
        }
        const baseline = save(ns.name);
        const baselineNat = save(ns.name, "nat");

        const spec = stacks.lab;
        const host = spec.hosts[0];
        const text = renderFirewall(spec, host, { clusteredHost: false });
        for (let round = 1; round <= 2; round++) {
            unhook(ns, spec.lab);
            const r = ns.restore(text, "--noflush");
            expect(r.status, `round ${round}: ${r.out}`).toBe(0);
            expectLoaded(ns, spec.lab, text);
        }
        expect(withoutLab(save(ns.name), spec.lab)).toEqual(baseline);
        expect(save(ns.name, "nat")).toEqual(baselineNat);

        // Becoming a host cluster member replaces the chains' content (a chain line flushes under --noflush) ...
        const member = renderFirewall(spec, host, { clusteredHost: true });
        unhook(ns, spec.lab);
        expect(ns.restore(member, "--noflush").status).toBe(0);
        expectLoaded(ns, spec.lab, member);
        // ... and going back leaves no cluster port behind.
        unhook(ns, spec.lab);
        expect(ns.restore(text, "--noflush").status).toBe(0);
        expectLoaded(ns, spec.lab, text);
        expect(save(ns.name).join("\n")).not.toContain("5404");

        // A second lab on the same host: its own chains, and the first lab's stay as they were.
        const other = stacks.dev;
        const otherText = renderFirewall(other, other.hosts[0], { clusteredHost: true });
        unhook(ns, other.lab);
        expect(ns.restore(otherText, "--noflush").status).toBe(0);
        expectLoaded(ns, other.lab, otherText);
        for (const { chain } of firewallHooks(spec.lab)) {
            expect(ns.ipt("-S", chain).stdout.trimEnd().split("\n")).toEqual([`-N ${chain}`, ...fileRules(text, chain)]);
        }
        expect(withoutLab(withoutLab(save(ns.name), spec.lab), other.lab)).toEqual(baseline);
    });

    it("does what it says to packets: fence requests from the subnet accepted, from outside dropped, connect-back allowed out", (ctx) => {
        needNetns(ctx);
        const spec = stacks.lab;
        const host = spec.hosts[0];
        const f = spec.guestCluster.fencing;
        const br = host.bridge.name;
        const h = netns("h");
        const g = netns("g");
        const ip = (ns: string, ...args: string[]) => {
            const r = run("ip", ["-n", ns, ...args]);
            expect(r.status, `ip -n ${ns} ${args.join(" ")}: ${r.out}`).toBe(0);
        };
        const guestIn = "10.99.0.11/24";
        const outsider = "10.98.0.5/24";
        expect(f.subnet).toBe("10.99.0.0/24");
        ip(h.name, "link", "set", "lo", "up");
        ip(h.name, "link", "add", br, "type", "bridge");
        ip(h.name, "link", "set", br, "up");
        ip(h.name, "addr", "add", host.bridge.address!, "dev", br);
        // the host joins the group, as fence_virtd does on its interface
        ip(h.name, "addr", "add", `${f.multicast.address}/32`, "dev", br, "autojoin");
        ip(h.name, "link", "add", "hra-v0", "type", "veth", "peer", "name", "eth0", "netns", g.name);
        ip(h.name, "link", "set", "hra-v0", "master", br, "up");
        ip(g.name, "link", "set", "eth0", "up");
        ip(g.name, "addr", "add", guestIn, "dev", "eth0");
        ip(g.name, "addr", "add", outsider, "dev", "eth0");

        const text = renderFirewall(spec, host, { clusteredHost: false });
        expect(h.restore(text, "--noflush").status).toBe(0);
        const { chains } = labNames(spec.lab);
        /** Packet counters of a chain's rules, in rule order. */
        const counters = (chain: string) =>
            h.ipt("-L", chain, "-v", "-x", "-n").stdout.split("\n").slice(2).filter((l) => l.trim() !== "").map((l) => Number(l.trim().split(/\s+/)[0]));
        const inRules = fileRules(text, chains.input);
        const at = (re: RegExp) => inRules.findIndex((l) => re.test(l));
        const accept = at(/-p udp .* -j ACCEPT$/);
        const drop = at(/^-A \S+ ! -s .* -p udp .* -j DROP$/);
        const send = (src: string) => {
            ip(g.name, "route", "replace", `${f.multicast.address}/32`, "dev", "eth0", "src", src.split("/")[0]);
            const r = run("ip", ["netns", "exec", g.name, "bash", "-c", `echo fence > /dev/udp/${f.multicast.address}/${f.multicast.port}`]);
            expect(r.status, r.out).toBe(0);
        };

        expect(counters(chains.input)[accept]).toBe(0);
        send(guestIn);
        expect(counters(chains.input)[accept]).toBe(1);
        expect(counters(chains.input)[drop]).toBe(0);
        send(outsider);
        expect(counters(chains.input)[accept]).toBe(1);
        expect(counters(chains.input)[drop]).toBe(1);

        // fence_virtd's connect-back: host to the guest's tcp port (refused there, but it left through our rule)
        const outRule = fileRules(text, chains.output).findIndex((l) => l.includes(`-p tcp -m tcp --dport ${f.multicast.port}`));
        expect(counters(chains.output)[outRule]).toBe(0);
        run("ip", ["netns", "exec", h.name, "timeout", "3", "bash", "-c", `echo > /dev/tcp/${guestIn.split("/")[0]}/${f.multicast.port}`]);
        expect(counters(chains.output)[outRule]).toBeGreaterThanOrEqual(1);
    });
});

// ---- tcp and vsock listeners --------------------------------------------------------------------------------------

/** A lab of this file's own: one local host, bridge htrbr0 at 10.77.0.1/24, two guest cluster nodes. */
function htrSpec(listener: "multicast" | "tcp" | "vsock", port?: number): LabSpec {
    const raw = {
        labName: "htrfw",
        hosts: [{ name: "htrhost", local: true, bridge: { name: "htrbr0", address: "10.77.0.1/24" } }],
        guests: [
            { name: "htrnode1", host: "htrhost", address: "10.77.0.11" },
            { name: "htrnode2", host: "htrhost", address: "10.77.0.12" },
        ],
        guestCluster: { name: "htrcluster", nodes: ["htrnode1", "htrnode2"], fencing: { listener, ...(port !== undefined ? { [listener]: { port } } : {}) } },
    };
    return validateLabConfig(raw, { stack: "htr", secretKeys: new Set(), readFile: () => undefined });
}

describe("renderFirewall: tcp and vsock listeners, what the file says", () => {
    const q = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

    it("tcp: fence_virt's connection to the bridge address accepted from the subnet on the bridge, dropped from outside it; replies out; no multicast rules", () => {
        const spec = htrSpec("tcp", 1250);
        const host = spec.hosts[0];
        const { chains } = labNames(spec.lab);
        const text = renderFirewall(spec, host, { clusteredHost: false });
        const input = fileRules(text, chains.input);
        expect(input).toEqual([
            expect.stringMatching(new RegExp(`^-A ${chains.input} -s 10\\.77\\.0\\.0/24 -d 10\\.77\\.0\\.1/32 -i htrbr0 -p tcp -m tcp --dport 1250 .*-j ACCEPT$`)),
            // from outside the subnet, on ANY interface, but only to this lab's listener address
            expect.stringMatching(new RegExp(`^-A ${chains.input} ! -s 10\\.77\\.0\\.0/24 -d 10\\.77\\.0\\.1/32 -p tcp -m tcp --dport 1250 .*-j DROP$`)),
        ]);
        expect(fileRules(text, chains.output)).toEqual([
            expect.stringMatching(new RegExp(`^-A ${chains.output} -s 10\\.77\\.0\\.1/32 -o htrbr0 -p tcp -m tcp --sport 1250 -m conntrack --ctstate ESTABLISHED .*-j ACCEPT$`)),
        ]);
        expect(fileRules(text, chains.forward)).toEqual([expect.stringMatching(/^-A \S+ -m physdev --physdev-is-bridged .*-j ACCEPT$/)]);
        // no multicast group, no udp, no IGMP, no connect-back to the guests
        expect(text).not.toMatch(/225\.0\.0\.12|-p udp|-p igmp|-d 10\.77\.0\.0\/24 -o/);
        expect(text.split("\n")[0]).toContain("tcp fencing");
    });

    it("vsock: no fence rules at all (the file says why), the bridged-traffic rule stays, cluster ports as usual", () => {
        const spec = htrSpec("vsock");
        const host = spec.hosts[0];
        const { chains } = labNames(spec.lab);
        const plain = renderFirewall(spec, host, { clusteredHost: false });
        expect(fileRules(plain, chains.input)).toEqual([]);
        expect(fileRules(plain, chains.output)).toEqual([]);
        expect(fileRules(plain, chains.forward)).toEqual([expect.stringMatching(/^-A \S+ -m physdev --physdev-is-bridged .*-j ACCEPT$/)]);
        expect(plain).toMatch(/^# No fence rules: fence_virt reaches fence_virtd over the guests' virtio vsock devices/m);
        expect(plain).not.toMatch(/1229/);
        const member = renderFirewall(spec, host, { clusteredHost: true });
        for (const { proto, port } of HOST_CLUSTER_PORTS) {
            expect(fileRules(member, chains.input)).toContainEqual(expect.stringMatching(new RegExp(`^-A \\S+ -p ${proto} -m ${proto} --dport ${q(port)} .*-j ACCEPT$`)));
        }
    });

    it("the multicast rules of the same lab are unchanged by the new listeners (same host, same subnet)", () => {
        const spec = htrSpec("multicast");
        const { chains } = labNames(spec.lab);
        const input = fileRules(renderFirewall(spec, spec.hosts[0], { clusteredHost: false }), chains.input);
        expect(input.map((l) => l.replace(/ -m comment --comment "[^"]*"/, ""))).toEqual([
            `-A ${chains.input} -s 10.77.0.0/24 -d 225.0.0.12/32 -i htrbr0 -p udp -m udp --dport 1229 -j ACCEPT`,
            `-A ${chains.input} -s 10.77.0.0/24 -i htrbr0 -p igmp -j ACCEPT`,
            `-A ${chains.input} -s 10.77.0.0/24 -i htrbr0 -p tcp -m tcp --sport 1229 -m conntrack --ctstate ESTABLISHED -j ACCEPT`,
            `-A ${chains.input} ! -s 10.77.0.0/24 -i htrbr0 -p udp -m udp --dport 1229 -j DROP`,
            `-A ${chains.input} ! -s 10.77.0.0/24 -i htrbr0 -p tcp -m tcp --dport 1229 -j DROP`,
        ]);
    });

    it("refuses a tcp listener on a host without a bridge address", () => {
        const spec = htrSpec("tcp");
        expect(() => renderFirewall(spec, { ...spec.hosts[0], bridge: { name: "htrbr0" } }, { clusteredHost: false })).toThrow(/no bridge address/);
    });
});

describe("renderFirewall: tcp and vsock listeners, judged by iptables (throwaway network namespaces)", () => {
    const made: string[] = [];
    let seq = 0;
    const ns = (tag: string) => {
        const name = `htr-fw${tag}-${process.pid}-${seq++}`;
        const r = run("ip", ["netns", "add", name]);
        expect(r.status, r.out).toBe(0);
        made.push(name);
        return name;
    };
    afterAll(() => {
        for (const n of made) run("ip", ["netns", "del", n]);
    });
    const ipt = (n: string, ...args: string[]) => run("ip", ["netns", "exec", n, "iptables", ...args]);
    const ip = (n: string, ...args: string[]) => {
        const r = run("ip", ["-n", n, ...args]);
        expect(r.status, `ip -n ${n} ${args.join(" ")}: ${r.out}`).toBe(0);
    };

    it("tcp and vsock files load (twice, hooks removed in between), and the live chains read back exactly as the files say", (ctx) => {
        needNetns(ctx);
        for (const listener of ["tcp", "vsock"] as const) {
            for (const clusteredHost of [false, true]) {
                const spec = htrSpec(listener);
                const text = renderFirewall(spec, spec.hosts[0], { clusteredHost });
                const h = ns("l");
                for (let round = 1; round <= 2; round++) {
                    for (const args of firewallUnhookArgs(spec.lab)) for (let i = 0; i < 10 && ipt(h, ...args).status === 0; i++);
                    const r = run("ip", ["netns", "exec", h, "iptables-restore", "--noflush"], text);
                    expect(r.status, `${listener} clustered=${clusteredHost} round ${round}: ${r.out}`).toBe(0);
                }
                for (const { builtin, chain } of firewallHooks(spec.lab)) {
                    // iptables -S prints the rules in the very form the file has them (canonical), so a diff is meaningful
                    expect(ipt(h, "-S", chain).stdout.trimEnd().split("\n")).toEqual([`-N ${chain}`, ...fileRules(text, chain)]);
                    expect(ipt(h, "-S", builtin).stdout.split("\n").filter((l) => l.includes(`-j ${chain}`))).toEqual([`-A ${builtin} -j ${chain}`]);
                }
            }
        }
    });

    it("tcp does what it says to packets: a connection from the subnet to the bridge address is accepted and answered, from outside dropped", (ctx) => {
        needNetns(ctx);
        const spec = htrSpec("tcp", 1251);
        const host = spec.hosts[0];
        const h = ns("h");
        const g = ns("g");
        ip(h, "link", "set", "lo", "up");
        ip(h, "link", "add", "htrbr0", "type", "bridge");
        ip(h, "link", "set", "htrbr0", "up");
        ip(h, "addr", "add", host.bridge.address!, "dev", "htrbr0");
        ip(h, "link", "add", "htrv0", "type", "veth", "peer", "name", "eth0", "netns", g);
        ip(h, "link", "set", "htrv0", "master", "htrbr0", "up");
        ip(g, "link", "set", "eth0", "up");
        ip(g, "addr", "add", "10.77.0.11/24", "dev", "eth0");
        ip(g, "addr", "add", "10.76.0.5/24", "dev", "eth0");
        // the host routes its answers to the outsider back over the bridge (as a host with a default route would)
        ip(h, "route", "add", "10.76.0.0/24", "dev", "htrbr0");

        const text = renderFirewall(spec, host, { clusteredHost: false });
        expect(run("ip", ["netns", "exec", h, "iptables-restore", "--noflush"], text).status).toBe(0);
        const { chains } = labNames(spec.lab);
        const counters = (chain: string) =>
            ipt(h, "-L", chain, "-v", "-x", "-n").stdout.split("\n").slice(2).filter((l) => l.trim() !== "").map((l) => Number(l.trim().split(/\s+/)[0]));
        const accept = fileRules(text, chains.input).findIndex((l) => l.endsWith("-j ACCEPT"));
        const drop = fileRules(text, chains.input).findIndex((l) => l.endsWith("-j DROP"));
        const connect = (src: string) => {
            ip(g, "route", "replace", "10.77.0.1/32", "dev", "eth0", "src", src);
            return run("ip", ["netns", "exec", g, "timeout", "2", "bash", "-c", "echo > /dev/tcp/10.77.0.1/1251"]);
        };

        // a listener on the bridge address, as fence_virtd's
        const server = run("ip", [
            "netns", "exec", h, "sh", "-c",
            `${process.execPath} -e 'const s=require("net").createServer(c=>c.end()).listen(1251,"10.77.0.1",()=>{});setTimeout(()=>s.close(),8000)' >/dev/null 2>&1 & echo $!`,
        ]);
        const serverPid = Number(server.stdout.trim());
        try {
            for (let i = 0; i < 50 && !run("ip", ["netns", "exec", h, "ss", "-Hltn"]).stdout.includes("10.77.0.1:1251"); i++) spawnSync("sleep", ["0.1"]);
            expect(counters(chains.input)[accept]).toBe(0);
            const inside = connect("10.77.0.11");
            expect(inside.status, inside.out).toBe(0);
            expect(counters(chains.input)[accept]).toBeGreaterThanOrEqual(1);
            expect(counters(chains.output)[0], "fence_virtd's answer left through the replies rule").toBeGreaterThanOrEqual(1);
            expect(counters(chains.input)[drop]).toBe(0);

            const before = counters(chains.input)[accept];
            const outside = connect("10.76.0.5");
            expect(outside.status, "the connection from outside the subnet did not complete").not.toBe(0);
            expect(counters(chains.input)[drop]).toBeGreaterThanOrEqual(1);
            expect(counters(chains.input)[accept]).toBe(before);
        } finally {
            if (serverPid > 0) run("kill", [String(serverPid)]);
        }
    });
});
