import { join } from "node:path";
import { defineConfig } from "vitest/config";

// .ci/run sets KVMLAB_TEST_RESULTS to a folder: every vitest run also writes its results there as JSON (one file per
// run), from which .ci/run prints the totals (passed, failed, skipped) as its last line.
const results = process.env.KVMLAB_TEST_RESULTS;

export default defineConfig({
    test: {
        ...(results ? { reporters: ["default", ["json", { outputFile: join(results, `vitest-${process.pid}.json`) }]] } : {}),
        projects: [
            { test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 60_000 } },
            { test: { name: "program", include: ["test/program/**/*.test.ts"], testTimeout: 60_000 } },
            {
                test: {
                    name: "e2e",
                    include: ["test/e2e/**/*.test.ts"],
                    testTimeout: 600_000,
                    hookTimeout: 600_000,
                    fileParallelism: false,
                },
            },
            {
                test: {
                    name: "engine",
                    include: ["test/engine/**/*.test.ts"],
                    testTimeout: 900_000,
                    hookTimeout: 900_000,
                    fileParallelism: false,
                },
            },
        ],
    },
});
