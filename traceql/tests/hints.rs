//! Query::hints(): what storage may rely on to skip traces.

use strata_traceql::{Condition, HintField, Hints, Predicate, StatusCode, Value, parse};

fn hints(q: &str) -> Hints {
    parse(q).expect("query parses").hints()
}

fn cond(field: HintField, predicate: Predicate) -> Condition {
    Condition { field, predicate }
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

#[test]
fn conjunctions_of_simple_conditions() {
    let h = hints(
        r#"{ resource.service.name = "api" && name = "GET /" && duration > 10ms && status = error }"#,
    );
    assert_eq!(
        h.conditions,
        vec![
            cond(HintField::ServiceName, Predicate::Eq(s("api"))),
            cond(HintField::SpanName, Predicate::Eq(s("GET /"))),
            cond(
                HintField::Duration,
                Predicate::Gt(Value::Duration(10_000_000))
            ),
            cond(
                HintField::Status,
                Predicate::Eq(Value::Status(StatusCode::Error))
            ),
        ]
    );
    assert_eq!(h.service_names(), Some(vec!["api"]));
    assert_eq!(h.span_names(), Some(vec!["GET /"]));
    assert_eq!(h.min_span_duration_ns(), Some(10_000_001));
    assert!(h.requires_error());
}

#[test]
fn attributes_by_scope() {
    let h = hints(
        r#"{ span.http.method = "GET" && resource.k8s.ns =~ "prod-.*" && .team != nil && 400 <= span.code }"#,
    );
    assert_eq!(
        h.conditions,
        vec![
            cond(
                HintField::SpanAttribute("http.method".into()),
                Predicate::Eq(s("GET"))
            ),
            cond(
                HintField::ResourceAttribute("k8s.ns".into()),
                Predicate::Regex("prod-.*".into())
            ),
            cond(HintField::Attribute("team".into()), Predicate::Exists),
            cond(
                HintField::SpanAttribute("code".into()),
                Predicate::Gte(Value::Int(400))
            ),
        ]
    );
}

#[test]
fn disjunctions_become_in_or_nothing() {
    let h = hints(r#"{ resource.service.name = "a" || resource.service.name = "b" }"#);
    assert_eq!(
        h.conditions,
        vec![cond(
            HintField::ServiceName,
            Predicate::In(vec![s("a"), s("b")])
        )]
    );
    assert_eq!(h.service_names(), Some(vec!["a", "b"]));
    // different fields: nothing can be required
    assert!(
        hints(r#"{ name = "a" || status = error }"#)
            .conditions
            .is_empty()
    );
    // spanset ||: the same rule
    let h = hints(r#"{ name = "a" } || { name = "b" }"#);
    assert_eq!(h.span_names(), Some(vec!["a", "b"]));
}

#[test]
fn spanset_operators() {
    // both sides of && and of a structural operator must be present
    let h = hints(r#"{ name = "a" } && { name = "b" }"#);
    assert_eq!(h.conditions.len(), 2);
    let h = hints(r#"{ resource.service.name = "x" } >> { status = error }"#);
    assert_eq!(h.service_names(), Some(vec!["x"]));
    assert!(h.requires_error());
    // a negated operator only needs its right side
    let h = hints(r#"{ resource.service.name = "x" } !>> { status = error }"#);
    assert_eq!(h.service_names(), None);
    assert!(h.requires_error());
    // later pipeline stages filter the same trace
    let h = hints(r#"{ } | by(name) | { resource.service.name = "x" } | count() > 2"#);
    assert_eq!(h.service_names(), Some(vec!["x"]));
}

#[test]
fn what_gives_no_hint() {
    for q in [
        "{ }",
        r#"{ name != "a" }"#,
        r#"{ !(name = "a") }"#,
        r#"{ span.a !~ "x" }"#,
        r#"{ event.x = 1 }"#,
        r#"{ parent.span.x = 1 }"#,
        r#"{ span.a = span.b }"#,
        "count() > 2",
    ] {
        assert_eq!(hints(q), Hints::default(), "{q}");
    }
}

#[test]
fn hints_hold_on_one_span_only_for_pipelines_of_plain_filters() {
    let one = |q: &str| parse(q).expect("query parses").hints_hold_on_one_span();
    assert!(one(
        r#"{ resource.service.name = "api" && duration > 10ms }"#
    ));
    assert!(one(
        r#"{ resource.service.name = "api" } | count() > 2 | select(span.x)"#
    ));
    assert!(one(r#"{ .a = 1 } | { .b = 2 } | by(name)"#));
    assert!(!one(r#"{ resource.service.name = "api" } && { .b = 2 }"#));
    assert!(!one(r#"{ resource.service.name = "api" } >> { .b = 2 }"#));
    assert!(!one(r#"{ .a = 1 } || { .b = 2 }"#));
}
