/**
 * disks[].keepOnDestroy reaches the disk command under mocks: the lab stack with node1's disk kept. Its delete script
 * keeps the image it created; node2's (the default) removes it. (What the scripts then do is run for real in
 * test/e2e/scripts-libvirt.test.ts.)
 */
import { beforeAll, describe, expect, it } from "vitest";
import { unwrap } from "./recording-mocks";
import { loadStack, runUnderMocks, type ProgramRun } from "./run-under-mocks";

let run: ProgramRun;
const del = (name: string): string => {
    const r = run.records.find((x) => x.name === name);
    if (!r) throw new Error(`no resource named ${name}`);
    return String(unwrap(r.inputs.delete));
};

beforeAll(async () => {
    const raw = structuredClone(loadStack("lab")) as { guests: { disks: Record<string, unknown>[] }[] };
    raw.guests[0].disks[0].keepOnDestroy = true;
    run = await runUnderMocks("lab", raw as unknown as Record<string, unknown>);
});

describe("a disk with keepOnDestroy (lab stack, under mocks)", () => {
    it("node1's disk command keeps the image on delete; node2's removes it", () => {
        expect(del("node1-disk-0")).toMatch(/^KEEP='?1'?$/m);
        expect(del("node2-disk-0")).toMatch(/^KEEP='?0'?$/m);
    });
});
