/**
 * The lab's own iptables chains (`labNames(lab).chains`), filled and hooked from INPUT/OUTPUT/FORWARD.
 * stdin: an iptables-restore file for the filter table that declares (`:CHAIN - [0:0]`) only this lab's chains, appends
 * rules to them, and hooks them with rules in INPUT/OUTPUT/FORWARD whose target is one of them (`-I INPUT 1 -j CHAIN`).
 *
 * Create: the file is checked (only this lab's chains, only the filter table) and validated with
 * `iptables-restore --test --noflush` before anything changes; a chain that exists without our marker
 * (`firewall/chain/<chain>`) is refused. Then every hook rule that jumps to one of our chains is removed, chains the
 * file no longer declares are deleted, and the file is applied with `iptables-restore --noflush` (which flushes and
 * refills each declared chain). Running it again gives the same ruleset.
 * Delete: removes the hook rules, then flushes and deletes our chains only.
 *
 * The filter table itself: on a fresh nf_tables host there is no `filter` table (or only some of its base chains)
 * until something adds a rule, and `iptables-restore --noflush` creates the table and the base chains INPUT, FORWARD
 * and OUTPUT. Before its first change, create records (`firewall/nft/table`, `firewall/nft/chain/<base>`) what did not
 * exist yet. Delete removes a recorded base chain once it holds no rule and its policy is still accept, and a recorded
 * table once it holds no chain: nothing the user or another program added is touched. While another lab's hooks still
 * use them, the records are handed to that lab, so they go with the last lab. This needs `nft` (package nftables);
 * without it, the table stays (logged). The legacy (x_tables) backend cannot remove a table at all: the kernel makes
 * an empty one on the first look into it, in every network namespace.
 */
import { labNames } from "../names";
import { hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";

const FUNCTIONS = sh`
have iptables || die "iptables is not installed: install iptables"
have iptables-restore || die "iptables-restore is not installed: install iptables"
work_dir
W=''
if iptables -w -n -L INPUT >/dev/null 2>&1; then W='-w'; fi
OURS="$CIN $COUT $CFWD"
chain_exists() { iptables $W -n -L "$1" >/dev/null 2>&1; }
# unhook CHAIN: deletes every rule of INPUT, OUTPUT and FORWARD whose target is CHAIN (highest number first).
unhook() {
    for _b in INPUT OUTPUT FORWARD; do
        for _n in $(iptables $W -n -L "$_b" --line-numbers | awk -v c="$1" 'NR > 2 && $2 == c {print $1}' | sort -rn); do
            iptables $W -D "$_b" "$_n"
        done
    done
}
# drop_chains CHAIN...: unhooks and flushes each chain our markers say is ours, then deletes them.
drop_chains() {
    _dc=''
    for _c in "$@"; do
        m_has "firewall/chain/$_c" || continue
        if chain_exists "$_c"; then unhook "$_c"; iptables $W -F "$_c"; _dc="$_dc $_c"; fi
    done
    for _c in $_dc; do
        iptables $W -X "$_c" 2>"$WORK/err" || die "cannot delete chain $_c: $(tr '\n' ' ' < "$WORK/err")- another rule still jumps to it (iptables-save | grep -- '-j $_c'): remove that rule and run again"
        log "deleted chain $_c"
    done
    for _c in "$@"; do m_del "firewall/chain/$_c"; done
}
# ---- the filter table and its base chains, on nf_tables (see the header)
BASE='INPUT FORWARD OUTPUT'
nft_ok() { case "$(iptables -V 2>/dev/null)" in *nf_tables*) have nft ;; *) return 1 ;; esac; }
# record_created: remembers the table and base chains that do not exist yet (only the first create records).
record_created() {
    case "$(iptables -V 2>/dev/null)" in *nf_tables*) ;; *) return 0 ;; esac
    if ! have nft; then
        nft list table ip filter >/dev/null 2>&1 || log "nft (package nftables) is not installed: the filter table this firewall creates stays after delete"
        return 0
    fi
    if ! nft list table ip filter >/dev/null 2>&1; then m_has firewall/nft/table || m_put firewall/nft/table created; fi
    for _b in $BASE; do
        if ! nft list chain ip filter "$_b" >/dev/null 2>&1; then m_has "firewall/nft/chain/$_b" || m_put "firewall/nft/chain/$_b" created; fi
    done
}
# unused_chain BASE: the base chain holds no rule and its policy is accept. unused_table: the table holds nothing.
unused_chain() {
    nft list chain ip filter "$1" 2>/dev/null | awk -v c="$1" '
        /^[ \t]*$/ || /^table ip filter \{$/ || /^[ \t]*\}$/ { next }
        $0 ~ "^[ \t]*chain " c " \\{$" { next }
        /^[ \t]*type filter hook [a-z]+ priority [^;]+; policy accept;$/ { next }
        { bad = 1 } END { exit bad }'
}
unused_table() { nft list table ip filter 2>/dev/null | awk '/^table ip filter \{$/ || /^\}$/ || /^[ \t]*$/ { next } { bad = 1 } END { exit bad }'; }
# hand_over KEY: gives a record to another lab that still has chains here (it goes with that lab), else drops it.
hand_over() {
    _ho=$(other_labs_with firewall/chain | head -n 1)
    if [ -n "$_ho" ]; then
        mkdir -p "$(dirname "$STATE_ROOT/$_ho/$1")" && printf 'created\n' > "$STATE_ROOT/$_ho/$1"
        log "left $2 in place for lab $_ho, whose rules still use it"
    else
        log "left $2 in place: something other than kvm-ha-lab uses it now"
    fi
    m_del "$1"
}
release_created() {
    for _b in $BASE; do
        m_has "firewall/nft/chain/$_b" || continue
        if ! nft_ok || ! nft list chain ip filter "$_b" >/dev/null 2>&1; then m_del "firewall/nft/chain/$_b"; continue; fi
        if unused_chain "$_b"; then
            nft delete chain ip filter "$_b" && log "deleted the base chain $_b it created" && m_del "firewall/nft/chain/$_b"
        else
            hand_over "firewall/nft/chain/$_b" "the base chain $_b"
        fi
    done
    m_has firewall/nft/table || return 0
    if ! nft_ok || ! nft list table ip filter >/dev/null 2>&1; then m_del firewall/nft/table; return 0; fi
    if unused_table; then
        nft delete table ip filter && log "deleted the filter table it created" && m_del firewall/nft/table
    else
        hand_over firewall/nft/table "the filter table"
    fi
}
`;

const CREATE = sh`
read_stdin
# ---- the file may only touch this lab's chains, in the filter table
awk -v ours="$OURS" '
    function bad(m) { print "line " NR ": " m; exit 1 }
    BEGIN { n = split(ours, a, " "); for (i = 1; i <= n; i++) mine[a[i]] = 1 }
    /^[ \t]*(#.*)?$/ { next }
    /^\*/ { if ($1 != "*filter") bad("only the filter table may be used, not " $1); next }
    /^COMMIT[ \t]*$/ { next }
    /^:/ { c = substr($1, 2); if (!(c in mine)) bad("declares chain " c ", which is not one of this lab'"'"'s chains (" ours ")"); next }
    /^-[AI][ \t]/ {
        if ($2 in mine) next
        if ($2 == "INPUT" || $2 == "OUTPUT" || $2 == "FORWARD") {
            t = ""
            for (i = 3; i < NF; i++) if ($i == "-j" || $i == "-g" || $i == "--jump" || $i == "--goto") t = $(i + 1)
            if (t in mine) next
            bad("a rule in " $2 " must jump to one of this lab'"'"'s chains: " $0)
        }
        bad("a rule in chain " $2 ", which is not one of this lab'"'"'s chains: " $0)
    }
    { bad("not allowed in the lab firewall: " $0) }
' "$WORK/stdin" > "$WORK/check" || die "the firewall rules touch more than this lab's chains: $(cat "$WORK/check")"
DECLARED=$(sed -n 's/^:\([^ \t]*\).*/\1/p' "$WORK/stdin")
[ -n "$DECLARED" ] || die "the firewall rules declare none of this lab's chains ($OURS): pass the rendered iptables-restore file"
iptables-restore $W --test --noflush < "$WORK/stdin" 2>"$WORK/err" || iptables-restore --test --noflush < "$WORK/stdin" 2>"$WORK/err" \
    || die "iptables-restore rejects the firewall rules: $(head -c 600 "$WORK/err" | tr '\n' ' ')"
for C in $OURS; do
    if chain_exists "$C" && ! m_has "firewall/chain/$C"; then
        die "iptables chain $C exists but was not created by kvm-ha-lab lab $LAB: rename or remove it (iptables -F $C; iptables -X $C), or choose another lab name"
    fi
done

# ---- changes
record_created
UNDECLARED=''
for C in $OURS; do
    case " $(echo $DECLARED) " in
        *" $C "*) m_put "firewall/chain/$C" "created"; if chain_exists "$C"; then unhook "$C"; fi ;;
        *) UNDECLARED="$UNDECLARED $C" ;;
    esac
done
iptables-restore $W --noflush < "$WORK/stdin" 2>"$WORK/err" || iptables-restore --noflush < "$WORK/stdin" 2>"$WORK/err" \
    || die "iptables-restore failed to apply the firewall rules: $(head -c 600 "$WORK/err" | tr '\n' ' ')"
# chains an earlier version of the rules declared and this one does not
drop_chains $UNDECLARED
log "applied the lab firewall: chains $(echo $DECLARED), $(grep -c '^-[AI]' "$WORK/stdin") rules"
`;

const DELETE = sh`
drop_chains $OURS
release_created
`;

export function firewallScripts(lab: string): HostScripts {
    const { chains } = labNames(lab);
    const vars = { CIN: chains.input, COUT: chains.output, CFWD: chains.forward };
    return {
        create: hostScript(lab, "firewall", vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, "firewall", vars, FUNCTIONS + DELETE),
    };
}
