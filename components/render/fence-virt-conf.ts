/**
 * fence_virt.conf for a lab's own fence_virtd instance on one host.
 *
 * fence_virtd's parser (fence-agents agents/virt/config) accepts only `key = "value";`: every value double-quoted
 * (a bare number such as `port = 1229;` is a syntax error), no empty value, no `"` inside a value. `#` starts a comment.
 * The same key may be repeated (the `groups` section lists several `uuid` and `ip`).
 * `module_path` is left out on purpose: the compiled-in plugin directory differs between Debian
 * (/usr/lib/x86_64-linux-gnu/fence-virt) and RHEL (/usr/lib64/fence-virt), and the default is right on each.
 */
import type { GuestSpec, HostSpec, LabSpec } from "../spec";

/** The libvirt connection fence_virtd fences through: the host's system instance, where the guests are defined. */
export const FENCE_VIRTD_LIBVIRT_URI = "qemu:///system";

type Entry = { key: string; value: string } | { block: string; entries: Entry[] } | { comment: string };

function kv(key: string, value: string | number): Entry {
    return { key, value: String(value) };
}

function block(name: string, entries: Entry[]): Entry {
    return { block: name, entries };
}

function comment(text: string): Entry {
    if (/[\n\r]/.test(text)) throw new Error(`fence_virt.conf comment ${JSON.stringify(text)} spans lines`);
    return { comment: text };
}

/** Quotes a value the way the parser's T_VAL token (`"[^"]+"`) requires; refuses what it cannot represent. */
function quote(key: string, value: string): string {
    if (value === "" || /["\n\r\0]/.test(value)) {
        throw new Error(
            `fence_virt.conf: the value of ${key} (${JSON.stringify(value)}) cannot be written: fence_virtd accepts only a non-empty value without '"' or line breaks`,
        );
    }
    return `"${value}"`;
}

function write(entries: Entry[], depth: number, out: string[]): void {
    const pad = "\t".repeat(depth);
    for (const e of entries) {
        if ("key" in e) {
            out.push(`${pad}${e.key} = ${quote(e.key, e.value)};`);
        } else if ("comment" in e) {
            out.push(`${pad}# ${e.comment}`);
        } else {
            out.push(`${pad}${e.block} {`);
            write(e.entries, depth + 1, out);
            out.push(`${pad}}`);
        }
    }
}

/**
 * The domain's UUID as libvirt prints it (lower case, dashed): the rendered definition's, or the `<uuid>` of the
 * user's own XML. Undefined when the XML has none (libvirt then makes one up on each host).
 */
function domainUuid(guest: GuestSpec): string | undefined {
    const def = guest.definition;
    const raw = def.kind === "rendered" ? def.uuid : /<uuid>\s*([^<\s]+)\s*<\/uuid>/.exec(def.xml)?.[1];
    const hex = raw?.replace(/-/g, "").toLowerCase();
    if (hex === undefined || !/^[0-9a-f]{32}$/.test(hex)) return undefined;
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The `groups` section, or why there is none (comment lines).
 *
 * fence_virtd (agents/virt/server/static_map.c) grants a request only when the requester matches an `ip` of a group
 * AND the target, exactly as the client names it (case-insensitive), is a `uuid` of the same group; `list` shows only
 * those domains. The requester is the address inside a signed multicast request (the client's own interface address)
 * or the peer address of a tcp connection, both the guest's address on the cluster network. The group lists every
 * guest cluster node by name and by UUID, plus the other victims the fence levels name; and the nodes' addresses plus
 * the guest cluster services' floating addresses (fence_xvm sends a request from every address of the node, and a
 * node holding a service address must not be refused for asking from it).
 */
function groupsSection(spec: LabSpec): Entry[] {
    const gc = spec.guestCluster;
    if (gc.fencing.listener === "vsock") {
        return [
            comment("No groups section: the vsock listener knows a requester by its vsock CID, which libvirt assigns"),
            comment("when the guest starts (cid auto), so no group can name it. This lab's own key and vsock port keep"),
            comment("other labs' guests out."),
        ];
    }
    const guests = gc.nodes.map((n) => spec.guests.find((g) => g.name === n));
    const missing = gc.nodes.filter((_, i) => guests[i]?.address === undefined);
    if (missing.length > 0) {
        return [
            comment(`No groups section: ${missing.join(", ")} ${missing.length === 1 ? "has" : "have"} no address on the cluster network (guests[].address,`),
            comment("or an IPv4 ssh.address on it), so requests cannot be tied to this lab's nodes: any holder of this"),
            comment("lab's fence key may fence any domain on this host."),
        ];
    }
    const targets: string[] = [];
    const add = (t: string | undefined) => {
        if (t !== undefined && !targets.includes(t)) targets.push(t);
    };
    gc.nodes.forEach((n, i) => {
        add(n);
        add(domainUuid(guests[i]!));
    });
    for (const level of gc.fenceLevels) for (const d of level.devices) for (const n of gc.nodes) add(d.ports[n]);
    const requesters: string[] = [];
    for (const a of [...guests.map((g) => g!.address!), ...gc.services.flatMap((sv) => sv.ips.map((ip) => ip.address.split("/")[0]))]) {
        if (!requesters.includes(a)) requesters.push(a);
    }
    return [
        comment("Only this lab's guest cluster: the domains below (by name and UUID), asked for from its nodes'"),
        comment("addresses on the cluster network (and its services' floating addresses). fence_virtd refuses other"),
        comment("domains and other requesters."),
        block("groups", [
            block("group", [kv("name", spec.lab), ...targets.map((t) => kv("uuid", t)), ...requesters.map((a) => kv("ip", a))]),
        ]),
    ];
}

/** The listener block for the spec's listener on `host`. */
function listenerBlock(spec: LabSpec, host: HostSpec): Entry {
    const f = spec.guestCluster.fencing;
    // The tcp and vsock listeners read `auth` into their hash setting (fence-virt bug, agents/virt/server/tcp.c and
    // vsock.c) and always authenticate with sha256: validation allows only auth sha256 there, and the line is written
    // only when it says the same as `hash`, so that it cannot override the hash strength asked for.
    const authLine = (): Entry[] =>
        f.auth === f.hash
            ? [kv("auth", f.auth)]
            : [comment(`auth is not set: this listener would read it as its hash setting; it authenticates with sha256`)];
    switch (f.listener) {
        case "multicast":
            return block("multicast", [
                kv("key_file", f.keyFile),
                kv("address", f.multicast.address),
                kv("port", f.multicast.port),
                kv("interface", host.bridge.name),
                kv("family", f.multicast.family),
                kv("hash", f.hash),
                kv("auth", f.auth),
            ]);
        case "tcp": {
            const address = host.bridge.address?.split("/")[0];
            if (address === undefined || address === "") {
                throw new Error(`fence_virt.conf: host ${host.name} has no bridge address for the tcp listener to bind; set hosts[].bridge.address`);
            }
            return block("tcp", [
                kv("key_file", f.keyFile),
                kv("address", address),
                kv("port", f.tcp.port),
                kv("family", "ipv4"),
                kv("hash", f.hash),
                ...authLine(),
            ]);
        }
        case "vsock":
            return block("vsock", [kv("key_file", f.keyFile), kv("port", f.vsock.port), kv("hash", f.hash), ...authLine()]);
        default: {
            const unreachable: never = f.listener;
            throw new Error(`unknown fence_virtd listener ${JSON.stringify(unreachable)}`);
        }
    }
}

/**
 * Renders the fence_virtd config for `host`: the lab's listener (multicast joined on the host's lab bridge, tcp bound
 * to the host's bridge address, or vsock), the lab's fence key, the libvirt backend on qemu:///system, and the
 * `groups` section that limits the instance to this lab's guest cluster (see `groupsSection`). The same spec and host
 * give byte-identical text.
 */
export function renderFenceVirtConf(spec: LabSpec, host: HostSpec): string {
    const f = spec.guestCluster.fencing;
    const tree: Entry[] = [
        block("fence_virtd", [kv("listener", f.listener), kv("backend", "libvirt")]),
        block("listeners", [listenerBlock(spec, host)]),
        block("backends", [block("libvirt", [kv("uri", FENCE_VIRTD_LIBVIRT_URI)])]),
        ...groupsSection(spec),
    ];
    const out = [
        `# kvm-ha-lab: fence_virtd of lab "${spec.lab}" on host "${host.name}" (guest cluster "${spec.guestCluster.name}", ${f.listener} listener).`,
        "# Generated by kvm-ha-lab; changes here are overwritten.",
    ];
    write(tree, 0, out);
    return out.join("\n") + "\n";
}
