#!/bin/sh
# Runs the sysfs sequences of agreement.txt on the guest's kernel and prints one line per
# operation, in the format daxplug_model::script prints for the model, so that the two can
# be compared line by line.
errname() {
	case "$1" in
	*"Permission denied"*) echo EACCES ;;
	*"Is a directory"*) echo EISDIR ;;
	*"Invalid argument"*) echo EINVAL ;;
	*"Device or resource busy"*) echo EBUSY ;;
	*"No such device or address"*) echo ENXIO ;;
	*"No such device"*) echo ENODEV ;;
	*"No such file or directory"*) echo ENOENT ;;
	*"not supported"* | *"Not supported"*) echo EOPNOTSUPP ;;
	*"Cannot allocate memory"*) echo ENOMEM ;;
	*"No space left on device"*) echo ENOSPC ;;
	*"Interrupted"*) echo EINTR ;;
	*"File exists"*) echo EEXIST ;;
	*) echo "error($1)" ;;
	esac
}
while read -r op path value; do
	case "$op" in '' | '#'*) continue ;; esac
	case $op in
	read)
		if v=$(cat "$path" 2>/tmp/err); then
			printf 'read %s = %s\n' "$path" "$(printf '%s' "$v" | tr '\n' '|')"
		else
			printf 'read %s = %s\n' "$path" "$(errname "$(cat /tmp/err)")"
		fi
		;;
	write)
		if sh -c 'echo "$1" > "$2"' _ "$value" "$path" 2>/tmp/err; then r=ok; else r=$(errname "$(cat /tmp/err)"); fi
		printf 'write %s %s = %s\n' "$path" "$value" "$r"
		;;
	ls)
		printf 'ls %s = %s\n' "$path" "$(ls "$path" 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//')"
		;;
	memtotal)
		printf 'memtotal %s = %s\n' "$path" "$(grep 'MemTotal:' "$path" 2>/dev/null | awk '{print $(NF-1)}')"
		;;
	modprobe)
		insmod "$(find /lib/modules/$(uname -r) -name "$path.ko" | head -1)" 2>/dev/null
		printf 'modprobe %s = ok\n' "$path"
		;;
	esac
done < "$1"
