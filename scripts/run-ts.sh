#!/usr/bin/env bash
# `bash scripts/run-ts.sh [node options] FILE.ts [args]`: runs one of the project's TypeScript commands with the
# project's own tsx loader (the same one Pulumi.yaml gives the program). On a fresh clone without node_modules it says
# in one line what to run, instead of `sh: tsx: not found`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -f "$root/node_modules/tsx/package.json" ]; then
    echo "kvm-ha-lab: the npm dependencies are not installed: run \`npm ci\` in $root first" >&2
    exit 127
fi
cd "$root"
exec node --import tsx "$@"
