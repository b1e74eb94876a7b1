//! The public API as the HTTP layer uses it: stats, JSON shape, error
//! classes, the selection handed to sources, limits and the deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::time::Duration;

use strata_logql::{
    Direction, Engine, Entry, Error, ErrorClass, Limits, LineFilterOp, LogSource, MemorySource,
    QueryResult, Selection, SourceError, Stream, parse,
};

fn src() -> MemorySource {
    MemorySource::new(vec![Stream {
        labels: vec![("app".into(), "a".into())],
        entries: vec![
            Entry::new(1_000_000_000, "hello world"),
            Entry::new(2_000_000_000, "goodbye").with_metadata(vec![("k".into(), "vv".into())]),
            Entry::new(3_000_000_000, "hello again"),
        ],
    }])
}

#[test]
fn stats_count_what_was_read() {
    let e = Engine::new(Limits::default());
    let q = parse("{app=\"a\"} |= \"hello\"").unwrap();
    let (res, stats) = e
        .query_range_with_stats(
            &src(),
            &q,
            0,
            10_000_000_000,
            0,
            None,
            100,
            Direction::Forward,
        )
        .unwrap();
    assert_eq!(stats.lines_processed, 3);
    assert_eq!(stats.bytes_processed, (11 + 7 + 3 + 11) as u64);
    assert_eq!(stats.metadata_bytes_processed, 3);
    assert_eq!(stats.post_filter_lines, 2);
    assert_eq!(stats.entries_returned, 2);
    let json = res.to_loki_json(&stats);
    assert_eq!(json["resultType"], "streams");
    assert_eq!(json["stats"]["summary"]["totalLinesProcessed"], 3);
    assert_eq!(json["stats"]["summary"]["totalBytesProcessed"], 32);
    assert_eq!(
        json["result"][0]["values"][0],
        serde_json::json!(["1000000000", "hello world"])
    );
}

#[test]
fn scalar_and_vector_json() {
    let e = Engine::new(Limits::default());
    let s = e
        .query_instant(
            &src(),
            &parse("1 / 4").unwrap(),
            1_500_000_000,
            100,
            Direction::Backward,
        )
        .unwrap();
    assert_eq!(
        s,
        QueryResult::Scalar {
            ts_ns: 1_500_000_000,
            value: 0.25
        }
    );
    let j = s.to_loki_json(&Default::default());
    assert_eq!(j["resultType"], "scalar");
    assert_eq!(j["result"], serde_json::json!([1.5, "0.25"]));
}

/// `(start, end, hints, limit)` of one `select` call.
type Seen = (
    i64,
    i64,
    Vec<(LineFilterOp, String)>,
    Option<(usize, Direction)>,
);

struct Recording {
    seen: RefCell<Vec<Seen>>,
    fail: Option<SourceError>,
}

impl LogSource for Recording {
    fn select(&self, sel: &Selection<'_>) -> Result<Vec<Stream>, SourceError> {
        self.seen.borrow_mut().push((
            sel.start_ns,
            sel.end_ns,
            sel.line_filters
                .iter()
                .map(|f| (f.op, f.pattern.clone()))
                .collect(),
            sel.limit,
        ));
        match &self.fail {
            Some(e) => Err(e.clone()),
            None => Ok(Vec::new()),
        }
    }
}

#[test]
fn sources_get_the_window_and_leading_filters() {
    let rec = Recording {
        seen: RefCell::new(Vec::new()),
        fail: None,
    };
    let e = Engine::new(Limits::default());
    let q = parse(
        "sum(count_over_time({app=\"a\"} |= \"x\" |~ \"(?i)y\" | json |= \"z\" [1m] offset 30s))",
    )
    .unwrap();
    e.query_range(
        &rec,
        &q,
        120_000_000_000,
        180_000_000_000,
        60_000_000_000,
        None,
        10,
        Direction::Backward,
    )
    .unwrap();
    let seen = rec.seen.borrow();
    // Steps 120s..180s, windows (t-30s-60s, t-30s]: read [30s+1ns, 150s+1ns).
    assert_eq!(seen[0].0, 30_000_000_001);
    assert_eq!(seen[0].1, 150_000_000_001);
    assert_eq!(
        seen[0].2,
        vec![
            (LineFilterOp::Contains, "x".to_string()),
            (LineFilterOp::ContainsCi, "y".to_string())
        ]
    );
}

#[test]
fn error_classes_map_to_loki_statuses() {
    let e = Engine::new(Limits::default());
    let q = parse("{app=\"a\"}").unwrap();
    for (fail, class, status) in [
        (
            SourceError::Limit("too much".into()),
            ErrorClass::Limit,
            400,
        ),
        (
            SourceError::Failed("disk".into()),
            ErrorClass::Internal,
            500,
        ),
    ] {
        let rec = Recording {
            seen: RefCell::new(Vec::new()),
            fail: Some(fail),
        };
        let err = e
            .query_range(&rec, &q, 0, 10, 1, None, 10, Direction::Backward)
            .unwrap_err();
        assert_eq!(err.class(), class);
        assert_eq!(err.http_status(), status);
    }
    let err = parse("{app=").unwrap_err();
    assert_eq!(Error::from(err).http_status(), 400);
}

#[test]
fn deadline_is_enforced() {
    let e = Engine::new(Limits {
        timeout: Some(Duration::ZERO),
        ..Limits::default()
    });
    let q = parse("count_over_time({app=\"a\"}[1m])").unwrap();
    let err = e
        .query_range(
            &src(),
            &q,
            0,
            60_000_000_000,
            1_000_000_000,
            None,
            10,
            Direction::Backward,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Timeout));
    assert_eq!(err.http_status(), 504);
}

#[test]
fn end_before_start_is_rejected() {
    let e = Engine::new(Limits::default());
    let q = parse("{app=\"a\"}").unwrap();
    let err = e
        .query_range(&src(), &q, 10, 5, 1, None, 10, Direction::Backward)
        .unwrap_err();
    assert_eq!(err.http_status(), 400);
}

#[test]
fn parsed_queries_and_engines_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<strata_logql::Expr>();
    send_sync::<Engine>();
    send_sync::<QueryResult>();
    send_sync::<Error>();
}

#[test]
fn sources_may_stop_early_only_when_filters_are_the_whole_pipeline() {
    let e = Engine::new(Limits::default());
    let cases = [
        (
            "{app=\"a\"} |= \"x\" !~ \"y\"",
            None,
            Some((10, Direction::Backward)),
        ),
        ("{app=\"a\"}", None, Some((10, Direction::Backward))),
        ("{app=\"a\"} |= \"x\"", Some(1_000_000_000), None),
        ("{app=\"a\"} |= \"x\" | json", None, None),
        ("{app=\"a\"} |= \"x\" or \"z\"", None, None),
    ];
    for (q, interval, want) in cases {
        let rec = Recording {
            seen: RefCell::new(Vec::new()),
            fail: None,
        };
        let expr = parse(q).unwrap();
        e.query_range(&rec, &expr, 0, 10, 0, interval, 10, Direction::Backward)
            .unwrap();
        assert_eq!(rec.seen.borrow()[0].3, want, "{q}");
    }
    let rec = Recording {
        seen: RefCell::new(Vec::new()),
        fail: None,
    };
    let expr = parse("count_over_time({app=\"a\"} |= \"x\" [1m])").unwrap();
    e.query_instant(&rec, &expr, 60_000_000_000, 10, Direction::Backward)
        .unwrap();
    assert_eq!(rec.seen.borrow()[0].3, None);
}

#[test]
fn limit_selection_over_many_lines_matches_a_full_sort() {
    // Three streams, 30k lines, colliding timestamps: the engine drops
    // lines while scanning; the result must equal sorting everything.
    let mut streams = Vec::new();
    let mut all: Vec<(i64, String)> = Vec::new();
    for s in 0..3 {
        let mut entries = Vec::new();
        for i in 0..10_000i64 {
            let ts = (i * 7919 + s * 13) % 20_000;
            let line = format!("s{s} i{i}");
            all.push((ts, line.clone()));
            entries.push(Entry::new(ts, line));
        }
        streams.push(Stream {
            labels: vec![("app".into(), "a".into()), ("s".into(), s.to_string())],
            entries,
        });
    }
    let src = MemorySource::new(streams);
    let e = Engine::new(Limits::default());
    let q = parse("{app=\"a\"}").unwrap();
    for (dir, limit) in [(Direction::Backward, 7), (Direction::Forward, 5000)] {
        let QueryResult::Streams(got) = e
            .query_range(&src, &q, 0, 20_000, 0, None, limit, dir)
            .unwrap()
        else {
            panic!("streams expected")
        };
        let mut got_ts: Vec<i64> = got
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.ts_ns))
            .collect();
        got_ts.sort_unstable();
        let mut want: Vec<i64> = all.iter().map(|(t, _)| *t).collect();
        want.sort_unstable();
        let want: Vec<i64> = match dir {
            Direction::Backward => want[want.len() - limit..].to_vec(),
            Direction::Forward => want[..limit].to_vec(),
        };
        assert_eq!(got_ts, want, "{dir:?} {limit}");
        for s in &got {
            let ts: Vec<i64> = s.entries.iter().map(|e| e.ts_ns).collect();
            let mut sorted = ts.clone();
            sorted.sort_unstable();
            if dir == Direction::Backward {
                sorted.reverse();
            }
            assert_eq!(ts, sorted, "entries in query order");
        }
    }
}

/// A log query whose parser gives every line its own label set keeps only the output
/// streams of the lines it may still return, and still returns the best lines.
#[test]
fn unique_parsed_labels_per_line_stay_bounded_and_correct() {
    let n = 60_000i64;
    let entries: Vec<Entry> = (0..n)
        .map(|i| {
            Entry::new(
                (i + 1) * 1_000_000,
                format!(
                    r#"{{"id":"{i}","status":{}}}"#,
                    if i % 3 == 0 { 500 } else { 200 }
                ),
            )
        })
        .collect();
    let src = MemorySource::new(vec![Stream {
        labels: vec![("app".into(), "a".into())],
        entries,
    }]);
    let e = Engine::new(Limits::default());
    for (dir, want) in [
        (Direction::Backward, vec![59_997i64, 59_994, 59_991]),
        (Direction::Forward, vec![0, 3, 6]),
    ] {
        let q = parse(r#"{app="a"} | json | status >= 500"#).unwrap();
        let res = e
            .query_range(&src, &q, 0, (n + 1) * 1_000_000, 0, None, 3, dir)
            .unwrap();
        let QueryResult::Streams(streams) = res else {
            panic!("not streams")
        };
        let mut got: Vec<(i64, String)> = streams
            .iter()
            .map(|s| {
                assert_eq!(s.entries.len(), 1);
                let id = s.labels.iter().find(|(k, _)| k == "id").unwrap().1.clone();
                (s.entries[0].ts_ns, id)
            })
            .collect();
        got.sort();
        let mut want: Vec<(i64, String)> = want
            .into_iter()
            .map(|i| ((i + 1) * 1_000_000, i.to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{dir:?}");
    }
}
