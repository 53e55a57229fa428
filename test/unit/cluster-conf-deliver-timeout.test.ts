/**
 * The cluster.conf delivery bounds the node's validator: `timeout 120` around ccs_config_validate (or xmllint), and a
 * validator stopped by it refuses the file with a message saying so (the old file stays). Run for real by /bin/sh as
 * root with stand-ins on PATH: a validator that never finishes, and a `timeout` that records how it is called and
 * then runs the real one with 1 s instead of 120 s.
 */
import { spawnSync } from "node:child_process";
import { inlineLibrary } from "../../components/scripts/prelude";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { validateLabConfig } from "../../components/config";
import { renderGuestClusterConf } from "../../components/render/cluster-conf";
import { clusterConfDeliverScripts, clusterConfDeliverStdin } from "../../components/scripts/cluster-conf-deliver";
import { parseStackFile } from "../../components/stack-file";
import { hasTool, need } from "../helpers/tools";

const ROOT = resolve(__dirname, "../..");
const SCHEMA = readFileSync(join(ROOT, "schema/cluster-conf.rng"), "utf8");
const spec = validateLabConfig(parseStackFile(readFileSync(join(ROOT, "stacks/Pulumi.lab.yaml"), "utf8")).raw, { stack: "lab", secretKeys: new Set(), readFile: () => undefined });
const conf = (version: number) => renderGuestClusterConf(spec, { configVersion: version });
const REAL_TIMEOUT = ["/usr/bin/timeout", "/bin/timeout"].find((p) => existsSync(p));

const base = mkdtempSync(join(tmpdir(), "hc12-deliver-timeout-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let node = "";
beforeEach((ctx) => {
    need(ctx, "root and coreutils' timeout", process.getuid?.() === 0 && REAL_TIMEOUT !== undefined && hasTool("xmllint"));
    node = mkdtempSync(join(base, "node-"));
    mkdirSync(join(node, "bin"));
    put("timeout", `#!/bin/sh\necho "timeout $*" >> '${join(node, "calls.log")}'\nshift\nexec ${REAL_TIMEOUT} 1 "$@"\n`);
});

function put(file: string, text: string) {
    writeFileSync(join(node, "bin", file), text);
    chmodSync(join(node, "bin", file), 0o755);
}

function deliver(version: number) {
    const scripts = clusterConfDeliverScripts("hc12timeout", { id: "guest-cluster-conf", path: join(node, "etc/cluster/cluster.conf"), stateRoot: join(node, "state"), reload: false });
    const started = Date.now();
    const r = spawnSync("/bin/sh", ["-c", inlineLibrary(scripts.create)], {
        input: clusterConfDeliverStdin(conf(version), SCHEMA),
        encoding: "utf8",
        env: { PATH: `${join(node, "bin")}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`, LC_ALL: "C" },
        timeout: 60_000,
    });
    return { status: r.status, out: `${r.stdout}${r.stderr}`, seconds: (Date.now() - started) / 1000 };
}

const calls = () => readFileSync(join(node, "calls.log"), "utf8").trim().split("\n");

describe("cluster.conf delivery: the node's validator runs under timeout 120", () => {
    it("ccs_config_validate that never finishes is stopped, the file refused with that reason, the old file kept", () => {
        const first = deliver(1);
        expect(first.status, first.out).toBe(0);
        put("ccs_config_validate", "#!/bin/sh\nexec sleep 300\n");
        const r = deliver(2);
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/ccs_config_validate refuses the new cluster\.conf \(config_version 2\)[^]*ccs_config_validate did not finish within 120 s and was stopped/);
        expect(calls()).toContainEqual(expect.stringMatching(/^timeout 120 ccs_config_validate -f .*\/\.cluster\.conf\.[A-Za-z0-9]{6}$/));
        expect(r.seconds).toBeLessThan(30);
        expect(readFileSync(join(node, "etc/cluster/cluster.conf"), "utf8")).toBe(conf(1));
    });

    it("so does xmllint where cman is not installed", () => {
        put("xmllint", "#!/bin/sh\nexec sleep 300\n");
        const r = deliver(1);
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/xmllint refuses the new cluster\.conf \(config_version 1\)[^]*xmllint did not finish within 120 s and was stopped/);
        expect(calls()).toContainEqual(expect.stringMatching(/^timeout 120 xmllint --noout --relaxng /));
        expect(existsSync(join(node, "etc/cluster/cluster.conf"))).toBe(false);
    });

    it("a validator that answers in time is used as before (its verdict, not the bound, decides)", () => {
        const r = deliver(1);
        expect(r.status, r.out).toBe(0);
        expect(r.out).toMatch(/checked by xmllint against kvm-ha-lab's schema/);
        expect(calls()).toContainEqual(expect.stringMatching(/^timeout 120 xmllint /));
    });
});
