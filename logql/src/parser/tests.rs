#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::ast::{Expr, LineFilterOp, Stage};
use crate::{MatchOp, parse, parse_selector};

fn err(q: &str) -> crate::ParseError {
    match parse(q) {
        Ok(e) => panic!("{q:?} parsed: {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn error_display_is_lokis_format() {
    let e = err("{app=\"api\"} |= 3");
    assert_eq!((e.line, e.col, e.offset), (1, 16, 15));
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 16: syntax error: unexpected NUMBER, expecting STRING"
    );
}

#[test]
fn positions_count_characters_and_lines() {
    // `é` is two bytes but one column.
    let e = err("{app=\"é\"} |= 3");
    assert_eq!((e.line, e.col, e.offset), (1, 14, 14));
    let e = err("{app=\"x\"}\n| json\n| status > \"x\"");
    assert_eq!((e.line, e.col), (3, 12));
    assert_eq!(e.offset, "{app=\"x\"}\n| json\n| status > ".len());
}

#[test]
fn end_of_input_points_past_the_last_character() {
    let e = err("{app=\"x\"");
    assert_eq!((e.line, e.col), (1, 9));
    assert!(e.message.contains("unexpected $end"), "{}", e.message);
    let e = err("sum(count_over_time({app=\"x\"}[5m])");
    assert_eq!(e.col, 35);
    assert!(
        e.message.contains("expecting CLOSE_PARENTHESIS"),
        "{}",
        e.message
    );
}

#[test]
fn unexpected_identifier_is_named() {
    let e = err("{app=\"x\"} | nope");
    assert_eq!(e.col, 17);
    assert!(e.message.contains("unexpected $end"), "{}", e.message);
    let e = err("{app=\"x\"} | 3");
    assert_eq!(e.col, 13);
    assert!(e.message.contains("unexpected NUMBER"), "{}", e.message);
    let e = err("sum by (a b) (count_over_time({a=\"b\"}[1m]))");
    assert_eq!(e.col, 11);
    assert!(e.message.contains("IDENTIFIER \"b\""), "{}", e.message);
    let e = err("foo(1)");
    assert_eq!(e.col, 1);
}

#[test]
fn lexer_errors_have_positions() {
    let e = err("{app=\"x\"} |= \"unterminated");
    assert_eq!(e.col, 14);
    assert!(e.message.contains("literal not terminated"));
    let e = err("{app=\"x\"} @");
    assert_eq!(e.col, 11);
    let e = err("count_over_time({app=\"x\"}[5m)");
    assert!(e.message.contains("invalid duration") || e.message.contains("unclosed"));
}

#[test]
fn selector_helper() {
    let m = parse_selector("{app=\"api\", env=~\"p.*\", x!=\"\", y!~\"z\"}").unwrap();
    assert_eq!(m.len(), 4);
    assert_eq!(m[1].op, MatchOp::Re);
    assert!(m[1].matches("prod"));
    assert!(!m[1].matches("xprod"), "regex is anchored");
    assert!(m[2].matches("a") && !m[2].matches(""));
    let e = parse_selector("{app=\"api\"} |= \"x\"").unwrap_err();
    assert_eq!(e.col, 13);
    assert!(parse_selector("{app=~\".*\"}").is_err());
}

#[test]
fn log_query_detection_and_leading_filters() {
    let e = parse("{a=\"b\"} |= \"x\" !~ \"y\" | json |= \"z\"").unwrap();
    assert!(e.is_log_query());
    let Expr::Log(l) = &e else { panic!() };
    let lf = l.leading_line_filters();
    assert_eq!(lf.len(), 2);
    assert_eq!(lf[0].op, LineFilterOp::Contains);
    assert_eq!(lf[0].pattern, "x");
    assert_eq!(lf[1].op, LineFilterOp::NotRegex);
    assert!(matches!(l.stages[2], Stage::Json(_)));
    assert!(
        !parse("count_over_time({a=\"b\"}[1m])")
            .unwrap()
            .is_log_query()
    );
    assert!(!parse("1 + 1").unwrap().is_log_query());
}

#[test]
fn or_filters_are_not_hints() {
    let Expr::Log(l) = parse("{a=\"b\"} |= \"x\" or \"y\"").unwrap() else {
        panic!()
    };
    assert!(l.leading_line_filters().is_empty());
}

#[test]
fn durations_and_ranges() {
    assert_eq!(crate::parse_duration("1h30m"), Some(5_400_000_000_000));
    assert_eq!(crate::parse_duration("250ms"), Some(250_000_000));
    assert_eq!(crate::parse_duration("1d"), Some(86_400_000_000_000));
    assert_eq!(crate::parse_duration("5x"), None);
    let Expr::RangeAgg(r) = parse("rate({a=\"b\"}[1m30s] offset 1h)").unwrap() else {
        panic!()
    };
    assert_eq!(r.range_ns, 90_000_000_000);
    assert_eq!(r.offset_ns, 3_600_000_000_000);
}

#[test]
fn comments_are_ignored() {
    let e = parse("{a=\"b\"} # only errors\n |= \"error\"").unwrap();
    assert!(e.is_log_query());
}

#[test]
fn semantic_errors_point_at_the_operator() {
    let e = err("  sum_over_time({a=\"b\"}[1m])");
    assert_eq!(e.col, 3);
    assert!(e.message.contains("without unwrap"));
}
