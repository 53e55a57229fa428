/**
 * `node --import tsx test/engine/inline-program.ts <projectDir> <stack> [preview|up]`: runs `pulumi preview` (or `up`) of this project's
 * program (index.ts) with the real CLI (.engine/v<version>/bin/pulumi) in <projectDir> (a copy of Pulumi.yaml and
 * stacks/ made by makeProject; its environment comes from engineEnv), and prints one JSON line: every resource the
 * engine saw registered, every error diagnostic, the error the preview ended with.
 *
 * The program runs as an Automation API inline program: the SDK's own language server, in this process, takes the
 * place of the `pulumi-language-nodejs` plugin the module proxy does not serve (`pulumi preview --client=<address>`).
 * Everything else is the real engine: it reads the stack file, decrypts secrets with the passphrase, hands the config
 * to the program, and resolves each provider plugin (which fails while the provider modules are not served).
 */
import { LocalWorkspace, PulumiCommand, type EngineEvent } from "@pulumi/pulumi/automation";
import { appendFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { ENGINE_BIN } from "./engine-cli";

export interface InlinePreview {
    /** Resources the engine reported a step for (`resourcePreEvent`), in event order. */
    registered: { urn: string; type: string; op: string }[];
    /** Error diagnostics: the resource they are about ("" for none) and the message. */
    errors: { urn: string; message: string }[];
    /** The preview's own failure ("" when it succeeded). */
    failure: string;
}

async function main(): Promise<void> {
    const [projectDir, stackName, operation = "preview"] = process.argv.slice(2);
    if (!projectDir || !stackName || !["preview", "up"].includes(operation)) throw new Error("usage: inline-program.ts <projectDir> <stack> [preview|up]");
    const program = join(__dirname, "..", "..", "index.ts");
    const pulumiCommand = await PulumiCommand.get({ root: dirname(ENGINE_BIN) });
    const stack = await LocalWorkspace.selectStack(
        { stackName, projectName: "kvm-ha-lab", program: async () => ({ ...(await import(pathToFileURL(program).href)) }) },
        { workDir: projectDir, pulumiCommand },
    );
    const result: InlinePreview = { registered: [], errors: [], failure: "" };
    // KVMLAB_ENGINE_EVENTS=<file>: every engine event, one JSON line each.
    const eventsFile = process.env.KVMLAB_ENGINE_EVENTS;
    const onEvent = (e: EngineEvent) => {
        if (eventsFile) appendFileSync(eventsFile, `${JSON.stringify(e)}\n`);
        if (e.resourcePreEvent) {
            const m = e.resourcePreEvent.metadata;
            result.registered.push({ urn: m.urn, type: m.type, op: m.op });
        }
        if (e.diagnosticEvent && e.diagnosticEvent.severity === "error") {
            result.errors.push({ urn: e.diagnosticEvent.urn ?? "", message: e.diagnosticEvent.message.trim() });
        }
    };
    // KVMLAB_ENGINE_LOG=<file>: the CLI runs with `--logtostderr -v=<KVMLAB_ENGINE_LOG_V, default 9>`, and everything
    // it prints goes to that file.
    const logFile = process.env.KVMLAB_ENGINE_LOG;
    const log = logFile ? (text: string) => appendFileSync(logFile, text) : undefined;
    const verbose = log ? { logToStdErr: true, logVerbosity: Number(process.env.KVMLAB_ENGINE_LOG_V ?? "9"), onOutput: log, onError: log } : {};
    try {
        if (operation === "up") await stack.up({ onEvent, ...verbose });
        else await stack.preview({ onEvent, ...verbose });
    } catch (e) {
        result.failure = String(e instanceof Error ? e.message : e).slice(0, 4000);
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(2);
});
