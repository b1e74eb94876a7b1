"""Prometheus remote write 1.0: a hand-built request, and a real Prometheus (Debian's
package) scraping and forwarding to Strata."""

import os
import shutil
import subprocess
import time

import cramjam
import pytest
import requests

from conftest import free_port
from wire import double, field, vfield


def write_request(series):
    """series: list of (labels dict, [(ts_ms, value)])"""
    body = b""
    for labels, samples in series:
        ts = b""
        for name in sorted(labels):
            ts += field(1, field(1, name.encode()) + field(2, labels[name].encode()))
        for t, v in samples:
            ts += field(2, double(1, v) + vfield(2, t))
        body += field(1, ts)
    return bytes(cramjam.snappy.compress_raw(body))


def test_hand_built_remote_write(strata):
    body = write_request([
        ({"__name__": "http_requests_total", "job": "api", "code": "200"}, [(1_700_000_000_000, 10.0), (1_700_000_015_000, 12.0)]),
        ({"__name__": "up", "job": "api"}, [(1_700_000_000_000, 1.0)]),
    ])
    r = requests.post(strata.api + "/api/v1/write", data=body, headers={
        "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf", "X-Prometheus-Remote-Write-Version": "0.1.0"}, timeout=10)
    assert r.status_code == 204, r.text
    rows = strata.sql("SELECT metric_name, labels, CAST(timestamp AS BIGINT) AS ts, value FROM metrics ORDER BY metric_name, ts")
    assert [(r["metric_name"], r["ts"], r["value"]) for r in rows] == [
        ("http_requests_total", 1_700_000_000_000, 10.0),
        ("http_requests_total", 1_700_000_015_000, 12.0),
        ("up", 1_700_000_000_000, 1.0),
    ]
    assert rows[0]["labels"] == {"__name__": "http_requests_total", "job": "api", "code": "200"}
    # Garbage and truncated snappy are 400s; the data above stays.
    for bad in (b"garbage", body[: len(body) // 2]):
        r = requests.post(strata.api + "/api/v1/write", data=bad, headers={"Content-Encoding": "snappy"}, timeout=10)
        assert r.status_code == 400, r.text
    assert len(strata.sql("SELECT value FROM metrics")) == 3


def test_remote_write_same_series_as_otlp(strata):
    """A series written by remote write and by OTLP with the same labels is one series."""
    body = write_request([({"__name__": "shared_gauge", "job": "svc"}, [(1_700_000_000_000, 1.0)])])
    assert requests.post(strata.api + "/api/v1/write", data=body, headers={"Content-Encoding": "snappy"}, timeout=10).status_code == 204
    otlp = {"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeMetrics": [{"metrics": [{"name": "shared_gauge", "gauge": {"dataPoints": [
                {"asDouble": 2.0, "timeUnixNano": "1700000015000000000"}]}}]}]}]}
    assert requests.post(strata.otlp_http + "/v1/metrics", json=otlp, timeout=10).status_code == 200
    ids = {r["series_id"] for r in strata.sql("SELECT series_id FROM metrics WHERE metric_name = 'shared_gauge'")}
    assert len(ids) == 1


def test_real_prometheus_forwards_to_strata(strata, tmp_path):
    prom = shutil.which("prometheus")
    if prom is None:
        if os.environ.get("STRATA_REQUIRE_PROMETHEUS") == "1":
            pytest.fail("prometheus is not installed (apt-get install prometheus)")
        pytest.skip("prometheus is not installed")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: strata
    static_configs:
      - targets: ["127.0.0.1:{strata.http_port}"]
remote_write:
  - url: {strata.api}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
""")
    proc = subprocess.Popen([prom, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        rows = []
        while time.time() < deadline:
            rows = strata.sql("SELECT labels FROM metrics WHERE metric_name = 'strata_wal_records_written_total'")
            if rows:
                break
            time.sleep(0.5)
        assert rows, "no sample from Prometheus arrived within 60 s"
        assert rows[0]["labels"]["job"] == "strata"
        assert rows[0]["labels"]["instance"] == f"127.0.0.1:{strata.http_port}"
        up = strata.sql("SELECT value FROM metrics WHERE metric_name = 'up'")
        assert up and up[0]["value"] == 1.0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_anchored_and_smoothed_range_selectors(strata):
    """Prometheus's experimental extended range selectors through the HTTP API, on by
    default: a counter growing by 15 every 15 s, queried 5 s after a sample."""
    t0 = 1_700_000_000_000
    body = write_request([
        ({"__name__": "jobs_done_total", "job": "w"}, [(t0 + i * 15_000, 15.0 * i) for i in range(10)]),
    ])
    assert requests.post(strata.api + "/api/v1/write", data=body, headers={"Content-Encoding": "snappy"}, timeout=10).status_code == 204
    at = str((t0 + 5 * 15_000 + 5_000) / 1000)  # 80 s after t0; sample 5 (75) is the last before

    def query(q):
        r = requests.get(strata.api + "/api/v1/query", params={"query": q, "time": at}, timeout=10)
        return r.status_code, r.json()

    def values(v):
        return [float(s["value"][1]) for s in v["data"]["result"]]

    # The 20 s range (60 s, 80 s] holds one sample: plain increase has nothing to go by.
    assert values(query("increase(jobs_done_total[20s])")[1]) == []
    # Anchored: from the sample at the range's start (60) to the last one (75).
    assert values(query("increase(jobs_done_total[20s] anchored)")[1]) == [15.0]
    # Smoothed: 60 at the start, 80 interpolated at the end from the samples around it.
    assert values(query("increase(jobs_done_total[20s] smoothed)")[1]) == [20.0]
    assert values(query("rate(jobs_done_total[20s] smoothed)")[1]) == [1.0]
    assert values(query("jobs_done_total smoothed")[1]) == [80.0]
    assert values(query("jobs_done_total")[1]) == [75.0]

    # Misuse: Prometheus's messages; the server stays up.
    status, v = query("max_over_time(jobs_done_total[1m] smoothed)")
    assert status == 422, v
    assert v["error"] == "smoothed modifier can only be used with: delta, increase, rate - not with max_over_time"
    status, v = query("rate(jobs_done_total[1m]) anchored")
    assert status == 400, v
    assert v["error"] == 'invalid parameter "query": 1:1: parse error: anchored modifier not implemented'
    r = requests.get(strata.api + "/api/v1/format_query", params={"query": "rate(x[5m]  Anchored offset 1m)"}, timeout=10)
    assert r.json()["data"] == "rate(x[5m] anchored offset 1m)"
    assert strata.alive()
