// pulumi-resource-command at the version npm installed for @pulumi/command (package.json ~1.2.1).
module kvm-ha-lab/engine/command

go 1.25

require github.com/pulumi/pulumi-command/provider v1.2.1

tool github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command
