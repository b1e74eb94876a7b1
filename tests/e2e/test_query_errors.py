"""A query that cannot read storage answers a plain 5xx whose text names no server path,
on every query API (PromQL, Loki, Tempo, Jaeger, SQL); the full path goes to the server's
log instead, and the server stays up. The data files are removed under a running server,
so each read fails opening a file whose error text holds its absolute path."""

import time

import requests

TRACE = "0102030405060708090a0b0c0d0e0f10"


def ingest(s, now):
    svc = [{"key": "service.name", "value": {"stringValue": "svc"}}]
    logs = {"resourceLogs": [{"resource": {"attributes": svc}, "scopeLogs": [{"logRecords": [
        {"timeUnixNano": str(now - i * 10**9), "body": {"stringValue": f"line {i}"}} for i in range(50)]}]}]}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "probe_gauge", "gauge": {"dataPoints": [
        {"asDouble": float(i), "timeUnixNano": str(now - i * 15 * 10**9)} for i in range(50)]}}]}]}]}
    traces = {"resourceSpans": [{"resource": {"attributes": svc}, "scopeSpans": [{"spans": [
        {"traceId": TRACE, "spanId": f"{i + 1:016x}", "name": f"op{i}", "startTimeUnixNano": str(now - 10**9),
         "endTimeUnixNano": str(now)} for i in range(50)]}]}]}
    for path, body in [("/v1/logs", logs), ("/v1/metrics", metrics), ("/v1/traces", traces)]:
        r = requests.post(s.otlp_http + path, json=body, timeout=30)
        assert r.status_code == 200, r.text


def test_storage_failures_answer_without_server_paths(make_strata):
    s = make_strata().start()
    now = time.time_ns()
    ingest(s, now)
    s.stop()  # the shutdown flush writes the data files
    files = sorted(s.data_dir.rglob("*.parquet"))
    assert {f.parts[-3] for f in files} == {"logs", "metrics", "traces"}, files
    s.start()
    for f in files:
        f.unlink()
    sec = now // 10**9
    window = {"start": now - 3600 * 10**9, "end": now + 10**9}
    queries = [
        ("GET", "/api/v1/query", {"query": "probe_gauge", "time": sec}),
        ("GET", "/api/v1/query_range", {"query": "probe_gauge", "start": sec - 3600, "end": sec, "step": 60}),
        ("GET", "/api/v1/series", {"match[]": "probe_gauge", "start": sec - 3600, "end": sec}),
        ("GET", "/loki/api/v1/query_range", {"query": '{service_name="svc"}', **window}),
        ("GET", "/loki/api/v1/query_range", {"query": '{service_name="svc"} |= "line 5"', **window}),
        ("GET", f"/api/traces/{TRACE}", {}),
        ("GET", f"/api/v2/traces/{TRACE}", {}),
        ("GET", "/api/search", {"tags": "service.name=svc"}),
        ("GET", f"/jaeger/api/traces/{TRACE}", {}),
        ("POST", "/api/v1/sql", {"query": "SELECT count(*) FROM logs"}),
        ("POST", "/api/v1/sql", {"query": "SELECT count(*) FROM spans"}),
        ("POST", "/api/v1/sql", {"query": "SELECT count(*) FROM metrics"}),
    ]
    data_dir = str(s.data_dir.resolve())
    for method, path, params in queries:
        if method == "GET":
            r = requests.get(s.api + path, params=params, timeout=30)
        else:
            r = requests.post(s.api + path, json=params, timeout=30)
        assert r.status_code == 500, (path, params, r.status_code, r.text)
        assert "internal error while running the query" in r.text, (path, r.text)
        assert data_dir not in r.text and ".parquet" not in r.text, (path, r.text)
    assert s.alive()
    # The server's log has the detail: for each signal, a file that could not be read,
    # named relative to the data directory. (A query stops at the first file it cannot
    # read, and within 12.5 minutes after the hour the metric samples span two of the
    # metrics' hour windows, so two files: only the earlier one is then named.)
    log = s.log_path.read_text(errors="replace")
    for signal in ("logs", "metrics", "traces"):
        named = [f for f in files if f.parts[-3] == signal and str(f.relative_to(s.data_dir)) in log]
        assert named, (signal, files)
    # PromQL's and Loki's errors name files by that relative path only.
    failed = [line for line in log.splitlines()
              if "prometheus api request failed" in line or "reading logs failed" in line]
    assert failed and all(data_dir not in line and "data file files/default/" in line for line in failed), failed
