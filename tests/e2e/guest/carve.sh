#!/bin/sh
# The carve layout: the hmem region carved into devices by daxplug create, resize and destroy.

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
	[ "$(listq '.devices[0].mode')" = famfs ] && pass "list: mode famfs" || fail "list: mode $(listq '.devices[0].mode')"
	doctor_has other_driver && pass "doctor notes the fsdev_dax device" || fail "doctor does not note the fsdev_dax device"
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
