#!/bin/sh
# The teeth layout: the harness must be able to fail.

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
