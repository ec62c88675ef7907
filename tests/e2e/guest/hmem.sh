#!/bin/sh
# The hmem and cxl layouts: one 1 GiB device (an EFI soft-reserved range, or a CXL RAM region
# made through sysfs) taken through every state, against competing controllers and daxctl,
# timed, with the policy daemon on netlink, and leaked on purpose at the end.

# nodefield N FIELD: FIELD of node N in daxplug's list --json (null where absent).
nodefield() { daxplug list --json | jq -r --argjson n "$1" ".nodes[] | select(.node == \$n) | .$2"; }
# placement_facts NAME: the kernel's own placement files for the device's target node (memory
# tiers, demotion, weighted interleave) and daxplug's list --json beside them, printed for the
# host to compare (crates/cli/tests/e2e/facts.rs).
placement_facts() {
	N=$(cat /sys/bus/dax/devices/$D/target_node)
	TIERS=/sys/devices/virtual/memory_tiering
	DEM=/sys/kernel/mm/numa/demotion_enabled
	WI=/sys/kernel/mm/mempolicy/weighted_interleave
	echo "@@FACTS-BEGIN"
	echo "step $1"
	echo "node $N"
	for t in $TIERS/memory_tier*; do [ -e $t/nodelist ] && echo "tier ${t##*memory_tier} $(cat $t/nodelist)"; done
	[ -e $DEM ] && echo "demotion_enabled $(cat $DEM)"
	if [ -d $WI ]; then echo "weighted_interleave_auto $(cat $WI/auto 2> /dev/null || echo absent)"; fi
	[ -e $WI/node$N ] && echo "interleave_weight $(cat $WI/node$N)"
	echo "json $(daxplug list --json | jq -c .)"
	echo "@@FACTS-END"
	echo "@@ZONEINFO-BEGIN"
	cat /proc/zoneinfo
	echo "@@ZONEINFO-END"
}
# demotion_doctor NAME: doctor warns of demotion off while the device's memory sits in a
# slower tier than DRAM's, and stops when demotion is switched on (then daxplug says demotion
# reaches the node).
demotion_doctor() {
	N=$(cat /sys/bus/dax/devices/$D/target_node)
	DEM=/sys/kernel/mm/numa/demotion_enabled
	tier=$(nodefield $N memory_tier); dram=$(listq .placement.dram_tier)
	if [ -e $DEM ] && [ "$tier" != null ] && [ "$dram" != null ] && [ "$tier" -gt "$dram" ]; then
		before=$(cat $DEM)
		echo false > $DEM
		doctor_has demotion_off && pass "$1: doctor warns that demotion is off (tier $tier below DRAM's $dram)" || fail "$1: doctor is silent about demotion off"
		echo true > $DEM
		doctor_has demotion_off && fail "$1: doctor warns of demotion off while it is on" || pass "$1: demotion on: no warning"
		[ "$(nodefield $N demotion)" = reaches ] && pass "$1: demotion reaches node $N" || fail "$1: demotion $(nodefield $N demotion) for node $N with demotion on"
		echo $before > $DEM
	elif [ -e $DEM ]; then
		pass "$1: node $N is in tier $tier, DRAM in $dram: no demotion check"
	fi
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
[ "$(statusq $D .devices[0].blocks.total)" = "$(blocks_present)" ] &&
	pass "status counts the blocks sysfs has" || fail "status block count differs from sysfs"
abi_check "kmem bound"

[ "$(listq '.regions[0].kind')" = dynamic ] && pass "the region is dynamic" || fail "the region should be dynamic, daxplug says $(listq '.regions[0].kind')"
dset online_movable
expect "offline -> online_movable" online_movable 0
# The node had no memory before: set names the tier it joined, as the kernel says.
if [ -d /sys/devices/virtual/memory_tiering ]; then
	N=$(cat /sys/bus/dax/devices/$D/target_node)
	grep -q "placement: node $N: memory tier none -> $(nodefield $N memory_tier)" /tmp/set.out &&
		pass "set reports node $N joining memory tier $(nodefield $N memory_tier)" || fail "set does not report the tier node $N joined"
fi
placement_facts online_movable
demotion_doctor online_movable
snapshot 03-online-movable
daxplug doctor --json > /tmp/doctor.json 2> /dev/null
if [ "$ABI" = legacy ]; then doctor_has legacy_abi /tmp/doctor.json; else ! doctor_has legacy_abi /tmp/doctor.json; fi &&
	pass "doctor: the kernel's ABI ($ABI) named as it is" || fail "doctor on $ABI: $(jq -c '.findings[] | select(.code == "legacy_abi")' /tmp/doctor.json)"
doctor_has kernel_zone /tmp/doctor.json && fail "doctor sees a kernel zone on a movable device" || pass "doctor: no kernel-zone warning for a movable device"
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
daxctl list -D > /tmp/dl.json 2> /dev/null
jq -e --arg d $D '.[] | select(.chardev == $d) | .mode == "system-ram" and .online_memblocks == 8' /tmp/dl.json > /dev/null &&
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
