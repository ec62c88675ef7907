#!/bin/sh
# Fixture capture for the hmem and cxl layouts (FIXTURES=1 tests/e2e/run.sh cxl).

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
