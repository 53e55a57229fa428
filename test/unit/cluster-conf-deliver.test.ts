/**
 * The cluster.conf delivery script, run for real by /bin/sh as root, with a temporary directory standing in for
 * /etc/cluster and for the lab state root (both are options of the script): first install, idempotent re-run (no
 * new backup), a changed file (dated backup of the previous one, new content, atomic: no temporary file left), a file
 * the node's validator rejects (old file kept, the validator's message), a foreign or hand-edited file (refused,
 * untouched), delete. ccs_config_validate and cman_tool are stand-ins on PATH (cman is not packaged for Debian):
 * they record how the script calls them, and the cman stand-in loads config_version the way cman_tool -r does.
 */
import { spawnSync } from "node:child_process";
import { inlineLibrary } from "../../components/scripts/prelude";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { create } from "xmlbuilder2";
import { validateLabConfig } from "../../components/config";
import { renderGuestClusterConf } from "../../components/render/cluster-conf";
import {
    CLUSTER_CONF_STDIN_BOUNDARY,
    clusterConfDeliverScripts,
    clusterConfDeliverStdin,
    type ClusterConfDeliverOptions,
} from "../../components/scripts/cluster-conf-deliver";
import { parseStackFile } from "../../components/stack-file";
import { xmllintAvailable } from "../helpers/relaxng";
import { skipUnless } from "../helpers/tools";

const ROOT = resolve(__dirname, "../..");
const SCHEMA = readFileSync(join(ROOT, "schema/cluster-conf.rng"), "utf8");
const LAB = "hc4deliver";
const IS_ROOT = process.getuid?.() === 0;

const spec = validateLabConfig(parseStackFile(readFileSync(join(ROOT, "stacks/Pulumi.lab.yaml"), "utf8")).raw, {
    stack: "lab",
    secretKeys: new Set(),
    readFile: () => undefined,
});
const conf = (version: number) => renderGuestClusterConf(spec, { configVersion: version });

/** The file at `version` with two_node but expected_votes 2: cman refuses that, and so does our schema. */
function invalidConf(version: number): string {
    const doc = create(conf(version));
    const cman = (doc.root().node as unknown as { getElementsByTagName(n: string): ArrayLike<{ setAttribute(k: string, v: string): void }> }).getElementsByTagName("cman")[0];
    cman.setAttribute("expected_votes", "2");
    return `${doc.end({ prettyPrint: true })}\n`;
}

let base = "";
let etc = "";
let confPath = "";
let backups = "";
let stateRoot = "";
let bin = "";

beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), "hc4-deliver-"));
});
afterAll(() => {
    if (base !== "") rmSync(base, { recursive: true, force: true });
});
beforeEach(() => {
    // a fresh node for every test
    const node = mkdtempSync(join(base, "node-"));
    etc = join(node, "etc/cluster");
    confPath = join(etc, "cluster.conf");
    backups = join(etc, "backups");
    stateRoot = join(node, "state");
    bin = join(node, "bin");
    mkdirSync(bin, { recursive: true });
});

function put(file: string, text: string) {
    writeFileSync(join(bin, file), text);
    chmodSync(join(bin, file), 0o755);
}

/** A cman stand-in: "running" with config version `version`; `version -r` loads the config_version of the file. */
function fakeCman(version: number) {
    writeFileSync(join(bin, "cman.version"), `${version}\n`);
    put(
        "cman_tool",
        `#!/bin/sh
echo "cman_tool $*" >> '${join(bin, "calls.log")}'
case "$*" in
    status) exit 0 ;;
    version) echo "6.2.0 config $(cat '${join(bin, "cman.version")}')" ;;
    "version -r -S")
        v=$(sed -n 's/.*config_version="\\([0-9]*\\)".*/\\1/p' '${confPath}' | head -n1)
        echo "$v" > '${join(bin, "cman.version")}' ;;
    *) echo "fake cman_tool: unexpected $*" >&2; exit 2 ;;
esac
`,
    );
}

interface Result {
    status: number | null;
    out: string;
}

function run(which: "create" | "delete", stdin: string, opts: Partial<ClusterConfDeliverOptions> = {}): Result {
    const scripts = clusterConfDeliverScripts(LAB, { id: "guest-cluster-conf", path: confPath, stateRoot, ...opts });
    const r = spawnSync("/bin/sh", ["-c", inlineLibrary(scripts[which])], {
        input: stdin,
        encoding: "utf8",
        env: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`, LC_ALL: "C" },
        timeout: 60_000,
    });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const deliver = (text: string, opts: Partial<ClusterConfDeliverOptions> = {}) => run("create", clusterConfDeliverStdin(text, SCHEMA), opts);
const backupFiles = () => (existsSync(backups) ? readdirSync(backups).sort() : []);
const leftovers = () => readdirSync(etc).filter((f) => f.startsWith("."));
const calls = () => (existsSync(join(bin, "calls.log")) ? readFileSync(join(bin, "calls.log"), "utf8").trim().split("\n") : []);

describe.skipIf(skipUnless("root and xmllint", IS_ROOT && xmllintAvailable()))("cluster.conf delivery on a node (xmllint validates)", () => {
    it("installs the file (0640, root), keeps the schema in the state directory, and makes no backup", () => {
        const r = deliver(conf(1));
        expect(r.status, r.out).toBe(0);
        expect(readFileSync(confPath, "utf8")).toBe(conf(1));
        expect(statSync(confPath).mode & 0o777).toBe(0o640);
        expect(statSync(confPath).uid).toBe(0);
        expect(r.out).toMatch(/installed .*cluster\.conf \(config_version 1, checked by xmllint against kvm-ha-lab's schema/);
        expect(readFileSync(join(stateRoot, LAB, "cluster-conf/guest-cluster-conf/cluster-conf.rng"), "utf8")).toBe(SCHEMA);
        expect(backupFiles()).toEqual([]);
        expect(leftovers()).toEqual([]);
    });

    it("is idempotent: the same content again changes nothing and makes no backup", () => {
        expect(deliver(conf(1)).status).toBe(0);
        const before = statSync(confPath).mtimeMs;
        const r = deliver(conf(1));
        expect(r.status, r.out).toBe(0);
        expect(readFileSync(confPath, "utf8")).toBe(conf(1));
        expect(statSync(confPath).mtimeMs).toBe(before);
        expect(backupFiles()).toEqual([]);
    });

    it("replaces a changed file atomically after a dated backup of the previous one", () => {
        expect(deliver(conf(1)).status).toBe(0);
        const r2 = deliver(conf(2));
        expect(r2.status, r2.out).toBe(0);
        expect(readFileSync(confPath, "utf8")).toBe(conf(2));
        const first = backupFiles();
        expect(first).toHaveLength(1);
        expect(first[0]).toMatch(/^cluster\.conf-\d{14}$/);
        expect(readFileSync(join(backups, first[0]), "utf8")).toBe(conf(1));
        // a second change in the same second gets its own backup name
        const r3 = deliver(conf(3));
        expect(r3.status, r3.out).toBe(0);
        const second = backupFiles();
        expect(second).toHaveLength(2);
        expect(second.map((b) => readFileSync(join(backups, b), "utf8")).sort()).toEqual([conf(1), conf(2)].sort());
        expect(leftovers()).toEqual([]);
    });

    it("keeps the old file when the node's validator rejects the new one, and says why", () => {
        expect(deliver(conf(1)).status).toBe(0);
        const r = deliver(invalidConf(2));
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/xmllint refuses the new cluster\.conf \(config_version 2\)/);
        expect(r.out).toMatch(/was left unchanged/);
        expect(r.out).toMatch(/Invalid attribute two_node for element cman/); // the validator's own words
        expect(r.out).not.toMatch(/\.cluster\.conf\.[A-Za-z0-9]{6}/); // the temp file's name is replaced
        expect(readFileSync(confPath, "utf8")).toBe(conf(1));
        expect(backupFiles()).toEqual([]);
        expect(leftovers()).toEqual([]);
    });

    it("a first install that is rejected leaves nothing behind", () => {
        const r = deliver(invalidConf(1));
        expect(r.status).not.toBe(0);
        expect(existsSync(confPath)).toBe(false);
        expect(existsSync(etc)).toBe(false); // the directory it made for the file is gone again
    });

    it("refuses to overwrite a cluster.conf it did not write, naming the file and the fix", () => {
        mkdirSync(etc, { recursive: true });
        writeFileSync(confPath, '<?xml version="1.0"?>\n<cluster name="theirs" config_version="40"/>\n');
        const r = deliver(conf(1));
        expect(r.status).not.toBe(0);
        expect(r.out).toContain(`${confPath} exists and was not written by kvm-ha-lab (lab ${LAB}): refusing to overwrite it`);
        expect(r.out).toContain(`mv ${confPath} ${confPath}.orig`);
        expect(readFileSync(confPath, "utf8")).toContain('name="theirs"');
    });

    it("refuses to overwrite our file once someone edited it", () => {
        expect(deliver(conf(1)).status).toBe(0);
        writeFileSync(confPath, conf(1).replace("post_fail_delay=\"0\"", "post_fail_delay=\"3\""));
        const r = deliver(conf(2));
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/was changed since kvm-ha-lab lab hc4deliver wrote it: refusing to overwrite those changes/);
        expect(readFileSync(confPath, "utf8")).toContain('post_fail_delay="3"');
    });

    it("refuses a file another lab on the node wrote", () => {
        expect(deliver(conf(1)).status).toBe(0);
        const other = clusterConfDeliverScripts("hc4other", { id: "guest-cluster-conf", path: confPath, stateRoot });
        const r = spawnSync("/bin/sh", ["-c", inlineLibrary(other.create)], { input: clusterConfDeliverStdin(conf(2), SCHEMA), encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin:/usr/sbin:/sbin` } });
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/was written by kvm-ha-lab lab hc4deliver, not by lab hc4other/);
    });

    it("delete removes the file it wrote, its markers and schema copy, and keeps the backups", () => {
        expect(deliver(conf(1)).status).toBe(0);
        expect(deliver(conf(2)).status).toBe(0);
        const r = run("delete", clusterConfDeliverStdin(conf(2), SCHEMA));
        expect(r.status, r.out).toBe(0);
        expect(existsSync(confPath)).toBe(false);
        expect(backupFiles()).toHaveLength(1);
        expect(existsSync(join(stateRoot, LAB))).toBe(false);
        // and a second delete is harmless
        expect(run("delete", "").status).toBe(0);
    });

    it("delete leaves a file that changed since it wrote it", () => {
        expect(deliver(conf(1)).status).toBe(0);
        writeFileSync(confPath, "edited by hand\n");
        const r = run("delete", "");
        expect(r.status).toBe(0);
        expect(r.out).toMatch(/left .* in place: it changed since lab hc4deliver wrote it/);
        expect(readFileSync(confPath, "utf8")).toBe("edited by hand\n");
    });

    it("without a schema on stdin, xmllint still refuses a file that is not well-formed", () => {
        const r = run("create", clusterConfDeliverStdin('<cluster name="x" config_version="1">\n', ""));
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/is not well-formed XML/);
    });

    it("refuses stdin without the boundary or without a config_version", () => {
        expect(run("create", conf(1)).out).toMatch(/stdin is not the schema, the boundary line and the cluster\.conf/);
        const noVersion = renderGuestClusterConf(spec, { configVersion: undefined });
        expect(deliver(noVersion).out).toMatch(/has no <cluster config_version="N">/);
        expect(() => clusterConfDeliverStdin(`${CLUSTER_CONF_STDIN_BOUNDARY}\n`, SCHEMA)).toThrow(/boundary/);
    });
});

describe.skipIf(skipUnless("root", IS_ROOT))("cluster.conf delivery with cman's tools (stand-ins)", () => {
    it("validates with ccs_config_validate -f <temporary file> when it is installed, and keeps the old file when it refuses", () => {
        expect(deliver(conf(1)).status).toBe(0);
        put(
            "ccs_config_validate",
            `#!/bin/sh\necho "ccs_config_validate $*" >> '${join(bin, "calls.log")}'\necho "Relax-NG validity error : Extra element fencedevices in interleave" >&2\necho "$2:4: element fencedevices: Relax-NG validity error" >&2\necho "Configuration fails to validate" >&2\nexit 1\n`,
        );
        const r = deliver(conf(2));
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/ccs_config_validate refuses the new cluster\.conf \(config_version 2\), so .* was left unchanged/);
        expect(r.out).toMatch(/Configuration fails to validate/);
        expect(r.out).toMatch(/\(new cluster\.conf\):4: element fencedevices/);
        expect(calls()).toEqual([expect.stringMatching(new RegExp(`^ccs_config_validate -f ${etc}/\\.cluster\\.conf\\.[A-Za-z0-9]{6}$`))]);
        expect(readFileSync(confPath, "utf8")).toBe(conf(1));
        // and uses it, not xmllint, when it accepts
        put("ccs_config_validate", "#!/bin/sh\necho 'Configuration validates'\nexit 0\n");
        const ok = deliver(conf(2));
        expect(ok.status, ok.out).toBe(0);
        expect(ok.out).toMatch(/checked by ccs_config_validate/);
    });

    it("the reloading node runs cman_tool version -r -S once the file is in place; a non-reloading node does not", () => {
        expect(deliver(conf(1)).status).toBe(0); // cman not running yet: it will read the file when it starts
        fakeCman(1);
        const quiet = deliver(conf(2), { reload: false });
        expect(quiet.status, quiet.out).toBe(0);
        expect(calls().filter((c) => c.includes("-r"))).toEqual([]);
        expect(readFileSync(join(bin, "cman.version"), "utf8").trim()).toBe("1");

        const r = deliver(conf(2)); // same content on this node: only the reload is missing, and done now
        expect(r.status, r.out).toBe(0);
        expect(calls()).toContain("cman_tool version -r -S");
        expect(readFileSync(join(bin, "cman.version"), "utf8").trim()).toBe("2");
        expect(r.out).toMatch(/cman loaded config_version 2/);

        writeFileSync(join(bin, "calls.log"), "");
        const again = deliver(conf(2));
        expect(again.status).toBe(0);
        expect(calls().filter((c) => c.includes("-r"))).toEqual([]);
        expect(again.out).toMatch(/cman already runs config_version 2/);
    });

    it("refuses, before changing anything, a version cman would not load", () => {
        expect(deliver(conf(1)).status).toBe(0);
        fakeCman(1);
        expect(deliver(conf(2)).status).toBe(0);
        fakeCman(7);
        const r = deliver(conf(3));
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/has config_version 3 but cman runs 7 on this node, and cman only loads a higher version/);
        expect(readFileSync(confPath, "utf8")).toBe(conf(2));
        expect(backupFiles()).toHaveLength(1); // from 1 to 2 only
    });

    it("fails when cman_tool version -r fails, with its message", () => {
        expect(deliver(conf(1)).status).toBe(0);
        put("cman_tool", `#!/bin/sh\ncase "$*" in status) exit 0 ;; version) echo "6.2.0 config 1" ;; *) echo "Not reloading, configuration is not valid" >&2; exit 1 ;; esac\n`);
        const r = deliver(conf(2));
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/cman_tool version -r -S failed; cman keeps running config_version 1 .* has 2: Not reloading, configuration is not valid/);
    });
});
