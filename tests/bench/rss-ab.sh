#!/usr/bin/env bash
# Peak RSS of custodyd under streamed loads, builds A and B alternately on
# fresh logs: 200,000 mixed events (10 % COPYs, a 1,000-member bulk
# CAPTURE per 10,000), and 20,000 events with a 100,000-member bulk
# CAPTURE per 10,000. Prints one JSON line per run. Not part of CI.
#
#   A=<dir with custodyd, custody> B=<dir> tests/bench/rss-ab.sh
set -euo pipefail
: "${A:?}" "${B:?}"
C=$(mktemp -d)
one() { # label bin load-args...
  local label=$1 bin=$2; shift 2
  local d; d=$(mktemp -d -p "$C")
  $bin/custody keygen --out $d/owner >/dev/null
  $bin/custodyd init --data $d/data --origin bench.example/log --owner-key $d/owner.pub >/dev/null
  $bin/custodyd serve --data $d/data --grpc-addr 127.0.0.1:17700 --http-addr 127.0.0.1:17780 2>/dev/null & local pid=$!
  until curl -sf http://127.0.0.1:17780/checkpoint >/dev/null; do sleep 0.1; done
  local out; out=$($bin/custody load --server http://127.0.0.1:17700 --owner-key $d/owner.key --concurrency 1 --stream --json "$@" | tr -d '\n')
  local hwm; hwm=$(awk '/VmHWM/ {printf "%d", $2/1024}' /proc/$pid/status)
  kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.1; done; rm -rf $d
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(json.dumps({'build':sys.argv[2],'load':sys.argv[3],'events_per_sec':round(r['events_per_sec']),'peak_rss_mib':int(sys.argv[4])}))" "$out" $label "$*" $hwm
}
for r in 1 2; do
  for b in A B; do bin=$A; [ $b = B ] && bin=$B
    one $b $bin --events 200000 --transfer-percent 10 --bulk-every 10000 --bulk-size 1000
    one $b $bin --events 20000 --bulk-every 10000 --bulk-size 100000
  done
done
