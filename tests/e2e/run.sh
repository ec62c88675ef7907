#!/bin/bash
# Real-kernel end-to-end tests: boot Debian's stock 6.12 kernel under QEMU with 1 GiB of
# emulated device memory, run daxplug's scenarios inside the guest, report each as
# E2E PASS / E2E FAIL. Started by the e2e test of `cargo test` (crates/cli/tests/e2e.rs),
# which passes the daxplug binary to put in the guest.
#
# usage: tests/e2e/run.sh hmem|e820|agreement|teeth|daxctl   (agreement: the hmem machine
#        running the model-versus-kernel sequences of tests/e2e/agreement.txt; teeth: the
#        competing-controller scenario against a deliberately broken protocol, which must
#        tear; daxctl: daxctl's own commands, transcript in $WORK/logs/daxctl-daxctl.txt)
# env:   DAXPLUG_BIN  the daxplug binary to test (required)
#        WORK         downloads, kernel, initramfs, logs (default target/e2e)
#        KVER         kernel version (default: newest linux-image-6.12.*+deb12-amd64-unsigned)
#        TIMEOUT      seconds for one guest run (default 600)
#        STRACE       1: also put strace in the guest and print an `strace -f -tt -T` of one
#                     online and one release (between @@STRACE-BEGIN/END; tests/e2e/perf.sh)
# Exit: 0 all scenarios passed; 1 a scenario failed (the guest log is kept in $WORK/logs);
#       77 the environment cannot run a guest (no QEMU, no packages): the caller prints SKIP.
# Never touches the host's /sys: everything happens inside the guest.
set -euo pipefail

METHOD=${1:?usage: run.sh hmem|e820|agreement|teeth|daxctl}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-$TOP/target/e2e}
TIMEOUT=${TIMEOUT:-600}
DAXPLUG_BIN=$(realpath "${DAXPLUG_BIN:?DAXPLUG_BIN must name the daxplug binary}")
mkdir -p "$WORK"/{debs,logs}
skip() { echo "SKIP: $*"; exit 77; }

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
command -v xz >/dev/null || skip "xz is not installed"
command -v apt-get >/dev/null || skip "apt-get is not available to fetch the kernel"

if [ -z "${KVER:-}" ]; then
	find_kver() {
		apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' 2>/dev/null |
			awk '{print $1}' | sed 's/^linux-image-//; s/-unsigned$//' | sort -V | tail -1
	}
	KVER=$(find_kver)
	[ -n "$KVER" ] || { apt-get update -qq >/dev/null 2>&1 || true; KVER=$(find_kver); }
	[ -n "$KVER" ] || skip "no linux-image-6.12.*+deb12-amd64-unsigned package is known to apt"
fi

PKGS=(linux-image-$KVER-unsigned busybox-static ndctl daxctl libndctl6 libdaxctl1 libcxl1 libiniparser1
	libtraceevent1 libtracefs1 libkmod2 libjson-c5 libkeyutils1 libudev1 libuuid1 liblzma5 libzstd1 libssl3)
cd "$WORK/debs"
missing=()
for p in "${PKGS[@]}"; do ls "${p}"_*.deb >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
	apt-get download -qq "${missing[@]}" >/dev/null 2>&1 || true
	for p in "${missing[@]}"; do ls "${p}"_*.deb >/dev/null 2>&1 || skip "cannot download the Debian package $p"; done
fi
if [ "${STRACE:-0}" = 1 ]; then
	for p in strace libunwind8; do
		ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -qq "$p" >/dev/null 2>&1 || { echo "cannot download $p for STRACE=1" >&2; exit 1; }
	done
	mkdir -p "$WORK/strace" && for p in strace libunwind8; do dpkg -x "$p"_*.deb "$WORK/strace"; done
fi
KDIR=$WORK/kernel-$KVER
[ -e "$KDIR/boot/vmlinuz-$KVER" ] || { mkdir -p "$KDIR"; dpkg -x linux-image-"$KVER"-unsigned_*.deb "$KDIR"; }
TDIR=$WORK/tools
if [ ! -e "$TDIR/.done" ]; then
	mkdir -p "$TDIR"
	for p in "${PKGS[@]:1}"; do dpkg -x "$p"_*.deb "$TDIR"; done
	touch "$TDIR/.done"
fi

# The initramfs: busybox, the modules the scenarios load, ndctl/daxctl, daxplug, their libraries.
R=$WORK/root-$METHOD
rm -rf "$R"; mkdir -p "$R"/{bin,usr/bin,lib64,lib/x86_64-linux-gnu,proc,sys,dev,run,tmp}
cp "$TDIR/bin/busybox" "$R/bin/busybox"
cp "$HERE/guest/init" "$R/init"; chmod 755 "$R/init"
cp "$HERE/guest/scenarios.sh" "$HERE/guest/agreement.sh" "$HERE/guest/daxctl.sh" "$HERE/agreement.txt" "$R/"
cp "$DAXPLUG_BIN" "$R/usr/bin/daxplug"
for m in libnvdimm nd_btt nd_pmem nd_e820 dax_pmem device_dax kmem dax_hmem; do
	src=$(find "$KDIR/lib/modules/$KVER" -name "$m.ko*" | head -1)
	[ -n "$src" ] || { echo "module $m missing from the kernel package" >&2; exit 1; }
	rel=${src#"$KDIR"/}; rel=${rel%.xz}
	mkdir -p "$R/$(dirname "$rel")"
	xz -dc "$src" > "$R/$rel"
done
LIBP=$TDIR/usr/lib/x86_64-linux-gnu:$TDIR/lib/x86_64-linux-gnu
BINS=("$TDIR"/usr/bin/{ndctl,daxctl} "$R/usr/bin/daxplug")
if [ "${STRACE:-0}" = 1 ]; then
	cp "$WORK/strace/usr/bin/strace" "$R/usr/bin/"; BINS+=("$R/usr/bin/strace")
	LIBP+=:$WORK/strace/usr/lib/x86_64-linux-gnu
fi
for lib in $(LD_LIBRARY_PATH=$LIBP ldd "${BINS[@]}" | awk '/=> \//{print $3}' | sort -u); do
	cp -L "$lib" "$R/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
for b in ndctl daxctl; do cp "$TDIR/usr/bin/$b" "$R/usr/bin/"; done
INITRD=$WORK/initramfs-$METHOD.cpio.gz
(cd "$R" && find . | "$TDIR/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$INITRD")

# 5 GiB guest: node 0 = 0-3G + 4G-5G; node 1 = 5G-6G, CPU-less, the device memory.
APPEND="console=ttyS0 loglevel=3 panic=-1 nokaslr testmethod=$METHOD strace=${STRACE:-0}"
case $METHOD in
hmem | agreement | teeth | daxctl) APPEND+=" memmap=1G%0x140000000-1+0xefffffff" ;;
e820) APPEND+=" memmap=1G!0x140000000" ;;
*) echo "unknown method $METHOD" >&2; exit 2 ;;
esac
LOG=$WORK/logs/$METHOD.log
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -machine pc \
	-m 5G -object memory-backend-ram,id=m0,size=4G -object memory-backend-ram,id=m1,size=1G \
	-numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,memdev=m1 \
	-kernel "$KDIR/boot/vmlinuz-$KVER" -initrd "$INITRD" -append "$APPEND" \
	-display none -nodefaults -serial stdio -monitor none -no-reboot </dev/null > "$LOG" 2>&1 || true
tr -d '\r' < "$LOG" > "$LOG.txt" && mv "$LOG.txt" "$LOG"

grep -q '@@E2E-END' "$LOG" || { echo "the guest did not finish its scenarios; log: $LOG"; tail -20 "$LOG"; exit 1; }
grep -E '^E2E (PASS|FAIL|TIME|OWN)' "$LOG" || true
sed -n '/@@AGREEMENT-BEGIN/,/@@AGREEMENT-END/p' "$LOG" | sed '1d;$d' > "$WORK/logs/$METHOD-agreement.txt"
sed -n '/@@DAXCTL-BEGIN/,/@@DAXCTL-END/p' "$LOG" | sed '1d;$d' > "$WORK/logs/$METHOD-daxctl.txt"
sed -n '/@@STRACE-BEGIN/,/@@STRACE-END/p' "$LOG" > "$WORK/logs/$METHOD-strace.txt"
if grep -q '^E2E FAIL' "$LOG"; then
	echo "guest log kept: $LOG"
	exit 1
fi
exit 0
