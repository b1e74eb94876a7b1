"""OTLP logs and metrics bodies of millions of (nearly) empty items cost the server no
memory to speak of. Such a body once went to prost (or serde) whole: an empty log record
is 2 bytes on the wire and 184 in memory, an empty data point 2 and 88, so 8 MB of them
built about a gigabyte of structs before any limit applied. Their decoded size is now
added up from the wire format first, and a body that would take more than 16 times its
size is refused whole with 413 / RESOURCE_EXHAUSTED, over OTLP/HTTP (protobuf and JSON)
and OTLP/gRPC alike; a Loki push the same way. The server stays up; data already stored
stays intact; real requests still land."""

import json

import grpc
import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from wire import double, field, fixed64, vfield

LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
NOW_NS = 1_700_000_000_000_000_000


def logs_request(records):
    """ExportLogsServiceRequest { resource_logs { scope_logs { log_records... } } }."""
    return field(1, field(2, b"".join(field(2, r) for r in records)))


def record(body, empty_attributes=0):
    return fixed64(1, NOW_NS) + field(5, field(1, body.encode())) + field(6, b"") * empty_attributes


def metrics_request(name, points):
    """ExportMetricsServiceRequest with one gauge of the given NumberDataPoints."""
    gauge = field(5, b"".join(field(1, p) for p in points))
    metric = field(1, name.encode()) + gauge
    return field(1, field(2, field(2, metric)))


def point(value):
    return fixed64(3, NOW_NS) + double(4, value)


def post(strata, path, body, ctype="application/x-protobuf"):
    return requests.post(strata.otlp_http + path, data=body, headers={"Content-Type": ctype}, timeout=120)


def grpc_call(strata, method, body, response):
    channel = grpc.insecure_channel(strata.grpc_endpoint,
                                    options=[("grpc.max_send_message_length", 128 * 1024 * 1024)])
    call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=response.FromString)
    try:
        return call(body, timeout=120)
    finally:
        channel.close()


def grpc_refusal(strata, method, body, response):
    try:
        grpc_call(strata, method, body, response)
    except grpc.RpcError as e:
        return e
    raise AssertionError("accepted")


def bodies(strata):
    return sorted(r["body"] for r in strata.sql("SELECT body FROM logs"))


def test_millions_of_empty_log_records_or_attributes_cost_no_memory(strata):
    assert post(strata, "/v1/logs", logs_request([record("before")])).status_code == 200
    base = strata.peak_rss_mib()
    # 4 million empty records: 8 MB on the wire, ~740 MB as prost structs.
    empty_records = logs_request([b""] * 4_000_000)
    r = post(strata, "/v1/logs", empty_records)
    assert r.status_code == 413, r.text
    assert "4000000 LogRecord messages of 184 bytes each" in r.text, r.text
    assert "16 times its size" in r.text, r.text
    e = grpc_refusal(strata, LOGS_EXPORT, empty_records, ExportLogsServiceResponse)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    assert "4000000 LogRecord messages" in e.details()
    # 4 million empty attributes on one record (over the attribute limit anyway, but prost
    # built them all before that was checked).
    many_attributes = logs_request([record("hostile", empty_attributes=4_000_000)])
    r = post(strata, "/v1/logs", many_attributes)
    assert r.status_code == 413 and "4000000 KeyValue messages" in r.text, r.text
    e = grpc_refusal(strata, LOGS_EXPORT, many_attributes, ExportLogsServiceResponse)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    # OTLP/JSON: 2.5 million empty objects (7.5 MB).
    empties = ",".join(["{}"] * 2_500_000)
    body = '{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + empties + "]}]}]}"
    r = post(strata, "/v1/logs", body.encode(), "application/json")
    assert r.status_code == 413, r.text
    assert "2500003 JSON objects of up to 184 bytes each" in r.json()["message"], r.text
    grown = strata.peak_rss_mib() - base
    assert grown < 150, f"peak RSS grew by {grown:.0f} MiB"
    assert strata.alive()
    # Real requests still land, on both transports; nothing refused was stored.
    assert post(strata, "/v1/logs", logs_request([record("after-http")])).status_code == 200
    resp = grpc_call(strata, LOGS_EXPORT, logs_request([record("after-grpc")]), ExportLogsServiceResponse)
    assert not resp.HasField("partial_success")
    assert bodies(strata) == ["after-grpc", "after-http", "before"]


def test_millions_of_empty_data_points_cost_no_memory(strata):
    assert post(strata, "/v1/metrics", metrics_request("before", [point(1.0)])).status_code == 200
    base = strata.peak_rss_mib()
    empty_points = metrics_request("hostile", [b""] * 4_000_000)
    r = post(strata, "/v1/metrics", empty_points)
    assert r.status_code == 413, r.text
    assert "4000000 NumberDataPoint messages of 88 bytes each" in r.text, r.text
    e = grpc_refusal(strata, METRICS_EXPORT, empty_points, ExportMetricsServiceResponse)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    assert "4000000 NumberDataPoint messages" in e.details()
    empties = ",".join(["{}"] * 2_500_000)
    body = ('{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"hostile","gauge":{"dataPoints":['
            + empties + "]}}]}]}]}")
    r = post(strata, "/v1/metrics", body.encode(), "application/json")
    assert r.status_code == 413 and "JSON objects" in r.text, r.text
    grown = strata.peak_rss_mib() - base
    assert grown < 150, f"peak RSS grew by {grown:.0f} MiB"
    assert strata.alive()
    # Malformed framing after the points is refused as malformed, over gRPC too.
    body = metrics_request("tail", [b""] * 1000) + b"\x0a\x7f"
    r = post(strata, "/v1/metrics", body)
    assert r.status_code == 400 and "ExportMetricsServiceRequest.resource_metrics: buffer underflow" in r.text, r.text
    e = grpc_refusal(strata, METRICS_EXPORT, body, ExportMetricsServiceResponse)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "buffer underflow" in e.details(), e
    # Real requests still land on both transports.
    assert post(strata, "/v1/metrics", metrics_request("after_http", [point(2.0)])).status_code == 200
    resp = grpc_call(strata, METRICS_EXPORT, metrics_request("after_grpc", [point(3.0)]),
                     ExportMetricsServiceResponse)
    assert not resp.HasField("partial_success")
    names = sorted(r["metric_name"] for r in strata.sql("SELECT metric_name FROM metrics"))
    assert names == ["after_grpc", "after_http", "before"], names


def test_loki_push_of_millions_of_empty_entries_costs_no_memory(strata):
    """A valid Loki push of 4 million empty entries (8 MB) built about a gigabyte of batch
    (RSS grew ~1 GiB); the push walk now bounds what it builds by the body's size and
    refuses the push with 413, counting every entry. Real pushes still land."""
    import cramjam

    def push(raw):
        data = bytes(cramjam.snappy.compress_raw(raw))
        return requests.post(strata.api + "/loki/api/v1/push", data=data,
                             headers={"Content-Type": "application/x-protobuf"}, timeout=120)

    def entry(line):
        return field(2, field(1, vfield(1, NOW_NS // 10**9)) + field(2, line.encode()))

    assert push(field(1, field(1, b'{app="ok"}') + entry("before"))).status_code == 204
    base = strata.peak_rss_mib()
    r = push(field(1, field(1, b'{app="ok"}') + field(2, b"") * 4_000_000))
    assert r.status_code == 413, r.text
    assert "it holds 4000000 entries" in r.text, r.text
    grown = strata.peak_rss_mib() - base
    assert grown < 150, f"peak RSS grew by {grown:.0f} MiB"
    assert strata.alive()
    assert push(field(1, field(1, b'{app="ok"}') + entry("after"))).status_code == 204
    start, end = NOW_NS - 3600 * 10**9, NOW_NS + 10**9
    r = requests.get(strata.api + "/loki/api/v1/query_range",
                     params={"query": '{app="ok"}', "start": start, "end": end}, timeout=30)
    assert r.status_code == 200, r.text
    lines = sorted(v[1] for s in r.json()["data"]["result"] for v in s["values"])
    assert lines == ["after", "before"], lines


def test_loki_json_push_costs_its_batch_not_a_parsed_document(strata):
    """A Loki JSON push was parsed into a serde_json::Value first (about 16 bytes per body
    byte for tiny entries) and had no memory bound beyond the 1 GiB text cap: 4.5 MB of
    tiny entries copying a 300-byte label took about 500 MiB and was accepted. The body is
    now walked one entry at a time, its rows counted against 16 times its size, so such a
    push is a 413 naming its entries, at a fraction of that; real pushes still land, and
    bad ones are still a 400 naming the stream and entry."""

    def push(body):
        return requests.post(strata.api + "/loki/api/v1/push", data=body,
                             headers={"Content-Type": "application/json"}, timeout=120)

    def doc(labels, values):
        return json.dumps({"streams": [{"stream": labels, "values": values}]}).encode()

    assert push(doc({"app": "ok"}, [[str(NOW_NS), "before"]])).status_code == 204
    base = strata.peak_rss_mib()
    entries = ",".join(['["1",""]'] * 500_000)
    hostile = '{"streams":[{"stream":{"app":"' + "x" * 300 + '"},"values":[' + entries + "]}]}"
    r = push(hostile.encode())
    assert r.status_code == 413, r.text
    assert "it holds 500000 entries" in r.text and "16 times its size" in r.text, r.text
    assert not r.text.startswith("malformed"), r.text
    grown = strata.peak_rss_mib() - base
    assert grown < 150, f"peak RSS grew by {grown:.0f} MiB"
    assert strata.alive()
    # A bad entry past good ones is still named; nothing of the push is stored.
    r = push(doc({"app": "ok"}, [[str(NOW_NS + 1), "not stored"], [str(NOW_NS + 2), 7]]))
    assert r.status_code == 400, r.text
    assert "stream 0 {app=\"ok\"}: entry 1: the log line must be a string" in r.text, r.text
    # Real pushes land, the values of a stream before its labels too.
    assert push(doc({"app": "ok"}, [[str(NOW_NS + 3), "after", {"user": "u1"}]])).status_code == 204
    values_first = ('{"streams":[{"values":[["%d","values first"]],"stream":{"app":"ok"}}]}'
                    % (NOW_NS + 4)).encode()
    assert push(values_first).status_code == 204
    start, end = NOW_NS - 3600 * 10**9, NOW_NS + 10**9
    r = requests.get(strata.api + "/loki/api/v1/query_range",
                     params={"query": '{app="ok"}', "start": start, "end": end}, timeout=30)
    assert r.status_code == 200, r.text
    lines = sorted(v[1] for s in r.json()["data"]["result"] for v in s["values"])
    assert lines == ["after", "before", "values first"], lines
