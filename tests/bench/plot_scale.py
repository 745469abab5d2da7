#!/usr/bin/env python3
"""Charts of a `tests/bench/scale.sh` run: one PNG per measure, log size on
a log axis, so a flat line is a cost that does not grow with the log.

    python3 tests/bench/plot_scale.py RESULTS.jsonl OUTDIR

Installs matplotlib from PyPI if it is missing.
"""
import json
import os
import subprocess
import sys


def load(path):
    # Runs before 2026-12-02 wrote seconds as bc prints them (".376").
    rows = [json.loads(line.replace(':.', ':0.')) for line in open(path) if line.strip()]
    by = {}
    for r in rows:
        by.setdefault(r["phase"], []).append(r)
    return by


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "matplotlib"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = load(sys.argv[1])
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    targets = sorted({r["target"] for r in by.get("ingest", [])})

    def at(phase, t, f, after=None):
        return [f(r) for r in by.get(phase, []) if r["target"] == t
                and (after is None or r.get("after") == after)]

    def chart(name, title, ylabel, series):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for label, ys in series:
            pts = [(t, y) for t, y in zip(targets, ys) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("entries in the log")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out, name)
        fig.savefig(path)
        plt.close(fig)
        print(path)

    def one(phase, t, f, after=None):
        v = at(phase, t, f, after)
        return median(v) if v else None

    chart("scale-rss.png", "Peak RSS of custodyd", "MiB", [
        ("ingesting", [one("ingest", t, lambda r: r["peak_rss_mib"]) for t in targets]),
        ("after a SIGKILL restart", [one("restart", t, lambda r: r["peak_rss_mib"], "SIGKILL") for t in targets]),
        ("DESIGN §9 limit", [512 for _ in targets]),
    ])
    chart("scale-ingest.png", "Streaming ingest (median of the load steps)", "events/s", [
        ("events/s", [one("ingest", t, lambda r: r["load"]["events_per_sec"]) for t in targets]),
    ])
    chart("scale-restart.png", "Restart to answering findings", "seconds", [
        ("after SIGKILL", [one("restart", t, lambda r: r["seconds_to_findings"], "SIGKILL") for t in targets]),
        ("after compaction", [one("restart", t, lambda r: r["seconds_to_findings"], "compaction") for t in targets]),
    ])
    chart("scale-disk.png", "Database bytes per entry", "bytes per entry", [
        ("before compaction", [one("disk", t, lambda r: r["db_bytes"] / r["size"]) for t in targets]),
        ("after compaction", [one("disk", t, lambda r: r["db_bytes_compacted"] / r["size"]) for t in targets]),
        ("signed events sent", [one("disk", t, lambda r: r["signed_bytes"] / r["size"]) for t in targets]),
    ])
    chart("scale-proofs.png", "Inclusion proofs over gRPC (8 clients)", "proofs/s", [
        ("proofs/s", [one("proofs", t, lambda r: r["report"]["proofs_per_sec"]) for t in targets]),
    ])

    def q(t, prefix, key):
        for r in at("queries", t, lambda r: r):
            for x in r["report"]["queries"]:
                if x["query"].startswith(prefix):
                    return x[key]
        return None

    chart("scale-queries.png", "Query latency, p99", "ms", [
        ("AssetHistory, 10,000 events", [q(t, "AssetHistory", "p99_ms") for t in targets]),
        ("BreachScope, count + first page", [q(t, "BreachScope", "p99_ms") for t in targets]),
        ("inclusion proof", [one("proofs", t, lambda r: r["report"]["p99_ms"]) for t in targets]),
    ])


if __name__ == "__main__":
    main()
