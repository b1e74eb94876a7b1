#!/usr/bin/env python3
"""End-to-end traces benchmark: ingest SDK-shaped spans into a fresh Strata over OTLP/HTTP
protobuf, then measure bytes per span on disk, trace-by-id latency with no time range and
search latency over the whole set.

Run from the repo root with the e2e venv and a release build:

    cargo build --release --bin strata
    .venv/bin/python benches/traces/run.py --spans 1000000

Spans are shaped like the OpenTelemetry SDK's HTTP server/client spans (10 attributes
each, ~0.7 events per span, 10 spans per trace, 10 services with 9 resource attributes;
the same generator as benches/ingest). Requests (500 spans) are generated on the fly by
the sender threads, so the client's memory stays flat; the server's CPU is read from
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
import importlib.util
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
spec = importlib.util.spec_from_file_location("ingest_run", ROOT / "benches" / "ingest" / "run.py")
ing = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ing)
sys.path.insert(0, str(ROOT / "benches"))
import benchlib  # noqa: E402

PER_REQUEST = 500
SPANS_PER_TRACE = 10


def make_request(rng, base_ns, first_span, n_spans, sample, lock):
    """One ExportTraceServiceRequest of `n_spans` spans (whole traces of 10 spans)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
    kv = ing.kv
    req = ExportTraceServiceRequest()
    per_res = n_spans // 4
    n = 0
    for r in range(4):
        rs = req.resource_spans.add()
        rs.resource.CopyFrom(ing.resource(rng, first_span // PER_REQUEST * 4 + r))
        ss = rs.scope_spans.add()
        ss.scope.name = "opentelemetry.instrumentation.flask"
        ss.scope.version = "0.45b0"
        k = 0
        while k < per_res:
            trace_id = rng.randbytes(16)
            root = rng.randbytes(8)
            start = base_ns + (first_span + n) * 200_000
            if rng.random() < 0.01:
                with lock:
                    sample.append((trace_id.hex(), min(SPANS_PER_TRACE, per_res - k)))
            for j in range(min(SPANS_PER_TRACE, per_res - k)):
                sid = root if j == 0 else rng.randbytes(8)
                dur = rng.randrange(50_000, 200_000_000)
                route = rng.choice(ing.ROUTES)
                sp = ss.spans.add(trace_id=trace_id, span_id=sid, parent_span_id=b"" if j == 0 else root,
                                  name=f"GET {route}" if j == 0 else rng.choice(
                                      ["SELECT orders", "redis GET", "HTTP POST", "render"]),
                                  kind=Span.SPAN_KIND_SERVER if j == 0 else Span.SPAN_KIND_CLIENT,
                                  start_time_unix_nano=start + j * 1000, end_time_unix_nano=start + j * 1000 + dur)
                code = rng.choice([200] * 9 + [500])
                sp.attributes.extend([
                    kv("http.method", "GET"), kv("http.route", route), kv("http.status_code", code),
                    kv("http.scheme", "https"), kv("net.host.name", "shop.example.com"),
                    kv("net.peer.ip", f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"),
                    kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0"),
                    kv("http.request_content_length", rng.randrange(0, 5000)),
                    kv("enduser.id", f"u{rng.randrange(10**6):06d}"), kv("cache.hit", rng.random() < 0.7)])
                if rng.random() < 0.5:
                    sp.events.add(name="cache.lookup", time_unix_nano=start + j * 1000 + dur // 3,
                                  attributes=[kv("cache.key", f"k{rng.randrange(10**5)}")])
                if rng.random() < 0.2:
                    sp.events.add(name="retry", time_unix_nano=start + j * 1000 + dur // 2,
                                  attributes=[kv("attempt", 1)])
                if code == 500:
                    sp.status.code = Status.STATUS_CODE_ERROR
                    sp.status.message = "internal error"
                n += 1
                k += 1
    return req.SerializeToString(), n


def ingest(st, total, threads, base_ns):
    sample, lock = [], threading.Lock()
    counters = {"spans": 0, "bytes": 0, "errors": [], "retries": 0}
    n_requests = (total + PER_REQUEST - 1) // PER_REQUEST

    def worker(w):
        s = requests.Session()
        rng = random.Random(1000 + w)
        for i in range(w, n_requests, threads):
            body, n = make_request(rng, base_ns, i * PER_REQUEST, min(PER_REQUEST, total - i * PER_REQUEST),
                                   sample, lock)
            for attempt in range(50):
                r = s.post(st.otlp + "/v1/traces", data=body,
                           headers={"Content-Type": "application/x-protobuf"}, timeout=120)
                if r.status_code < 300:
                    break
                if r.status_code not in (429, 503):
                    counters["errors"].append(f"{r.status_code}: {r.text[:200]}")
                    break
                counters["retries"] += 1
                time.sleep(min(0.05 * 2 ** attempt, 2))
            with lock:
                counters["spans"] += n
                counters["bytes"] += len(body)

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    c0, t0 = ing.cpu_seconds(st.proc.pid), time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall, cpu = time.perf_counter() - t0, ing.cpu_seconds(st.proc.pid) - c0
    return dict(wall=wall, cpu=cpu, hwm=ing.vm_hwm_bytes(st.proc.pid), sample=sample, **counters)


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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strata-bin", default=str(ROOT / "target" / "release" / "strata"))
    ap.add_argument("--lookups", type=int, default=200)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="strata-traces-bench-") as tmp:
        st = ing.Strata(args.strata_bin, tmp, "strata")
        base_ns = time.time_ns() - 6 * 3_600_000_000_000
        print(f"ingesting {args.spans:,} spans with {args.threads} sender threads ...", flush=True)
        res = ingest(st, args.spans, args.threads, base_ns)
        accepted = st.metric("strata_ingest_items_accepted_total{signal=\"traces\"}") or res["spans"]
        wal = ing.dir_bytes(st.data / "wal")
        ru = ing.stop_with_rusage(st.proc, timeout=1800)
        flush_cpu = ru.ru_utime + ru.ru_stime - (res["cpu"] + 0)
        files = ing.dir_bytes(st.data / "files")
        print(f"  sent {res['spans']:,} spans, {res['bytes'] / 1e6:.1f} MB protobuf in {res['wall']:.1f} s; "
              f"server CPU {res['cpu']:.1f} s; errors {len(res['errors'])}, retries {res['retries']}")

        st2 = ing.Strata.__new__(ing.Strata)
        # Restart on the same data directory: everything is in Parquet now.
        st2.dir, st2.data = st.dir, st.data
        st2.http_port, st2.otlp_port, st2.grpc_port = ing.free_port(), ing.free_port(), ing.free_port()
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
        end_us = (base_ns + args.spans * 200_000) // 1000 + 1_000_000
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
        ing.stop_with_rusage(st2.proc)

    n = accepted
    print()
    print(f"## Traces benchmark: {n:,.0f} spans ({args.spans // SPANS_PER_TRACE:,} traces), "
          f"{args.threads} sender threads, {PER_REQUEST} spans/request")
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
    print(f"| peak RSS during ingest | {ing.fmt_bytes(res['hwm'])} |")
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
