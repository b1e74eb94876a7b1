"""The OTLP/JSON examples of opentelemetry-proto, posted to /v1/* and read back."""

import json

import requests

from conftest import SHARED

EXAMPLES = SHARED / "otlp-examples"


def post(strata, path, body, **headers):
    return requests.post(
        strata.otlp_http + path, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10
    )


def test_examples_land_and_read_back(strata):
    for name, path in [("trace", "/v1/traces"), ("metrics", "/v1/metrics"), ("logs", "/v1/logs"), ("events", "/v1/logs")]:
        r = post(strata, path, (EXAMPLES / f"{name}.json").read_bytes())
        assert r.status_code == 200, (name, r.text)
        assert r.headers["content-type"].startswith("application/json")

    trace = json.loads((EXAMPLES / "trace.json").read_text())
    span = trace["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    rows = strata.sql("SELECT trace_id, span_id, parent_span_id, name, kind, CAST(start_time AS BIGINT) s, CAST(end_time AS BIGINT) e, attributes, service_name FROM spans")
    assert len(rows) == 1
    r = rows[0]
    assert r["trace_id"] == span["traceId"].lower() and r["span_id"] == span["spanId"].lower()
    assert r["parent_span_id"] == span["parentSpanId"].lower()
    assert r["name"] == span["name"] and r["kind"] == span["kind"]
    assert r["s"] == int(span["startTimeUnixNano"]) and r["e"] == int(span["endTimeUnixNano"])
    assert json.loads(r["attributes"]) == {"my.span.attr": "some value"}
    assert r["service_name"] == "my.service"

    logs = strata.sql("SELECT body, severity_text, event_name, trace_id, attributes FROM logs ORDER BY event_name")
    assert len(logs) == 2
    example_log = [l for l in logs if l["event_name"] == ""][0]
    assert example_log["body"] == "Example log record"
    attrs = json.loads(example_log["attributes"])
    assert attrs["int.attribute"] == 10 and attrs["boolean.attribute"] is True
    assert attrs["array.attribute"] == ["many", "values"] and attrs["map.attribute"] == {"some.map.key": "some value"}
    event = [l for l in logs if l["event_name"] != ""][0]
    assert event["event_name"] == json.loads((EXAMPLES / "events.json").read_text())["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["eventName"]

    names = {r["metric_name"] for r in strata.sql("SELECT DISTINCT metric_name FROM metrics")}
    assert {"my_counter_total", "my_gauge_ratio", "my_histogram_bucket", "my_histogram_sum", "my_histogram_count", "my_exponential_histogram"} <= names


def test_protobuf_response_for_protobuf_request(strata):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    req = ExportLogsServiceRequest()
    record = req.resource_logs.add().scope_logs.add().log_records.add()
    record.time_unix_nano = 1_700_000_000_000_000_000
    record.body.CopyFrom(AnyValue(string_value="protobuf line"))
    record.trace_id = bytes(range(16))
    r = requests.post(
        strata.otlp_http + "/v1/logs",
        data=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    resp = ExportLogsServiceResponse()
    resp.ParseFromString(r.content)
    assert not resp.HasField("partial_success")
    rows = strata.sql("SELECT body, trace_id, CAST(timestamp AS BIGINT) AS ts FROM logs")
    assert rows == [{"body": "protobuf line", "trace_id": bytes(range(16)).hex(), "ts": 1_700_000_000_000_000_000}]
