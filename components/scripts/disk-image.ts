/**
 * A guest's disk image: created with `qemu-img create -f <format> <path> <size>G` when it does not exist and
 * `createSizeGiB` is set, or, with `backingImage`, as a qcow2 copy-on-write overlay of that base image
 * (`qemu-img create -f qcow2 -F <base format> -b <base, symlinks resolved> <path> [<size>G]`; without a size the
 * overlay has the base's size). The base image is only ever read: it must exist (a clear error otherwise, before
 * anything is created) and is never deleted. An existing image is always left as it is. Missing parent directories
 * are created and recorded.
 *
 * Markers under `disk/<sha256(path), 16 hex>/`: `path` and `inode` ("<device>:<inode>" of the image we created).
 * Delete removes only the image we created (same path, same inode), then the directories it created, when empty.
 * That deletes the guest's data: it is what destroying a lab that created the image means, unless the disk says
 * `keepOnDestroy`: then delete leaves the image (and its directories) in place and forgets it, so it is the user's
 * from then on, and the next create finds it and keeps it as an existing image.
 */
import { createHash } from "node:crypto";
import type { DiskSpec } from "../spec";
import { assertAbsPath, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

const FUNCTIONS = sh`
K="disk/$DISK_KEY"
work_dir
`;

const CREATE = sh`
if [ -e "$IMG" ]; then
    [ -f "$IMG" ] || [ -b "$IMG" ] || die "$IMG exists but is neither a file nor a block device: move it away or fix the disk path"
    exit 0
fi
have qemu-img || die "qemu-img is not installed: install qemu-img (RHEL) or qemu-utils (Debian)"
if [ -n "$BASE" ]; then
    [ -f "$BASE" ] || die "base image $BASE (the guest's image) cannot be found on this host: build it (npm run image) or download a cloud image to that path"
    REAL=$(readlink -f "$BASE") || die "cannot resolve $BASE"
    BFMT=$(qemu-img info -U "$REAL" </dev/null 2>"$WORK/out" | sed -n 's/^file format: //p')
    case "$BFMT" in
        qcow2|raw) ;;
        *) die "base image $BASE is not a qcow2 or raw image (qemu-img info says: $BFMT $(tr '\n' ' ' < "$WORK/out" | cut -c1-200))" ;;
    esac
    [ "$FMT" = qcow2 ] || die "an overlay of $BASE must be qcow2, not $FMT"
    set -- -F "$BFMT" -b "$REAL"
    WHAT_MADE="qcow2 overlay of $REAL"
else
    [ -n "$SIZE" ] || die "disk image $IMG does not exist and no size is set to create it: create it, or set a size (createSizeGiB) for this disk"
    set --
    WHAT_MADE="$FMT"
fi
mkdir_recorded "$(dirname "$IMG")" "$K/dirs"
if ! qemu-img create -q -f "$FMT" "$@" "$IMG" \${SIZE:+"\${SIZE}G"} </dev/null >"$WORK/out" 2>&1; then
    rm -f "$IMG"
    m_has "$K/path" || rmdir_recorded "$K/dirs"
    die "qemu-img create -f $FMT $* $IMG \${SIZE:+\${SIZE}G} failed: $(tr '\n' ' ' < "$WORK/out" | cut -c1-300)"
fi
file_record "$K" "$IMG"
log "created disk image $IMG ($WHAT_MADE\${SIZE:+, \${SIZE} GiB})"
`;

const DELETE = sh`
file_recorded "$K"
case "$RF" in
    other) log "left $RF_PATH in place: it is not the image this lab created" ;;
    ours)
        if [ "$KEEP" = 1 ]; then
            log "kept disk image $RF_PATH (keepOnDestroy): it is no longer this lab's, remove it by hand when it is not wanted"
        else
            rm -f "$RF_PATH"
            log "removed disk image $RF_PATH"
        fi
        ;;
esac
file_forget "$K"
if [ "$KEEP" = 1 ]; then rmdir_recorded "$K/dirs" final; else rmdir_recorded "$K/dirs"; fi
`;

export function diskImageScripts(lab: string, disk: DiskSpec): HostScripts {
    assertAbsPath("disk image path", disk.path);
    if (disk.backingImage !== undefined) {
        assertAbsPath("base image path", disk.backingImage);
        if (disk.format !== "qcow2") throw new Error(`disk ${disk.path}: an overlay of ${disk.backingImage} must be qcow2, not ${disk.format}`);
    }
    if (disk.format !== "qcow2" && disk.format !== "raw") throw new Error(`disk format ${JSON.stringify(disk.format)} is not qcow2 or raw`);
    if (disk.createSizeGiB !== undefined && (!Number.isInteger(disk.createSizeGiB) || disk.createSizeGiB < 1)) {
        throw new Error(`disk size ${disk.createSizeGiB} GiB is not a positive whole number`);
    }
    const vars = {
        IMG: disk.path,
        FMT: disk.format,
        SIZE: disk.createSizeGiB === undefined ? "" : String(disk.createSizeGiB),
        KEEP: disk.keepOnDestroy ? "1" : "0",
        BASE: disk.backingImage ?? "",
        DISK_KEY: createHash("sha256").update(disk.path).digest("hex").slice(0, 16),
    };
    const what = `disk ${disk.path}`;
    return {
        create: hostScript(lab, what, vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, FUNCTIONS + DELETE),
    };
}
