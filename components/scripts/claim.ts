/**
 * The lab's claim on a host: what this lab needs to have to itself there (its bridge, its fence_virtd port, its key
 * file), recorded in `<state dir>/claims`. Every other host command of the lab runs after it, so a conflict with another
 * lab on the same host stops the apply before anything changes, with one line naming the other lab and the fix.
 *
 * Also refuses a second stack that uses the same lab name on the host (the two would share one state directory).
 * Delete removes the claim (only this stack's).
 */
import { hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

export interface Claim {
    /** What is claimed, e.g. "bridge", "udp-port", "tcp-port", "vsock-port", "key-file". */
    kind: string;
    value: string;
}

/**
 * The claim on fence_virtd's listening port: `udp-port` (multicast), `tcp-port` or `vsock-port`. Each socket kind has
 * its own port space, so a lab's tcp port does not collide with another lab's udp port of the same number.
 */
export function fencePortClaim(protocol: "udp" | "tcp" | "vsock", port: number): Claim {
    return { kind: `${protocol}-port`, value: String(port) };
}

const CREATE = sh`
work_dir
printf '%s\n' "$CLAIMS" | sed '/^$/d' > "$WORK/claims"
if [ -f "$STATE_DIR/claims" ]; then
    OWNER=$(sed -n 's/^stack //p' "$STATE_DIR/claims")
    if [ -n "$OWNER" ] && [ "$OWNER" != "$STACK" ]; then
        die "lab name $LAB is already used on this host by stack $OWNER: give this stack another lab name (pulumi config set kvm-ha-lab:labName NAME) or destroy stack $OWNER first"
    fi
fi
CONFLICTS=''
for F in "$STATE_ROOT"/*/claims; do
    [ -f "$F" ] || continue
    OL=$(basename "$(dirname "$F")")
    [ "$OL" != "$LAB" ] || continue
    while IFS= read -r LINE; do
        case "$LINE" in stack\ *) continue ;; esac
        if grep -qxF -- "$LINE" "$F"; then CONFLICTS="$CONFLICTS, $LINE (lab $OL)"; fi
    done < "$WORK/claims"
done
if [ -n "$CONFLICTS" ]; then
    die "another lab on this host already uses\${CONFLICTS#,}; give this lab its own bridge name, fence port and key file, or destroy the other lab first"
fi
state_init
if [ ! -f "$STATE_DIR/claims" ] || ! cmp -s "$WORK/claims" "$STATE_DIR/claims"; then
    put_file "$WORK/claims" "$STATE_DIR/claims" 0600
fi
`;

const DELETE = sh`
if [ -f "$STATE_DIR/claims" ] && [ "$(sed -n 's/^stack //p' "$STATE_DIR/claims")" = "$STACK" ]; then
    rm -f "$STATE_DIR/claims"
fi
`;

/** Claims are rendered sorted, so the same lab always writes the same file. */
export function claimScripts(lab: string, stack: string, claims: Claim[]): HostScripts {
    for (const c of claims) {
        if (!/^[a-z][a-z-]*$/.test(c.kind) || /[\n\0]/.test(c.value) || c.value === "") {
            throw new Error(`claim ${JSON.stringify(c)} is not a kind (a-z, '-') with a one-line value`);
        }
    }
    const lines = [`stack ${stack}`, ...claims.map((c) => `${c.kind} ${c.value}`).sort()];
    const vars = { STACK: stack, CLAIMS: [...new Set(lines)].join("\n") };
    return {
        create: hostScript(lab, "claim", vars, CREATE),
        delete: hostScript(lab, "claim", vars, DELETE),
    };
}
