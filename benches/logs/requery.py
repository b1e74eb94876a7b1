#!/usr/bin/env python3
"""Re-times the logs benchmark's queries on files `run.py --keep DIR` left, one request each,
with the server's peak RSS per query (VmHWM reset before each):

    /work/main/.venv/bin/python benches/logs/requery.py --keep /tmp/l3/run10b --gen-dir /tmp/l3/gen10

Useful to measure a rebuilt binary on the same files, or to re-time on a quieter machine.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchlib import free_port, reset_hwm, stop_with_rusage, vm_hwm_bytes, wait_ready  # noqa: E402

HOUR_NS = 3600 * 10**9


def main():
    target = Path(os.environ.get("CARGO_TARGET_DIR", HERE.parents[1] / "target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", required=True, help="the work dir of a run.py --keep run (strata.toml and data/)")
    ap.add_argument("--gen-dir", required=True, help="its --gen-dir (summary.json: start time and rare ids)")
    ap.add_argument("--binary", default=str(target / "release" / "strata"))
    args = ap.parse_args()
    s = json.loads((Path(args.gen_dir) / "summary.json").read_text())
    port = free_port()
    proc = subprocess.Popen(
        [args.binary, "--config", f"{args.keep}/strata.toml", "--data-dir", f"{args.keep}/data",
         "--otlp-grpc-addr", f"127.0.0.1:{free_port()}", "--otlp-http-addr", f"127.0.0.1:{free_port()}",
         "--http-addr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}"
    wait_ready(api + "/-/ready", proc, "strata")
    start, end = s["start_ns"] - 60 * 10**9, s["start_ns"] + 2 * HOUR_NS
    sel = '{service_name=~".+"}'
    needle = s["needles"][len(s["needles"]) // 2]
    queries = [
        (f'{sel} |= "{needle}"', {"limit": "100"}),
        (f"sum by (service_name) (count_over_time({sel}[1h]))", {"step": "3600"}),
        (f'{sel} |= "error" | json | status >= 500', {"limit": "100"}),
    ]
    try:
        for q, extra in queries:
            reset_hwm(proc.pid)
            t0 = time.perf_counter()
            r = requests.get(api + "/loki/api/v1/query_range",
                             params={"query": q, "start": str(start), "end": str(end), **extra}, timeout=1800)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                raise RuntimeError(f"{q}: {r.status_code} {r.text}")
            print(f"{q}: {dt * 1000:.0f} ms, peak RSS {vm_hwm_bytes(proc.pid) / 2**20:.0f} MiB", flush=True)
    finally:
        stop_with_rusage(proc)


if __name__ == "__main__":
    main()
