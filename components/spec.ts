/**
 * The resolved lab specification: plain, validated values with every default applied.
 *
 * `validateLabConfig` (components/config.ts) turns a stack's raw config into a `LabSpec`; renderers and components
 * only ever see a `LabSpec`. Nothing here is a Pulumi Input/Output: secrets are not part of the spec, only the names of
 * the config keys that hold them.
 */

/** How commands reach a machine. Exactly one place (components/machine.ts) turns this into a Pulumi command. */
export type Connection =
    | { kind: "local" }
    | {
          kind: "ssh";
          address: string;
          user: string;
          port: number;
          /** Name of the secret stack config key holding the PEM/OpenSSH private key. */
          privateKeySecret: string;
      };

export type SshConnection = Extract<Connection, { kind: "ssh" }>;

export interface BridgeSpec {
    /** Linux bridge name, at most 15 characters. */
    name: string;
    /** A physical NIC to enslave to the bridge. */
    uplink?: string;
    /** The host's address on the bridge, as CIDR (e.g. 10.99.0.1/24). */
    address?: string;
}

export interface HostSpec {
    name: string;
    connection: Connection;
    bridge: BridgeSpec;
    /** Install libvirt, qemu and fence-virtd with the host's package manager (dnf, yum or apt-get). */
    installPackages: boolean;
}

export type HashAlgorithm = "none" | "sha1" | "sha256" | "sha512";

export interface FencingSpec {
    listener: "multicast";
    multicast: {
        address: string;
        port: number;
        family: "ipv4";
    };
    hash: HashAlgorithm;
    auth: HashAlgorithm;
    /** Absolute path of the fence key on every host and every guest. */
    keyFile: string;
    /** Rotation counter: a new value generates a new key and delivers it everywhere. */
    keyVersion: number;
    /** The cluster network (CIDR, network address form) the fence requests come from. */
    subnet: string;
}

export interface GuestClusterSpec {
    /** cman cluster name, at most 15 characters. */
    name: string;
    /** Guest names; each is also the libvirt domain name and the cluster node name. */
    nodes: string[];
    fencing: FencingSpec;
}

export type DiskBus = "virtio" | "sata" | "scsi" | "ide";
export type ImageFormat = "qcow2" | "raw";

export interface DiskSpec {
    /** Absolute path of the image on the host. */
    path: string;
    format: ImageFormat;
    bus: DiskBus;
    /** Guest device name, e.g. vda. */
    target: string;
    /** When set, the image is created (with qemu-img) on the placement host if it does not exist. */
    createSizeGiB?: number;
}

export type NicModel = "virtio" | "e1000" | "rtl8139";

export interface NicSpec {
    bridge: string;
    mac: string;
    model: NicModel;
}

export type DomainType = "kvm" | "qemu";

export type GuestDefinition =
    | {
          kind: "rendered";
          memoryMiB: number;
          vcpus: number;
          domainType: DomainType;
          uuid: string;
          disks: DiskSpec[];
          nics: NicSpec[];
      }
    | {
          /** The user's own domain XML, used as-is. */
          kind: "file";
          path: string;
          xml: string;
      };

export interface GuestSpec {
    /** libvirt domain name = cluster node name = this name. */
    name: string;
    /** The host the guest starts on. */
    host: string;
    definition: GuestDefinition;
    /** How to reach the guest's OS to deliver the fence key and cluster.conf. */
    connection?: SshConnection;
}

export type Recovery = "restart" | "relocate" | "disable";

export interface HostFenceDeviceSpec {
    name: string;
    /** Fence agent, e.g. fence_ipmilan. */
    agent: string;
    /** The host this device fences. */
    host: string;
    /** Agent parameters rendered as attributes (never the password). */
    params: Record<string, string>;
    /** Name of the secret stack config key holding the device password (rendered as `passwd`). */
    passwordSecret?: string;
}

export interface FailoverDomainSpec {
    name: string;
    ordered: boolean;
    restricted: boolean;
    nofailback: boolean;
    members: { host: string; priority?: number }[];
}

export interface VmServiceSpec {
    /** The guest (= domain) this service runs. */
    guest: string;
    autostart: boolean;
    exclusive: boolean;
    recovery: Recovery;
    maxRestarts: number;
    restartExpireTime: number;
    failoverDomain?: string;
}

export interface HostClusterSpec {
    name: string;
    fenceDevices: HostFenceDeviceSpec[];
    failoverDomains: FailoverDomainSpec[];
    vmServices: VmServiceSpec[];
}

export interface XmlDirSpec {
    /** Directory holding `<domain>.xml` for every guest (rgmanager's vm `path`). */
    path: string;
    /** True when the directory is on storage shared by all hosts (GFS2, NFS): then it is written once. */
    shared: boolean;
}

export interface LabSpec {
    /** Pulumi stack name; feeds the derived MACs and UUIDs. */
    stack: string;
    /** Short identifier of this lab on its hosts: names its firewall chains, state directory and fence_virtd instance. */
    lab: string;
    hosts: HostSpec[];
    guests: GuestSpec[];
    guestCluster: GuestClusterSpec;
    hostCluster?: HostClusterSpec;
    xmlDir: XmlDirSpec;
}
