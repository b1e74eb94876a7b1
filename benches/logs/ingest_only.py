#!/usr/bin/env python3
"""Ingest-only logs benchmark, for comparing builds quickly: starts a release Strata, pushes
the bodies `run.py` generated into GEN_DIR (run `run.py --gb 1 --gen-dir GEN_DIR` once first),
stops it (final flush) and prints the server's CPU-seconds and bytes on disk. No queries.

    /work/main/.venv/bin/python benches/logs/ingest_only.py --gen-dir /tmp/l4/gen1 [--binary B] [--perf OUT]

`--perf OUT` attaches `perf record -g` to the server for the whole run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import run  # noqa: E402
from benchlib import cpu_seconds, dir_bytes, stop_with_rusage  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gen-dir", required=True, help="a directory run.py generated data into")
    ap.add_argument("--binary", default=str(run.TARGET / "release" / "strata"))
    ap.add_argument("--perf", metavar="OUT", help="record a perf profile of the server into OUT")
    args = ap.parse_args()
    gen_dir = Path(args.gen_dir)
    s = json.loads((gen_dir / "summary.json").read_text())
    raw, zstd_bytes = s["raw_bytes"], s["zstd3_bytes"]
    with tempfile.TemporaryDirectory(prefix="strata-logs-ingest-") as tmp:
        st = run.Strata(args.binary, tmp).start()
        perf = None
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-F", "299", "-g", "-p", str(st.proc.pid), "-o", args.perf],
                                    stderr=subprocess.DEVNULL)
            time.sleep(1)
        cpu0, w0 = cpu_seconds(st.proc.pid), time.time()
        run.send(st.api, run.bodies(gen_dir / "bodies.bin"))
        cpu1, w1 = cpu_seconds(st.proc.pid), time.time()
        ru = stop_with_rusage(st.proc, timeout=3600)
        if perf:
            perf.wait()
        total = ru.ru_utime + ru.ru_stime - cpu0
        disk = dir_bytes(st.data / "files")
        tokens = sum(p.stat().st_size for p in (st.data / "files").rglob("*.tokens"))
        print(f"sends: {raw / 1e6 / (cpu1 - cpu0):.1f} MB per CPU-s ({cpu1 - cpu0:.1f} CPU-s), "
              f"{raw / 1e6 / (w1 - w0):.1f} MB/s wall; incl. final flush: {raw / 1e6 / total:.1f} MB per CPU-s "
              f"({total:.1f} CPU-s); disk {disk / 1e6:.1f} MB (token index {tokens / 1e6:.1f} MB) = "
              f"{disk / zstd_bytes:.4f}x zstd -3; load average {os.getloadavg()[0]:.1f}")
        run.print_column_sizes(st.data / "files", disk)


if __name__ == "__main__":
    main()
