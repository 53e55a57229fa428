// The Node.js language host of the Pulumi release the SDK is pinned to (node_modules/@pulumi/pulumi).
// Built by scripts/engine.sh; upstream's go.mod replaces pkg/v3 and sdk/v3 with relative paths only,
// which requiring them at the same release satisfies.
module kvm-ha-lab/engine/language-nodejs

go 1.25

require (
	github.com/pulumi/pulumi/pkg/v3 v3.248.0
	github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 v3.248.0
	github.com/pulumi/pulumi/sdk/v3 v3.248.0
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e

tool github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
