/**
 * Installs the shared shell functions of every host script (the library, SCRIPT_LIBRARY in ./prelude) once per machine
 * as SCRIPT_LIBRARY_PATH, a file named by its sha256: every other script of the lab on that machine sources it, so
 * the Pulumi state holds those functions once per machine instead of twice per command. The library arrives on stdin
 * and is checked against its hash; this script loads the functions from there (it runs before the file exists), so the
 * library is written once per machine in the state, as this command's stdin.
 *
 * Labs share the file: marker `lib/<sha256>` in each lab's state says "this lab uses this version". Delete removes the
 * lab's marker, and the file only when no other lab on the machine has one, under a lock directory
 * (`<STATE_ROOT>/.lib-lock`) so that a lab installing the same version at that moment keeps it. A new library version
 * is a new file (and a new `<machine>-lib-<hash>` resource): scripts kept in the state for delete still find the version
 * they were written for until that old resource goes, after them.
 */
import { SCRIPT_LIBRARY, SCRIPT_LIBRARY_DIR, SCRIPT_LIBRARY_PATH, SCRIPT_LIBRARY_SHA256, stdinLibraryHostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

const LOCK = sh`
LOCK="$STATE_ROOT/.lib-lock"
state_init
_lk_i=0
until mkdir "$LOCK" 2>/dev/null; do
    _lk_i=$((_lk_i + 1))
    [ "$_lk_i" -lt 300 ] || die "the lock $LOCK is held for a minute: when no kvm-ha-lab script runs on this machine, remove that directory and run again"
    nap
done
EXIT_LOCK=$LOCK
`;

const CREATE = LOCK + sh`
m_put "lib/$SHA" "$LIB"
if [ ! -f "$LIB" ] || [ "$(sha_file "$LIB")" != "$SHA" ]; then
    [ -d "$LIB_DIR" ] || mkdir -m 0700 "$LIB_DIR" || die "cannot create $LIB_DIR: check that $STATE_ROOT is writable"
    put_file "$WORK/stdin" "$LIB" 0644
    log "installed the script library $LIB"
fi
`;

const DELETE = LOCK + sh`
m_del "lib/$SHA"
if [ -z "$(other_labs_with "lib/$SHA")" ]; then
    rm -f "$LIB"
    rmdir "$LIB_DIR" 2>/dev/null || true
fi
`;

export function libraryScripts(lab: string): HostScripts & { stdin: string } {
    const vars = { SHA: SCRIPT_LIBRARY_SHA256, LIB: SCRIPT_LIBRARY_PATH, LIB_DIR: SCRIPT_LIBRARY_DIR };
    const what = `script library ${SCRIPT_LIBRARY_SHA256.slice(0, 12)}`;
    return {
        create: stdinLibraryHostScript(lab, what, vars, CREATE),
        delete: stdinLibraryHostScript(lab, what, vars, DELETE),
        stdin: SCRIPT_LIBRARY,
    };
}
