#!/usr/bin/env python3
"""End-to-end logs benchmark: Loki push ingest, disk size vs zstd -3 of the raw lines, and
LogQL latency over the Loki API, including how little a rare-token search reads.

Run from the repo root with the e2e venv and release builds of Strata and the generator:

    cargo build --release -p strata -p strata-ingest --bin strata --example loki_bench_lines
    /work/main/.venv/bin/python benches/logs/run.py --gb 10 --gen-dir /work/tmp/logs10

What it does (results and caveats in BENCHMARKS.md, "Logs"):

* Generates realistic lines with `ingest/examples/loki_bench_lines.rs` (Rust; the former
  Python generator managed ~3 MB/s): half structured JSON (`{"ts":..,"level":..,"service":..,
  "msg":..,"status":..,"path":..,"user":..,"duration_ms":..,"trace_id":..}`), half plain text
  access/app logs; 8 services, 4 severities (info-heavy), 32-hex trace ids in a third of the
  lines, and one unique rare id (`rare-<16 hex>`) every 200,000 lines. Lines are spread over
  about one hour. The raw lines stream straight through `zstd -3 -T1` (only its output size
  is kept: no raw copy on disk); the push bodies go to a file in `--gen-dir` (about a third
  of the raw size), which a later run with the same `--gen-dir` and `--gb` reuses.
* Pushes them as snappy-compressed `logproto.PushRequest` protobuf (what Promtail and Alloy
  send) on 2 sender threads, streams labelled `{service_name, level}`, ~1 MB of lines per
  request, read from the bodies file as they are sent.
* Reports ingest MB of raw line bytes per CPU-second of the server (utime+stime over the
  send window, then including the final flush on SIGTERM), the server's peak RSS, bytes on
  disk (Parquet files plus token-index sidecars; the WAL is gone after the flush) against
  the raw bytes and against `zstd -3` of the raw lines (the zstd CLI, one thread).
* Restarts Strata on the flushed files and times three queries over the whole range (best
  of `--reps`): a rare-token search, `sum by (service_name) (count_over_time({...}[1h]))`
  at a 1 h step over the whole range, and `{...} |= "error" | json | status >= 500` (limit
  100); for the rare-token search it prints the share of file bytes read
  (`stats.strata.fileBytesRead / fileBytesTotal`). Peak RSS of the query phase is printed.
  `requery.py` re-times the queries on the files a `--keep` run left.
"""

import argparse
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from benchlib import cpu_seconds, dir_bytes, free_port, reset_hwm, stop_with_rusage, vm_hwm_bytes, wait_ready  # noqa: E402

HOUR_NS = 3600 * 10**9
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def generate(gb, gen_dir, generator, seed=7):
    """Runs the Rust generator: push bodies into gen_dir/bodies.bin, raw lines through
    `zstd -3 -T1`. Returns the summary (lines, raw_bytes, requests, start_ns, needles,
    zstd3_bytes), reusing gen_dir's when it was made for the same size and seed."""
    summary_path = gen_dir / "summary.json"
    if summary_path.exists():
        s = json.loads(summary_path.read_text())
        if s.get("gb") == gb and s.get("seed") == seed and "zstd3_bytes" in s:
            print(f"reusing the data generated in {gen_dir}")
            return s
    start_ns = (time.time_ns() - 2 * HOUR_NS) // 10**9 * 10**9
    gen = subprocess.Popen(
        [generator, "--gb", str(gb), "--seed", str(seed), "--start-ns", str(start_ns),
         "--bodies", str(gen_dir / "bodies.bin"), "--summary", str(gen_dir / "gen.json")],
        stdout=subprocess.PIPE)
    zstd = subprocess.Popen(["zstd", "-q", "-3", "-T1", "-c"], stdin=gen.stdout, stdout=subprocess.PIPE)
    gen.stdout.close()
    zstd_bytes = sum(len(c) for c in iter(lambda: zstd.stdout.read(1 << 20), b""))
    if zstd.wait() != 0 or gen.wait() != 0:
        raise RuntimeError("generator or zstd failed")
    s = json.loads((gen_dir / "gen.json").read_text())
    s.update(gb=gb, seed=seed, zstd3_bytes=zstd_bytes)
    summary_path.write_text(json.dumps(s))
    return s


def bodies(path):
    """The push bodies of a bodies file (4-byte little-endian length, then the body)."""
    with open(path, "rb") as f:
        while True:
            head = f.read(4)
            if len(head) < 4:
                return
            n = int.from_bytes(head, "little")
            yield f.read(n)


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


def send(api, body_iter, threads=2):
    url = api + "/loki/api/v1/push"
    headers = {"Content-Type": "application/x-protobuf"}
    errors = []
    q = queue.Queue(maxsize=8)

    def worker():
        s = requests.Session()
        while (b := q.get()) is not None:
            if errors:
                continue
            for _ in range(100):
                r = s.post(url, data=b, headers=headers, timeout=120)
                if r.status_code == 204:
                    break
                if r.status_code in (429, 503):
                    time.sleep(1)
                    continue
                errors.append(r.text)
                break
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for b in body_iter:
        q.put(b)
    for _ in ts:
        q.put(None)
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


def timed_query(api, q, start, end, reps, **extra):
    best, data = None, None
    for _ in range(reps):
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
    ap.add_argument("--binary", default=str(TARGET / "release" / "strata"))
    ap.add_argument("--generator", default=str(TARGET / "release" / "examples" / "loki_bench_lines"))
    ap.add_argument("--gen-dir", metavar="DIR", help="keep the generated push bodies here and reuse them (default: the work dir)")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR (must not exist) and keep the data there")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per query (the best is reported)")
    args = ap.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True)
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="strata-logs-bench-")) as tmp:
        t0 = time.time()
        gen_dir = Path(args.gen_dir) if args.gen_dir else Path(tmp)
        gen_dir.mkdir(parents=True, exist_ok=True)
        g = generate(args.gb, gen_dir, args.generator)
        raw, lines, needles, start_ns, zstd_bytes = g["raw_bytes"], g["lines"], g["needles"], g["start_ns"], g["zstd3_bytes"]
        print(f"generated {lines:,} lines, {raw / 1e6:.1f} MB raw, {g['requests']} requests "
              f"({(gen_dir / 'bodies.bin').stat().st_size / 1e6:.0f} MB of bodies) in {time.time() - t0:.0f}s; "
              f"{len(needles)} rare ids; zstd -3: {zstd_bytes / 1e6:.1f} MB")

        st = Strata(args.binary, tmp).start()
        cpu0, w0 = cpu_seconds(st.proc.pid), time.time()
        send(st.api, bodies(gen_dir / "bodies.bin"))
        cpu1, w1 = cpu_seconds(st.proc.pid), time.time()
        ingest_hwm = vm_hwm_bytes(st.proc.pid)
        ru = stop_with_rusage(st.proc, timeout=3600)
        cpu_total = ru.ru_utime + ru.ru_stime - cpu0
        flush_hwm = ru.ru_maxrss * 1024
        disk = dir_bytes(st.data / "files")
        tokens = sum(p.stat().st_size for p in (st.data / "files").rglob("*.tokens"))
        ingest_cpu = cpu1 - cpu0
        print(f"ingest: {raw / 1e6 / (w1 - w0):.1f} MB/s wall, {raw / 1e6 / ingest_cpu:.1f} MB per CPU-second during sends "
              f"({ingest_cpu:.1f} CPU-s), {raw / 1e6 / cpu_total:.1f} incl. final flush ({cpu_total:.1f} CPU-s); "
              f"peak RSS {ingest_hwm / 2**20:.0f} MiB during sends, {flush_hwm / 2**20:.0f} MiB incl. the flush")
        print(f"disk: {disk / 1e6:.1f} MB (token index {tokens / 1e6:.1f} MB) = {disk / raw:.3f} of raw, "
              f"{disk / zstd_bytes:.3f} of zstd -3 ({zstd_bytes / 1e6:.1f} MB)")
        print_column_sizes(st.data / "files", disk)

        st.start()
        reset_hwm(st.proc.pid)
        start, end = start_ns - 60 * 10**9, start_ns + 2 * HOUR_NS
        sel = '{service_name=~".+"}'
        needle = needles[len(needles) // 2] if needles else "rare-0000000000000000"
        dt, data = timed_query(st.api, f'{sel} |= "{needle}"', start, end, args.reps, limit="100")
        hits = sum(len(s["values"]) for s in data["result"])
        s = data["stats"]["strata"]
        frac = s["fileBytesRead"] / max(1, s["fileBytesTotal"])
        print(f"rare-token search: {dt * 1000:.0f} ms, {hits} line(s); read {s['rowGroupsRead']} of {s['rowGroups']} row groups "
              f"({s['rowGroupsSkippedByTokenIndex']} skipped by the token index), {frac:.4f} of file bytes")
        dt2, data = timed_query(st.api, f"sum by (service_name) (count_over_time({sel}[1h]))", start, end, args.reps,
                                step="3600")
        total = sum(float(v[1]) for r in data["result"] for v in r["values"])
        print(f"sum by (service_name) (count_over_time(...[1h])) over the range: {dt2 * 1000:.0f} ms "
              f"({total:.0f} lines counted of {lines})")
        dt3, data = timed_query(st.api, f'{sel} |= "error" | json | status >= 500', start, end, args.reps, limit="100")
        print(f'|= "error" | json | status >= 500 (limit 100): {dt3 * 1000:.0f} ms, {sum(len(s["values"]) for s in data["result"])} lines')
        query_hwm = vm_hwm_bytes(st.proc.pid)
        print(f"query phase peak RSS: {query_hwm / 2**20:.0f} MiB")
        stop_with_rusage(st.proc)
        print(json.dumps({
            "gb": args.gb, "raw_bytes": raw, "lines": lines, "ingest_mb_per_cpu_s": raw / 1e6 / ingest_cpu,
            "ingest_mb_per_cpu_s_with_flush": raw / 1e6 / cpu_total, "disk_bytes": disk, "token_index_bytes": tokens,
            "zstd3_bytes": zstd_bytes, "rare_ms": dt * 1000, "rare_fraction_read": frac, "count_ms": dt2 * 1000,
            "json_filter_ms": dt3 * 1000, "ingest_peak_rss": ingest_hwm, "flush_peak_rss": flush_hwm,
            "query_peak_rss": query_hwm,
        }))


if __name__ == "__main__":
    main()
