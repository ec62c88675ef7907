#!/bin/bash
# Real-kernel end-to-end tests: boot a stock Debian kernel under QEMU with 1 GiB of emulated
# device memory, run daxplug's scenarios inside the guest, report each as
# E2E PASS / E2E FAIL LAYOUT@KERNEL: ... Started by the e2e test of `cargo test`
# (crates/cli/tests/e2e.rs), which passes the daxplug binary to put in the guest.
#
# usage: tests/e2e/run.sh kernels      print the kernels to test, one per line (see E2E_KERNELS)
#        tests/e2e/run.sh LAYOUT       boot KVER (default: the first of `kernels`) with LAYOUT:
#   hmem       EFI soft-reserved range (memmap=%) -> dax_hmem -> dax0.0, kmem-type region
#   e820       legacy pmem (memmap=!) -> ndctl devdax namespace -> dax0.0, devdax-type region
#   cxl        volatile CXL type-3 device (QEMU >= 8) -> RAM region made through sysfs ->
#              dax_cxl -> dax0.0
#   agreement  the hmem machine running the model-versus-kernel sequences of
#              tests/e2e/agreement*.txt (the boot's own layout is printed first, for the model)
#   teeth      the competing-controller scenario against a deliberately broken protocol,
#              which must tear
#   daxctl     daxctl's own commands, transcript in $WORK/logs/daxctl@KVER-daxctl.txt
#   carve      the hmem machine carved into devices by daxplug create/resize/destroy, kmem
#              loaded by daxplug's first set
#   system     a real Debian 12 system (systemd, udevd, apt) on the hmem machine: the package
#              installed with apt and booted five times (tests/e2e/system/boot.sh)
# env:   DAXPLUG_BIN  the daxplug binary to test (required for a LAYOUT)
#        DAXPLUG_DEB  the Debian package (required for system)
#        E2E_KERNELS  kernels to test, each a version or a prefix of one (newest match wins),
#                     e.g. "6.12.115 7.3"; default: bookworm's own 6.1 (6.1.0-N-amd64), the
#                     newest Debian 6.12 (no daxX.Y/state) and the newest Debian kernel from
#                     7.3 on (which has it)
#        KVER         the exact kernel version of one LAYOUT run
#        WORK         downloads, kernels, initramfs, logs (default target/e2e)
#        TIMEOUT      seconds for one guest run (default 600)
#        FIXTURES     1: the hmem/cxl guest also captures sysfs trees at each step, extracted
#                     into $WORK/fixtures/LAYOUT@KERNEL (how tests/fixtures/cxl was made)
#        STRACE       1: also put strace in the guest and print an `strace -f -tt -T` of one
#                     online and one release (between @@STRACE-BEGIN/END; tests/e2e/perf.sh)
# Packages come from Debian through a private apt configuration under $WORK/apt (its own
# sources list, lists and cache): nothing is installed and the host's apt is left alone.
# Exit: 0 all scenarios passed; 1 a scenario failed (the guest log is kept in $WORK/logs);
#       77 the environment cannot run a guest (no QEMU, no packages): the caller prints SKIP.
# Never touches the host's /sys: everything happens inside the guest.
set -euo pipefail

METHOD=${1:?usage: run.sh kernels|hmem|e820|cxl|agreement|teeth|daxctl|carve|system}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-$TOP/target/e2e}
TIMEOUT=${TIMEOUT:-600}
mkdir -p "$WORK"/{debs,logs}
skip() { echo "SKIP: $*"; exit 77; }

command -v apt-get >/dev/null || skip "apt-get is not available to fetch Debian's kernels"
# The kernel matrix and the real-system layout run at once (two tests): one of them fetches
# and extracts packages at a time (released before the guest boots).
exec 9>"$WORK/.fetch.lock"
flock 9
command -v dpkg >/dev/null || skip "dpkg is not available to extract Debian's packages"

# ---------------------------------------------------------------- private apt
A=$WORK/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$KEYRING" ] || skip "$KEYRING is missing (package debian-archive-keyring)"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
{
	for suite in bookworm bookworm-updates bookworm-backports trixie-backports; do
		echo "deb [signed-by=$KEYRING] $MIRROR $suite main"
	done
	echo "deb [signed-by=$KEYRING] ${MIRROR%/debian}/debian-security bookworm-security main"
} > "$A/sources.list.$$"
if cmp -s "$A/sources.list.$$" "$A/sources.list"; then rm -f "$A/sources.list.$$"; else mv "$A/sources.list.$$" "$A/sources.list"; fi
APTO=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent
	-o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o Dir::State::Status=/dev/null
	-o APT::Architecture=amd64 -o Debug::NoLocking=1)
# The package lists are refreshed once a day (and whenever the sources change).
stamp=$A/lists/.updated
if [ ! -e "$stamp" ] || [ "$A/sources.list" -nt "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
	if apt-get "${APTO[@]}" update -qq >"$A/update.log" 2>&1; then touch "$stamp"; fi
fi
[ -n "$(ls "$A/lists" | grep -v partial)" ] || skip "cannot read Debian's package lists from $MIRROR ($(tail -1 "$A/update.log"))"
apt_search() { apt-cache "${APTO[@]}" search --names-only "$1" 2>/dev/null | awk '{print $1}'; }
download() { # package names (name or name/suite); every one must arrive in the cwd
	local p missing=()
	for p in "$@"; do ls "${p%%/*}"_*.deb >/dev/null 2>&1 || missing+=("$p"); done
	((${#missing[@]})) || return 0
	apt-get "${APTO[@]}" download -qq "${missing[@]}" >/dev/null 2>&1 || true
	for p in "${missing[@]}"; do ls "${p%%/*}"_*.deb >/dev/null 2>&1 || return 1; done
}

# ---------------------------------------------------------------- kernels
# Every Debian amd64 kernel apt knows: 6.12 LTS of bookworm as linux-image-V-unsigned (image
# and modules), trixie-backports' as linux-binary-V + linux-modules-V.
all_kernels() {
	{
		apt_search '^linux-image-[0-9.]+\+deb1[23]-amd64-unsigned$' | sed 's/^linux-image-//; s/-unsigned$//'
		# bookworm's own 6.1 LTS: linux-image-6.1.0-N-amd64-unsigned (version 6.1.0-N-amd64)
		apt_search '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' | sed 's/^linux-image-//; s/-unsigned$//'
		apt_search '^linux-binary-[0-9.]+\+deb1[23]-amd64$' | sed 's/^linux-binary-//'
	} | sort -uV
}
# newest VERSION matching a prefix ("6.12", "6.12.115", "7.3.4+deb13-amd64")
newest() { all_kernels | awk -v p="$1" 'index($0, p) == 1' | tail -1; }
# the first kernel with the atomic ABI (daxX.Y/state) is 7.3
atomic_abi() { [ "$(printf '%s\n7.3\n' "${1%%+*}" | sort -V | head -1)" = 7.3 ]; }
kernels() {
	local want k out=()
	if [ -n "${E2E_KERNELS:-}" ]; then
		for want in $E2E_KERNELS; do
			k=$(newest "$want")
			[ -n "$k" ] || skip "no Debian kernel matches '$want' (E2E_KERNELS); known: $(all_kernels | tr '\n' ' ')"
			out+=("$k")
		done
	else
		k=$(newest 6.1.0-) && [ -n "$k" ] || skip "no linux-image-6.1.0-*-amd64-unsigned package (bookworm's kernel) is known to apt"
		out+=("$k")
		k=$(newest 6.12.) && [ -n "$k" ] || skip "no linux-image-6.12.*+deb12-amd64-unsigned package is known to apt"
		out+=("$k")
		k=$(all_kernels | while read -r v; do atomic_abi "$v" && echo "$v"; done | tail -1)
		[ -n "$k" ] || skip "no Debian kernel from 7.3 on (with daxX.Y/state) is known to apt"
		out+=("$k")
	fi
	printf '%s\n' "${out[@]}"
}
if [ "$METHOD" = kernels ]; then kernels; exit 0; fi

DAXPLUG_BIN=$(realpath "${DAXPLUG_BIN:?DAXPLUG_BIN must name the daxplug binary}")
KVER=${KVER:-$(kernels | head -1)}
case $METHOD in hmem | e820 | cxl | agreement | atomic | teeth | daxctl | carve | system) ;; *) echo "unknown layout $METHOD" >&2; exit 2 ;; esac

# ---------------------------------------------------------------- QEMU
# hmem/e820 run on the host's QEMU; cxl needs volatile CXL memory (QEMU >= 8): bookworm's is
# 7.2, so QEMU 10 comes from bookworm-backports, extracted (it uses the host's libraries and
# the seabios package that the host's QEMU brought).
# A fresh machine gets them installed when it can be done: root, apt, the package registry.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v xz >/dev/null || need+=(xz-utils)
if ((${#need[@]})); then
	[ "$(id -u)" = 0 ] || skip "${need[*]} not installed, and only root can install it (apt-get install ${need[*]})"
	install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >"$WORK/install.log" 2>&1; }
	echo "installing ${need[*]} for the real-kernel tests" >&2
	# On a machine where apt-get update never ran, the package lists are empty: update first.
	install || { apt-get update -qq >"$WORK/install.log" 2>&1 && install; } ||
		skip "apt-get install ${need[*]} failed (no network to the package registry?): $(tail -1 "$WORK/install.log")"
fi
QEMU=qemu-system-x86_64
QEMU_L=()
qemu_major() { "$1" --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p'; }
if [ "$METHOD" = cxl ] && [ "$(qemu_major "$QEMU")" -lt 8 ]; then
	Q=$WORK/qemu-backports
	if [ ! -x "$Q/usr/bin/qemu-system-x86_64" ]; then
		mkdir -p "$WORK/debs/qemu" && cd "$WORK/debs/qemu"
		download qemu-system-x86/bookworm-backports qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports ||
			skip "cannot download QEMU >= 8 from bookworm-backports for the cxl layout"
		rm -rf "$Q"; mkdir -p "$Q"
		for d in *.deb; do dpkg -x "$d" "$Q"; done
	fi
	missing=$(ldd "$Q/usr/bin/qemu-system-x86_64" | awk '/not found/{print $1}' | tr '\n' ' ')
	[ -z "$missing" ] || skip "QEMU from bookworm-backports lacks host libraries: $missing"
	QEMU=$Q/usr/bin/qemu-system-x86_64
	QEMU_L=(-L "$Q/usr/share/qemu" -L /usr/share/seabios)
fi

# ---------------------------------------------------------------- packages
TOOLS=(busybox-static jq libjq1 libonig5 ndctl daxctl libndctl6 libdaxctl1 libcxl1 libiniparser1 libtraceevent1 libtracefs1
	libkmod2 libjson-c5 libkeyutils1 libudev1 libuuid1 liblzma5 libzstd1 libssl3)
cd "$WORK/debs"
download "${TOOLS[@]}" || skip "cannot download the guest's tools (${TOOLS[*]}) from Debian"
if [ "${STRACE:-0}" = 1 ]; then
	download strace libunwind8 || { echo "cannot download strace for STRACE=1" >&2; exit 1; }
	mkdir -p "$WORK/strace" && for p in strace libunwind8; do dpkg -x "$p"_*.deb "$WORK/strace"; done
fi
KDIR=$WORK/kernel-$KVER
if [ ! -e "$KDIR/.done" ]; then
	if apt_search "^linux-image-${KVER//+/\\+}-unsigned\$" | grep -q .; then
		KPKGS=("linux-image-$KVER-unsigned")
	else
		KPKGS=("linux-binary-$KVER" "linux-modules-$KVER")
	fi
	download "${KPKGS[@]}" || skip "cannot download ${KPKGS[*]}"
	rm -rf "$KDIR"; mkdir -p "$KDIR"
	for p in "${KPKGS[@]}"; do dpkg -x "$p"_*.deb "$KDIR"; done
	touch "$KDIR/.done"
fi
VMLINUZ=$(find "$KDIR" -name "vmlinuz*" -type f | head -1)
MODROOT=$(dirname "$(find "$KDIR" -path "*/modules/$KVER/kernel" -type d | head -1)")
[ -n "$VMLINUZ" ] && [ -d "$MODROOT/kernel" ] || { echo "no vmlinuz or modules in the package of $KVER" >&2; exit 1; }
TDIR=$WORK/tools
# Extracted again whenever the list of tools changes (the stamp holds it).
if [ "$(cat "$TDIR/.done" 2>/dev/null)" != "${TOOLS[*]}" ]; then
	rm -rf "$TDIR"; mkdir -p "$TDIR"
	for p in "${TOOLS[@]}"; do dpkg -x "$p"_*.deb "$TDIR"; done
	echo "${TOOLS[*]}" > "$TDIR/.done"
fi

# 5 GiB guest: node 0 = 0-3G + 4G-5G; node 1 = 5G-6G, CPU-less, the device memory.
NUMA=(-machine pc -m 5G -object memory-backend-ram,id=m0,size=4G -object memory-backend-ram,id=m1,size=1G
	-numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,memdev=m1)
flock -u 9
# The real-system layout boots a Debian root file system of its own (tests/e2e/system/).
if [ "$METHOD" = system ]; then
	# shellcheck source=system/boot.sh
	source "$HERE/system/boot.sh"
fi

# ---------------------------------------------------------------- initramfs
# busybox, jq, the modules a layout needs with everything they depend on (/moddeps: one line
# "name dep..." each, from the modules' own depends= fields, read by the guest's modload),
# ndctl/daxctl, daxplug, their libraries.
# One root and initramfs per layout and kernel: the tests boot several guests at once.
R=$WORK/root-$METHOD@$KVER
rm -rf "$R"; mkdir -p "$R"/{bin,usr/bin,lib64,lib/x86_64-linux-gnu,proc,sys,dev,run,tmp}
cp "$TDIR/bin/busybox" "$R/bin/busybox"
cp "$HERE/guest/init" "$R/init"; chmod 755 "$R/init"
cp "$HERE"/guest/*.sh "$HERE"/agreement*.txt "$R/"
cp "$DAXPLUG_BIN" "$R/usr/bin/daxplug"
MODS=(libnvdimm nd_btt nd_pmem nd_e820 dax_pmem device_dax kmem dax_hmem fsdev_dax)
[ "$METHOD" = cxl ] && MODS+=(cxl_acpi cxl_pci cxl_mem cxl_pmem cxl_port dax_cxl)
: > "$R/moddeps"
declare -A seen=()
add_module() {
	local m=$1 src rel deps d
	[ -z "${seen[$m]:-}" ] || return 0
	seen[$m]=1
	src=$(find "$MODROOT/kernel" -name "$m.ko*" | head -1)
	[ -n "$src" ] || return 0 # built in (or absent: the guest says so when it loads it)
	rel=lib/modules/$KVER/${src#"$MODROOT"/}; rel=${rel%.xz}
	mkdir -p "$R/$(dirname "$rel")"
	case $src in *.xz) xz -dc "$src" > "$R/$rel" ;; *) cp "$src" "$R/$rel" ;; esac
	deps=$(tr '\0' '\n' < "$R/$rel" | sed -n 's/^depends=//p' | head -1 | tr ',' ' ')
	echo "$m $deps" >> "$R/moddeps"
	for d in $deps; do add_module "$d"; done
}
for m in "${MODS[@]}"; do add_module "${m//-/_}"; done
LIBP=$TDIR/usr/lib/x86_64-linux-gnu:$TDIR/lib/x86_64-linux-gnu
BINS=("$TDIR"/usr/bin/{ndctl,daxctl,jq} "$R/usr/bin/daxplug")
if [ "${STRACE:-0}" = 1 ]; then
	cp "$WORK/strace/usr/bin/strace" "$R/usr/bin/"; BINS+=("$R/usr/bin/strace")
	LIBP+=:$WORK/strace/usr/lib/x86_64-linux-gnu
fi
for lib in $(LD_LIBRARY_PATH=$LIBP ldd "${BINS[@]}" | awk '/=> \//{print $3}' | sort -u); do
	cp -L "$lib" "$R/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
for b in ndctl daxctl jq; do cp "$TDIR/usr/bin/$b" "$R/usr/bin/"; done
INITRD=$WORK/initramfs-$METHOD@$KVER.cpio.gz
(cd "$R" && find . | "$TDIR/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$INITRD")

# ---------------------------------------------------------------- the machine
ABI=legacy; atomic_abi "$KVER" && ABI=atomic
APPEND="console=ttyS0 loglevel=3 panic=-1 nokaslr testmethod=$METHOD strace=${STRACE:-0} e2eabi=$ABI fixtures=${FIXTURES:-0}"
CPU=max
case $METHOD in
hmem | agreement | atomic | teeth | daxctl | carve) MACH=("${NUMA[@]}"); APPEND+=" memmap=1G%0x140000000-1+0xefffffff" ;;
e820) MACH=("${NUMA[@]}"); APPEND+=" memmap=1G!0x140000000" ;;
cxl)
	# One volatile type-3 device behind a CXL host bridge; the fixed memory window (4 GiB)
	# becomes a CPU-less node. The kernel refuses to commit a region when CPUID says
	# "hypervisor" (no way to invalidate CPU caches in a VM), so that bit is hidden.
	MACH=(-machine q35,cxl=on -m 4G,slots=2,maxmem=8G
		-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1
		-device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2
		-object memory-backend-ram,id=cxl-mem1,size=1G
		-device cxl-type3,bus=root_port13,volatile-memdev=cxl-mem1,id=cxl-vmem0
		-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G)
	CPU=max,hypervisor=off
	;;
esac
TAG=$METHOD@$KVER
LOG=$WORK/logs/$TAG.log
# One host thread for both vCPUs: with multi-threaded TCG, 7.3's boot-time text patching
# (int3 breakpoints while another vCPU runs the patched code) oopses now and then.
timeout "$TIMEOUT" "$QEMU" "${QEMU_L[@]}" -accel tcg,thread=single -cpu "$CPU" -smp 2 "${MACH[@]}" \
	-kernel "$VMLINUZ" -initrd "$INITRD" -append "$APPEND" \
	-display none -nodefaults -serial stdio -monitor none -no-reboot </dev/null > "$LOG" 2>&1 || true
tr -d '\r' < "$LOG" > "$LOG.txt" && mv "$LOG.txt" "$LOG"

grep -q '@@E2E-END' "$LOG" || { echo "the $TAG guest did not finish its scenarios; log: $LOG"; tail -20 "$LOG"; exit 1; }
grep -E '^E2E (PASS|FAIL|TIME|OWN)' "$LOG" || true
section() { # NAME file: the lines between @@NAME-BEGIN and @@NAME-END, where the guest printed them
	rm -f "$2"
	grep -q "^@@$1-BEGIN" "$LOG" && sed -n "/^@@$1-BEGIN/,/^@@$1-END/p" "$LOG" | sed '1d;$d' > "$2"
	return 0
}
section BOOT "$WORK/logs/$TAG-boot.txt"
section AGREEMENT "$WORK/logs/$TAG-agreement.txt"
section DAXCTL "$WORK/logs/$TAG-daxctl.txt"
section FACTS "$WORK/logs/$TAG-facts.txt"
section ZONEINFO "$WORK/logs/$TAG-zoneinfo.txt"
# FIXTURES=1: the sysfs trees the guest captured, as tests/fixtures/ holds them.
if grep -q '^@@FIXTURES-BEGIN' "$LOG"; then
	rm -rf "$WORK/fixtures/$TAG" && mkdir -p "$WORK/fixtures/$TAG"
	sed -n '/^@@FIXTURES-BEGIN/,/^@@FIXTURES-END/p' "$LOG" | sed '1d;$d' | base64 -d | tar xzf - -C "$WORK/fixtures/$TAG"
	echo "fixtures: $WORK/fixtures/$TAG"
fi
grep -q '^@@STRACE-BEGIN' "$LOG" && sed -n '/@@STRACE-BEGIN/,/@@STRACE-END/p' "$LOG" > "$WORK/logs/$TAG-strace.txt"
if grep -q '^E2E FAIL' "$LOG"; then
	echo "guest log kept: $LOG"
	exit 1
fi
exit 0
