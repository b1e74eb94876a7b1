"""Fixtures that run the real `strata` binary for end-to-end tests.

The binary is $CARGO_TARGET_DIR (default target/)/debug/strata unless STRATA_BIN names another. Each test gets its
own data directory and free loopback ports.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Strata:
    """A running Strata process with its ports and data directory."""

    def __init__(self, data_dir: Path, config: str | None = None):
        self.data_dir = data_dir
        self.grpc_port = free_port()
        self.otlp_http_port = free_port()
        self.http_port = free_port()
        self.config = config
        self.proc = None
        self.log_path = data_dir.parent / f"strata-{self.http_port}.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self):
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        binary = os.environ.get("STRATA_BIN", str(target / "debug" / "strata"))
        args = [
            binary,
            "--data-dir", str(self.data_dir),
            "--otlp-grpc-addr", self.grpc_endpoint,
            "--otlp-http-addr", f"127.0.0.1:{self.otlp_http_port}",
            "--http-addr", f"127.0.0.1:{self.http_port}",
        ]
        if self.config is not None:
            cfg = self.data_dir.parent / f"strata-{self.http_port}.toml"
            cfg.write_text(self.config)
            args += ["--config", str(cfg)]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strata exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                if requests.get(self.api + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("strata did not become ready in 30 s")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss_mib(self) -> float:
        """The server's peak resident memory so far (VmHWM), in MiB."""
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def sql(self, query: str, tenant: str | None = None):
        headers = {"X-Scope-OrgID": tenant} if tenant else {}
        r = requests.post(self.api + "/api/v1/sql", json={"query": query}, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        return [dict(zip(body["columns"], row)) for row in body["rows"]]


@pytest.fixture
def strata(tmp_path):
    s = Strata(tmp_path / "data").start()
    yield s
    s.stop()


@pytest.fixture
def make_strata(tmp_path):
    """Factory for tests that restart Strata or need a config file."""
    started = []

    def make(config: str | None = None, data_dir: Path | None = None):
        s = Strata(data_dir or tmp_path / "data", config)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
