#!/usr/bin/env python3
"""Times each query of run.py's query set once against two already running servers.

    .venv/bin/python benches/promql/once.py STRATA_URL PROMETHEUS_URL WORKDIR

WORKDIR is a `run.py --workdir` whose params.json gives the loaded time range. For when a
full `run.py` (warm-up plus N interleaved repetitions) does not fit the time at hand; one
sample per query is a rough figure, not a p50.
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("promql_run", HERE / "run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)


def main():
    strata, prometheus, workdir = sys.argv[1:4]
    load = json.loads((Path(workdir) / "params.json").read_text())["load"]
    servers = {"prometheus": prometheus.rstrip("/"), "strata": strata.rstrip("/")}
    session = requests.Session()
    print("| query | Strata s | Prometheus s | Strata/Prometheus | same answer |")
    print("|---|---:|---:|---:|---|")
    for name, expr, kind, params in run.query_set(load["start_ms"], load["end_ms"]):
        took, data = {}, {}
        for srv, base in servers.items():
            path = "/api/v1/query_range" if kind == "range" else "/api/v1/query"
            t0 = time.perf_counter()
            r = session.post(base + path, data=dict(params, query=expr), timeout=600)
            took[srv] = time.perf_counter() - t0
            data[srv] = r.json().get("data")
        diff = None
        if data["strata"] is None or data["prometheus"] is None:
            diff = "error answer"
        else:
            diff = run.compare(data["strata"], data["prometheus"])
        print(f"| `{name}` | {took['strata']:.2f} | {took['prometheus']:.2f} | "
              f"{took['strata'] / took['prometheus']:.2f} | {'yes' if diff is None else diff} |",
              flush=True)


if __name__ == "__main__":
    main()
