"""Trace ingest limits end to end, over OTLP/HTTP (protobuf and JSON) and OTLP/gRPC: spans
over the per-span event and link limits are rejected one by one (partial_success) while
the rest is stored; a body of millions of empty links costs the server no memory to speak
of; spans that would expand past the text limit refuse the request with 413 /
RESOURCE_EXHAUSTED; a malformed value inside an already rejected span is a 400 /
INVALID_ARGUMENT on every path. The server stays up and earlier data stays intact."""

import grpc
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from wire import field, vfield

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def span(name, span_id, events=0, links=0, attrs=b""):
    s = field(1, bytes([7] * 16)) + field(2, span_id.to_bytes(8, "big")) + field(5, name.encode())
    s += attrs
    s += field(11, b"") * events  # empty events
    s += field(13, b"") * links  # empty links
    return s


def request(spans, resource=b""):
    scope = b"".join(field(2, s) for s in spans)
    rs = (field(1, resource) if resource else b"") + field(2, scope)
    return field(1, rs)


def post(strata, body, ctype="application/x-protobuf"):
    return requests.post(strata.otlp_http + "/v1/traces", data=body, headers={"Content-Type": ctype}, timeout=120)


def grpc_export(strata, body):
    channel = grpc.insecure_channel(strata.grpc_endpoint,
                                    options=[("grpc.max_send_message_length", 128 * 1024 * 1024)])
    call = channel.unary_unary(TRACE_EXPORT, request_serializer=lambda b: b,
                               response_deserializer=ExportTraceServiceResponse.FromString)
    try:
        return call(body, timeout=120)
    finally:
        channel.close()


def names(strata):
    return sorted(r["name"] for r in strata.sql("SELECT name FROM spans"))


def grpc_refusal(strata, body):
    """The error of an export that must be refused."""
    try:
        grpc_export(strata, body)
    except grpc.RpcError as e:
        return e
    raise AssertionError("accepted")


def test_spans_over_the_event_and_link_limits_are_rejected_alone_on_every_path(make_strata):
    s = make_strata("[ingest.limits]\nmax_events_per_span = 3\nmax_links_per_span = 2\n").start()
    body = request([span("ok-http", 1, events=3, links=2), span("many-events", 2, events=4),
                    span("many-links", 3, links=3)])
    r = post(s, body)
    assert r.status_code == 200, r.text
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 2
    assert "4 events, more than the limit of 3" in resp.partial_success.error_message
    assert "3 links, more than the limit of 2" in resp.partial_success.error_message

    # The same over gRPC, and as OTLP/JSON.
    body = request([span("ok-grpc", 4, links=2), span("many-links", 5, links=3)])
    resp = grpc_export(s, body)
    assert resp.partial_success.rejected_spans == 1
    assert "3 links, more than the limit of 2" in resp.partial_success.error_message
    def json_span(name, span_id, events):
        return {"traceId": "07" * 16, "spanId": format(span_id, "016x"), "name": name,
                "events": [{"name": "e"}] * events}
    req = {"resourceSpans": [{"scopeSpans": [{"spans": [json_span("ok-json", 6, 0),
                                                          json_span("many-events", 7, 9)]}]}]}
    r = requests.post(s.otlp_http + "/v1/traces", json=req, timeout=60)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1 and "9 events" in partial["errorMessage"]
    assert names(s) == ["ok-grpc", "ok-http", "ok-json"]
    row = s.sql("SELECT events, links FROM spans WHERE name = 'ok-http'")[0]
    assert row["events"].count("time_ns") == 3 and row["links"].count("trace_id") == 2


def test_millions_of_empty_links_cost_no_memory_on_grpc_or_http(make_strata):
    s = make_strata().start()
    assert post(s, request([span("before", 1)])).status_code == 200
    base = s.peak_rss_mib()
    # 4 million empty links (8 MB on the wire): as prost structs they were ~400 MiB, as
    # stored JSON ~400 MB more. Now counted and rejected without being collected.
    body = request([span("hostile", 2, links=4_000_000), span("good-grpc", 3)])
    resp = grpc_export(s, body)
    assert resp.partial_success.rejected_spans == 1
    assert "4000000 links, more than the limit of 128" in resp.partial_success.error_message
    body = request([span("hostile", 4, links=4_000_000), span("good-http", 5)])
    r = post(s, body)
    assert r.status_code == 200, r.text
    assert ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 1
    grown = s.peak_rss_mib() - base
    assert grown < 150, f"peak RSS grew by {grown:.0f} MiB"
    assert s.alive()
    assert names(s) == ["before", "good-grpc", "good-http"]


def test_unusual_but_valid_or_malformed_bodies_cost_no_memory(make_strata):
    """A span's status given twice (protobuf merges them) and a malformed tail once sent the
    request to prost, which built all 4 million links (~400 MiB) before any limit. The walk
    now takes the first itself, refuses the second itself, and neither costs memory."""
    s = make_strata().start()
    assert post(s, request([span("before", 1)])).status_code == 200
    base = s.peak_rss_mib()
    status_twice = field(15, field(2, b"first")) + field(15, vfield(3, 2))
    hostile = span("hostile", 2, links=4_000_000) + status_twice
    good = span("good-status", 3) + status_twice + field(5, b"good-merged")
    r = post(s, request([hostile, good]))
    assert r.status_code == 200, r.text
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1
    assert "4000000 links, more than the limit of 128" in resp.partial_success.error_message
    resp = grpc_export(s, request([span("hostile", 4, links=4_000_000) + status_twice]))
    assert resp.partial_success.rejected_spans == 1
    # A malformed tail after the links: 400 / INVALID_ARGUMENT naming the field.
    body = request([span("tail", 5, links=4_000_000)]) + b"\x0a\x7f"
    r = post(s, body)
    assert r.status_code == 400, r.text
    assert "ExportTraceServiceRequest.resource_spans: buffer underflow" in r.text, r.text
    e = grpc_refusal(s, body)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert "buffer underflow" in e.details()
    grown = s.peak_rss_mib() - base
    assert grown < 150, f"peak RSS grew by {grown:.0f} MiB"
    assert s.alive()
    # The last name, and the merged status: message of the first, code of the second.
    row = s.sql("SELECT name, status_code, status_message FROM spans WHERE name = 'good-merged'")
    assert row == [{"name": "good-merged", "status_code": 2, "status_message": "first"}], row
    assert names(s) == ["before", "good-merged"]


def test_items_of_resources_and_scopes_over_their_attribute_limits_are_rejected(make_strata):
    s = make_strata("[ingest.limits]\nmax_resource_attributes = 3\nmax_scope_attributes = 2\n").start()
    def attrs(n):
        return b"".join(field(1, field(1, f"k{i}".encode()) + field(2, field(1, b"v"))) for i in range(n))
    def block(resource_attrs, scope_attrs, spans):
        scope = field(1, b"".join(field(3, field(1, f"s{i}".encode())) for i in range(scope_attrs)))
        ss = scope + b"".join(field(2, sp) for sp in spans)
        return field(1, field(1, attrs(resource_attrs)) + field(2, ss))
    body = (block(3, 2, [span("fits", 1)]) + block(4, 0, [span("big-resource", 2)])
            + block(0, 3, [span("big-scope", 3)]))
    r = post(s, body)
    assert r.status_code == 200, r.text
    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 2
    assert "its resource has 4 attributes, more than the limit of 3" in partial.error_message
    assert "its instrumentation scope has 3 attributes, more than the limit of 2" in partial.error_message
    resp = grpc_export(s, block(5, 0, [span("grpc-big", 4)]) + block(1, 1, [span("grpc-fits", 5)]))
    assert resp.partial_success.rejected_spans == 1
    assert names(s) == ["fits", "grpc-fits"]
    # Logs over OTLP/JSON: the records of the large resource are rejected, the rest stored.
    res = [{"key": f"k{i}", "value": {"stringValue": "v"}} for i in range(4)]
    req = {"resourceLogs": [
        {"resource": {"attributes": res}, "scopeLogs": [{"logRecords": [{"body": {"stringValue": "no"}}]}]},
        {"resource": {"attributes": res[:1]}, "scopeLogs": [{"logRecords": [{"body": {"stringValue": "yes"}}]}]},
    ]}
    r = requests.post(s.otlp_http + "/v1/logs", json=req, timeout=60)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedLogRecords"]) == 1, partial
    assert "its resource has 4 attributes, more than the limit of 3" in partial["errorMessage"]
    assert [row["body"] for row in s.sql("SELECT body FROM logs")] == ["yes"]
    assert s.alive()


def test_spans_expanding_past_the_text_limit_refuse_the_request(make_strata):
    # A 1 MiB request limit allows 16 MiB of stored text: a 600 KB resource copied onto
    # 40 spans is 24 MB of it.
    s = make_strata("[ingest.limits]\nmax_request_bytes = 1048576\n").start()
    assert post(s, request([span("before", 1)])).status_code == 200
    kv = field(1, b"big") + field(2, field(1, b"x" * 600_000))  # KeyValue{key, AnyValue{string}}
    resource = field(1, kv)
    body = request([span(f"s{i}", 10 + i) for i in range(40)], resource=resource)
    assert len(body) < 1048576
    r = post(s, body)
    assert r.status_code == 413, r.text
    assert "bytes of text" in r.text
    e = grpc_refusal(s, body)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    assert "bytes of text" in e.details()
    # Fewer spans fit.
    body = request([span(f"fits{i}", 100 + i) for i in range(3)], resource=resource)
    assert post(s, body).status_code == 200
    assert names(s) == ["before", "fits0", "fits1", "fits2"]


def test_malformed_values_inside_rejected_spans_are_refused_on_every_path(make_strata):
    s = make_strata().start()
    assert post(s, request([span("before", 1)])).status_code == 200
    # An array value whose string is not UTF-8, in a span rejected for its 300 attributes.
    bad_array = field(5, field(1, field(1, b"\xff\xfe")))  # AnyValue{array_value{values[AnyValue{string}]}}
    attrs = b"".join(field(9, field(1, f"k{i}".encode()) + field(2, b"\x18\x01")) for i in range(300))
    attrs += field(9, field(1, b"arr") + field(2, bad_array))
    body = request([span("rejected", 2, attrs=attrs), span("good", 3)])
    r = post(s, body)
    assert r.status_code == 400, r.text
    e = grpc_refusal(s, body)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert s.alive()
    assert names(s) == ["before"]
