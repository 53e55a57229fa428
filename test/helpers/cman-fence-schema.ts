/**
 * The fence-device half of cman's cluster.rng, generated on this machine the way cman generates it.
 *
 * cman's `ccs_update_schema` assembles /var/lib/cluster/cluster.rng (the schema `ccs_config_validate` uses) from four
 * parts: cman's hand-written cluster.rng.in.head and .tail, the rgmanager resource-agent definitions, and the fence
 * agent definitions. The last part it builds by running every fence agent in the sbin directory with `-o metadata`,
 * turning each answer into a RELAX NG group with fence-agents' fence2rng.xsl, and wrapping the groups in
 * fence.rng.head / fence.rng.tail: the define FENCEDEVICEOPTIONS, which both `<fencedevice>` and `<device>`
 * reference. Debian packages those three files with fence-agents (/usr/share/cluster/relaxng) and ships the real
 * agents (fence-agents, fence-virt), so that part is real here; cman's head/tail and rgmanager's agents are not
 * packaged (see the issue notes), so the rest of the grammar stays schema/cluster-conf.rng.
 *
 * `buildCmanFenceSchema` writes, into a directory of the caller's:
 *   - fence-agents.rng: a grammar holding FENCEDEVICEOPTIONS, assembled exactly as ccs_update_schema assembles
 *     fence_agents.rng.cache (head, one fence2rng.xsl output per agent, tail), wrapped in a <grammar> with the
 *     annotation namespace cluster.rng.in.head declares;
 *   - cluster-conf+cman-fence.rng: schema/cluster-conf.rng included with its `device` and `fencedevices` defines
 *     replaced by cman's shape (`<device name=IDREF>` and `<fencedevice name=ID agent=...>`, each followed by
 *     FENCEDEVICEOPTIONS), plus fence-agents.rng. A file valid against it has our structure and cman's own fence
 *     device definitions.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "xmlbuilder2";

export const CMAN_RELAXNG_DIR = "/usr/share/cluster/relaxng";
export const FENCE_AGENT_DIR = "/usr/sbin";
const RNG_NS = "http://relaxng.org/ns/structure/1.0";
/** The namespace of the rha:name / rha:description annotations fence2rng.xsl writes (declared by cluster.rng.in.head). */
const RHA_NS = "http://redhat.com/~pkennedy/annotation_namespace/cluster_conf_annot_namespace";
const XSD = "http://www.w3.org/2001/XMLSchema-datatypes";

/**
 * Names under fence_* that are not agents: ccs_update_schema's own exclusions, and two more that Debian installs
 * there (fence_virtd is the host daemon, fence_ack_manual an interactive override); neither answers `-o metadata`.
 */
const NOT_AGENTS = new Set([
    "fence_legacy",
    "fence_node",
    "fence_nss_wrapper",
    "fence_tool",
    "fence_vmware_helper",
    "fence_virtd",
    "fence_ack_manual",
]);
/** ccs_update_schema skips editor and package-manager leftovers. */
const LEFTOVER = /(~|,|\.orig|\.cfsaved|\.rpmsave|\.rpmorig|\.rpmnew|\.swp|,v|\.dpkg-old|\.dpkg-dist|\.dpkg-new)$/;

/** What is missing on this machine for building the schema, or undefined when everything is there. */
export function cmanFenceSchemaMissing(): string | undefined {
    for (const f of ["fence2rng.xsl", "fence.rng.head", "fence.rng.tail"]) {
        if (!existsSync(join(CMAN_RELAXNG_DIR, f))) return `${join(CMAN_RELAXNG_DIR, f)} (Debian: fence-agents)`;
    }
    if (spawnSync("xsltproc", ["--version"]).status !== 0) return "xsltproc (Debian: xsltproc)";
    return undefined;
}

export interface CmanFenceSchema {
    /** The grammar to validate a whole cluster.conf with: our structure, cman's fence device definitions. */
    combined: string;
    /** The generated FENCEDEVICEOPTIONS grammar. */
    fenceAgents: string;
    /** The agents whose metadata went in, sorted. */
    agents: string[];
    /** Agents that gave no metadata (ccs_update_schema writes a "No metadata" comment for them). */
    withoutMetadata: string[];
}

/** The fence agents ccs_update_schema would find here, sorted (its `ls -1` order). */
export function fenceAgentsHere(): string[] {
    return readdirSync(FENCE_AGENT_DIR)
        .filter((f) => f.startsWith("fence_") && !NOT_AGENTS.has(f) && !LEFTOVER.test(f))
        .sort();
}

/** An agent's `-o metadata` XML, or undefined when it gives none. */
function fenceAgentMetadata(agent: string): string | undefined {
    const r = spawnSync(join(FENCE_AGENT_DIR, agent), ["-o", "metadata"], { encoding: "utf8", timeout: 30_000, stdio: ["ignore", "pipe", "pipe"] });
    return r.status === 0 && r.stdout.includes("<resource-agent") ? r.stdout : undefined;
}

export function buildCmanFenceSchema(dir: string, schemaFile: string): CmanFenceSchema {
    const missing = cmanFenceSchemaMissing();
    if (missing !== undefined) throw new Error(`cannot build cman's fence definitions: missing ${missing}`);
    const xsl = join(CMAN_RELAXNG_DIR, "fence2rng.xsl");
    const parts: string[] = [readFileSync(join(CMAN_RELAXNG_DIR, "fence.rng.head"), "utf8")];
    const agents: string[] = [];
    const withoutMetadata: string[] = [];
    for (const agent of fenceAgentsHere()) {
        const meta = fenceAgentMetadata(agent);
        const x = meta === undefined ? undefined : spawnSync("xsltproc", [xsl, "-"], { input: meta, encoding: "utf8", timeout: 30_000 });
        if (x === undefined || x.status !== 0) {
            withoutMetadata.push(agent);
            continue;
        }
        agents.push(agent);
        parts.push(x.stdout);
    }
    parts.push(readFileSync(join(CMAN_RELAXNG_DIR, "fence.rng.tail"), "utf8"));

    // fence.rng.head + groups + fence.rng.tail is a sequence of defines, not a document (cman pastes it between its
    // own head and tail with cat); the grammar element around it is the only text added here.
    const fenceAgents = join(dir, "fence-agents.rng");
    writeFileSync(fenceAgents, `<grammar xmlns="${RNG_NS}" xmlns:rha="${RHA_NS}" datatypeLibrary="${XSD}">\n${parts.join("")}\n</grammar>\n`);
    const wf = spawnSync("xmllint", ["--noout", fenceAgents], { encoding: "utf8" });
    if (wf.status !== 0) throw new Error(`the generated ${fenceAgents} is not well-formed XML: ${wf.stderr}`);

    const combined = join(dir, "cluster-conf+cman-fence.rng");
    const doc = create({ version: "1.0", encoding: "UTF-8" }).ele(RNG_NS, "grammar").att("datatypeLibrary", XSD);
    const inc = doc.ele("include").att("href", schemaFile);
    inc.ele("define")
        .att("name", "device")
        .ele("element")
        .att("name", "device")
        .ele("attribute")
        .att("name", "name")
        .ele("data")
        .att("type", "IDREF")
        .up()
        .up()
        .ele("ref")
        .att("name", "FENCEDEVICEOPTIONS");
    const fd = inc
        .ele("define")
        .att("name", "fencedevices")
        .ele("element")
        .att("name", "fencedevices")
        .ele("oneOrMore")
        .ele("element")
        .att("name", "fencedevice");
    fd.ele("attribute").att("name", "name").ele("data").att("type", "ID");
    fd.ele("attribute").att("name", "agent");
    fd.ele("ref").att("name", "FENCEDEVICEOPTIONS");
    doc.ele("include").att("href", fenceAgents);
    writeFileSync(combined, doc.end({ prettyPrint: true }));
    return { combined, fenceAgents, agents, withoutMetadata };
}
