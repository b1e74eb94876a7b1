#!/usr/bin/env python3
"""End-to-end ingest benchmark: Strata vs Prometheus on remote write, Strata alone on OTLP.

Run from the repo root with the e2e venv and a release build:

    cargo build --release --bin strata
    .venv/bin/python benches/ingest/run.py            # default, ~5 min on 2 cores
    .venv/bin/python benches/ingest/run.py --scale 4  # 4x the instances / logs / spans

What it does (see BENCHMARKS.md for results and caveats):

* Remote write 1.0: series shaped like prometheus-node-exporter output (scraped once from
  a local node exporter if one is installed, else the bundled node_exporter_sample.prom),
  replicated over N `instance` values, 1 h of 15 s samples. Payloads are built and
  snappy-compressed up front, like Prometheus's queue manager builds them: one sample per
  TimeSeries, ~2,000 samples per request, series sharded over sender threads, each shard
  sent in time order. The SAME bodies go to Strata and then to Prometheus
  (--web.enable-remote-write-receiver), both running on loopback ports.
* OTLP/HTTP protobuf logs and spans to two further fresh Strata instances.

Per server process it reports throughput, CPU-seconds per million items (utime+stime
deltas from /proc/<pid>/stat over the send window), peak RSS (VmHWM) and bytes on disk.
Strata's Parquet size is measured after its final flush on SIGTERM (the CPU of that
flush is reported separately, from wait4 rusage); its WAL is measured before shutdown.
Prometheus's TSDB is measured as-is after the load (no head compaction is forced; with
1 h of data everything is in the WAL and the mmapped head chunks, no blocks).
"""

import argparse
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import cramjam
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

from benchlib import (  # noqa: E402
    Prometheus, Strata, cpu_seconds, dir_bytes, fmt_bytes, free_port, ld, stop_with_rusage,
    varint, vm_hwm_bytes,
)


# ---------------------------------------------------------------- sending

def send_all(url, shards, headers, stats):
    """One thread per shard; each posts its bodies in order, retrying 429/5xx."""
    errors = []

    def worker(bodies):
        s = requests.Session()
        for body in bodies:
            for attempt in range(50):
                try:
                    r = s.post(url, data=body, headers=headers, timeout=60)
                except requests.RequestException as e:
                    r = None
                    err = str(e)
                if r is not None and r.status_code < 300:
                    break
                if r is not None and r.status_code not in (429, 500, 502, 503):
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    break
                stats["retries"] = stats.get("retries", 0) + 1
                time.sleep(min(0.05 * 2 ** attempt, 2))
            else:
                errors.append(f"gave up: {err if r is None else r.status_code}")

    threads = [threading.Thread(target=worker, args=(b,)) for b in shards]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["errors"] = errors
    return time.perf_counter() - t0


def measure(proc, url, shards, headers):
    stats = {}
    c0 = cpu_seconds(proc.pid)
    wall = send_all(url, shards, headers, stats)
    c1 = cpu_seconds(proc.pid)
    stats.update(wall=wall, cpu=c1 - c0, cpu_total_after=c1, hwm=vm_hwm_bytes(proc.pid))
    if stats["errors"]:
        print(f"  {len(stats['errors'])} failed requests, first: {stats['errors'][0]}", file=sys.stderr)
    return stats


# ---------------------------------------------------------------- remote write payloads

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def node_exporter_text():
    exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exe:
        port = free_port()
        p = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                    return text, f"live scrape of {exe}"
                except requests.RequestException:
                    time.sleep(0.1)
        finally:
            p.terminate()
            p.wait(timeout=10)
    return (HERE / "node_exporter_sample.prom").read_text(), "bundled node_exporter_sample.prom"


def parse_exposition(text):
    types, out = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(None, 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), dict(LABEL.findall(m.group(3) or "")), float(m.group(4))
        base = re.sub(r"_(sum|count|bucket)$", "", name)
        typ = types.get(name) or types.get(base, "untyped")
        counter = typ == "counter" or (typ in ("summary", "histogram") and name != base)
        if value != value or value in (float("inf"), float("-inf")):
            value = 0.0
        out.append((name, labels, value, counter))
    return out


def build_remote_write(instances, steps, shards_n, per_request, seed=1):
    text, source = node_exporter_text()
    template = parse_exposition(text)
    rng = random.Random(seed)
    series = []  # (prefix-without-length labels bytes, value, kind, step)
    for i in range(instances):
        inst = f"node-{i:04d}.dc{i % 4}.example.internal:9100"
        factor = rng.uniform(0.5, 2.0)
        for name, labels, value, counter in template:
            lab = dict(labels, __name__=name, instance=inst, job="node")
            lb = b"".join(ld(1, ld(1, k.encode()) + ld(2, lab[k].encode())) for k in sorted(lab))
            prefix = b"\x0a" + varint(len(lb) + 18) + lb
            if counter:
                v = round(value * factor) if value == int(value) else value * factor
                inc = max(abs(v) * rng.uniform(1e-6, 1e-4), 1.0 if value == int(value) else 0.01)
                if value == int(value):
                    inc = float(max(1, round(inc)))
                series.append([prefix, float(v), 1, inc])
            elif rng.random() < 0.3:   # volatile gauge
                series.append([prefix, value * factor, 2, abs(value * factor) * 0.01 + 0.01])
            else:                      # constant-ish gauge (sizes, info, flags...)
                series.append([prefix, value, 0, 0.0])
    # Shard like Prometheus's queue manager (by series hash), keep time order per shard.
    shards = [[] for _ in range(shards_n)]
    for s in series:
        shards[zlib.crc32(s[0]) % shards_n].append(s)
    pack = struct.Struct("<d").pack
    end_ms = (int(time.time()) // 15) * 15_000 - 60_000
    start_ms = end_ms - (steps - 1) * 15_000
    bodies = [[] for _ in range(shards_n)]
    raw_bytes = 0
    for si, shard in enumerate(shards):
        buf, n = [], 0
        for step in range(steps):
            tsb = b"\x10" + varint(start_ms + step * 15_000)
            assert len(tsb) == 7
            for s in shard:
                kind = s[2]
                if kind == 1:
                    s[1] += s[3] * rng.uniform(0.5, 1.5) if s[3] < 1 else float(round(s[3] * rng.uniform(0.5, 1.5)))
                elif kind == 2:
                    s[1] = round(s[1] + rng.uniform(-s[3], s[3]), 2)
                buf.append(s[0] + b"\x12\x10\x09" + pack(s[1]) + tsb)
                n += 1
                if n == per_request:
                    body = b"".join(buf)
                    raw_bytes += len(body)
                    bodies[si].append(bytes(cramjam.snappy.compress_raw(body)))
                    buf, n = [], 0
        if buf:
            body = b"".join(buf)
            raw_bytes += len(body)
            bodies[si].append(bytes(cramjam.snappy.compress_raw(body)))
    info = dict(source=source, series=len(series), per_instance=len(template), samples=len(series) * steps,
                requests=sum(map(len, bodies)), raw_bytes=raw_bytes,
                snappy_bytes=sum(len(b) for sh in bodies for b in sh))
    return bodies, info


# ---------------------------------------------------------------- OTLP payloads

def kv(k, v):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    if isinstance(v, bool):
        return KeyValue(key=k, value=AnyValue(bool_value=v))
    if isinstance(v, int):
        return KeyValue(key=k, value=AnyValue(int_value=v))
    if isinstance(v, float):
        return KeyValue(key=k, value=AnyValue(double_value=v))
    return KeyValue(key=k, value=AnyValue(string_value=v))


SERVICES = ["checkout", "cart", "payment", "shipping", "frontend", "auth", "search", "catalog",
            "recommendation", "email"]
ROUTES = ["/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}", "/healthz", "/api/search"]


def resource(rng, i):
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    svc = SERVICES[i % len(SERVICES)]
    return Resource(attributes=[
        kv("service.name", svc), kv("service.namespace", "shop"), kv("service.version", "1.4.2"),
        kv("deployment.environment", "prod"), kv("host.name", f"ip-10-0-{i % 8}-{rng.randrange(256)}"),
        kv("k8s.namespace.name", "shop"), kv("k8s.pod.name", f"{svc}-7d9f8b-{i:05x}"),
        kv("telemetry.sdk.language", "python"), kv("telemetry.sdk.name", "opentelemetry")])


def build_logs(total, per_request, shards_n, seed=2):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
    rng = random.Random(seed)
    now = time.time_ns() - 3_600_000_000_000
    sev = [(9, "INFO")] * 8 + [(13, "WARN"), (17, "ERROR")]
    bodies, n, body_bytes = [], 0, 0
    r = 0
    while n < total:
        req = ExportLogsServiceRequest()
        per_res = per_request // 4
        for _ in range(4):
            rl = req.resource_logs.add()
            rl.resource.CopyFrom(resource(rng, r))
            r += 1
            sl = rl.scope_logs.add()
            sl.scope.name = "app.logger"
            for _ in range(per_res):
                num, txt = sev[rng.randrange(len(sev))]
                route = rng.choice(ROUTES)
                msg = (f"{txt.lower()}: handled request method=GET route={route} user_id=u{rng.randrange(10**6):06d} "
                       f"order_id={rng.randrange(16**12):012x} status={rng.choice([200, 200, 200, 404, 500])} "
                       f"duration_ms={rng.uniform(0.5, 900):.2f} cache={'hit' if rng.random() < 0.7 else 'miss'} "
                       f"region=eu-west-1 msg=\"request completed\"")
                msg = msg[:200].ljust(200, ".")
                body_bytes += len(msg)
                t = now + n * 1_000_000
                lr = sl.log_records.add(time_unix_nano=t, observed_time_unix_nano=t + 150_000,
                                        severity_number=num, severity_text=txt, body=AnyValue(string_value=msg))
                lr.attributes.extend([kv("http.method", "GET"), kv("http.route", route),
                                      kv("http.status_code", rng.choice([200, 200, 404, 500])),
                                      kv("code.function", "handle_request"), kv("thread.id", rng.randrange(64))])
                if rng.random() < 0.5:
                    lr.trace_id = rng.randbytes(16)
                    lr.span_id = rng.randbytes(8)
                n += 1
        bodies.append(req.SerializeToString())
    shards = [bodies[i::shards_n] for i in range(shards_n)]
    return shards, dict(items=n, requests=len(bodies), bytes=sum(map(len, bodies)), body_bytes=body_bytes)


def build_spans(total, per_request, shards_n, seed=3):
    """SDK-shaped spans (benchlib.span_request, shared with benches/traces), 2 ms apart."""
    import benchlib
    rng = random.Random(seed)
    now = time.time_ns() - 3_600_000_000_000
    bodies, n = [], 0
    while n < total:
        body, k = benchlib.span_request(rng, now, n, min(per_request, total - n), 2_000_000, len(bodies) * 4)
        bodies.append(body)
        n += k
    shards = [bodies[i::shards_n] for i in range(shards_n)]
    return shards, dict(items=n, requests=len(bodies), bytes=sum(map(len, bodies)))


# ---------------------------------------------------------------- main

def strata_persist(st, stats):
    """WAL before shutdown; SIGTERM (final flush); Parquet files after."""
    stats["wal_before"] = dir_bytes(st.data / "wal")
    stats["files_before"] = dir_bytes(st.data / "files")
    ru = stop_with_rusage(st.proc)
    stats["cpu_incl_flush"] = ru.ru_utime + ru.ru_stime
    stats["flush_cpu"] = stats["cpu_incl_flush"] - stats["cpu_total_after"]
    stats["maxrss_incl_flush"] = ru.ru_maxrss * 1024
    stats["files"] = dir_bytes(st.data / "files")
    stats["wal_after"] = dir_bytes(st.data / "wal")
    stats["data_dir"] = dir_bytes(st.data)
    stats["exit"] = st.proc.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply instances, log lines and spans")
    ap.add_argument("--instances", type=int, default=None, help="node-exporter instances (default 100*scale)")
    ap.add_argument("--hours", type=float, default=1.0, help="hours of 15 s samples (keep <= 1 for Prometheus's head window)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--samples-per-request", type=int, default=2000)
    ap.add_argument("--strata-bin", default=str(ROOT / "target" / "release" / "strata"))
    ap.add_argument("--skip", choices=["rw", "otlp"], action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if not Path(args.strata_bin).exists():
        sys.exit(f"{args.strata_bin} missing: cargo build --release --bin strata")
    instances = args.instances or max(1, int(100 * args.scale))
    steps = int(args.hours * 240)
    n_logs = int(400_000 * args.scale)
    n_spans = int(200_000 * args.scale)
    tmp = tempfile.mkdtemp(prefix="strata-ingest-bench-")
    procs = []
    rows = []
    try:
        if "rw" not in args.skip:
            t = time.perf_counter()
            rw, info = build_remote_write(instances, steps, args.threads, args.samples_per_request)
            print(f"remote write: {info['series']} series ({info['per_instance']}/instance, {info['source']}), "
                  f"{info['samples']:,} samples, {info['requests']} requests, "
                  f"{info['raw_bytes']/2**20:.0f} MiB raw / {info['snappy_bytes']/2**20:.0f} MiB snappy, "
                  f"built in {time.perf_counter()-t:.0f}s", flush=True)
            headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                       "X-Prometheus-Remote-Write-Version": "0.1.0"}
            st = Strata(args.strata_bin, tmp, "strata-rw")
            procs.append(st.proc)
            prom = Prometheus(tmp)
            procs.append(prom.proc)
            time.sleep(1)
            s = measure(st.proc, st.api + "/api/v1/write", rw, headers)
            s["accepted"] = st.metric("strata_ingest_items_accepted_total")
            print(f"  strata: {info['samples']/s['wall']:,.0f} samples/s, cpu {s['cpu']:.1f}s", flush=True)
            p = measure(prom.proc, prom.url + "/api/v1/write", rw, headers)
            p["accepted"] = prom.metric("prometheus_tsdb_head_samples_appended_total")
            print(f"  prometheus: {info['samples']/p['wall']:,.0f} samples/s, cpu {p['cpu']:.1f}s", flush=True)
            del rw
            strata_persist(st, s)
            time.sleep(2)  # let Prometheus's WAL writer settle
            p["tsdb_wal"] = dir_bytes(prom.tsdb / "wal")
            p["tsdb_chunks_head"] = dir_bytes(prom.tsdb / "chunks_head")
            p["tsdb_total"] = dir_bytes(prom.tsdb)
            ru = stop_with_rusage(prom.proc)
            p["tsdb_total_after_stop"] = dir_bytes(prom.tsdb)
            p["blocks"] = [d.name for d in prom.tsdb.iterdir() if d.is_dir() and d.name not in ("wal", "chunks_head")]
            n = info["samples"]
            rows.append(("rw", info, s, p))
            print(f"  strata accepted {s['accepted']:,.0f}, prometheus appended {p['accepted']:,.0f} of {n:,}", flush=True)
        if "otlp" not in args.skip:
            for kind in ("logs", "spans"):
                t = time.perf_counter()
                if kind == "logs":
                    shards, info = build_logs(n_logs, 1000, args.threads)
                else:
                    shards, info = build_spans(n_spans, 500, args.threads)
                print(f"otlp {kind}: {info['items']:,} items, {info['requests']} requests, "
                      f"{info['bytes']/2**20:.0f} MiB protobuf, built in {time.perf_counter()-t:.0f}s", flush=True)
                st = Strata(args.strata_bin, tmp, f"strata-{kind}")
                procs.append(st.proc)
                time.sleep(1)
                path = "/v1/logs" if kind == "logs" else "/v1/traces"
                s = measure(st.proc, st.otlp + path, shards, {"Content-Type": "application/x-protobuf"})
                s["accepted"] = st.metric("strata_ingest_items_accepted_total")
                del shards
                strata_persist(st, s)
                print(f"  {info['items']/s['wall']:,.0f} {kind}/s, cpu {s['cpu']:.1f}s, accepted {s['accepted']:,.0f}", flush=True)
                rows.append((kind, info, s, None))
    finally:
        for pr in procs:
            if pr.poll() is None and pr.returncode is None:
                pr.kill()
                pr.wait()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report(rows, args, instances, steps)


def report(rows, args, instances, steps):
    print()
    print(f"nproc={os.cpu_count()}, command: {' '.join([Path(sys.executable).name] + sys.argv)}")
    for kind, info, s, p in rows:
        if kind == "rw":
            n = info["samples"]
            print(f"\n### Remote write: {info['series']:,} series ({instances} instances x {info['per_instance']}), "
                  f"{steps} x 15 s steps, {n:,} samples, {info['requests']:,} requests of "
                  f"{args.samples_per_request} samples, {args.threads} sender threads\n")
            print("| | Strata | Prometheus 2.42 | Strata / Prometheus |")
            print("|---|---:|---:|---:|")
            sr, pr_ = n / s["wall"], n / p["wall"]
            print(f"| samples/s (wall, client on the same 2 cores) | {sr:,.0f} | {pr_:,.0f} | {sr/pr_:.2f} |")
            sc, pc = s["cpu"] / n * 1e6, p["cpu"] / n * 1e6
            print(f"| CPU-s per million samples (ingest window) | {sc:.2f} | {pc:.2f} | {sc/pc:.2f} |")
            scf = s["cpu_incl_flush"] and (s["cpu"] + s["flush_cpu"]) / n * 1e6
            print(f"| CPU-s per million samples incl. Strata's final flush | {scf:.2f} | {pc:.2f} | {scf/pc:.2f} |")
            print(f"| samples per CPU-second | {n/s['cpu']:,.0f} | {n/p['cpu']:,.0f} | {(n/s['cpu'])/(n/p['cpu']):.2f} |")
            print(f"| peak RSS (VmHWM after load) | {fmt_bytes(s['hwm'])} | {fmt_bytes(p['hwm'])} | {s['hwm']/p['hwm']:.2f} |")
            print(f"| peak RSS incl. Strata's final flush (ru_maxrss) | {fmt_bytes(s['maxrss_incl_flush'])} | | {s['maxrss_incl_flush']/p['hwm']:.2f} |")
            print(f"| bytes/sample on disk: Strata Parquet (files/) after flush vs Prometheus TSDB dir | "
                  f"{s['files']/n:.3f} | {p['tsdb_total']/n:.3f} | {s['files']/p['tsdb_total']:.2f} |")
            print(f"| bytes/sample: Strata WAL before flush vs Prometheus wal/ | {s['wal_before']/n:.3f} | "
                  f"{p['tsdb_wal']/n:.3f} | {s['wal_before']/max(p['tsdb_wal'],1):.2f} |")
            print(f"| Prometheus chunks_head/ (mmapped head chunks), bytes/sample | | {p['tsdb_chunks_head']/n:.3f} | |")
            print(f"| samples accepted (server counter) | {s['accepted']:,.0f} | {p['accepted']:,.0f} | |")
            print(f"| failed requests / retries | {len(s['errors'])} / {s.get('retries', 0)} | "
                  f"{len(p['errors'])} / {p.get('retries', 0)} | |")
            print(f"\nStrata: files/ {fmt_bytes(s['files'])}, WAL before flush {fmt_bytes(s['wal_before'])}, "
                  f"WAL after flush {fmt_bytes(s['wal_after'])}, whole data dir after {fmt_bytes(s['data_dir'])}, "
                  f"Parquet already flushed during load {fmt_bytes(s['files_before'])}, final flush CPU {s['flush_cpu']:.1f}s, "
                  f"exit {s['exit']}. Prometheus TSDB: {fmt_bytes(p['tsdb_total'])} (wal {fmt_bytes(p['tsdb_wal'])}, "
                  f"chunks_head {fmt_bytes(p['tsdb_chunks_head'])}, blocks {p['blocks'] or 'none'}), "
                  f"{fmt_bytes(p['tsdb_total_after_stop'])} after SIGTERM. Payload: "
                  f"{info['raw_bytes']/n:.1f} B/sample raw protobuf, {info['snappy_bytes']/n:.1f} B/sample snappy.")
    otlp = [r for r in rows if r[0] != "rw"]
    if otlp:
        print("\n### OTLP/HTTP protobuf into Strata\n")
        print("| | items | payload MiB | items/s (wall) | payload MB/s (wall) | CPU-s per million | items per CPU-s | "
              "payload MB per CPU-s | peak RSS | Parquet B/item after flush | WAL B/item before flush |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind, info, s, _ in otlp:
            n, b = info["items"], info["bytes"]
            cpu = s["cpu"]
            print(f"| {kind} | {n:,} | {b/2**20:.0f} | {n/s['wall']:,.0f} | {b/1e6/s['wall']:.1f} | "
                  f"{cpu/n*1e6:.2f} (+{s['flush_cpu']/n*1e6:.2f} flush) | {n/cpu:,.0f} | {b/1e6/cpu:.1f} | "
                  f"{fmt_bytes(max(s['hwm'], s['maxrss_incl_flush']))} | {s['files']/n:.1f} | {s['wal_before']/n:.1f} |")
        for kind, info, s, _ in otlp:
            extra = f", log bodies {info['body_bytes']/info['items']:.0f} B each" if kind == "logs" else ""
            print(f"\n{kind}: {info['bytes']/info['items']:.0f} B/item protobuf{extra}; accepted {s['accepted']:,.0f}; "
                  f"failed requests {len(s['errors'])}, retries {s.get('retries', 0)}; exit {s['exit']}.")


if __name__ == "__main__":
    main()
