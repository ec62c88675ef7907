#!/bin/sh
# daxctl's own commands on the hmem machine (dax0.0 = memory40-47 on node 1, kmem loaded under
# auto_online_blocks=online_movable), printed so that the real kernel (QEMU guest, `run.sh daxctl`) and the model
# (`daxplug sim run FILE -- sh daxctl.sh`) can be compared line by line. The expected
# transcript, taken from the real kernel, is tests/e2e/daxctl-hmem.txt.
M=/sys/devices/system/memory
D=dax0.0
TMP=${TMPDIR:-/tmp}
blocks() {
	out=""
	for b in 40 41 42 43 44 45 46 47; do
		if [ -e $M/memory$b ]; then
			out="$out $b:$(cat $M/memory$b/state):$(cat $M/memory$b/valid_zones | tr ' ' ,)"
		else
			out="$out $b:-"
		fi
	done
	echo "blocks:$out"
	drv=none
	[ -e /sys/bus/dax/devices/$D/driver ] && drv=$(basename "$(readlink /sys/bus/dax/devices/$D/driver)")
	if [ -e /sys/devices/system/node/node1/meminfo ]; then
		echo "driver: $drv; node1 $(grep MemTotal /sys/devices/system/node/node1/meminfo | awk '{print $3, $4, $5}')"
	else
		echo "driver: $drv; node1 offline"
	fi
}
run() {
	echo "\$ $*"
	"$@" > "$TMP/dx.out" 2> "$TMP/dx.err"
	echo "rc=$?"
	sed 's/^/  out| /' "$TMP/dx.out"
	sed 's/^/  err| /' "$TMP/dx.err"
	blocks
}
blocks
run daxctl list -D
run daxctl offline-memory $D
run daxctl online-memory $D
run daxctl offline-memory $D
run daxctl reconfigure-device -m devdax $D
run daxctl list -D
run daxctl reconfigure-device -m system-ram $D
run daxctl reconfigure-device -m system-ram --force $D
run daxctl list -D -M
run daxctl offline-memory $D
run daxctl reconfigure-device -m devdax $D
run daxctl list -D
# Carving the region (dax0.0 is devdax here): shrink, a second device, destroy, regrow.
run daxctl disable-device $D
run daxctl reconfigure-device -s 512M $D
run daxctl create-device -r 0 -s 256M
run daxctl list -D
run daxctl disable-device dax0.1
run daxctl destroy-device dax0.1
run daxctl reconfigure-device -s 1G $D
run daxctl enable-device $D
run daxctl list -D
