//! Engine API behaviour the HTTP layer relies on: limits, error kinds,
//! instant/range results.

use strata_promql::model::{RawSample, SampleValue, Value};
use strata_promql::{Engine, EngineOptions, ErrorType, Labels, MemorySource};

fn source() -> MemorySource {
    let mut s = MemorySource::new();
    let samples = (0..10)
        .map(|i| RawSample {
            t: i * 60_000,
            value: SampleValue::Float(i as f64),
        })
        .collect();
    s.add(Labels::from_pairs([("__name__", "m"), ("a", "1")]), samples);
    s
}

#[test]
fn resolution_limit_is_bad_data() {
    let e = Engine::new(EngineOptions::default());
    let err = e
        .range_query(&source(), "m", 0, 20_000_000, 1)
        .expect_err("too many points");
    assert_eq!(err.error_type(), ErrorType::BadData);
    assert!(
        err.to_string()
            .contains("exceeded maximum resolution of 11,000 points per timeseries")
    );
}

#[test]
fn parse_errors_are_bad_data() {
    let e = Engine::new(EngineOptions::default());
    let err = e
        .instant_query(&source(), "sum(", 0)
        .expect_err("parse error");
    assert_eq!(err.error_type(), ErrorType::BadData);
}

#[test]
fn max_samples_is_enforced() {
    let e = Engine::new(EngineOptions {
        max_samples: 5,
        ..Default::default()
    });
    let err = e
        .range_query(&source(), "m", 0, 540_000, 60_000)
        .expect_err("too many samples");
    assert_eq!(err.error_type(), ErrorType::Execution);
}

#[test]
fn rate_over_range() {
    let e = Engine::new(EngineOptions::default());
    let r = e
        .instant_query(&source(), "rate(m[5m])", 540_000)
        .expect("query");
    let Value::Vector(v) = r.value else {
        panic!("expected vector")
    };
    assert_eq!(v.len(), 1);
    assert!((v[0].f - 1.0 / 60.0).abs() < 1e-9);
    assert_eq!(v[0].metric, Labels::from_pairs([("a", "1")]));
}

#[test]
fn many_to_many_is_an_execution_error() {
    let mut s = source();
    s.add(
        Labels::from_pairs([("__name__", "m"), ("a", "2")]),
        vec![RawSample {
            t: 0,
            value: SampleValue::Float(1.0),
        }],
    );
    let e = Engine::new(EngineOptions::default());
    let err = e
        .instant_query(&s, "m + on() m", 0)
        .expect_err("duplicate match");
    assert_eq!(err.error_type(), ErrorType::Execution);
}
