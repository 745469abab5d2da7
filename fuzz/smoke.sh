#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 5) from its seed corpus
# and fails if any finds a crash, a panic, a leak, a timeout or an
# out-of-memory. Prints the executions libFuzzer reports per target.
#
#   bash fuzz/smoke.sh                      # 5 s per target
#   FUZZ_SECONDS=600 bash fuzz/smoke.sh     # a longer campaign
#   FUZZ_TARGETS="tile_path signed_note" bash fuzz/smoke.sh
#
# Environment:
#   FUZZ_SECONDS      seconds per target (default 5)
#   FUZZ_TARGETS      targets to run (default: all, `cargo fuzz list`)
#   FUZZ_TIMEOUT      seconds one input may take (default 60)
#   FUZZ_NICE         niceness of builds and runs (default 10)
#   CARGO_TARGET_DIR  default $HOME/.cache/custody-ledger/target-fuzz
#
# The corpus is copied to a temporary directory first, so new inputs the
# run finds do not land in the clone. Crashes land in
# fuzz/artifacts/<target>/ (cargo fuzz's default).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
seconds=${FUZZ_SECONDS:-5}
timeout=${FUZZ_TIMEOUT:-60}
niceness=${FUZZ_NICE:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target-fuzz}
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$here"
if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The invariant of fuzz/README.md: no RocksDB under the sanitizers.
if cargo tree -i librocksdb-sys >/dev/null 2>&1; then
    echo "smoke: the fuzz package depends on librocksdb-sys; fuzz only RocksDB-free crates" >&2
    exit 1
fi

echo "smoke: building ${#targets[@]} targets into $CARGO_TARGET_DIR" >&2
nice -n "$niceness" cargo +nightly fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
printf '%-16s %-7s %12s  %s\n' target result executions "libFuzzer's last line"
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus"
    rm -rf "${work:?}/corpus/$t"
    if [ -d "corpus/$t" ]; then
        cp -R "corpus/$t" "$work/corpus/$t"
    else
        mkdir -p "$work/corpus/$t"
    fi
    log="$work/$t.log"
    result=ok
    if ! nice -n "$niceness" cargo +nightly fuzz run "$t" "$work/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout="$timeout" \
        -print_final_stats=1 >"$log" 2>&1; then
        result=FAILED
        failed+=("$t")
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    printf '%-16s %-7s %12s  %s\n' "$t" "$result" "${execs:-?}" "${done_line:-}"
    if [ "$result" != ok ]; then
        echo "---- $t: the panic, then the last lines of its log ----"
        grep -m 3 -A 4 'panicked at' "$log" || true
        tail -n 40 "$log"
        echo "---- artifacts in $here/artifacts/$t/ ----"
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "smoke: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "smoke: all ${#targets[@]} targets ran ${seconds}s without a crash" >&2
