#!/bin/sh
# The e820 layout: legacy persistent memory (memmap=!) as an ndctl devdax namespace, a
# static region whose devices kmem takes by new_id.

# kmem is not loaded: the first set loads it.
modload libnvdimm nd_btt nd_pmem nd_e820 dax_pmem device_dax
ndctl create-namespace -f -e namespace0.0 -m devdax -M mem > /dev/null 2>&1
RC=0; MS=0
expect "pmem namespace in devdax mode reads devdax" devdax 0
[ "$(listq '.regions[0].kind')" = static ] && pass "the region is static" || fail "the region should be static"
[ -e /sys/bus/dax/drivers/kmem ] && fail "kmem should not be loaded yet" || pass "kmem not loaded"
dset online_movable
expect "devdax -> online_movable through new_id, kmem loaded by daxplug" online_movable 0
kmem_loaded_by_daxplug "devdax -> online_movable"
[ "$(statusq $D '.devices[0].ranges[0].first_block')" = 41 ] && pass "kmem loses the first block to alignment (memory41)" || fail "first block should be 41"
dset unplugged
expect "online_movable -> unplugged" $UNPL 0
dset devdax
expect "unplugged -> devdax" devdax 0
dset online_movable
expect "devdax -> online_movable again" online_movable 0
dset devdax
expect "online_movable -> devdax" devdax 0
