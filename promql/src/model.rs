//! The engine's data model: label sets, samples, series, and the values a
//! query can produce.
//!
//! Invariants: a [`Labels`] is always sorted by name and holds each name at
//! most once (`__name__` included); series points are sorted by time.

use std::fmt;
use std::sync::Arc;

use crate::histogram::FloatHistogram;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Bit pattern of Prometheus's staleness marker (a signalling NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `f` is the staleness marker (not merely any NaN).
pub fn is_stale_nan(f: f64) -> bool {
    f.to_bits() == STALE_NAN_BITS
}

/// A sorted set of label name/value pairs.
///
/// Shared behind an `Arc`: the evaluator hands the same label set to every step of a
/// series (aggregations, binary operators), so a clone must not copy the strings.
/// Mutation copies on write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<Vec<(String, String)>>);

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Labels(Arc::default())
    }

    /// Builds a label set from pairs in any order; empty values are dropped
    /// and a later duplicate name wins.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // Stored label sets come sorted, unique and without empty values: taken as they are.
        if pairs.iter().all(|p| !p.1.is_empty()) && pairs.is_sorted_by(|a, b| a.0 < b.0) {
            return Labels(Arc::new(pairs));
        }
        let mut out = Labels::empty();
        for (k, v) in pairs {
            out.set(&k, &v);
        }
        out
    }

    /// The pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, or "" when absent (Prometheus semantics).
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) => self.0[i].1.as_str(),
            Err(_) => "",
        }
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .is_ok()
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) => {
                let v = Arc::make_mut(&mut self.0);
                if value.is_empty() {
                    v.remove(i);
                } else if let Some(p) = v.get_mut(i) {
                    p.1 = value.to_string();
                }
            }
            Err(i) => {
                if !value.is_empty() {
                    Arc::make_mut(&mut self.0).insert(i, (name.to_string(), value.to_string()));
                }
            }
        }
    }

    /// Removes `name` if present.
    pub fn del(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Arc::make_mut(&mut self.0).remove(i);
        }
    }

    /// A copy without the metric name.
    pub fn without_name(&self) -> Labels {
        let mut l = self.clone();
        l.del(METRIC_NAME);
        l
    }

    /// Keeps only the given names.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|(k, _)| names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        ))
    }

    /// Drops the given names.
    pub fn drop_names(&self, names: &[String]) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|(k, _)| !names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        ))
    }

    /// The labels used for vector matching: with `on`, only `names`;
    /// otherwise all but `names` and the metric name.
    pub fn match_labels(&self, on: bool, names: &[String]) -> Labels {
        if on {
            self.keep(names)
        } else {
            Labels(Arc::new(
                self.0
                    .iter()
                    .filter(|(k, _)| k != METRIC_NAME && !names.iter().any(|n| n == k))
                    .cloned()
                    .collect(),
            ))
        }
    }
}

impl fmt::Display for Labels {
    /// Formats like Prometheus's `Labels.String()`: `{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        write!(f, "}}")
    }
}

/// One stored sample value: a float or a native histogram.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleValue {
    /// A float sample (may be the staleness marker).
    Float(f64),
    /// A native histogram sample.
    Histogram(Arc<FloatHistogram>),
}

/// A timestamped stored sample.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSample {
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The value.
    pub value: SampleValue,
}

/// A stored series as returned by a [`crate::SeriesSource`].
///
/// Floats and histograms are kept apart, each as the engine's points: a float sample takes
/// 16 bytes rather than an enum's 24, and range functions read float windows without
/// converting. No timestamp appears in both lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Float samples sorted by time, staleness markers included.
    pub floats: Vec<FPoint>,
    /// Histogram samples sorted by time, staleness markers included.
    pub histograms: Vec<HPoint>,
}

impl RawSeries {
    /// A series from samples sorted by time with one sample per timestamp.
    pub fn from_samples(labels: Labels, samples: impl IntoIterator<Item = RawSample>) -> Self {
        let mut s = RawSeries {
            labels,
            ..Default::default()
        };
        for x in samples {
            match x.value {
                SampleValue::Float(f) => s.floats.push(FPoint { t: x.t, f }),
                SampleValue::Histogram(h) => s.histograms.push(HPoint { t: x.t, h }),
            }
        }
        s
    }

    /// How many samples the series holds.
    pub fn len(&self) -> usize {
        self.floats.len() + self.histograms.len()
    }

    /// Whether the series holds no samples.
    pub fn is_empty(&self) -> bool {
        self.floats.is_empty() && self.histograms.is_empty()
    }

    /// The latest sample at or before `t`, of either kind.
    pub fn last_at(&self, t: i64) -> Option<(i64, SampleValue)> {
        let fi = self.floats.partition_point(|p| p.t <= t);
        let hi = self.histograms.partition_point(|p| p.t <= t);
        let f = fi.checked_sub(1).and_then(|i| self.floats.get(i));
        let h = hi.checked_sub(1).and_then(|i| self.histograms.get(i));
        match (f, h) {
            (Some(f), Some(h)) if h.t > f.t => Some((h.t, SampleValue::Histogram(h.h.clone()))),
            (Some(f), _) => Some((f.t, SampleValue::Float(f.f))),
            (None, Some(h)) => Some((h.t, SampleValue::Histogram(h.h.clone()))),
            (None, None) => None,
        }
    }
}

/// A float point of an evaluated series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FPoint {
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The value.
    pub f: f64,
}

/// A histogram point of an evaluated series.
#[derive(Clone, Debug, PartialEq)]
pub struct HPoint {
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The histogram.
    pub h: Arc<FloatHistogram>,
}

/// An evaluated series: labels plus float and histogram points.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The labels.
    pub metric: Labels,
    /// Float points sorted by time.
    pub floats: Vec<FPoint>,
    /// Histogram points sorted by time.
    pub histograms: Vec<HPoint>,
    /// Whether the metric name is to be dropped once evaluation ends.
    pub drop_name: bool,
}

/// An instant-vector element.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The labels.
    pub metric: Labels,
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The float value (ignored when `h` is set).
    pub f: f64,
    /// The histogram value, if this is a histogram sample.
    pub h: Option<Arc<FloatHistogram>>,
    /// Whether the metric name is to be dropped once evaluation ends.
    pub drop_name: bool,
}

impl Sample {
    /// A float sample.
    pub fn float(metric: Labels, f: f64) -> Self {
        Sample {
            metric,
            t: 0,
            f,
            h: None,
            drop_name: false,
        }
    }
}

/// A set of samples at one time.
pub type Vector = Vec<Sample>;
/// A set of series.
pub type Matrix = Vec<Series>;

/// A query result value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar at time `t`.
    Scalar {
        /// Milliseconds since the epoch.
        t: i64,
        /// The value.
        v: f64,
    },
    /// A string at time `t`.
    String {
        /// Milliseconds since the epoch.
        t: i64,
        /// The value.
        v: String,
    },
    /// An instant vector.
    Vector(Vector),
    /// A range vector / range query result, sorted by labels.
    Matrix(Matrix),
}
