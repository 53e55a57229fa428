/**
 * config_version: the counter's scripts (run by sh: create prints 1, update prints the previous number + 1), and,
 * under Pulumi mocks, that the counter's inputs change exactly when the rendered content changes (the same spec
 * twice gives identical inputs, so the engine runs nothing and the number stays; one changed attribute gives another
 * hash, so the engine runs `update`), that the file delivered carries the counter's number, and the delivery order
 * (guards, then every node but the first, then the first node, which reloads cman).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import {
    CONFIG_VERSION_SCRIPTS,
    CONTENT_HASH_VARIABLE,
    ClusterConf,
    clusterFiles,
    contentSha256,
    parseConfigVersion,
} from "../../components/cluster-conf";
import { validateLabConfig } from "../../components/config";
import type { Machine } from "../../components/machine";
import { renderGuestClusterConf, renderHostClusterConf } from "../../components/render/cluster-conf";
import type { LabSpec } from "../../components/spec";
import { parseStackFile } from "../../components/stack-file";
import { installMocks, isSecretValue, type Recorded } from "../program/recording-mocks";

const ROOT = resolve(__dirname, "../..");

function sh(script: string, env: Record<string, string> = {}) {
    const r = spawnSync("/bin/sh", ["-c", script], { encoding: "utf8", env: { PATH: "/usr/bin:/bin", ...env } });
    return { status: r.status, stdout: r.stdout.replace(/\n$/, ""), stderr: r.stderr };
}

describe("the counter's scripts", () => {
    it("create prints 1", () => {
        expect(sh(CONFIG_VERSION_SCRIPTS.create)).toMatchObject({ status: 0, stdout: "1" });
    });

    it("update prints the previous number plus one", () => {
        expect(sh(CONFIG_VERSION_SCRIPTS.update, { PULUMI_COMMAND_STDOUT: "4" })).toMatchObject({ status: 0, stdout: "5" });
        expect(sh(CONFIG_VERSION_SCRIPTS.update, { PULUMI_COMMAND_STDOUT: "99" })).toMatchObject({ status: 0, stdout: "100" });
    });

    it.each(["", "abc", "-3", "4 5"])("update refuses a previous output of %j instead of starting over", (prev) => {
        const r = sh(CONFIG_VERSION_SCRIPTS.update, { PULUMI_COMMAND_STDOUT: prev });
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/is not a number/);
    });

    it("delete does nothing, successfully", () => {
        expect(sh(CONFIG_VERSION_SCRIPTS.delete).status).toBe(0);
    });

    it("over a run of `pulumi up`s (create once, update when the hash input changes): +1 exactly on a change", () => {
        // The engine's rule for a command: create on the first up, `update` (with the previous stdout) when an input
        // differs, nothing otherwise. The scripts then give:
        let stdout = "";
        let lastHash: string | undefined;
        const versions = ["a", "a", "b", "b", "b", "c", "a"].map((content) => {
            const hash = contentSha256(content);
            if (lastHash === undefined) stdout = sh(CONFIG_VERSION_SCRIPTS.create).stdout;
            else if (hash !== lastHash) stdout = sh(CONFIG_VERSION_SCRIPTS.update, { PULUMI_COMMAND_STDOUT: stdout }).stdout;
            lastHash = hash;
            return parseConfigVersion(stdout);
        });
        expect(versions).toEqual([1, 1, 2, 2, 2, 3, 4]);
    });

    it("parseConfigVersion reads the number, and refuses anything else", () => {
        expect(parseConfigVersion("12")).toBe(12);
        expect(parseConfigVersion("12\n")).toBe(12);
        expect(() => parseConfigVersion("0")).toThrow(/not a positive integer/);
        expect(() => parseConfigVersion("x")).toThrow(/not a positive integer/);
    });
});

// ---------------------------------------------------------------- under mocks

const isSecret = isSecretValue;
const plain = (v: unknown): unknown => (isSecret(v) ? plain((v as { value: unknown }).value) : v);

const COUNTER_STDOUT = "7";
let records: Recorded[] = [];

function rawStack(stack: string): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return structuredClone(parseStackFile(readFileSync(join(ROOT, `stacks/Pulumi.${stack}.yaml`), "utf8")).raw);
}

const DEV_SECRETS = new Set(["sshPrivateKey", "ipmiPasswordKvm1", "ipmiPasswordKvm2"]);
function devSpec(edit: (raw: Record<string, any>) => void = () => {}): LabSpec { // eslint-disable-line @typescript-eslint/no-explicit-any
    const raw = rawStack("dev");
    edit(raw);
    return validateLabConfig(raw, { stack: "dev", secretKeys: DEV_SECRETS, readFile: () => undefined });
}

const nodesOf = (spec: LabSpec): Machine[] =>
    spec.guestCluster.nodes.map((n) => {
        const g = spec.guests.find((x) => x.name === n)!;
        return { name: n, connection: g.connection!, privateKey: pulumi.secret("fake-key") };
    });

const byName = (name: string) => {
    const r = records.find((x) => x.name === name);
    if (!r) throw new Error(`no resource ${name}; have ${records.map((x) => x.name).join(", ")}`);
    return r;
};

const WITH_GUARDS = (raw: Record<string, any>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    raw.guestCluster.services = [{ name: "web1" }, { name: "web2" }];
    raw.guestCluster.antiAffinity = [{ name: "web", services: ["web1", "web2"] }];
};

beforeAll(async () => {
    const run = await installMocks("dev", {}, [], { commandStdout: (name) => (name.endsWith("-version") ? COUNTER_STDOUT : "") });
    records = run.records;
    const passwords = { "ipmi-kvm1": pulumi.secret("pw-one"), "ipmi-kvm2": pulumi.secret("pw-two") };
    const mk = (name: string, spec: LabSpec, pw: Record<string, pulumi.Input<string>> = passwords) =>
        new ClusterConf(name, { lab: spec.lab, ...clusterFiles(spec), guestNodes: nodesOf(spec), hostNodes: [], passwords: pw, domainsDefined: [] });
    mk("same1", devSpec());
    mk("same2", devSpec()); // an independent, identical spec: a second `pulumi up` with the same config
    mk("guestchg", devSpec((r) => (r.guestCluster.fenceDaemon = { postJoinDelay: 31 })));
    mk("hostchg", devSpec((r) => (r.hostCluster.vmServices[0].maxRestarts = 3)));
    mk("pwchg", devSpec(), { ...passwords, "ipmi-kvm2": pulumi.secret("pw-changed") });
    mk("guards", devSpec(WITH_GUARDS));
    await run.settle();
});

describe("the counter under mocks", () => {
    const env = (name: string) => plain(byName(name).inputs.environment) as Record<string, unknown>;
    const hashOf = (name: string) => plain(env(name)[CONTENT_HASH_VARIABLE]);

    it("is a local command with create/update/delete, one per cluster, whose only changing input is the hash", () => {
        for (const name of ["same1-guest-version", "same1-host-version"]) {
            const r = byName(name);
            expect(r.type).toBe("command:local:Command");
            expect(plain(r.inputs.create)).toBe(CONFIG_VERSION_SCRIPTS.create);
            expect(plain(r.inputs.update)).toBe(CONFIG_VERSION_SCRIPTS.update);
            expect(plain(r.inputs.delete)).toBe(CONFIG_VERSION_SCRIPTS.delete);
            expect(r.inputs.stdin).toBeUndefined();
            expect(r.inputs.triggers).toBeUndefined(); // a trigger would replace it: create again, back to 1
            expect(Object.keys(env(name))).toEqual([CONTENT_HASH_VARIABLE]);
        }
    });

    it("the hash is the sha256 of the file rendered without config_version", () => {
        expect(hashOf("same1-guest-version")).toBe(contentSha256(renderGuestClusterConf(devSpec(), { configVersion: undefined })));
        expect(hashOf("same1-host-version")).toBe(
            contentSha256(renderHostClusterConf(devSpec(), { configVersion: undefined, passwords: { "ipmi-kvm1": "pw-one", "ipmi-kvm2": "pw-two" } })),
        );
    });

    it("the same spec twice gives identical inputs: no update, the same number", () => {
        for (const c of ["guest", "host"]) {
            const strip = (r: Recorded) => JSON.stringify(plain({ ...r.inputs, environment: plain(r.inputs.environment) }));
            expect(strip(byName(`same2-${c}-version`))).toBe(strip(byName(`same1-${c}-version`)));
        }
    });

    it("one changed attribute changes exactly that cluster's hash: an update, +1", () => {
        expect(hashOf("guestchg-guest-version")).not.toBe(hashOf("same1-guest-version"));
        expect(hashOf("guestchg-host-version")).toBe(hashOf("same1-host-version"));
        expect(hashOf("hostchg-host-version")).not.toBe(hashOf("same1-host-version"));
        expect(hashOf("hostchg-guest-version")).toBe(hashOf("same1-guest-version"));
        // a changed fence password changes the host file, hence its number
        expect(hashOf("pwchg-host-version")).not.toBe(hashOf("same1-host-version"));
    });

    it("keeps the host hash secret (the file it hashes carries passwords); the guest's is plain", () => {
        expect(isSecret(byName("same1-host-version").inputs.environment) || isSecret(env("same1-host-version")[CONTENT_HASH_VARIABLE])).toBe(true);
        expect(isSecret(byName("same1-guest-version").inputs.environment)).toBe(false);
    });

    it("the delivered file carries the counter's number", () => {
        const stdin = String(plain(byName("same1-guest-gnode2").inputs.stdin));
        expect(stdin).toContain(`<cluster name="devguests" config_version="${COUNTER_STDOUT}">`);
    });
});

describe("delivery order under mocks", () => {
    it("every node but the first delivers without reloading; the first waits for them and reloads cman", () => {
        const first = byName("same1-guest-gnode1");
        const others = ["same1-guest-gnode2", "same1-guest-gnode3"].map(byName);
        expect(first.dependencies).toEqual(expect.arrayContaining(others.map((o) => o.urn)));
        // remote scripts are wrapped in sh -c '...', so their own quotes appear as '\''
        const q = (v: string) => `'\\''${v}'\\''`;
        for (const o of others) expect(String(plain(o.inputs.create))).toContain(`RELOAD=${q("no")}`);
        expect(String(plain(first.inputs.create))).toContain(`RELOAD=${q("yes")}`);
    });

    it("guards reach each node before the cluster.conf that names them", () => {
        for (const n of ["gnode1", "gnode2", "gnode3"]) {
            const guards = ["web1", "web2"].map((s) => byName(`guards-guest-${n}-guard-${s}`));
            for (const g of guards) {
                expect(String(plain(g.inputs.stdin))).toMatch(/^#!\/bin\/sh\n# kvm-ha-lab anti-affinity guard/);
                expect(String(plain(g.inputs.create))).toContain(`DEST='\\''/usr/local/libexec/kvm-ha-lab/dev/guard-`);
            }
            expect(byName(`guards-guest-${n}`).dependencies).toEqual(expect.arrayContaining(guards.map((g) => g.urn)));
        }
        expect(records.filter((r) => r.name.startsWith("same1-") && r.name.includes("-guard-"))).toEqual([]);
    });
});
