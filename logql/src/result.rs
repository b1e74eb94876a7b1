//! Query results and their Loki JSON encoding (the `data` object).

use serde_json::{Map, Value, json};

use crate::model::{Direction, Stats, Stream};

/// One series of a range query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    /// `(timestamp ns, value)`, ascending.
    pub points: Vec<(i64, f64)>,
}

/// One sample of an instant query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub ts_ns: i64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Streams(Vec<Stream>),
    Matrix(Vec<Series>),
    Vector(Vec<Sample>),
    Scalar { ts_ns: i64, value: f64 },
}

/// Formats like Go's `strconv.FormatFloat(f, 'f', -1, 64)` as Loki's sample values.
pub fn format_value(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        let a = f.abs();
        if a != 0.0 && !(1e-6..1e21).contains(&a) {
            // Prometheus's jsonutil switches to exponent form outside this range.
            let s = format!("{f:e}");
            if let Some((m, e)) = s.split_once('e') {
                let (sign, d) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                return format!("{m}e{sign}{d:0>2}");
            }
            return s;
        }
        format!("{f}")
    }
}

/// A timestamp as Loki writes it in matrix/vector values: seconds with
/// millisecond precision, as a JSON number.
pub fn ts_json(ts_ns: i64) -> Value {
    let ms = ts_ns.div_euclid(1_000_000);
    if ms % 1000 == 0 {
        Value::from(ms / 1000)
    } else {
        serde_json::Number::from_f64(ms as f64 / 1000.0)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// A stream as Loki writes it in `streams` results and tail frames:
/// `{"stream": {labels}, "values": [["<ns>", "line"], ...]}`.
pub fn stream_json(s: &Stream) -> Value {
    json!({
        "stream": labels_obj(&s.labels),
        "values": s.entries.iter().map(|e| json!([e.ts_ns.to_string(), e.line])).collect::<Vec<_>>(),
    })
}

fn labels_obj(labels: &[(String, String)]) -> Value {
    let mut m = Map::new();
    for (n, v) in labels {
        m.insert(n.clone(), Value::String(v.clone()));
    }
    Value::Object(m)
}

impl QueryResult {
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryResult::Streams(_) => "streams",
            QueryResult::Matrix(_) => "matrix",
            QueryResult::Vector(_) => "vector",
            QueryResult::Scalar { .. } => "scalar",
        }
    }

    /// Loki's `data` object: `{"resultType", "result", "stats"}`.
    pub fn to_loki_json(&self, stats: &Stats) -> Value {
        self.to_loki_json_opts(stats, false)
    }

    /// Like [`Self::to_loki_json`]; with `categorize_labels` (Loki's
    /// `X-Loki-Response-Encoding-Flags: categorize-labels`) streams carry only
    /// their stream labels and each value gets a third element
    /// `{"structuredMetadata": {...}, "parsed": {...}}` when non-empty.
    pub fn to_loki_json_opts(&self, stats: &Stats, categorize_labels: bool) -> Value {
        let mut data = json!({
            "resultType": self.result_type(),
            "result": self.result_json_in(categorize_labels, stats.direction.unwrap_or_default()),
            "stats": stats.to_json(),
        });
        if categorize_labels && let Value::Object(m) = &mut data {
            m.insert("encodingFlags".into(), json!(["categorize-labels"]));
        }
        data
    }

    /// Just the `result` array (or scalar pair).
    pub fn result_json(&self, categorize_labels: bool) -> Value {
        self.result_json_in(categorize_labels, Direction::Backward)
    }

    /// [`Self::result_json`] for a log query run in `direction` (the order
    /// merged streams are put back in under categorised encoding).
    pub fn result_json_in(&self, categorize_labels: bool, direction: Direction) -> Value {
        match self {
            QueryResult::Streams(streams) => {
                if categorize_labels {
                    categorized(streams, direction)
                } else {
                    Value::Array(streams.iter().map(stream_json).collect())
                }
            }
            QueryResult::Matrix(series) => Value::Array(
                series
                    .iter()
                    .map(|s| {
                        json!({
                            "metric": labels_obj(&s.labels),
                            "values": s.points.iter().map(|(t, v)| json!([ts_json(*t), format_value(*v)])).collect::<Vec<_>>(),
                        })
                    })
                    .collect(),
            ),
            QueryResult::Vector(samples) => Value::Array(
                samples
                    .iter()
                    .map(|s| {
                        json!({
                            "metric": labels_obj(&s.labels),
                            "value": [ts_json(s.ts_ns), format_value(s.value)],
                        })
                    })
                    .collect(),
            ),
            QueryResult::Scalar { ts_ns, value } => json!([ts_json(*ts_ns), format_value(*value)]),
        }
    }
}

fn categorized(streams: &[Stream], direction: Direction) -> Value {
    // Regroup by stream labels only (labels minus metadata and parsed ones).
    let mut groups: Vec<(crate::model::LabelPairs, Vec<(i64, Value)>)> = Vec::new();
    for s in streams {
        for e in &s.entries {
            let base: Vec<(String, String)> = s
                .labels
                .iter()
                .filter(|(n, _)| {
                    !e.metadata.iter().any(|(m, _)| m == n) && !e.parsed.iter().any(|(p, _)| p == n)
                })
                .cloned()
                .collect();
            let mut v = vec![
                Value::String(e.ts_ns.to_string()),
                Value::String(e.line.clone()),
            ];
            if !e.metadata.is_empty() || !e.parsed.is_empty() {
                let mut extra = Map::new();
                if !e.metadata.is_empty() {
                    extra.insert("structuredMetadata".into(), labels_obj(&e.metadata));
                }
                if !e.parsed.is_empty() {
                    extra.insert("parsed".into(), labels_obj(&e.parsed));
                }
                v.push(Value::Object(extra));
            }
            match groups.iter_mut().find(|g| g.0 == base) {
                Some(g) => g.1.push((e.ts_ns, Value::Array(v))),
                None => groups.push((base, vec![(e.ts_ns, Value::Array(v))])),
            }
        }
    }
    groups.sort_by_key(|a| crate::model::labels_string(&a.0));
    Value::Array(
        groups
            .into_iter()
            .map(|(l, mut vals)| {
                // Merged streams: restore the query's order (stable for ties).
                match direction {
                    Direction::Forward => vals.sort_by_key(|v| v.0),
                    Direction::Backward => vals.sort_by_key(|v| std::cmp::Reverse(v.0)),
                }
                let vals: Vec<Value> = vals.into_iter().map(|v| v.1).collect();
                json!({"stream": labels_obj(&l), "values": vals})
            })
            .collect(),
    )
}

impl Stats {
    /// Loki's `stats` object (the `summary` part with the figures we track).
    pub fn to_json(&self) -> Value {
        let secs = self.exec_time_secs.max(1e-9);
        json!({
            "summary": {
                "bytesProcessedPerSecond": (self.bytes_processed as f64 / secs) as u64,
                "linesProcessedPerSecond": (self.lines_processed as f64 / secs) as u64,
                "totalBytesProcessed": self.bytes_processed,
                "totalLinesProcessed": self.lines_processed,
                "execTime": self.exec_time_secs,
                "queueTime": 0,
                "subqueries": 0,
                "totalEntriesReturned": self.entries_returned,
                "splits": 0,
                "shards": 0,
                "totalPostFilterLines": self.post_filter_lines,
                "totalStructuredMetadataBytesProcessed": self.metadata_bytes_processed,
            },
            "querier": {"store": {"totalChunksRef": 0, "totalChunksDownloaded": 0}},
            "ingester": {"totalReached": 0},
        })
    }
}
