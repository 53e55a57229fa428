/** `tsx test/program/dump-program.ts <stack>`: prints the recorded resources of one program run as JSON. */
import { FAKE_SECRETS, loadStack, runUnderMocks } from "./run-under-mocks";

const stack = process.argv[2] ?? "lab";
runUnderMocks(stack, loadStack(stack), stack === "dev" ? FAKE_SECRETS : {}).then(
    (run) => process.stdout.write(JSON.stringify(run.records)),
    (e) => {
        process.stderr.write(String(e instanceof Error ? e.stack : e));
        process.exit(1);
    },
);
