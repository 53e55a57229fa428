/**
 * A guest's disk image: created with `qemu-img create -f <format> <path> <size>G` when it does not exist and
 * `createSizeGiB` is set; an existing image is always left as it is. Missing parent directories are created and recorded.
 *
 * Markers under `disk/<sha256(path), 16 hex>/`: `path` and `inode` ("<device>:<inode>" of the image we created).
 * Delete removes only the image we created (same path, same inode), then the directories it created, when empty.
 * That deletes the guest's data: it is what destroying a lab that created the image means.
 */
import { createHash } from "node:crypto";
import type { DiskSpec } from "../spec";
import { assertAbsPath, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

const FUNCTIONS = sh`
K="disk/$DISK_KEY"
work_dir
inode_of() { stat -c '%d:%i' "$1"; }
`;

const CREATE = sh`
if [ -e "$IMG" ]; then
    [ -f "$IMG" ] || [ -b "$IMG" ] || die "$IMG exists but is neither a file nor a block device: move it away or fix the disk path"
    exit 0
fi
[ -n "$SIZE" ] || die "disk image $IMG does not exist and no size is set to create it: create it, or set a size (createSizeGiB) for this disk"
have qemu-img || die "qemu-img is not installed: install qemu-img (RHEL) or qemu-utils (Debian)"
mkdir_recorded "$(dirname "$IMG")" "$K/dirs"
if ! qemu-img create -q -f "$FMT" "$IMG" "\${SIZE}G" </dev/null >"$WORK/out" 2>&1; then
    rm -f "$IMG"
    m_has "$K/path" || rmdir_recorded "$K/dirs"
    die "qemu-img create -f $FMT $IMG \${SIZE}G failed: $(tr '\n' ' ' < "$WORK/out" | cut -c1-300)"
fi
m_put "$K/path" "$IMG"
m_put "$K/inode" "$(inode_of "$IMG")"
log "created disk image $IMG ($FMT, \${SIZE} GiB)"
`;

const DELETE = sh`
P=$(m_get "$K/path")
if [ -n "$P" ] && [ -f "$P" ]; then
    if [ "$(inode_of "$P")" = "$(m_get "$K/inode")" ]; then rm -f "$P"; log "removed disk image $P"; else log "left $P in place: it is not the image this lab created"; fi
fi
m_del "$K/path"
m_del "$K/inode"
rmdir_recorded "$K/dirs"
`;

export function diskImageScripts(lab: string, disk: DiskSpec): HostScripts {
    assertAbsPath("disk image path", disk.path);
    if (disk.format !== "qcow2" && disk.format !== "raw") throw new Error(`disk format ${JSON.stringify(disk.format)} is not qcow2 or raw`);
    if (disk.createSizeGiB !== undefined && (!Number.isInteger(disk.createSizeGiB) || disk.createSizeGiB < 1)) {
        throw new Error(`disk size ${disk.createSizeGiB} GiB is not a positive whole number`);
    }
    const vars = {
        IMG: disk.path,
        FMT: disk.format,
        SIZE: disk.createSizeGiB === undefined ? "" : String(disk.createSizeGiB),
        DISK_KEY: createHash("sha256").update(disk.path).digest("hex").slice(0, 16),
    };
    const what = `disk ${disk.path}`;
    return {
        create: hostScript(lab, what, vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, FUNCTIONS + DELETE),
    };
}
