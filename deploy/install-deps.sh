#!/usr/bin/env bash
# Installs the system packages Custody Ledger needs, only if missing:
#   libclang-dev                         RocksDB's bindgen
#   golang-go, golang-golang-x-mod-dev   the Go sumdb interop checker (tests only)
#   chromium                             the web view's headless browser tests (tests only)
#   prometheus                           promtool and a real Prometheus that scrapes /metrics (tests only)
#   systemd                              systemd-analyze verify of deploy/systemd (tests only)
# No protoc is needed: the proto files are compiled by protox.
set -euo pipefail

want=(libclang-dev build-essential curl)
if [ "${1:-}" = "--test" ]; then
  want+=(golang-go golang-golang-x-mod-dev chromium prometheus systemd)
fi

missing=()
for p in "${want[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo is missing: install a Rust toolchain (rustup)" >&2; exit 1; }
