/**
 * LabSshKey: the lab's own SSH key pair (ed25519, @pulumi/tls PrivateKey), generated once and kept in the stack's
 * state. Its public key goes into every guest's cloud-init seed (root's authorized key); its private key (a secret)
 * is how the program reaches those guests, and how the user logs in:
 *   pulumi stack output --show-secrets labSshPrivateKey > lab.key && chmod 600 lab.key && ssh -i lab.key root@<address>
 */
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";

export class LabSshKey extends pulumi.ComponentResource {
    /** OpenSSH private key: a secret. */
    declare public readonly privateKeyOpenssh: pulumi.Output<string>;
    /** One OpenSSH public key line (`ssh-ed25519 AAAA…`). */
    declare public readonly publicKeyOpenssh: pulumi.Output<string>;

    constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
        super("kvmlab:index:LabSshKey", name, {}, opts);
        const key = new tls.PrivateKey(`${name}-key`, { algorithm: "ED25519" }, { parent: this });
        // The provider marks it secret; wrapping again keeps it secret whatever a provider or mock does.
        const privateKeyOpenssh = pulumi.secret(key.privateKeyOpenssh);
        const publicKeyOpenssh = key.publicKeyOpenssh.apply((k) => k.trim());
        this.privateKeyOpenssh = privateKeyOpenssh;
        this.publicKeyOpenssh = publicKeyOpenssh;
        this.registerOutputs({ publicKeyOpenssh });
    }
}
