use super::*;

fn err(q: &str) -> ParseError {
    parse(q).expect_err("must not parse")
}

fn filter(q: &str) -> String {
    let parsed = parse(q).expect("parses");
    match &parsed.pipeline.stages[0] {
        Stage::Spanset(SpansetExpr::Filter(f)) => f.expr.to_string(),
        other => panic!("not a filter: {other:?}"),
    }
}

/// Shape of a spanset expression: `(op lhs rhs)` with filters as `{}`.
fn shape(e: &SpansetExpr) -> String {
    match e {
        SpansetExpr::Filter(f) => format!("{{{}}}", f.expr),
        SpansetExpr::Op(op, l, r) => format!("({op:?} {} {})", shape(l), shape(r)),
        SpansetExpr::Pipeline(p) => format!("(pipeline of {})", p.stages.len()),
    }
}

fn set_shape(q: &str) -> String {
    let parsed = parse(q).expect("parses");
    match &parsed.pipeline.stages[0] {
        Stage::Spanset(e) => shape(e),
        other => panic!("not a spanset expression: {other:?}"),
    }
}

#[test]
fn error_positions_are_line_and_column() {
    let e = err("{ name = }");
    assert_eq!((e.offset, e.line, e.col), (9, 1, 10));
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 10: unexpected \"}\", expecting a value, an attribute or an intrinsic"
    );

    let q = "{ name = \"a\" &&\n  span.x = }";
    let e = err(q);
    assert_eq!((e.line, e.col), (2, 12));
    assert_eq!(&q[e.offset..], "}");

    // columns count characters, not bytes
    let e = err("{ name = \"é\" && ü = 1 }");
    assert_eq!((e.line, e.col), (1, 17));
    assert!(e.message.contains("unexpected character 'ü'"), "{e}");

    let e = err("");
    assert_eq!((e.line, e.col), (1, 1));
    assert!(e.message.contains("unexpected end of query"), "{e}");

    let e = err("{ } |\n\n   rate()");
    assert_eq!((e.line, e.col), (3, 4));
}

#[test]
fn type_errors_point_at_the_operator() {
    let e = err("{ true } && { span.a = 1 && name = 2 }");
    assert_eq!(e.col, 34);
    assert!(
        e.message
            .starts_with("binary operations must operate on the same type: name = 2"),
        "{e}"
    );
    let e = err("{ !name }");
    assert_eq!(e.col, 3);
    assert!(
        e.message
            .starts_with("illegal operation for the given type: !name"),
        "{e}"
    );
    let e = err("{ name != -name }");
    assert_eq!(e.col, 11);
}

#[test]
fn field_operator_precedence() {
    assert_eq!(filter("{ .a * .b + .c = 1 }"), "((.a * .b) + .c) = 1");
    assert_eq!(filter("{ .a + .b * .c = 1 }"), "(.a + (.b * .c)) = 1");
    assert_eq!(filter("{ .a + .b ^ .c = 1 }"), "(.a + (.b ^ .c)) = 1");
    assert_eq!(filter("{ .a ^ .b ^ .c = 1 }"), "(.a ^ (.b ^ .c)) = 1");
    assert_eq!(filter("{ .a - .b - .c = 1 }"), "((.a - .b) - .c) = 1");
    assert_eq!(filter("{ .a && .b = .c }"), ".a && (.b = .c)");
    assert_eq!(filter("{ .a = .b && .c }"), "(.a = .b) && .c");
    // Tempo gives && and || the same precedence, grouped left to right
    assert_eq!(filter("{ .a || .b && .c }"), "(.a || .b) && .c");
    assert_eq!(filter("{ .a && .b || .c }"), "(.a && .b) || .c");
    assert_eq!(filter("{ !.a = .b }"), "(!.a) = .b");
    assert_eq!(filter("{ !(.a = .b) }"), "!(.a = .b)");
    assert_eq!(filter("{ .c - -.a > 1 }"), "(.c - (-.a)) > 1");
    assert_eq!(filter("{ -1 < .a }"), "-1 < .a");
}

#[test]
fn spanset_operator_precedence() {
    assert_eq!(
        set_shape("{ .a } && { .b } >> { .c }"),
        "(And {.a} (Descendant {.b} {.c}))"
    );
    assert_eq!(
        set_shape("{ .a } >> { .b } > { .c }"),
        "(Child (Descendant {.a} {.b}) {.c})"
    );
    assert_eq!(
        set_shape("{ .a } || { .b } && { .c }"),
        "(And (Or {.a} {.b}) {.c})"
    );
    assert_eq!(
        set_shape("{ .a } !~ { .b } &~ { .c } !< { .d }"),
        "(NotParent (UnionSibling (NotSibling {.a} {.b}) {.c}) {.d})"
    );
    assert_eq!(
        set_shape("({ .a } | count() > 1) > { .b }"),
        "(Child (pipeline of 2) {.b})"
    );
    assert_eq!(set_shape("(({ .a }))"), "{.a}");
}

#[test]
fn attribute_names_and_scopes() {
    assert_eq!(
        filter(r#"{ span.http.status_code = 200 }"#),
        "span.http.status_code = 200"
    );
    assert_eq!(
        filter(r#"{ resource."k8s pod" = "x" }"#),
        r#"resource."k8s pod" = "x""#
    );
    assert_eq!(filter(r#"{ span."a\"b" = "x" }"#), r#"span."a\"b" = "x""#);
    assert_eq!(filter(r#"{ ."a"."b" = 1 }"#), ".a.b = 1");
    assert_eq!(filter("{ parent.span.a = 1 }"), "parent.span.a = 1");
    assert_eq!(
        filter("{ event.a = 1 && link.b = 2 }"),
        "(event.a = 1) && (link.b = 2)"
    );
    assert_eq!(filter("{ span:name = \"x\" }"), "name = \"x\"");
    assert_eq!(
        filter("{ trace:rootService = \"x\" }"),
        "rootServiceName = \"x\""
    );
}

#[test]
fn literals() {
    assert_eq!(filter("{ duration > 1.5s }"), "duration > 1.5s");
    assert_eq!(filter("{ duration > 90s }"), "duration > 1m30s");
    assert_eq!(filter("{ duration > 100us }"), "duration > 100µs");
    assert_eq!(filter("{ span.a = `raw\\n` }"), "span.a = \"raw\\\\n\"");
    assert_eq!(filter("{ span.a = \"tab\\t\" }"), "span.a = \"tab\\t\"");
    assert_eq!(filter("{ span.a = -2.5 }"), "span.a = -2.5");
    assert_eq!(filter("{ span.a = nil }"), "span.a = nil");
    assert_eq!(filter("{ nil != span.a }"), "span.a != nil");
}

#[test]
fn regexes_are_compiled_anchored_once() {
    let q = parse(r#"{ name =~ "a|b" }"#).expect("parses");
    let Stage::Spanset(SpansetExpr::Filter(f)) = &q.pipeline.stages[0] else {
        panic!("filter expected")
    };
    let Field::Binary {
        regex: Some(re), ..
    } = &f.expr
    else {
        panic!("regex expected")
    };
    assert!(re.is_match("a") && re.is_match("b"));
    assert!(!re.is_match("ab") && !re.is_match("xa"));
}

#[test]
fn huge_regexes_are_rejected() {
    let e = err(r#"{ name =~ `(\w{100}){100}` }"#);
    assert!(e.message.starts_with("invalid regex"), "{e}");
    assert_eq!(e.col, 11);
}

#[test]
fn with_hints_are_kept() {
    let q = parse("{ } with(most_recent=true, sample=0.5)").expect("parses");
    assert_eq!(
        q.query_hints(),
        &[
            ("most_recent".to_string(), Value::Bool(true)),
            ("sample".to_string(), Value::Float(0.5)),
        ]
    );
}

#[test]
fn nesting_and_size_are_bounded() {
    let nested = |depth: usize| format!("{}{{ true }}{}", "(".repeat(depth), ")".repeat(depth));
    assert!(parse(&nested(30)).is_ok());
    let e = err(&nested(200));
    assert!(e.message.contains("nested too deeply"), "{e}");
    let e = err(&format!("{{ {}true{} }}", "(".repeat(200), ")".repeat(200)));
    assert!(e.message.contains("nested too deeply"), "{e}");
    let e = err(&format!("{{ {}true }}", "!".repeat(200)));
    assert!(e.message.contains("nested too deeply"), "{e}");

    let chain = |n: usize| {
        let conds: Vec<String> = (0..n).map(|i| format!("span.a{i} = {i}")).collect();
        format!("{{ {} }}", conds.join(" && "))
    };
    // 200 comparisons joined by && are 399 operators
    assert!(parse(&chain(200)).is_ok());
    let e = err(&chain(300));
    assert!(e.message.contains("too many operators"), "{e}");
    let spansets = vec!["{ }"; 600].join(" && ");
    let e = err(&spansets);
    assert!(e.message.contains("too many operators"), "{e}");
}
