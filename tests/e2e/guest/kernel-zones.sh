#!/bin/sh
# The daxctl layout: daxctl's own transcript for the model to be held to, then kernel zones,
# last in the boot (once memory is in ZONE_NORMAL an unmovable allocation may land in it at
# any moment, and from then on the kernel refuses to offline it).

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
doctor_has kernel_zone && pass "doctor warns of the kernel zone" || fail "doctor does not warn of the kernel zone"
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
