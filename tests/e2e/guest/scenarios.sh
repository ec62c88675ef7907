#!/bin/sh
# daxplug's end-to-end scenarios, run inside the QEMU guest (busybox ash) by /init.
# Every line "E2E PASS name" or "E2E FAIL name: why" is one checked scenario step; the host
# (tests/e2e/run.sh) collects them. Everything written to /sys here is the guest's.

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
# nodefield N FIELD: FIELD of node N in daxplug's list --json (null where absent).
nodefield() { daxplug list --json | awk -v n="$1" -v f="$2" '$0 ~ "\"node\": "n"," { in_node = 1 } in_node && $0 ~ "\""f"\":" { sub(/.*": /, ""); sub(/,$/, ""); gsub(/"/, ""); print; exit }'; }
# in_nodelist N LIST: whether node N is in a kernel node list ("0-1,3").
in_nodelist() { echo "$2" | awk -v n="$1" -F, '{ for (i = 1; i <= NF; i++) { split($i, r, "-"); if (r[2] == "") r[2] = r[1]; if (n >= r[1] && n <= r[2]) found = 1 } } END { exit !found }'; }
# placement_check NAME: daxplug's memory tier, demotion and interleave weight of the
# device's target node against this kernel's own files, and doctor's demotion warning.
placement_check() {
	N=$(cat /sys/bus/dax/devices/$D/target_node)
	TIERS=/sys/devices/virtual/memory_tiering
	want=null
	if [ -d $TIERS ]; then
		for t in $TIERS/memory_tier*; do
			in_nodelist $N "$(cat $t/nodelist)" && want=${t##*memory_tier}
		done
	fi
	got=$(nodefield $N memory_tier)
	[ "$got" = "$want" ] && pass "$1: node $N's memory tier is the kernel's ($got)" || fail "$1: daxplug says memory tier $got for node $N, the kernel's files say $want"
	echo "E2E INFO $METHOD@$KVER: memory tiers: $(for t in $TIERS/memory_tier*; do printf '%s=%s ' ${t##*/} $(cat $t/nodelist); done)"
	DEM=/sys/kernel/mm/numa/demotion_enabled
	want=null; [ -e $DEM ] && want=$(cat $DEM)
	got=$(daxplug list --json | sed -n 's/.*"demotion_enabled": \([a-z]*\).*/\1/p' | head -1)
	[ "$got" = "$want" ] && pass "$1: demotion_enabled is the kernel's ($got)" || fail "$1: daxplug says demotion_enabled $got, the kernel $want"
	WI=/sys/kernel/mm/mempolicy/weighted_interleave
	want=null; [ -e $WI/node$N ] && want=$(cat $WI/node$N)
	got=$(nodefield $N interleave_weight)
	[ "$got" = "$want" ] && pass "$1: node $N's interleave weight is the kernel's ($got)" || fail "$1: daxplug says interleave weight $got, the kernel $want"
	want=manual; [ -e $WI/auto ] && [ "$(cat $WI/auto)" = true ] && want=auto
	[ -d $WI ] || want=null
	got=$(daxplug list --json | awk '/"weighted_interleave": \{/ { w = 1 } w && /"mode":/ { gsub(/.*": "|",?$/, ""); print; exit }')
	[ "${got:-null}" = "$want" ] && pass "$1: weighted interleave mode $want, as the kernel's files say" || fail "$1: weighted interleave mode: daxplug $got, kernel $want"
	# doctor warns of demotion off while device memory sits in a slower tier, and stops when
	# demotion is switched on (then daxplug says demotion reaches the node).
	tier=$(nodefield $N memory_tier); dram=$(daxplug list --json | sed -n 's/.*"dram_tier": \([0-9a-z]*\).*/\1/p' | head -1)
	if [ -e $DEM ] && [ "$tier" != null ] && [ "$dram" != null ] && [ "$tier" -gt "$dram" ]; then
		before=$(cat $DEM)
		echo false > $DEM
		daxplug doctor --json | grep -q '"demotion_off"' && pass "$1: doctor warns that demotion is off (tier $tier below DRAM's $dram)" || fail "$1: doctor is silent about demotion off"
		echo true > $DEM
		daxplug doctor --json | grep -q '"demotion_off"' && fail "$1: doctor warns of demotion off while it is on" || pass "$1: demotion on: no warning"
		[ "$(nodefield $N demotion)" = reaches ] && pass "$1: demotion reaches node $N" || fail "$1: demotion $(nodefield $N demotion) for node $N with demotion on"
		echo $before > $DEM
	elif [ -e $DEM ]; then
		pass "$1: node $N is in tier $tier, DRAM in $dram: no demotion check"
	fi
}
# The observed state daxplug reports for the device.
state() { daxplug status $D --json | grep -o '"state": "[a-z_]*"' | head -1 | cut -d'"' -f4; }
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
# state_of DEV: the observed state daxplug reports for DEV.
state_of() { daxplug status $1 --json | grep -o '"state": "[a-z_]*"' | head -1 | cut -d'"' -f4; }
# lay_expect NAME DEV STATE SIZE RC: after `lay`, DEV is in STATE with SIZE bytes and the
# command exited RC.
lay_expect() {
	s=$(state_of $2); z=$(cat /sys/bus/dax/devices/$2/size 2>/dev/null)
	if [ "$s" = "$3" ] && [ "$z" = "$4" ] && [ "$RC" = "$5" ]; then pass "$1 (rc $RC, $s, $z bytes)"; else fail "$1: rc $RC, $s, $z bytes; expected rc $5, $3, $4 bytes"; fi
}
# abi_check NAME: daxplug names the ABI this kernel has (atomic from 7.3 on, legacy before).
abi_check() {
	daxplug list --json | grep -q "\"abi\": \"$ABI\"" && pass "$1: kernel ABI $ABI" || fail "$1: kernel ABI should be $ABI: $(daxplug list --json | grep abi)"
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

# snapshot NAME: with fixtures=1 on the command line (FIXTURES=1 tests/e2e/run.sh cxl), a
# copy of the files daxplug and the model's fixture test read, as tests/fixtures/ holds them:
# /proc/iomem and meminfo, the memory directory and the device's blocks, the nodes, the dax
# bus, the device, its mapping and its region. Shipped at the end as a base64 tar.
SNAPROOT=/tmp/fixtures
snap_files() { # DIR: DIR's files and links, not its subdirectories
	t=$SNAP$1
	mkdir -p "$t"
	for f in "$1"/*; do
		n=${f##*/}
		if [ -L "$f" ]; then ln -s "$(readlink "$f")" "$t/$n"
		elif [ -f "$f" ]; then cat "$f" > "$t/$n" 2>/dev/null || rm -f "$t/$n"
		fi
	done
}
snapshot() {
	grep -q 'fixtures=1' /proc/cmdline || return 0
	SNAP=$SNAPROOT/$1
	mkdir -p $SNAP/proc
	cat /proc/iomem > $SNAP/proc/iomem
	grep -E '^(MemTotal|MemFree)' /proc/meminfo > $SNAP/proc/meminfo
	snap_files $M
	for b in $BLOCKS; do [ -d $M/memory$b ] && snap_files $M/memory$b; done
	snap_files /sys/devices/system/node
	for n in /sys/devices/system/node/node*; do
		mkdir -p $SNAP$n
		cat $n/meminfo > $SNAP$n/meminfo
		for b in $BLOCKS; do [ -L $n/memory$b ] && ln -s "$(readlink $n/memory$b)" $SNAP$n/memory$b; done
	done
	snap_files /sys/bus/dax
	snap_files /sys/bus/dax/devices
	for d in /sys/bus/dax/drivers/*; do snap_files $d; done
	real=$(readlink -f /sys/bus/dax/devices/$D)
	snap_files $real
	[ -d $real/mapping0 ] && snap_files $real/mapping0
	snap_files ${real%/*}/dax_region
	echo "fixture $1 taken"
}
snapshot_ship() {
	[ -d $SNAPROOT ] || return 0
	echo "@@FIXTURES-BEGIN"
	(cd $SNAPROOT && tar czf - .) | base64
	echo "@@FIXTURES-END"
}
# cxl_region: loads the CXL stack, creates a 1 GiB RAM region on the type-3 device through the
# kernel's sysfs (cxl-cli 76 cannot create RAM regions) and waits for dax_cxl's dax device.
cxl_region() {
	modload cxl_acpi cxl_pci cxl_mem dax_cxl device_dax
	C=/sys/bus/cxl/devices
	n=0; while [ $n -lt 50 ] && ! ls -d $C/mem0 > /dev/null 2>&1; do sleep 0.2; n=$((n + 1)); done
	EPD=$(cd $C && for d in decoder*; do [ -e $C/$d/dpa_size ] && echo $d; done | head -1)
	R=$(cat $C/decoder0.0/create_ram_region)
	{
		echo $R > $C/decoder0.0/create_ram_region &&
			cat $C/decoder0.0/interleave_granularity > $C/$R/interleave_granularity &&
			echo 1 > $C/$R/interleave_ways &&
			echo ram > $C/$EPD/mode &&
			echo 0x40000000 > $C/$EPD/dpa_size &&
			echo 0x40000000 > $C/$R/size &&
			echo $EPD > $C/$R/target0 &&
			echo 1 > $C/$R/commit &&
			echo $R > /sys/bus/cxl/drivers/cxl_region/bind
	} || { echo "creating $R on $EPD failed"; dmesg | tail -20; return 1; }
	n=0; while [ $n -lt 50 ] && [ ! -e /sys/bus/dax/devices/$D ]; do sleep 0.2; n=$((n + 1)); done
	[ -e /sys/bus/dax/devices/$D ] && pass "$R on $EPD gives $D ($(readlink /sys/bus/dax/devices/$D | sed 's,.*/devices/,,'))"
}
echo "@@E2E-BEGIN method=$METHOD kernel=$KVER abi=$ABI"
case $METHOD in
daxctl)
	# daxctl's own commands, for comparison with the model under `daxplug sim run`
	# (crates/cli/tests/simrun.rs), under auto_online_blocks=online_movable: dax0.0 starts
	# as system RAM in ZONE_MOVABLE and daxctl's re-binds online there too (in ZONE_NORMAL an
	# unmovable page may land at any moment, and the transcript would depend on that race).
	modload device_dax dax_hmem
	echo online_movable > $M/auto_online_blocks
	modload kmem
	echo "@@DAXCTL-BEGIN"
	sh /daxctl.sh
	echo "@@DAXCTL-END"
	pass "daxctl transcript taken"
	echo online > $M/auto_online_blocks

	# Kernel zones, last in this boot: once memory is in ZONE_NORMAL an unmovable kernel
	# allocation may land in it at any moment (on 7.3 it does within seconds), and from then
	# on the kernel refuses to offline it; daxplug must then roll back, never tear.
	dset unplugged
	expect "after daxctl: devdax -> unplugged" unbound 0
	echo $D > /sys/bus/dax/drivers/kmem/bind
	RC=0; MS=0
	expect "kmem bound under the default policy: the kernel onlines into Normal" online_kernel 0
	abi_check "kmem bound"
	daxplug doctor --json 2>&1 | grep -q '"kernel_zone"' && pass "doctor warns of the kernel zone" || fail "doctor does not warn of the kernel zone"
	dset online_movable
	s=$(state)
	case "$RC/$s" in
	0/online_movable | 6/online_kernel) pass "online_kernel -> online_movable: rc $RC, $s (the kernel decides whether a Normal block can move)" ;;
	*) fail "online_kernel -> online_movable: rc $RC, state $s" ;;
	esac
	if [ "$s" = online_movable ]; then
		dset online_kernel
		expect "online_kernel without --force is refused" online_movable 5
		dset online_kernel --force
		expect "online_movable -> online_kernel (--force)" online_kernel 0
	fi
	dset unplugged
	s=$(state)
	case "$RC/$s" in
	0/$UNPL | 6/online_kernel) pass "online_kernel -> unplugged: rc $RC, $s" ;;
	*) fail "online_kernel -> unplugged: rc $RC, state $s" ;;
	esac
	grep -q torn /tmp/set.out && fail "a kernel-zone transition reported torn"
	;;
agreement | atomic)
	# The model-versus-kernel sequences (tests/e2e/agreement.txt; on a kernel with the
	# atomic ABI, `atomic` runs agreement-atomic.txt); they end with a leaked range, so they
	# get a boot of their own.
	modload device_dax dax_hmem
	boot_layout
	RC=0; MS=0
	expect "before kmem: list sees the device unbound" unbound 0
	daxplug list --json | grep -q '"abi": "unknown"' && pass "kernel ABI unknown while nothing is kmem-bound" || fail "kernel ABI should be unknown"
	SEQ=/agreement.txt; [ $METHOD = atomic ] && SEQ=/agreement-atomic.txt
	cat /agreement-sizing.txt $SEQ /agreement-placement.txt > /tmp/sequences.txt
	sh /agreement.sh /tmp/sequences.txt > /tmp/agreement.out 2>&1
	echo "@@AGREEMENT-BEGIN"; cat /tmp/agreement.out; echo "@@AGREEMENT-END"
	;;
hmem | cxl)
	if [ $METHOD = cxl ]; then cxl_region || { fail "no CXL dax device"; echo "@@E2E-SUMMARY failures=$FAILS"; exit 1; }; else modload device_dax dax_hmem; fi
	device_blocks
	pass "$D holds memory$B0-memory${BLOCKS##* }"
	snapshot 01-before-kmem
	BASE=$(memtotal)
	# kmem loaded under the offline policy: blocks added offline (the default policy, which
	# onlines into Normal, is tested last in the daxctl boot).
	kmem_under offline
	RC=0; MS=0
	expect "kmem bound under the offline policy reads offline" offline 0
	snapshot 02-kmem-bound-offline
	[ "$(daxplug status $D --json | grep -o '"total": [0-9]*' | head -1 | cut -d' ' -f2)" = "$(blocks_present)" ] &&
		pass "status counts the blocks sysfs has" || fail "status block count differs from sysfs"
	abi_check "kmem bound"

	daxplug list --json | grep -q '"kind": "dynamic"' && pass "the region is dynamic" || fail "the region should be dynamic: $(daxplug list --json | grep kind)"
	dset online_movable
	expect "offline -> online_movable" online_movable 0
	# The node had no memory before: set names the tier it joined, as the kernel says.
	if [ -d /sys/devices/virtual/memory_tiering ]; then
		N=$(cat /sys/bus/dax/devices/$D/target_node)
		grep -q "placement: node $N: memory tier none -> $(nodefield $N memory_tier)" /tmp/set.out &&
			pass "set reports node $N joining memory tier $(nodefield $N memory_tier)" || fail "set does not report the tier node $N joined"
	fi
	placement_check "online_movable"
	snapshot 03-online-movable
	daxplug doctor --json > /tmp/doctor.json 2>&1
	if [ "$ABI" = legacy ]; then grep -q '"legacy_abi"' /tmp/doctor.json; else ! grep -q '"legacy_abi"' /tmp/doctor.json; fi &&
		pass "doctor: the kernel's ABI ($ABI) named as it is" || fail "doctor on $ABI: $(grep -A1 legacy_abi /tmp/doctor.json)"
	grep -q '"kernel_zone"' /tmp/doctor.json && fail "doctor sees a kernel zone on a movable device" || pass "doctor: no kernel-zone warning for a movable device"
	[ "$(aob)" = "$AOB_BEFORE" ] && pass "auto_online_blocks restored to $AOB_BEFORE" || fail "auto_online_blocks is $(aob), was $AOB_BEFORE"
	[ "$(memtotal)" -eq $((BASE + 1048576)) ] && pass "MemTotal grew by 1 GiB" || fail "MemTotal $(memtotal), base $BASE"
	echo offline > $M/memory$B3/state
	zones_rule "valid_zones names one zone exactly when online (boot RAM, device online, memory$B3 offline)"
	[ "$(state)" = mixed ] && pass "status sees the block offlined by hand" || fail "status: $(state) with memory$B3 offline"
	snapshot 04-one-block-offline
	[ "$ABI" = atomic ] && { [ "$(kstate)" = online_movable ] && pass "daxX.Y/state is stale: online_movable with memory$B3 offline" || fail "daxX.Y/state: $(kstate)"; }
	dset online_movable
	expect "a block offlined by hand is brought back (kernel state $(kstate))" online_movable 0
	zones_rule "valid_zones names one zone exactly when online (all online again)"
	echo offline > $M/memory$B4/state
	echo offline > $M/memory$B5/state
	dset unplugged
	expect "unplug with two blocks offlined by hand" $UNPL 0
	dset online_movable
	expect "unplugged -> online_movable" online_movable 0

	dset unplugged
	expect "online_movable -> unplugged" $UNPL 0
	snapshot 05-unplugged
	no_iomem "after unplug"
	[ "$(memtotal)" -eq "$BASE" ] && pass "MemTotal back to baseline" || fail "MemTotal $(memtotal), base $BASE"
	[ "$(blocks_present)" = 0 ] && pass "no memory block left" || fail "$(blocks_present) blocks left"

	dset devdax
	expect "unplugged -> devdax" devdax 0
	snapshot 06-devdax
	dset online_movable
	expect "devdax -> online_movable" online_movable 0
	dset devdax
	expect "online_movable -> devdax" devdax 0

	echo offline > $M/auto_online_blocks
	dset online_movable
	expect "from the offline policy: devdax -> online_movable" online_movable 0
	[ "$(aob)" = offline ] && pass "auto_online_blocks restored to offline" || fail "auto_online_blocks is $(aob)"
	for st in unplugged devdax online_movable unplugged online_movable; do
		before=$(state)
		dset $st --force
		s=$(state)
		case "$RC/$st/$s" in
		0/unplugged/$UNPL | 0/devdax/devdax | 0/online_movable/online_movable) pass "offline policy: $before -> $st (${MS}ms)" ;;
		*) fail "offline policy: $before -> $st: rc $RC, state $s" ;;
		esac
		[ "$(aob)" = offline ] || fail "auto_online_blocks not restored after $st: $(aob)"
	done
	echo $AOB0 > $M/auto_online_blocks

	competitor_start
	dset unplugged
	competitor_stop
	s=$(state)
	case "$RC/$s" in
	0/$UNPL) pass "unplug against a re-onlining loop: done" ;;
	6/online_movable) pass "unplug against a re-onlining loop: rolled back" ;;
	*) fail "unplug against a re-onlining loop: rc $RC, state $s" ;;
	esac
	[ "$s" = $UNPL ] || { dset unplugged; expect "unplug after the loop stopped" $UNPL 0; }

	competitor_start
	dset online_movable
	competitor_stop
	expect "online_movable against a re-onlining loop (policy applied inside the add)" online_movable 0

	competitor_start
	dset unplugged --timeout 1ms
	competitor_stop
	expect "unplug with a 1 ms timeout rolls back" online_movable 6

	dset online_kernel
	expect "online_kernel without --force is refused" online_movable 5

	# daxctl sees what daxplug did, and daxplug sees what daxctl did.
	[ "$(state)" = online_movable ] || dset online_movable
	daxctl list -D > /tmp/dl.json 2>&1
	grep -q '"mode":"system-ram"' /tmp/dl.json && grep -q '"online_memblocks":8' /tmp/dl.json &&
		pass "daxctl list sees daxplug's online_movable" || fail "daxctl list: $(cat /tmp/dl.json)"
	daxctl offline-memory $D > /dev/null 2>&1 && daxctl reconfigure-device -m devdax $D > /dev/null 2>&1
	RC=0; MS=0
	expect "daxplug sees daxctl's devdax" devdax 0
	# From here on the offline policy: daxctl onlines the blocks itself, movable (under the
	# default policy the kernel would put them in Normal first; kernel zones are tested last,
	# in the daxctl boot).
	echo offline > $M/auto_online_blocks
	daxctl reconfigure-device -m system-ram --force $D > /dev/null 2>&1
	RC=0; MS=0
	expect "daxplug sees daxctl's system-ram" online_movable 0
	dset unplugged
	expect "unplug after daxctl" $UNPL 0

	# Wall time of each transition, daxplug against the equivalent daxctl commands, on
	# this kernel (TCG, so slower than hardware). Collected by tests/e2e/perf.sh.
	[ "$(state)" = devdax ] || { dset unplugged; dset devdax; }
	for i in 1 2 3; do
		dset online_movable
		echo "E2E TIME daxplug devdax->online_movable $MS"
		own "devdax->online_movable"
		dset devdax
		echo "E2E TIME daxplug online_movable->devdax $MS"
		own "online_movable->devdax"
		t0=$(ms)
		daxctl reconfigure-device -m system-ram --force $D > /dev/null 2>&1
		echo "E2E TIME daxctl devdax->online_movable $(( $(ms) - t0 ))"
		t0=$(ms)
		daxctl offline-memory $D > /dev/null 2>&1 && daxctl reconfigure-device -m devdax $D > /dev/null 2>&1
		echo "E2E TIME daxctl online_movable->devdax $(( $(ms) - t0 ))"
		[ "$(state)" = devdax ] || dset devdax
	done
	echo $AOB0 > $M/auto_online_blocks
	# STRACE=1 (tests/e2e/perf.sh): where daxplug's own time goes, system call by system call.
	if grep -q 'strace=1' /proc/cmdline && command -v strace > /dev/null; then
		echo "@@STRACE-BEGIN"
		for to in online_movable devdax; do
			strace -f -tt -T -o /tmp/st.txt daxplug set $D $to > /tmp/set.out 2>&1
			echo "@@STRACE set $to rc $?"
			sed 's/^/    | /' /tmp/set.out
			cat /tmp/st.txt
		done
		echo "@@STRACE-END"
	fi
	dset online_movable
	dset unplugged
	echo "E2E TIME daxplug online_movable->unplugged $MS"
	own "online_movable->unplugged"

	# The policy daemon on the real kernel: netlink uevents, drift restored, metrics, SIGTERM.
	dset online_movable
	# Discovery on the kernel's own sysfs (kernfs, dearer per file than tmpfs), daxplug
	# against daxctl, with every block the guest has: the mean of ten runs each.
	nb=$(ls -d $M/memory[0-9]* | wc -l)
	t0=$(ms); for i in 1 2 3 4 5 6 7 8 9 10; do daxplug list --json > /dev/null; done
	echo "E2E TIME daxplug list-json-${nb}-blocks $(( ($(ms) - t0) / 10 ))"
	t0=$(ms); for i in 1 2 3 4 5 6 7 8 9 10; do daxctl list -D -M > /dev/null 2>&1; done
	echo "E2E TIME daxctl list-D-M-${nb}-blocks $(( ($(ms) - t0) / 10 ))"
	# What starting each program costs here (TCG makes every page fault dear).
	t0=$(ms); for i in 1 2 3 4 5 6 7 8 9 10; do daxplug --version > /dev/null; done
	echo "E2E TIME daxplug start-only $(( ($(ms) - t0) / 10 ))"
	t0=$(ms); for i in 1 2 3 4 5 6 7 8 9 10; do daxctl --version > /dev/null; done
	echo "E2E TIME daxctl start-only $(( ($(ms) - t0) / 10 ))"
	if grep -q 'strace=1' /proc/cmdline && command -v strace > /dev/null; then
		echo "@@STRACE-BEGIN"
		strace -f -c -o /tmp/st.txt daxplug list --json > /dev/null; echo "@@STRACE daxplug list"; head -25 /tmp/st.txt
		strace -f -c -o /tmp/st.txt daxctl list -D -M > /dev/null; echo "@@STRACE daxctl list"; head -25 /tmp/st.txt
		echo "@@STRACE-END"
	fi
	printf '[[rule]]\nmatch = { name = "dax0.0" }\nstate = "online_movable"\n\n[metrics]\nlisten = "127.0.0.1:9477"\n' > /tmp/p.toml
	daxplug daemon --check-config --config /tmp/p.toml > /dev/null 2>&1 && pass "daemon: the policy validates" || fail "daemon: the policy does not validate"
	daxplug daemon --config /tmp/p.toml --once > /tmp/once.out 2>&1 && grep -q "result=ok" /tmp/once.out &&
		pass "daemon --once: dax0.0 already in its state" || fail "daemon --once: $(cat /tmp/once.out)"
	ip link set lo up 2>/dev/null
	daxplug daemon --config /tmp/p.toml > /tmp/daemon.out 2>&1 &
	DPID=$!
	sleep 2
	echo offline > $M/memory$B3/state
	n=0
	while [ $n -lt 20 ] && [ "$(state)" != online_movable ]; do sleep 1; n=$((n + 1)); done
	[ "$(state)" = online_movable ] && grep -q "from=mixed to=online_movable result=done" /tmp/daemon.out &&
		pass "daemon: a block offlined by hand was restored from the uevent" || fail "daemon: no restore: $(state); $(cat /tmp/daemon.out)"
	# Woken by the kernel's uevent, not by a timer: the full sweep is minutes away.
	grep -q "events: kernel uevents (netlink); full sweep every 5m" /tmp/daemon.out &&
		grep -q "after_event_ms=" /tmp/daemon.out &&
		pass "daemon: the restore followed the uevent (no sweep in between)" || fail "daemon: not event-driven: $(cat /tmp/daemon.out)"
	echo "E2E TIME daemon drift-restored-after-uevent $(grep -o 'after_event_ms=[0-9]*' /tmp/daemon.out | head -1 | cut -d= -f2)"
	wget -q -O /tmp/metrics.txt http://127.0.0.1:9477/metrics 2>/dev/null
	grep -q 'daxplug_device_state{device="dax0.0",state="online_movable"} 1' /tmp/metrics.txt &&
		grep -q '^daxplug_daemon_cpu_seconds_total ' /tmp/metrics.txt &&
		grep -q '^daxplug_daemon_events_total [1-9]' /tmp/metrics.txt &&
		pass "daemon: metrics served, the daemon's own cost among them" || fail "daemon: metrics: $(head -5 /tmp/metrics.txt)"
	kill -TERM $DPID
	n=0
	while [ $n -lt 10 ] && kill -0 $DPID 2>/dev/null; do sleep 1; n=$((n + 1)); done
	kill -0 $DPID 2>/dev/null && fail "daemon: still running after SIGTERM" || pass "daemon: SIGTERM stops it"
	sed 's/^/    | /' /tmp/daemon.out

	# The stuck case, made on purpose: one block re-onlined before kmem is unbound.
	dset unplugged
	echo offline > $M/auto_online_blocks
	echo $D > /sys/bus/dax/drivers/device_dax/unbind 2>/dev/null
	echo $D > /sys/bus/dax/drivers/kmem/unbind 2>/dev/null
	echo $D > /sys/bus/dax/drivers/kmem/new_id
	echo online_movable > $M/memory$B0/state
	echo dax0.0 > /sys/bus/dax/drivers/kmem/unbind
	RC=0; MS=0
	expect "a range leaked on purpose reads stuck" stuck 0
	dset online_movable
	expect "set on a stuck device exits 7 and changes nothing" stuck 7
	grep -q memory$B0 /tmp/set.out && pass "the stuck report names memory$B0" || fail "the stuck report does not name the block"
	snapshot 07-stuck
	snapshot_ship
	;;
teeth)
	# The harness must have teeth: on a legacy kernel, the same competing loop against daxplug
	# run the per-block way (DAXPLUG_TEST_BREAK_PROTOCOL: one offline pass, no settle period,
	# no last check before the unbind) must tear the device. On a kernel with daxX.Y/state
	# daxplug uses the kernel's atomic unplug, which the loop cannot tear: every try must end
	# done or rolled back.
	modload device_dax dax_hmem
	kmem_under offline
	torn=""; clean=0
	for try in 1 2 3 4 5; do
		dset online_movable
		competitor_start
		DAXPLUG_TEST_BREAK_PROTOCOL=1 daxplug set $D unplugged > /tmp/set.out 2>&1
		RC=$?
		competitor_stop
		s=$(state)
		case $s in stuck | mixed) torn=$s; break ;; esac
		case "$RC/$s" in 0/$UNPL | 6/online_movable) clean=$((clean + 1)) ;; esac
	done
	if [ "$ABI" = legacy ]; then
		if [ -n "$torn" ]; then pass "the broken protocol left the device $torn (try $try)"; else fail "the broken protocol never tore the device in 5 tries: the scenario has no teeth"; fi
	else
		if [ -z "$torn" ] && [ $clean = 5 ]; then pass "the atomic unplug against a re-onlining loop: 5 of 5 done or rolled back, never torn"; else fail "the atomic unplug: torn=$torn, $clean of 5 clean"; fi
	fi
	;;
carve)
	# The hmem region carved by daxplug: kmem is not loaded; the first set loads it while
	# the other device stays as it is.
	modload device_dax dax_hmem
	# What a fresh device of a kmem-type region is: unbound from 6.2 on, devdax where
	# device_dax takes every device (6.1).
	FRESH=unbound; [ -e /sys/bus/dax/drivers/device_dax/$D ] && FRESH=devdax
	RC=0; MS=0
	expect "before anything: dax0.0 $FRESH" $FRESH 0
	lay resize dax0.0 512M
	lay_expect "resize dax0.0 512M" dax0.0 $FRESH 536870912 0
	lay create 0 --size 512M
	lay_expect "create 0 --size 512M makes dax0.1 as devdax" dax0.1 devdax 536870912 0
	dset online_movable
	expect "dax0.0 -> online_movable (kmem loaded by daxplug)" online_movable 0
	kmem_loaded_by_daxplug "dax0.0 -> online_movable"
	[ "$(state_of dax0.1)" = devdax ] && pass "loading kmem left dax0.1 devdax" || fail "dax0.1 is $(state_of dax0.1) after kmem was loaded"
	lay resize dax0.0 768M
	[ "$RC" = 5 ] && pass "resize of a device online is refused (rc 5)" || fail "resize while online: rc $RC"
	dset unplugged
	expect "dax0.0 -> unplugged" $UNPL 0
	lay resize dax0.1 256M
	lay_expect "resize dax0.1 256M keeps it devdax" dax0.1 devdax 268435456 0
	BASE=$(memtotal)
	lay resize dax0.0 768M
	# Resizing takes the device out of kmem (atomic kernels keep it bound while unplugged).
	lay_expect "dax0.0 grown into the space after dax0.1" dax0.0 unbound 805306368 0
	[ -e /sys/bus/dax/devices/dax0.0/mapping1 ] && pass "dax0.0 has two ranges: $(cat /sys/bus/dax/devices/dax0.0/mapping0/start)-$(cat /sys/bus/dax/devices/dax0.0/mapping0/end) and $(cat /sys/bus/dax/devices/dax0.0/mapping1/start)-$(cat /sys/bus/dax/devices/dax0.0/mapping1/end)" || fail "dax0.0 should have two ranges"
	dset online_movable
	expect "two-range dax0.0 -> online_movable" online_movable 0
	[ "$(memtotal)" -eq $((BASE + 786432)) ] && pass "MemTotal grew by 768 MiB" || fail "MemTotal $(memtotal), base $BASE"
	dset unplugged
	expect "two-range dax0.0 -> unplugged, whole" $UNPL 0
	no_iomem "two-range dax0.0 unplugged"
	lay destroy dax0.1
	[ "$RC" = 0 ] && [ ! -e /sys/bus/dax/devices/dax0.1 ] && pass "destroy dax0.1 (rc 0, gone)" || fail "destroy dax0.1: rc $RC"
	lay create 0 --size 256M --state online_movable
	lay_expect "recreated dax0.1 straight to online_movable" dax0.1 online_movable 268435456 0
	daxplug set dax0.1 unplugged > /dev/null 2>&1
	lay destroy dax0.1
	lay resize dax0.0 1G
	lay_expect "dax0.1 unplugged and destroyed, dax0.0 whole again" dax0.0 unbound 1073741824 0
	# A third driver (Linux 7.1+ ships fsdev_dax): loaded by daxplug when famfs is asked for.
	if [ -n "$(find $MODDIR -name fsdev_dax.ko)" ]; then
		dset famfs
		expect "unbound -> famfs (fsdev_dax loaded by daxplug)" famfs 0
		daxplug list --json | grep -q '"mode": "famfs"' && pass "list: mode famfs" || fail "list: $(daxplug list --json | grep '"mode"')"
		daxplug doctor --json | grep -q '"other_driver"' && pass "doctor notes the fsdev_dax device" || fail "doctor does not note the fsdev_dax device"
		dset devdax
		expect "leaving famfs without --force is refused" famfs 5
		dset devdax --force
		expect "famfs -> devdax with --force" devdax 0
		dset online_movable
		expect "devdax -> online_movable" online_movable 0
		dset famfs
		expect "online_movable -> famfs through the release" famfs 0
		# fsdev_dax holds the range under the device's name, as device_dax does; no system RAM.
		grep -q "System RAM (kmem)" /proc/iomem && fail "famfs: /proc/iomem still has System RAM (kmem)" || pass "famfs: no System RAM (kmem) left"
		dset unplugged --force
		expect "famfs -> unplugged with --force" unbound 0
	fi
	;;
e820)
	# kmem is not loaded: the first set loads it.
	modload libnvdimm nd_btt nd_pmem nd_e820 dax_pmem device_dax
	ndctl create-namespace -f -e namespace0.0 -m devdax -M mem > /dev/null 2>&1
	RC=0; MS=0
	expect "pmem namespace in devdax mode reads devdax" devdax 0
	daxplug list --json | grep -q '"kind": "static"' && pass "the region is static" || fail "the region should be static"
	[ -e /sys/bus/dax/drivers/kmem ] && fail "kmem should not be loaded yet" || pass "kmem not loaded"
	dset online_movable
	expect "devdax -> online_movable through new_id, kmem loaded by daxplug" online_movable 0
	kmem_loaded_by_daxplug "devdax -> online_movable"
	daxplug status $D --json | grep -q '"first_block": 41' && pass "kmem loses the first block to alignment (memory41)" || fail "first block should be 41"
	dset unplugged
	expect "online_movable -> unplugged" $UNPL 0
	dset devdax
	expect "unplugged -> devdax" devdax 0
	dset online_movable
	expect "devdax -> online_movable again" online_movable 0
	dset devdax
	expect "online_movable -> devdax" devdax 0
	;;
esac
echo "@@E2E-SUMMARY failures=$FAILS"
exit $FAILS
