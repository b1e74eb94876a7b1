//! Dedicated attribute columns of spans files (the third spans-file layout).
//!
//! In the `spans` table, span attributes are JSON object text with sorted, unique keys
//! (what ingest writes). In a spans file, the keys that many spans of the file carry get a
//! column of their own, named `attr:<type>:<key>` with type `str`, `int` or `bool`: like
//! Tempo's dedicated columns, but chosen per file from the data. A key's values compress
//! far better on their own than interleaved in JSON text (a dictionary when they are few),
//! and a search condition on the key reads that one column instead of parsing JSON. The
//! `attributes` column keeps the other members as JSON text.
//!
//! Invariant: a value moves into a dedicated column only when writing it back gives the
//! same text (strings without escapes, canonical integers, `true`/`false`), and only from
//! objects whose keys are strictly increasing and unescaped, so [`merge_attributes`]
//! rebuilds exactly the text that was stored. Anything else stays in `attributes` as is.

use crate::error::{Error, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Int64Array, Int64Builder, StringArray,
    StringBuilder,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

/// Name prefix of dedicated attribute columns.
pub const DEDICATED_PREFIX: &str = "attr:";

/// Most dedicated columns in one file.
const MAX_DEDICATED: usize = 24;

/// Rows sampled to choose a file's dedicated keys (spread over the whole file).
const SAMPLE_ROWS: usize = 4 * 1024;

/// A key gets a column when at least 1/`MIN_SHARE` of the sampled spans carry it with
/// one type.
const MIN_SHARE: usize = 10;

/// Distinct sampled values up to which a dedicated column is dictionary encoded; past
/// it the dictionary would be a large page every trace-by-id lookup decodes.
const DICTIONARY_MAX_DISTINCT: usize = 1024;

/// The value type of a dedicated column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    Str,
    Int,
    Bool,
}

impl AttrType {
    fn tag(self) -> &'static str {
        match self {
            AttrType::Str => "str",
            AttrType::Int => "int",
            AttrType::Bool => "bool",
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            AttrType::Str => DataType::Utf8,
            AttrType::Int => DataType::Int64,
            AttrType::Bool => DataType::Boolean,
        }
    }

    /// The type a member's JSON value text can move into a column as, if any.
    fn of_value(raw: &str) -> Option<AttrType> {
        let b = raw.as_bytes();
        match b.first()? {
            b'"' => (b.len() >= 2 && b[b.len() - 1] == b'"' && !b.contains(&b'\\'))
                .then_some(AttrType::Str),
            b't' | b'f' => matches!(raw, "true" | "false").then_some(AttrType::Bool),
            _ => canonical_int(raw).map(|_| AttrType::Int),
        }
    }
}

/// An integer written exactly as `i64::to_string` writes it.
fn canonical_int(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix('-').unwrap_or(raw).as_bytes();
    let ok = match digits {
        [] => false,
        [b'0'] => raw.len() == 1,
        [b'0', ..] => false,
        d => d.iter().all(u8::is_ascii_digit),
    };
    if ok { raw.parse().ok() } else { None }
}

/// The column name of a dedicated key.
pub fn column_name(ty: AttrType, key: &str) -> String {
    format!("{DEDICATED_PREFIX}{}:{key}", ty.tag())
}

/// The type and key of a dedicated column name.
pub fn parse_column_name(name: &str) -> Option<(AttrType, &str)> {
    let rest = name.strip_prefix(DEDICATED_PREFIX)?;
    let (tag, key) = rest.split_once(':')?;
    let ty = match tag {
        "str" => AttrType::Str,
        "int" => AttrType::Int,
        "bool" => AttrType::Bool,
        _ => return None,
    };
    Some((ty, key))
}

/// One `"key":value` member of JSON object text.
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    /// The key's text between its quotes.
    key: &'a str,
    escaped: bool,
    value: &'a str,
    /// `"key":value`.
    whole: &'a str,
}

/// The end (exclusive) of the JSON string starting at `i` (its opening quote), and
/// whether it holds an escape.
fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    i += 1;
    loop {
        match b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// The end (exclusive) of the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i).map(|(e, _)| e),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The members of compact JSON object text (no whitespace between tokens, as Strata
/// writes it) into `out`; false when `text` is not such an object.
fn members<'a>(text: &'a str, out: &mut Vec<Member<'a>>) -> bool {
    out.clear();
    let b = text.as_bytes();
    if b.first() != Some(&b'{') {
        return false;
    }
    if text == "{}" {
        return true;
    }
    let mut i = 1;
    loop {
        if b.get(i) != Some(&b'"') {
            return false;
        }
        let start = i;
        let Some((key_end, escaped)) = string_end(b, i) else {
            return false;
        };
        if b.get(key_end) != Some(&b':') {
            return false;
        }
        let Some(end) = value_end(b, key_end + 1) else {
            return false;
        };
        let (Some(key), Some(value), Some(whole)) = (
            text.get(start + 1..key_end - 1),
            text.get(key_end + 1..end),
            text.get(start..end),
        ) else {
            return false;
        };
        out.push(Member {
            key,
            escaped,
            value,
            whole,
        });
        match b.get(end) {
            Some(b',') => i = end + 1,
            Some(b'}') if end + 1 == b.len() => return true,
            _ => return false,
        }
    }
}

/// Whether a row's members may be split: keys unescaped and strictly increasing.
fn splittable(ms: &[Member<'_>]) -> bool {
    ms.iter().all(|m| !m.escaped) && ms.windows(2).all(|w| w[0].key < w[1].key)
}

/// A dedicated column chosen for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedicated {
    pub key: String,
    pub ty: AttrType,
    /// Whether to dictionary-encode it (few distinct values).
    pub dictionary: bool,
}

impl Dedicated {
    pub fn column_name(&self) -> String {
        column_name(self.ty, &self.key)
    }
}

/// The dedicated columns for a file's `attributes` column, sorted by key: the keys that at
/// least a tenth of a sample of the rows carry with one type, the most common first, at
/// most [`MAX_DEDICATED`].
pub fn choose(attrs: &StringArray) -> Vec<Dedicated> {
    let n = attrs.len();
    let stride = (n / SAMPLE_ROWS).max(1);
    let mut seen: HashMap<(&str, AttrType), (usize, HashSet<&str>)> = HashMap::new();
    let mut sampled = 0usize;
    let mut ms = Vec::new();
    for i in (0..n).step_by(stride) {
        if attrs.is_null(i) || !members(attrs.value(i), &mut ms) || !splittable(&ms) {
            continue;
        }
        sampled += 1;
        for m in &ms {
            if let Some(ty) = AttrType::of_value(m.value) {
                let e = seen.entry((m.key, ty)).or_default();
                e.0 += 1;
                if e.1.len() <= DICTIONARY_MAX_DISTINCT {
                    e.1.insert(m.value);
                }
            }
        }
    }
    // One type per key: the most common.
    let mut best: HashMap<&str, (AttrType, usize, usize)> = HashMap::new();
    for ((key, ty), (count, distinct)) in &seen {
        if count * MIN_SHARE < sampled {
            continue;
        }
        let e = best.entry(key).or_insert((*ty, *count, distinct.len()));
        if *count > e.1 {
            *e = (*ty, *count, distinct.len());
        }
    }
    let mut chosen: Vec<(&str, AttrType, usize, usize)> = best
        .into_iter()
        .map(|(k, (ty, count, distinct))| (k, ty, count, distinct))
        .collect();
    chosen.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    chosen.truncate(MAX_DEDICATED);
    let mut out: Vec<Dedicated> = chosen
        .into_iter()
        .map(|(key, ty, _, distinct)| Dedicated {
            key: key.to_owned(),
            ty,
            dictionary: distinct <= DICTIONARY_MAX_DISTINCT,
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

enum ColumnBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
    Bool(BooleanBuilder),
}

impl ColumnBuilder {
    fn new(ty: AttrType, n: usize) -> Self {
        match ty {
            AttrType::Str => ColumnBuilder::Str(StringBuilder::with_capacity(n, n * 8)),
            AttrType::Int => ColumnBuilder::Int(Int64Builder::with_capacity(n)),
            AttrType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(n)),
        }
    }

    /// Appends a member's value text if it has this column's type.
    fn append(&mut self, raw: &str) -> bool {
        match self {
            ColumnBuilder::Str(b) => {
                if AttrType::of_value(raw) != Some(AttrType::Str) {
                    return false;
                }
                b.append_value(&raw[1..raw.len() - 1]);
            }
            ColumnBuilder::Int(b) => match canonical_int(raw) {
                Some(v) => b.append_value(v),
                None => return false,
            },
            ColumnBuilder::Bool(b) => match raw {
                "true" => b.append_value(true),
                "false" => b.append_value(false),
                _ => return false,
            },
        }
        true
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Str(b) => b.append_null(),
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::Bool(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Str(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Splits an `attributes` column: the members `plan` names move into its columns (in
/// `plan`'s order), the rest stay JSON text.
pub fn split(attrs: &StringArray, plan: &[Dedicated]) -> (ArrayRef, Vec<(Field, ArrayRef)>) {
    let n = attrs.len();
    let mut rest = StringBuilder::with_capacity(n, attrs.value_data().len());
    let mut cols: Vec<ColumnBuilder> = plan.iter().map(|d| ColumnBuilder::new(d.ty, n)).collect();
    let mut filled = vec![false; plan.len()];
    let mut ms = Vec::new();
    let mut buf = String::new();
    for i in 0..n {
        let text = if attrs.is_null(i) {
            "{}"
        } else {
            attrs.value(i)
        };
        filled.fill(false);
        if members(text, &mut ms) && splittable(&ms) {
            buf.clear();
            buf.push('{');
            let mut p = 0;
            for m in &ms {
                while p < plan.len() && plan[p].key.as_str() < m.key {
                    p += 1;
                }
                if p < plan.len() && plan[p].key == m.key && cols[p].append(m.value) {
                    filled[p] = true;
                    continue;
                }
                if buf.len() > 1 {
                    buf.push(',');
                }
                buf.push_str(m.whole);
            }
            buf.push('}');
            rest.append_value(&buf);
        } else {
            rest.append_value(text);
        }
        for (c, f) in cols.iter_mut().zip(&filled) {
            if !f {
                c.append_null();
            }
        }
    }
    let fields = plan
        .iter()
        .zip(cols)
        .map(|(d, c)| {
            (
                Field::new(d.column_name(), d.ty.data_type(), true),
                c.finish(),
            )
        })
        .collect();
    (Arc::new(rest.finish()), fields)
}

/// A dedicated column read back: its key and values.
pub struct DedicatedColumn<'a> {
    pub key: &'a str,
    pub values: &'a ArrayRef,
}

/// A dedicated column's values, downcast once per batch.
enum Values<'a> {
    Str(&'a StringArray),
    Int(&'a Int64Array),
    Bool(&'a BooleanArray),
}

impl Values<'_> {
    /// Writes the (non-null) value at `row` as JSON.
    fn push(&self, out: &mut String, row: usize) {
        match self {
            Values::Str(a) => {
                out.push('"');
                out.push_str(a.value(row));
                out.push('"');
            }
            Values::Int(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Values::Bool(a) => out.push_str(if a.value(row) { "true" } else { "false" }),
        }
    }
}

/// A dedicated column ready to merge: key, values and validity.
struct Merging<'a> {
    key: &'a str,
    values: Values<'a>,
    nulls: Option<&'a NullBuffer>,
}

/// The `attributes` text of every row: the JSON of `rest` with the dedicated columns'
/// values put back in key order (the exact text [`split`] was given).
///
/// Each column is downcast once and the rows holding any dedicated value are found once,
/// from the columns' validity bitmaps together, not by testing every column per row.
pub fn merge_attributes(rest: &StringArray, dedicated: &[DedicatedColumn<'_>]) -> Result<ArrayRef> {
    let n = rest.len();
    let mut order: Vec<Merging<'_>> = Vec::with_capacity(dedicated.len());
    for d in dedicated {
        let values = match d.values.data_type() {
            DataType::Utf8 => Values::Str(d.values.as_string::<i32>()),
            DataType::Int64 => Values::Int(d.values.as_primitive::<Int64Type>()),
            DataType::Boolean => Values::Bool(d.values.as_boolean()),
            _ => continue,
        };
        if d.values.len() != n {
            return Err(Error::Corrupt(format!(
                "dedicated attribute column {:?} has {} rows, the attributes {n}",
                d.key,
                d.values.len()
            )));
        }
        order.push(Merging {
            key: d.key,
            values,
            nulls: d.values.nulls().filter(|nb| nb.null_count() > 0),
        });
    }
    order.sort_by(|a, b| a.key.cmp(b.key));
    // Rows with at least one dedicated value: every row when a column has no nulls.
    let any_value: Option<BooleanBuffer> = if order.is_empty() {
        Some(BooleanBuffer::new_unset(n))
    } else if order.iter().any(|m| m.nulls.is_none()) {
        None
    } else {
        order
            .iter()
            .filter_map(|m| m.nulls.map(NullBuffer::inner))
            .fold(None, |acc: Option<BooleanBuffer>, b| {
                Some(match acc {
                    None => b.clone(),
                    Some(a) => &a | b,
                })
            })
    };
    // The text taken from `rest` plus a guess per row; the builder grows past it.
    let rest_bytes = rest.offsets().last().map_or(0, |&end| end as usize)
        - rest.offsets().first().map_or(0, |&start| start as usize);
    let mut out = StringBuilder::with_capacity(n, rest_bytes + n * 16);
    let mut ms = Vec::new();
    let mut buf = String::new();
    for i in 0..n {
        let text = if rest.is_null(i) { "{}" } else { rest.value(i) };
        if any_value.as_ref().is_some_and(|b| !b.value(i)) {
            out.append_value(text);
            continue;
        }
        if !members(text, &mut ms) {
            return Err(Error::Corrupt(format!(
                "span attributes of a spans file are not a JSON object: {text:.64}"
            )));
        }
        buf.clear();
        buf.push('{');
        let mut g = ms.iter().peekable();
        for d in &order {
            while let Some(m) = g.next_if(|m| m.key < d.key) {
                if buf.len() > 1 {
                    buf.push(',');
                }
                buf.push_str(m.whole);
            }
            if d.nulls.is_some_and(|nb| nb.is_null(i)) {
                continue;
            }
            if buf.len() > 1 {
                buf.push(',');
            }
            buf.push('"');
            buf.push_str(d.key);
            buf.push_str("\":");
            d.values.push(&mut buf, i);
        }
        for m in g {
            if buf.len() > 1 {
                buf.push(',');
            }
            buf.push_str(m.whole);
        }
        buf.push('}');
        out.append_value(&buf);
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests;
