/**
 * Kernel settings for the lab (net.bridge.bridge-nf-call-* = 0): set at runtime and persisted in
 * `labNames(lab).sysctlFile`. stdin: the sysctl.d file text (`key = value` lines, `#`/`;` comments).
 *
 * Runtime: for each key whose /proc/sys file exists, the value before the lab is recorded once (`sysctl/<key>.prev`;
 * when another lab on the host already holds the key, its recorded original is copied, so whichever lab leaves last
 * restores the host's own value) along with the value we set (`sysctl/<key>.ours`). A net.bridge.* key that does not
 * exist means br_netfilter is not loaded: bridged traffic then does not traverse iptables at all, so there is nothing
 * to set at runtime (recorded as `sysctl/<key>.absent`; the file applies it at boot). Any other missing key is an error.
 *
 * Delete restores each recorded value when no other lab still holds the key and the current value is still ours, and
 * removes the file when its content is still what we wrote (`sysctl/file.sha256`).
 */
import { labNames } from "../names";
import { hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

const CREATE = sh`
read_stdin
# ---- parse: "key value" lines in $WORK/kv, or "BAD <line number>"
awk '
    /^[ \t]*([#;].*)?$/ { next }
    {
        line = $0; sub(/^[ \t]+/, "", line); sub(/[ \t\r]+$/, "", line)
        if (line !~ /^[A-Za-z0-9_][A-Za-z0-9_.-]*[ \t]*=/) { print "BAD " NR; exit }
        key = line; sub(/[ \t]*=.*$/, "", key)
        val = line; sub(/^[^=]*=[ \t]*/, "", val)
        if (val == "") { print "BAD " NR; exit }
        print key, val
    }' "$WORK/stdin" > "$WORK/kv"
if grep -q '^BAD ' "$WORK/kv"; then
    N=$(sed -n 's/^BAD //p' "$WORK/kv")
    die "line $N of the sysctl text is not 'key = value': $(sed -n "\${N}p" "$WORK/stdin")"
fi
[ -s "$WORK/kv" ] || die "the sysctl text on stdin sets nothing: pass the rendered sysctl.d file"

# ---- checks: nothing changes until all of them pass
while read -r KEY VAL; do
    P="/proc/sys/$(printf '%s' "$KEY" | tr . /)"
    if [ ! -f "$P" ]; then
        case "$KEY" in
            net.bridge.*) ;;
            *) die "kernel setting $KEY does not exist on this host (no $P): remove it from the sysctl text or load the module that provides it" ;;
        esac
    else
        case "$(cat "$P")" in
            *[!0-9-]*|'') ;;
            *) case "$VAL" in
                   -|*[!0-9-]*) die "kernel setting $KEY takes an integer, not '$VAL': fix the sysctl text" ;;
               esac ;;
        esac
    fi
done < "$WORK/kv"
if [ -e "$FILE" ] && ! m_has sysctl/file.sha256; then
    die "$FILE exists and was not written by kvm-ha-lab lab $LAB: move it away, or choose another lab name"
fi

# ---- runtime values
while read -r KEY VAL; do
    P="/proc/sys/$(printf '%s' "$KEY" | tr . /)"
    MK="sysctl/$KEY"
    if [ -f "$P" ]; then
        if ! m_has "$MK.prev"; then
            OTHER=$(other_labs_with "$MK.prev" | head -n 1)
            if [ -n "$OTHER" ]; then m_put "$MK.prev" "$(cat "$STATE_ROOT/$OTHER/$MK.prev")"; else m_put "$MK.prev" "$(cat "$P")"; fi
        fi
        m_put "$MK.ours" "$VAL"
        m_del "$MK.absent"
        if [ "$(cat "$P")" != "$VAL" ]; then
            printf '%s\n' "$VAL" > "$P" 2>"$WORK/err" || die "cannot set $KEY = $VAL: $(cat "$WORK/err")"
            log "set $KEY = $VAL (was $(m_get "$MK.prev"))"
        fi
    elif ! m_has "$MK.absent"; then
        m_put "$MK.absent" "br_netfilter not loaded"
        log "$KEY: br_netfilter is not loaded, so bridged traffic does not traverse iptables; nothing to set now ($FILE applies it at boot)"
    fi
done < "$WORK/kv"

# ---- the persistent file
NEW=$(sha_file "$WORK/stdin")
if [ ! -f "$FILE" ] || [ "$(sha_file "$FILE")" != "$NEW" ]; then
    [ -d "$(dirname "$FILE")" ] || die "$(dirname "$FILE") does not exist: this host's sysctl does not read sysctl.d; create the directory or persist the settings by hand"
    m_put sysctl/file.sha256 "$NEW"
    put_file "$WORK/stdin" "$FILE" 0644
    log "wrote $FILE"
fi
`;

const DELETE = sh`
for F in "$STATE_DIR"/sysctl/*.prev; do
    [ -f "$F" ] || continue
    KEY=$(basename "$F" .prev)
    MK="sysctl/$KEY"
    P="/proc/sys/$(printf '%s' "$KEY" | tr . /)"
    PREV=$(m_get "$MK.prev")
    OURS=$(m_get "$MK.ours")
    OTHERS=$(echo $(other_labs_with "$MK.prev"))
    if [ -n "$OTHERS" ]; then
        log "$KEY stays as it is: lab(s) $OTHERS on this host still use it"
    elif [ -f "$P" ]; then
        CUR=$(cat "$P")
        if [ "$CUR" = "$OURS" ]; then
            if [ "$CUR" != "$PREV" ]; then printf '%s\n' "$PREV" > "$P"; log "restored $KEY = $PREV"; fi
        else
            log "left $KEY = $CUR in place: it changed since this lab set it to $OURS"
        fi
    fi
    m_del "$MK.prev"
    m_del "$MK.ours"
done
for F in "$STATE_DIR"/sysctl/*.absent; do
    if [ -f "$F" ]; then rm -f "$F"; fi
done
OURSHA=$(m_get sysctl/file.sha256)
if [ -n "$OURSHA" ] && [ -f "$FILE" ]; then
    if [ "$(sha_file "$FILE")" = "$OURSHA" ]; then rm -f "$FILE"; log "removed $FILE"; else log "left $FILE in place: it changed since this lab wrote it"; fi
fi
m_del sysctl/file.sha256
`;

export function sysctlScripts(lab: string): HostScripts {
    const vars = { FILE: labNames(lab).sysctlFile };
    return {
        create: hostScript(lab, "sysctl", vars, CREATE),
        delete: hostScript(lab, "sysctl", vars, DELETE),
    };
}
