#!/usr/bin/env python3
"""PromQL query latency: Strata vs Prometheus 2.42 on the same data, side by side.

Run from the repo root with the e2e venv and a release build:

    cargo build --release --bin strata
    /work/main/.venv/bin/python benches/promql/run.py              # 100k series, 3 h of 15 s samples
    /work/main/.venv/bin/python benches/promql/run.py --quick      # 10k series, 1 h: harness check
    /work/main/.venv/bin/python benches/promql/run.py --workdir /tmp/pq --keep   # reuse loaded data

What it does (results and caveats in BENCHMARKS.md, "PromQL query latency"):

1. Starts a release `strata` and Debian's Prometheus 2.42 (`--web.enable-remote-write-receiver
   --enable-feature=native-histograms`), each with its own data dir.
2. Generates one synthetic data set shaped like a fleet of HTTP services (per instance:
   `http_requests_total{method,status,route}` counters, a classic
   `http_request_duration_seconds` histogram with 10 buckets + `+Inf` per route, an
   integer native histogram `http_request_duration_native_seconds` per route, and five
   gauges) over `--hours` of 15 s steps ending about a minute ago, and remote-writes the SAME
   bodies to both. Samples are written oldest first, one shard of series per sender thread
   and per server, so every series is in time order and Prometheus's head accepts the past
   samples (it only rejects samples older than an hour behind the newest one it has).
3. Restarts both servers on their data (Strata flushes its memtables to Parquet on SIGTERM;
   Prometheus replays its WAL), resets their VmHWM, and runs the query set: each query N
   times, interleaved (the order of the two servers alternates by repetition), over HTTP
   (`/api/v1/query_range`, `/api/v1/query`) on one kept-alive `http.client` connection per
   server, asking for gzip as Grafana does (see `Client`). Reports p50/p99 latency per query for each
   server, the Strata/Prometheus ratio, the peak RSS (VmHWM) of each process during the
   query phase, and whether both answered the same (same series, same timestamps, values
   within 1e-6 relative). A mismatch is reported next to its latency: a fast wrong answer is
   not a win.

With `--workdir DIR` the data dirs live in DIR; a later run with the same `--series`,
`--hours` and `--workdir` skips generation and loading (the end time is kept in
DIR/params.json), which is how Strata changes are re-measured without reloading.
"""

import argparse
import gzip
import http.client
import json
import math
import os
import queue
import random
import shutil
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import cramjam
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

from benchlib import (  # noqa: E402
    Prometheus, Strata, fmt_bytes, ld, reset_hwm, stop_with_rusage, varint, vm_hwm_bytes,
    vm_rss_bytes, zigzag,
)

STEP_MS = 15_000
SERVICES = ["checkout", "cart", "payment", "shipping", "frontend", "auth", "search", "catalog",
            "recommendation", "email"]
METHODS = ["GET", "POST", "PUT"]
STATUSES = ["200", "404", "500", "503"]
ROUTES = ["/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}", "/healthz",
          "/api/search"]
LES = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]
# Share of requests per `le` band (the last is the band above 5 s).
BANDS = [0.05, 0.10, 0.20, 0.20, 0.15, 0.12, 0.08, 0.05, 0.03, 0.015, 0.005]
GAUGES = ["process_resident_memory_bytes", "process_open_fds", "go_goroutines",
          "queue_depth", "cpu_usage_ratio"]
# Native histogram: schema 0 (bucket i covers (2^(i-1), 2^i]), buckets -9..4 (~2 ms .. 16 s).
NH_SCHEMA, NH_OFFSET, NH_BUCKETS = 0, -9, 14
NH_SHARE = [0.03, 0.05, 0.08, 0.12, 0.15, 0.16, 0.14, 0.10, 0.07, 0.04, 0.03, 0.02, 0.007, 0.003]
PER_INSTANCE = (len(METHODS) * len(STATUSES) * len(ROUTES)          # counters
                + len(ROUTES) * (len(LES) + 2)                        # classic histogram
                + len(ROUTES)                                         # native histogram
                + len(GAUGES))


# ---------------------------------------------------------------- data

def labels_bytes(lab):
    return b"".join(ld(1, ld(1, k.encode()) + ld(2, lab[k].encode())) for k in sorted(lab))


def make_series(instances, seed):
    """Per-instance float series [label bytes, value, kind, param] and native-histogram series."""
    rng = random.Random(seed)
    floats, natives = [], []
    for i in range(instances):
        svc = SERVICES[i % len(SERVICES)]
        inst = f"{svc}-{i // len(SERVICES):04d}:8080"
        base = {"job": svc, "service": svc, "instance": inst}
        load = rng.uniform(0.2, 5.0)  # requests per second of this instance
        for route in ROUTES:
            for method in METHODS:
                for status in STATUSES:
                    share = {"200": 0.9, "404": 0.06, "500": 0.03, "503": 0.01}[status]
                    lab = dict(base, __name__="http_requests_total", method=method, status=status,
                               route=route)
                    rate = load * share / len(METHODS) / len(ROUTES)
                    # Counters start well above zero: a counter whose first sample is
                    # within one interval of its extrapolated zero is where Prometheus 2.42
                    # and 3 extrapolate rate() differently.
                    floats.append([labels_bytes(lab), float(rng.randrange(1000, 100000)), "counter", rate])
            rate = load / len(ROUTES)
            slow = rng.uniform(0.5, 2.0)
            total = 1000.0  # counters start above zero (see above)
            for le in LES:
                lab = dict(base, __name__="http_request_duration_seconds_bucket", route=route, le=le)
                floats.append([labels_bytes(lab), total, "bucket", (rate, slow, LES.index(le))])
            for suffix in ("sum", "count"):
                lab = dict(base, __name__=f"http_request_duration_seconds_{suffix}", route=route)
                floats.append([labels_bytes(lab), total, suffix, (rate, slow)])
            lab = dict(base, __name__="http_request_duration_native_seconds", route=route)
            natives.append([labels_bytes(lab), [1000] * NH_BUCKETS, 1000.0, rate, slow])
        for g in GAUGES:
            lab = dict(base, __name__=g)
            start = {"process_resident_memory_bytes": 2e8, "process_open_fds": 80,
                     "go_goroutines": 300, "queue_depth": 10, "cpu_usage_ratio": 0.3}[g]
            floats.append([labels_bytes(lab), start * rng.uniform(0.5, 2.0), "gauge", start * 0.02])
    return floats, natives


class Generator:
    """Steps series forward 15 s at a time; deterministic for a seed."""

    def __init__(self, instances, seed=7):
        self.floats, self.natives = make_series(instances, seed)
        self.rng = random.Random(seed + 1)
        self.noise = [self.rng.uniform(0.6, 1.4) for _ in range(1021)]
        # One classic-histogram group (11 buckets + sum + count) steps together.
        self.pack = struct.Struct("<d").pack

    def step(self, k):
        """Advances every series by one step; returns the float values (same order)."""
        noise, n = self.noise, len(self.noise)
        out = []
        bucket_incs = None
        for j, s in enumerate(self.floats):
            kind = s[2]
            if kind == "counter":
                s[1] += round(s[3] * 15 * noise[(j * 31 + k) % n])
            elif kind == "bucket":
                rate, slow, idx = s[3]
                if idx == 0:
                    reqs = round(rate * 15 * noise[(j * 17 + k) % n])
                    cum, bucket_incs = 0, []
                    for b, share in enumerate(BANDS):
                        # Slow instances shift weight to the upper bands.
                        w = share * (slow if b >= 5 else 1.0)
                        cum += round(reqs * w)
                        bucket_incs.append(cum)
                    self._reqs = bucket_incs[-1]
                    self._sum = sum((bucket_incs[b] - (bucket_incs[b - 1] if b else 0)) * mid
                                    for b, mid in enumerate(_BAND_MID))
                s[1] += bucket_incs[idx]
            elif kind == "count":
                s[1] += self._reqs
            elif kind == "sum":
                s[1] = round(s[1] + self._sum, 6)
            else:  # gauge
                s[1] = round(abs(s[1] + s[3] * (noise[(j * 13 + k) % n] - 1.0) * 5), 3)
            out.append(s[1])
        for j, h in enumerate(self.natives):
            counts, rate, slow = h[1], h[3], h[4]
            reqs = round(rate * 15 * noise[(j * 7 + k) % n])
            total = 0.0
            for b in range(NH_BUCKETS):
                w = NH_SHARE[b] * (slow if b >= 8 else 1.0)
                inc = round(reqs * w)
                counts[b] += inc
                total += inc * 2.0 ** (NH_OFFSET + b - 0.5)
            h[2] = round(h[2] + total, 6)
        return out


_BAND_MID = [0.003, 0.0075, 0.0175, 0.0375, 0.075, 0.175, 0.375, 0.75, 1.75, 3.75, 7.5]


def native_histogram_bytes(counts, total, ts):
    """An integer native histogram (remote-write `prometheus.Histogram`)."""
    count = sum(counts)
    deltas, prev = bytearray(), 0
    for c in counts:
        deltas += varint(zigzag(c - prev))
        prev = c
    span = b"\x08" + varint(zigzag(NH_OFFSET) & 0xFFFFFFFF) + b"\x10" + varint(NH_BUCKETS)
    return (b"\x08" + varint(count)                      # count_int
            + b"\x19" + struct.pack("<d", total)         # sum
            + b"\x20" + varint(zigzag(NH_SCHEMA))        # schema (sint32)
            + b"\x29" + struct.pack("<d", 2.0 ** -128)   # zero_threshold (Prometheus' default)
            + b"\x30" + varint(0)                        # zero_count_int
            + ld(11, span)                               # positive_spans
            + ld(12, bytes(deltas))                      # positive_deltas (packed sint64)
            + b"\x78" + varint(ts))                      # timestamp


def generate(gen, total_steps, start_ms, shards_n, chunk_steps, per_request, out_queues, stats):
    """Produces request bodies chunk by chunk into each server's per-shard queues."""
    step = 0
    while step < total_steps:
        steps = min(chunk_steps, total_steps - step)
        tsbs = [b"\x10" + varint(start_ms + (step + i) * STEP_MS) for i in range(steps)]
        per_step, native_samples = [], [[] for _ in gen.natives]
        for i in range(steps):
            per_step.append(gen.step(step + i))
            ts = start_ms + (step + i) * STEP_MS
            for j, h in enumerate(gen.natives):
                native_samples[j].append(native_histogram_bytes(h[1], h[2], ts))
        pack = gen.pack
        entries = [[] for _ in range(shards_n)]
        counts = [0] * shards_n
        for j, s in enumerate(gen.floats):
            body = s[0] + b"".join(b"\x12\x10\x09" + pack(per_step[i][j]) + tsbs[i]
                                   for i in range(steps))
            sh = j % shards_n
            entries[sh].append(b"\x0a" + varint(len(body)) + body)
            counts[sh] += steps
        for j, h in enumerate(gen.natives):
            body = h[0] + b"".join(ld(4, x) for x in native_samples[j])
            sh = (j * 7919) % shards_n
            entries[sh].append(b"\x0a" + varint(len(body)) + body)
            counts[sh] += steps
        stats["samples"] += steps * len(gen.floats)
        stats["histograms"] += steps * len(gen.natives)
        for sh in range(shards_n):
            per_entry = max(1, per_request // steps)
            es = entries[sh]
            for k in range(0, len(es), per_entry):
                raw = b"".join(es[k:k + per_entry])
                body = bytes(cramjam.snappy.compress_raw(raw))
                stats["raw_bytes"] += len(raw)
                stats["requests"] += 1
                for qs in out_queues:
                    qs[sh].put(body)
        step += steps
    for qs in out_queues:
        for q in qs:
            q.put(None)


def sender(url, q, errors, retries):
    s = requests.Session()
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}
    while True:
        body = q.get()
        if body is None:
            return
        for attempt in range(60):
            try:
                r = s.post(url, data=body, headers=headers, timeout=120)
            except requests.RequestException as e:
                r, err = None, str(e)
            if r is not None and r.status_code < 300:
                break
            if r is not None and r.status_code not in (429, 500, 502, 503):
                errors.append(f"{r.status_code}: {r.text[:300]}")
                break
            retries[0] += 1
            time.sleep(min(0.05 * 2 ** attempt, 2))
        else:
            errors.append(f"gave up: {err if r is None else r.status_code}")


def load(strata, prom, series, hours, end_ms, threads, per_request):
    """Writes the data set into `strata` and/or `prom` (either may be None)."""
    instances = max(1, round(series / PER_INSTANCE))
    gen = Generator(instances)
    total_steps = int(hours * 3600 * 1000 // STEP_MS)
    start_ms = end_ms - (total_steps - 1) * STEP_MS
    targets = [(srv.api + "/api/v1/write", name)
               for srv, name in ((strata, "strata"), (prom, "prometheus")) if srv is not None]
    queues = [[queue.Queue(maxsize=8) for _ in range(threads)] for _ in targets]
    errors = {name: [] for _, name in targets}
    retries = {name: [0] for _, name in targets}
    workers = []
    for (url, name), qs in zip(targets, queues):
        for q in qs:
            t = threading.Thread(target=sender, args=(url, q, errors[name], retries[name]), daemon=True)
            t.start()
            workers.append(t)
    stats = dict(samples=0, histograms=0, raw_bytes=0, requests=0)
    t0 = time.perf_counter()
    generate(gen, total_steps, start_ms, threads, 20, per_request, queues, stats)
    for t in workers:
        t.join()
    stats.update(wall=time.perf_counter() - t0, instances=instances,
                 float_series=len(gen.floats), native_series=len(gen.natives),
                 start_ms=start_ms, end_ms=end_ms, steps=total_steps,
                 errors={k: v[:3] for k, v in errors.items()},
                 error_counts={k: len(v) for k, v in errors.items()},
                 retries={k: v[0] for k, v in retries.items()})
    return stats


# ---------------------------------------------------------------- queries

def query_set(start_ms, end_ms):
    """(name, expr, kind, params) over the loaded range; times in seconds."""
    # Evaluation times sit 7 s off the 15 s sample grid, so no range or lookback window
    # edge meets a sample, where Prometheus 2 (closed on the left) and 3 (open) differ.
    start, end = start_ms / 1000 + 7, end_ms / 1000 - 8
    dash = dict(start=start, end=end, step=60)           # a dashboard over the whole range
    long = dict(start=start, end=end, step=900)          # long range, coarse step
    inst = dict(time=end)
    return [
        ("rate_sum_by_service", 'sum by (service) (rate(http_requests_total[5m]))', "range", dash),
        ("rate_5xx_regex", 'sum by (service, status) (rate(http_requests_total{status=~"5.."}[5m]))',
         "range", dash),
        ("rate_one_instance", 'rate(http_requests_total{service="checkout",instance="checkout-0003:8080"}[5m])',
         "range", dash),
        ("error_ratio", 'sum by (service) (rate(http_requests_total{status=~"5.."}[5m])) / '
         'sum by (service) (rate(http_requests_total[5m]))', "range", dash),
        ("route_regex_not_get", 'sum by (route) (rate(http_requests_total{route=~"/api/(cart|checkout).*",method!="GET"}[5m]))',
         "range", dash),
        ("topk_instances", 'topk(5, sum by (instance) (rate(http_requests_total[5m])))', "range", dash),
        ("hq_classic", 'histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket[5m])))',
         "range", dash),
        ("hq_native", 'histogram_quantile(0.99, sum by (service) (rate(http_request_duration_native_seconds[5m])))',
         "range", dash),
        ("gauge_max_by", 'max by (service) (process_resident_memory_bytes)', "range", dash),
        ("long_increase_1h", 'sum by (service) (increase(http_requests_total[1h]))', "range", long),
        ("instant_rate_sum", 'sum by (service) (rate(http_requests_total[5m]))', "instant", inst),
        ("instant_hq_classic", 'histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{service="cart"}[5m])))',
         "instant", inst),
        ("instant_avg_over_time", 'avg_over_time(process_resident_memory_bytes{service="cart"}[1h])',
         "instant", inst),
    ]


class Client:
    """One kept-alive HTTP/1.1 connection to a server, timing a request from sending it to
    having read the whole answer. `requests` spent 0.6-0.8 ms of Python per call on this
    machine (building and merging the request, urllib3's pool), as much as Strata's
    server-side time for the smallest queries; `http.client` spends about 0.1 ms, so the
    ratios compare the servers rather than the client. Both servers are timed the same way,
    with the same headers as before.
    """

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.conn = u.hostname, u.port, None

    def post(self, path, data, timeout):
        body = urllib.parse.urlencode(data).encode()
        # As Grafana's Go client (and `requests`) ask: Prometheus then gzips its answers
        # (Strata answers uncompressed), and the client's inflating is timed.
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept-Encoding": "gzip"}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            try:
                t0 = time.perf_counter()
                self.conn.request("POST", path, body, headers)
                r = self.conn.getresponse()
                payload = r.read()
                if r.getheader("Content-Encoding") == "gzip":
                    payload = gzip.decompress(payload)
                return time.perf_counter() - t0, r.status, payload
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None  # the server closed a kept-alive connection: once more
                if attempt:
                    raise


def run_query(client, expr, kind, params):
    path = "/api/v1/query_range" if kind == "range" else "/api/v1/query"
    dt, status, payload = client.post(path, dict(params, query=expr), timeout=300)
    try:
        body = json.loads(payload)
    except ValueError:
        body = {"status": "error", "error": payload[:300].decode(errors="replace")}
    if status != 200 or body.get("status") != "success":
        return dt, None, f"HTTP {status}: {body.get('error', '')[:300]}"
    return dt, body["data"], None


def as_float(s):
    return float(s)  # Prometheus' JSON spells NaN, +Inf, -Inf the way float() reads them


def compare(a, b, rel=1e-6):
    """None when Strata's answer `a` equals Prometheus' `b`, else a short description."""
    if a["resultType"] != b["resultType"]:
        return f"result type {a['resultType']} vs {b['resultType']}"

    def series(d):
        out = {}
        for s in d["result"]:
            key = tuple(sorted(s["metric"].items()))
            pts = s.get("values") or ([s["value"]] if "value" in s else [])
            out[key] = [(float(t), as_float(v)) for t, v in pts]
        return out

    sa, sb = series(a), series(b)
    if set(sa) != set(sb):
        only_a, only_b = set(sa) - set(sb), set(sb) - set(sa)
        return (f"series differ: {len(sa)} vs {len(sb)}; only in Strata e.g. {sorted(only_a)[:1]}, "
                f"only in Prometheus e.g. {sorted(only_b)[:1]}")
    bad = 0
    first = None
    for k in sa:
        pa, pb = sa[k], sb[k]
        if [t for t, _ in pa] != [t for t, _ in pb]:
            bad += 1
            first = first or f"{dict(k)}: {len(pa)} vs {len(pb)} points"
            continue
        for (t, x), (_, y) in zip(pa, pb):
            if math.isnan(x) and math.isnan(y):
                continue
            if x == y or abs(x - y) <= rel * max(abs(x), abs(y)):
                continue
            bad += 1
            first = first or f"{dict(k)} at {t}: {x!r} vs {y!r}"
            break
    return f"{bad} of {len(sa)} series differ, first: {first}" if bad else None


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def bench_queries(strata, prom, queries, reps):
    servers = [("strata", strata.api), ("prometheus", prom.url)]
    clients = {name: Client(base) for name, base in servers}
    times = {(q[0], n): [] for q in queries for n, _ in servers}
    answers, errors = {}, {}
    for rep in range(reps + 1):  # rep 0 warms up (connections, page cache) and is not counted
        order = servers if rep % 2 == 0 else servers[::-1]
        for name, expr, kind, params in queries:
            for srv, _ in order:
                dt, data, err = run_query(clients[srv], expr, kind, params)
                if err:
                    errors.setdefault((name, srv), err)
                elif rep == 0:
                    answers[(name, srv)] = data
                if rep > 0:
                    times[(name, srv)].append(dt)
        print(f"  repetition {rep}/{reps} done", file=sys.stderr)
    results = []
    for name, expr, kind, params in queries:
        a, b = answers.get((name, "strata")), answers.get((name, "prometheus"))
        if a is None or b is None:
            check = "error: " + (errors.get((name, "strata")) or errors.get((name, "prometheus")) or "?")
        else:
            diff = compare(a, b)
            n = len(b["result"]) if isinstance(b["result"], list) else 1
            check = f"same ({n} series)" if diff is None else "MISMATCH: " + diff
        ts, tp = times[(name, "strata")], times[(name, "prometheus")]
        results.append(dict(name=name, expr=expr, kind=kind, params=params,
                            strata_p50=percentile(ts, 0.5), strata_p99=percentile(ts, 0.99),
                            prom_p50=percentile(tp, 0.5), prom_p99=percentile(tp, 0.99), check=check))
    return results


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100_000, help="active series (approximate)")
    ap.add_argument("--hours", type=float, default=3.0, help="hours of 15 s samples")
    ap.add_argument("--quick", action="store_true", help="10k series, 1 h, 5 repetitions")
    ap.add_argument("--reps", type=int, default=10, help="timed repetitions per query")
    ap.add_argument("--threads", type=int, default=4, help="sender threads per server")
    ap.add_argument("--samples-per-request", type=int, default=10_000)
    ap.add_argument("--strata-bin", default=str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
                                                / "release" / "strata"))
    ap.add_argument("--workdir", help="keep data dirs here and reuse them when the parameters match")
    ap.add_argument("--keep", action="store_true", help="do not delete a temporary workdir")
    ap.add_argument("--only", help="comma-separated query names to run")
    ap.add_argument("--no-sample-cache", action="store_true",
                    help="run Strata with query.prometheus.sample_cache_bytes = 0, so every read "
                         "decodes its files, as the first read of a range after start does")
    ap.add_argument("--load-only", choices=["strata", "prometheus"],
                    help="only load this server's data (the other one is loaded by a later run)")
    args = ap.parse_args()
    if args.quick:
        args.series, args.hours, args.reps = 10_000, 1.0, 5
    if not Path(args.strata_bin).exists() and args.load_only != "prometheus":
        sys.exit(f"{args.strata_bin} not found: cargo build --release --bin strata")

    tmp = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="promql-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    params_file = tmp / "params.json"
    wanted = dict(series=args.series, hours=args.hours)
    prom_args = ["--enable-feature=native-histograms", "--storage.tsdb.retention.time=30d"]
    prior = json.loads(params_file.read_text()) if params_file.exists() else None
    print(f"nproc={os.cpu_count()}, command: {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"workdir {tmp}")
    try:
        if prior and {k: prior[k] for k in wanted} == wanted and set(prior.get("loaded", [])) == {"strata", "prometheus"}:
            load_stats = prior["load"]
            print(f"reusing data loaded earlier: {load_stats['float_series'] + load_stats['native_series']:,} series")
        else:
            # Load what is missing; with --load-only prometheus (while Strata still builds) the
            # same data (same seed and end time) goes to Strata in a later run.
            todo = ["strata", "prometheus"] if not args.load_only else [args.load_only]
            if prior and {k: prior[k] for k in wanted} == wanted:
                end_ms, done = prior["load"]["end_ms"], prior["loaded"]
                todo = [t for t in todo if t not in done]
            else:
                end_ms, done = (int(time.time()) // 15) * 15_000 - 60_000, []
                for d in ("strata", "prometheus", "params.json"):
                    p = tmp / d
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            strata = Strata(args.strata_bin, tmp, "strata") if "strata" in todo else None
            prom = Prometheus(tmp, extra_args=prom_args) if "prometheus" in todo else None
            print(f"loading ~{args.series:,} series x {args.hours} h into {todo} ...", file=sys.stderr)
            load_stats = load(strata, prom, args.series, args.hours, end_ms, args.threads,
                              args.samples_per_request)
            if prior and "load" in prior:
                merged = dict(prior["load"])
                for k in ("errors", "error_counts", "retries"):
                    merged[k] = {**prior["load"].get(k, {}), **load_stats[k]}
                merged[f"wall_{'_'.join(todo)}"] = load_stats["wall"]
                load_stats = merged
            else:
                load_stats[f"wall_{'_'.join(todo)}"] = load_stats["wall"]
            if strata:
                load_stats["strata_accepted"] = strata.metric("strata_ingest_samples_total")
                stop_with_rusage(strata.proc, timeout=1800)
            if prom:
                load_stats["prom_head_series"] = prom.metric("prometheus_tsdb_head_series")
                load_stats["prom_rejected"] = {
                    m: prom.metric(m) for m in ("prometheus_tsdb_out_of_order_samples_total",
                                                "prometheus_tsdb_out_of_bound_samples_total",
                                                "prometheus_tsdb_too_old_samples_total")}
                stop_with_rusage(prom.proc, timeout=600)
            params_file.write_text(json.dumps(dict(wanted, load=load_stats, loaded=done + todo)))
            if set(done + todo) != {"strata", "prometheus"}:
                print("loaded", done + todo, "; run again without --load-only to load the rest")
                return
        print("load:", json.dumps(load_stats))

        strata_config = "[query.prometheus]\nsample_cache_bytes = 0\n" if args.no_sample_cache else ""
        strata = Strata(args.strata_bin, tmp, "strata", config=strata_config, ready_timeout=600)
        prom = Prometheus(tmp, extra_args=prom_args, ready_timeout=600)
        time.sleep(2)
        base_rss = {"strata": vm_rss_bytes(strata.proc.pid), "prometheus": vm_rss_bytes(prom.proc.pid)}
        reset = reset_hwm(strata.proc.pid) and reset_hwm(prom.proc.pid)
        queries = query_set(load_stats["start_ms"], load_stats["end_ms"])
        if args.only:
            keep = set(args.only.split(","))
            queries = [q for q in queries if q[0] in keep]
        results = bench_queries(strata, prom, queries, args.reps)
        hwm = {"strata": vm_hwm_bytes(strata.proc.pid), "prometheus": vm_hwm_bytes(prom.proc.pid)}
        stop_with_rusage(strata.proc)
        stop_with_rusage(prom.proc)
        report(args, load_stats, results, base_rss, hwm, reset)
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def report(args, load_stats, results, base_rss, hwm, reset):
    ls = load_stats
    n_series = ls["float_series"] + ls["native_series"]
    print()
    print(f"### {n_series:,} series ({ls['instances']} instances x {PER_INSTANCE}; "
          f"{ls['native_series']:,} native histograms), {ls['steps']} steps of 15 s "
          f"({ls['steps'] * 15 / 3600:.1f} h), {ls['samples'] + ls['histograms']:,} samples")
    print(f"load: {ls['wall']:.0f} s, failed requests {ls['error_counts']}, retries {ls['retries']}; "
          f"Prometheus rejected {ls.get('prom_rejected')}")
    print(f"timed repetitions per query: {args.reps} (after 1 warm-up), servers alternating")
    print()
    print("| query | kind | Strata p50 | Prometheus p50 | p50 ratio (P/S) | Strata p99 | Prometheus p99 "
          "| p99 ratio (P/S) | same answer |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        ms = lambda x: f"{x * 1000:.1f} ms"  # noqa: E731
        print(f"| `{r['name']}` | {r['kind']} | {ms(r['strata_p50'])} | {ms(r['prom_p50'])} | "
              f"{r['prom_p50'] / r['strata_p50']:.2f}x | {ms(r['strata_p99'])} | {ms(r['prom_p99'])} | "
              f"{r['prom_p99'] / r['strata_p99']:.2f}x | {r['check']} |")
    print()
    print("| peak RSS during queries (VmHWM" + (", reset after start-up)" if reset else ", since start)")
          + " | Strata | Prometheus | Strata / Prometheus |")
    print("|---|---:|---:|---:|")
    print(f"| after start-up (VmRSS) | {fmt_bytes(base_rss['strata'])} | {fmt_bytes(base_rss['prometheus'])} | "
          f"{base_rss['strata'] / max(base_rss['prometheus'], 1):.2f} |")
    print(f"| peak | {fmt_bytes(hwm['strata'])} | {fmt_bytes(hwm['prometheus'])} | "
          f"{hwm['strata'] / max(hwm['prometheus'], 1):.2f} |")
    print()
    for r in results:
        print(f"- `{r['name']}`: `{r['expr']}` ({r['kind']}, {r['params']})")


if __name__ == "__main__":
    main()
