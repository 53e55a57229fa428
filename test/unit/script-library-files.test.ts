/**
 * The script library's record of a file a lab made (file_record, file_recorded, file_forget), which the disk image and
 * seed scripts share: run for real by /bin/sh as root, with a temporary directory as the lab's state. A file is "ours"
 * only while the same inode is at the recorded path; a file put there in its place is "other"; a missing path, or one
 * that is no regular file, is "gone". The scripts' own behaviour with it is tested end to end
 * (test/e2e/scripts-guest-os.test.ts, scripts-libvirt.test.ts).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCRIPT_LIBRARY, shVars } from "../../components/scripts/prelude";
import { skipUnless } from "../helpers/tools";

const IS_ROOT = process.getuid?.() === 0;
let base = "";

beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), "kvmlab-lib-files-"));
});
afterAll(() => {
    if (base !== "") rmSync(base, { recursive: true, force: true });
});

function run(body: string): { code: number | null; stdout: string; stderr: string } {
    const vars = shVars({ LAB: "libfiles", WHAT: "test", STATE_ROOT: join(base, "state"), STATE_DIR: join(base, "state", "libfiles"), F: join(base, "img") });
    const r = spawnSync("/bin/sh", ["-c", `set -eu\n${vars}${SCRIPT_LIBRARY}\n${body}`], { encoding: "utf8", timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(skipUnless("root", IS_ROOT))("the script library's record of a file the lab made", () => {
    it("ours while the same file is there; other once something replaced it; gone when nothing (or no file) is", () => {
        const r = run(`
file_recorded disk/k; echo "unrecorded $RF [$RF_PATH]"
echo data > "$F"
file_record disk/k "$F"
file_recorded disk/k; echo "recorded $RF [$RF_PATH]"
echo other > "$F.new"; mv -f "$F.new" "$F"
file_recorded disk/k; echo "replaced $RF [$RF_PATH]"
rm -f "$F"
file_recorded disk/k; echo "removed $RF"
mkdir "$F"
file_recorded disk/k; echo "directory $RF"
rmdir "$F"
file_forget disk/k
m_has disk/k/path || m_has disk/k/inode || echo "forgotten"
file_recorded disk/k; echo "after forget $RF [$RF_PATH]"
`);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const f = join(base, "img");
        expect(r.stdout.trim().split("\n")).toEqual([
            "unrecorded gone []",
            `recorded ours [${f}]`,
            `replaced other [${f}]`,
            "removed gone",
            "directory gone",
            "forgotten",
            "after forget gone []",
        ]);
    });

    it("records the device and inode, so a file at another path is never taken for ours", () => {
        const r = run(`
echo data > "$F"
file_record seed/k "$F"
m_get seed/k/path
m_get seed/k/inode
stat -c '%d:%i' "$F"
`);
        expect(r.code).toBe(0);
        const [path, inode, actual] = r.stdout.trim().split("\n");
        expect(path).toBe(join(base, "img"));
        expect(inode).toMatch(/^\d+:\d+$/);
        expect(inode).toBe(actual);
    });
});
