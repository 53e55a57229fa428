#!/usr/bin/env bash
# `npm run lab [-- STACK [pulumi up options]]` and `npm run destroy [-- STACK [pulumi destroy options]]`
# (this script's first argument is the action, up or destroy; the default stack is lab):
#   - installs the npm dependencies first when node_modules is missing (the program and `npm run render` need them);
#   - up: validates and renders the stack (a bad config stops here, before pulumi touches anything), builds the
#     project's guest image when the stack boots guests from it and it is missing, creates the stack on first use, then
#     runs `pulumi up`; destroy: runs `pulumi destroy` on an existing stack;
#   - needs the Pulumi CLI: on PATH, or built here with `npm run engine` (.engine/); without it, says how to get it;
#   - uses local file state (Pulumi.yaml: backend file://~/.pulumi-kvm-ha-lab) with passphrase secrets:
#     export PULUMI_CONFIG_PASSPHRASE first (or Pulumi asks for it).
set -euo pipefail
cd "$(dirname "$0")/.."

action="${1:-up}"
shift || true
case "$action" in
    up|destroy) ;;
    *) echo "kvm-ha-lab: unknown action '$action': use up or destroy" >&2; exit 64 ;;
esac
stack="lab"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then stack="$1"; shift; fi

if [ ! -f "stacks/Pulumi.${stack}.yaml" ]; then
    echo "kvm-ha-lab: no stack file stacks/Pulumi.${stack}.yaml; stacks are: $(ls stacks | sed -n 's/^Pulumi\.\(.*\)\.yaml$/\1/p' | tr '\n' ' ')" >&2
    exit 64
fi
if [ ! -f node_modules/tsx/package.json ]; then
    echo "kvm-ha-lab: installing the npm dependencies (npm ci)" >&2
    npm ci --no-audit --no-fund
fi
# The engine `npm run engine` builds (for the version package.json pins), when the Pulumi CLI is not installed. Its
# plugins are the ones built beside it: the CLI must not try to download others.
if ! command -v pulumi >/dev/null 2>&1; then
    bin=$(bash scripts/engine.sh --print-bin 2>/dev/null || true)
    if [ -n "$bin" ] && [ -x "$bin/pulumi" ]; then
        PATH="$bin:$PATH"
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
        PULUMI_SKIP_UPDATE_CHECK=true
        export PATH PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION PULUMI_SKIP_UPDATE_CHECK
    fi
fi
if ! command -v pulumi >/dev/null 2>&1; then
    echo "kvm-ha-lab: the Pulumi CLI is not installed; install it from https://www.pulumi.com/docs/install/ (or build it here with \`npm run engine\`) and run this again." >&2
    exit 127
fi

if [ "$action" = destroy ]; then
    if ! pulumi stack select "$stack" >/dev/null 2>&1; then
        echo "kvm-ha-lab: stack $stack does not exist in this backend: nothing to destroy" >&2
        exit 0
    fi
    exec pulumi destroy --stack "$stack" "$@"
fi
# Validate and render first: a bad config stops here, before pulumi touches anything.
npm run --silent render -- --stack "$stack" --out ".render/$stack" >/dev/null
# The project's guest image (npm run image), when the stack boots guests from it and it is not built yet.
image_dir="${KVMLAB_IMAGE_DIR:-/var/lib/libvirt/images/kvm-ha-lab-debian12}"
if grep -q "${image_dir##*/}/" "stacks/Pulumi.${stack}.yaml" && [ ! -e "$image_dir/disk.qcow2" ]; then
    echo "kvm-ha-lab: building the guest image first (npm run image: Debian packages, about a minute)" >&2
    bash scripts/guest-image.sh >/dev/null
fi
pulumi stack select --create "$stack" >/dev/null
exec pulumi up --stack "$stack" "$@"
