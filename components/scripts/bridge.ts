/**
 * The lab's Linux bridge on a host: created when missing (STP off, forward delay 0), or adopted when it already exists;
 * the host address added when set and missing; the uplink NIC enslaved when set; the bridge set up.
 *
 * Markers (under `bridge/<name>/`): `created` (we created the bridge), `adopted` (it existed: its previous up/down
 * state), `address` (the CIDR we added), `uplink` ("<nic> <up|down>": the NIC we enslaved and its previous state).
 * Delete undoes exactly those: a created bridge is deleted (refused while ports we did not add are attached); on an
 * adopted bridge only the address and uplink we added are removed and its previous up/down state restored.
 * A bridge another lab's state claims is refused.
 */
import { isInterfaceName } from "../names";
import { parseCidr } from "../net";
import type { BridgeSpec } from "../spec";
import { assertMarkerSegment, hostScript, sh } from "./prelude";
import type { HostScripts } from "./types";


const FUNCTIONS = sh`
K="bridge/$BR"
work_dir
master_of() { if [ -e "/sys/class/net/$1/master" ]; then basename "$(readlink "/sys/class/net/$1/master")"; fi; }
link_up() { ip -o link show dev "$1" 2>/dev/null | grep -q '[<,]UP[,>]'; }
has_addr() { ip -o -4 addr show dev "$1" 2>/dev/null | awk '{print $4}' | grep -qxF "$2"; }
# ports BRIDGE: its attached interfaces, space separated
ports() { if [ -d "/sys/class/net/$1/brif" ]; then ls "/sys/class/net/$1/brif" | tr '\n' ' '; fi; }
enslave() {
    if ip link set dev "$1" master "$BR" 2>"$WORK/err"; then return 0; fi
    if have brctl && brctl addif "$BR" "$1" 2>>"$WORK/err"; then return 0; fi
    die "cannot add uplink $1 to bridge $BR: $(tr '\n' ' ' < "$WORK/err")"
}
release() {
    if ip link set dev "$1" nomaster 2>"$WORK/err"; then return 0; fi
    if have brctl && brctl delif "$BR" "$1" 2>>"$WORK/err"; then return 0; fi
    die "cannot release $1 from bridge $BR: $(tr '\n' ' ' < "$WORK/err")"
}
have ip || die "the ip command (iproute) is not installed: install iproute (RHEL) or iproute2 (Debian)"
`;

const CREATE = sh`
# ---- checks: nothing changes until all of them pass
CLAIMS=$(echo $(other_labs_with "$K"))
[ -z "$CLAIMS" ] || die "bridge $BR is already used by lab(s) $CLAIMS on this host (see $STATE_ROOT/<lab>/$K): give this lab another bridge name or destroy the other lab first"
EXISTS=no
if [ -e "/sys/class/net/$BR" ]; then
    [ -d "/sys/class/net/$BR/bridge" ] || die "interface $BR exists but is not a bridge: choose another bridge name or remove $BR"
    EXISTS=yes
fi
if [ -n "$UPLINK" ]; then
    [ -e "/sys/class/net/$UPLINK" ] || die "uplink $UPLINK does not exist on this host: set bridge.uplink to a NIC that 'ip link' lists, or remove it"
    [ ! -d "/sys/class/net/$UPLINK/bridge" ] || die "uplink $UPLINK is itself a bridge: set bridge.uplink to a physical NIC"
    M=$(master_of "$UPLINK")
    if [ -n "$M" ] && [ "$M" != "$BR" ]; then
        die "uplink $UPLINK is already enslaved to $M: release it first (ip link set $UPLINK nomaster) or use $M as this lab's bridge"
    fi
    if [ "$M" != "$BR" ]; then
        A=$(ip -o addr show dev "$UPLINK" scope global | awk '{print $4}' | tr '\n' ' ')
        [ -z "$A" ] || die "uplink $UPLINK has address(es) $A; enslaving it would cut them off: move them to the bridge first (bridge.address) or choose a NIC without addresses"
    fi
fi
if [ -n "$ADDR" ] && ! has_addr "$BR" "$ADDR"; then
    ON=$(ip -o -4 addr show | awk -v a="$ADDR_IP" '{split($4, p, "/"); if (p[1] == a) print $2}' | grep -vxF "$BR" | head -n 1 || true)
    [ -z "$ON" ] || die "address $ADDR_IP is already configured on $ON: choose another bridge.address or remove it from $ON"
fi

# ---- the bridge
if [ "$EXISTS" = no ]; then
    m_put "$K/created" "yes"
    m_del "$K/adopted"
    if ! ip link add name "$BR" type bridge stp_state 0 forward_delay 0 2>"$WORK/err"; then
        if have brctl && brctl addbr "$BR" 2>>"$WORK/err"; then
            brctl stp "$BR" off
            brctl setfd "$BR" 0
        else
            m_del "$K/created"
            die "cannot create bridge $BR: $(tr '\n' ' ' < "$WORK/err")"
        fi
    fi
    log "created bridge $BR"
elif ! m_has "$K/created" && ! m_has "$K/adopted"; then
    if link_up "$BR"; then m_put "$K/adopted" up; else m_put "$K/adopted" down; fi
    log "adopted the existing bridge $BR: it stays when the lab is destroyed"
fi

# ---- the address
OLD=$(m_get "$K/address")
if [ -n "$OLD" ] && [ "$OLD" != "$ADDR" ]; then
    if has_addr "$BR" "$OLD"; then ip addr del "$OLD" dev "$BR"; fi
    m_del "$K/address"
    log "removed address $OLD from $BR (no longer configured)"
fi
if [ -n "$ADDR" ] && ! has_addr "$BR" "$ADDR"; then
    m_put "$K/address" "$ADDR"
    ip addr add "$ADDR" dev "$BR"
    log "added address $ADDR to $BR"
fi

# ---- the uplink
OLDUP=$(m_get "$K/uplink")
if [ -n "$OLDUP" ] && [ "\${OLDUP%% *}" != "$UPLINK" ]; then
    N=\${OLDUP%% *}
    if [ "$(master_of "$N")" = "$BR" ]; then release "$N"; fi
    if [ "\${OLDUP#* }" = down ] && [ -e "/sys/class/net/$N" ]; then ip link set dev "$N" down; fi
    m_del "$K/uplink"
    log "released former uplink $N from $BR"
fi
if [ -n "$UPLINK" ] && [ "$(master_of "$UPLINK")" != "$BR" ]; then
    if link_up "$UPLINK"; then m_put "$K/uplink" "$UPLINK up"; else m_put "$K/uplink" "$UPLINK down"; fi
    enslave "$UPLINK"
    ip link set dev "$UPLINK" up
    log "enslaved uplink $UPLINK to $BR"
fi

ip link set dev "$BR" up
`;

const DELETE = sh`
m_has "$K/created" || m_has "$K/adopted" || m_has "$K/address" || m_has "$K/uplink" || exit 0
UP=$(m_get "$K/uplink")
UPN=\${UP%% *}
# ---- checks first: a bridge we created is deleted only when no port we did not add is attached
if m_has "$K/created" && [ -e "/sys/class/net/$BR" ]; then
    FOREIGN=''
    for P in $(ports "$BR"); do [ "$P" = "$UPN" ] || FOREIGN="$FOREIGN $P"; done
    [ -z "$FOREIGN" ] || die "bridge $BR still has ports that this lab did not add:$FOREIGN; stop or detach them (e.g. the domains using $BR) and destroy again"
fi
# ---- the uplink we enslaved
if [ -n "$UP" ]; then
    if [ "$(master_of "$UPN")" = "$BR" ]; then release "$UPN"; log "released uplink $UPN from $BR"; fi
    if [ "\${UP#* }" = down ] && [ -e "/sys/class/net/$UPN" ]; then ip link set dev "$UPN" down; fi
    m_del "$K/uplink"
fi
if m_has "$K/created"; then
    if [ -e "/sys/class/net/$BR" ]; then
        if ! ip link del dev "$BR" 2>"$WORK/err"; then
            if have brctl && { ip link set dev "$BR" down; brctl delbr "$BR" 2>>"$WORK/err"; }; then :; else
                die "cannot delete bridge $BR: $(tr '\n' ' ' < "$WORK/err")"
            fi
        fi
        log "deleted bridge $BR"
    fi
    m_del "$K/address"
    m_del "$K/created"
else
    ADDRW=$(m_get "$K/address")
    if [ -n "$ADDRW" ] && has_addr "$BR" "$ADDRW"; then ip addr del "$ADDRW" dev "$BR"; log "removed address $ADDRW from $BR"; fi
    m_del "$K/address"
    if [ "$(m_get "$K/adopted")" = down ] && [ -e "/sys/class/net/$BR" ]; then ip link set dev "$BR" down; fi
    m_del "$K/adopted"
fi
`;

export function bridgeScripts(lab: string, bridge: BridgeSpec): HostScripts {
    if (!isInterfaceName(bridge.name)) throw new Error(`bridge name ${JSON.stringify(bridge.name)} is not a Linux interface name (1-15 of A-Z a-z 0-9 _ . -, not "." or "..")`);
    assertMarkerSegment("bridge name", bridge.name);
    if (bridge.uplink !== undefined && (!isInterfaceName(bridge.uplink) || bridge.uplink === bridge.name)) {
        throw new Error(`uplink ${JSON.stringify(bridge.uplink)} is not a Linux interface name other than the bridge's`);
    }
    let addressIp = "";
    if (bridge.address !== undefined) {
        const cidr = parseCidr(bridge.address);
        if (!cidr) throw new Error(`bridge address ${JSON.stringify(bridge.address)} is not IPv4 CIDR (e.g. 10.99.0.1/24)`);
        addressIp = cidr.address;
    }
    const vars = { BR: bridge.name, UPLINK: bridge.uplink ?? "", ADDR: bridge.address ?? "", ADDR_IP: addressIp };
    const what = `bridge ${bridge.name}`;
    return {
        create: hostScript(lab, what, vars, FUNCTIONS + CREATE),
        delete: hostScript(lab, what, vars, FUNCTIONS + DELETE),
    };
}
