#!/usr/bin/env bash
# `npm run image`: the guest image the tests and the default lab boot, built from Debian packages only.
#
#   Debian bookworm (+ bookworm-updates, bookworm-security) from deb.debian.org, mmdebstrap into a folder, mkfs.ext4 -d,
#   qcow2. The kernel and an initrd holding the virtio drivers are copied out beside it for libvirt's direct kernel
#   boot (<os><kernel>/<initrd>), so the image needs no partition table and no bootloader: root=/dev/vda.
#   The guest gets its hostname, address and root's SSH key from a cloud-init NoCloud seed (the lab renders one per
#   guest); the image itself holds no key, no host keys and no machine-id.
#
# Cached by the hash of the recipe (the lines between the two "recipe" rulers below):
# .images/<hash>/{disk.qcow2,vmlinuz,initrd.img,packages.txt}, with .images/current -> <hash>, and the stable path the
# lab stack names, /var/lib/libvirt/images/kvm-ha-lab-debian12 -> <this checkout>/.images/<hash> (refreshed on every
# run). Built only when missing; prints the folder on stdout, and the build time on stderr.
# Options: --print (print the folder the recipe names, build nothing), --force (rebuild).
# Needs root, mmdebstrap, e2fsprogs, qemu-utils (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- the recipe -------------------------------------------------------------------------------------------------
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
PACKAGES=(
    systemd-sysv udev openssh-server iproute2 procps iputils-ping
    linux-image-cloud-amd64 initramfs-tools cloud-init
    fence-virt corosync pacemaker pacemaker-cli-utils
)
DISK_SIZE=2G
# Modules the initrd holds (MODULES=list): enough to find root on a virtio disk.
INITRD_MODULES=(virtio_pci virtio_blk virtio_net virtio_rng virtio_console ext4)
# Units that only slow a TCG boot down or do nothing in a lab guest.
MASKED_UNITS=(
    getty-static.service systemd-binfmt.service systemd-networkd-wait-online.service
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer
)

build() {
work=$1
rootfs="$work/rootfs"

# The customize hook runs inside the finished tree (mmdebstrap passes its path as $1).
cat >"$work/customize.sh" <<EOF
#!/bin/sh
set -eu
r="\$1"
# initrd: only the listed modules (the default MODULES=most makes a 30 MB initrd)
echo MODULES=list >"\$r/etc/initramfs-tools/conf.d/kvm-ha-lab.conf"
printf '%s\n' ${INITRD_MODULES[*]} >"\$r/etc/initramfs-tools/modules"
chroot "\$r" update-initramfs -u -k all >/dev/null
# the host's kvm modules are useless in a TCG guest (-cpu max shows SVM) and legacy disk drivers only cost probing
printf 'blacklist %s\n' kvm kvm_amd kvm_intel ata_piix ata_generic pata_acpi >"\$r/etc/modprobe.d/kvm-ha-lab.conf"
for u in ${MASKED_UNITS[*]}; do ln -sf /dev/null "\$r/etc/systemd/system/\$u"; done
# cloud-init: the NoCloud seed only (no network datasource probing); ed25519 host keys only; no locale module (minbase
# generates no en_US.UTF-8, so update-locale fails and cloud-init would report status: error)
mkdir -p "\$r/etc/cloud/cloud.cfg.d"
cat >"\$r/etc/cloud/cloud.cfg.d/90-kvm-ha-lab.cfg" <<'CFG'
datasource_list: [NoCloud, None]
ssh_genkeytypes: [ed25519]
locale: false
CFG
# key logins only, set in the image so that cloud-init never edits sshd_config (it restarts sshd when it does)
printf 'PasswordAuthentication no\n' >"\$r/etc/ssh/sshd_config.d/kvm-ha-lab.conf"
# cloud-init renders the network for systemd-networkd; networkd must run
chroot "\$r" systemctl enable systemd-networkd.service >/dev/null 2>&1
# corosync and pacemaker start once the lab has configured them, not at every boot with the packages' defaults
chroot "\$r" systemctl disable corosync.service pacemaker.service >/dev/null 2>&1
# root on the virtio disk, no swap
printf '/dev/vda / ext4 rw,relatime 0 1\n' >"\$r/etc/fstab"
# per-guest identity comes at first boot: no machine-id, no host keys, no hostname in the image
: >"\$r/etc/machine-id"
rm -f "\$r/var/lib/dbus/machine-id" "\$r"/etc/ssh/ssh_host_*
echo localhost >"\$r/etc/hostname"
rm -rf "\$r/var/lib/apt/lists/"* "\$r/var/cache/apt/"*.bin
EOF
chmod +x "$work/customize.sh"

echo "guest-image: building $out (mmdebstrap $SUITE: ${PACKAGES[*]})" >&2
mmdebstrap --variant=minbase --mode=root --quiet \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --customize-hook="$work/customize.sh \"\$1\"" \
    "$SUITE" "$rootfs" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"

kernel=$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$rootfs"/boot/initrd.img-* | sort -V | tail -1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
chroot "$rootfs" dpkg-query -W -f='${Package} ${Version}\n' >"$work/packages.txt"

mkfs.ext4 -q -L kvmlab-root -d "$rootfs" "$work/disk.raw" "$DISK_SIZE"
qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
rm -rf "$rootfs" "$work/disk.raw" "$work/customize.sh"
chmod 0444 "$work/disk.qcow2" "$work/vmlinuz" "$work/initrd.img"
chmod 0755 "$work"
}
# ---- end of the recipe ----------------------------------------------------------------------------------------

print_only=false
force=false
for a in "$@"; do
    case "$a" in
        --print) print_only=true ;;
        --force) force=true ;;
        *) echo "guest-image: unknown option $a (use --print or --force)" >&2; exit 64 ;;
    esac
done

hash=$(sed -n '/^# ---- the recipe/,/^# ---- end of the recipe/p' "$0" | sha256sum | cut -c1-16)
root_dir="$PWD/.images"
# The stable path stacks name (stacks/Pulumi.lab.yaml): a link to the current build.
PUBLISHED=/var/lib/libvirt/images/kvm-ha-lab-debian12
out="$root_dir/$hash"
if $print_only; then echo "$out"; exit 0; fi

publish() {
    ln -sfn "$hash" "$root_dir/current"
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$(dirname "$PUBLISHED")"
        if [ -e "$PUBLISHED" ] && [ ! -L "$PUBLISHED" ]; then
            echo "guest-image: $PUBLISHED exists and is not this script's link: left alone (stacks naming it will not find the image)" >&2
        else
            ln -sfn "$out" "$PUBLISHED"
        fi
    fi
}
if [ -f "$out/disk.qcow2" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && ! $force; then
    publish
    echo "guest-image: cached $out ($PUBLISHED)" >&2
    echo "$out"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then echo "guest-image: building needs root (mmdebstrap --mode=root)" >&2; exit 1; fi
for b in mmdebstrap mkfs.ext4 qemu-img; do
    command -v "$b" >/dev/null 2>&1 || { echo "guest-image: $b is missing (apt-get install mmdebstrap e2fsprogs qemu-utils)" >&2; exit 1; }
done

start=$(date +%s)
mkdir -p "$root_dir"
work=$(mktemp -d "$root_dir/.build-$hash.XXXXXX")
trap 'rm -rf "$work"' EXIT
build "$work"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
publish
secs=$(( $(date +%s) - start ))
echo "guest-image: built $out in ${secs}s ($(wc -l <"$out/packages.txt") packages, disk.qcow2 $(du -m "$out/disk.qcow2" | cut -f1) MB; $PUBLISHED)" >&2
echo "$out"
