#!/bin/bash
# Boots the hmem guest RUNS times and prints a Markdown table of the median wall time of
# each transition, daxplug against the equivalent daxctl commands (from the guest's
# "E2E TIME" lines). Used for docs/PERFORMANCE.md:
#
#   cargo build --release --bin daxplug
#   DAXPLUG_BIN=target/release/daxplug tests/e2e/perf.sh 3
set -euo pipefail
RUNS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
for _ in $(seq "$RUNS"); do
	bash "$HERE/run.sh" hmem | grep '^E2E TIME' >> "$TMP" || { echo "the hmem guest failed" >&2; exit 1; }
done
echo "| tool | transition | runs | median ms | min ms | max ms |"
echo "|---|---|---:|---:|---:|---:|"
awk '{ key = $3 " | " $4; v[key] = v[key] " " $5 }
END {
	for (k in v) {
		n = split(v[k], a, " ")
		# insertion sort
		for (i = 2; i <= n; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] + 0 > x + 0) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		printf "| %s | %d | %d | %d | %d |\n", k, n, med, a[1], a[n]
	}
}' "$TMP" | sort
