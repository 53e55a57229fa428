/**
 * `npm run --silent render -- --stack <name> --out <dir> [--stacks-dir stacks]`
 *
 * Writes what a stack would deploy, without the Pulumi CLI: cluster.conf (guest cluster), host-cluster.conf (when
 * there is a host cluster) or, for a cluster with `stack: pacemaker`, pacemaker/{corosync.conf,cib.xml} (guest
 * cluster) and pacemaker-hosts/{corosync.conf,cib.xml} (host cluster), xml_defs/<domain>.xml for every guest, and hosts/<host>/{fence_virt.conf,iptables.rules,
 * sysctl.conf} for every host. Secret values are left out (they are never decrypted). A bad config exits 2 with the
 * same messages `pulumi up` gives (a stack file that is not valid YAML: one line with its file, line and column); a
 * usage error exits 64.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError, PROJECT, referencedSecrets, validateLabConfig } from "../components/config";
import { renderLab } from "../components/render/lab-files";
import { parseStackFile, StackFileError } from "../components/stack-file";

function usage(message: string): never {
    process.stderr.write(`render: ${message}\nusage: npm run --silent render -- --stack <name> --out <dir> [--stacks-dir <dir>]\n`);
    process.exit(64);
}

function parseArgs(argv: string[]): { stack: string; out: string; stacksDir: string } {
    const opts: Record<string, string> = {};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--help" || a === "-h") usage("renders a stack's files");
        if (!["--stack", "--out", "--stacks-dir"].includes(a)) usage(`unknown argument ${JSON.stringify(a)}`);
        const v = argv[++i];
        if (v === undefined || v.startsWith("--")) usage(`${a} needs a value`);
        opts[a.slice(2)] = v;
    }
    if (!opts.stack) usage("--stack is required");
    if (!opts.out) usage("--out is required");
    return { stack: opts.stack, out: opts.out, stacksDir: opts["stacks-dir"] ?? resolve(__dirname, "..", "stacks") };
}

function main(): number {
    const { stack, out, stacksDir } = parseArgs(process.argv.slice(2));
    const file = join(stacksDir, `Pulumi.${stack}.yaml`);
    let text: string;
    try {
        text = readFileSync(file, "utf8");
    } catch {
        usage(`no stack file ${file}; stacks are stacks/Pulumi.<name>.yaml`);
    }
    let files: Map<string, string>;
    try {
        const { raw, secretKeys } = parseStackFile(text, file);
        const spec = validateLabConfig(raw, {
            stack,
            secretKeys,
            // Rendering needs no secret values; unset secrets are only noted (pulumi up requires them).
            requireSecrets: false,
            readFile: (p) => {
                try {
                    return readFileSync(p, "utf8");
                } catch {
                    return undefined;
                }
            },
        });
        files = renderLab(spec);
        for (const name of referencedSecrets(spec)) {
            if (!secretKeys.has(name)) {
                process.stderr.write(`render: note: secret ${PROJECT}:${name} is not set in ${file}; \`pulumi up\` will need it (pulumi config set --secret ${PROJECT}:${name} …)\n`);
            }
        }
    } catch (e) {
        if (e instanceof ConfigError || e instanceof StackFileError) {
            process.stderr.write(`${e.message}\n`);
            return 2;
        }
        throw e;
    }
    for (const [rel, content] of files) {
        const target = join(out, rel);
        mkdirSync(join(target, ".."), { recursive: true });
        writeFileSync(target, content);
        process.stdout.write(`${target}\n`);
    }
    return 0;
}

process.exitCode = main();
