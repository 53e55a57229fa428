// pulumi-resource-random at the version npm installed for @pulumi/random (package.json ~4.21.2).
module kvm-ha-lab/engine/random

go 1.25

require github.com/pulumi/pulumi-random/provider/v4 v4.21.2

tool github.com/pulumi/pulumi-random/provider/v4/cmd/pulumi-resource-random
