use promql_parser::parser::{BinaryExpr, Expr, LabelModifier, VectorMatchCardinality};

use super::{format_query, parse, trim_of};
use crate::histogram::TrimSide;

fn binary(e: &Expr) -> &BinaryExpr {
    match e {
        Expr::Binary(b) => b,
        Expr::Paren(p) => binary(&p.expr),
        other => panic!("not a binary expression: {other:?}"),
    }
}

fn user_matching(b: &BinaryExpr) -> Option<(bool, Vec<String>)> {
    let m = b.modifier.as_ref()?.matching.as_ref()?;
    let (on, l) = match m {
        LabelModifier::Include(l) => (true, l),
        LabelModifier::Exclude(l) => (false, l),
    };
    let labels: Vec<String> = l
        .labels
        .iter()
        .filter(|l| *l != super::TRIM_MARK)
        .cloned()
        .collect();
    Some((on, labels))
}

#[test]
fn trim_operators_parse_as_marked_comparisons() {
    let e = parse("h </ 2").expect("parses");
    let b = binary(&e);
    assert_eq!(trim_of(b), Some(TrimSide::KeepBelow));
    let m = b.modifier.as_ref().expect("modifier");
    assert!(!m.return_bool);
    assert_eq!(m.card, VectorMatchCardinality::OneToOne);
    assert_eq!(user_matching(b), Some((false, vec![])));

    let e = parse("h>/-1.5").expect("parses");
    assert_eq!(trim_of(binary(&e)), Some(TrimSide::KeepAbove));

    // Scalar operands on both sides parse (Prometheus fails at evaluation).
    let e = parse("1 </ 2").expect("parses");
    assert_eq!(trim_of(binary(&e)), Some(TrimSide::KeepBelow));
}

#[test]
fn plain_comparisons_are_not_trims() {
    for q in [
        "a < b",
        "a > 2",
        "a <= b",
        "a >= on(x) b",
        "a < bool 1",
        "1 > bool 2",
    ] {
        let e = parse(q).expect("parses");
        assert_eq!(trim_of(binary(&e)), None, "{q}");
    }
}

#[test]
fn trim_has_comparison_precedence_and_left_associativity() {
    // `+` and `*` bind tighter: (a + b) </ (c * d).
    let e = parse("a + b </ c * d").expect("parses");
    let b = binary(&e);
    assert_eq!(trim_of(b), Some(TrimSide::KeepBelow));
    assert_eq!(binary(&b.lhs).op.to_string(), "+");
    assert_eq!(binary(&b.rhs).op.to_string(), "*");

    // Same level as `==`, left associative: (a </ b) == c.
    let e = parse("a </ b == c").expect("parses");
    let b = binary(&e);
    assert_eq!(b.op.to_string(), "==");
    assert_eq!(trim_of(binary(&b.lhs)), Some(TrimSide::KeepBelow));

    // (a >/ b) </ c
    let e = parse("a >/ b </ c").expect("parses");
    let b = binary(&e);
    assert_eq!(trim_of(b), Some(TrimSide::KeepBelow));
    assert_eq!(trim_of(binary(&b.lhs)), Some(TrimSide::KeepAbove));

    // `and` binds looser: a and (b </ c).
    let e = parse("a and b </ c").expect("parses");
    let b = binary(&e);
    assert_eq!(b.op.to_string(), "and");
    assert_eq!(trim_of(binary(&b.rhs)), Some(TrimSide::KeepBelow));
}

#[test]
fn user_modifiers_are_kept() {
    let e = parse("a >/ on (label) b").expect("parses");
    let b = binary(&e);
    assert_eq!(trim_of(b), Some(TrimSide::KeepAbove));
    assert_eq!(user_matching(b), Some((true, vec!["label".to_string()])));
    assert_eq!(
        b.modifier.as_ref().map(|m| m.card.clone()),
        Some(VectorMatchCardinality::OneToOne)
    );

    let e = parse("a </ IGNORING(x, y) group_left (z) b").expect("parses");
    let b = binary(&e);
    assert_eq!(trim_of(b), Some(TrimSide::KeepBelow));
    assert_eq!(
        user_matching(b),
        Some((false, vec!["x".to_string(), "y".to_string()]))
    );
    assert_eq!(
        b.modifier.as_ref().map(|m| m.card.clone()),
        Some(VectorMatchCardinality::many_to_one(vec!["z"]))
    );

    let e = parse("a </ on(x) group_right b").expect("parses");
    assert_eq!(
        binary(&e).modifier.as_ref().map(|m| m.card.clone()),
        Some(VectorMatchCardinality::one_to_many(vec![]))
    );

    let e = parse("a </ on(x) group_left() fill(0) b").expect("parses");
    let m = binary(&e).modifier.clone().expect("modifier");
    assert_eq!(m.card, VectorMatchCardinality::many_to_one(vec![]));
    assert_eq!(m.fill_values.rhs, Some(0.0));
}

#[test]
fn strings_and_comments_are_not_rewritten() {
    let e = parse(r#"a{x="</"} </ 1 # >/ in a comment"#).expect("parses");
    let b = binary(&e);
    assert_eq!(trim_of(b), Some(TrimSide::KeepBelow));
    let Expr::VectorSelector(vs) = b.lhs.as_ref() else {
        panic!("selector expected");
    };
    assert!(vs.matchers.matchers.iter().any(|m| m.value == "</"));
    assert!(parse(r#"label_replace(a, "d", ">/", "s", "(.*)")"#).is_ok());
}

#[test]
fn invalid_trims_are_rejected() {
    let err = parse("a </ bool b").expect_err("bool is for comparisons only");
    assert_eq!(
        err.to_string(),
        "bool modifier can only be used on comparison operators"
    );
    assert_eq!(
        parse("a </ group_left b")
            .expect_err("needs on")
            .to_string(),
        "unexpected <group_left>"
    );
    // Vector matching with a scalar operand.
    assert_eq!(
        parse("a </ on(x) 2").expect_err("scalar").to_string(),
        "vector matching only allowed between vectors"
    );
    assert!(parse("a </").is_err());
    assert!(parse("</ a").is_err());
    assert!(parse("a </ sum by").is_err());
}

#[test]
fn reserved_marker_labels_are_rejected() {
    for q in [
        "a < bool ignoring() group_left(__strata_trim__) b",
        "a < on(__strata_trim__) b",
        "a </ on(__strata_trim__) b",
        "a </ on(x) group_left(__strata_trim_grouped__) b",
        "a </ b + (c < bool ignoring() group_left(__strata_trim__) d)",
    ] {
        let err = parse(q).expect_err(q).to_string();
        assert!(err.contains("reserved"), "{q}: {err}");
    }
}

#[test]
fn format_query_prints_trims_back() {
    let cases = [
        ("h </ 2", "h </ 2"),
        ("h>/-Inf", "h >/ -Inf"),
        ("a >/ on(label) b", "a >/ on (label) b"),
        (
            "a </ ignoring(x) group_left(y) b",
            "a </ ignoring (x) group_left (y) b",
        ),
        ("a </ on() b", "a </ on () b"),
        ("sum(a </ 1) > 2", "sum(a </ 1) > 2"),
        (r#"a{x="</"} < b"#, r#"a{x="</"} < b"#),
    ];
    for (q, want) in cases {
        let e = parse(q).expect(q);
        let got = format_query(&e);
        assert_eq!(got, want, "{q}");
        assert!(!got.contains("__strata"), "{got}");
        // What format_query prints parses back to the same tree.
        assert_eq!(parse(&got).expect(&got), e, "{q}");
    }
}

#[test]
fn raw_bytes_that_are_not_utf8_are_kept_apart() {
    use super::raw_bytes::{quote, raw_byte, respell_raw_bytes, valid_label_name};
    let string_arg = |q: &str| -> String {
        let e = parse(q).expect(q);
        let Expr::Aggregate(a) = e else {
            panic!("aggregation expected")
        };
        match a.param.as_deref() {
            Some(Expr::StringLiteral(s)) => s.val.clone(),
            other => panic!("string expected, got {other:?}"),
        }
    };
    // Invalid: a lone 0xc5 byte (hex and octal escapes alike).
    for q in [
        r#"count_values("a\xc5z", m)"#,
        r#"count_values('a\305z', m)"#,
    ] {
        let v = string_arg(q);
        assert!(!valid_label_name(&v), "{q}");
        assert_eq!(quote(&v), r#""a\xc5z""#);
        assert_eq!(
            v.chars().filter_map(raw_byte).collect::<Vec<_>>(),
            vec![0xc5]
        );
    }
    // Escapes that spell valid UTF-8 ("å") stay as they are.
    assert_eq!(string_arg(r#"count_values("\xc3\xa5", m)"#), "å");
    assert_eq!(string_arg(r#"count_values("\u00c5", m)"#), "Å");
    assert_eq!(respell_raw_bytes(r#""\x41\u00c5""#), None);
    assert_eq!(
        respell_raw_bytes(r#""\xc3\xa5\xff!\n""#).as_deref(),
        Some(r#""å\U0010ffff!\n""#)
    );
    // Raw strings have no escapes.
    assert_eq!(string_arg(r#"count_values(`\xff`, m)"#), r"\xff");
    assert!(valid_label_name("Å"));
    assert!(!valid_label_name(""));
}

#[test]
fn format_query_of_long_trims_spans_lines_and_parses_back() {
    let q = "sum by (job, instance) (rate(http_request_duration_seconds[5m])) </ on (job, instance) group_left () sum by (job, instance) (rate(other_metric_total[5m]))";
    let e = parse(q).expect("parses");
    let got = format_query(&e);
    assert!(got.contains('\n'), "{got}");
    assert!(got.contains("</ on (job, instance) group_left ()"), "{got}");
    assert!(!got.contains("__strata"), "{got}");
    assert_eq!(parse(&got).expect(&got), e);
}

#[test]
fn info_selectors_may_match_only_empty_values() {
    // Prometheus accepts `{data=~".*"}` as info()'s label selector; elsewhere such a
    // selector is still refused, and the internal mark never shows.
    for q in [
        r#"info(metric, {data=~".*"})"#,
        r#"info( rate(x[5m]) , # comment
              {__name__!~".+_info", data=~".*"})"#,
        r#"sum(info(metric{a="(,"}, {data=~".*"}))"#,
    ] {
        let e = parse(q).unwrap_or_else(|err| panic!("{q}: {err}"));
        let printed = format_query(&e);
        assert!(!printed.contains("__strata"), "{printed}");
        assert_eq!(
            parse(&printed).map(|e| format_query(&e)),
            Ok(printed.clone())
        );
    }
    assert!(parse(r#"{data=~".*"}"#).is_err());
    assert!(parse(r#"info(metric, {__strata_info__="1"})"#).is_err());
    assert!(parse(r#"label_replace(info(m), "a", "b", "c", "d")"#).is_ok());
}

#[test]
fn deeply_nested_queries_are_refused_not_a_stack_overflow() {
    // Hostile depth is a bad_data error, not a stack overflow that kills the server.
    let parens = format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000));
    let chain = vec!["1"; 50_000].join(" + ");
    let signs = format!("{}1", "-".repeat(50_000));
    let sets = vec!["up"; 50_000].join(" or ");
    for q in [&parens, &chain, &signs, &sets] {
        let err = parse(q).expect_err("refused");
        assert!(err.to_string().contains("too deeply nested"), "{err}");
    }
    // Long queries that are not deep still parse: strings, matchers, many selectors.
    let regex = format!(r#"up{{job=~"{}"}}"#, vec!["a-b+c"; 5_000].join("|"));
    assert!(parse(&regex).is_ok());
    let wide = format!(
        "sum(rate(x[5m] offset 1m)) + {}",
        vec!["y"; 200].join(" * ")
    );
    assert!(parse(&wide).is_ok());
}

#[test]
fn queries_at_the_nesting_limit_evaluate() {
    use crate::{Engine, EngineOptions, MemorySource};
    let q = format!(
        "{}{}{}",
        "(".repeat(100),
        vec!["1"; 156].join(" + "),
        ")".repeat(100)
    );
    let engine = Engine::new(EngineOptions::default());
    let r = engine
        .instant_query(&MemorySource::new(), &q, 0)
        .expect("evaluates");
    assert!(format!("{:?}", r.value).contains("156"), "{:?}", r.value);
}
