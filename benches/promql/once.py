#!/usr/bin/env python3
"""Runs each query of run.py's query set against two already running servers and reports
wall time and the server's CPU time per query.

    .venv/bin/python benches/promql/once.py STRATA_URL PROMETHEUS_URL WORKDIR [REPS]

WORKDIR is a `run.py --workdir` whose params.json gives the loaded time range. For when a
full `run.py` does not fit the time at hand. Each query runs once to warm up, then REPS
times (default 3) per server, alternating; the figures are medians. Server CPU (utime +
stime of the process listening on the URL's port, from /proc) is robust to other load on
a shared machine, where wall time is not.
"""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("promql_run", HERE / "run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)


def listening_pid(url):
    port = urlparse(url).port
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    strata, prometheus, workdir = sys.argv[1:4]
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    load = json.loads((Path(workdir) / "params.json").read_text())["load"]
    servers = {"prometheus": prometheus.rstrip("/"), "strata": strata.rstrip("/")}
    pids = {k: listening_pid(v) for k, v in servers.items()}
    session = requests.Session()
    print(f"medians of {reps} runs after one warm-up; CPU is the server process's")
    print("| query | Strata wall s | Prometheus wall s | wall P/S | Strata CPU s | Prometheus CPU s "
          "| CPU P/S | same answer |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, expr, kind, params in run.query_set(load["start_ms"], load["end_ms"]):
        walls = {k: [] for k in servers}
        cpus = {k: [] for k in servers}
        data = {}
        path = "/api/v1/query_range" if kind == "range" else "/api/v1/query"
        for rep in range(reps + 1):
            order = list(servers.items()) if rep % 2 else list(servers.items())[::-1]
            for srv, base in order:
                c0, t0 = cpu_seconds(pids[srv]), time.perf_counter()
                r = session.post(base + path, data=dict(params, query=expr), timeout=600)
                wall, cpu = time.perf_counter() - t0, cpu_seconds(pids[srv]) - c0
                if rep == 0:
                    data[srv] = r.json().get("data")
                else:
                    walls[srv].append(wall)
                    cpus[srv].append(cpu)
        if data["strata"] is None or data["prometheus"] is None:
            diff = "error answer"
        else:
            diff = run.compare(data["strata"], data["prometheus"])
        w = {k: statistics.median(v) for k, v in walls.items()}
        c = {k: statistics.median(v) for k, v in cpus.items()}
        cpu_ratio = f"{c['prometheus'] / c['strata']:.2f}" if c["strata"] else "inf"
        print(f"| `{name}` | {w['strata']:.3f} | {w['prometheus']:.3f} | "
              f"{w['prometheus'] / w['strata']:.2f} | {c['strata']:.2f} | {c['prometheus']:.2f} | "
              f"{cpu_ratio} | {'yes' if diff is None else diff} |", flush=True)


if __name__ == "__main__":
    main()
