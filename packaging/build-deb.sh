#!/bin/bash
# Builds the Debian package with cargo-deb: TARGET/debian/daxplug_VERSION-1_ARCH.deb, where
# TARGET is $CARGO_TARGET_DIR or target (the path is the one line on stdout). Man pages and shell completions are generated from the
# command-line definition (`daxplug generate`) first. cargo-deb is installed with
# `cargo install --locked` when missing (the version below).
# usage: packaging/build-deb.sh [cargo-deb options]
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0

if ! cargo deb --version >/dev/null 2>&1; then
	echo "== installing cargo-deb $CARGO_DEB_VERSION" >&2
	cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi
T=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -p daxplug >&2
A=$T/release/deb-assets
rm -rf "$A"
mkdir -p "$A/man" "$A/completions"
"$T/release/daxplug" generate man --dir "$A/man" >&2
gzip -9n "$A"/man/*.[0-9]
for sh in bash zsh fish; do
	"$T/release/daxplug" generate completions --shell "$sh" > "$A/completions/daxplug.$sh"
done
# Stripped: the release profile keeps line tables for the benchmarks' profiles, which the
# installed program does not need (30 MiB against 5).
cargo deb --no-build --locked --strip -p daxplug "$@" | tail -1
