#!/bin/sh
# The agreement and atomic layouts: the model-versus-kernel sequences of tests/e2e/agreement*.txt,
# run by /agreement.sh; the host runs the same on the model and compares line by line.

# The model-versus-kernel sequences (tests/e2e/agreement.txt; on a kernel with the
# atomic ABI, `atomic` runs agreement-atomic.txt); they end with a leaked range, so they
# get a boot of their own.
modload device_dax dax_hmem
boot_layout
RC=0; MS=0
expect "before kmem: list sees the device unbound" unbound 0
[ "$(listq .kernel.abi)" = unknown ] && pass "kernel ABI unknown while nothing is kmem-bound" || fail "kernel ABI should be unknown"
SEQ=/agreement.txt; [ $METHOD = atomic ] && SEQ=/agreement-atomic.txt
cat /agreement-sizing.txt $SEQ /agreement-placement.txt > /tmp/sequences.txt
sh /agreement.sh /tmp/sequences.txt > /tmp/agreement.out 2>&1
echo "@@AGREEMENT-BEGIN"; cat /tmp/agreement.out; echo "@@AGREEMENT-END"
