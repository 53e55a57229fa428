/**
 * A guest's cloud-init NoCloud seed image on its placement host: the files arrive on stdin (one line each,
 * `<name> <base64>`, see render/cloud-init.ts seedBundle) and become a volume labelled `cidata` — an ISO 9660 image
 * made with genisoimage, xorriso or mkisofs, else a FAT image made with mkfs.vfat and mcopy.
 *
 * Markers under `seed/<sha256(path), 16 hex>/`: `path`, `inode` (of the image we wrote) and `dirs`. Create refuses to
 * overwrite a file at the path that is not the seed it wrote; running it again rebuilds our seed in place (atomically).
 * Delete removes the seed only when it is still the file we wrote, then the directories it created, when empty.
 * The seed holds no secret: the node name, the lab's SSH public key, the node's address.
 */
import { createHash } from "node:crypto";
import { assertAbsPath, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

const FUNCTIONS = sh`
K="seed/$SEED_KEY"
work_dir
`;

const CREATE = sh`
read_stdin
if [ -e "$SEED" ] || [ -L "$SEED" ]; then
    file_recorded "$K"
    [ "$RF" = ours ] && [ "$RF_PATH" = "$SEED" ] || die "$SEED exists and is not the seed this lab wrote: move it away (or give the guest another disk directory)"
fi
mkdir "$WORK/cidata"
while read -r name b64; do
    case "$name" in
        meta-data|user-data|network-config) ;;
        *) die "unexpected seed file '$name' on stdin" ;;
    esac
    printf '%s' "$b64" | base64 -d > "$WORK/cidata/$name" 2>/dev/null || die "the seed file $name on stdin is not base64"
done < "$WORK/stdin"
[ -f "$WORK/cidata/meta-data" ] && [ -f "$WORK/cidata/user-data" ] || die "stdin holds no meta-data or user-data"
if have genisoimage; then MK='genisoimage'
elif have xorriso; then MK='xorriso -as mkisofs'
elif have mkisofs; then MK='mkisofs'
elif have mkfs.vfat && have mcopy; then MK=''
else die "cannot build the seed image: none of genisoimage, xorriso, mkisofs, or mkfs.vfat with mcopy is installed; install genisoimage (Debian and RHEL) or xorriso"
fi
DIR=$(dirname "$SEED")
mkdir_recorded "$DIR" "$K/dirs"
TMP=$(mktemp "$DIR/.kvm-ha-lab-seed.XXXXXX") || die "cannot create a temporary file in $DIR"
if [ -n "$MK" ]; then
    rm -f "$TMP"
    $MK -quiet -output "$TMP" -volid cidata -joliet -rock "$WORK/cidata" >"$WORK/out" 2>&1 || { rm -f "$TMP"; die "$MK failed: $(tr '\n' ' ' < "$WORK/out" | cut -c1-300)"; }
else
    { dd if=/dev/zero of="$TMP" bs=1024 count=2048 2>/dev/null && mkfs.vfat -n CIDATA "$TMP" >/dev/null 2>"$WORK/out" && mcopy -oi "$TMP" "$WORK/cidata/"* ::/ 2>>"$WORK/out"; } \
        || { rm -f "$TMP"; die "building a FAT seed failed: $(tr '\n' ' ' < "$WORK/out" | cut -c1-300)"; }
fi
chmod 0644 "$TMP"
mv -f "$TMP" "$SEED"
file_record "$K" "$SEED"
log "wrote cloud-init seed $SEED"
`;

const DELETE = sh`
file_recorded "$K"
case "$RF" in
    ours) rm -f "$RF_PATH"; log "removed cloud-init seed $RF_PATH" ;;
    other) log "left $RF_PATH in place: it is not the seed this lab wrote" ;;
esac
file_forget "$K"
rmdir_recorded "$K/dirs"
`;

export function seedScripts(lab: string, path: string): HostScripts {
    assertAbsPath("seed image path", path);
    const vars = { SEED: path, SEED_KEY: createHash("sha256").update(path).digest("hex").slice(0, 16) };
    const what = `seed ${path}`;
    return {
        create: hostScript(lab, what, vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, FUNCTIONS + DELETE),
    };
}
