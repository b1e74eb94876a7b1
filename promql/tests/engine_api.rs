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

fn trim_source() -> MemorySource {
    use std::sync::Arc;
    use strata_promql::histogram::{FloatHistogram, Span};
    let mut s = source();
    // Custom buckets (-Inf,5] (5,10] (10,15] (15,20] (20,+Inf].
    let h = FloatHistogram {
        schema: -53,
        count: 15.0,
        sum: 172.5,
        positive_spans: vec![Span {
            offset: 0,
            length: 5,
        }],
        positive_buckets: vec![1.0, 6.0, 4.0, 3.0, 1.0],
        custom_values: vec![5.0, 10.0, 15.0, 20.0],
        ..Default::default()
    };
    let samples = (0..10)
        .map(|i| RawSample {
            t: i * 60_000,
            value: SampleValue::Histogram(Arc::new(h.clone())),
        })
        .collect();
    s.add(Labels::from_pairs([("__name__", "h"), ("a", "1")]), samples);
    s
}

fn one_histogram(v: &Value) -> strata_promql::histogram::FloatHistogram {
    let Value::Vector(v) = v else {
        panic!("expected vector, got {v:?}")
    };
    assert_eq!(v.len(), 1, "{v:?}");
    (**v[0].h.as_ref().expect("histogram sample")).clone()
}

#[test]
fn trim_operators_cut_histograms() {
    let e = Engine::new(EngineOptions::default());
    let src = trim_source();
    // Linear interpolation inside (10,15]: 3/5 of its 4 observations stay.
    let r = e.instant_query(&src, "h </ 13", 60_000).expect("query");
    let h = one_histogram(&r.value);
    assert_eq!(h.positive_buckets, vec![1.0, 6.0, 2.4]);
    assert!((h.count - 9.4).abs() < 1e-9);
    assert!((h.sum - 75.1).abs() < 1e-9, "{}", h.sum);
    let Value::Vector(v) = &r.value else {
        unreachable!()
    };
    // Like a comparison, a trim keeps the metric name.
    assert_eq!(v[0].metric.get("__name__"), "h");

    // The cut can come from another expression and be matched with `on`.
    let r = e
        .instant_query(&src, "h >/ on(a) (m * 0 + 15)", 60_000)
        .expect("query");
    let h = one_histogram(&r.value);
    assert_eq!(h.positive_buckets, vec![3.0, 1.0]);
    assert!((h.count - 4.0).abs() < 1e-9);

    // Same precedence as comparisons: `h </ 10 + 3` cuts at 13.
    let r = e.instant_query(&src, "h </ 10 + 3", 60_000).expect("query");
    assert!((one_histogram(&r.value).count - 9.4).abs() < 1e-9);

    // Range queries evaluate the trim at every step.
    let r = e
        .range_query(&src, "histogram_count(h </ 13)", 0, 540_000, 60_000)
        .expect("range query");
    let Value::Matrix(m) = r.value else {
        panic!("expected matrix")
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].floats.len(), 10);
    assert!(m[0].floats.iter().all(|p| (p.f - 9.4).abs() < 1e-9));
}

#[test]
fn trim_of_floats_yields_nothing_with_an_info() {
    let e = Engine::new(EngineOptions::default());
    let r = e
        .instant_query(&trim_source(), "m </ 3", 60_000)
        .expect("query");
    assert_eq!(r.value, Value::Vector(vec![]));
    assert_eq!(
        r.infos,
        vec![
            "PromQL info: incompatible sample types encountered for binary operator \"</\": float </ float"
                .to_string()
        ]
    );
    // A float on the left of a histogram does not combine either.
    let r = e
        .instant_query(&trim_source(), "3 >/ h", 60_000)
        .expect("query");
    assert_eq!(r.value, Value::Vector(vec![]));
    assert_eq!(r.infos.len(), 1, "{:?}", r.infos);
    assert!(r.infos[0].contains("float >/ histogram"), "{:?}", r.infos);
}

#[test]
fn invalid_trims_are_reported() {
    let e = Engine::new(EngineOptions::default());
    let src = trim_source();
    let err = e.instant_query(&src, "1 </ 2", 0).expect_err("scalars");
    assert_eq!(err.error_type(), ErrorType::Execution);
    assert_eq!(
        err.to_string(),
        "operator \"</\" not allowed for Scalar operations"
    );
    for q in [
        "h </ bool 2",
        "h </",
        "h >/ on(a) 2",
        "h </ on(__strata_trim__) m",
    ] {
        let err = e.instant_query(&src, q, 0).expect_err(q);
        assert_eq!(err.error_type(), ErrorType::BadData, "{q}");
        assert!(!err.to_string().contains("group_left"), "{q}: {err}");
    }
}

#[test]
fn format_query_keeps_trim_operators() {
    let expr = strata_promql::parse("sum by (a) (h </ on(a) group_left m) >/ 0").expect("parse");
    assert_eq!(
        strata_promql::format_query(&expr),
        "sum by (a) (h </ on (a) group_left () m) >/ 0"
    );
}

/// A source that records what the engine asks of it.
struct Recording {
    inner: MemorySource,
    asked: std::sync::Mutex<Vec<(String, i64, i64)>>,
}

impl strata_promql::SeriesSource for Recording {
    fn select(
        &self,
        matchers: &[strata_promql::Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<strata_promql::RawSeries>, strata_promql::SourceError> {
        let names: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
        self.asked
            .lock()
            .expect("lock")
            .push((names.join(","), start_ms, end_ms));
        self.inner.select(matchers, start_ms, end_ms)
    }
}

/// Anchored and smoothed selectors read one lookback delta (5m) further back, smoothed ones
/// also one further ahead; plain selectors read what they always did. The modifier's mark
/// never reaches the source as a matcher.
#[test]
fn extended_range_selectors_widen_only_their_own_selection() {
    let e = Engine::new(EngineOptions::default());
    let t = 600_000;
    let cases = [
        ("rate(m[2m])", t - 120_000 + 1, t),
        ("rate(m[2m] anchored)", t - 420_000 + 1, t),
        ("rate(m[2m] smoothed)", t - 420_000 + 1, t + 300_000),
        (
            "rate(m[2m] offset 1m anchored)",
            t - 480_000 + 1,
            t - 60_000,
        ),
        ("m", t - 300_000 + 1, t),
        ("m anchored", t - 300_000 + 1, t),
        ("m smoothed", t - 300_000 + 1, t + 300_000),
    ];
    for (q, start, end) in cases {
        let src = Recording {
            inner: source(),
            asked: Default::default(),
        };
        e.instant_query(&src, q, t).expect(q);
        let asked = src.asked.into_inner().expect("lock");
        assert_eq!(
            asked,
            vec![("__name__=\"m\"".to_string(), start, end)],
            "{q}"
        );
    }
}

/// A range query of `increase(...[2m] anchored)` over a counter growing by 1 a minute: every
/// step sees exactly the 2 it grew by, where the plain form extrapolates.
#[test]
fn anchored_increase_in_a_range_query() {
    let e = Engine::new(EngineOptions::default());
    let r = e
        .range_query(
            &source(),
            "increase(m[2m] anchored)",
            150_000,
            510_000,
            60_000,
        )
        .expect("evaluates");
    let Value::Matrix(m) = r.value else {
        panic!("not a matrix: {:?}", r.value)
    };
    assert_eq!(m.len(), 1);
    let got: Vec<(i64, f64)> = m[0].floats.iter().map(|p| (p.t, p.f)).collect();
    // At 150s the range (30s, 150s] holds 60s and 120s; the anchor is the sample at 0.
    assert_eq!(
        got,
        vec![
            (150_000, 2.0),
            (210_000, 2.0),
            (270_000, 2.0),
            (330_000, 2.0),
            (390_000, 2.0),
            (450_000, 2.0),
            (510_000, 2.0),
        ]
    );
    assert_eq!(m[0].metric, Labels::from_pairs([("a", "1")]));
}
