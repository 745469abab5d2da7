#!/usr/bin/env bash
# Findings answers and restarts on a large log (one grown by scale.sh),
# before and after a change, on the same data: a findings page with no
# retention rule, then with one 30-day rule (CAPTURE clock) published by
# the data owner, with the BEFORE build; then the AFTER build opens the
# log (upgrading its derived state once), answers pages of 1 and 1,000,
# and is restarted after SIGKILL three times with the receipt window at
# ten years (no transfer overdue) and three times at one hour. Prints one
# JSON line per measurement. Not part of CI. The BEFORE build must be able
# to open DATA (an older derived format), and DATA is changed: copy it.
#
#
# Historical: it measures builds from before the findings policy moved into
# the log (POLICY_PUBLISHED); both builds must still take --receipt-window-secs.
#   DATA=~/.cache/custody-ledger/scale3/data OWNER_KEY=.../owner.key \
#   BEFORE=<dir with custodyd, custody> AFTER=<dir> tests/bench/findings-at-scale.sh
set -uo pipefail
: "${DATA:?}" "${OWNER_KEY:?}" "${BEFORE:?}" "${AFTER:?}"
URL=http://127.0.0.1:17500
YEARS=315360000
hwm() { awk '/VmHWM/ {printf "%d", $2/1024}' "/proc/$1/status"; }
serve() { "$1/custodyd" serve --data "$DATA" --grpc-addr 127.0.0.1:17500 --http-addr 127.0.0.1:17580 --receipt-window-secs "$2" >/dev/null 2>>"$DATA/../findings-at-scale.log" & echo $!; }
wf() { until "$AFTER/custody" inspect findings --server $URL --json --page-size 1 >/dev/null 2>&1; do kill -0 "$1" || exit 1; sleep 0.05; done; }
stop() { kill "-$2" "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.05; done; }
ask() { local t0 t1; t0=$(date +%s.%N); "$AFTER/custody" inspect findings --server $URL --json --page-size "$1" >/dev/null; t1=$(date +%s.%N); printf %.3f "$(echo "$t1 - $t0" | bc)"; }
since() { printf %.3f "$(echo "$(date +%s.%N) - $1" | bc)"; }

pid=$(serve "$BEFORE" $YEARS); wf "$pid"
for _ in 1 2 3; do echo "{\"build\":\"before\",\"rule\":false,\"page\":1,\"seconds\":$(ask 1)}"; done
rule=$(mktemp)
echo '{"reporter": "data-owner", "retention_rule_published": {"rule_id": "RR-30D", "authority": "SORN", "max_age_secs": 2592000, "clock": "CAPTURE"}}' > "$rule"
"$AFTER/custody" append --server $URL --key "$OWNER_KEY" --event "$rule" --wait --log-key "$DATA/log.vkey" >&2
# One answer: each took minutes before open_since.
echo "{\"build\":\"before\",\"rule\":true,\"page\":1,\"seconds\":$(ask 1),\"peak_rss_mib\":$(hwm "$pid")}"
stop "$pid" KILL

t0=$(date +%s.%N); pid=$(serve "$AFTER" $YEARS); wf "$pid"
echo "{\"build\":\"after\",\"phase\":\"open and upgrade, to first findings\",\"seconds\":$(since "$t0"),\"peak_rss_mib\":$(hwm "$pid")}"
for p in 1 1000; do
  for _ in 1 2 3; do echo "{\"build\":\"after\",\"rule\":true,\"page\":$p,\"seconds\":$(ask $p),\"peak_rss_mib\":$(hwm "$pid")}"; done
done
for w in $YEARS 3600; do
  for _ in 1 2 3; do
    stop "$pid" KILL
    t0=$(date +%s.%N); pid=$(serve "$AFTER" $w); wf "$pid"
    echo "{\"build\":\"after\",\"phase\":\"restart after SIGKILL to findings\",\"receipt_window_secs\":$w,\"seconds\":$(since "$t0"),\"peak_rss_mib\":$(hwm "$pid")}"
  done
  for _ in 1 2 3; do echo "{\"build\":\"after\",\"receipt_window_secs\":$w,\"page\":1000,\"seconds\":$(ask 1000)}"; done
done
stop "$pid" TERM
