#!/usr/bin/env bash
# `npm run lab [-- STACK [pulumi up options]]`: sets up and runs a lab stack (default: lab).
#   - needs the Pulumi CLI; without it, says how to install it and stops;
#   - uses local file state (Pulumi.yaml: backend file://~/.pulumi-kvm-ha-lab) with passphrase secrets:
#     export PULUMI_CONFIG_PASSPHRASE first (or Pulumi asks for it);
#   - creates the stack on first use, then runs `pulumi up` on it.
set -euo pipefail
cd "$(dirname "$0")/.."

stack="lab"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then stack="$1"; shift; fi

if ! command -v pulumi >/dev/null 2>&1; then
    echo "kvm-ha-lab: the Pulumi CLI is not installed; install it from https://www.pulumi.com/docs/install/ and run this again." >&2
    exit 127
fi
if [ ! -f "stacks/Pulumi.${stack}.yaml" ]; then
    echo "kvm-ha-lab: no stack file stacks/Pulumi.${stack}.yaml; stacks are: $(ls stacks | sed -n 's/^Pulumi\.\(.*\)\.yaml$/\1/p' | tr '\n' ' ')" >&2
    exit 64
fi
if [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi
# Validate and render first: a bad config stops here, before pulumi touches anything.
npm run --silent render -- --stack "$stack" --out ".render/$stack" >/dev/null
pulumi stack select --create "$stack" >/dev/null
exec pulumi up --stack "$stack" "$@"
