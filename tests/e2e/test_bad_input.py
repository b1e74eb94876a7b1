"""Bad input gets a precise 4xx (or gRPC code) and loses nothing already acknowledged."""

import gzip
import json

import grpc
import requests

from conftest import SHARED

EXAMPLES = SHARED / "otlp-examples"


def seed(strata):
    r = requests.post(strata.otlp_http + "/v1/logs", data=(EXAMPLES / "logs.json").read_bytes(),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200


def intact(strata):
    assert strata.alive()
    assert strata.sql("SELECT body FROM logs") == [{"body": "Example log record"}]


def post(strata, body, ctype="application/x-protobuf", **headers):
    return requests.post(strata.otlp_http + "/v1/logs", data=body, headers={"Content-Type": ctype, **headers}, timeout=30)


def test_each_bad_request_is_refused_precisely(make_strata):
    s = make_strata(config="[ingest.limits]\nmax_request_bytes = 1048576\nmax_labels_per_series = 8\n").start()
    seed(s)
    cases = [
        ("garbage protobuf", post(s, b"\xff\xff\xff\xff\x0f"), 400),
        ("truncated protobuf", post(s, b"\x0a\x80\x01\x0a"), 400),
        ("JSON not matching OTLP", post(s, b'{"resourceLogs": 5}', "application/json"), 400),
        ("not JSON", post(s, b"{oops", "application/json"), 400),
        ("wrong content type", post(s, b"hello", "text/plain"), 415),
        ("unknown content encoding", post(s, b"x", **{"Content-Encoding": "br"}), 415),
        ("body over the limit", post(s, b"\x00" * (2 * 1024 * 1024)), 413),
        ("gzip bomb", post(s, gzip.compress(b"\x00" * (16 * 1024 * 1024)), **{"Content-Encoding": "gzip"}), 413),
        ("bad gzip", post(s, b"not gzip at all", **{"Content-Encoding": "gzip"}), 400),
        ("invalid tenant", post(s, b"", **{"X-Scope-OrgID": "../etc"}), 400),
        ("invalid UTF-8", post(s, b"\x0a\x0b\x12\x09\x12\x07\x1a\x05\x2a\x03\x0a\x01\xff"), 400),
    ]
    for name, resp, status in cases:
        assert resp.status_code == status, (name, resp.status_code, resp.text)
        if resp.headers.get("content-type") == "application/json":
            assert resp.json()["message"], name
    intact(s)


def test_over_limit_items_are_rejected_one_by_one(make_strata):
    s = make_strata(config="[ingest.limits]\nmax_labels_per_series = 4\n").start()
    seed(s)
    def gauge(name, attrs):
        return {"name": name, "gauge": {"dataPoints": [{"asDouble": 1.0, "timeUnixNano": "1700000000000000000",
                "attributes": [{"key": k, "value": {"stringValue": "v"}} for k in attrs]}]}}
    req = {"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
           "scopeMetrics": [{"metrics": [gauge("small", ["a"]), gauge("wide", ["a", "b", "c", "d", "e"])]}]}]}
    r = requests.post(s.otlp_http + "/v1/metrics", json=req, timeout=10)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == 1 and "labels" in partial["errorMessage"]
    names = [x["metric_name"] for x in s.sql("SELECT metric_name FROM metrics")]
    assert names == ["small"]
    intact(s)


def test_grpc_garbage_is_invalid_argument(strata):
    seed(strata)
    channel = grpc.insecure_channel(strata.grpc_endpoint)
    call = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        call(b"\xff\xff\xff\xff\x0f", timeout=10)
        raise AssertionError("garbage was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    try:
        call(b"", timeout=10, metadata=[("x-scope-orgid", "bad/tenant")])
        raise AssertionError("bad tenant was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    intact(strata)


def test_bad_sql_is_400_with_datafusion_message(strata):
    r = requests.post(strata.api + "/api/v1/sql", json={"query": "SELECT nope FROM logs"}, timeout=10)
    assert r.status_code == 400 and "nope" in r.json()["error"]
    r = requests.post(strata.api + "/api/v1/sql", data="not json", timeout=10)
    assert r.status_code == 400
