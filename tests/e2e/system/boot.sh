# The real-system layout, sourced by tests/e2e/run.sh once the kernel is extracted (KVER,
# KDIR, MODROOT, VMLINUZ, QEMU, WORK, MIRROR, KEYRING, DAXPLUG_DEB are set): a Debian 12
# root file system built from Debian's packages with mmdebstrap (cached under
# $WORK/system), the kernel's modules and a real initramfs made by initramfs-tools in it,
# booted with systemd as PID 1 on the hmem machine, several times on one disk image:
#   install   stock Debian, then `apt-get install ./daxplug.deb` and the policy on the
#             running system
#   boot1..3  three reboots with the policy and the competitors (daxctl's udev rule, a
#             daxctl.conf.d section, a RHEL-style hot-add rule); the first also runs the
#             operator's day (set --override, release, drift, upgrade)
#   purge     apt-get purge
# Each boot's serial console goes to $WORK/logs/system@KVER-PHASE.log; the host test reads
# the facts check.sh printed there.

SYS=$WORK/system
mkdir -p "$SYS"
[ "$(id -u)" = 0 ] || skip "the real-system layout builds a root file system and needs root"
if ! command -v mmdebstrap >/dev/null; then
	echo "installing mmdebstrap for the real-system layout" >&2
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap; }; } >"$WORK/install.log" 2>&1 ||
		skip "apt-get install mmdebstrap failed: $(tail -1 "$WORK/install.log")"
fi
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 (e2fsprogs) is missing"
DEB=${DAXPLUG_DEB:?the real-system layout installs the Debian package: set DAXPLUG_DEB}

# ---------------------------------------------------------------- root file system
# The root file system is shared by the kernels' images, and made by one of them at a time:
# the tests boot several guests at once.
exec 8>"$SYS/.build.lock"
flock 8
INCLUDE=systemd,systemd-sysv,udev,kmod,dbus,daxctl,ndctl,initramfs-tools,zstd,procps,e2fsprogs
ROOTFS=$SYS/rootfs-bookworm-$(echo "$INCLUDE $MIRROR v1" | sha256sum | cut -c1-12).tar
if [ ! -s "$ROOTFS" ]; then
	rm -rf "$SYS"/rootfs-bookworm-*
	echo "building the Debian 12 root file system ($INCLUDE)" >&2
	mmdebstrap --variant=minbase --include="$INCLUDE" \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		bookworm "${ROOTFS%.tar}.part.tar" \
		"deb [signed-by=$KEYRING] $MIRROR bookworm main" \
		"deb [signed-by=$KEYRING] $MIRROR bookworm-updates main" \
		"deb [signed-by=$KEYRING] ${MIRROR%/debian}/debian-security bookworm-security main" \
		>"$SYS/mmdebstrap.log" 2>&1 || { echo "mmdebstrap failed:"; tail -20 "$SYS/mmdebstrap.log"; exit 1; }
	mv "${ROOTFS%.tar}.part.tar" "$ROOTFS"
fi

# ---------------------------------------------------------------- this kernel in it
R=$SYS/root-$KVER
rm -rf "$R" && mkdir -p "$R"
tar -C "$R" -xf "$ROOTFS"
mkdir -p "$R/usr/lib/modules"
cp -a "$MODROOT" "$R/usr/lib/modules/"
cp "$VMLINUZ" "$R/boot/vmlinuz-$KVER"
if [ -e "$KDIR/boot/config-$KVER" ]; then
	cp "$KDIR/boot/config-$KVER" "$R/boot/"
else
	# trixie-backports' linux-binary packages ship no config; initramfs-tools reads it only
	# for the compressions the kernel can unpack, which every Debian kernel has.
	printf 'CONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\n' > "$R/boot/config-$KVER"
fi
chroot "$R" depmod "$KVER"
INITRD=$SYS/initrd-$KVER-$(basename "$ROOTFS" .tar)
if [ ! -s "$INITRD" ]; then
	rm -f "$SYS/initrd-$KVER-"*
	echo "making the initramfs of $KVER with initramfs-tools" >&2
	mount -t proc proc "$R/proc"
	chroot "$R" mkinitramfs -o "/boot/initrd.img-$KVER" "$KVER" >"$SYS/mkinitramfs.log" 2>&1
	rc=$?
	umount "$R/proc"
	[ $rc = 0 ] || { echo "mkinitramfs failed:"; tail -20 "$SYS/mkinitramfs.log"; exit 1; }
	cp "$R/boot/initrd.img-$KVER" "$INITRD"
fi

# The system: a root on the virtio disk, no login prompts on the console the check prints
# to, the package to install, the policy, the competitors and the check.
S=$HERE/system
echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$R/etc/fstab"
echo e2e-guest > "$R/etc/hostname"
for u in serial-getty@ttyS0.service getty@tty1.service; do ln -sf /dev/null "$R/etc/systemd/system/$u"; done
cp "$DEB" "$R/root/daxplug.deb"
cp "$S/check.sh" "$S/policy.toml" "$R/root/"
cp "$S/daxplug-e2e.service" "$R/etc/systemd/system/"
ln -sf /etc/systemd/system/daxplug-e2e.service "$R/etc/systemd/system/multi-user.target.wants/daxplug-e2e.service"
cp "$S/40-rhel-memory-hotadd.rules" "$S/99-e2e-trace.rules" "$R/etc/udev/rules.d/"
mkdir -p "$R/etc/daxctl.conf.d" && cp "$S/sysram.conf" "$R/etc/daxctl.conf.d/"
IMG=$SYS/disk-$KVER.img
rm -f "$IMG"
mkfs.ext4 -q -F -L root -d "$R" "$IMG" 3G >/dev/null
rm -rf "$R"
flock -u 8

# ---------------------------------------------------------------- the boots
# The hmem machine of the other layouts: node 1 = 1 GiB soft-reserved at 0x140000000.
APPEND="console=ttyS0 root=/dev/vda rw nokaslr panic=-1 loglevel=4 memmap=1G%0x140000000-1+0xefffffff"
boot() { # PHASE LOGNAME
	local log=$WORK/logs/system@$KVER-$2.log t0=$SECONDS
	timeout "$TIMEOUT" "$QEMU" -accel tcg,thread=single -cpu max -smp 2 "${NUMA[@]}" \
		-kernel "$VMLINUZ" -initrd "$INITRD" -append "$APPEND e2ephase=$1" \
		-drive "file=$IMG,if=virtio,format=raw" \
		-display none -nodefaults -serial stdio -monitor none -no-reboot </dev/null >"$log" 2>&1 || true
	tr -d '\r' < "$log" > "$log.txt" && mv "$log.txt" "$log"
	grep -q '^@@SYSTEM-END' "$log" || { echo "the system@$KVER $2 boot did not finish its check; log: $log"; tail -30 "$log"; exit 1; }
	echo "system@$KVER $2: $((SECONDS - t0)) s from power-on to power-off; $log"
}
boot install install
boot boot boot1
boot boot boot2
boot boot boot3
boot purge purge
rm -f "$IMG"
exit 0
