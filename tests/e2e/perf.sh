#!/bin/bash
# Boots the hmem guest RUNS times on each kernel of the e2e matrix (`run.sh kernels`, or
# E2E_KERNELS) and prints, per kernel, a Markdown table of the median wall time of each
# transition, daxplug against the equivalent daxctl commands (from the guest's "E2E TIME"
# lines): on 7.3+ daxplug uses the kernel's daxX.Y/state, on 6.12 its own protocol. Used for
# docs/PERFORMANCE.md:
#
#   cargo build --release --bin daxplug
#   DAXPLUG_BIN=target/release/daxplug tests/e2e/perf.sh 3
set -euo pipefail
RUNS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
for KVER in $(bash "$HERE/run.sh" kernels); do
export KVER
: > "$TMP"
for _ in $(seq "$RUNS"); do
	bash "$HERE/run.sh" hmem | grep -E '^E2E (TIME|OWN)' >> "$TMP" || { echo "the hmem guest on $KVER failed" >&2; exit 1; }
done
echo "### $KVER"
echo
echo "| tool | transition | runs | median ms | min ms | max ms |"
echo "|---|---|---:|---:|---:|---:|"
grep '^E2E TIME' "$TMP" | awk '{ key = $3 " | " $4; v[key] = v[key] " " $5 }
END {
	for (k in v) {
		n = split(v[k], a, " ")
		# insertion sort
		for (i = 2; i <= n; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] + 0 > x + 0) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		printf "| %s | %d | %d | %d | %d |\n", k, n, med, a[1], a[n]
	}
}' | sort
echo
echo "daxplug's own report of each transition (\`daxplug set\` prints it): total, time in kernel"
echo "writes, the deliberate settle wait, and the rest (planning, verification reads, journal)"
echo "as a share of the total; medians over the runs."
echo
echo "| transition | runs | total ms | kernel writes ms | settle ms | own ms | own share | own share without the settle wait |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
grep '^E2E OWN' "$TMP" | awk '{ k = $4; t[k] = t[k] " " $5; w[k] = w[k] " " $6; s[k] = s[k] " " $7; n[k]++ }
function med(list,   a, m, i, j, x) {
	m = split(list, a, " ")
	for (i = 2; i <= m; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] + 0 > x + 0) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
	for (k in n) {
		T = med(t[k]); W = med(w[k]); S = med(s[k]); O = T - W - S
		printf "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.0f%% | %.0f%% |\n", k, n[k], T, W, S, O, 100 * O / T, 100 * O / (T - S)
	}
}' | sort
echo
done
