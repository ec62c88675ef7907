#!/bin/bash
# Validates the manifests of contrib/kubernetes against the Kubernetes API schemas
# (kubernetes-validate from PyPI, strict: unknown fields are errors) and the ServiceMonitor
# against the Prometheus Operator's schema (@kubernetes-models/prometheus-operator from npm),
# each tool at a pinned version in a directory of its own under $WORK (default
# target/k8s-validate). The policy inside the ConfigMap is checked by daxplug itself in
# crates/cli/tests/kubernetes.rs.
# usage: contrib/kubernetes/validate.sh [DIR]   (DIR: the manifests, default this directory)
# Exit: 0 valid; 1 invalid; 77 the validators cannot be installed here (no python3 venv or
# npm, no network).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-$HERE}
WORK=${WORK:-$HERE/../../target/k8s-validate}
KUBERNETES_VALIDATE=1.37.0
KUBERNETES_VERSION=1.33
mkdir -p "$WORK"
skip() { echo "SKIP: $*"; exit 77; }

# kubernetes-validate in a virtual environment, so the system's Python is left alone.
PY=$WORK/venv/bin/python
if ! "$PY" -c "import kubernetes_validate" 2>/dev/null; then
	python3 -m venv "$WORK/venv" >/dev/null 2>&1 || skip "python3 cannot make a virtual environment (package python3-venv)"
	"$PY" -m pip install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE" >/dev/null \
		|| skip "pip cannot install kubernetes-validate==$KUBERNETES_VALIDATE"
fi
# The Prometheus Operator's generated validators, from the committed lock file.
NPM=$WORK/npm
if [ ! -d "$NPM/node_modules/@kubernetes-models/prometheus-operator" ]; then
	command -v npm >/dev/null || skip "npm is not installed (packages nodejs npm)"
	mkdir -p "$NPM"
	cp "$HERE/validate/package.json" "$HERE/validate/package-lock.json" "$NPM/"
	(cd "$NPM" && npm ci --no-audit --no-fund -q >/dev/null 2>&1) || skip "npm cannot install the ServiceMonitor validator"
fi
cp "$HERE/validate/servicemonitor.mjs" "$NPM/"

status=0
core=()
for f in "$DIR"/*.yaml; do
	[ "$(basename "$f")" = servicemonitor.yaml ] || core+=("$f")
done
"$WORK/venv/bin/kubernetes-validate" --strict -k "$KUBERNETES_VERSION" "${core[@]}" || status=1
node "$NPM/servicemonitor.mjs" "$DIR/servicemonitor.yaml" || status=1
exit $status
