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


def ld(num, payload):
    """A length-delimited field `num` holding `payload`."""
    return varint((num << 3) | 2) + varint(len(payload)) + payload


def fmt_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
