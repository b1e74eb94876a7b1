//! The label set of one entry while it flows through a pipeline, and an
//! index from label sets to output series that avoids allocating a key for
//! every line.
//!
//! The stream's own labels are borrowed; only labels added or changed by
//! the pipeline (structured metadata, parsed labels, formats) are owned.

use std::collections::{HashMap, HashSet};

pub(crate) const ERROR_LABEL: &str = "__error__";
pub(crate) const ERROR_DETAILS_LABEL: &str = "__error_details__";
const DUPLICATE_SUFFIX: &str = "_extracted";

/// Where a label came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cat {
    Stream,
    Meta,
    Parsed,
}

#[derive(Debug, Clone)]
pub(crate) struct Lbl {
    pub name: String,
    pub value: String,
    pub cat: Cat,
}

/// A reference to a live label: `(true, i)` is `extra[i]`, `(false, i)` is `base[i]`.
pub(crate) type LRef = (bool, u32);

pub(crate) struct LabelSet<'a> {
    base: &'a [(String, String)],
    /// When set, parsers only extract these labels (Loki's parser hints for
    /// metric queries whose result keeps only some labels).
    hints: Option<&'a HashSet<String>>,
    /// Base labels deleted or overridden (then present in `extra`).
    gone: Vec<bool>,
    extra: Vec<Lbl>,
}

impl<'a> LabelSet<'a> {
    /// A label set over `base` (sorted stream labels), reusing `buf`.
    pub fn new(base: &'a [(String, String)], mut buf: Vec<Lbl>) -> Self {
        buf.clear();
        LabelSet {
            base,
            hints: None,
            gone: vec![false; base.len()],
            extra: buf,
        }
    }

    /// Restricts parsers to the labels in `hints`.
    pub fn with_hints(mut self, hints: Option<&'a HashSet<String>>) -> Self {
        self.hints = hints;
        self
    }

    /// Whether a parser should extract a label of this name.
    pub fn wants(&self, name: &str) -> bool {
        match self.hints {
            None => true,
            Some(h) if self.base_has(name) => h.contains(&format!("{name}{DUPLICATE_SUFFIX}")),
            Some(h) => h.contains(name),
        }
    }

    pub fn into_buf(self) -> Vec<Lbl> {
        self.extra
    }

    /// Back to just the stream labels.
    pub fn reset(&mut self) {
        self.extra.clear();
        self.gone.iter_mut().for_each(|g| *g = false);
    }

    /// True when the label set is exactly the stream's labels.
    pub fn is_base(&self) -> bool {
        self.extra.is_empty() && !self.gone.iter().any(|g| *g)
    }

    /// Adds structured metadata (moved in); names colliding with stream
    /// labels get the `_extracted` suffix.
    pub fn add_metadata(&mut self, meta: Vec<(String, String)>) {
        for (n, v) in meta {
            let name = if self.base_has(&n) {
                format!("{n}{DUPLICATE_SUFFIX}")
            } else {
                n
            };
            self.set(name, v, Cat::Meta);
        }
    }

    /// Whether the stream itself has a label of this name (Loki's `BaseHas`).
    pub fn base_has(&self, name: &str) -> bool {
        self.base.iter().any(|(n, _)| n == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        if let Some(l) = self.extra.iter().find(|l| l.name == name) {
            return Some(&l.value);
        }
        self.base
            .iter()
            .zip(&self.gone)
            .find(|((n, _), g)| !**g && n == name)
            .map(|((_, v), _)| v.as_str())
    }

    /// The value and category of a live label.
    pub fn get_with_cat(&self, name: &str) -> Option<(&str, Cat)> {
        if let Some(l) = self.extra.iter().find(|l| l.name == name) {
            return Some((&l.value, l.cat));
        }
        self.get(name).map(|v| (v, Cat::Stream))
    }

    pub fn set(&mut self, name: String, value: String, cat: Cat) {
        if let Some(l) = self.extra.iter_mut().find(|l| l.name == name) {
            l.value = value;
            if l.cat != Cat::Stream {
                l.cat = cat;
            }
            return;
        }
        let mut cat = cat;
        if let Some(i) = self.base.iter().position(|(n, _)| *n == name)
            && !self.gone[i]
        {
            self.gone[i] = true;
            if cat == Cat::Meta {
                cat = Cat::Stream;
            }
        }
        self.extra.push(Lbl { name, value, cat });
    }

    /// Adds a parsed label, renaming it `<name>_extracted` if the stream
    /// already has a label of that name.
    pub fn set_parsed(&mut self, name: String, value: String) {
        let name = if self.base_has(&name) {
            format!("{name}{DUPLICATE_SUFFIX}")
        } else {
            name
        };
        if self.hints.is_some_and(|h| !h.contains(&name)) {
            return;
        }
        self.set(name, value, Cat::Parsed);
    }

    pub fn del(&mut self, name: &str) {
        self.extra.retain(|l| l.name != name);
        if let Some(i) = self.base.iter().position(|(n, _)| n == name) {
            self.gone[i] = true;
        }
    }

    pub fn has_err(&self) -> bool {
        self.get(ERROR_LABEL).is_some_and(|v| !v.is_empty())
    }

    pub fn set_err(&mut self, err: &str, details: String) {
        if self.has_err() {
            return;
        }
        self.set(ERROR_LABEL.into(), err.into(), Cat::Parsed);
        if !details.is_empty() {
            self.set(ERROR_DETAILS_LABEL.into(), details, Cat::Parsed);
        }
    }

    /// Keeps the labels for which `keep(name, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.extra.retain(|l| keep(&l.name, &l.value));
        for (i, (n, v)) in self.base.iter().enumerate() {
            if !self.gone[i] && !keep(n, v) {
                self.gone[i] = true;
            }
        }
    }

    fn name(&self, r: LRef) -> &str {
        if r.0 {
            &self.extra[r.1 as usize].name
        } else {
            &self.base[r.1 as usize].0
        }
    }

    fn value(&self, r: LRef) -> &str {
        if r.0 {
            &self.extra[r.1 as usize].value
        } else {
            &self.base[r.1 as usize].1
        }
    }

    pub fn cat(&self, r: LRef) -> Cat {
        if r.0 {
            self.extra[r.1 as usize].cat
        } else {
            Cat::Stream
        }
    }

    /// Fills `out` with references to the live labels sorted by name,
    /// keeping only those `keep` accepts.
    pub fn sorted_refs(&self, out: &mut Vec<LRef>, keep: impl Fn(&str) -> bool) {
        out.clear();
        for (i, (n, _)) in self.base.iter().enumerate() {
            if !self.gone[i] && keep(n) {
                out.push((false, i as u32));
            }
        }
        for (i, l) in self.extra.iter().enumerate() {
            if keep(&l.name) {
                out.push((true, i as u32));
            }
        }
        out.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
    }

    pub fn pairs<'s>(&'s self, refs: &'s [LRef]) -> impl Iterator<Item = (&'s str, &'s str)> + 's {
        refs.iter().map(move |r| (self.name(*r), self.value(*r)))
    }

    /// Sorted owned `(name, value)` pairs of all live labels.
    pub fn sorted(&self) -> Vec<(String, String)> {
        let mut refs = Vec::new();
        self.sorted_refs(&mut refs, |_| true);
        self.pairs(&refs)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }
}

/// FNV-1a over `name \xff value \xfe ...`.
pub(crate) fn hash_pairs<'s>(pairs: impl Iterator<Item = (&'s str, &'s str)>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (n, v) in pairs {
        eat(n.as_bytes());
        eat(&[0xff]);
        eat(v.as_bytes());
        eat(&[0xfe]);
    }
    h
}

/// Maps label sets to dense indexes; a label set is materialised only the
/// first time it is seen.
#[derive(Default)]
pub(crate) struct KeyIndex {
    map: HashMap<u64, Vec<usize>>,
    pub keys: Vec<Vec<(String, String)>>,
}

impl KeyIndex {
    /// Index of the label set given as sorted `(name, value)` pairs; the
    /// bool is true when it was new.
    pub fn get_or_insert<'s, I>(&mut self, pairs: impl Fn() -> I) -> (usize, bool)
    where
        I: Iterator<Item = (&'s str, &'s str)>,
    {
        let h = hash_pairs(pairs());
        if let Some(cands) = self.map.get(&h) {
            for &c in cands {
                let k = &self.keys[c];
                let mut it = pairs();
                let same = k
                    .iter()
                    .all(|(n, v)| it.next() == Some((n.as_str(), v.as_str())))
                    && it.next().is_none();
                if same {
                    return (c, false);
                }
            }
        }
        let idx = self.keys.len();
        self.keys.push(
            pairs()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        );
        self.map.entry(h).or_default().push(idx);
        (idx, true)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Keeps only the label sets whose `used` flag is set, in their order; returns each
    /// old index's new one (`u32::MAX` for dropped sets).
    pub fn retain_used(&mut self, used: &[bool]) -> Vec<u32> {
        let mut remap = vec![u32::MAX; self.keys.len()];
        let old = std::mem::take(&mut self.keys);
        self.map.clear();
        for (i, k) in old.into_iter().enumerate() {
            if used.get(i).copied().unwrap_or(false) {
                let idx = self.keys.len();
                remap[i] = idx as u32;
                let h = hash_pairs(k.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                self.map.entry(h).or_default().push(idx);
                self.keys.push(k);
            }
        }
        remap
    }
}
