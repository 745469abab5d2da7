#!/usr/bin/env bash
# Interop check of witness cosignatures against an independent
# implementation: tests/go/cosig/main.go, written from the C2SP specs with
# only Go's standard library, verifies a checkpoint that custody-log signed
# and two witnesses cosigned (`cargo run -p custody-log --example cosign`),
# and must refuse every tampered variant. Needs `go` (golang-go, which
# `deploy/install-deps.sh --test` installs) and cargo. No RocksDB is built.
#
#   bash tests/go/cosig/check.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."

command -v go >/dev/null || {
  echo "go is missing: run deploy/install-deps.sh --test (golang-go)" >&2
  exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo run -q --locked -p custody-log --example cosign -- "$work/out" >/dev/null
GO111MODULE=off GOFLAGS="" GOCACHE="$work/gocache" \
  go build -o "$work/cosig" tests/go/cosig/main.go

o="$work/out"
log="$(cat "$o/log.vkey")"
w1="$(cat "$o/w1.vkey")"
w2="$(cat "$o/w2.vkey")"

# The cosigned note verifies, with both witnesses.
"$work/cosig" "$o/note" "$log" "$w1" "$w2"

# Every one of these must be refused.
sed '2s/^10$/11/' "$o/note" >"$o/size.note"        # checkpoint body changed
grep -v '^— example.org/w1 ' "$o/note" >"$o/dropped.note" # w1's line removed
fail=0
refuse() {
  local what="$1"
  shift
  if out="$("$work/cosig" "$@" 2>&1)"; then
    echo "FAIL: accepted $what: $out" >&2
    fail=1
  else
    echo "refused $what: $out"
  fi
}
refuse "a changed checkpoint body" "$o/size.note" "$log" "$w1"
refuse "a note without w1's line" "$o/dropped.note" "$log" "$w1"
refuse "w1's cosignature moved to another checkpoint" "$o/moved.note" "$log" "$w1"
refuse "a cosignature with its time changed" "$o/retimed.note" "$log" "$w1"
refuse "another key of the same name" "$o/note" "$log" "$(cat "$o/other.vkey")"
refuse "a witness key given as the log key" "$o/note" "$w1" "$w2"
exit "$fail"
