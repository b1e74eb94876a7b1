#!/usr/bin/env python3
"""End-to-end logs benchmark: Loki push ingest, disk size vs zstd -3 of the raw lines, and
LogQL latency over the Loki API, including how little a rare-token search reads.

Run from the repo root with the e2e venv and a release build:

    cargo build --release --bin strata
    /work/main/.venv/bin/python benches/logs/run.py --gb 0.5

What it does (results and caveats in BENCHMARKS.md, "Logs"):

* Generates realistic lines: half structured JSON (`{"ts":..,"level":..,"msg":..,"status":..,
  "path":..,"user":..,"trace_id":..,"duration_ms":..}`), half plain text access/app logs;
  8 services, 4 severities (info-heavy), 32-hex trace ids in a third of the lines, and one
  unique rare id (`rare-<16 hex>`) every 200,000 lines. Lines are spread over one hour.
* Pushes them as snappy-compressed `logproto.PushRequest` protobuf (what Promtail and Alloy
  send) on 2 sender threads, streams labelled `{service_name, level}`, ~1 MB per request.
  Bodies are built up front; the send window measures the server only.
* Reports ingest MB of raw line bytes per CPU-second of the server (utime+stime over the
  send window, then including the final flush on SIGTERM), bytes on disk (Parquet files plus
  token-index sidecars; the WAL is gone after the flush) against the raw bytes and against
  `zstd -3` of the raw lines (the zstd CLI, one thread).
* Restarts Strata on the flushed files and times three queries over the whole hour (best of
  3): a rare-token search, `sum by (service_name) (count_over_time({...}[1h]))`, and
  `{...} |= "error" | json | status >= 500` (limit 100); for the rare-token search it prints
  the share of file bytes read (`stats.strata.fileBytesRead / fileBytesTotal`).
"""

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cramjam
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from benchlib import cpu_seconds, dir_bytes, free_port, stop_with_rusage, wait_ready  # noqa: E402

SERVICES = ["checkout", "cart", "frontend", "payments", "search", "auth", "shipping", "email"]
LEVELS = ["info"] * 14 + ["debug"] * 3 + ["warn"] * 2 + ["error"]
PATHS = ["/api/cart", "/api/checkout", "/api/items/{}", "/login", "/search?q={}", "/static/app.js"]
HOUR_NS = 3600 * 10**9


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vi(num, v):
    return varint(num << 3) + varint(v)


def line_for(rng, i, service, level, ts_ns, rare):
    user = f"u{rng.randrange(5000)}"
    path = rng.choice(PATHS).format(rng.randrange(100000))
    status = 200 if level in ("info", "debug") else rng.choice([200, 404, 500, 502, 503])
    dur = rng.randrange(1, 900)
    trace = "%032x" % rng.getrandbits(128) if rng.random() < 0.33 else ""
    msg = rare or rng.choice(["request served", "cache miss", "db query done", "retrying upstream", "error talking to upstream"])
    if i % 2 == 0:
        d = {"ts": ts_ns // 10**6, "level": level, "service": service, "msg": msg, "status": status,
             "path": path, "user": user, "duration_ms": dur}
        if trace:
            d["trace_id"] = trace
        return json.dumps(d, separators=(",", ":"))
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ns // 10**9))
    return f"{t}.{(ts_ns // 10**6) % 1000:03d}Z {level.upper()} [{service}] {msg} method=GET path={path} status={status} user={user} took={dur}ms" + (f" trace_id={trace}" if trace else "")


def generate(gb, raw_file, seed=7):
    """Builds push bodies (about 1 MB of lines each) and writes the raw lines to raw_file
    (a binary file object: `zstd -3`'s input)."""
    rng = random.Random(seed)
    target = int(gb * 1e9)
    start_ns = (time.time_ns() - 2 * HOUR_NS) // 10**9 * 10**9
    bodies, needles = [], []
    raw = 0
    i = 0
    while raw < target:
        streams = {}
        chunk = 0
        while chunk < 1_000_000 and raw + chunk < target:
            service = SERVICES[rng.randrange(len(SERVICES))]
            level = rng.choice(LEVELS)
            ts = start_ns + int(i * (HOUR_NS / max(1, target / 230)))
            rare = None
            if i % 200_000 == 100_000:
                rare = "payment declined ref=rare-%016x" % rng.getrandbits(64)
                needles.append(rare.split("ref=")[1])
            line = line_for(rng, i, service, level, ts, rare)
            raw_file.write(line.encode() + b"\n")
            streams.setdefault((service, level), []).append((ts, line))
            chunk += len(line) + 1
            i += 1
        req = b""
        for (service, level), entries in streams.items():
            s = ld(1, f'{{service_name="{service}", level="{level}"}}'.encode())
            for ts, line in entries:
                s += ld(2, ld(1, vi(1, ts // 10**9) + vi(2, ts % 10**9)) + ld(2, line.encode()))
            req += ld(1, s)
        bodies.append(bytes(cramjam.snappy.compress_raw(req)))
        raw += chunk
    return bodies, raw, i, needles, start_ns


class Strata:
    def __init__(self, binary, tmp):
        self.dir = Path(tmp)
        self.data = self.dir / "data"
        self.http_port = free_port()
        self.api = f"http://127.0.0.1:{self.http_port}"
        self.cfg = self.dir / "strata.toml"
        self.cfg.write_text('[log]\nlevel = "warn"\n[query.loki]\nquery_timeout = "10m"\nmax_bytes_scanned = 0\n')
        self.binary = binary

    def start(self):
        self.log = open(self.dir / "strata.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--config", str(self.cfg), "--data-dir", str(self.data),
             "--otlp-grpc-addr", f"127.0.0.1:{free_port()}", "--otlp-http-addr", f"127.0.0.1:{free_port()}",
             "--http-addr", f"127.0.0.1:{self.http_port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(self.api + "/-/ready", self.proc, "strata")
        return self


def send(api, bodies, threads=2):
    url = api + "/loki/api/v1/push"
    headers = {"Content-Type": "application/x-protobuf"}
    errors = []

    def worker(part):
        s = requests.Session()
        for b in part:
            for _ in range(100):
                r = s.post(url, data=b, headers=headers, timeout=120)
                if r.status_code == 204:
                    break
                if r.status_code in (429, 503):
                    time.sleep(1)
                    continue
                errors.append(r.text)
                return
    ts = [threading.Thread(target=worker, args=(bodies[k::threads],)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(f"push failed: {errors[0]}")


def print_column_sizes(files, disk):
    """Compressed bytes per Parquet column (from the files' footers), if pyarrow is there."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        print("per-column sizes: pyarrow not installed")
        return
    sizes, footers, row_groups = {}, 0, 0
    for f in files.rglob("*.parquet"):
        md = pq.ParquetFile(f).metadata
        footers += md.serialized_size
        row_groups += md.num_row_groups
        for rg in range(md.num_row_groups):
            for c in range(md.num_columns):
                col = md.row_group(rg).column(c)
                name = col.path_in_schema.split(".")[0]
                sizes[name] = sizes.get(name, 0) + col.total_compressed_size
    parts = sorted(sizes.items(), key=lambda kv: -kv[1])
    print(f"per-column compressed bytes ({row_groups} row groups; footers {footers / 1e6:.2f} MB): " + ", ".join(
        f"{k} {v / 1e6:.2f} MB ({v / disk:.1%})" for k, v in parts if v > 0.001 * disk))


def timed_query(api, q, start, end, **extra):
    best, data = None, None
    for _ in range(3):
        t0 = time.perf_counter()
        r = requests.get(api + "/loki/api/v1/query_range",
                         params={"query": q, "start": str(start), "end": str(end), **extra}, timeout=900)
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"{q}: {r.status_code} {r.text}")
        best = dt if best is None else min(best, dt)
        data = r.json()["data"]
    return best, data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=0.2, help="raw log bytes to generate, in GB (goal figures are for 10)")
    ap.add_argument("--binary", default=str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "strata"))
    ap.add_argument("--keep", metavar="DIR", help="work in DIR (must not exist) and keep the data there")
    args = ap.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True)
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="strata-logs-bench-")) as tmp:
        t0 = time.time()
        # The raw lines go straight through `zstd -3` (one thread); only its output size is kept.
        zstd = subprocess.Popen(["zstd", "-q", "-3", "-T1", "-c"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        counted = []
        counter = threading.Thread(target=lambda: counted.append(sum(len(c) for c in iter(lambda: zstd.stdout.read(1 << 20), b""))))
        counter.start()
        bodies, raw, lines, needles, start_ns = generate(args.gb, zstd.stdin)
        zstd.stdin.close()
        counter.join()
        if zstd.wait() != 0:
            raise RuntimeError("zstd failed")
        zstd_bytes = counted[0]
        print(f"generated {lines:,} lines, {raw / 1e6:.1f} MB raw, {len(bodies)} requests in {time.time() - t0:.0f}s; {len(needles)} rare ids")

        st = Strata(args.binary, tmp).start()
        cpu0, w0 = cpu_seconds(st.proc.pid), time.time()
        send(st.api, bodies)
        cpu1, w1 = cpu_seconds(st.proc.pid), time.time()
        ru = stop_with_rusage(st.proc, timeout=1800)
        cpu_total = ru.ru_utime + ru.ru_stime - cpu0
        disk = dir_bytes(st.data / "files")
        tokens = sum(p.stat().st_size for p in (st.data / "files").rglob("*.tokens"))
        ingest_cpu = cpu1 - cpu0
        print(f"ingest: {raw / 1e6 / (w1 - w0):.1f} MB/s wall, {raw / 1e6 / ingest_cpu:.1f} MB per CPU-second during sends, "
              f"{raw / 1e6 / cpu_total:.1f} incl. final flush ({cpu_total:.1f} CPU-s)")
        print(f"disk: {disk / 1e6:.1f} MB (token index {tokens / 1e6:.1f} MB) = {disk / raw:.3f} of raw, "
              f"{disk / zstd_bytes:.3f} of zstd -3 ({zstd_bytes / 1e6:.1f} MB)")
        print_column_sizes(st.data / "files", disk)

        st.start()
        start, end = start_ns - 60 * 10**9, start_ns + 2 * HOUR_NS
        sel = '{service_name=~".+"}'
        needle = needles[len(needles) // 2] if needles else "rare-0000000000000000"
        dt, data = timed_query(st.api, f'{sel} |= "{needle}"', start, end, limit="100")
        hits = sum(len(s["values"]) for s in data["result"])
        s = data["stats"]["strata"]
        frac = s["fileBytesRead"] / max(1, s["fileBytesTotal"])
        print(f"rare-token search: {dt * 1000:.0f} ms, {hits} line(s); read {s['rowGroupsRead']} of {s['rowGroups']} row groups "
              f"({s['rowGroupsSkippedByTokenIndex']} skipped by the token index), {frac:.4f} of file bytes")
        dt2, data = timed_query(st.api, f"sum by (service_name) (count_over_time({sel}[1h]))", start, end, step="3600")
        total = sum(float(v[1]) for r in data["result"] for v in r["values"])
        print(f"sum by (service_name) (count_over_time(...[1h])) over the range: {dt2 * 1000:.0f} ms ({total:.0f} lines counted)")
        dt3, data = timed_query(st.api, f'{sel} |= "error" | json | status >= 500', start, end, limit="100")
        print(f'|= "error" | json | status >= 500 (limit 100): {dt3 * 1000:.0f} ms, {sum(len(s["values"]) for s in data["result"])} lines')
        stop_with_rusage(st.proc)
        print(json.dumps({
            "gb": args.gb, "raw_bytes": raw, "lines": lines, "ingest_mb_per_cpu_s": raw / 1e6 / ingest_cpu,
            "ingest_mb_per_cpu_s_with_flush": raw / 1e6 / cpu_total, "disk_bytes": disk, "token_index_bytes": tokens,
            "zstd3_bytes": zstd_bytes, "rare_ms": dt * 1000, "rare_fraction_read": frac, "count_ms": dt2 * 1000,
            "json_filter_ms": dt3 * 1000,
        }))


if __name__ == "__main__":
    main()
