#!/bin/bash
# The real-system guest's check (Debian 12 with systemd as PID 1 and systemd-udevd), run by
# daxplug-e2e.service once the system is up. It acts as an operator would and prints raw
# facts between markers; the host (crates/cli/tests/e2e.rs) asserts on them. The phase comes
# from the kernel command line (e2ephase=): install, boot, purge.
#   @@FACT key value...         one fact
#   @@BEGIN name / @@END name   a block of output (a journal, a JSON document)
# Everything written to /sys here is the guest's.
set -u
PHASE=$(sed -n 's/.*e2ephase=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
D=dax0.0
POLICY=/etc/daxplug/daxplug.toml
M=/sys/devices/system/memory

fact() { echo "@@FACT $*"; }
block() { echo "@@BEGIN $1"; shift; "$@" 2>&1; echo "@@END"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
# The device's memory blocks: state and zone of each, one line.
blocks() {
	local b out=""
	for b in $M/memory4[0-7]; do
		[ -e "$b/state" ] || continue
		out+="${b##*/}=$(cat $b/state):$(cat $b/valid_zones 2>/dev/null | cut -d' ' -f1) "
	done
	echo "${out:-none}"
}
driver() {
	local l
	l=$(readlink /sys/bus/dax/devices/$D/driver 2>/dev/null) && echo "${l##*/}" || echo none
}
metrics() { # the daemon's /metrics, through bash's /dev/tcp (minbase has no curl)
	exec 3<>/dev/tcp/127.0.0.1/9477 || return 1
	printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
	cat <&3
	exec 3>&-
}
# wait_for SECONDS COMMAND...: until COMMAND succeeds (1 on timeout).
wait_for() {
	local end=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt $end ] || return 1
		sleep 0.2
	done
}
daemon_said() { journalctl -b -u daxplug -o cat --no-pager | grep -q -- "$1"; }
journal_of() { journalctl -b -o short-monotonic --no-pager "$@"; }

# A hang explains itself: a daxplug process in uninterruptible sleep for 30 s gets its kernel
# stack printed, and every blocked task's (sysrq w, from the kernel's log).
hang_watch() {
	echo 1 > /proc/sys/kernel/sysrq
	local p seen="" said=""
	while sleep 10; do
		for p in $(pgrep -x daxplug); do
			[ "$(awk '{print $3}' /proc/$p/stat 2>/dev/null)" = D ] || continue
			case " $seen " in
			*" $p "*)
				case " $said " in *" $p "*) continue ;; esac
				said="$said $p"
				echo "@@HUNG pid $p: $(tr '\0' ' ' < /proc/$p/cmdline)"
				cat /proc/$p/stack 2>&1 | sed 's/^/@@HUNG   /'
				echo w > /proc/sysrq-trigger
				sleep 1
				dmesg | grep -A40 'task:' | sed 's/^/@@HUNG   /' | tail -200
				;;
			*) seen="$seen $p" ;;
			esac
		done
	done
}
hang_watch &
echo "@@SYSTEM-BEGIN phase=$PHASE kernel=$(uname -r)"
systemctl is-system-running --wait >/dev/null 2>&1
fact phase "$PHASE"
fact kernel "$(uname -r)"
fact running "$(systemctl is-system-running)"
fact failed_units "$(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
fact pid1 "$(cat /proc/1/comm)"
fact uptime_at_check "$(uptime_s)"
fact startup "$(systemd-analyze time 2>/dev/null | head -1)"
fact driver_at_check "$(driver)"
fact blocks_at_check "$(blocks)"
fact auto_online_blocks "$(cat $M/auto_online_blocks)"
fact drivers_autoprobe "$(cat /sys/bus/dax/drivers_autoprobe)"
fact kmem_loaded "$(grep -c '^kmem ' /proc/modules)"

case $PHASE in
install)
	# Debian 12 as it boots with no daxplug: what the kernel and udev did on their own.
	fact udevd "$(systemctl is-active systemd-udevd)"
	block stock_journal sh -c "journalctl -b -o short-monotonic --no-pager | grep -E 'e2e-trace|udev-trigger'"
	block apt_install apt-get install -y /root/daxplug.deb
	fact dpkg_status "$(dpkg-query -W -f '${Status} ${Version}' daxplug)"
	fact enabled_daemon "$(systemctl is-enabled daxplug.service)"
	fact enabled_gate "$(systemctl is-enabled daxplug-gate.service)"
	fact active_without_policy "$(systemctl is-active daxplug.service)"
	block list_before daxplug list --json
	cp /root/policy.toml $POLICY
	T0=$(uptime_s)
	fact policy_written_at "$T0"
	systemctl start daxplug.service
	# The daemon either reaches the rule or says once why it cannot; then 15 s with no retry.
	wait_for 60 sh -c "journalctl -b -u daxplug -o cat --no-pager | grep -q 'device=$D .*result=\(done\|no_change\|ok\|blocked_until_reboot\)'"
	fact settled "$?"
	sleep 15
	block daemon_journal journal_of -u daxplug
	block list_after daxplug list
	block list_after_json daxplug list --json
	block doctor daxplug doctor --json
	block metrics metrics
	block gate daxplug gate status --json
	;;
boot)
	# A reboot with the policy, daxctl's rule, a daxctl.conf.d section and a RHEL-style
	# hot-add rule all in place: the order of the boot, then the operator's day.
	fact active "$(systemctl is-active daxplug.service)"
	fact gate_active "$(systemctl is-active daxplug-gate.service)"
	for p in ProtectSystem ReadWritePaths CapabilityBoundingSet NoNewPrivileges; do
		fact "unit_$p" "$(systemctl show -p $p --value daxplug.service | tr '\n' ' ')"
	done
	fact exposure "$(systemd-analyze security daxplug.service 2>/dev/null | sed -n 's/.*Overall exposure level for daxplug.service: //p')"
	wait_for 60 sh -c "journalctl -b -u daxplug -o cat --no-pager | grep -q 'device=$D '"
	# journalctl ANDs a unit with a tag: the whole boot's journal, cut to what orders it.
	block boot_journal sh -c "journalctl -b -o short-monotonic --no-pager | grep -E ' daxplug\[|e2e-trace|udev-trigger'"
	block list_boot_json daxplug list --json
	block gate daxplug gate status --json
	block doctor daxplug doctor --json
	if [ -e /root/day-done ]; then
		fact day skipped
	else
		touch /root/day-done
		fact day run
		# set --override: held, then changed by hand (6.12: daxplug's protocol with udev's
		# real exec queue stopped around the unbind).
		block override daxplug set $D unplugged --override --json
		fact after_override "$(driver) $(blocks)"
		block hold_list daxplug list
		# release: the daemon applies its rule again at once.
		sleep 2
		fact release_at "$(uptime_s)"
		daxplug release $D
		wait_for 20 sh -c "[ \"\$(basename \"\$(readlink /sys/bus/dax/devices/$D/driver)\")\" = kmem ]"
		sleep 3
		fact after_release "$(driver) $(blocks)"
		# Drift from a real uevent: one block offlined by hand.
		fact drift_at "$(uptime_s)"
		echo offline > $M/memory47/state
		fact drift_write "$?"
		wait_for 30 sh -c "journalctl -b -u daxplug -o cat --no-pager | grep -q 'from=mixed.*result=done'"
		sleep 1
		fact after_drift "$(driver) $(blocks)"
		# Upgrade: the same program as version +1; the policy stays, the daemon restarts.
		fact pid_before_upgrade "$(systemctl show -p MainPID --value daxplug.service)"
		fact policy_sum_before "$(sha256sum < $POLICY)"
		rm -rf /tmp/up && dpkg-deb -R /root/daxplug.deb /tmp/up &&
			sed -i 's/^Version: \(.*\)-1$/Version: \1-2/' /tmp/up/DEBIAN/control &&
			dpkg-deb -b /tmp/up /root/daxplug-up.deb >/dev/null
		block apt_upgrade apt-get install -y /root/daxplug-up.deb
		fact dpkg_status_upgraded "$(dpkg-query -W -f '${Status} ${Version}' daxplug)"
		wait_for 20 sh -c '[ "$(systemctl is-active daxplug.service)" = active ]'
		fact pid_after_upgrade "$(systemctl show -p MainPID --value daxplug.service)"
		fact policy_sum_after "$(sha256sum < $POLICY)"
		block day_journal journal_of -u daxplug
	fi
	block list_end daxplug list
	;;
purge)
	fact before_purge "$(driver) $(blocks)"
	block apt_purge apt-get purge -y daxplug
	fact dpkg_status_purged "$(dpkg-query -W -f '${Status}' daxplug 2>&1)"
	fact run_dir "$(ls -A /run/daxplug 2>&1 | tr '\n' ' ')"
	fact etc_dir "$(ls -A /etc/daxplug 2>&1 | tr '\n' ' ')"
	fact units "$(ls /usr/lib/systemd/system/daxplug* /etc/systemd/system/*/daxplug* 2>&1 | tr '\n' ' ')"
	fact drivers_autoprobe_after "$(cat /sys/bus/dax/drivers_autoprobe)"
	fact after_purge "$(driver) $(blocks)"
	;;
esac
echo "@@SYSTEM-END"
systemctl poweroff
