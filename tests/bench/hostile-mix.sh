#!/usr/bin/env bash
# Honest streaming throughput beside a hostile mix at full rate (the
# issue's "during a hostile mix at full rate, honest clients keep >= 80%
# of their throughput"): builds the release binaries, starts a freshly
# initialised custodyd with default flags on a temp dir, and runs
# `custody bench-hostile`, which alternates phases A (honest stream alone)
# and B (the same beside hostile tasks from 127.0.0.2) for ROUNDS rounds
# and reports median(B) / median(A). Prints the JSON and saves it to
# tests/bench/results/hostile-mix-<date>[-<ONLY>].json; a summary of the
# server's warnings and errors goes to stderr.
#
#   tests/bench/hostile-mix.sh
#   ONLY=bad-sig tests/bench/hostile-mix.sh          # one hostile kind in phase B
#   SECS=5 ROUNDS=1 tests/bench/hostile-mix.sh       # quicker
#   EXTRA="--honest-rate 20000" tests/bench/hostile-mix.sh
#   SERVER_FLAGS="--refused-per-client 0" ONLY=bad-sig tests/bench/hostile-mix.sh   # the server's flags
#   EXTRA="--hostile-nice 0" tests/bench/hostile-mix.sh   # the attacker at normal priority (default 19)
#   TAG=budget-off ...                                # a suffix for the results file
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target-rel}"
cargo build --release --workspace --bins >&2
BIN="$CARGO_TARGET_DIR/release"
SECS="${SECS:-10}"
ROUNDS="${ROUNDS:-3}"
GRPC=127.0.0.1:17600
HTTP=127.0.0.1:17680

d=$(mktemp -d)
# A full disk makes the server refuse appends (--min-free-mib), which
# would be measured as the hostile mix's doing.
free_mib=$(df -Pm "$d" | awk 'NR == 2 { print $4 }')
if [ "$free_mib" -lt 4096 ]; then
  echo "hostile-mix: only $free_mib MiB free on the disk of $d; want 4 GiB" >&2
  exit 1
fi
echo "hostile-mix: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$d"
}
trap cleanup EXIT

"$BIN/custody" keygen --out "$d/owner" >/dev/null
"$BIN/custodyd" init --data "$d/data" --origin bench.example/log --owner-key "$d/owner.pub" >/dev/null
# shellcheck disable=SC2086 # SERVER_FLAGS is split on purpose
"$BIN/custodyd" serve --data "$d/data" --grpc-addr "$GRPC" --http-addr "$HTTP" ${SERVER_FLAGS:-} 2>"$d/server.log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://$HTTP/checkpoint" >/dev/null && break; sleep 0.1; done

only=()
[ -n "${ONLY:-}" ] && only=(--only "$ONLY")
# shellcheck disable=SC2086 # EXTRA is split on purpose
if ! "$BIN/custody" bench-hostile --server "http://$GRPC" --http-addr "$HTTP" \
  --owner-key "$d/owner.key" --seconds "$SECS" --rounds "$ROUNDS" \
  --server-pid "$pid" "${only[@]}" ${EXTRA:-} --json >"$d/result.json"; then
  echo "hostile-mix: bench-hostile failed; the server's log ends:" >&2
  tail -n 40 "$d/server.log" >&2
  exit 1
fi
if ! kill -0 "$pid" 2>/dev/null; then
  echo "hostile-mix: the server exited during the run; its log ends:" >&2
  tail -n 40 "$d/server.log" >&2
  exit 1
fi
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=

# What the server warned about, by message, without times and fields.
echo "hostile-mix: server warnings and errors (count, level, message):" >&2
sed -E 's/\x1b\[[0-9;]*m//g' "$d/server.log" \
  | { grep -E '^[^ ]+ +(WARN|ERROR) |panicked' || true; } \
  | sed -E 's/^[^ ]+ +//; s/ [a-z_]+=.*$//' \
  | sort | uniq -c | sort -rn | head -n 20 >&2

mkdir -p tests/bench/results
out="tests/bench/results/hostile-mix-$(date -u +%F)${ONLY:+-$ONLY}${TAG:+-$TAG}.json"
cp "$d/result.json" "$out"
cat "$d/result.json"
echo "hostile-mix: saved $out" >&2
