# Sourced by the benchmarks that compare this checkout with an earlier
# commit: release binaries of both, in one target dir (RocksDB's build is
# shared). Run from the workspace root with CARGO_TARGET_DIR set.

# `earlier_bins COMMIT` builds COMMIT's binaries once, from a worktree,
# keeps them beside the target dir, and prints their directory.
earlier_bins() {
  local bin="$CARGO_TARGET_DIR/foundation-$1"
  if [ ! -x "$bin/custodyd" ]; then
    local wt; wt=$(mktemp -d)
    git worktree add --detach "$wt/src" "$1" >&2
    # As in current_bins: touched, so the shared build is redone from this
    # commit's sources; and the binaries must be newer than the touch, or
    # what would be copied is some other build (an interrupted one).
    touch "$wt/stamp"
    find "$wt/src/crates" "$wt/src/tests" "$wt/src/proto" -type f -exec touch {} +
    (cd "$wt/src" && cargo build --release --bins --locked >&2)
    for b in custodyd custody; do
      if [ ! "$CARGO_TARGET_DIR/release/$b" -nt "$wt/stamp" ]; then
        echo "earlier_bins: $b was not rebuilt from $1; not copying it" >&2
        return 1
      fi
    done
    mkdir -p "$bin"
    cp "$CARGO_TARGET_DIR/release/custodyd" "$CARGO_TARGET_DIR/release/custody" "$bin/"
    git worktree remove --force "$wt/src"
  fi
  echo "$bin"
}

# `current_bins` builds this checkout's binaries and prints their
# directory. Cargo shares a workspace crate's build between checkouts (its
# hash ignores the absolute path) and judges freshness by file times, so
# after an older checkout's build this one's older files could look
# built: they are touched first, so this checkout is compiled from its own
# sources (NO_TOUCH=1 skips that, when the build is known to be current).
current_bins() {
  [ -n "${NO_TOUCH:-}" ] || find crates tests proto -type f -exec touch {} +
  cargo build --release --bins --locked >&2
  echo "$CARGO_TARGET_DIR/release"
}
