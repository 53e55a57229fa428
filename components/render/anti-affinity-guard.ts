/**
 * The anti-affinity guard: a POSIX sh script rgmanager runs as the first `<script>` resource of every member of an
 * anti-affinity group in the guest cluster (the member's own resources are nested inside it, so none of them starts
 * before the guard has agreed). It makes the anti-affinity post's "collision" check real:
 *
 * - `start`: reads `clustat` and exits 1, naming the other member, when another member of the group already runs on
 *   this node. rgmanager then stops what it started of the service here and tries the next node of the member's
 *   failover domain ("relocate on start failure"), so the members end up on different nodes. Otherwise exits 0.
 * - `stop`, `status` and anything else: exit 0. The guard holds no state, so a member that already runs is never
 *   failed by it (the anti-affinity post's variant, which lets `start` succeed and fails the next `status`, restarts the service
 *   once more on the same node before it moves; refusing the start moves it at once).
 *
 * How clustat is read (format from rgmanager's clustat.c, non-tty output; see test/fixtures/clustat/*.txt):
 * - this node is the member row whose status has `Local` (`Online, Local, rgmanager`); without one (clustat run on a
 *   node that is not a member) `uname -n` is used, also compared by short name;
 * - a service row is `<name> <owner> <state> [flags]`, split on blanks; an owner in parentheses `(node)` is only the
 *   last owner (stopped, disabled, failed, recoverable services), `none`/`unknown` is no owner: none of these counts;
 *   any other owner runs the service (started, starting, stopping, migrating, recovering with an owner);
 * - names may come with or without the `service:` prefix (clustat strips it on a tty), owners truncated to 30
 *   characters (the non-tty column width), which is why member names are limited to CLUSTAT_SERVICE_NAME_MAX.
 * When clustat is missing or prints no service table, the guard cannot tell: it allows the start and says so.
 *
 * Pure: plain values in, script text out; the same input gives the same text.
 */
import { ANTI_AFFINITY_GUARD_SCRIPT_PREFIX } from "../cluster-model";
import { shq } from "../scripts/prelude";
import type { LabSpec } from "../spec";

/** Directory root of the guard scripts on the guest cluster's nodes. */
export const GUARD_ROOT = "/usr/local/libexec/kvm-ha-lab";

const LABEL = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const LAB = /^[a-z][a-z0-9-]{0,14}$/;

/** Where the guard of `service` lives on every guest cluster node. */
export function guardScriptPath(lab: string, service: string): string {
    return `${GUARD_ROOT}/${lab}/guard-${service}`;
}

/** The guard's `<script name>` in cluster.conf (rgmanager identifies script resources by name). */
export function guardResourceName(service: string): string {
    return `${ANTI_AFFINITY_GUARD_SCRIPT_PREFIX}${service}`;
}

export interface GuardInput {
    lab: string;
    /** The anti-affinity group's name (for messages). */
    group: string;
    /** The guarded service (its rgmanager name, without `service:`). */
    service: string;
    /** The group's other members. */
    others: string[];
}

const BODY = String.raw`
case "${"$"}{1:-}" in
    start) ;;
    *) exit 0 ;;
esac
PATH="${"$"}{PATH:-/usr/bin:/bin}:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH
say() {
    printf '%s\n' "kvm-ha-lab anti-affinity $*" >&2
    logger -t kvm-ha-lab -p daemon.notice "anti-affinity $*" 2>/dev/null || true
}
if ! command -v clustat >/dev/null 2>&1; then
    say "group $GROUP: clustat is not installed, so $SERVICE cannot be checked against $OTHERS; starting it"
    exit 0
fi
OUT=$(clustat 2>/dev/null) || true
case "$OUT" in
    *"Service Name"*) ;;
    *) say "group $GROUP: clustat printed no service table, so $SERVICE cannot be checked against $OTHERS; starting it"
       exit 0 ;;
esac
RESULT=$(printf '%s\n' "$OUT" | awk -v others="$OTHERS" -v fallback="$(uname -n 2>/dev/null)" '
    function short(n) { sub(/\..*$/, "", n); return n }
    BEGIN { n = split(others, o, " "); for (i = 1; i <= n; i++) want[o[i]] = 1 }
    /^[ \t]*Member Name/ { sec = "m"; next }
    /^[ \t]*Service Name/ { sec = "s"; next }
    /^[ \t]*$/ { sec = ""; next }
    /^[ \t]*-/ { next }
    sec == "m" {
        st = $0
        sub(/^[ \t]*[^ \t]+[ \t]+[0-9]+[ \t]+/, "", st)
        gsub(/[ \t]+$/, "", st)
        if (index(", " st ",", ", Local,") > 0) local = $1
        next
    }
    sec == "s" {
        name = $1
        if (index(name, ":") == 0) name = "service:" name
        rows++; rn[rows] = name; ro[rows] = $2; rs[rows] = $3
    }
    END {
        fuzzy = 0
        if (local == "") { local = fallback; fuzzy = 1 }
        print local
        for (r = 1; r <= rows; r++) {
            if (!(rn[r] in want)) continue
            ow = ro[r]
            if (ow == "" || ow ~ /^\(/ || ow == "none" || ow == "unknown") continue
            if (rs[r] ~ /^(stopped|disabled|failed|recoverable|uninitialized)$/) continue
            if (ow == substr(local, 1, 30) || (fuzzy && short(ow) == short(local))) print rn[r] " (" rs[r] ")"
        }
    }')
LOCAL=$(printf '%s\n' "$RESULT" | sed -n '1p')
HITS=$(printf '%s\n' "$RESULT" | sed '1d' | tr '\n' ' ' | sed 's/ *$//')
if [ -n "$HITS" ]; then
    say "group $GROUP: refusing to start $SERVICE on $LOCAL: $HITS already runs on this node; rgmanager will try another node"
    exit 1
fi
exit 0
`;

/** The guard script of `input.service`: POSIX sh, run by rgmanager's script.sh as `<file> start|stop|status`. */
export function renderAntiAffinityGuard(input: GuardInput): string {
    if (!LAB.test(input.lab)) throw new Error(`guard: lab name ${JSON.stringify(input.lab)} is invalid`);
    for (const name of [input.group, input.service, ...input.others]) {
        if (!LABEL.test(name)) throw new Error(`guard: ${JSON.stringify(name)} is not a valid group or service name`);
    }
    if (input.others.length === 0) throw new Error(`guard: service ${input.service} has no other members to keep apart from`);
    if (input.others.includes(input.service)) throw new Error(`guard: service ${input.service} lists itself among the others`);
    const qualified = (s: string) => `service:${s}`;
    return (
        "#!/bin/sh\n" +
        `# kvm-ha-lab anti-affinity guard (lab ${input.lab}): the first <script> resource of ${qualified(input.service)}.\n` +
        `# start refuses (exit 1) while another member of group ${input.group} (${input.others.map(qualified).join(", ")}) runs on\n` +
        "# this node according to clustat, so rgmanager relocates the service; stop and status always succeed.\n" +
        "# Generated by kvm-ha-lab: do not edit (the next `pulumi up` replaces it).\n" +
        "set -u\n" +
        `SERVICE=${shq(qualified(input.service))}\n` +
        `GROUP=${shq(input.group)}\n` +
        `OTHERS=${shq(input.others.map(qualified).join(" "))}\n` +
        BODY.replace(/^\n/, "")
    );
}

export interface GuardFile {
    group: string;
    service: string;
    /** Where it goes on every guest cluster node. */
    path: string;
    text: string;
}

/** The guest cluster's anti-affinity guard scripts: one per member of every group, in group and member order. */
export function guardFiles(spec: LabSpec): GuardFile[] {
    return spec.guestCluster.antiAffinity.flatMap((g) =>
        g.services.map((service) => ({
            group: g.name,
            service,
            path: guardScriptPath(spec.lab, service),
            text: renderAntiAffinityGuard({ lab: spec.lab, group: g.name, service, others: g.services.filter((s) => s !== service) }),
        })),
    );
}
