use promql_parser::parser::{Expr, VectorSelector};

use super::{RangeModifier, modifier_of};
use crate::parse::{format_query, parse};

use RangeModifier::{Anchored, Smoothed};

/// Every selector of `e` with its modifier, in query order.
fn selectors(e: &Expr) -> Vec<(String, bool, Option<RangeModifier>)> {
    fn walk(e: &Expr, out: &mut Vec<(String, bool, Option<RangeModifier>)>) {
        let mut one = |vs: &VectorSelector, matrix: bool| {
            // The metric name, however it is written.
            let name = vs.name.clone().unwrap_or_else(|| {
                let m = vs.matchers.matchers.iter().find(|m| m.name == "__name__");
                m.map(|m| m.value.clone()).unwrap_or_default()
            });
            out.push((name, matrix, modifier_of(vs)));
        };
        match e {
            Expr::VectorSelector(vs) => one(vs, false),
            Expr::MatrixSelector(ms) => one(&ms.vs, true),
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    walk(p, out);
                }
                walk(&a.expr, out);
            }
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Binary(b) => {
                walk(&b.lhs, out);
                walk(&b.rhs, out);
            }
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Subquery(s) => walk(&s.expr, out),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(e, &mut out);
    out
}

fn sel(
    name: &str,
    matrix: bool,
    m: Option<RangeModifier>,
) -> (String, bool, Option<RangeModifier>) {
    (name.to_string(), matrix, m)
}

fn parsed(q: &str) -> Expr {
    parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn error(q: &str) -> String {
    match parse(q) {
        Ok(e) => panic!("{q} parsed: {e:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn modifiers_attach_to_the_selector_before_them() {
    let cases: [(&str, Vec<_>); 12] = [
        ("rate(x[5m] anchored)", vec![sel("x", true, Some(Anchored))]),
        (
            "increase(x[1h] smoothed)",
            vec![sel("x", true, Some(Smoothed))],
        ),
        ("x smoothed", vec![sel("x", false, Some(Smoothed))]),
        ("rate(x[5m] ANCHORED)", vec![sel("x", true, Some(Anchored))]),
        // Before or after offset / @, whichever way they are written.
        (
            "rate(x[5m] offset 1m anchored)",
            vec![sel("x", true, Some(Anchored))],
        ),
        (
            "rate(x[5m] anchored offset 1m)",
            vec![sel("x", true, Some(Anchored))],
        ),
        (
            "x @ 100 smoothed offset -1m",
            vec![sel("x", false, Some(Smoothed))],
        ),
        (
            "x offset -5m @ start() smoothed",
            vec![sel("x", false, Some(Smoothed))],
        ),
        // A duration expression as the offset.
        (
            "rate(x[5m] offset (1m + 1m) anchored)",
            vec![sel("x", true, Some(Anchored))],
        ),
        (
            r#"rate({__name__="x", a="b"}[5m] smoothed)"#,
            vec![sel("x", true, Some(Smoothed))],
        ),
        // Binds to the nearest operand only.
        (
            "a + b smoothed",
            vec![sel("a", false, None), sel("b", false, Some(Smoothed))],
        ),
        (
            "rate(a[5m]) / rate(b{job=\"j\"}[5m] anchored)",
            vec![sel("a", true, None), sel("b", true, Some(Anchored))],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(selectors(&parsed(q)), want, "{q}");
    }
}

#[test]
fn the_words_stay_names_where_a_name_goes() {
    for q in [
        "anchored",
        "smoothed + anchored",
        "sum by (anchored) (smoothed)",
        "rate(anchored[5m])",
        r#"x{anchored="smoothed"}"#,
        "x and anchored",
        "x or on (smoothed) anchored",
        r#"label_replace(x, "anchored", "smoothed", "a", "anchored")"#,
        "x # anchored\n",
        "`anchored`",
    ] {
        let e = parsed(q);
        assert!(
            selectors(&e).iter().all(|s| s.2.is_none()),
            "{q}: {:?}",
            selectors(&e)
        );
    }
    // Prometheus accepts the words as metric and label names, and so do we.
    assert_eq!(
        selectors(&parsed("smoothed + anchored{job=\"a\"} + ANCHORED {}")),
        vec![
            sel("smoothed", false, None),
            sel("anchored", false, None),
            sel("ANCHORED", false, None)
        ]
    );
    let e = parsed("sum by (anchored) (x) + on (job, smoothed) group_left (anchored) y");
    let text = format_query(&e);
    assert!(
        text.contains("sum by (anchored) (x)") && text.contains("group_left (anchored)"),
        "{text}"
    );
    parsed(&text);
    // As a metric name with the modifier on it.
    assert_eq!(
        selectors(&parsed("rate(anchored[5m] anchored)")),
        vec![sel("anchored", true, Some(Anchored))]
    );
    assert_eq!(
        selectors(&parsed("smoothed smoothed")),
        vec![sel("smoothed", false, Some(Smoothed))]
    );
    // The label matcher value and the string stay what they were.
    let e = parsed(r#"count_values("anchored", x{l="smoothed"} smoothed)"#);
    let text = format_query(&e);
    assert_eq!(
        text,
        r#"count_values("anchored", x{l="smoothed"} smoothed)"#
    );
}

#[test]
fn subqueries_keep_the_modifier_of_their_inner_selectors() {
    let e = parsed("max_over_time(rate(x[5m] anchored)[30m:1m])");
    assert_eq!(selectors(&e), vec![sel("x", true, Some(Anchored))]);
    let e = parsed("sum_over_time((x smoothed)[10m:1m] offset 5m)");
    assert_eq!(selectors(&e), vec![sel("x", false, Some(Smoothed))]);
    let e = parsed("max_over_time(max_over_time(rate(x[1m] smoothed)[5m:])[30m:5m])");
    assert_eq!(selectors(&e), vec![sel("x", true, Some(Smoothed))]);
}

#[test]
fn misuse_is_refused_with_the_position_of_the_expression() {
    let cases = [
        (
            "rate(x[5m:1m] anchored)",
            "1:6: parse error: anchored modifier is not supported for subqueries",
        ),
        (
            "rate(x[5m])[10m:] offset 1m smoothed",
            "1:1: parse error: smoothed modifier is not supported for subqueries",
        ),
        (
            "rate(x[5m]) anchored",
            "1:1: parse error: anchored modifier not implemented",
        ),
        (
            "1 + sum by (job) (x) smoothed",
            "1:5: parse error: smoothed modifier not implemented",
        ),
        (
            "sum(\n  rate(x[5m]) anchored\n)",
            "2:3: parse error: anchored modifier not implemented",
        ),
        (
            "(x) smoothed",
            "1:1: parse error: smoothed modifier not implemented",
        ),
        (
            "x + 5 anchored",
            "1:5: parse error: anchored modifier not implemented",
        ),
        (
            "y + x[5m] anchored offset 1m smoothed",
            "1:5: parse error: anchored and smoothed modifiers cannot be used together",
        ),
        (
            "x smoothed anchored",
            "1:1: parse error: anchored and smoothed modifiers cannot be used together",
        ),
        (
            "{} anchored",
            "vector selector must contain at least one non-empty matcher",
        ),
        (
            r#"{a=~".*"} smoothed"#,
            "vector selector must contain at least one non-empty matcher",
        ),
        (
            r#"x{__strata_range_modifier__="anchored"}"#,
            r#"label name "__strata_range_modifier__" is reserved"#,
        ),
        (
            r#"x{__strata_range_modifier__="anchored"} + y smoothed"#,
            r#"label name "__strata_range_modifier__" is reserved"#,
        ),
    ];
    for (q, want) in cases {
        assert_eq!(error(q), want, "{q}");
    }
    // The same modifier twice is harmless, as in Prometheus.
    assert_eq!(
        selectors(&parsed("x anchored anchored")),
        vec![sel("x", false, Some(Anchored))]
    );
}

#[test]
fn format_query_prints_the_modifiers_where_prometheus_does() {
    let cases = [
        ("rate(x[5m] anchored)", "rate(x[5m] anchored)"),
        ("rate(x[5m]   Smoothed  )", "rate(x[5m] smoothed)"),
        (
            r#"increase(x{a="b"}[5m] offset 1m smoothed)"#,
            r#"increase(x{a="b"}[5m] smoothed offset 1m)"#,
        ),
        ("x smoothed offset 1m", "x smoothed offset 1m"),
        ("x @ 100 smoothed", "x @ 100.000 smoothed"),
        (
            "x offset 1m @ end() smoothed",
            "x @ end() smoothed offset 1m",
        ),
        (
            "max_over_time(rate(x[5m] anchored)[30m:1m])",
            "max_over_time(rate(x[5m] anchored)[30m:1m])",
        ),
        (
            r#"sum by (job) (rate({__name__="x", job="a"}[5m] anchored)) / y smoothed"#,
            "  sum by (job) (rate({__name__=\"x\",job=\"a\"}[5m] anchored))\n/\n  y smoothed",
        ),
        (
            r#"x{a="1" or b="2"} smoothed"#,
            r#"x{a="1" or b="2"} smoothed"#,
        ),
    ];
    for (q, want) in cases {
        let e = parsed(q);
        let text = format_query(&e);
        assert_eq!(text, want, "{q}");
        // What is printed parses back to the same query.
        assert_eq!(selectors(&parsed(&text)), selectors(&e), "{text}");
    }
}

#[test]
fn broken_queries_are_refused_without_panicking() {
    let queries = [
        r#"sum by (job) (rate(x{a="ü", b=~"anchored"}[5m] offset 1m anchored)) / on(smoothed) y smoothed"#,
        "max_over_time(rate(x[5m] smoothed @ start())[30m:1m] offset -1m)",
        "x offset (1m + 1m) anchored # anchored\n + anchored smoothed",
        "{\"ünï\"=\"smoothed\"}[1m] anchored",
    ];
    for q in queries {
        // Every prefix, and the query with each character left out: whatever the pre-pass
        // makes of it, the answer is a parse or an error, never a panic.
        let cuts = q.char_indices().map(|(i, _)| i).chain([q.len()]);
        for end in cuts {
            let _ = parse(&q[..end]);
        }
        for (i, c) in q.char_indices() {
            let broken = format!("{}{}", &q[..i], &q[i + c.len_utf8()..]);
            let _ = parse(&broken);
            if let Ok(e) = parse(&broken) {
                // What parses prints as something that parses again.
                let text = format_query(&e);
                assert!(parse(&text).is_ok(), "{broken:?} printed as {text:?}");
            }
        }
    }
}
