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
/// Mutation copies on write. The strings of a set live back to back in one buffer: a
/// query builds and frees one label set per selected series, and a set of ten pairs as
/// twenty strings was most of a broad query's allocations; one buffer is also what a
/// lookup by name reads.
#[derive(Clone, Default)]
pub struct Labels(Arc<LabelSet>);

#[derive(Default, PartialEq, Eq)]
struct LabelSet {
    /// Names and values in order: name 0, value 0, name 1, ...
    text: Box<str>,
    /// The end in `text` of each string above (`2 * len` ends).
    ends: Box<[u32]>,
}

impl LabelSet {
    /// From pairs sorted by name, each name once, no empty value. `None` when the text
    /// would exceed `u32` offsets.
    fn build<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Option<Self> {
        let bytes: usize = pairs.clone().map(|(k, v)| k.len() + v.len()).sum();
        u32::try_from(bytes).ok()?;
        let mut text = String::with_capacity(bytes);
        let mut ends = Vec::with_capacity(2 * pairs.size_hint().0);
        for (k, v) in pairs {
            text.push_str(k);
            ends.push(text.len() as u32);
            text.push_str(v);
            ends.push(text.len() as u32);
        }
        Some(LabelSet {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        })
    }

    fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// String `i` (name `i / 2` or its value).
    fn str_at(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            Some(j) => self.ends.get(j).map_or(0, |&e| e as usize),
            None => 0,
        };
        let end = self.ends.get(i).map_or(start, |&e| e as usize);
        self.text.get(start..end).unwrap_or("")
    }

    fn name(&self, i: usize) -> &str {
        self.str_at(2 * i)
    }

    fn value(&self, i: usize) -> &str {
        self.str_at(2 * i + 1)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        (0..self.len()).map(|i| (self.name(i), self.value(i)))
    }

    /// The position of `name`, or where it would go.
    fn find(&self, name: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    /// As a list of string pairs hashes (`limit_ratio` picks series by this hash).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for (k, v) in self.iter() {
            k.hash(state);
            v.hash(state);
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Pair by pair (name, then value), a prefix first: the order of the pairs as a list.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels")
            .field(&self.iter().collect::<Vec<_>>())
            .finish()
    }
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Labels(Arc::default())
    }

    /// From pairs sorted by name, each name once, without empty values.
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        match LabelSet::build(pairs) {
            Some(set) => Labels(Arc::new(set)),
            // Over 4 GiB of label text: not a label set any input can carry.
            None => Labels::empty(),
        }
    }

    /// [`Labels::from_pairs`] of a slice, without first copying the pairs into a list of
    /// their own (label sets read from storage come as slices, usually sorted).
    pub fn from_sorted_pairs(pairs: &[(&str, &str)]) -> Self {
        Labels::from_refs(pairs.iter().copied())
    }

    /// Builds a label set from pairs in any order; empty values are dropped
    /// and a later duplicate name wins.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let owned: Vec<(K, V)> = pairs.into_iter().collect();
        Labels::from_refs(owned.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }

    fn from_refs<'a>(refs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        // Stored label sets come sorted, unique and without empty values: taken as they are.
        let mut names = refs.clone().map(|p| p.0);
        let sorted = names.next().is_none_or(|first| {
            names
                .try_fold(first, |prev, n| (prev < n).then_some(n))
                .is_some()
        });
        if sorted && refs.clone().all(|p| !p.1.is_empty()) {
            return Labels::from_sorted(refs);
        }
        // Otherwise the last pair of each name decides (an empty value deletes it).
        let mut all: Vec<(&str, usize, &str)> =
            refs.enumerate().map(|(i, (k, v))| (k, i, v)).collect();
        all.sort_unstable();
        let kept: Vec<(&str, &str)> = all
            .iter()
            .enumerate()
            .filter(|(i, x)| all.get(i + 1).is_none_or(|next| next.0 != x.0))
            .map(|(_, x)| (x.0, x.2))
            .filter(|p| !p.1.is_empty())
            .collect();
        Labels::from_sorted(kept.iter().copied())
    }

    /// The pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// The value of `name`, or "" when absent (Prometheus semantics).
    pub fn get(&self, name: &str) -> &str {
        match self.0.find(name) {
            Ok(i) => self.0.value(i),
            Err(_) => "",
        }
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.0.find(name).is_ok()
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        let set = &self.0;
        *self = match set.find(name) {
            Ok(i) if value.is_empty() => Labels::from_sorted(
                set.iter()
                    .enumerate()
                    .filter(move |(j, _)| *j != i)
                    .map(|(_, p)| p),
            ),
            Ok(i) => {
                if set.value(i) == value {
                    return;
                }
                Labels::from_sorted(
                    set.iter()
                        .enumerate()
                        .map(move |(j, p)| if j == i { (p.0, value) } else { p }),
                )
            }
            Err(_) if value.is_empty() => return,
            Err(i) => Labels::from_sorted(
                set.iter()
                    .take(i)
                    .chain(std::iter::once((name, value)))
                    .chain(set.iter().skip(i)),
            ),
        };
    }

    /// Removes `name` if present.
    pub fn del(&mut self, name: &str) {
        self.set(name, "");
    }

    /// A copy without the metric name.
    pub fn without_name(&self) -> Labels {
        let mut l = self.clone();
        l.del(METRIC_NAME);
        l
    }

    /// Keeps only the given names.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels::from_sorted(self.0.iter().filter(|(k, _)| names.iter().any(|n| n == k)))
    }

    /// Drops the given names.
    pub fn drop_names(&self, names: &[String]) -> Labels {
        Labels::from_sorted(self.0.iter().filter(|(k, _)| !names.iter().any(|n| n == k)))
    }

    /// The labels used for vector matching: with `on`, only `names`;
    /// otherwise all but `names` and the metric name.
    pub fn match_labels(&self, on: bool, names: &[String]) -> Labels {
        if on {
            self.keep(names)
        } else {
            Labels::from_sorted(
                self.0
                    .iter()
                    .filter(|(k, _)| *k != METRIC_NAME && !names.iter().any(|n| n == k)),
            )
        }
    }
}

impl fmt::Display for Labels {
    /// Formats like Prometheus's `Labels.String()`: `{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, v)) in self.iter().enumerate() {
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

#[cfg(test)]
mod label_tests {
    use super::*;
    use std::hash::{DefaultHasher, Hash, Hasher};

    fn pairs(l: &Labels) -> Vec<(String, String)> {
        l.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn hash_of(x: &impl Hash) -> u64 {
        let mut h = DefaultHasher::new();
        x.hash(&mut h);
        h.finish()
    }

    #[test]
    fn label_sets_behave_as_sorted_lists_of_pairs() {
        // Any order, a later duplicate wins, an empty value deletes.
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "x"), ("b", "3"), ("c", "")]);
        assert_eq!(
            pairs(&l),
            vec![("a".into(), "1".into()), ("b".into(), "3".into())]
        );
        assert_eq!(
            (l.get("a"), l.get("b"), l.get("c"), l.get("")),
            ("1", "3", "", "")
        );
        assert!(l.has("b") && !l.has("c"));
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);

        let mut m = l.clone();
        m.set("__name__", "up");
        m.set("b", "4");
        m.set("z", "9");
        m.set("nope", "");
        assert_eq!(m.to_string(), r#"{__name__="up", a="1", b="4", z="9"}"#);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#, "copy on write");
        assert_eq!(m.without_name().to_string(), r#"{a="1", b="4", z="9"}"#);
        assert_eq!(
            m.keep(&["z".into(), "a".into()]).to_string(),
            r#"{a="1", z="9"}"#
        );
        assert_eq!(
            m.drop_names(&["z".into()]).to_string(),
            r#"{__name__="up", a="1", b="4"}"#
        );
        assert_eq!(
            m.match_labels(false, &["a".into()]).to_string(),
            r#"{b="4", z="9"}"#
        );
        m.del("a");
        m.del("a");
        assert_eq!(m.len(), 3);

        // Order, equality and hash are those of the list of pairs (`limit_ratio` samples
        // series by the hash), whatever the split between names and values.
        let sets = [
            vec![],
            vec![("a", "1")],
            vec![("a", "1"), ("b", "")],
            vec![("a", "12")],
            vec![("a1", "2")],
            vec![("a", "1"), ("b", "2")],
            vec![("b", "0")],
        ];
        for x in &sets {
            for y in &sets {
                let (lx, ly) = (Labels::from_pairs(x.clone()), Labels::from_pairs(y.clone()));
                let (px, py) = (pairs(&lx), pairs(&ly));
                assert_eq!(lx.cmp(&ly), px.cmp(&py), "{x:?} vs {y:?}");
                assert_eq!(lx == ly, px == py, "{x:?} vs {y:?}");
            }
            let l = Labels::from_pairs(x.clone());
            assert_eq!(hash_of(&l), hash_of(&Arc::new(pairs(&l))), "{x:?}");
        }
        // Stored (sorted) pairs take the short way to the same set.
        for x in &sets {
            assert_eq!(
                Labels::from_sorted_pairs(x),
                Labels::from_pairs(x.clone()),
                "{x:?}"
            );
        }
        let unsorted = [("b", "1"), ("a", "2"), ("a", "")];
        assert_eq!(
            Labels::from_sorted_pairs(&unsorted).to_string(),
            r#"{b="1"}"#
        );
        assert!(Labels::empty().is_empty());
        assert_eq!(
            Labels::empty(),
            Labels::from_pairs(Vec::<(&str, &str)>::new())
        );
    }
}
