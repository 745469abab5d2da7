#!/usr/bin/env bash
# Restart of this checkout against an earlier build ($BASE, default the
# commit before the findings state moved into the store), in the same run:
# for each build and each log size, grow a fresh log with `custody load
# --stream` (single CAPTUREs), then REPEATS times: SIGKILL custodyd,
# restart it, and time from process start until `custody inspect findings`
# answers. Records the server's peak RSS (VmHWM) while ingesting and after
# each restart has answered. Prints one JSON line per measurement; quote
# medians and the ratio current/base.
#
#   tests/bench/restart.sh
#   SIZES="250000 1000000" REPEATS=3 BASE=<commit> tests/bench/restart.sh
#   BUILDS=current SIZES=1000000 tests/bench/restart.sh   # this build only
# NO_TOUCH=1 skips the touch that forces this checkout's rebuild (only
# when its release build is known to be from these sources).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
BASE="${BASE:-1056945}"
SIZES="${SIZES:-250000 1000000}"
REPEATS="${REPEATS:-3}"
BUILDS="${BUILDS:-base current}"

. tests/bench/builds.sh
BBIN=$(earlier_bins "$BASE")
CBIN=$(current_bins)

hwm_mib() { awk '/VmHWM/ {printf "%d", $2/1024}' "/proc/$1/status"; }

serve() { # bin data
  "$1/custodyd" serve --data "$2" --grpc-addr 127.0.0.1:17400 --http-addr 127.0.0.1:17480 \
    >/dev/null 2>>"$2.log" &
  echo $!
}

wait_findings() { # bin pid
  until "$1/custody" inspect findings --server http://127.0.0.1:17400 --json >/dev/null 2>&1; do
    kill -0 "$2" 2>/dev/null || { echo "custodyd $2 exited" >&2; exit 1; }
    sleep 0.05
  done
}

stop() { # pid signal: the server is not this shell's child, so poll
  kill "-$2" "$1"
  while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}

for size in $SIZES; do
  for b in $BUILDS; do
    bin=$CBIN; [ "$b" = base ] && bin=$BBIN
    d=$(mktemp -d)
    "$bin/custody" keygen --out "$d/owner" >/dev/null
    "$bin/custodyd" init --data "$d/data" --origin bench.example/log --owner-key "$d/owner.pub" >/dev/null
    pid=$(serve "$bin" "$d/data")
    for _ in $(seq 100); do curl -sf http://127.0.0.1:17480/checkpoint >/dev/null && break; sleep 0.1; done
    "$bin/custody" load --server http://127.0.0.1:17400 --owner-key "$d/owner.key" \
      --events "$size" --concurrency 1 --stream --json >"$d/load.json"
    wait_findings "$bin" "$pid"
    printf '{"build":"%s","size":%s,"phase":"ingest","peak_rss_mib":%s,"load":%s}\n' \
      "$b" "$size" "$(hwm_mib "$pid")" "$(tr -d '\n' <"$d/load.json")"
    for r in $(seq "$REPEATS"); do
      stop "$pid" KILL
      wal=$(cat "$d"/data/db/*.log 2>/dev/null | wc -c)
      t0=$(date +%s.%N)
      pid=$(serve "$bin" "$d/data")
      wait_findings "$bin" "$pid"
      t1=$(date +%s.%N)
      printf '{"build":"%s","size":%s,"phase":"restart","run":%s,"seconds_to_findings":%.3f,"peak_rss_mib":%s,"wal_bytes":%s}\n' \
        "$b" "$size" "$r" "$(echo "$t1 - $t0" | bc)" "$(hwm_mib "$pid")" "$wal"
    done
    stop "$pid" TERM
    du -sb "$d/data" | awk -v b="$b" -v s="$size" '{printf "{\"build\":\"%s\",\"size\":%s,\"phase\":\"disk\",\"bytes\":%s}\n", b, s, $1}'
    rm -rf "$d"
  done
done
