#!/usr/bin/env bash
# Inclusion proofs over gRPC on a large log (one grown by scale.sh),
# builds A and B alternately on the same data: `custody bench-proofs`
# (8 clients, every proof verified) after a 4 s warm-up, with the
# server's and the client's CPU time per proof (utime + stime, from
# /proc and time(1)) and the server's peak RSS. Prints one JSON line per
# run. Not part of CI; the data are only read.
#
#   DATA=~/.cache/custody-ledger/scale3/data A=<dir with custodyd, custody> \
#   B=<dir> RUNS=3 SECS=8 tests/bench/proofs-ab.sh
set -euo pipefail
: "${DATA:?}" "${A:?}" "${B:?}"
RUNS=${RUNS:-3}; SECS=${SECS:-8}; URL=http://127.0.0.1:17500
T=$(mktemp)
one() { # label bin-dir
  "$2/custodyd" serve --data "$DATA" --grpc-addr 127.0.0.1:17500 --http-addr 127.0.0.1:17580 >/dev/null 2>>"$T.log" &
  local pid=$!
  until curl -sf http://127.0.0.1:17580/checkpoint >/dev/null; do kill -0 $pid || exit 1; sleep 0.1; done
  "$2/custody" bench-proofs --server $URL --log-key "$DATA/log.vkey" --seconds 4 --concurrency 8 >/dev/null 2>&1
  local a b out
  a=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(/usr/bin/time -f '%U %S' -o "$T" "$2/custody" bench-proofs --server $URL \
    --log-key "$DATA/log.vkey" --seconds "$SECS" --concurrency 8 2>/dev/null | tail -1)
  b=$(awk '{print $14+$15}' /proc/$pid/stat)
  local rss; rss=$(awk '/VmHWM/ {printf "%d", $2/1024}' /proc/$pid/status)
  kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.1; done
  python3 - "$out" "$1" "$a" "$b" "$rss" "$(awk '{print $1+$2}' "$T")" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
tick = 1e6 / int(sys.argv[7])
r.update(build=sys.argv[2], peak_rss_mib=int(sys.argv[5]),
         server_us_per_proof=round((int(sys.argv[4]) - int(sys.argv[3])) * tick / r["proofs"], 1),
         client_us_per_proof=round(float(sys.argv[6]) * 1e6 / r["proofs"], 1))
print(json.dumps(r))
PY
}
for _ in $(seq "$RUNS"); do one A "$A"; one B "$B"; done
rm -f "$T"
