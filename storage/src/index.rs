//! Inverted label index: label name=value -> roaring bitmap of series (or log stream) ordinals.
//!
//! Each label set gets a dense `u32` ordinal on first sight so that postings are compact
//! roaring bitmaps; the ordinal maps back to the stable [`SeriesId`] and the labels.

use crate::model::{Label, Labels, SeriesId};
use regex::Regex;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};

/// Postings list: the ordinals of the label sets that carry one label pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Postings(pub RoaringBitmap);

/// How a matcher compares a label's value.
#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(Regex),
    NotRegex(Regex),
}

/// A label matcher; regexes must be anchored by the caller (`^(?:...)$`).
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    pub name: String,
    pub op: MatchOp,
}

impl LabelMatcher {
    pub fn matches(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Equal(v) => value == v,
            MatchOp::NotEqual(v) => value != v,
            MatchOp::Regex(r) => r.is_match(value),
            MatchOp::NotRegex(r) => !r.is_match(value),
        }
    }
}

/// What [`LabelIndex::each_sorted`] calls with each series: its id and (name, value)
/// pairs in label order.
pub type SeriesVisitor<'a> = dyn FnMut(SeriesId, &[(&str, &str)]) + 'a;

/// The index of one tenant's series (or log streams).
///
/// Every distinct label pair is stored once (its name and value strings, and its
/// postings); a label set is the list of its pairs' numbers. With node-exporter-like
/// series (ten labels, a few thousand distinct pairs among tens of thousands of series)
/// that is about 60 bytes a series instead of the ~1 KiB that owned strings per set take.
#[derive(Debug, Default)]
pub struct LabelIndex {
    ordinals: HashMap<SeriesId, u32>,
    ids: Vec<SeriesId>,
    /// Set `o`'s pairs are `set_pairs[set_starts[o]..set_starts[o + 1]]`, in label order.
    set_starts: Vec<u32>,
    set_pairs: Vec<u32>,
    /// Pair number -> (name, value, postings).
    pairs: Vec<Pair>,
    /// name -> value -> pair number.
    by_name: BTreeMap<String, BTreeMap<String, u32>>,
    all: RoaringBitmap,
}

#[derive(Debug)]
struct Pair {
    name: Box<str>,
    value: Box<str>,
    postings: Postings,
}

impl LabelIndex {
    /// Adds a label set if it is new.
    pub fn insert(&mut self, id: SeriesId, labels: &Labels) {
        if self.ordinals.contains_key(&id) {
            return;
        }
        let Ok(ord) = u32::try_from(self.ids.len()) else {
            return;
        };
        let Ok(end) = u32::try_from(self.set_pairs.len() + labels.len()) else {
            return;
        };
        if self.set_starts.is_empty() {
            self.set_starts.push(0);
        }
        for l in labels.iter() {
            let pair = self.pair_number(&l.name, &l.value);
            if let Some(p) = self.pairs.get_mut(pair as usize) {
                p.postings.0.insert(ord);
            }
            self.set_pairs.push(pair);
        }
        self.set_starts.push(end);
        self.ordinals.insert(id, ord);
        self.ids.push(id);
        self.all.insert(ord);
    }

    /// The number of a label pair, added if new.
    fn pair_number(&mut self, name: &str, value: &str) -> u32 {
        if let Some(&p) = self.by_name.get(name).and_then(|v| v.get(value)) {
            return p;
        }
        let p = self.pairs.len() as u32;
        self.pairs.push(Pair {
            name: name.into(),
            value: value.into(),
            postings: Postings::default(),
        });
        self.by_name
            .entry(name.to_string())
            .or_default()
            .insert(value.to_string(), p);
        p
    }

    /// The (name, value) pairs of ordinal `ord`'s label set, in label order.
    fn pairs_at(&self, ord: u32) -> impl Iterator<Item = (&str, &str)> {
        let o = ord as usize;
        let range = match (self.set_starts.get(o), self.set_starts.get(o + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        };
        self.set_pairs
            .get(range)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&p| self.pairs.get(p as usize))
            .map(|p| (&*p.name, &*p.value))
    }

    /// The indexed series among `ids`, sorted by label set in the order `Labels` sorts
    /// (compared in place, without building the sets).
    pub fn sorted_by_labels(&self, ids: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut known: Vec<(u32, u64)> = ids
            .into_iter()
            .filter_map(|id| Some((*self.ordinals.get(&SeriesId(id))?, id)))
            .collect();
        known.sort_unstable_by(|a, b| self.pairs_at(a.0).cmp(self.pairs_at(b.0)));
        known.into_iter().map(|(_, id)| id).collect()
    }

    /// Calls `f` with the series id and the (name, value) pairs, in label order, of each
    /// set in `ordinals`, the sets in the order `Labels` sorts. No label set is built: the
    /// pairs borrow the index's strings, and sets are compared by pair number first (equal
    /// numbers are equal pairs), by their strings only where they differ.
    pub fn each_sorted(&self, ordinals: &RoaringBitmap, f: &mut SeriesVisitor<'_>) {
        let mut ords: Vec<u32> = ordinals.iter().collect();
        let pair_nums = |o: u32| {
            let o = o as usize;
            match (self.set_starts.get(o), self.set_starts.get(o + 1)) {
                (Some(&a), Some(&b)) => self.set_pairs.get(a as usize..b as usize).unwrap_or(&[]),
                _ => &[],
            }
        };
        let text = |p: u32| {
            self.pairs
                .get(p as usize)
                .map_or(("", ""), |x| (&*x.name, &*x.value))
        };
        ords.sort_unstable_by(|&a, &b| {
            let (pa, pb) = (pair_nums(a), pair_nums(b));
            for (x, y) in pa.iter().zip(pb) {
                if x != y {
                    let o = text(*x).cmp(&text(*y));
                    if o != std::cmp::Ordering::Equal {
                        return o;
                    }
                }
            }
            pa.len().cmp(&pb.len())
        });
        // One buffer of pairs for all sets.
        let mut buf: Vec<(&str, &str)> = Vec::new();
        for o in ords {
            let Some(&id) = self.ids.get(o as usize) else {
                continue;
            };
            buf.clear();
            buf.extend(self.pairs_at(o));
            f(id, &buf);
        }
    }

    /// The label set of ordinal `ord`.
    fn labels_at(&self, ord: u32) -> Option<Labels> {
        let o = ord as usize;
        let (start, end) = (*self.set_starts.get(o)?, *self.set_starts.get(o + 1)?);
        let pairs = self.set_pairs.get(start as usize..end as usize)?;
        Some(Labels::from_sorted(
            pairs
                .iter()
                .filter_map(|&p| self.pairs.get(p as usize))
                .map(|p| Label {
                    name: p.name.to_string(),
                    value: p.value.to_string(),
                })
                .collect(),
        ))
    }

    /// The label set of a series, if indexed.
    pub fn labels_of(&self, id: SeriesId) -> Option<Labels> {
        self.labels_at(*self.ordinals.get(&id)?)
    }

    pub fn contains(&self, id: SeriesId) -> bool {
        self.ordinals.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ordinals of the label sets that satisfy every matcher (Prometheus semantics: a
    /// matcher that matches the empty string also matches sets without that label).
    pub fn select(&self, matchers: &[LabelMatcher]) -> RoaringBitmap {
        // Matchers naming a value narrow the most and need no union over all values of
        // their label: intersect those first. Matchers that match the empty string also
        // take the sets without the label, so they go last.
        let mut order: Vec<&LabelMatcher> = matchers.iter().collect();
        order.sort_by_key(|m| (m.matches(""), !matches!(m.op, MatchOp::Equal(_))));
        let mut result: Option<RoaringBitmap> = None;
        for m in order {
            let matching = self.matching(m);
            let r = match result {
                None => matching,
                Some(mut r) => {
                    r &= matching;
                    r
                }
            };
            if r.is_empty() {
                return r;
            }
            result = Some(r);
        }
        result.unwrap_or_else(|| self.all.clone())
    }

    /// The ordinals of the sets one matcher accepts.
    fn matching(&self, m: &LabelMatcher) -> RoaringBitmap {
        let values = self.by_name.get(&m.name);
        let postings = |p: u32| self.pairs.get(p as usize).map(|pair| &pair.postings.0);
        let mut matching = RoaringBitmap::new();
        match (&m.op, values) {
            (MatchOp::Equal(v), Some(values)) => {
                if let Some(b) = values.get(v).and_then(|&p| postings(p)) {
                    matching = b.clone();
                }
            }
            (_, Some(values)) => {
                for (v, &p) in values {
                    if m.matches(v)
                        && let Some(b) = postings(p)
                    {
                        matching |= b;
                    }
                }
            }
            (_, None) => {}
        }
        if m.matches("") {
            // Sets without the label match too.
            let mut with_label = RoaringBitmap::new();
            for &p in values.into_iter().flat_map(|v| v.values()) {
                if let Some(b) = postings(p) {
                    with_label |= b;
                }
            }
            matching |= &self.all - &with_label;
        }
        matching
    }

    /// The series ids and label sets of ordinals.
    pub fn resolve<'a>(
        &'a self,
        ordinals: &'a RoaringBitmap,
    ) -> impl Iterator<Item = (SeriesId, Labels)> + 'a {
        ordinals.iter().filter_map(|o| {
            let id = *self.ids.get(o as usize)?;
            Some((id, self.labels_at(o)?))
        })
    }

    /// All label names.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// All values of one label, with how many sets carry each.
    pub fn label_values(&self, name: &str) -> Vec<(&str, u64)> {
        self.by_name
            .get(name)
            .map(|vals| {
                vals.iter()
                    .map(|(v, &p)| {
                        let n = self.pairs.get(p as usize).map_or(0, |p| p.postings.0.len());
                        (v.as_str(), n)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn m(name: &str, op: MatchOp) -> LabelMatcher {
        LabelMatcher {
            name: name.into(),
            op,
        }
    }

    fn anchored(r: &str) -> Regex {
        Regex::new(&format!("^(?:{r})$")).expect("regex")
    }

    #[test]
    fn matchers_agree_with_a_linear_scan() {
        let mut idx = LabelIndex::default();
        let mut sets = Vec::new();
        for i in 0..200u32 {
            let mut pairs = vec![
                ("__name__".to_string(), format!("m{}", i % 3)),
                ("job".to_string(), format!("j{}", i % 7)),
            ];
            if i % 5 != 0 {
                pairs.push(("env".into(), if i % 2 == 0 { "prod" } else { "dev" }.into()));
            }
            let labels = Labels::from_pairs(pairs);
            idx.insert(labels.series_id(), &labels);
            sets.push(labels);
        }
        let cases = vec![
            vec![m("__name__", MatchOp::Equal("m1".into()))],
            vec![m("env", MatchOp::NotEqual("prod".into()))],
            vec![m("env", MatchOp::Equal("".into()))],
            vec![
                m("job", MatchOp::Regex(anchored("j[1-3]"))),
                m("env", MatchOp::NotRegex(anchored("dev"))),
            ],
            vec![m("missing", MatchOp::Regex(anchored(".*")))],
            vec![m("missing", MatchOp::Equal("x".into()))],
            vec![],
            vec![
                m("job", MatchOp::NotEqual("j1".into())),
                m("__name__", MatchOp::Equal("m0".into())),
                m("env", MatchOp::Equal("prod".into())),
            ],
            vec![
                m("__name__", MatchOp::Equal("m2".into())),
                m("job", MatchOp::Equal("j9".into())),
            ],
        ];
        for matchers in cases {
            let got: BTreeSet<_> = idx
                .resolve(&idx.select(&matchers))
                .map(|(_, l)| l)
                .collect();
            let want: BTreeSet<_> = sets
                .iter()
                .filter(|l| {
                    matchers
                        .iter()
                        .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
                })
                .cloned()
                .collect();
            assert_eq!(got, want, "{matchers:?}");
        }
    }

    #[test]
    fn insert_is_idempotent() {
        let mut idx = LabelIndex::default();
        let l = Labels::from_pairs([("a", "1")]);
        idx.insert(l.series_id(), &l);
        idx.insert(l.series_id(), &l);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.label_values("a"), vec![("1", 1)]);
    }
}
