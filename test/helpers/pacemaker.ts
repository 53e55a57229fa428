/**
 * Judging rendered Pacemaker/corosync files with the real tools, for the unit tests:
 * - `liveCib`: a rendered CIB with a status section of the test's own (every node online, quorum): what a running
 *   cluster would hold. crm_verify and crm_simulate judge configuration and placement against it. The renderer never
 *   writes a status: the cluster keeps it.
 * - `crmVerify`: `crm_verify --xml-file` (exit 0 and no warning = accepted).
 * - `simulate`: `crm_simulate --simulate --output-as=xml` over a CIB, returning what it scheduled (fencing, resource
 *   actions) and where every resource runs afterwards, plus the CIB it saved (the next step's input).
 * - `corosyncCheck`: `corosync -t -c FILE` (corosync 3.1's own parser and config checks), run as each node would: in a
 *   private mount and network namespace with a throwaway authkey and the node's ring0 address on its loopback, since
 *   corosync only accepts a file that names the machine it runs on.
 * - `parseCorosyncConf`: reads corosync.conf back into sections (a strict reader of the format corosync documents).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "xmlbuilder2";
import { hasTool, run } from "./tools";

export const crmVerifyAvailable = () => hasTool("crm_verify");
export const crmSimulateAvailable = () => hasTool("crm_simulate");
export const corosyncAvailable = () => hasTool("corosync") && hasTool("unshare") && hasTool("ip") && process.getuid?.() === 0;

/** A plain view of an XML element: name, attributes, element children. */
export interface X {
    name: string;
    attrs: Record<string, string>;
    children: X[];
}

export function parseXml(text: string): X {
    // xmlbuilder2's object form is awkward for repeated elements; walk the DOM instead
    const root = create(text).root().node as unknown as DomEl;
    return view(root);
}

interface DomEl {
    nodeType: number;
    nodeName: string;
    attributes: ArrayLike<{ name: string; value: string }>;
    childNodes: ArrayLike<DomEl>;
}

function view(el: DomEl): X {
    const attrs: Record<string, string> = {};
    for (const a of Array.from(el.attributes)) attrs[a.name] = a.value;
    return { name: el.nodeName, attrs, children: Array.from(el.childNodes).filter((c) => c.nodeType === 1).map(view) };
}

/** Every descendant (and self) named `name`. */
export function all(x: X, name: string): X[] {
    return [...(x.name === name ? [x] : []), ...x.children.flatMap((c) => all(c, name))];
}

/** name → value of an element's instance_attributes (or another nvset child). */
export function nvpairs(x: X, set = "instance_attributes"): Record<string, string> {
    const s = x.children.find((c) => c.name === set);
    return Object.fromEntries((s?.children ?? []).map((p) => [p.attrs.name, p.attrs.value]));
}

/** The CIB with every node of its <nodes> online and quorum: the status a running cluster would have. */
export function liveCib(cib: string): string {
    const doc = create(cib);
    const root = doc.root();
    root.att("have-quorum", "1");
    const x = parseXml(cib);
    const nodes = all(x, "node").filter((n) => n.attrs.uname !== undefined);
    const status = root.find((n) => n.node.nodeName === "status", false, false);
    if (status === undefined) throw new Error("liveCib: the CIB has no <status>");
    for (const n of nodes) {
        status.ele("node_state", { id: n.attrs.id, uname: n.attrs.uname, in_ccm: "true", crmd: "online", join: "member", expected: "member" });
    }
    return doc.end({ prettyPrint: true });
}

export function crmVerify(cib: string): { ok: boolean; out: string } {
    const dir = mkdtempSync(join(tmpdir(), "crm-verify-"));
    try {
        const file = join(dir, "cib.xml");
        writeFileSync(file, cib);
        const r = run("crm_verify", ["--xml-file", file, "-V"]);
        return { ok: r.status === 0 && !/warning|error/i.test(r.out), out: r.out };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

export interface Simulation {
    /** Nodes crm_simulate scheduled a fencing action for. */
    fenced: string[];
    /** Resource id → the nodes it runs on after the transition (empty when stopped). */
    placement: Record<string, string[]>;
    /** Resource id → resource agent (e.g. stonith:fence_xvm). */
    agents: Record<string, string>;
    /** The CIB after the transition (crm_simulate --save-output). */
    cibAfter: string;
    out: string;
}

/** `crm_simulate -x <cib> -S --output-as=xml [args]`. */
export function simulate(cib: string, args: string[]): Simulation {
    const dir = mkdtempSync(join(tmpdir(), "crm-simulate-"));
    try {
        const input = join(dir, "in.xml");
        const output = join(dir, "out.xml");
        writeFileSync(input, cib);
        const r = run("crm_simulate", ["--xml-file", input, "--simulate", "--save-output", output, "--output-as=xml", ...args]);
        if (r.status !== 0) throw new Error(`crm_simulate ${args.join(" ")} failed (${r.status}): ${r.out}`);
        const x = parseXml(r.stdout);
        const fenced = all(x, "fencing_action").map((f) => f.attrs.target);
        const revised = all(x, "revised_cluster_status")[0];
        if (revised === undefined) throw new Error(`crm_simulate printed no revised status: ${r.out}`);
        const placement: Record<string, string[]> = {};
        const agents: Record<string, string> = {};
        for (const res of all(revised, "resource")) {
            placement[res.attrs.id] = res.attrs.active === "true" ? res.children.filter((c) => c.name === "node").map((c) => c.attrs.name) : [];
            agents[res.attrs.id] = res.attrs.resource_agent;
        }
        return { fenced, placement, agents, cibAfter: readFileSync(output, "utf8"), out: r.out };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * Runs `corosync -t -c <file>` as the node whose ring0_addr is `self` would (see the header). corosync resolves every
 * ring0_addr that is a host name: the namespace gets an /etc/hosts of its own that gives each such name an address
 * (`self` one on its loopback), as the lab's DNS would.
 */
export function corosyncCheck(conf: string, self: string): { ok: boolean; out: string } {
    const dir = mkdtempSync(join(tmpdir(), "corosync-t-"));
    try {
        const file = join(dir, "corosync.conf");
        writeFileSync(file, conf);
        const names = [...new Set([...conf.matchAll(/^\s*ring0_addr: (.+)$/gm)].map((m) => m[1]).filter((a) => !/^\d+\.\d+\.\d+\.\d+$/.test(a)))];
        const addressOf = (name: string, i: number) => (name === self ? "198.51.100.254" : `198.51.100.${i + 1}`);
        const selfAddress = /^\d+\.\d+\.\d+\.\d+$/.test(self) ? self : addressOf(self, 0);
        writeFileSync(join(dir, "hosts"), ["127.0.0.1 localhost", ...names.map((n, i) => `${addressOf(n, i)} ${n}`)].join("\n") + "\n");
        const script = [
            "set -e",
            "mount -t tmpfs -o mode=0755 tmpfs /etc/corosync",
            "head -c 256 /dev/urandom > /etc/corosync/authkey",
            "chmod 0400 /etc/corosync/authkey",
            'mount --bind "$3" /etc/hosts',
            "ip link set lo up",
            `ip addr add "$1/32" dev lo`,
            'exec timeout 20 corosync -t -c "$2"',
        ].join("\n");
        const r = run("unshare", ["--mount", "--net", "--propagation", "private", "sh", "-c", script, "sh", selfAddress, file, join(dir, "hosts")]);
        return { ok: r.status === 0, out: r.out };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

export type CorosyncSection = { [key: string]: string | CorosyncSection[] };

/**
 * corosync.conf read back: `name {` opens a section (alone on its line), `}` closes it, `key: value` sets a value;
 * '#' starts a comment line. Sections are lists (nodelist has several `node`). Anything else throws.
 */
export function parseCorosyncConf(text: string): CorosyncSection {
    const root: CorosyncSection = {};
    const stack: CorosyncSection[] = [root];
    text.split("\n").forEach((raw, i) => {
        const line = raw.trim();
        if (line === "" || line.startsWith("#")) return;
        const open = /^([A-Za-z0-9_]+) \{$/.exec(line);
        const kv = /^([A-Za-z0-9_]+): (\S(?:.*\S)?)$/.exec(line);
        const top = stack[stack.length - 1];
        if (open) {
            const s: CorosyncSection = {};
            const list = (top[open[1]] ??= []) as CorosyncSection[];
            if (!Array.isArray(list)) throw new Error(`line ${i + 1}: section ${open[1]} clashes with a value`);
            list.push(s);
            stack.push(s);
        } else if (line === "}") {
            if (stack.length === 1) throw new Error(`line ${i + 1}: '}' without a section`);
            stack.pop();
        } else if (kv) {
            if (kv[1] in top) throw new Error(`line ${i + 1}: ${kv[1]} set twice`);
            top[kv[1]] = kv[2];
        } else throw new Error(`line ${i + 1}: cannot read ${JSON.stringify(raw)}`);
    });
    if (stack.length !== 1) throw new Error("a section is not closed");
    return root;
}
