#!/usr/bin/env bash
# Custody query latency (BENCHMARKS.md): a fresh release custodyd, then
# `custody bench-queries`, which sets up an asset with 10,000 events and a
# system holding BULK assets (default 1,000,000) and times each query.
# Also prints the server's peak RSS and its data directory's size.
#
#   tests/bench/queries.sh
#   BULK=100000 ITERATIONS=50 tests/bench/queries.sh
#   MANIFEST=1000000 tests/bench/queries.sh   # one bulk capture of 1,000,000
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${BIN:-}" ]; then  # BIN=<dir with custodyd, custody> runs those instead
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
  cargo build --release --bins --locked >&2
  BIN="$CARGO_TARGET_DIR/release"
fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"$BIN/custody" keygen --out "$d/owner" >/dev/null
"$BIN/custodyd" init --data "$d/data" --origin bench.example/log --owner-key "$d/owner.pub" >/dev/null
"$BIN/custodyd" serve --data "$d/data" --grpc-addr 127.0.0.1:17310 --http-addr 127.0.0.1:17390 2>"$d/server.log" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:17390/checkpoint >/dev/null && break; sleep 0.1; done
"$BIN/custody" bench-queries --server http://127.0.0.1:17310 --owner-key "$d/owner.key" \
  --bulk-assets "${BULK:-1000000}" --manifest-size "${MANIFEST:-100000}" \
  --iterations "${ITERATIONS:-200}"
printf '{"server_peak_rss_kib":%s,"data_dir_bytes":%s}\n' \
  "$(awk '/VmHWM/ {print $2}' /proc/$pid/status)" "$(du -sb "$d/data" | cut -f1)"
kill "$pid"; wait "$pid" 2>/dev/null || true
