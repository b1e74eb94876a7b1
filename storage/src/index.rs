//! Inverted label index: label name=value -> roaring bitmap of series (or log stream) ordinals.
//!
//! Each label set gets a dense `u32` ordinal on first sight so that postings are compact
//! roaring bitmaps; the ordinal maps back to the stable [`SeriesId`] and the labels.

use crate::model::{Labels, SeriesId};
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

/// The index of one tenant's series (or log streams).
#[derive(Debug, Default)]
pub struct LabelIndex {
    ordinals: HashMap<SeriesId, u32>,
    entries: Vec<(SeriesId, Labels)>,
    postings: BTreeMap<String, BTreeMap<String, Postings>>,
    all: RoaringBitmap,
}

impl LabelIndex {
    /// Adds a label set if it is new.
    pub fn insert(&mut self, id: SeriesId, labels: &Labels) {
        if self.ordinals.contains_key(&id) {
            return;
        }
        let Ok(ord) = u32::try_from(self.entries.len()) else {
            return;
        };
        self.ordinals.insert(id, ord);
        self.entries.push((id, labels.clone()));
        self.all.insert(ord);
        for l in labels.iter() {
            self.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .0
                .insert(ord);
        }
    }

    /// The label set of a series, if indexed.
    pub fn labels_of(&self, id: SeriesId) -> Option<&Labels> {
        let ord = *self.ordinals.get(&id)?;
        self.entries.get(ord as usize).map(|(_, l)| l)
    }

    pub fn contains(&self, id: SeriesId) -> bool {
        self.ordinals.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The ordinals of the label sets that satisfy every matcher (Prometheus semantics: a
    /// matcher that matches the empty string also matches sets without that label).
    pub fn select(&self, matchers: &[LabelMatcher]) -> RoaringBitmap {
        let mut result = self.all.clone();
        for m in matchers {
            let values = self.postings.get(&m.name);
            let mut with_label = RoaringBitmap::new();
            let mut matching = RoaringBitmap::new();
            if let Some(values) = values {
                for (v, p) in values {
                    with_label |= &p.0;
                    if m.matches(v) {
                        matching |= &p.0;
                    }
                }
            }
            if m.matches("") {
                // Sets without the label match too.
                let without = &self.all - &with_label;
                matching |= without;
            }
            result &= matching;
            if result.is_empty() {
                break;
            }
        }
        result
    }

    /// Looks up the label sets of ordinals.
    pub fn resolve<'a>(
        &'a self,
        ordinals: &'a RoaringBitmap,
    ) -> impl Iterator<Item = &'a (SeriesId, Labels)> + 'a {
        ordinals.iter().filter_map(|o| self.entries.get(o as usize))
    }

    /// All label names.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.postings.keys().map(String::as_str)
    }

    /// All values of one label, with how many sets carry each.
    pub fn label_values(&self, name: &str) -> Vec<(&str, u64)> {
        self.postings
            .get(name)
            .map(|vals| vals.iter().map(|(v, p)| (v.as_str(), p.0.len())).collect())
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
        ];
        for matchers in cases {
            let got: BTreeSet<_> = idx
                .resolve(&idx.select(&matchers))
                .map(|(_, l)| l.clone())
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
