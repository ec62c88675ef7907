#!/bin/sh
# daxplug's end-to-end scenarios, run inside the QEMU guest (busybox ash) by /init.
# Every line "E2E PASS name" or "E2E FAIL name: why" is one checked scenario step; the host
# (tests/e2e/run.sh) collects them. Everything written to /sys here is the guest's.

METHOD=$(sed -n 's/.*testmethod=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
MODDIR=/lib/modules/$(uname -r)/kernel
M=/sys/devices/system/memory
D=dax0.0
FAILS=0

pass() { echo "E2E PASS $METHOD: $*"; }
fail() { echo "E2E FAIL $METHOD: $*"; FAILS=$((FAILS + 1)); }
modload() {
	for m in "$@"; do
		f=$(find $MODDIR -name "$m.ko" | head -1)
		grep -q "^$m " /proc/modules || insmod "$f" || echo "insmod $m failed"
	done
}
# The observed state daxplug reports for the device.
state() { daxplug status $D --json | grep -o '"state": "[a-z_]*"' | head -1 | cut -d'"' -f4; }
memtotal() { sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo; }
aob() { cat $M/auto_online_blocks; }
ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
# set DEV STATE [args]: runs daxplug set, records its exit code in $RC and its time in $MS.
dset() {
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
blocks_present() { ls -d $M/memory* 2>/dev/null | grep -c -E "memory4[0-7]$"; }
# A competing controller: onlines every offline block of the device it sees, in a loop.
competitor_start() {
	( while :; do
		for f in $M/memory4[0-7]/state; do
			[ -e "$f" ] && [ "$(cat "$f" 2>/dev/null)" = offline ] && echo online > "$f" 2>/dev/null
		done
	done ) &
	COMP=$!
}
competitor_stop() { kill $COMP 2>/dev/null; wait $COMP 2>/dev/null; }

echo "@@E2E-BEGIN method=$METHOD kernel=$(uname -r)"
case $METHOD in
daxctl)
	# daxctl's own commands, for comparison with the model under `daxplug sim run`
	# (crates/cli/tests/simrun.rs): kmem loaded, so dax0.0 starts as system RAM.
	modload device_dax dax_hmem kmem
	echo "@@DAXCTL-BEGIN"
	sh /daxctl.sh
	echo "@@DAXCTL-END"
	pass "daxctl transcript taken"
	;;
agreement)
	# The model-versus-kernel sequences (tests/e2e/agreement.txt); they end with a leaked
	# range, so they get a boot of their own.
	modload device_dax dax_hmem
	RC=0; MS=0
	expect "before kmem: list sees the device unbound" unbound 0
	daxplug list --json | grep -q '"abi": "unknown"' && pass "kernel ABI unknown while nothing is kmem-bound" || fail "kernel ABI should be unknown"
	sh /agreement.sh /agreement.txt > /tmp/agreement.out 2>&1
	echo "@@AGREEMENT-BEGIN"; cat /tmp/agreement.out; echo "@@AGREEMENT-END"
	;;
hmem)
	modload device_dax dax_hmem
	BASE=$(memtotal)
	# The default policy: kmem auto-binds and the kernel onlines every block into Normal.
	modload kmem
	RC=0; MS=0
	expect "kmem auto-online under the default policy reads online_kernel" online_kernel 0
	[ "$(daxplug status $D --json | grep -o '"total": [0-9]*' | head -1 | cut -d' ' -f2)" = "$(blocks_present)" ] &&
		pass "status counts the blocks sysfs has" || fail "status block count differs from sysfs"
	daxplug list --json | grep -q '"abi": "legacy"' && pass "kernel ABI legacy (no daxX.Y/state)" || fail "kernel ABI should be legacy"

	dset online_movable
	expect "online_kernel -> online_movable" online_movable 0
	[ "$(aob)" = online ] && pass "auto_online_blocks restored to online" || fail "auto_online_blocks is $(aob)"
	[ "$(memtotal)" -eq $((BASE + 1048576)) ] && pass "MemTotal grew by 1 GiB" || fail "MemTotal $(memtotal), base $BASE"
	echo offline > $M/memory43/state
	zones_rule "valid_zones names one zone exactly when online (boot RAM, device online, memory43 offline)"
	[ "$(state)" = mixed ] && pass "status sees the block offlined by hand" || fail "status: $(state) with memory43 offline"
	echo online_movable > $M/memory43/state
	zones_rule "valid_zones names one zone exactly when online (all online again)"

	dset unplugged
	expect "online_movable -> unplugged" unbound 0
	no_iomem "after unplug"
	[ "$(memtotal)" -eq "$BASE" ] && pass "MemTotal back to baseline" || fail "MemTotal $(memtotal), base $BASE"
	[ "$(blocks_present)" = 0 ] && pass "no memory block left" || fail "$(blocks_present) blocks left"

	dset devdax
	expect "unplugged -> devdax" devdax 0
	dset online_movable
	expect "devdax -> online_movable" online_movable 0
	dset devdax
	expect "online_movable -> devdax" devdax 0

	echo offline > $M/auto_online_blocks
	dset online_movable
	expect "from the offline policy: devdax -> online_movable" online_movable 0
	[ "$(aob)" = offline ] && pass "auto_online_blocks restored to offline" || fail "auto_online_blocks is $(aob)"
	for st in unplugged online_kernel unplugged devdax online_movable; do
		before=$(state)
		dset $st --force
		s=$(state)
		case "$RC/$st/$s" in
		0/unplugged/unbound | 0/online_kernel/online_kernel | 0/devdax/devdax | 0/online_movable/online_movable) pass "offline policy: $before -> $st (${MS}ms)" ;;
		6/*/"$before") pass "offline policy: $before -> $st rolled back (a kernel-zone page would not move)" ;;
		*) fail "offline policy: $before -> $st: rc $RC, state $s" ;;
		esac
		[ "$(aob)" = offline ] || fail "auto_online_blocks not restored after $st: $(aob)"
	done
	echo online > $M/auto_online_blocks

	competitor_start
	dset unplugged
	competitor_stop
	s=$(state)
	case "$RC/$s" in
	0/unbound) pass "unplug against a re-onlining loop: done" ;;
	6/online_movable) pass "unplug against a re-onlining loop: rolled back" ;;
	*) fail "unplug against a re-onlining loop: rc $RC, state $s" ;;
	esac
	[ "$s" = unbound ] || { dset unplugged; expect "unplug after the loop stopped" unbound 0; }

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
	dset online_kernel --force
	expect "online_movable -> online_kernel (--force)" online_kernel 0
	dset online_movable
	s=$(state)
	case "$RC/$s" in
	0/online_movable | 6/online_kernel) pass "online_kernel -> online_movable: rc $RC, $s" ;;
	*) fail "online_kernel -> online_movable: rc $RC, state $s" ;;
	esac

	# daxctl sees what daxplug did, and daxplug sees what daxctl did.
	[ "$(state)" = online_movable ] || dset online_movable
	daxctl list -D > /tmp/dl.json 2>&1
	grep -q '"mode":"system-ram"' /tmp/dl.json && grep -q '"online_memblocks":8' /tmp/dl.json &&
		pass "daxctl list sees daxplug's online_movable" || fail "daxctl list: $(cat /tmp/dl.json)"
	daxctl offline-memory $D > /dev/null 2>&1 && daxctl reconfigure-device -m devdax $D > /dev/null 2>&1
	RC=0; MS=0
	expect "daxplug sees daxctl's devdax" devdax 0
	daxctl reconfigure-device -m system-ram --force $D > /dev/null 2>&1
	s=$(state)
	case $s in online_kernel | online_movable) pass "daxplug sees daxctl's system-ram ($s)" ;; *) fail "after daxctl system-ram: $s" ;; esac
	dset unplugged
	s=$(state)
	case "$RC/$s" in 0/unbound | 6/online_kernel | 6/online_movable) pass "unplug after daxctl: rc $RC, $s" ;; *) fail "unplug after daxctl: rc $RC, $s" ;; esac

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
	printf '[[rule]]\nmatch = { name = "dax0.0" }\nstate = "online_movable"\n\n[metrics]\nlisten = "127.0.0.1:9477"\n' > /tmp/p.toml
	daxplug daemon --check-config --config /tmp/p.toml > /dev/null 2>&1 && pass "daemon: the policy validates" || fail "daemon: the policy does not validate"
	daxplug daemon --config /tmp/p.toml --once > /tmp/once.out 2>&1 && grep -q "result=ok" /tmp/once.out &&
		pass "daemon --once: dax0.0 already in its state" || fail "daemon --once: $(cat /tmp/once.out)"
	ip link set lo up 2>/dev/null
	daxplug daemon --config /tmp/p.toml > /tmp/daemon.out 2>&1 &
	DPID=$!
	sleep 2
	echo offline > $M/memory43/state
	n=0
	while [ $n -lt 20 ] && [ "$(state)" != online_movable ]; do sleep 1; n=$((n + 1)); done
	[ "$(state)" = online_movable ] && grep -q "from=mixed to=online_movable result=done" /tmp/daemon.out &&
		pass "daemon: a block offlined by hand was restored from the uevent" || fail "daemon: no restore: $(state); $(cat /tmp/daemon.out)"
	wget -q -O /tmp/metrics.txt http://127.0.0.1:9477/metrics 2>/dev/null
	grep -q 'daxplug_device_state{device="dax0.0",state="online_movable"} 1' /tmp/metrics.txt &&
		pass "daemon: metrics served" || fail "daemon: metrics: $(head -5 /tmp/metrics.txt)"
	kill -TERM $DPID
	n=0
	while [ $n -lt 10 ] && kill -0 $DPID 2>/dev/null; do sleep 1; n=$((n + 1)); done
	kill -0 $DPID 2>/dev/null && fail "daemon: still running after SIGTERM" || pass "daemon: SIGTERM stops it"
	sed 's/^/    | /' /tmp/daemon.out

	# The stuck case, made on purpose: one block re-onlined before kmem is unbound.
	dset unplugged
	echo offline > $M/auto_online_blocks
	echo dax0.0 > /sys/bus/dax/drivers/device_dax/unbind 2>/dev/null
	echo dax0.0 > /sys/bus/dax/drivers/kmem/new_id
	echo online_movable > $M/memory40/state
	echo dax0.0 > /sys/bus/dax/drivers/kmem/unbind
	RC=0; MS=0
	expect "a range leaked on purpose reads stuck" stuck 0
	dset online_movable
	expect "set on a stuck device exits 7 and changes nothing" stuck 7
	grep -q memory40 /tmp/set.out && pass "the stuck report names memory40" || fail "the stuck report does not name the block"
	;;
teeth)
	# The harness must have teeth: the same competing loop against daxplug run the
	# per-block way (DAXPLUG_TEST_BREAK_PROTOCOL: one offline pass, no settle period, no last
	# check before the unbind) must tear the device.
	modload device_dax dax_hmem kmem
	torn=""
	for try in 1 2 3 4 5; do
		dset online_movable
		competitor_start
		DAXPLUG_TEST_BREAK_PROTOCOL=1 daxplug set $D unplugged > /tmp/set.out 2>&1
		competitor_stop
		s=$(state)
		case $s in stuck | mixed) torn=$s; break ;; esac
	done
	if [ -n "$torn" ]; then pass "the broken protocol left the device $torn (try $try)"; else fail "the broken protocol never tore the device in 5 tries: the scenario has no teeth"; fi
	;;
e820)
	modload libnvdimm nd_btt nd_pmem nd_e820 dax_pmem device_dax kmem
	ndctl create-namespace -f -e namespace0.0 -m devdax -M mem > /dev/null 2>&1
	RC=0; MS=0
	expect "pmem namespace in devdax mode reads devdax" devdax 0
	daxplug list --json | grep -q '"kind": "static"' && pass "the region is static" || fail "the region should be static"
	dset online_movable
	expect "devdax -> online_movable through new_id" online_movable 0
	daxplug status $D --json | grep -q '"first_block": 41' && pass "kmem loses the first block to alignment (memory41)" || fail "first block should be 41"
	dset unplugged
	expect "online_movable -> unplugged" unbound 0
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
