// pulumi-resource-tls at the version npm installed for @pulumi/tls (package.json ~5.6.1).
module kvm-ha-lab/engine/tls

go 1.25

require github.com/pulumi/pulumi-tls/provider/v5 v5.6.1

tool github.com/pulumi/pulumi-tls/provider/v5/cmd/pulumi-resource-tls
