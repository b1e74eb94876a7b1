//! The data-source boundary: what the engine asks storage for.
//!
//! The engine calls [`SeriesSource::select`] once per selector for the whole
//! time range a query needs (range queries are not re-selected per step),
//! then evaluates every step over the returned samples. Selectors under an
//! aggregation that can be folded series by series (`sum by (..) (rate(x[5m]))`)
//! are read through [`SeriesSource::select_chunked`] instead: the engine
//! evaluates each chunk of series and drops its samples before the next one.

use std::fmt;

use regex::Regex;

use crate::error::SourceError;
use crate::model::{Labels, RawSample, RawSeries};

/// How a matcher compares a label value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    Regex,
    /// `!~` (fully anchored)
    NotRegex,
}

/// A label matcher. A missing label matches as the empty string.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub kind: MatchKind,
    /// Value or pattern as written.
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.kind == o.kind && self.value == o.value
    }
}

impl Matcher {
    /// Creates a matcher; regex kinds compile `value` fully anchored.
    pub fn new(kind: MatchKind, name: &str, value: &str) -> Result<Self, regex::Error> {
        let re = match kind {
            MatchKind::Regex | MatchKind::NotRegex => Some(Regex::new(&format!("^(?s:{value})$"))?),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            kind,
            value: value.to_string(),
            re,
        })
    }

    /// Builds from a parser matcher, reusing its compiled regex.
    pub(crate) fn from_parser(m: &promql_parser::label::Matcher) -> Self {
        use promql_parser::label::MatchOp;
        let (kind, re) = match &m.op {
            MatchOp::Equal => (MatchKind::Equal, None),
            MatchOp::NotEqual => (MatchKind::NotEqual, None),
            MatchOp::Re(r) => (MatchKind::Regex, Some(r.clone())),
            MatchOp::NotRe(r) => (MatchKind::NotRegex, Some(r.clone())),
        };
        Matcher {
            name: m.name.clone(),
            kind,
            value: m.value.clone(),
            re,
        }
    }

    /// Whether `value` satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.kind {
            MatchKind::Equal => self.value == value,
            MatchKind::NotEqual => self.value != value,
            MatchKind::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchKind::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a label set satisfies this matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.kind {
            MatchKind::Equal => "=",
            MatchKind::NotEqual => "!=",
            MatchKind::Regex => "=~",
            MatchKind::NotRegex => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

/// Where the engine reads series from. Implemented by storage.
pub trait SeriesSource {
    /// Every series matching all `matchers`, with its samples whose
    /// timestamps lie in `[start_ms, end_ms]`, sorted by time. Staleness
    /// markers are returned as ordinary samples. Series without samples in
    /// the range may be omitted.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RawSeries>, SourceError>;

    /// The same selection as [`SeriesSource::select`], handed over in chunks of
    /// series in label order. The default hands over the whole selection as one chunk.
    fn select_chunked<'a>(
        &'a self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Box<dyn SeriesChunks + 'a>, SourceError> {
        Ok(Box::new(WholeSelection::new(
            self.select(matchers, start_ms, end_ms)?,
            usize::MAX,
        )))
    }
}

/// A selection read chunk by chunk (see [`SeriesSource::select_chunked`]).
pub trait SeriesChunks {
    /// The labels of every series the selection may hand over, sorted (series without
    /// samples in the time range may be listed and then not handed over).
    fn labels(&self) -> &[Labels];

    /// The next series, sorted by labels and after every series of earlier chunks; `None`
    /// once all are handed over.
    fn next_chunk(&mut self) -> Result<Option<Vec<RawSeries>>, SourceError>;
}

/// A selection already in memory, handed over `chunk` series at a time.
pub struct WholeSelection {
    labels: Vec<Labels>,
    rest: std::vec::IntoIter<RawSeries>,
    chunk: usize,
}

impl WholeSelection {
    /// Chunks of `chunk` series (at least one) of `series`, which must be sorted by labels.
    pub fn new(series: Vec<RawSeries>, chunk: usize) -> Self {
        WholeSelection {
            labels: series.iter().map(|s| s.labels.clone()).collect(),
            rest: series.into_iter(),
            chunk: chunk.max(1),
        }
    }
}

impl SeriesChunks for WholeSelection {
    fn labels(&self) -> &[Labels] {
        &self.labels
    }

    fn next_chunk(&mut self) -> Result<Option<Vec<RawSeries>>, SourceError> {
        let next: Vec<RawSeries> = self.rest.by_ref().take(self.chunk).collect();
        Ok((!next.is_empty()).then_some(next))
    }
}

/// Series per chunk that [`MemorySource`] hands over: small, so that the conformance
/// tests evaluate chunked selections across several chunks.
const MEMORY_CHUNK: usize = 2;

/// A simple in-memory source, used by tests and the conformance runner.
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    series: Vec<(Labels, Vec<RawSample>)>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series with `labels` (created if new), keeping
    /// samples sorted by time; a later sample at the same time replaces an
    /// earlier one.
    pub fn add(&mut self, labels: Labels, samples: Vec<RawSample>) {
        let idx = match self.series.iter().position(|s| s.0 == labels) {
            Some(i) => i,
            None => {
                self.series.push((labels, Vec::new()));
                self.series.len() - 1
            }
        };
        if let Some((_, s)) = self.series.get_mut(idx) {
            for sample in samples {
                match s.binary_search_by_key(&sample.t, |x| x.t) {
                    Ok(i) => s[i] = sample,
                    Err(i) => s.insert(i, sample),
                }
            }
        }
    }

    /// Removes all data.
    pub fn clear(&mut self) {
        self.series.clear();
    }
}

impl SeriesSource for MemorySource {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RawSeries>, SourceError> {
        let mut out = Vec::new();
        for (labels, samples) in &self.series {
            if !matchers.iter().all(|m| m.matches_labels(labels)) {
                continue;
            }
            let lo = samples.partition_point(|x| x.t < start_ms);
            let hi = samples.partition_point(|x| x.t <= end_ms);
            if lo >= hi {
                continue;
            }
            out.push(RawSeries::from_samples(
                labels.clone(),
                samples[lo..hi].iter().cloned(),
            ));
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn select_chunked<'a>(
        &'a self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Box<dyn SeriesChunks + 'a>, SourceError> {
        Ok(Box::new(WholeSelection::new(
            self.select(matchers, start_ms, end_ms)?,
            MEMORY_CHUNK,
        )))
    }
}
