"""Export every signal with the real OpenTelemetry Python SDK (gRPC and HTTP exporters)
and read everything back through SQL, field by field."""

import json
import logging

import pytest
import requests
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def exporters(kind, strata):
    if kind == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression

        kw = dict(endpoint=strata.grpc_endpoint, insecure=True, compression=Compression.Gzip)
        return OTLPSpanExporter(**kw), OTLPMetricExporter(**kw), OTLPLogExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = strata.otlp_http
    return (
        OTLPSpanExporter(endpoint=base + "/v1/traces", compression=Compression.Gzip),
        OTLPMetricExporter(endpoint=base + "/v1/metrics"),
        OTLPLogExporter(endpoint=base + "/v1/logs", compression=Compression.Gzip),
    )


def resource(service):
    return Resource.create(
        {"service.name": service, "service.instance.id": "inst-1", "deployment.environment": "test", "host.name": "box"}
    )


OTLP_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_traces_round_trip(strata, kind):
    span_exp, _, _ = exporters(kind, strata)
    memory = InMemorySpanExporter()
    service = f"checkout-{kind}"
    provider = TracerProvider(resource=resource(service))
    provider.add_span_processor(SimpleSpanProcessor(span_exp))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e.tracer", "1.2.3")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER, attributes={"http.status_code": 500, "ratio": 0.5, "ok": False, "tags": ["a", "b"]}) as root:
        root.add_event("cache miss", {"key": "cart:42"})
        with tracer.start_as_current_span("SELECT carts", kind=SpanKind.CLIENT, links=[Link(root.get_span_context(), {"why": "test"})]) as child:
            child.set_attribute("db.system", "postgresql")
        root.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()

    sent = memory.get_finished_spans()
    assert len(sent) == 2
    rows = strata.sql(
        "SELECT trace_id, span_id, parent_span_id, trace_state, flags, name, kind, CAST(start_time AS BIGINT) AS start_ns, "
        "CAST(end_time AS BIGINT) AS end_ns, duration, attributes, dropped_attributes_count, events, links, status_code, status_message, "
        f"service_name, resource_attributes, scope_name, scope_version FROM spans WHERE service_name = '{service}'"
    )
    by_id = {r["span_id"]: r for r in rows}
    assert len(by_id) == 2
    for s in sent:
        r = by_id[format(s.context.span_id, "016x")]
        assert r["trace_id"] == format(s.context.trace_id, "032x")
        assert r["parent_span_id"] == (format(s.parent.span_id, "016x") if s.parent else "")
        assert r["name"] == s.name
        assert r["kind"] == OTLP_KIND[s.kind]
        assert r["start_ns"] == s.start_time and r["end_ns"] == s.end_time
        assert r["duration"] == s.end_time - s.start_time
        assert json.loads(r["attributes"]) == {k: list(v) if isinstance(v, tuple) else v for k, v in s.attributes.items()}
        assert r["status_code"] == s.status.status_code.value
        assert r["status_message"] == (s.status.description or "")
        assert r["service_name"] == service
        assert json.loads(r["resource_attributes"]) == dict(s.resource.attributes)
        assert r["scope_name"] == "e2e.tracer" and r["scope_version"] == "1.2.3"
        events = json.loads(r["events"])
        assert [(e["name"], e["time_ns"], e["attributes"]) for e in events] == [
            (e.name, e.timestamp, dict(e.attributes)) for e in s.events
        ]
        links = json.loads(r["links"])
        assert [(l["trace_id"], l["span_id"], l["attributes"]) for l in links] == [
            (format(l.context.trace_id, "032x"), format(l.context.span_id, "016x"), dict(l.attributes)) for l in s.links
        ]


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_metrics_of_every_instrument(strata, kind):
    _, metric_exp, _ = exporters(kind, strata)
    service = f"shop-{kind}"
    reader = PeriodicExportingMetricReader(metric_exp, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=resource(service),
        metric_readers=[reader],
        views=[View(instrument_name="exp_latency", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("e2e.meter")
    meter.create_counter("orders").add(5, {"route": "/buy"})
    updown = meter.create_up_down_counter("queue_depth")
    updown.add(3)
    updown.add(-1)
    meter.create_gauge("temperature", unit="Cel").set(21.5, {"room": "lab"})
    hist = meter.create_histogram("latency", unit="s")
    exp_hist = meter.create_histogram("exp_latency", unit="s")
    for v in (0.2, 0.7, 3.0):
        hist.record(v)
        exp_hist.record(v)
    provider.shutdown()

    rows = strata.sql(
        f"SELECT metric_name, labels, value, histogram FROM metrics WHERE labels['job'] = '{service}' ORDER BY metric_name"
    )
    by_name = {}
    for r in rows:
        by_name.setdefault(r["metric_name"], []).append(r)
    for r in rows:
        assert r["labels"]["instance"] == "inst-1"
    assert by_name["orders_total"][0]["value"] == 5
    assert by_name["orders_total"][0]["labels"]["route"] == "/buy"
    assert by_name["queue_depth"][0]["value"] == 2
    assert by_name["temperature_celsius"][0]["value"] == 21.5
    assert by_name["temperature_celsius"][0]["labels"]["room"] == "lab"
    assert by_name["latency_seconds_count"][0]["value"] == 3
    assert by_name["latency_seconds_sum"][0]["value"] == pytest.approx(3.9)
    buckets = {r["labels"]["le"]: r["value"] for r in by_name["latency_seconds_bucket"]}
    assert buckets["+Inf"] == 3
    assert buckets["0"] == 0 and buckets["5"] == 3
    native = by_name["exp_latency_seconds"][0]
    assert native["value"] is None
    h = json.loads(native["histogram"])
    assert h["count"] == 3 and h["sum"] == pytest.approx(3.9)
    assert sum(h["positive_buckets"]) + h["zero_count"] == 3
    # Other resource attributes land on target_info.
    info = by_name["target_info"][0]["labels"]
    assert info["host_name"] == "box" and info["deployment_environment"] == "test"

    # PromQL's info() joins them back by job and instance, as Grafana users write it.
    def promql(q):
        r = requests.get(strata.api + "/api/v1/query", params={"query": q})
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]

    enriched = promql(f'info(orders_total{{job="{service}"}}, {{deployment_environment=~".+"}})')
    assert [s["metric"] for s in enriched] == [
        {
            "__name__": "orders_total",
            "deployment_environment": "test",
            "instance": "inst-1",
            "job": service,
            "route": "/buy",
        }
    ]
    assert enriched[0]["value"][1] == "5"
    # Every data label without a selector; none asked for and missing drops the series.
    assert promql(f'info(orders_total{{job="{service}"}})')[0]["metric"]["host_name"] == "box"
    assert promql(f'info(orders_total{{job="{service}"}}, {{k8s_cluster=~".+"}})') == []


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_logs_round_trip(strata, kind):
    span_exp, _, log_exp = exporters(kind, strata)
    service = f"billing-{kind}"
    lp = LoggerProvider(resource=resource(service))
    lp.add_log_record_processor(SimpleLogRecordProcessor(log_exp))
    logger = logging.getLogger(f"e2e.{kind}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(level=logging.INFO, logger_provider=lp)
    logger.addHandler(handler)
    tp = TracerProvider(resource=resource(service))
    with tp.get_tracer("t").start_as_current_span("work") as span:
        logger.warning("disk %s is full", "sda", extra={"disk": "sda", "attempt": 3})
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")
    logger.info("plain line")
    logger.removeHandler(handler)
    lp.shutdown()

    rows = strata.sql(
        "SELECT body, body_type, severity_number, severity_text, attributes, trace_id, span_id, stream_labels, "
        f"service_name, scope_name, resource_attributes FROM logs WHERE service_name = '{service}' ORDER BY timestamp"
    )
    assert [r["body"] for r in rows] == ["disk sda is full", "plain line"]
    warn, info = rows
    assert warn["body_type"] == "string"
    assert warn["severity_number"] == 13 and warn["severity_text"] in ("WARN", "WARNING")
    attrs = json.loads(warn["attributes"])
    assert attrs["disk"] == "sda" and attrs["attempt"] == 3
    assert warn["trace_id"] == trace_id and warn["span_id"] == span_id
    assert warn["stream_labels"]["service_name"] == service
    assert warn["stream_labels"]["deployment_environment"] == "test"
    assert warn["stream_labels"]["level"] in ("warn", "warning")
    assert info["severity_number"] == 9 and info["trace_id"] == ""
    assert json.loads(warn["resource_attributes"])["host.name"] == "box"
