//! Smoke tests of the public API on a small hand-built trace.

use strata_traceql::{SpanData, SpanKind, StatusCode, TraceData, Value, evaluate, parse};

fn trace() -> TraceData {
    let span = |id: &str, parent: Option<&str>, name: &str, svc: &str, dur_ms: i64| SpanData {
        span_id: id.into(),
        parent_span_id: parent.map(str::to_string),
        name: name.into(),
        service_name: svc.into(),
        start_ns: 0,
        end_ns: dur_ms * 1_000_000,
        kind: SpanKind::Server,
        ..Default::default()
    };
    let mut root = span("r", None, "GET /", "api", 30);
    root.attributes
        .push(("http.status_code".into(), Value::Int(200)));
    let mut child = span("c", Some("r"), "db.query", "db", 10);
    child.status = StatusCode::Error;
    TraceData {
        trace_id: "t".into(),
        spans: vec![root, child],
    }
}

#[test]
fn simple_filters() {
    let t = trace();
    let run = |q: &str| -> Vec<Vec<usize>> {
        let q = parse(q).expect("query parses");
        evaluate(&q, &t).into_iter().map(|s| s.spans).collect()
    };
    assert_eq!(run("{ }"), vec![vec![0, 1]]);
    assert_eq!(run("{ status = error }"), vec![vec![1]]);
    assert_eq!(run(r#"{ resource.service.name = "api" }"#), vec![vec![0]]);
    assert_eq!(
        run("{ span.http.status_code >= 200 && duration > 20ms }"),
        vec![vec![0]]
    );
    assert_eq!(run(r#"{ name =~ "db.*" }"#), vec![vec![1]]);
    assert_eq!(run(r#"{ name =~ "db" }"#), Vec::<Vec<usize>>::new());
    assert_eq!(
        run("{ span.http.status_code = 404 }"),
        Vec::<Vec<usize>>::new()
    );
}

#[test]
fn parse_error_display() {
    let e = parse("{ name = }").expect_err("must fail");
    assert_eq!((e.line, e.col, e.offset), (1, 10, 9));
    assert!(
        e.to_string().starts_with("parse error at line 1, col 10: "),
        "{e}"
    );
}
