/**
 * Host scripts: POSIX sh `create`/`delete` pairs that the components run on hosts and guests through
 * @pulumi/command (see ./types and ./prelude for the conventions every script follows).
 */
export type { HostScripts } from "./types";
export { inlineLibrary, prelude, shq, shVars } from "./prelude";
export { packagesScripts } from "./packages";
export { libvirtdScripts } from "./libvirtd";
export { bridgeScripts } from "./bridge";
export { sysctlScripts } from "./sysctl";
export { firewallScripts } from "./firewall";
export {
    fenceVirtdScripts,
    renderFenceVirtdInitScript,
    renderFenceVirtdUnit,
    FENCE_VIRTD_BINARY,
    type FenceVirtdOptions,
} from "./fence-virtd";
export { fileScripts, type FileOptions } from "./file";
export { domainsBundle, domainsScripts, type BundledDomain, type DomainsOptions } from "./domains";
export { libraryScripts } from "./library";
export { domainStartScripts } from "./domain-start";
export { diskImageScripts } from "./disk-image";
export { claimScripts, type Claim } from "./claim";
