#!/usr/bin/env bash
# `custody audit` of builds A and B, alternately, over one log: the
# audit's own entries/s and its peak RSS (GNU time's maximum resident set
# size). The log is loaded once, by B's binaries, unless DATA names an
# existing one (a directory holding `data/` and `owner.key`), and served
# by B's custodyd. Prints one JSON line per audit. Not part of CI.
#
#   A=<dir with custodyd, custody> B=<dir> tests/bench/audit-ab.sh
#   EVENTS=1000000 RUNS=2 SERVER=1 A=... B=... tests/bench/audit-ab.sh
#
# EVENTS (default 1,000,000) are streamed with 10 % COPYs and a 1,000-
# member bulk CAPTURE every 10,000 events; SERVER=1 adds --server, so the
# replay includes custody and findings past the first bulk event and the
# answers are compared.
set -euo pipefail
: "${A:?}" "${B:?}"
EVENTS="${EVENTS:-1000000}"
RUNS="${RUNS:-2}"
GRPC=127.0.0.1:17710
HTTP=127.0.0.1:17790
W=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$W"' EXIT
D="${DATA:-$W/log}"
if [ ! -d "$D/data" ]; then
  mkdir -p "$D"
  "$B/custody" keygen --out "$D/owner" >/dev/null
  "$B/custodyd" init --data "$D/data" --origin bench.example/log --owner-key "$D/owner.pub" >/dev/null
  load=1
fi
"$B/custodyd" serve --data "$D/data" --grpc-addr "$GRPC" --http-addr "$HTTP" 2>"$W/server.log" &
pid=$!
until curl -sf "http://$HTTP/checkpoint" >/dev/null; do sleep 0.1; done
if [ -n "${load:-}" ]; then
  "$B/custody" load --server "http://$GRPC" --owner-key "$D/owner.key" --stream --json \
    --events "$EVENTS" --transfer-percent 10 --bulk-every 10000 --bulk-size 1000 >"$W/load.json"
  # Wait until the checkpoint covers everything loaded: it stops growing.
  last=-1
  while :; do
    now=$(curl -sf "http://$HTTP/checkpoint" | sed -n 2p)
    [ "$now" = "$last" ] && break
    last=$now; sleep 3
  done
fi
extra=()
[ -z "${SERVER:-}" ] || extra=(--server "http://$GRPC")
for r in $(seq "$RUNS"); do
  for b in A B; do
    bin=$A; [ $b = B ] && bin=$B
    /usr/bin/time -v -o "$W/time" "$bin/custody" audit --url "http://$HTTP" \
      --log-key "$D/data/log.vkey" "${extra[@]}" --json >"$W/audit.json" 2>"$W/audit.err" || true
    python3 - "$b" "$r" "$W/audit.json" "$W/time" <<'PY'
import json, re, sys
b, r, out, t = sys.argv[1:]
try:
    j = json.load(open(out))
except Exception as e:
    j = {"error": str(e)}
tm = open(t).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tm).group(1)) // 1024
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", tm).group(1)
print(json.dumps({
    "build": b, "run": int(r), "size": j.get("size"), "ok": j.get("ok"),
    "entries_per_sec": j.get("entries_per_sec"), "peak_rss_mib": rss, "wall": wall,
    "findings_agree": (j.get("compare") or {}).get("findings", {}).get("agree"),
    "stopped_at": j.get("stopped_at"),
}))
PY
  done
done
