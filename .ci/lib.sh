# Functions .ci/run uses, kept apart so that tests can run them (test/e2e/ci-lib.test.ts, test/unit/ci-totals.test.ts).

# apt_get ARGS...: apt-get that waits for the package manager's locks while another apt or dpkg run holds them (up to
# KVMLAB_APT_LOCK_WAIT seconds, default 900), instead of failing at once; other failures fail at once.
apt_get() {
    local wait="${KVMLAB_APT_LOCK_WAIT:-900}" start=$SECONDS out rc
    while :; do
        rc=0
        out=$(apt-get -o DPkg::Lock::Timeout=10 "$@" 2>&1) || rc=$?
        if [ "$rc" = 0 ]; then
            [ -z "$out" ] || printf '%s\n' "$out" | grep -v -e '^Selecting\|^Preparing\|^Unpacking\|^Setting up\|^Processing\|^(Reading' || true
            return 0
        fi
        if printf '%s' "$out" | grep -q -e 'Could not get lock' -e 'Unable to acquire the dpkg frontend lock' -e 'Unable to lock directory' -e 'is held by process'; then
            if [ $((SECONDS - start)) -ge "$wait" ]; then
                echo "ci: apt-get $*: the package manager is still locked by another run after ${wait} s; wait for it to finish (or end it) and run again" >&2
                printf '%s\n' "$out" | tail -n 3 >&2
                return 1
            fi
            echo "ci: waiting for the package manager lock held by another apt/dpkg run ($((SECONDS - start)) s)" >&2
            sleep 5
            continue
        fi
        printf '%s\n' "$out" >&2
        return "$rc"
    done
}

# test_totals DIR: adds up the vitest JSON results in DIR and prints the closing line "N passed, N failed, N skipped".
# A test that never ran (its file or a hook failed) counts as failed, and so does a run vitest itself calls
# unsuccessful (e.g. an unhandled error). Exit status 1 when a test failed, when none ran, or when CI is set and a test
# was skipped (under CI a missing tool must fail its test, never skip it).
test_totals() {
    node - "$1" <<'NODE'
const { readdirSync, readFileSync } = require("node:fs");
const { join } = require("node:path");
const dir = process.argv[2];
const t = { passed: 0, failed: 0, skipped: 0, unsuccessful: 0 };
const skippedNames = [];
for (const f of readdirSync(dir).filter((f) => f.endsWith(".json")).sort()) {
    const r = JSON.parse(readFileSync(join(dir, f), "utf8"));
    const counted = r.numPassedTests + r.numFailedTests + r.numPendingTests + r.numTodoTests;
    t.passed += r.numPassedTests;
    // tests vitest lists but never ran (a failed beforeAll, a file that did not load) are failures
    t.failed += r.numFailedTests + Math.max(0, r.numTotalTests - counted) + (r.numFailedTestSuites > 0 && r.numFailedTests === 0 && r.numTotalTests === counted ? 1 : 0);
    t.skipped += r.numPendingTests + r.numTodoTests;
    if (r.success === false) t.unsuccessful++;
    for (const file of r.testResults ?? [])
        for (const a of file.assertionResults ?? []) if (a.status === "skipped" || a.status === "todo" || (a.status === "pending" && r.numPendingTests > 0)) skippedNames.push(`${file.name}: ${a.fullName}`);
}
if (process.env.CI && t.skipped > 0) for (const n of skippedNames) console.error(`ci: skipped under CI: ${n}`);
if (t.unsuccessful > 0) console.error(`ci: ${t.unsuccessful} vitest run(s) ended unsuccessful (an unhandled error or a failed file)`);
console.log(`${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`);
process.exit(t.failed > 0 || t.unsuccessful > 0 || t.passed === 0 || (process.env.CI && t.skipped > 0) ? 1 : 0);
NODE
}
