#!/bin/sh
# daxplug's end-to-end scenarios, run inside the QEMU guest (busybox ash) by /init: the
# library, then the script of this boot's layout (testmethod= on the kernel command line).
# Each layout's script checks what only the guest can see (exit codes, sysfs, /proc/iomem)
# and prints what the host compares itself (the @@BOOT, @@AGREEMENT, @@DAXCTL and @@FACTS
# sections, crates/cli/tests/e2e.rs).

. /lib.sh
echo "@@E2E-BEGIN method=$METHOD kernel=$KVER abi=$ABI"
case $METHOD in
daxctl) . /kernel-zones.sh ;;
agreement | atomic) . /sequences.sh ;;
hmem | cxl) . /snapshot.sh; . /hmem.sh ;;
teeth) . /teeth.sh ;;
carve) . /carve.sh ;;
e820) . /e820.sh ;;
*) fail "no scenario script for the layout $METHOD" ;;
esac
echo "@@E2E-SUMMARY failures=$FAILS"
exit $FAILS
