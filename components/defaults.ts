/**
 * Every default value of the stack config, in one place: what a field becomes when the stack file leaves it out.
 * Validation (components/config*.ts) applies them, once; components and renderers read the validated `LabSpec` and
 * never fall back to a value of their own. README's "Configuration reference" shows these values in its default
 * column (test/unit/readme.test.ts compares them).
 *
 * Grouped as the config is: `hosts`, `guests`, `guestCluster`, `hostCluster`, `xmlDir`; `cluster` holds what both
 * clusters share (their schemas are shared). A key of a list item is under the list's name (`guests.disks.format` is
 * every `guests[].disks[].format`). Lists and maps left out are empty (no services, no extra fence devices, ...):
 * those are not listed here. Defaults that are derived from other fields (a guest's ssh address, its UUID and MACs,
 * `labName` = the stack name, cloudInit when `image` is set) are resolved by validation and documented there.
 */

type DeepReadonly<T> = { readonly [K in keyof T]: T[K] extends object ? DeepReadonly<T[K]> : T[K] };

function deepFreeze<T extends object>(value: T): DeepReadonly<T> {
    for (const v of Object.values(value)) if (typeof v === "object" && v !== null) deepFreeze(v);
    return Object.freeze(value) as DeepReadonly<T>;
}

/** The port of fence_virtd's listeners (fence_virt's own default, 1229). */
const FENCE_PORT = 1229;

export const DEFAULTS = deepFreeze({
    hosts: {
        ssh: {
            /** The login on the host. */
            user: "root",
            /** sshd's port. */
            port: 22,
            /** The secret config key that holds the private key (hosts; guests without a seed too). */
            privateKeySecret: "sshPrivateKey",
        },
        /** Install libvirt, qemu, fence-virtd and iptables with the host's package manager: no, they are there. */
        installPackages: false,
    },
    guests: {
        /** Memory of a rendered domain, MiB. */
        memoryMiB: 1024,
        /** Virtual CPUs of a rendered domain. */
        vcpus: 1,
        /** libvirt domain type: kvm (`qemu` is software emulation). */
        domainType: "kvm" as "kvm" | "qemu",
        disks: {
            /** `pulumi destroy` removes an image the lab created. */
            keepOnDestroy: false,
            format: "qcow2" as "qcow2" | "raw",
            bus: "virtio" as "virtio" | "sata" | "scsi" | "ide",
        },
        /**
         * Where a guest booted from `image` that lists no disks gets its overlay (`<dir>/<name>.qcow2`), and the
         * directory of a seed when the guest has no disk.
         */
        imageDiskDir: "/var/lib/libvirt/images",
        nics: {
            /** A guest without `nics` gets one NIC of this model on its placement host's bridge. */
            model: "virtio" as "virtio" | "e1000" | "rtl8139",
        },
    },
    /** What the guest cluster and the host cluster share. */
    cluster: {
        /** The cluster stack: cman (cluster.conf) or pacemaker (corosync.conf + CIB). */
        stack: "cman" as "cman" | "pacemaker",
        fenceDelay: {
            /**
             * fence `delay`, seconds, of the favoured node in a two-node cluster (given or not: a two-node cluster
             * without `fenceDelay` gets its first node with this delay). Fencing that node waits this long, so in a
             * split both nodes shoot, the other node is powered off first and the favoured one survives. 15 s is the
             * value Red Hat's two-node guidance uses: well above the time a fence agent needs to power a machine off.
             */
            seconds: 15,
        },
        fenceDaemon: {
            /**
             * fenced `post_join_delay`, seconds (fenced's own default is 6). When the fence domain forms, fenced fences
             * every listed node that has not joined yet after this delay ("startup fencing"). In a two-node cluster one
             * node is quorate alone, so a peer that boots a little later would be power-cycled; lab guests often boot
             * slowly (several at once, or TCG emulation), so they get 30 s to join, the upper end of Red Hat's usual
             * 20-30 s.
             */
            postJoinDelay: 30,
            /** fenced `post_fail_delay`, seconds: a failed member is fenced at once (DLM, GFS2 and rgmanager wait for it). */
            postFailDelay: 0,
        },
        /** A failover domain's flags. */
        failoverDomains: { ordered: false, restricted: false, nofailback: false },
        /** What a guest cluster `<service>` and a host cluster `<vm>` share (rgmanager's own defaults). */
        rgService: {
            autostart: true,
            exclusive: false,
            recovery: "restart" as "restart" | "relocate" | "disable",
            maxRestarts: 0,
            restartExpireTime: 0,
        },
        antiAffinity: {
            /** A recovered node does not pull a member back (which would interrupt it). */
            failback: false,
        },
    },
    guestCluster: {
        fencing: {
            /** fence_virtd's listener, and with it the guests' agent (fence_xvm). */
            listener: "multicast" as "multicast" | "tcp" | "vsock",
            multicast: {
                /** fence_xvm's own default multicast address. */
                address: "225.0.0.12",
                port: FENCE_PORT,
                family: "ipv4" as const,
            },
            tcp: { port: FENCE_PORT },
            vsock: { port: FENCE_PORT },
            hash: "sha256" as "none" | "sha1" | "sha256" | "sha512",
            auth: "sha256" as "none" | "sha1" | "sha256" | "sha512",
            /** The key's path on every host and guest (fence_xvm's own default). */
            keyFile: "/etc/cluster/fence_xvm.key",
            /** Rotation counter of the key. */
            keyVersion: 1,
        },
        services: {
            ips: {
                /** ip.sh checks the link of the address's interface. */
                monitorLink: true,
            },
        },
    },
    hostCluster: {
        fenceDevices: {
            /** Fence level (method) of the device in its host's `<fence>`: the first one tried. */
            level: 1,
        },
        vmServices: {
            /** vm.sh's migration: live. */
            migrate: "live" as "live" | "pause",
            /** vm.sh drives the domain with virsh. */
            useVirsh: true,
        },
    },
    xmlDir: {
        /** Directory of `<guest>.xml` on every host (rgmanager's vm `path`). */
        path: "/var/lib/libvirt/images/xml_defs",
        /** The directory is on each host's own disk (not shared storage): each host gets its own copy. */
        shared: false,
    },
});
