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
          /**
           * Name of the secret stack config key holding the PEM/OpenSSH private key; undefined (guests only): the
           * lab's own generated key pair, whose public key the guest's cloud-init seed authorizes.
           */
          privateKeySecret?: string;
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

/**
 * fence_virtd's listener, and with it the guests' fence agent: `multicast` (fence_xvm, requests to a multicast group
 * on the bridge, fence_virtd connects back), `tcp` (fence_virt connects to the host's bridge address) or `vsock`
 * (fence_virt connects to the host over the guest's virtio vsock device, CID 2; no guest network needed).
 */
export type FenceListener = "multicast" | "tcp" | "vsock";

export interface FencingSpec {
    listener: FenceListener;
    multicast: {
        address: string;
        port: number;
        family: "ipv4";
    };
    /** The tcp listener: bound to each host's bridge address (family ipv4), on this port. */
    tcp: { port: number };
    /** The vsock listener: bound to every CID of the host, on this port. */
    vsock: { port: number };
    hash: HashAlgorithm;
    auth: HashAlgorithm;
    /** Absolute path of the fence key on every host and every guest. */
    keyFile: string;
    /** Rotation counter: a new value generates a new key and delivers it everywhere. */
    keyVersion: number;
    /** The cluster network (CIDR, network address form) the fence requests come from. */
    subnet: string;
}

/**
 * The cluster stack a cluster's configuration is rendered for: `cman` (cman + rgmanager: cluster.conf, RHEL/CentOS
 * 5-6) or `pacemaker` (corosync 3 + Pacemaker: corosync.conf, an authkey and a CIB; RHEL 7+, Debian, Ubuntu, SUSE).
 */
export type ClusterStack = "cman" | "pacemaker";

export interface GuestClusterSpec {
    /** cman cluster name, at most 15 characters. */
    name: string;
    /** cman (cluster.conf) or pacemaker (corosync.conf + CIB). */
    stack: ClusterStack;
    /** Guest names; each is also the libvirt domain name and the cluster node name. */
    nodes: string[];
    /**
     * Fence level 1 of every node: its own device (victim = the node's libvirt domain), fence_xvm for the multicast
     * listener, fence_virt for tcp and vsock.
     */
    fencing: FencingSpec;
    /** Further `<fencedevice>`s (fence_xvm over another listener, fence_virt), used by `fenceLevels`. */
    fenceDevices: GuestFenceDeviceSpec[];
    /** Fence levels tried after level 1, in order (level 2, 3, ...); each applies to every node. */
    fenceLevels: GuestFenceLevelSpec[];
    /** Who wins a fencing race (two-node clusters get one by default); undefined = no delay. */
    fenceDelay?: FenceDelaySpec;
    fenceDaemon: FenceDaemonSpec;
    totem: TotemSpec;
    failoverDomains: GuestFailoverDomainSpec[];
    /** rgmanager services of the guest cluster's own applications. */
    services: ClusterServiceSpec[];
    /** Groups of services that must never run on the same node. */
    antiAffinity: AntiAffinitySpec[];
}

/** A guest cluster fence device beyond the built-in fence_xvm of level 1. Agents that need no password only. */
export interface GuestFenceDeviceSpec {
    /** `<fencedevice name>`: an XML name, unique in the file. */
    name: string;
    agent: "fence_xvm" | "fence_virt";
    /** Agent parameters rendered on the `<fencedevice>` (e.g. multicast_address, key_file). */
    params: Record<string, string>;
}

export interface GuestFenceLevelSpec {
    /** The devices of this level (one `<method>`), tried in order; all must succeed. */
    devices: {
        /** A `guestCluster.fenceDevices` name. */
        device: string;
        /** Victim per node (fence_xvm/fence_virt `domain`); a node not listed is its own domain name. */
        ports: Record<string, string>;
    }[];
}

/**
 * fence `delay` for a fencing race: the first device of `node`'s first fence level waits `seconds` before it powers
 * `node` off, so when both nodes of a split two-node cluster fence each other at once, `node` survives.
 */
export interface FenceDelaySpec {
    node: string;
    seconds: number;
}

/** fenced(8) settings (`<fence_daemon>`), in seconds. */
export interface FenceDaemonSpec {
    postJoinDelay: number;
    postFailDelay: number;
    /** Skip startup fencing of nodes that have not joined (fenced `clean_start`). */
    cleanStart?: boolean;
}

/** corosync totem settings (`<totem>`); unset values keep cman's defaults. */
export interface TotemSpec {
    /** Milliseconds without the token before a node is declared lost. */
    token?: number;
}

export interface GuestFailoverDomainSpec {
    name: string;
    ordered: boolean;
    restricted: boolean;
    nofailback: boolean;
    members: { node: string; priority?: number }[];
}

/** rgmanager's "independent subtree" settings of a child resource (`__independent_subtree` and friends). */
export interface SubtreeSpec {
    /** "restart": a failure restarts only this resource; "non-critical": a failure stops it, the service goes on. */
    independentSubtree?: "restart" | "non-critical";
    /** `__max_restarts` of this subtree. */
    maxRestarts?: number;
    /** `__restart_expire_time` of this subtree, seconds. */
    restartExpireTime?: number;
    /** `__enforce_timeouts`: a start/stop/status over its timeout counts as a failure. */
    enforceTimeouts?: boolean;
}

export interface ServiceIpSpec extends SubtreeSpec {
    /** IPv4 address, optionally with /prefix. */
    address: string;
    monitorLink: boolean;
}

export interface ServiceScriptSpec extends SubtreeSpec {
    /** Resource name, unique among the cluster's scripts. */
    name: string;
    /** Absolute path of an init-style script (start|stop|status). */
    file: string;
}

export type DependMode = "hard" | "soft";

/** An rgmanager `<service>` of the guest cluster. */
export interface ClusterServiceSpec {
    name: string;
    failoverDomain?: string;
    autostart: boolean;
    exclusive: boolean;
    recovery: Recovery;
    maxRestarts: number;
    restartExpireTime: number;
    /** Another service of this cluster that must run first (`depend="service:<name>"`). */
    depend?: string;
    dependMode?: DependMode;
    ips: ServiceIpSpec[];
    scripts: ServiceScriptSpec[];
}

/**
 * Services that must never run on the same node. Each member gets its own ordered failover domain whose preferred
 * node differs (rotated through the cluster's nodes); in the guest cluster a guard script also refuses to start a
 * member on a node where another member runs.
 */
export interface AntiAffinitySpec {
    name: string;
    /** Guest cluster: service names. Host cluster: guests of VM services. */
    services: string[];
    /** Move a member back to its preferred node when that node returns (`nofailback="0"`). */
    failback: boolean;
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
    /** Destroy leaves the image it created in place (it becomes the user's) instead of deleting it. */
    keepOnDestroy?: boolean;
    /**
     * When set, the image is created as a qcow2 copy-on-write overlay of this base image (qemu-img create -b) on the
     * placement host if it does not exist; the base image itself is only ever read.
     */
    backingImage?: string;
}

/** libvirt direct kernel boot (`<os><kernel>/<initrd>/<cmdline>`): for images without a bootloader. */
export interface KernelBootSpec {
    /** Absolute path of the kernel on every host. */
    kernel: string;
    initrd?: string;
    cmdline?: string;
}

/**
 * A cloud-init NoCloud seed (volume label `cidata`: meta-data, user-data, network-config) built on the placement
 * host and attached read-only as a virtio disk. It holds no secret: the node name, the lab's SSH public key, and the
 * node's static address on the cluster network.
 */
export interface SeedSpec {
    /** Absolute path of the seed image on the placement host. */
    path: string;
    /** Guest device name of the seed disk, e.g. vdb. */
    target: string;
    /** MAC of the guest's NIC on the cluster network (the network-config matches it). */
    mac: string;
    /** The guest's address on the cluster network and the network's prefix length. */
    address: string;
    prefix: number;
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
          /** A virtio vsock device (CID assigned by libvirt): set on the guest cluster's nodes when they fence over vsock. */
          vsock: boolean;
          /** Direct kernel boot instead of the disk's bootloader. */
          boot?: KernelBootSpec;
          /** The cloud-init seed attached to the guest (set when the guest boots from `image` with cloudInit). */
          seed?: SeedSpec;
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
    /**
     * How to reach the guest's OS to deliver the fence key and cluster.conf. Deliveries wait until its sshd answers.
     * A guest booted with a cloud-init seed is reached at its cluster address with the lab's key unless ssh says otherwise.
     */
    connection?: SshConnection;
    /**
     * The guest's IPv4 address on the cluster network: where its fence requests come from (fence_virtd's `groups`
     * admit a lab's requests only from its guest cluster nodes' addresses). Undefined when not known.
     */
    address?: string;
}

export type Recovery = "restart" | "relocate" | "disable";

export interface HostFenceDeviceSpec {
    name: string;
    /** Fence agent, e.g. fence_ipmilan. */
    agent: string;
    /** The host this device fences. */
    host: string;
    /** Fence level (method) of the host this device belongs to: 1 is tried first. */
    level: number;
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

export type MigrateMode = "live" | "pause";
export type Hypervisor = "auto" | "xen" | "qemu";

/** An rgmanager `<vm>` (vm.sh): one guest run by the host cluster. */
export interface VmServiceSpec {
    /** The guest (= domain) this service runs. */
    guest: string;
    autostart: boolean;
    exclusive: boolean;
    recovery: Recovery;
    maxRestarts: number;
    restartExpireTime: number;
    failoverDomain?: string;
    /** `migrate`: how rgmanager moves the guest on `clusvcadm -M`. */
    migrate: MigrateMode;
    /** `use_virsh`: always true for KVM (false would select Xen's xm). */
    useVirsh: boolean;
    /** `xmlfile`: the domain XML to start from; when set, `path` (the shared XML directory) is not rendered. */
    xmlFile?: string;
    /** Guest of another VM service that must run first (`depend="vm:<guest>"`). */
    depend?: string;
    dependMode?: DependMode;
    /** `migration_mapping`: host name → the name to migrate to (e.g. a migration network address). */
    migrationMapping?: Record<string, string>;
    hypervisor?: Hypervisor;
    hypervisorUri?: string;
    /** `migration_uri`, with `%s` standing for the target host. */
    migrationUri?: string;
    /** Directory where the guest's state is saved on stop and restored on start. */
    snapshot?: string;
    /** Run at vm.sh's depth-10 status check to test the services inside the guest. */
    statusProgram?: string;
    /** Tunnel live migration over the libvirt connection (`virsh migrate --tunnelled`). */
    tunnelled?: boolean;
}

export interface HostClusterSpec {
    name: string;
    /** cman (cluster.conf) or pacemaker (corosync.conf + CIB). */
    stack: ClusterStack;
    fenceDevices: HostFenceDeviceSpec[];
    /** Who wins a fencing race (two-host clusters get one by default); undefined = no delay. */
    fenceDelay?: FenceDelaySpec;
    fenceDaemon: FenceDaemonSpec;
    totem: TotemSpec;
    failoverDomains: FailoverDomainSpec[];
    vmServices: VmServiceSpec[];
    /** Groups of VM services that must start on (and fail over to) different hosts; placement only, no guard. */
    antiAffinity: AntiAffinitySpec[];
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
