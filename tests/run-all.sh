#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy with
# -D warnings, then all unit, property, end-to-end, crash and Go interop
# tests. Installs missing system packages first. One build profile (dev).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh --test

# Build outputs are a cache; keep them outside the clone so fresh clones
# reuse them. A fresh machine simply builds from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
export CARGO_TERM_COLOR=never
# A clean clone builds at a new path each time: incremental caches of it
# would only pile up in the shared target directory.
export CARGO_INCREMENTAL=0

echo "== cargo fmt --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt --all -- --check)
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build binaries for the end-to-end suites"
# --all-targets, not --bins: the same unit graph (and features) as
# `cargo test` below, so RocksDB is compiled once for both.
cargo build --workspace --all-targets --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== Go interop: witness cosignatures (tests/go/cosig)"
bash tests/go/cosig/check.sh
echo "== deploy recipes: hadolint, systemd-analyze verify, kubernetes-validate, dashboard"
bash tests/deploy/check.sh
echo "== fuzz smoke: every cargo fuzz target for a few seconds (fuzz/README.md)"
# Its own package and target directory: nightly, sanitizers, no RocksDB.
CARGO_TARGET_DIR="$HOME/.cache/custody-ledger/target-fuzz" FUZZ_SECONDS="${FUZZ_SECONDS:-5}" \
  bash fuzz/smoke.sh
