#!/bin/sh
# The e2e guests' library, sourced by /guest.sh before a layout's script: who and where this
# guest is, pass/fail lines, module loading, daxplug's JSON read with jq, `set` with its exit
# code and time, the checks every layout shares, and a competing controller.
# Every line "E2E PASS name" or "E2E FAIL name: why" is one checked scenario step; the host
# (tests/e2e/run.sh, crates/cli/tests/e2e.rs) collects them. Everything written to /sys here
# is the guest's.

METHOD=$(sed -n 's/.*testmethod=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
# The ABI the harness expects of this kernel (daxX.Y/state from 7.3 on): atomic or legacy.
ABI=$(sed -n 's/.*e2eabi=\([a-z]*\).*/\1/p' /proc/cmdline)
KVER=$(uname -r)
MODDIR=/lib/modules/$KVER/kernel
M=/sys/devices/system/memory
D=dax0.0
FAILS=0

pass() { echo "E2E PASS $METHOD@$KVER: $*"; }
fail() { echo "E2E FAIL $METHOD@$KVER: $*"; FAILS=$((FAILS + 1)); }
# modprobe MODULE...: loads each module after what it depends on (/moddeps, written by
# run.sh from the modules' own depends= fields); a module absent from /moddeps is built in.
# It replaces busybox's (this initramfs has no modules.dep), so daxplug's own `modprobe
# kmem` goes through it too.
rm -f /bin/modprobe
mkdir -p /sbin
cat > /sbin/modprobe <<'EOF'
#!/bin/sh
MODDIR=/lib/modules/$(uname -r)/kernel
load() {
	grep -q "^$1 " /proc/modules && return 0
	deps=$(grep "^$1 " /moddeps) || return 0
	for d in ${deps#* }; do load $d || return 1; done
	insmod "$(find $MODDIR -name "$1.ko" | head -1)" || { echo "insmod $1 failed" >&2; return 1; }
}
for m; do case $m in -*) ;; *) load $m || exit 1 ;; esac; done
EOF
chmod +x /sbin/modprobe
modload() { /sbin/modprobe "$@"; }
# boot_layout: what this boot decided (the kernel image's resources, firmware ranges, boot
# memory per node), printed once the layout's modules are loaded and before any dax device is
# bound: the model adopts it for the agreement comparison (crates/cli/tests/e2e.rs).
boot_layout() {
	echo "@@BOOT-BEGIN"
	cat /proc/iomem
	for n in /sys/devices/system/node/node*; do echo "${n##*/} $(sed -n 's/.*MemTotal: *\([0-9]*\) kB/\1/p' $n/meminfo)"; done
	echo "@@BOOT-END"
}
# daxplug's JSON, read with jq (docs/JSON.md): listq FILTER on `list --json`, statusq DEV
# FILTER on `status DEV --json`; doctor_has CODE [FILE]: whether doctor (or its saved JSON)
# has a finding with CODE.
listq() { daxplug list --json | jq -r "$1"; }
statusq() { daxplug status "$1" --json | jq -r "$2"; }
doctor_has() {
	if [ -n "$2" ]; then jq -e --arg c "$1" 'any(.findings[]; .code == $c)' "$2" > /dev/null
	else daxplug doctor --json 2> /dev/null | jq -e --arg c "$1" 'any(.findings[]; .code == $c)' > /dev/null; fi
}
# The observed state daxplug reports for the device.
# state_of DEV: the observed state daxplug reports for DEV.
state_of() { daxplug status $1 --json | jq -r '.devices[0].state'; }
state() { state_of $D; }
memtotal() { sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo; }
aob() { cat $M/auto_online_blocks; }
# The boot default of auto_online_blocks (online on Debian's 6.12 and 7.3, offline on 6.1):
# what the harness puts back, and what a transition must leave.
AOB0=$(cat $M/auto_online_blocks)
ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
# set DEV STATE [args]: runs daxplug set, records its exit code in $RC and its time in $MS,
# and auto_online_blocks before it in $AOB_BEFORE.
dset() {
	AOB_BEFORE=$(aob)
	t0=$(ms)
	daxplug set $D "$@" > /tmp/set.out 2>&1
	RC=$?
	MS=$(( $(ms) - t0 ))
	sed 's/^/    | /' /tmp/set.out
}
# own NAME: daxplug's own report of the last set: total, time in kernel writes, settling.
own() {
	total=$(sed -n 's/.*: done in \([0-9.]*\) ms.*/\1/p' /tmp/set.out | head -1)
	kernel=$(sed -n 's/.*; \([0-9.]*\) ms of it in kernel writes.*/\1/p' /tmp/set.out | head -1)
	settle=$(sed -n 's/.*, \([0-9.]*\) ms settling.*/\1/p' /tmp/set.out | head -1)
	echo "E2E OWN daxplug $1 ${total:-0} ${kernel:-0} ${settle:-0}"
}
expect() { # name wanted-state wanted-rc
	s=$(state)
	if [ "$s" = "$2" ] && [ "$RC" = "$3" ]; then pass "$1 (rc $RC, $s, ${MS}ms)"; else fail "$1: rc $RC, state $s; expected rc $3, state $2"; fi
	counts_agree "$1"
}
# counts_agree NAME: `list` (block counts from the node's zone totals where they can only be
# one device's) and `list --blocks` (every block read) give every device the same state and
# counts.
counts_agree() {
	f='[.devices[] | {name, state, blocks}]'
	a=$(daxplug list --json | jq -c "$f")
	b=$(daxplug list --json --blocks | jq -c "$f")
	[ "$a" = "$b" ] && pass "$1: list's zone totals and the per-block read agree" || fail "$1: list says $a; read block by block, $b"
}
no_iomem() { # name
	if grep -q "$D\|System RAM (kmem)" /proc/iomem; then fail "$1: /proc/iomem still lists the device"; else pass "$1: /proc/iomem clean"; fi
}
# zones_rule NAME: on this kernel, every block's valid_zones names one zone exactly when
# the block is online (discovery reads a block's state only when it names several).
zones_rule() {
	bad=""; n=0
	for b in $M/memory*; do
		[ -e "$b/valid_zones" ] || continue
		s=$(cat "$b/state"); z=$(cat "$b/valid_zones"); w=$(echo $z | wc -w)
		n=$((n + 1))
		if { [ "$s" = online ] && [ "$w" != 1 ]; } || { [ "$s" != online ] && [ "$w" = 1 ]; }; then
			bad="$bad ${b##*/}=$s/$z"
		fi
	done
	[ -z "$bad" ] && pass "$1 ($n blocks)" || fail "$1:$bad"
}
# kmem_under POLICY: loads kmem with auto_online_blocks set to POLICY for its auto-bind,
# then puts the boot default back. A kernel whose kmem matches no region by type (6.1:
# device_dax takes every device as it appears, kmem only what new_id names) gets the device
# moved to kmem the way such a kernel needs, under the same policy.
kmem_under() {
	echo "$1" > $M/auto_online_blocks
	modload kmem
	if [ ! -e /sys/bus/dax/drivers/kmem/$D ] && [ -e /sys/bus/dax/drivers/device_dax/$D ]; then
		echo "    (this kernel's kmem binds by new_id only: device_dax released $D, kmem given its id)"
		echo $D > /sys/bus/dax/drivers/device_dax/unbind
		echo $D > /sys/bus/dax/drivers/kmem/new_id
	fi
	echo $AOB0 > $M/auto_online_blocks
}
# kmem_loaded_by_daxplug NAME: the last set loaded kmem itself (modprobe, the guest's
# wrapper below), with the bus's autoprobe off for the load and back on after it.
kmem_loaded_by_daxplug() {
	grep -q "modprobe kmem" /tmp/set.out && [ -e /sys/bus/dax/drivers/kmem ] &&
		pass "$1: daxplug loaded kmem" || fail "$1: kmem not loaded by daxplug"
	[ "$(cat /sys/bus/dax/drivers_autoprobe)" = 1 ] && grep -q "drivers_autoprobe" /tmp/set.out &&
		pass "$1: drivers_autoprobe off for the load, 1 again after" || fail "$1: drivers_autoprobe $(cat /sys/bus/dax/drivers_autoprobe)"
	[ "$(aob)" = "$AOB_BEFORE" ] && pass "$1: auto_online_blocks restored to $AOB_BEFORE" || fail "$1: auto_online_blocks is $(aob), was $AOB_BEFORE"
}
# lay ARGS...: runs a daxplug layout command (create, resize, destroy), its exit code in $RC.
lay() {
	daxplug "$@" > /tmp/lay.out 2>&1
	RC=$?
	sed 's/^/    | /' /tmp/lay.out
}
# lay_expect NAME DEV STATE SIZE RC: after `lay`, DEV is in STATE with SIZE bytes and the
# command exited RC.
lay_expect() {
	s=$(state_of $2); z=$(cat /sys/bus/dax/devices/$2/size 2>/dev/null)
	if [ "$s" = "$3" ] && [ "$z" = "$4" ] && [ "$RC" = "$5" ]; then pass "$1 (rc $RC, $s, $z bytes)"; else fail "$1: rc $RC, $s, $z bytes; expected rc $5, $3, $4 bytes"; fi
}
# abi_check NAME: daxplug names the ABI this kernel has (atomic from 7.3 on, legacy before).
abi_check() {
	got=$(listq .kernel.abi)
	[ "$got" = "$ABI" ] && pass "$1: kernel ABI $ABI" || fail "$1: kernel ABI should be $ABI, daxplug says $got"
}
# kstate: the kernel's own daxX.Y/state (atomic ABI), or "-".
# What `set unplugged` ends in: legacy kernels unbind kmem (the range released), kernels with
# daxX.Y/state keep kmem bound with no memory blocks.
UNPL=unbound; [ "$ABI" = atomic ] && UNPL=unplugged
kstate() { cat /sys/bus/dax/devices/$D/state 2>/dev/null || echo -; }
# The device's memory blocks (hmem: memory40-47; cxl: where the CXL window put it), from its
# range and the block size; set by device_blocks once the device exists.
BLOCKS="40 41 42 43 44 45 46 47"
device_blocks() {
	start=$(cat /sys/bus/dax/devices/$D/resource)
	size=$(cat /sys/bus/dax/devices/$D/size)
	bs=$((0x$(cat $M/block_size_bytes)))
	i=$(( (start + bs - 1) / bs )); last=$(( (start + size) / bs - 1 ))
	BLOCKS=""
	while [ $i -le $last ]; do BLOCKS="$BLOCKS $i"; i=$((i + 1)); done
	set -- $BLOCKS
	B0=$1; B3=$4; B4=$5; B5=$6
}
blocks_present() { n=0; for b in $BLOCKS; do [ -e $M/memory$b ] && n=$((n + 1)); done; echo $n; }
# A competing controller: onlines every offline block of the device it sees, in a loop.
competitor_start() {
	( while :; do
		for b in $BLOCKS; do
			f=$M/memory$b/state
			[ -e "$f" ] && [ "$(cat "$f" 2>/dev/null)" = offline ] && echo online > "$f" 2>/dev/null
		done
	done ) &
	COMP=$!
}
competitor_stop() { kill $COMP 2>/dev/null; wait $COMP 2>/dev/null; }
