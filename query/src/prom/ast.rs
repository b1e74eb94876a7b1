//! `/api/v1/parse_query`: a PromQL expression's syntax tree as JSON, in the shape
//! Prometheus 3 answers it (the tree view of its UI and of PromLens read this shape).
//!
//! Every node has a `type` (`aggregation`, `binaryExpr`, `call`, `matrixSelector`,
//! `subquery`, `numberLiteral`, `parenExpr`, `stringLiteral`, `unaryExpr`,
//! `vectorSelector`); durations are milliseconds; a selector's `matchers` include the
//! `__name__` matcher last when the metric name is written before the braces, as
//! Prometheus's parser stores it; `timestamp` is the `@` time in milliseconds (`null` when
//! absent or `@ start()`/`@ end()`, which set `startOrEnd`).

use promql_parser::label::{Matcher, Matchers};
use promql_parser::parser::{
    AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use strata_promql::RangeModifier;

/// The JSON form of `expr`.
pub(crate) fn translate(expr: &Expr) -> Value {
    match expr {
        Expr::Aggregate(a) => {
            let (without, grouping) = match &a.modifier {
                Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
                Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
                None => (false, Vec::new()),
            };
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": translate(&a.expr),
                "param": a.param.as_deref().map_or(Value::Null, translate),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(b) => {
            let vectors = b.lhs.value_type() == promql_parser::parser::value::ValueType::Vector
                && b.rhs.value_type() == promql_parser::parser::value::ValueType::Vector;
            let matching = if vectors {
                let (card, include) = match b.modifier.as_ref().map(|m| &m.card) {
                    Some(VectorMatchCardinality::ManyToOne(l)) => ("many-to-one", l.labels.clone()),
                    Some(VectorMatchCardinality::OneToMany(l)) => ("one-to-many", l.labels.clone()),
                    Some(VectorMatchCardinality::ManyToMany) => ("many-to-many", Vec::new()),
                    Some(VectorMatchCardinality::OneToOne) | None => {
                        if b.op.is_set_operator() {
                            ("many-to-many", Vec::new())
                        } else {
                            ("one-to-one", Vec::new())
                        }
                    }
                };
                let (on, labels) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                    Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                    None => (false, Vec::new()),
                };
                json!({"card": card, "labels": labels, "on": on, "include": include})
            } else {
                Value::Null
            };
            json!({
                "type": "binaryExpr",
                "op": b.op.to_string(),
                "lhs": translate(&b.lhs),
                "rhs": translate(&b.rhs),
                "matching": matching,
                "bool": b.modifier.as_ref().is_some_and(|m| m.return_bool),
            })
        }
        Expr::Call(c) => json!({
            "type": "call",
            "func": {
                "name": c.func.name,
                "argTypes": c.func.arg_types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "variadic": c.func.variadic,
                "returnType": c.func.return_type.to_string(),
            },
            "args": c.args.args.iter().map(|a| translate(a)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(m) => {
            let mut v = selector(&m.vs, "matrixSelector");
            v["range"] = json!(millis(&m.range));
            v
        }
        Expr::Subquery(s) => {
            let (timestamp, start_or_end) = at(&s.at);
            json!({
                "type": "subquery",
                "expr": translate(&s.expr),
                "range": millis(&s.range),
                "offset": offset(&s.offset),
                "step": s.step.as_ref().map_or(0, millis),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::NumberLiteral(n) => json!({"type": "numberLiteral", "val": go_float(n.val)}),
        Expr::Paren(p) => json!({"type": "parenExpr", "expr": translate(&p.expr)}),
        Expr::StringLiteral(s) => json!({"type": "stringLiteral", "val": s.val}),
        Expr::Unary(u) => json!({"type": "unaryExpr", "op": "-", "expr": translate(&u.expr)}),
        Expr::VectorSelector(vs) => selector(vs, "vectorSelector"),
        // The parser never produces extension nodes.
        Expr::Extension(_) => Value::Null,
    }
}

fn selector(vs: &VectorSelector, typ: &str) -> Value {
    let (timestamp, start_or_end) = at(&vs.at);
    let modifier = strata_promql::modifier_of(vs);
    json!({
        "type": typ,
        "name": vs.name.clone().unwrap_or_default(),
        "offset": offset(&vs.offset),
        "matchers": matchers(&vs.matchers, vs.name.as_deref()),
        "timestamp": timestamp,
        "startOrEnd": start_or_end,
        "anchored": modifier == Some(RangeModifier::Anchored),
        "smoothed": modifier == Some(RangeModifier::Smoothed),
    })
}

fn matchers(m: &Matchers, name: Option<&str>) -> Value {
    let one = |m: &Matcher| json!({"name": m.name, "value": m.value, "type": m.op.to_string()});
    // The mark of an `anchored`/`smoothed` modifier is not a matcher of the query's.
    let user = |m: &&Matcher| !strata_promql::is_modifier_mark(&m.name);
    let mut out: Vec<Value> = m.matchers.iter().filter(user).map(one).collect();
    // `a{x="1"} or {y="2"}` style alternatives: Prometheus has no such syntax; keep them
    // visible rather than dropping them.
    for alt in &m.or_matchers {
        out.extend(alt.iter().filter(user).map(one));
    }
    let has_name_matcher = m.matchers.iter().any(|x| x.name == "__name__");
    if let Some(n) = name
        && !has_name_matcher
    {
        out.push(json!({"name": "__name__", "value": n, "type": "="}));
    }
    Value::Array(out)
}

fn millis(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => millis(d),
        Some(Offset::Neg(d)) => -millis(d),
        None => 0,
    }
}

fn at(a: &Option<AtModifier>) -> (Value, Value) {
    match a {
        None => (Value::Null, Value::Null),
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
        Some(AtModifier::At(t)) => {
            let ms = match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => millis(&d),
                Err(e) => -millis(&e.duration()),
            };
            (json!(ms), Value::Null)
        }
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an exponent.
fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ast(q: &str) -> Value {
        translate(&promql_parser::parser::parse(q).expect("valid query"))
    }

    #[test]
    fn numbers_format_like_go() {
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(-2.0), "-2");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
        assert_eq!(go_float(f64::NAN), "NaN");
    }

    #[test]
    fn scalar_binary_has_no_matching() {
        let v = ast("1 + 2");
        assert_eq!(v["matching"], Value::Null);
        assert_eq!(v["lhs"], json!({"type": "numberLiteral", "val": "1"}));
    }

    #[test]
    fn set_operator_is_many_to_many() {
        let v = ast("a and on(x) b");
        assert_eq!(
            v["matching"],
            json!({"card": "many-to-many", "labels": ["x"], "on": true, "include": []})
        );
        assert_eq!(v["op"], json!("and"));
    }
}
