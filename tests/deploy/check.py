#!/usr/bin/env python3
"""Checks of deploy/ that no linter makes (tests/deploy/check.sh runs it).

  dashboard   deploy/grafana/custody-ledger.json parses, and every metric
              and label its PromQL names is one crates/custodyd/src/metrics.rs
              exports (the names are derived from the registrations there:
              prefix, name, unit, and the type's suffixes).
  kustomize   deploy/kustomization.yaml names files that exist, generates
              the ConfigMap the StatefulSet mounts from deploy/custodyd.toml.
  paths       the data directory, the settings file's path and the ports
              agree between deploy/custodyd.toml, the Dockerfile, the
              systemd unit and the StatefulSet; the listeners bind every
              address; every CUSTODYD_* variable the StatefulSet sets is a
              documented setting (docs/configuration.md).

Usage: check.py dashboard|kustomize|paths [FILE] (FILE: another dashboard).
Exits 1 with one line per problem.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROBLEMS = []


def problem(msg):
    PROBLEMS.append(msg)


# ---- metrics.rs -----------------------------------------------------------

SUFFIXES = {
    "Counter": ["_total"],
    "Gauge": [""],
    "Histogram": ["_bucket", "_sum", "_count"],
}
# Labels Prometheus adds at scrape (and `le` on histogram buckets).
SCRAPE_LABELS = {"instance", "job"}


def exported_metrics():
    """Maps each sample name /metrics serves to its label names."""
    src = (ROOT / "crates/custodyd/src/metrics.rs").read_text()
    m = re.search(r'Registry::with_prefix\("(\w+)"\)', src)
    if not m:
        sys.exit("check.py: no Registry::with_prefix in metrics.rs: update the parser")
    prefix = m.group(1)
    label_sets = {
        name: re.findall(r"(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:", re.sub(r"//[^\n]*", "", body))
        for name, body in re.findall(
            r"#\[derive\([^)]*EncodeLabelSet[^)]*\)\]\s*(?:pub\s+)?struct\s+(\w+)\s*\{([^}]*)\}", src
        )
    }
    variables = {}
    for var, family_labels, family_type, plain_type in re.findall(
        r"let\s+(\w+)\s*=\s*(?:Family::<\s*(\w+)\s*,\s*(\w+)[^>]*>|(\w+))", src
    ):
        kind = family_type or plain_type
        if family_labels and family_labels not in label_sets:
            sys.exit(f"check.py: metrics.rs labels {var} with {family_labels}, whose fields the parser missed")
        if kind in SUFFIXES:
            variables[var] = (kind, label_sets.get(family_labels, []) if family_labels else [])
    out = {}
    for name, unit, var in re.findall(
        r'registry\s*\.\s*register(?:_with_unit)?\(\s*"(\w+)"\s*,\s*"[^"]*"\s*,\s*(?:Unit::(\w+)\s*,\s*)?(\w+)\.clone\(\)',
        src,
    ):
        if var not in variables:
            sys.exit(f"check.py: metrics.rs registers {name} from {var}, whose type the parser missed")
        kind, labels = variables[var]
        base = f"{prefix}_{name}" + (f"_{unit.lower()}" if unit else "")
        for suffix in SUFFIXES[kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            out[base + suffix] = set(labels) | SCRAPE_LABELS | extra
    if len(out) < 10:
        sys.exit(f"check.py: found only {len(out)} metrics in metrics.rs: update the parser")
    return prefix, out


def exprs(node):
    """Every PromQL string of a dashboard: targets' expr, variables' queries."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "definition") and isinstance(v, str):
                yield v
            elif k == "query" and isinstance(v, str) and "(" in v:
                yield v
            else:
                yield from exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from exprs(v)


def legends(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "legendFormat" and isinstance(v, str):
                yield v
            else:
                yield from legends(v)
    elif isinstance(node, list):
        for v in node:
            yield from legends(v)


def check_dashboard(path):
    path = path.resolve()
    if path.is_relative_to(ROOT):
        path = path.relative_to(ROOT)
    prefix, metrics = exported_metrics()
    all_labels = set().union(*metrics.values())
    try:
        dash = json.loads((ROOT / path).read_text())
    except (OSError, ValueError) as e:
        problem(f"{path}: not JSON: {e}")
        return
    names = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    if not any(v.get("type") == "datasource" for v in dash.get("templating", {}).get("list", [])):
        problem(f"{path}: no datasource template variable")
    found = list(exprs(dash))
    if not found:
        problem(f"{path}: no PromQL expressions")
    used = set()
    for e in found:
        # Dashboard variables ($instance, ${datasource}) are not metrics.
        for var in re.findall(r"\$\{?(\w+)", e):
            if var not in names and not var.startswith("__"):
                problem(f"{path}: {e!r} uses ${var}, which the dashboard does not define")
        for name in re.findall(rf"\b{prefix}_[A-Za-z0-9_:]+", e):
            used.add(name)
            if name not in metrics:
                problem(f"{path}: {name} is not a metric custodyd exports (crates/custodyd/src/metrics.rs)")
        for name, body in re.findall(rf"\b({prefix}_[A-Za-z0-9_:]+)\s*\{{([^}}]*)\}}", e):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", body):
                if name in metrics and label not in metrics[name]:
                    problem(f"{path}: {name} has no label {label!r} (it has {sorted(metrics[name])})")
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", e):
            for label in re.findall(r"\w+", group):
                if label not in all_labels:
                    problem(f"{path}: {e!r} groups by {label!r}, which no custodyd metric has")
    for legend in legends(dash):
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
            if label not in all_labels:
                problem(f"{path}: legend {legend!r} names {label!r}, which no custodyd metric has")
    syntax = promtool_check(dash)
    if not PROBLEMS:
        print(f"dashboard: {len(found)} expressions, {len(used)} metrics, all exported by custodyd{syntax}")


def promtool_check(dash):
    """The panels' PromQL parses, by promtool, when it is installed
    (deploy/install-deps.sh --test installs Debian's prometheus)."""
    promtool = shutil.which("promtool")
    if not promtool:
        return "; promtool not found, PromQL syntax not checked"
    targets = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                targets.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dash)
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": re.sub(r"\$\{?\w+\}?", lambda m: "5m" if "rate_interval" in m.group(0) or "interval" in m.group(0) else ".*", e)}
        for i, e in enumerate(targets)
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    try:
        r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    finally:
        Path(f.name).unlink()
    if r.returncode != 0:
        problem(f"promtool check rules on the panels' PromQL: {(r.stdout + r.stderr).strip()}")
    return f"; promtool parsed all {len(targets)} panel queries"


# ---- kustomization ----------------------------------------------------------


def load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def statefulset():
    docs = [d for d in load_all(DEPLOY / "k8s/statefulset.yaml") if d.get("kind") == "StatefulSet"]
    if len(docs) != 1:
        sys.exit("check.py: deploy/k8s/statefulset.yaml must hold one StatefulSet")
    return docs[0]


def check_kustomize():
    k = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for res in k.get("resources", []):
        if not (DEPLOY / res).is_file():
            problem(f"deploy/kustomization.yaml: resource {res} does not exist")
    generated = {}
    for gen in k.get("configMapGenerator", []):
        for f in gen.get("files", []):
            key, _, src = f.partition("=")
            src = src or key
            if not (DEPLOY / src).is_file():
                problem(f"deploy/kustomization.yaml: configMapGenerator {gen['name']} reads {src}, which does not exist")
            generated.setdefault(gen["name"], {})[Path(key).name] = src
    if generated.get("custodyd-config", {}).get("custodyd.toml") != "custodyd.toml":
        problem("deploy/kustomization.yaml: ConfigMap custodyd-config must be generated from deploy/custodyd.toml")
    listed = {str(p.relative_to(DEPLOY)) for p in (DEPLOY / "k8s").glob("*.yaml")}
    for missing in sorted(listed - set(k.get("resources", []))):
        problem(f"deploy/kustomization.yaml: {missing} is not among its resources")
    spec = statefulset()["spec"]["template"]["spec"]
    config_maps = {v["configMap"]["name"]: v for v in spec.get("volumes", []) if "configMap" in v}
    for name, keys in generated.items():
        if name not in config_maps:
            problem(f"deploy/k8s/statefulset.yaml: mounts no ConfigMap {name}")
            continue
        for item in config_maps[name]["configMap"].get("items", []):
            if item["key"] not in keys:
                problem(f"deploy/k8s/statefulset.yaml: ConfigMap {name} has no key {item['key']}")
    if spec.get("containers") and spec["containers"][0].get("volumeMounts"):
        for vm in spec["containers"][0]["volumeMounts"]:
            vol = next((v for v in spec["volumes"] if v["name"] == vm["name"]), None)
            if vol and "configMap" in vol and vol["configMap"]["name"] in generated:
                if vm.get("subPath") and vm["subPath"] not in generated[vol["configMap"]["name"]]:
                    problem(f"deploy/k8s/statefulset.yaml: {vm['subPath']} is not a key of {vol['configMap']['name']}")
    if not PROBLEMS:
        print(f"kustomize: {len(k.get('resources', []))} resources; ConfigMap custodyd-config from deploy/custodyd.toml")


# ---- paths and ports -------------------------------------------------------


def check_paths():
    conf = tomllib.loads((DEPLOY / "custodyd.toml").read_text())
    data = conf.get("data")
    ports = {}
    for key in ("grpc_addr", "http_addr"):
        host, _, port = conf.get(key, "").rpartition(":")
        if host not in ("0.0.0.0", "[::]"):
            problem(f"deploy/custodyd.toml: {key} binds {host or '?'}: containers need 0.0.0.0 or [::]")
        ports[key] = int(port) if port.isdigit() else None

    docker = (DEPLOY / "Dockerfile").read_text()
    runtime = docker.split("\nFROM ")[-1]
    volumes = re.findall(r"^VOLUME\s+\[?\"?([^\"\]\s]+)", runtime, re.M)
    expose = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", runtime, re.M) for p in re.findall(r"\d+", line)}
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", runtime, re.M)
    cmd = json.loads(cmd.group(1)) if cmd else []
    copied = re.search(r"^COPY\s+deploy/custodyd\.toml\s+(\S+)", runtime, re.M)
    if volumes != [data]:
        problem(f"deploy/Dockerfile: VOLUME {volumes} is not the settings' data directory {data}")
    if expose != set(ports.values()):
        problem(f"deploy/Dockerfile: EXPOSE {sorted(expose)} is not the settings' ports {sorted(ports.values())}")
    config_path = cmd[cmd.index("--config") + 1] if "--config" in cmd else None
    if not copied or copied.group(1) != config_path:
        problem(f"deploy/Dockerfile: CMD reads {config_path}, COPY puts the settings at {copied and copied.group(1)}")

    unit = (DEPLOY / "systemd/custodyd.service").read_text()
    state = re.search(r"^StateDirectory=(\S+)", unit, re.M)
    if not state or f"/var/lib/{state.group(1)}" != data:
        problem(f"deploy/systemd/custodyd.service: StateDirectory {state and state.group(1)} is not {data}")
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    if not exec_start or f"serve --config {config_path}" not in exec_start.group(1):
        problem(f"deploy/systemd/custodyd.service: ExecStart does not serve --config {config_path}")

    spec = statefulset()["spec"]["template"]["spec"]
    main = spec["containers"][0]
    if main.get("args") != cmd:
        problem(f"deploy/k8s/statefulset.yaml: args {main.get('args')} are not the Dockerfile's CMD {cmd}")
    mounts = {vm["mountPath"]: vm["name"] for vm in main.get("volumeMounts", [])}
    if mounts.get(data) != "data":
        problem(f"deploy/k8s/statefulset.yaml: the data volume is not mounted at {data}")
    if config_path not in mounts:
        problem(f"deploy/k8s/statefulset.yaml: nothing is mounted at {config_path}")
    cports = {p["name"]: p["containerPort"] for p in main.get("ports", [])}
    if cports != {"grpc": ports["grpc_addr"], "http": ports["http_addr"]}:
        problem(f"deploy/k8s/statefulset.yaml: ports {cports} are not the settings' {ports}")
    for c in spec.get("initContainers", []):
        if any(vm["name"] == "data" and vm["mountPath"] != data for vm in c.get("volumeMounts", [])):
            problem(f"deploy/k8s/statefulset.yaml: init container {c['name']} mounts data elsewhere than {data}")
        script = " ".join(c.get("command", []) + c.get("args", []))
        for path in re.findall(r"--data\s+(\S+)", script):
            if path != data:
                problem(f"deploy/k8s/statefulset.yaml: init container {c['name']} uses --data {path}, not {data}")
    # The signing key: the server reads it from the Secret's mount, and
    # the init container makes the log with the same file.
    env = {e["name"]: e.get("value") for e in main.get("env", [])}
    key = env.get("CUSTODYD_SIGNING_KEY")
    key_dir = key and key.rsplit("/", 1)[0]
    secret_vols = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    if not key or secret_vols.get(mounts.get(key_dir)) is None:
        problem(f"deploy/k8s/statefulset.yaml: CUSTODYD_SIGNING_KEY {key} is not a file of a mounted Secret")
    for c in spec.get("initContainers", []):
        script = " ".join(c.get("command", []) + c.get("args", []))
        if "custodyd init" in script:
            init_key = re.findall(r"--signing-key\s+(\S+)", script)
            init_mounts = {vm["mountPath"]: vm["name"] for vm in c.get("volumeMounts", [])}
            if init_key != [key] or init_mounts.get(key_dir) != mounts.get(key_dir):
                problem(f"deploy/k8s/statefulset.yaml: init container {c['name']} makes the log with --signing-key {init_key}, not the server's {key}")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        port = main.get(probe, {}).get("httpGet", {}).get("port")
        if port is not None and port != "http" and port != ports["http_addr"]:
            problem(f"deploy/k8s/statefulset.yaml: {probe} probes port {port}, not the HTTP listener")
    for svc in load_all(DEPLOY / "k8s/service.yaml"):
        for p in svc["spec"]["ports"]:
            if p.get("targetPort") not in cports and p.get("targetPort") not in cports.values():
                problem(f"deploy/k8s/service.yaml: {svc['metadata']['name']} targets port {p.get('targetPort')}, which the pod does not name")

    doc = (ROOT / "docs/configuration.md").read_text()
    for c in spec.get("containers", []):
        for env in c.get("env", []):
            name = env["name"]
            if name.startswith("CUSTODYD_"):
                key = name[len("CUSTODYD_"):].lower()
                if f"| `{key}` |" not in doc:
                    problem(f"deploy/k8s/statefulset.yaml: {name} sets {key}, which is no setting (docs/configuration.md)")
    for key in conf:
        if f"| `{key}` |" not in doc:
            problem(f"deploy/custodyd.toml: {key} is no setting (docs/configuration.md)")
    if not PROBLEMS:
        print(f"paths: data {data}, settings {config_path}, ports {sorted(ports.values())} agree in all recipes")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "dashboard":
        check_dashboard(Path(sys.argv[2]) if len(sys.argv) > 2 else DEPLOY / "grafana/custody-ledger.json")
    elif what == "kustomize":
        check_kustomize()
    elif what == "paths":
        check_paths()
    else:
        sys.exit(__doc__)
    for p in PROBLEMS:
        print(f"FAIL: {p}", file=sys.stderr)
    sys.exit(1 if PROBLEMS else 0)


if __name__ == "__main__":
    main()
