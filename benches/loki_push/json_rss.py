"""Peak RSS growth of a Strata server for two large Loki JSON pushes, each to a fresh
server: 400k real lines (24 MB) and 1M tiny entries copying a 300-byte label (9 MB).

    cargo build --bin strata
    STRATA_BIN=target/debug/strata .venv/bin/python benches/loki_push/json_rss.py

Prints each push's answer, its time and how much the server's peak RSS (VmHWM) grew.
"""
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))
import requests  # noqa: E402
from conftest import Strata  # noqa: E402


def run(name, body):
    with tempfile.TemporaryDirectory() as d:
        s = Strata(Path(d) / "data").start()
        try:
            base = s.peak_rss_mib()
            t = time.time()
            r = requests.post(s.api + "/loki/api/v1/push", data=body,
                              headers={"Content-Type": "application/json"}, timeout=600)
            secs = time.time() - t
            grown = s.peak_rss_mib() - base
            print(f"{name}: {len(body) / 1e6:.1f} MB body -> {r.status_code} in {secs:.1f} s, "
                  f"peak RSS +{grown:.0f} MiB {r.text[:100]!r}")
        finally:
            s.stop()


def main():
    t0 = 1_700_000_000_000_000_000
    values = ",".join(f'["{t0 + i}","GET /api/cart/42 200 13ms user=u{i % 100}"]' for i in range(400_000))
    run("real lines", ('{"streams":[{"stream":{"app":"api","env":"prod"},"values":[' + values + "]}]}").encode())
    values = ",".join(['["1",""]'] * 1_000_000)
    label = "x" * 300
    run("tiny entries, long label",
        ('{"streams":[{"stream":{"app":"' + label + '"},"values":[' + values + "]}]}").encode())


if __name__ == "__main__":
    main()
