"""Trace APIs end to end: traces from the real OpenTelemetry Python SDK (three simulated
services, each its own TracerProvider with its own service.name, calling each other with
propagated context; events, links, error status), fetched by id and searched through
Jaeger's API (under /jaeger) and Tempo's API (at the root, TraceQL), checked field by
field against what the SDK sent; response shapes checked against Jaeger's and Tempo's
documented schemas; the dependency graph; span metrics through PromQL; logs of a trace;
bad input."""

import time

import pytest
import requests
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

CONFIG = """
[ingest.span_metrics]
interval = "1s"
"""

JAEGER_KIND = {SpanKind.INTERNAL: "internal", SpanKind.SERVER: "server", SpanKind.CLIENT: "client",
               SpanKind.PRODUCER: "producer", SpanKind.CONSUMER: "consumer"}
OTLP_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}


def hex_trace(i):
    return format(i, "032x")


def hex_span(i):
    return format(i, "016x")


class Services:
    """One TracerProvider per simulated service, all exporting to Strata over OTLP/HTTP."""

    def __init__(self, strata, names):
        self.memory = InMemorySpanExporter()
        self.providers = {}
        self.tracers = {}
        for name in names:
            p = TracerProvider(resource=Resource.create({"service.name": name, "host.name": f"{name}-host",
                                                         "service.version": "1.0"}))
            p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=strata.otlp_http + "/v1/traces")))
            p.add_span_processor(SimpleSpanProcessor(self.memory))
            self.providers[name] = p
            self.tracers[name] = p.get_tracer(f"{name}.instrumentation", "0.9")

    def shutdown(self):
        for p in self.providers.values():
            p.shutdown()

    def spans(self):
        return self.memory.get_finished_spans()


def make_traces(strata):
    """frontend -> cart -> db, with an event, a link and an error; and one checkout trace."""
    svc = Services(strata, ["frontend", "cart", "db", "checkout"])
    fe, cart, db = svc.tracers["frontend"], svc.tracers["cart"], svc.tracers["db"]
    with svc.tracers["checkout"].start_as_current_span("PlaceOrder", kind=SpanKind.SERVER,
                                                       attributes={"http.route": "/order"}) as other:
        other_ctx = other.get_span_context()
        time.sleep(0.002)
    with fe.start_as_current_span("GET /cart", kind=SpanKind.SERVER,
                                  attributes={"http.route": "/cart", "http.status_code": 500, "ratio": 0.25,
                                              "retry": False, "tags": ["a", "b"]}) as root:
        with fe.start_as_current_span("HTTP GET cart", kind=SpanKind.CLIENT) as call:
            ctx = otel_trace.set_span_in_context(call)
            with cart.start_as_current_span("GetCart", kind=SpanKind.SERVER, context=ctx,
                                            attributes={"rpc.method": "GetCart"}) as c:
                c.add_event("cache miss", {"cache.key": "cart:42", "attempt": 2})
                with cart.start_as_current_span("SELECT carts", kind=SpanKind.CLIENT) as q:
                    qctx = otel_trace.set_span_in_context(q)
                    with db.start_as_current_span("query", kind=SpanKind.SERVER, context=qctx,
                                                  links=[Link(other_ctx, {"link.reason": "batch"})],
                                                  attributes={"db.system": "postgresql"}) as d:
                        time.sleep(0.03)
                        d.set_status(Status(StatusCode.ERROR, "deadlock"))
        root.set_status(Status(StatusCode.ERROR, "upstream failed"))
    svc.shutdown()
    spans = svc.spans()
    assert len(spans) == 6
    return spans, hex_trace(root.get_span_context().trace_id), hex_trace(other_ctx.trace_id)


def get(strata, path, **kw):
    return requests.get(strata.api + path, timeout=60, **kw)


def check_jaeger_envelope(body):
    assert set(body) >= {"data", "total", "limit", "offset", "errors"}
    assert isinstance(body["total"], int) and isinstance(body["limit"], int) and isinstance(body["offset"], int)


def check_jaeger_trace_schema(t):
    """Jaeger's query service JSON model (model/json): trace, span, reference, key-value, log, process."""
    assert set(t) >= {"traceID", "spans", "processes"}
    for s in t["spans"]:
        assert set(s) >= {"traceID", "spanID", "operationName", "references", "startTime", "duration", "tags", "logs",
                          "processID"}
        assert isinstance(s["startTime"], int) and isinstance(s["duration"], int)
        for r in s["references"]:
            assert r["refType"] in ("CHILD_OF", "FOLLOWS_FROM") and len(r["traceID"]) == 32 and len(r["spanID"]) == 16
        for kv in s["tags"]:
            assert kv["type"] in ("string", "bool", "int64", "float64", "binary")
        for log in s["logs"]:
            assert isinstance(log["timestamp"], int) and isinstance(log["fields"], list)
        assert s["processID"] in t["processes"]
    for p in t["processes"].values():
        assert isinstance(p["serviceName"], str) and isinstance(p["tags"], list)


def tags_dict(tags):
    return {t["key"]: (t["type"], t["value"]) for t in tags}


@pytest.fixture
def loaded(make_strata):
    strata = make_strata(CONFIG).start()
    sent, trace_id, other_id = make_traces(strata)
    return strata, sent, trace_id, other_id


def test_jaeger_trace_by_id_field_by_field(loaded):
    strata, sent, trace_id, other_id = loaded
    r = get(strata, f"/jaeger/api/traces/{trace_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    check_jaeger_envelope(body)
    assert body["errors"] is None
    (t,) = body["data"]
    check_jaeger_trace_schema(t)
    assert t["traceID"] == trace_id
    by_id = {s["spanID"]: s for s in t["spans"]}
    mine = [s for s in sent if hex_trace(s.context.trace_id) == trace_id]
    assert len(by_id) == len(mine) == 5
    for s in mine:
        j = by_id[hex_span(s.context.span_id)]
        assert j["traceID"] == trace_id
        assert j["operationName"] == s.name
        assert j["startTime"] == s.start_time // 1000
        assert j["duration"] == (s.end_time - s.start_time) // 1000
        refs = [r for r in j["references"] if r["refType"] == "CHILD_OF"]
        if s.parent:
            assert refs == [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": hex_span(s.parent.span_id)}]
        else:
            assert refs == []
        follows = [r for r in j["references"] if r["refType"] == "FOLLOWS_FROM"]
        assert follows == [{"refType": "FOLLOWS_FROM", "traceID": hex_trace(l.context.trace_id),
                            "spanID": hex_span(l.context.span_id)} for l in s.links]
        tags = tags_dict(j["tags"])
        for k, v in s.attributes.items():
            if isinstance(v, bool):
                assert tags[k] == ("bool", v)
            elif isinstance(v, int):
                assert tags[k] == ("int64", v)
            elif isinstance(v, float):
                assert tags[k] == ("float64", v)
            elif isinstance(v, str):
                assert tags[k] == ("string", v)
            else:
                assert tags[k] == ("string", '["a","b"]')
        assert tags["span.kind"] == ("string", JAEGER_KIND[s.kind])
        assert tags["otel.scope.name"] == ("string", s.instrumentation_scope.name)
        if s.status.status_code == StatusCode.ERROR:
            assert tags["error"] == ("bool", True)
            assert tags["otel.status_code"] == ("string", "ERROR")
            assert tags["otel.status_description"] == ("string", s.status.description)
        else:
            assert "error" not in tags
        assert len(j["logs"]) == len(s.events)
        for log, ev in zip(j["logs"], s.events):
            assert log["timestamp"] == ev.timestamp // 1000
            fields = tags_dict(log["fields"])
            assert fields["event"] == ("string", ev.name)
            for k, v in ev.attributes.items():
                assert fields[k][1] == v
        proc = t["processes"][j["processID"]]
        assert proc["serviceName"] == s.resource.attributes["service.name"]
        ptags = tags_dict(proc["tags"])
        assert ptags["host.name"] == ("string", s.resource.attributes["host.name"])
        assert "service.name" not in ptags
    assert {p["serviceName"] for p in t["processes"].values()} == {"frontend", "cart", "db"}


def otlp_attr(v):
    kind = next(iter(v))
    if kind == "arrayValue":
        return [otlp_attr(x) for x in v[kind].get("values", [])]
    if kind == "intValue":
        return int(v[kind])
    return v[kind]


def test_tempo_trace_by_id_json_and_protobuf(loaded):
    strata, sent, trace_id, _ = loaded
    mine = {hex_span(s.context.span_id): s for s in sent if hex_trace(s.context.trace_id) == trace_id}
    for path, key in [(f"/api/traces/{trace_id}", None), (f"/api/v2/traces/{trace_id}", "trace")]:
        r = get(strata, path)
        assert r.status_code == 200, r.text
        body = r.json()
        batches = body["batches"] if key is None else body["trace"]["resourceSpans"]
        if key:
            assert body["status"] == "COMPLETE"
        seen = 0
        for rs in batches:
            res = {a["key"]: otlp_attr(a["value"]) for a in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    s = mine[sp["spanId"]]
                    seen += 1
                    assert res["service.name"] == s.resource.attributes["service.name"]
                    assert ss["scope"]["name"] == s.instrumentation_scope.name
                    assert ss["scope"]["version"] == s.instrumentation_scope.version
                    assert sp["traceId"] == trace_id
                    assert sp["name"] == s.name
                    assert sp["kind"] == OTLP_KIND[s.kind]
                    assert sp["startTimeUnixNano"] == str(s.start_time)
                    assert sp["endTimeUnixNano"] == str(s.end_time)
                    assert sp.get("parentSpanId", "") == (hex_span(s.parent.span_id) if s.parent else "")
                    attrs = {a["key"]: otlp_attr(a["value"]) for a in sp.get("attributes", [])}
                    assert attrs == {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.attributes.items()}
                    assert [e["name"] for e in sp.get("events", [])] == [e.name for e in s.events]
                    assert len(sp.get("links", [])) == len(s.links)
                    if s.status.status_code == StatusCode.ERROR:
                        assert sp["status"] == {"code": 2, "message": s.status.description}
        assert seen == len(mine) == 5

    # Grafana's Tempo data source asks for protobuf: tempopb.Trace (v1) and TraceByIDResponse (v2).
    r = get(strata, f"/api/traces/{trace_id}", headers={"Accept": "application/protobuf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/protobuf"
    data = TracesData()
    data.ParseFromString(r.content)
    got = {s.span_id.hex(): (s, rs) for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert set(got) == set(mine)
    for sid, (p, rs) in got.items():
        s = mine[sid]
        assert p.trace_id.hex() == trace_id and p.name == s.name
        assert p.start_time_unix_nano == s.start_time and p.end_time_unix_nano == s.end_time
        assert p.parent_span_id.hex() == (hex_span(s.parent.span_id) if s.parent else "")
        svc = [a.value.string_value for a in rs.resource.attributes if a.key == "service.name"]
        assert svc == [s.resource.attributes["service.name"]]
        assert [e.name for e in p.events] == [e.name for e in s.events]
        assert [l.span_id.hex() for l in p.links] == [hex_span(l.context.span_id) for l in s.links]
    r = get(strata, f"/api/v2/traces/{trace_id}", headers={"Accept": "application/protobuf"})
    assert r.status_code == 200
    raw = r.content
    assert raw[0] == 0x0A  # field 1 (trace), length-delimited
    # Skip the varint length, then the embedded Trace has TracesData's wire form.
    i = 1
    while raw[i] & 0x80:
        i += 1
    inner = TracesData()
    inner.ParseFromString(raw[i + 1:])
    assert sum(len(ss.spans) for rs in inner.resource_spans for ss in rs.scope_spans) == 5


def test_jaeger_search_services_operations_dependencies(loaded):
    strata, sent, trace_id, other_id = loaded
    r = get(strata, "/jaeger/api/services")
    check_jaeger_envelope(r.json())
    assert r.json()["data"] == ["cart", "checkout", "db", "frontend"]
    assert get(strata, "/jaeger/api/services/cart/operations").json()["data"] == ["GetCart", "SELECT carts"]
    r = get(strata, "/jaeger/api/operations", params={"service": "cart", "spanKind": "server"})
    assert r.json()["data"] == [{"name": "GetCart", "spanKind": "server"}]

    def search(**params):
        r = get(strata, "/jaeger/api/traces", params={"lookback": "1h", **params})
        assert r.status_code == 200, r.text
        body = r.json()
        check_jaeger_envelope(body)
        for t in body["data"]:
            check_jaeger_trace_schema(t)
        return [t["traceID"] for t in body["data"]], body

    ids, body = search(service="frontend")
    assert ids == [trace_id]
    assert len(body["data"][0]["spans"]) == 5
    assert search(service="db", tags='{"error":"true"}')[0] == [trace_id]
    assert search(service="db", tags="db.system=postgresql")[0] == [trace_id]
    assert search(service="db", tags="db.system=mysql")[0] == []
    assert search(service="db", minDuration="25ms")[0] == [trace_id]
    assert search(service="db", minDuration="10s")[0] == []
    assert search(service="checkout", operation="PlaceOrder")[0] == [other_id]
    assert search(service="checkout", operation="nope")[0] == []

    end_ms = int(time.time() * 1000) + 60_000
    r = get(strata, "/jaeger/api/dependencies", params={"endTs": end_ms, "lookback": 3_600_000})
    assert r.status_code == 200
    deps = sorted((d["parent"], d["child"], d["callCount"]) for d in r.json()["data"])
    assert deps == [("cart", "db", 1), ("frontend", "cart", 1)]


def test_tempo_traceql_search_and_tags(loaded):
    strata, sent, trace_id, other_id = loaded
    root = next(s for s in sent if s.parent is None and hex_trace(s.context.trace_id) == trace_id)

    def search(q, **params):
        r = get(strata, "/api/search", params={"q": q, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        assert isinstance(body["traces"], list)
        m = body["metrics"]
        assert isinstance(m["inspectedTraces"], int) and m["inspectedBytes"].isdigit()
        return body["traces"]

    (t,) = search('{ resource.service.name = "db" && status = error }')
    assert t["traceID"] == trace_id
    assert t["rootServiceName"] == "frontend"
    assert t["rootTraceName"] == "GET /cart"
    assert t["startTimeUnixNano"] == str(root.start_time)
    assert t["durationMs"] == (root.end_time - root.start_time) // 1_000_000
    (ss,) = t["spanSets"]
    assert ss["matched"] == 1
    db_span = next(s for s in sent if s.name == "query")
    assert ss["spans"][0]["spanID"] == hex_span(db_span.context.span_id)
    assert ss["spans"][0]["durationNanos"] == str(db_span.end_time - db_span.start_time)

    assert [x["traceID"] for x in search('{ span.http.route = "/cart" } >> { resource.service.name = "db" }')] == [trace_id]
    assert [x["traceID"] for x in search('{ duration > 20ms && kind = server }')] == [trace_id]
    assert search('{ resource.service.name = "db" && duration > 10s }') == []
    assert [x["traceID"] for x in search('{ span.http.route = "/order" }')] == [other_id]
    assert {x["traceID"] for x in search("{}")} == {trace_id, other_id}
    assert len(search("{}", limit=1)) == 1
    # Legacy logfmt tags.
    r = get(strata, "/api/search", params={"tags": "service.name=checkout"})
    assert [x["traceID"] for x in r.json()["traces"]] == [other_id]
    now = int(time.time())
    assert [x["traceID"] for x in search('{ resource.service.name = "cart" }', start=now - 600, end=now + 60)] == [trace_id]
    assert search('{ resource.service.name = "cart" }', start=now + 600, end=now + 700) == []

    tags = get(strata, "/api/search/tags").json()["tagNames"]
    assert {"http.route", "db.system", "service.name", "host.name"} <= set(tags)
    scopes = {s["name"]: s["tags"] for s in get(strata, "/api/v2/search/tags").json()["scopes"]}
    assert "db.system" in scopes["span"] and "host.name" in scopes["resource"] and "name" in scopes["intrinsic"]
    assert get(strata, "/api/search/tag/service.name/values").json()["tagValues"] == ["cart", "checkout", "db", "frontend"]
    vals = get(strata, "/api/v2/search/tag/span.http.status_code/values").json()["tagValues"]
    assert vals == [{"type": "int", "value": "500"}]
    vals = get(strata, "/api/v2/search/tag/resource.service.name/values").json()["tagValues"]
    assert {"type": "string", "value": "db"} in vals
    names = [v["value"] for v in get(strata, "/api/v2/search/tag/name/values").json()["tagValues"]]
    assert "GetCart" in names
    assert get(strata, "/api/echo").text == "echo"
    assert "version" in get(strata, "/api/status/buildinfo").json()


def test_bad_input(loaded):
    strata, _, trace_id, _ = loaded
    r = get(strata, "/api/search", params={"q": "{ .a = }"})
    assert r.status_code == 400 and "line 1, col" in r.text
    r = get(strata, "/api/search", params={"q": "{}", "limit": "100000"})
    assert r.status_code == 400 and "max_result_traces" in r.text
    r = get(strata, "/api/search", params={"q": "{}", "start": "0", "end": str(int(time.time()))})
    assert r.status_code == 400 and "max_search_range" in r.text
    r = get(strata, "/api/search", params={"q": "{}", "minDuration": "fast"})
    assert r.status_code == 400 and "minDuration" in r.text
    r = get(strata, "/api/search", params={"tags": 'k="open'})
    assert r.status_code == 400
    assert get(strata, "/api/traces/xyz").status_code == 400
    assert get(strata, "/api/traces/" + "f" * 32).status_code == 404
    r = get(strata, "/jaeger/api/traces/" + "f" * 32)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == 404
    r = get(strata, "/jaeger/api/traces", params={"lookback": "1h"})
    assert r.status_code == 400 and "service" in r.json()["errors"][0]["msg"]
    r = get(strata, "/jaeger/api/traces", params={"service": "x", "lookback": "forever"})
    assert r.status_code == 400
    assert get(strata, "/api/v2/search/tags", params={"scope": "nope"}).status_code == 400
    assert get(strata, f"/api/traces/{trace_id}").status_code == 200  # still up


def test_span_metrics_through_promql(loaded):
    strata, sent, _, _ = loaded

    def query(q):
        r = get(strata, "/api/v1/query", params={"q": q, "query": q, "time": time.time()})
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]

    deadline = time.time() + 20
    calls = {}
    while time.time() < deadline:
        res = query("sum by (service) (traces_spanmetrics_calls_total)")
        calls = {x["metric"]["service"]: float(x["value"][1]) for x in res}
        if calls.get("frontend") == 2:
            break
        time.sleep(0.5)
    assert calls == {"frontend": 2.0, "cart": 2.0, "db": 1.0, "checkout": 1.0}
    err = query('traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR"}')
    assert sorted((x["metric"]["service"], x["metric"]["span_name"], x["metric"]["span_kind"]) for x in err) == [
        ("db", "query", "SPAN_KIND_SERVER"), ("frontend", "GET /cart", "SPAN_KIND_SERVER")]
    buckets = query('traces_spanmetrics_latency_bucket{service="db"}')
    by_le = {x["metric"]["le"]: float(x["value"][1]) for x in buckets}
    db = next(s for s in sent if s.name == "query")
    secs = (db.end_time - db.start_time) / 1e9
    assert by_le["+Inf"] == 1.0
    assert by_le["0.016"] == (1.0 if secs <= 0.016 else 0.0)
    assert by_le["16.384"] == 1.0
    total = float(query('traces_spanmetrics_latency_sum{service="db"}')[0]["value"][1])
    assert abs(total - secs) < 1e-6
    q = query('histogram_quantile(0.5, sum by (le) (traces_spanmetrics_latency_bucket{service="db"}))')
    assert 0 < float(q[0]["value"][1]) <= 0.064


def test_logs_of_a_trace(make_strata):
    import logging

    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    strata = make_strata().start()
    lp = LoggerProvider(resource=Resource.create({"service.name": "cart"}))
    lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=strata.otlp_http + "/v1/logs")))
    logger = logging.getLogger("e2e.trace.logs")
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=lp)
    logger.addHandler(handler)
    tp = TracerProvider(resource=Resource.create({"service.name": "cart"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=strata.otlp_http + "/v1/traces")))
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("work") as span:
        logger.error("inside the span")
        ids = (hex_trace(span.get_span_context().trace_id), hex_span(span.get_span_context().span_id))
    logger.error("outside any span")
    logger.removeHandler(handler)
    lp.shutdown()
    tp.shutdown()
    r = get(strata, f"/api/traces/{ids[0]}/logs")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["traceID"] == ids[0] and body["total"] == 1
    (log,) = body["logs"]
    assert log["body"] == "inside the span" and log["spanID"] == ids[1]
    assert log["severityText"] == "ERROR" and log["serviceName"] == "cart"


def spans_file_columns(data_dir):
    """Column names of every spans Parquet file under a data dir (from the footers)."""
    import importlib.util
    from pathlib import Path
    tool = Path(__file__).resolve().parents[2] / "benches" / "traces" / "parquet_columns.py"
    spec = importlib.util.spec_from_file_location("parquet_columns", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = []
    for path in sorted(Path(data_dir, "files").glob("*/traces/*/*.parquet")):
        meta = mod.footer(path)
        out.append({".".join(p.decode() for p in cc[3][3]) for rg in meta[4] for cc in rg[1]})
    return out


def test_traces_read_the_same_from_files_after_a_flush(loaded):
    """Spans files store ids as bytes and no end_time; every reader must give back what
    the memtable gave: Jaeger and Tempo by id, search, dependencies and SQL (ids as hex,
    end_time, filters by hex ids)."""
    strata, sent, trace_id, other_id = loaded
    root = next(s for s in sent if hex_trace(s.context.trace_id) == trace_id and s.parent is None)
    child = next(s for s in sent if hex_trace(s.context.trace_id) == trace_id and s.parent is not None)
    now = int(time.time())
    cols = ("trace_id, span_id, parent_span_id, name, CAST(start_time AS BIGINT) AS start_ns, "
            "CAST(end_time AS BIGINT) AS end_ns, duration, attributes, events, links, service_name")
    sql_all = f"SELECT {cols} FROM spans ORDER BY span_id"

    def views():
        return dict(
            jaeger=get(strata, f"/jaeger/api/traces/{trace_id}").json(),
            tempo=get(strata, f"/api/traces/{trace_id}").json(),
            other=get(strata, f"/jaeger/api/traces/{other_id}").json(),
            search=get(strata, "/jaeger/api/traces", params={"service": "db", "minDuration": "20ms",
                                                           "tags": '{"db.system":"postgresql"}'}).json(),
            traceql=get(strata, "/api/search", params={"q": '{ resource.service.name = "db" && duration > 20ms }',
                                                       "start": now - 600, "end": now + 60}).json()["traces"],
            deps=get(strata, "/jaeger/api/dependencies", params={"endTs": (now + 60) * 1000,
                                                                 "lookback": 3_600_000}).json(),
            sql=strata.sql(sql_all),
            by_trace=strata.sql(f"SELECT span_id FROM spans WHERE trace_id = '{trace_id}' ORDER BY span_id"),
            by_span=strata.sql(f"SELECT name, parent_span_id FROM spans "
                               f"WHERE span_id = '{hex_span(child.context.span_id)}'"),
        )

    def jaeger_spans(body):
        # Span order and process numbering may differ between reads; the content may not.
        (t,) = body["data"]
        return sorted(
            [{**{k: v for k, v in sp.items() if k != "processID"}, "process": t["processes"][sp["processID"]]}
             for sp in t["spans"]], key=lambda sp: sp["spanID"])

    def tempo_spans(body):
        out = []
        for rs in body["batches"]:
            for ss in rs["scopeSpans"]:
                out += [(rs["resource"], ss["scope"], sp) for sp in ss["spans"]]
        return sorted(out, key=lambda x: x[2]["spanId"])

    def normalized():
        v = views()
        v["jaeger"], v["other"] = jaeger_spans(v["jaeger"]), jaeger_spans(v["other"])
        v["tempo"] = tempo_spans(v["tempo"])
        v["deps"]["data"].sort(key=lambda d: (d["parent"], d["child"]))
        return v

    before = normalized()
    strata.stop()
    strata.start()
    layouts = spans_file_columns(strata.data_dir)
    assert layouts, "the shutdown flush wrote spans files"
    for columns in layouts:
        assert "end_time" not in columns and {"span_id", "parent_span_id", "start_time", "duration"} <= columns
    after = normalized()
    for k in before:
        assert after[k] == before[k], k
    # And what those views hold is what the SDK sent.
    assert len(after["sql"]) == len(sent)
    row = next(r for r in after["sql"] if r["span_id"] == hex_span(root.context.span_id))
    assert row["trace_id"] == trace_id and row["parent_span_id"] == ""
    assert row["start_ns"] == root.start_time and row["end_ns"] == root.end_time
    assert row["duration"] == root.end_time - root.start_time
    assert len(after["by_trace"]) == 5
    assert after["by_span"] == [{"name": child.name, "parent_span_id": hex_span(child.parent.span_id)}]
    assert len(after["jaeger"]) == 5 and len(after["tempo"]) == 5
    assert len(after["search"]["data"]) == 1 and len(after["traceql"]) == 1
