#!/usr/bin/env python3
"""End-to-end traces benchmark: ingest SDK-shaped spans into a fresh Strata over OTLP/HTTP
protobuf, then measure bytes per span on disk, trace-by-id latency with no time range and
search latency over the whole set.

Run from the repo root with the e2e venv and a release build:

    cargo build --release --bin strata
    .venv/bin/python benches/traces/run.py --spans 1000000

Spans are shaped like the OpenTelemetry SDK's HTTP server/client spans (10 attributes
each, ~0.7 events per span, 10 spans per trace, 10 services with 9 resource attributes;
the generator `benchlib.span_request` shared with benches/ingest, which encodes protobuf
by hand, ~30 µs per span). Requests (500 spans) are generated on the fly by the sender
processes, so the client's memory stays flat; the server's CPU is read from
/proc/<pid>/stat over the send window (spans per CPU-second), and its final flush on
SIGTERM is reported separately (wait4 rusage). Bytes per span are `files/` after that
flush divided by the spans accepted. Strata is then restarted on the same data (all of
it in Parquet, nothing in memtables) and queried:

* trace by id: 200 random known trace ids, Jaeger `/jaeger/api/traces/<id>` and Tempo
  `/api/traces/<id>` (protobuf), no time range, sequential; p50 / p99 / max.
* search: Jaeger `/jaeger/api/traces?service=&tags=&minDuration=` and the equivalent
  TraceQL through Tempo's `/api/search`, over the whole ingested time range, 5 runs each.
"""

import argparse
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benches"))
import benchlib  # noqa: E402

PER_REQUEST = 500
SPANS_PER_TRACE = 10
SPACING_NS = 200_000  # between the starts of consecutive traces' first spans


def send_share(args):
    """Sender process `w` of `procs`: generates its share of the requests (every procs-th
    one) and posts them; returns its counters and a 1% sample of (trace id, spans)."""
    url, total, procs, w, base_ns = args
    s = requests.Session()
    rng = random.Random(1000 + w)
    sample = []
    out = {"spans": 0, "bytes": 0, "errors": [], "retries": 0}

    def on_trace(tid, n):
        if rng.random() < 0.01:
            sample.append((tid, n))

    n_requests = (total + PER_REQUEST - 1) // PER_REQUEST
    for i in range(w, n_requests, procs):
        n_spans = min(PER_REQUEST, total - i * PER_REQUEST)
        body, n = benchlib.span_request(rng, base_ns, i * PER_REQUEST, n_spans, SPACING_NS, i * 4,
                                        SPANS_PER_TRACE, on_trace)
        for attempt in range(50):
            r = s.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=120)
            if r.status_code < 300:
                break
            if r.status_code not in (429, 503):
                out["errors"].append(f"{r.status_code}: {r.text[:200]}")
                break
            out["retries"] += 1
            time.sleep(min(0.05 * 2 ** attempt, 2))
        out["spans"] += n
        out["bytes"] += len(body)
    out["sample"] = sample
    return out


def ingest(st, total, procs, base_ns):
    c0, t0 = benchlib.cpu_seconds(st.proc.pid), time.perf_counter()
    with multiprocessing.Pool(procs) as pool:
        parts = pool.map(send_share, [(st.otlp + "/v1/traces", total, procs, w, base_ns) for w in range(procs)])
    wall, cpu = time.perf_counter() - t0, benchlib.cpu_seconds(st.proc.pid) - c0
    res = dict(wall=wall, cpu=cpu, hwm=benchlib.vm_hwm_bytes(st.proc.pid), sample=[], spans=0, bytes=0, errors=[],
               retries=0)
    for p in parts:
        for k in ("spans", "bytes", "retries"):
            res[k] += p[k]
        res["errors"] += p["errors"]
        res["sample"] += p["sample"]
    return res


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--procs", type=int, default=2, help="sender processes (each generates its requests)")
    ap.add_argument("--strata-bin", default=str(ROOT / "target" / "release" / "strata"))
    ap.add_argument("--lookups", type=int, default=200)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="strata-traces-bench-") as tmp:
        st = benchlib.Strata(args.strata_bin, tmp, "strata")
        base_ns = time.time_ns() - 6 * 3_600_000_000_000
        print(f"ingesting {args.spans:,} spans with {args.procs} sender processes ...", flush=True)
        res = ingest(st, args.spans, args.procs, base_ns)
        accepted = st.metric("strata_ingest_items_accepted_total{signal=\"traces\"}") or res["spans"]
        wal = benchlib.dir_bytes(st.data / "wal")
        ru = benchlib.stop_with_rusage(st.proc, timeout=1800)
        flush_cpu = ru.ru_utime + ru.ru_stime - (res["cpu"] + 0)
        files = benchlib.dir_bytes(st.data / "files")
        print(f"  sent {res['spans']:,} spans, {res['bytes'] / 1e6:.1f} MB protobuf in {res['wall']:.1f} s; "
              f"server CPU {res['cpu']:.1f} s; errors {len(res['errors'])}, retries {res['retries']}")

        st2 = benchlib.Strata.__new__(benchlib.Strata)
        # Restart on the same data directory: everything is in Parquet now.
        st2.dir, st2.data = st.dir, st.data
        st2.http_port, st2.otlp_port, st2.grpc_port = benchlib.free_port(), benchlib.free_port(), benchlib.free_port()
        st2.api = f"http://127.0.0.1:{st2.http_port}"
        st2.otlp = f"http://127.0.0.1:{st2.otlp_port}"
        import subprocess
        st2.log = open(st.dir / "strata2.log", "wb")
        st2.proc = subprocess.Popen(
            [args.strata_bin, "--config", str(st.dir / "strata.toml"), "--data-dir", str(st.data),
             "--otlp-grpc-addr", f"127.0.0.1:{st2.grpc_port}", "--otlp-http-addr", f"127.0.0.1:{st2.otlp_port}",
             "--http-addr", f"127.0.0.1:{st2.http_port}"], stdout=st2.log, stderr=subprocess.STDOUT)
        benchlib.wait_ready(st2.api + "/-/ready", st2.proc, "strata", timeout=600)
        s = requests.Session()
        ids = random.Random(7).sample(res["sample"], min(args.lookups, len(res["sample"])))

        def jaeger(i):
            r = s.get(f"{st2.api}/jaeger/api/traces/{i[0]}", timeout=60)
            assert r.status_code == 200 and len(r.json()["data"][0]["spans"]) == i[1], r.text[:300]

        def tempo(i):
            r = s.get(f"{st2.api}/api/traces/{i[0]}", headers={"Accept": "application/protobuf"}, timeout=60)
            assert r.status_code == 200 and len(r.content) > 0

        jaeger(ids[0])  # first touch loads footers
        by_id_j = [timed(lambda i=i: jaeger(i), 1)[0] for i in ids]
        by_id_t = [timed(lambda i=i: tempo(i), 1)[0] for i in ids]
        start_us = base_ns // 1000 - 1_000_000
        end_us = (base_ns + args.spans * SPACING_NS) // 1000 + 1_000_000
        jq = dict(service="payment", tags='{"http.route":"/api/checkout"}', minDuration="150ms",
                  start=start_us, end=end_us, limit=20)
        found = {}

        def jsearch():
            r = s.get(f"{st2.api}/jaeger/api/traces", params=jq, timeout=600)
            assert r.status_code == 200, r.text[:300]
            found["jaeger"] = len(r.json()["data"])

        tq = dict(q='{ resource.service.name = "payment" && span.http.route = "/api/checkout" && duration > 150ms }',
                  start=start_us // 1_000_000, end=end_us // 1_000_000 + 1, limit=20)

        def tsearch():
            r = s.get(f"{st2.api}/api/search", params=tq, timeout=600)
            assert r.status_code == 200, r.text[:300]
            found["tempo"] = len(r.json()["traces"])

        js = timed(jsearch, 5)
        tsr = timed(tsearch, 5)
        benchlib.stop_with_rusage(st2.proc)

    n = accepted
    print()
    print(f"## Traces benchmark: {n:,.0f} spans ({args.spans // SPANS_PER_TRACE:,} traces), "
          f"{args.procs} sender processes, {PER_REQUEST} spans/request")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| ingest spans/s (wall, client on the same cores) | {n / res['wall']:,.0f} |")
    print(f"| ingest spans per server CPU-second | {n / res['cpu']:,.0f} |")
    print(f"| server CPU-s of the final flush (SIGTERM) | {flush_cpu:.1f} |")
    print(f"| spans per CPU-second incl. the final flush | {n / (res['cpu'] + max(flush_cpu, 0)):,.0f} |")
    print(f"| protobuf bytes per span sent | {res['bytes'] / n:.1f} |")
    print(f"| Parquet bytes per span on disk after flush | {files / n:.1f} |")
    print(f"| WAL bytes per span before flush | {wal / n:.1f} |")
    print(f"| peak RSS during ingest | {benchlib.fmt_bytes(res['hwm'])} |")
    for name, xs in [("Jaeger JSON", by_id_j), ("Tempo protobuf", by_id_t)]:
        print(f"| trace by id, no time range, {name} ({len(xs)} ids): p50 / p99 / max ms | "
              f"{pct(xs, 50):.1f} / {pct(xs, 99):.1f} / {max(xs):.1f} |")
    print(f"| Jaeger search service+tag+minDuration, whole set ({found.get('jaeger')} traces): median / max ms | "
          f"{statistics.median(js):.0f} / {max(js):.0f} |")
    print(f"| TraceQL search same conditions ({found.get('tempo')} traces): median / max ms | "
          f"{statistics.median(tsr):.0f} / {max(tsr):.0f} |")
    if res["errors"]:
        print(f"\n{len(res['errors'])} failed requests, first: {res['errors'][0]}", file=sys.stderr)


if __name__ == "__main__":
    main()
