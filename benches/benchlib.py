"""Helpers shared by the end-to-end benchmarks in benches/*/run.py.

Process handling (free ports, readiness, /proc CPU and peak-RSS readings, SIGTERM with
rusage), the two servers under test (a Strata binary and Debian's Prometheus), and the
hand-rolled protobuf pieces used to build remote-write bodies without generated code.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- process helpers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vm_hwm_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def vm_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_hwm(pid):
    """Resets VmHWM to the current RSS (Linux >= 4.0, needs permission); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def dir_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


def stop_with_rusage(proc, timeout=180):
    """SIGTERM, wait, and return the child's total rusage (CPU incl. shutdown work)."""
    proc.send_signal(signal.SIGTERM)
    deadline = time.time() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return ru
        if time.time() > deadline:
            proc.kill()
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            print(f"warning: pid {proc.pid} did not stop in {timeout}s; killed", file=sys.stderr)
            return ru
        time.sleep(0.05)


def wait_ready(url, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready in {timeout}s")


def scrape_metric(url, name):
    """Sum of every sample of metric `name` on a /metrics page."""
    total = 0.0
    for line in requests.get(url, timeout=10).text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------- servers

class Strata:
    """A Strata process on free loopback ports. `data` may point at an existing data dir."""

    def __init__(self, binary, tmp, name, data=None, config="", ready_timeout=60):
        self.dir = Path(tmp) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = Path(data) if data else self.dir / "data"
        self.http_port, self.otlp_port, self.grpc_port = free_port(), free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.http_port}"
        self.otlp = f"http://127.0.0.1:{self.otlp_port}"
        cfg = self.dir / "strata.toml"
        # Defaults except logging; flushing happens on shutdown (or at flush_bytes).
        cfg.write_text('[log]\nlevel = "warn"\n' + config)
        self.log = open(self.dir / "strata.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "--config", str(cfg), "--data-dir", str(self.data),
             "--otlp-grpc-addr", f"127.0.0.1:{self.grpc_port}",
             "--otlp-http-addr", f"127.0.0.1:{self.otlp_port}",
             "--http-addr", f"127.0.0.1:{self.http_port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(self.api + "/-/ready", self.proc, "strata", ready_timeout)

    def metric(self, name):
        return scrape_metric(self.api + "/metrics", name)


class Prometheus:
    """Debian's `prometheus` with the remote-write receiver, its TSDB under `tmp` (or `tsdb`)."""

    def __init__(self, tmp, tsdb=None, extra_args=(), config="", ready_timeout=60):
        self.dir = Path(tmp) / "prometheus"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tsdb = Path(tsdb) if tsdb else self.dir / "tsdb"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = self.url
        cfg = self.dir / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n" + config)
        self.log = open(self.dir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.tsdb}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
             *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(self.url + "/-/ready", self.proc, "prometheus", ready_timeout)

    def metric(self, name):
        return scrape_metric(self.url + "/metrics", name)


# ---------------------------------------------------------------- protobuf by hand

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def zigzag(n):
    return (n << 1) ^ (n >> 63)


_VARINTS = []


def ld(num, payload):
    """A length-delimited field `num` holding `payload`."""
    if not _VARINTS:
        _VARINTS.extend(varint(i) for i in range(1 << 14))
    n = len(payload)
    return _VARINTS[(num << 3) | 2] + (_VARINTS[n] if n < 16384 else varint(n)) + payload


def fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024


def fixed64(num, n):
    return varint((num << 3) | 1) + n.to_bytes(8, "little")


def vint(num, n):
    """A varint field `num` (non-negative, or int64 two's complement)."""
    return varint(num << 3) + varint(n & 0xFFFFFFFFFFFFFFFF)


# ---------------------------------------------------------------- OTLP spans by hand
#
# SDK-shaped spans (benches/traces and benches/ingest): HTTP server roots with client
# children, 10 attributes each, ~0.7 events per span, 10% errors, 10 services whose
# resources carry 9 attributes. Encoded straight to protobuf bytes from precomputed
# pieces: the opentelemetry message classes cost ~50 µs per span, too slow for 10M spans.

SERVICES = ["checkout", "cart", "payment", "shipping", "frontend", "auth", "search", "catalog",
            "recommendation", "email"]
ROUTES = ["/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}", "/healthz", "/api/search"]
CHILD_NAMES = ["SELECT orders", "redis GET", "HTTP POST", "render"]


def kv_str(k, v):
    return ld(1, k.encode()) + ld(2, ld(1, v.encode()))


def kv_int(k, v):
    return ld(1, k.encode()) + ld(2, vint(3, v))


def kv_bool(k, v):
    return ld(1, k.encode()) + ld(2, vint(2, int(v)))


def _attr(kv_bytes):
    return ld(9, kv_bytes)


_CONST_ATTRS = b"".join(_attr(a) for a in [
    kv_str("http.method", "GET"), kv_str("http.scheme", "https"),
    kv_str("net.host.name", "shop.example.com"),
    kv_str("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0")])
_ROUTE_ATTR = [_attr(kv_str("http.route", r)) for r in ROUTES]
_ROOT_NAME = [ld(5, f"GET {r}".encode()) for r in ROUTES]
_CHILD_NAME = [ld(5, n.encode()) for n in CHILD_NAMES]
_CODE_ATTR = {c: _attr(kv_int("http.status_code", c)) for c in (200, 500)}
_HIT_ATTR = [_attr(kv_bool("cache.hit", b)) for b in (False, True)]
_LEN_ATTR = [_attr(kv_int("http.request_content_length", n)) for n in range(5000)]
_KIND = {2: vint(6, 2), 3: vint(6, 3)}
_ERROR_STATUS = ld(15, ld(2, b"internal error") + vint(3, 2))
_RETRY_TAIL = ld(2, b"retry") + ld(3, kv_int("attempt", 1))
_LOOKUP_NAME = ld(2, b"cache.lookup")
_IP_KEY = ld(1, b"net.peer.ip")
_USER_KEY = ld(1, b"enduser.id")
_CACHE_KEY = ld(1, b"cache.key")
_TAG_TRACE, _TAG_SPAN, _TAG_PARENT = varint((1 << 3) | 2) + varint(16), varint((2 << 3) | 2) + varint(8), \
    varint((4 << 3) | 2) + varint(8)
_TAG_START, _TAG_END, _TAG_EV_TIME = varint((7 << 3) | 1), varint((8 << 3) | 1), varint((1 << 3) | 1)


def resource_bytes(rng, i):
    """A `Resource` of service i % 10 with 9 attributes."""
    svc = SERVICES[i % len(SERVICES)]
    attrs = [kv_str("service.name", svc), kv_str("service.namespace", "shop"),
             kv_str("service.version", "1.4.2"), kv_str("deployment.environment", "prod"),
             kv_str("host.name", f"ip-10-0-{i % 8}-{rng.randrange(256)}"),
             kv_str("k8s.namespace.name", "shop"), kv_str("k8s.pod.name", f"{svc}-7d9f8b-{i:05x}"),
             kv_str("telemetry.sdk.language", "python"), kv_str("telemetry.sdk.name", "opentelemetry")]
    return b"".join(ld(1, a) for a in attrs)


_SCOPE = ld(1, ld(1, b"opentelemetry.instrumentation.flask") + ld(2, b"0.45b0"))


_IP_PREFIX, _KEY_PREFIX = {}, {}
_USER_PREFIX = b""


def _init_prefixes():
    """Encoded field heads of the variable attributes by value length (value appended)."""
    global _USER_PREFIX
    for n in range(7, 16):
        _IP_PREFIX[n] = _attr(_IP_KEY + ld(2, ld(1, b"x" * n)))[:-n]
    for n in range(1, 8):
        _KEY_PREFIX[n] = ld(3, _CACHE_KEY + ld(2, ld(1, b"x" * n)))[:-n]
    _USER_PREFIX = _attr(_USER_KEY + ld(2, ld(1, b"x" * 7)))[:-7]


def span_bytes(rng, trace_id, span_id, parent, root, start, j):
    """One SDK-shaped `Span` message (without its field tag)."""
    dur = rng.randrange(50_000, 200_000_000)
    route = rng.randrange(len(ROUTES))
    code = 500 if rng.randrange(10) == 9 else 200
    s = rng.randrange(1 << 16)
    ip = f"10.0.{s >> 8}.{s & 255}".encode()
    user = f"u{rng.randrange(10**6):06d}".encode()
    if not _IP_PREFIX:
        _init_prefixes()
    parts = [_TAG_TRACE, trace_id, _TAG_SPAN, span_id]
    if parent:
        parts += [_TAG_PARENT, parent]
    parts += [_ROOT_NAME[route] if root else _CHILD_NAME[rng.randrange(4)], _KIND[2 if root else 3],
              _TAG_START, start.to_bytes(8, "little"), _TAG_END, (start + dur).to_bytes(8, "little"),
              _CONST_ATTRS, _ROUTE_ATTR[route], _CODE_ATTR[code],
              _IP_PREFIX[len(ip)] + ip, _LEN_ATTR[rng.randrange(5000)],
              _USER_PREFIX + user, _HIT_ATTR[rng.random() < 0.7]]
    if rng.random() < 0.5:
        key = f"k{rng.randrange(10**5)}".encode()
        ev = _TAG_EV_TIME + (start + dur // 3).to_bytes(8, "little") + _LOOKUP_NAME + \
            _KEY_PREFIX[len(key)] + key
        parts.append(ld(11, ev))
    if rng.random() < 0.2:
        parts.append(ld(11, _TAG_EV_TIME + (start + dur // 2).to_bytes(8, "little") + _RETRY_TAIL))
    if code == 500:
        parts.append(_ERROR_STATUS)
    return b"".join(parts)


def span_request(rng, base_ns, first_span, n_spans, spacing_ns, resource_base, per_trace=10,
                 on_trace=None):
    """An `ExportTraceServiceRequest` of `n_spans` spans in 4 resources, whole traces of
    `per_trace` spans; trace k of the run starts at base_ns + its first span's number *
    spacing_ns. `on_trace(trace_id_hex, spans)` is called for every trace."""
    out = []
    per_res = n_spans // 4
    n = 0
    for r in range(4):
        count = per_res if r < 3 else n_spans - 3 * per_res
        spans = []
        k = 0
        while k < count:
            trace_id, root = rng.randbytes(16), rng.randbytes(8)
            start = base_ns + (first_span + n) * spacing_ns
            m = min(per_trace, count - k)
            if on_trace:
                on_trace(trace_id.hex(), m)
            for j in range(m):
                sid = root if j == 0 else rng.randbytes(8)
                spans.append(ld(2, span_bytes(rng, trace_id, sid, None if j == 0 else root, j == 0,
                                              start + j * 1000, j)))
            n += m
            k += m
        scope_spans = ld(2, _SCOPE + b"".join(spans))
        out.append(ld(1, ld(1, resource_bytes(rng, resource_base + r)) + scope_spans))
    return b"".join(out), n
