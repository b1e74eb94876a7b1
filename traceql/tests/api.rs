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

#[test]
fn long_operator_chains_evaluate() {
    let t = trace();
    // 200 comparisons: 399 operators, the most a filter may hold is 512
    let conds: Vec<String> = (0..200).map(|i| format!("duration > {i}ns")).collect();
    let q = parse(&format!("{{ {} }}", conds.join(" && "))).expect("parses");
    let sets = evaluate(&q, &t);
    assert_eq!(sets[0].spans, vec![0, 1]);
    let q = parse(&vec!["{ status = error }"; 250].join(" >> ")).expect("parses");
    assert!(evaluate(&q, &t).is_empty());
    let q = parse(&vec!["{ }"; 250].join(" && ")).expect("parses");
    assert_eq!(evaluate(&q, &t)[0].spans, vec![0, 1]);
}

#[test]
fn empty_trace_never_matches() {
    let t = TraceData {
        trace_id: "x".into(),
        spans: Vec::new(),
    };
    for q in ["{ }", "count() = 0", "{ } | count() >= 0", "{ } !>> { }"] {
        assert!(evaluate(&parse(q).expect("parses"), &t).is_empty(), "{q}");
    }
}

#[test]
fn malformed_parent_links_do_not_hang_or_panic() {
    // a -> b -> a cycle, a span that is its own parent, duplicate ids
    let span = |id: &str, parent: &str| SpanData {
        span_id: id.into(),
        parent_span_id: Some(parent.into()),
        name: id.into(),
        ..Default::default()
    };
    let t = TraceData {
        trace_id: "x".into(),
        spans: vec![
            span("a", "b"),
            span("b", "a"),
            span("c", "c"),
            span("c", "a"),
        ],
    };
    for q in [
        "{ } >> { }",
        "{ } << { }",
        "{ } ~ { }",
        "{ } &>> { }",
        "{ span:childCount > 0 }",
        "{ parent.span.x = 1 }",
        "{ rootName = \"a\" }",
    ] {
        let _ = evaluate(&parse(q).expect("parses"), &t);
    }
    let sets = evaluate(&parse(r#"{ name = "a" } > { }"#).expect("parses"), &t);
    assert_eq!(sets[0].spans, vec![1, 3]);
}

#[test]
fn query_and_results_can_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<strata_traceql::Query>();
    send_sync::<strata_traceql::Spanset>();
    send_sync::<TraceData>();
    send_sync::<strata_traceql::ParseError>();
    send_sync::<strata_traceql::Hints>();
}

#[test]
fn reads_events_and_links() {
    let q = |s: &str| parse(s).expect("parses");
    assert!(!q("{ span.a = 1 } | count() > 1").reads_events());
    assert!(q("{ event.a = 1 }").reads_events());
    assert!(q("{ } | by(event:name)").reads_events());
    assert!(q("{ } >> ({ } | select(event.x))").reads_events());
    assert!(!q("{ event.a = 1 }").reads_links());
    assert!(q("{ } | avg(link.weight) > 1").reads_links());
    assert!(q("{ link:spanID = \"x\" }").reads_links());
}
