/**
 * `tsx test/program/dump-config.ts`: runs the program under recording mocks with the stack config given on stdin as
 * JSON `{ stack, raw, secrets }` and prints the recorded resources as JSON (one config per process: the program is
 * imported once per process).
 */
import { readFileSync } from "node:fs";
import { runUnderMocks } from "./run-under-mocks";

const { stack, raw, secrets } = JSON.parse(readFileSync(0, "utf8")) as { stack: string; raw: Record<string, unknown>; secrets?: Record<string, string> };
runUnderMocks(stack, raw, secrets ?? {}).then(
    (run) => process.stdout.write(JSON.stringify(run.records)),
    (e) => {
        process.stderr.write(String(e instanceof Error ? e.stack : e));
        process.exit(1);
    },
);
