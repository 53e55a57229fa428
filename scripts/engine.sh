#!/usr/bin/env bash
# `npm run engine [-- PART...]`: builds the Pulumi engine this program runs under from the Go module proxy, cached by
# version in .engine/ (git-ignored). Parts (default: all of them):
#   pulumi            the CLI, module github.com/pulumi/pulumi/pkg/v3, version stamped in as the release build does
#   language-nodejs   the Node.js language host of the same release
#   command random tls  the provider plugins, at the versions npm installed for @pulumi/command, /random, /tls
# Each part is a small Go module in engine/<part> (go.mod, go.sum; no upstream source) that requires the upstream
# module and builds its command. The binaries land in .engine/v<CLI version>/bin: put that folder first on PATH and
# the engine finds the language host and the plugins there. A part whose inputs did not change is not rebuilt.
#   --print-bin   print the bin folder and exit (nothing is built)
# Exit status: 0 when every part asked for is built; 3 when a part could not be built (the reason is printed and
# kept in .engine/logs/<part>.log); 64 for a bad argument; 65 when engine/<part>/go.mod and node_modules disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# part | binary | main package | module (go.mod require) | npm package giving the version | ldflags variable for it
parts_table='
pulumi|pulumi|github.com/pulumi/pulumi/pkg/v3/cmd/pulumi|github.com/pulumi/pulumi/pkg/v3|@pulumi/pulumi|github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
language-nodejs|pulumi-language-nodejs|github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3|github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3|@pulumi/pulumi|github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
command|pulumi-resource-command|github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command|github.com/pulumi/pulumi-command/provider|@pulumi/command|github.com/pulumi/pulumi-command/provider/pkg/version.Version
random|pulumi-resource-random|github.com/pulumi/pulumi-random/provider/v4/cmd/pulumi-resource-random|github.com/pulumi/pulumi-random/provider/v4|@pulumi/random|github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version
tls|pulumi-resource-tls|github.com/pulumi/pulumi-tls/provider/v5/cmd/pulumi-resource-tls|github.com/pulumi/pulumi-tls/provider/v5|@pulumi/tls|github.com/pulumi/pulumi-tls/provider/v5/pkg/version.Version
'
all_parts=$(printf '%s\n' "$parts_table" | sed -n 's/^\([a-z-]*\)|.*/\1/p')

say() { echo "engine: $*" >&2; }

npm_version() {
    local pj="node_modules/$1/package.json"
    [ -f "$pj" ] || { say "$pj is missing: run npm ci first"; exit 65; }
    node -p "require('./$pj').version"
}

cli_version=$(npm_version @pulumi/pulumi)
cache="$root/.engine/v$cli_version"
bin="$cache/bin"

print_bin=false
want=()
for a in "$@"; do
    case "$a" in
        --print-bin) print_bin=true ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *)
            printf '%s\n' "$all_parts" | grep -qx -- "$a" || { say "unknown part '$a'; parts are: $(echo $all_parts)"; exit 64; }
            want+=("$a")
            ;;
    esac
done
if $print_bin; then echo "$bin"; exit 0; fi
[ ${#want[@]} -gt 0 ] || read -r -a want <<<"$(echo $all_parts)"

# Every provider package the program depends on needs a part here.
for dep in $(node -p "Object.keys(require('./package.json').dependencies).filter(d => d.startsWith('@pulumi/') && d !== '@pulumi/pulumi').map(d => d.slice(8)).join(' ')"); do
    printf '%s\n' "$all_parts" | grep -qx -- "$dep" || { say "package.json depends on @pulumi/$dep, which has no part in scripts/engine.sh and engine/$dep: add both"; exit 65; }
done

command -v go >/dev/null 2>&1 || { say "the go command is not installed (Go >= 1.25 with the Go module proxy is needed)"; exit 3; }
# Modules come from the Go module proxy only: no `direct` fallback to version control hosts, no toolchain download.
goproxy=$(go env GOPROXY | tr ',|' '\n\n' | grep -v -x -e direct -e off | paste -sd, -)
[ -n "$goproxy" ] || { say "go env GOPROXY is '$(go env GOPROXY)': no module proxy to build from"; exit 3; }
export GOPROXY="$goproxy" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
say "Go $(go env GOVERSION), GOPROXY=$GOPROXY, cache $cache"

mkdir -p "$bin" "$cache/stamps" "$root/.engine/logs"
start_all=$SECONDS
built=() cached=() blocked=()
for part in "${want[@]}"; do
    IFS='|' read -r _ binary pkg module npm_pkg version_var <<<"$(printf '%s\n' "$parts_table" | grep "^$part|")"
    dir="engine/$part"
    version="v$(npm_version "$npm_pkg")"
    required=$(sed -n "s#^[[:space:]]*\(require[[:space:]]\+\)\{0,1\}$module[[:space:]]\+\(v[^[:space:]]*\).*#\2#p" "$dir/go.mod" | head -1)
    if [ "$required" != "$version" ]; then
        say "$dir/go.mod requires $module ${required:-(nothing)} but npm installed $npm_pkg $version: set the require line to $version (and run 'go mod tidy' there)"
        exit 65
    fi
    ldflags="-s -w -X $version_var=$version"
    # What the binary is made of: module version, go.mod/go.sum, Go version, build settings.
    stamp="$module@$version $(cat "$dir/go.mod" "$dir"/go.sum 2>/dev/null | sha256sum | cut -c1-16) $(go env GOVERSION) CGO_ENABLED=$CGO_ENABLED -trimpath -ldflags '$ldflags'"
    if [ -x "$bin/$binary" ] && [ "$(cat "$cache/stamps/$part" 2>/dev/null)" = "$stamp" ]; then
        cached+=("$binary $version")
        continue
    fi
    log="$root/.engine/logs/$part.log"
    cmd=(go build -trimpath -ldflags "$ldflags" -o "$bin/.$binary.new" "$pkg")
    say "building $binary $version ($module) ..."
    t0=$SECONDS
    if (cd "$dir" && echo "+ (cd $dir && GOPROXY=$GOPROXY GOFLAGS='$GOFLAGS' CGO_ENABLED=0 ${cmd[*]})" && "${cmd[@]}") >"$log" 2>&1; then
        mv -f "$bin/.$binary.new" "$bin/$binary"
        echo "$stamp" >"$cache/stamps/$part"
        say "built $binary $version in $((SECONDS - t0))s"
        built+=("$binary $version ($((SECONDS - t0))s)")
    else
        rm -f "$bin/.$binary.new" "$cache/stamps/$part"
        say "FAILED $binary $version after $((SECONDS - t0))s: (cd $dir && ${cmd[*]})"
        grep -v '^+ ' "$log" | grep -v '^go: downloading' | head -8 | sed 's/^/engine:   /' >&2
        blocked+=("$binary $version: see $log")
    fi
done

[ ${#cached[@]} -eq 0 ] || say "cached: ${cached[*]}"
[ ${#built[@]} -eq 0 ] || say "built: ${built[*]}"
say "took $((SECONDS - start_all))s; binaries in $bin"
if [ ${#blocked[@]} -gt 0 ]; then
    say "NOT BUILT (the engine is incomplete; nothing was faked):"
    printf 'engine:   %s\n' "${blocked[@]}" >&2
    exit 3
fi
