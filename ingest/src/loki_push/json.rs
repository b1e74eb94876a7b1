//! Loki's JSON push body walked with serde, one entry at a time:
//! `{"streams":[{"stream":{"app":"api"},"values":[["<unix ns>","line",{"k":"v"}]]}]}`.
//!
//! Nothing is collected but the batch: each entry is checked and handed to the sink as the
//! parser reaches it, its strings borrowed from the body when they have no escapes. (The
//! body used to become a `serde_json::Value` first, about 20 times its size.) The rows are
//! counted against the body's budget as the protobuf walk counts them, so a body of many
//! tiny entries is refused with 413 however many it holds.
//!
//! Answers are those of a body parsed whole and then checked in order: invalid JSON
//! anywhere is refused as invalid JSON (after the first refusal the rest is still parsed,
//! building nothing); otherwise the first bad stream or entry is named. A value of the wrong
//! type where a stream, its labels, its values or an entry is expected refuses that stream
//! or entry (400), as when it was looked up in a parsed document. A stream's `"values"`
//! before its `"stream"` (no Loki client sends it so) are kept until its labels come.

use super::{
    Footprint, PushError, Refused, Sink, StreamInfo, check_entry, clipped, sink_error,
    stream_labels, walk_outcome,
};
use crate::limits::Limits;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Walks a JSON push body into `sink`.
pub(super) fn convert(
    body: &[u8],
    limits: &Limits,
    now_ns: i64,
    sink: &mut impl Sink,
) -> Result<(), PushError> {
    sink.body_size(body.len());
    let mut walk = Walk {
        limits,
        now_ns,
        sink,
        footprint: Footprint::new(body.len()),
        refused: None,
        streams: 0,
        attrs: String::new(),
        metadata: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let has_streams = BodySeed(&mut walk)
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found))
        .map_err(|e| PushError::Json(e.to_string()))?;
    if !has_streams {
        return Err(PushError::Json(
            "the body must be an object with a \"streams\" array".into(),
        ));
    }
    walk_outcome(walk.refused, &walk.footprint)
}

/// The state of one walk.
struct Walk<'b, 'l, S> {
    limits: &'l Limits,
    now_ns: i64,
    sink: &'l mut S,
    footprint: Footprint,
    refused: Option<Refused>,
    /// Streams seen so far (the next one's index).
    streams: usize,
    attrs: String,
    /// The metadata of the entry at hand.
    metadata: Vec<(Cow<'b, str>, Cow<'b, str>)>,
}

impl<S: Sink> Walk<'_, '_, S> {
    fn refuse(&mut self, r: Refused) {
        if self.refused.is_none() {
            self.sink.discard();
            self.refused = Some(r);
        }
    }

    /// Stores a checked entry of `stream`, counting its row first (its text only when the
    /// entry was `counted` as it was kept).
    fn store(
        &mut self,
        stream: &StreamInfo,
        at: (usize, usize),
        (ts, line): (i64, &str),
        counted: bool,
    ) {
        let within = if counted {
            self.footprint.grow(stream.text_bytes() + line.len())
        } else {
            self.footprint.add(stream.text_bytes(), line.len())
        };
        if self.refused.is_some() {
            return;
        }
        if !within {
            return self.refuse(Refused::OverBudget);
        }
        let ts = if ts == 0 { self.now_ns } else { ts };
        if let Err(e) = self.sink.entry(stream, ts, self.now_ns, line, &self.attrs) {
            let e = sink_error(e, |reason| entry_error(stream, at, reason));
            self.refuse(Refused::Error(e));
        }
    }
}

fn entry_error(stream: &StreamInfo, (si, ei): (usize, usize), reason: String) -> PushError {
    PushError::Entry {
        stream: si,
        labels: stream.labels.to_string(),
        entry: ei,
        reason,
    }
}

const VALUES_SHAPE: &str = "\"values\" must be an array of [\"<unix ns>\", \"line\"] pairs";
const STREAM_SHAPE: &str = "\"stream\" must be an object of label names to string values";

// ---------------------------------------------------------------------------------------
// A value of any type, for the places where the wrong type is the client's 400, not a
// parse error: `Any(c)` hands an object or array to `c`, and tells it what else was found.
// ---------------------------------------------------------------------------------------

/// What a JSON value was, where a container was wanted or a string.
enum Found<'b> {
    Str(Cow<'b, str>),
    /// A number, `true`, `false` or `null`, as its JSON text.
    Scalar(String),
    Array,
    Object,
}

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Str(s) => write!(f, "{}", json_string(s)),
            Found::Scalar(s) => f.write_str(s),
            Found::Array => f.write_str("[...]"),
            Found::Object => f.write_str("{...}"),
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// What to do with a value: its object or array (drained by default), or anything else.
trait Shape<'b>: Sized {
    type Out;
    fn other(self, found: Found<'b>) -> Self::Out;
    fn object<A: MapAccess<'b>>(self, mut a: A) -> Result<Self::Out, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.other(Found::Object))
    }
    fn array<A: SeqAccess<'b>>(self, mut a: A) -> Result<Self::Out, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.other(Found::Array))
    }
}

struct Any<T>(T);

impl<'b, T: Shape<'b>> DeserializeSeed<'b> for Any<T> {
    type Value = T::Out;
    fn deserialize<D: Deserializer<'b>>(self, d: D) -> Result<T::Out, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'b, T: Shape<'b>> Visitor<'b> for Any<T> {
    type Value = T::Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T::Out, E> {
        Ok(self.0.other(Found::Scalar(v.to_string())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T::Out, E> {
        Ok(self.0.other(Found::Scalar(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T::Out, E> {
        Ok(self.0.other(Found::Scalar(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T::Out, E> {
        Ok(self.0.other(Found::Scalar(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T::Out, E> {
        Ok(self.0.other(Found::Scalar("null".into())))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'b str) -> Result<T::Out, E> {
        Ok(self.0.other(Found::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T::Out, E> {
        Ok(self.0.other(Found::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<T::Out, E> {
        Ok(self.0.other(Found::Str(Cow::Owned(v))))
    }
    fn visit_map<A: MapAccess<'b>>(self, a: A) -> Result<T::Out, A::Error> {
        self.0.object(a)
    }
    fn visit_seq<A: SeqAccess<'b>>(self, a: A) -> Result<T::Out, A::Error> {
        self.0.array(a)
    }
}

/// Any value, as what it was (a string is the one wanted).
struct Text;

impl<'b> Shape<'b> for Text {
    type Out = Found<'b>;
    fn other(self, found: Found<'b>) -> Found<'b> {
        found
    }
}

/// The next key of an object, borrowed from the body when it has no escapes.
fn next_name<'b, A: MapAccess<'b>>(a: &mut A) -> Result<Option<Cow<'b, str>>, A::Error> {
    Ok(a.next_key_seed(Any(Text))?.map(|found| match found {
        Found::Str(s) => s,
        other => Cow::Owned(other.to_string()),
    }))
}

/// A key of an object, compared with the names a walk looks for (no copy).
struct KeyIn(&'static [&'static str]);

impl<'b> DeserializeSeed<'b> for KeyIn {
    /// The index of the name in the list, if it is one of them.
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'b>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'b> Visitor<'b> for KeyIn {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|k| *k == v))
    }
}

// ---------------------------------------------------------------------------------------
// The push's shape: body, streams, stream, labels, values, entry, metadata.
// ---------------------------------------------------------------------------------------

/// The body: an object whose `"streams"` are walked. True when it had them.
struct BodySeed<'w, 'b, 'l, S>(&'w mut Walk<'b, 'l, S>);

impl<'b, S: Sink> DeserializeSeed<'b> for BodySeed<'_, 'b, '_, S> {
    type Value = bool;
    fn deserialize<D: Deserializer<'b>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'b, S: Sink> Visitor<'b> for BodySeed<'_, 'b, '_, S> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a \"streams\" array")
    }
    fn visit_map<A: MapAccess<'b>>(self, mut a: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = a.next_key_seed(KeyIn(&["streams"]))? {
            if key.is_some() {
                a.next_value_seed(StreamsSeed(&mut *self.0))?;
                found = true;
            } else {
                a.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The `"streams"` array.
struct StreamsSeed<'w, 'b, 'l, S>(&'w mut Walk<'b, 'l, S>);

impl<'b, S: Sink> DeserializeSeed<'b> for StreamsSeed<'_, 'b, '_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'b>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'b, S: Sink> Visitor<'b> for StreamsSeed<'_, 'b, '_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a \"streams\" array")
    }
    fn visit_seq<A: SeqAccess<'b>>(self, mut a: A) -> Result<(), A::Error> {
        while a
            .next_element_seed(Any(StreamShape(&mut *self.0)))?
            .is_some()
        {}
        Ok(())
    }
}

/// One stream: `{"stream": {labels}, "values": [entries]}`.
struct StreamShape<'w, 'b, 'l, S>(&'w mut Walk<'b, 'l, S>);

/// An entry of a stream whose labels had not come yet, checked but for them.
struct Pending<'b> {
    /// `(time, line, metadata JSON)`, or why the entry is refused.
    entry: Result<(i64, Cow<'b, str>, String), String>,
}

/// Where a stream's entries go: the sink (labels known, or refused), or a list until the
/// labels come.
enum Entries<'s, 'b> {
    /// `None` when the stream is refused: its entries are walked and counted only.
    Store(Option<&'s StreamInfo>),
    Keep(&'s mut Vec<Pending<'b>>),
}

impl<'b, S: Sink> Shape<'b> for StreamShape<'_, 'b, '_, S> {
    type Out = ();

    fn other(self, found: Found<'b>) {
        let si = self.0.streams;
        self.0.streams += 1;
        let e = PushError::Labels {
            stream: si,
            labels: String::new(),
            reason: format!("each stream must be an object, not {found}"),
        };
        self.0.refuse(Refused::Error(e));
    }

    fn object<A: MapAccess<'b>>(self, mut a: A) -> Result<(), A::Error> {
        let walk = self.0;
        let si = walk.streams;
        walk.streams += 1;
        // The labels once seen: the stream, or `None` when they were refused.
        let mut labels: Option<Option<StreamInfo>> = None;
        let mut values_seen = false;
        // Values before labels: kept with why they would be refused (`Err` for the whole).
        let mut pending: Result<Vec<Pending<'b>>, String> = Ok(Vec::new());
        while let Some(key) = a.next_key_seed(KeyIn(&["stream", "values"]))? {
            match key {
                Some(0) => {
                    let (got, shown) = a.next_value_seed(Any(LabelsShape {
                        max_labels: walk.limits.max_labels_per_series,
                    }))?;
                    match got.and_then(|pairs| stream_labels(pairs, walk.limits)) {
                        Ok(l) => labels = Some(Some(StreamInfo::new(l))),
                        Err(reason) => {
                            // Before anything of its values: the labels are checked first.
                            walk.refuse(Refused::Error(PushError::Labels {
                                stream: si,
                                labels: clipped(&shown),
                                reason,
                            }));
                            labels = Some(None);
                        }
                    }
                }
                Some(_) => {
                    values_seen = true;
                    let target = match (&labels, &mut pending) {
                        (Some(Some(info)), _) => Entries::Store(Some(info)),
                        (Some(None), _) | (None, Err(_)) => Entries::Store(None),
                        (None, Ok(list)) => Entries::Keep(list),
                    };
                    let shape = a.next_value_seed(Any(ValuesShape {
                        walk: &mut *walk,
                        si,
                        target,
                    }))?;
                    if let Err(reason) = shape {
                        match &labels {
                            Some(Some(info)) => {
                                let labels = clipped(&info.labels.to_string());
                                walk.refuse(Refused::Error(PushError::Labels {
                                    stream: si,
                                    labels,
                                    reason,
                                }))
                            }
                            Some(None) => {}
                            None => pending = Err(reason),
                        }
                    }
                }
                None => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        let info = match labels {
            None => {
                let e = PushError::Labels {
                    stream: si,
                    labels: String::new(),
                    reason: STREAM_SHAPE.into(),
                };
                walk.refuse(Refused::Error(e));
                return Ok(());
            }
            Some(None) => return Ok(()),
            Some(Some(info)) => info,
        };
        let shape_error = |reason: String| PushError::Labels {
            stream: si,
            labels: clipped(&info.labels.to_string()),
            reason,
        };
        if !values_seen {
            walk.refuse(Refused::Error(shape_error(VALUES_SHAPE.into())));
            return Ok(());
        }
        match pending {
            Err(reason) => walk.refuse(Refused::Error(shape_error(reason))),
            Ok(list) => {
                for (ei, p) in list.into_iter().enumerate() {
                    match p.entry {
                        Ok((ts, line, attrs)) => {
                            walk.attrs = attrs;
                            walk.store(&info, (si, ei), (ts, &line), true);
                        }
                        Err(reason) => {
                            let e = entry_error(&info, (si, ei), reason);
                            walk.refuse(Refused::Error(e));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A stream's `"stream"` object: its label pairs (a repeated name keeps its last value, as
/// a JSON object decodes), or why they are refused; and the labels as the client sent them
/// (JSON, cut short), for the refusal.
struct LabelsShape {
    max_labels: usize,
}

type LabelPairs = Result<Vec<(String, String)>, String>;

impl<'b> Shape<'b> for LabelsShape {
    type Out = (LabelPairs, String);

    fn other(self, found: Found<'b>) -> Self::Out {
        (Err(STREAM_SHAPE.into()), found.to_string())
    }

    fn object<A: MapAccess<'b>>(self, mut a: A) -> Result<Self::Out, A::Error> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let (mut problem, mut count) = (None::<String>, 0usize);
        let mut shown = String::from("{");
        while let Some(name) = next_name(&mut a)? {
            let value = a.next_value_seed(Any(Text))?;
            count += 1;
            if shown.len() < 256 {
                if count > 1 {
                    shown.push(',');
                }
                let _ = write!(shown, "{}:{value}", json_string(&name));
            }
            let Found::Str(value) = value else {
                problem
                    .get_or_insert_with(|| format!("the value of label {name:?} is not a string"));
                continue;
            };
            // Past the limit the stream is refused: nothing more is collected or looked for.
            if pairs.len() > self.max_labels {
                continue;
            }
            if let Some(p) = pairs.iter_mut().find(|(n, _)| *n == *name) {
                p.1 = value.into_owned();
            } else {
                pairs.push((name.into_owned(), value.into_owned()));
            }
        }
        shown.push('}');
        if let Some(p) = problem {
            return Ok((Err(p), shown));
        }
        if pairs.len() > self.max_labels {
            let why = format!(
                "the stream has {count} labels, more than the limit of {}",
                self.max_labels
            );
            return Ok((Err(why), shown));
        }
        Ok((Ok(pairs), shown))
    }
}

/// A stream's `"values"` array: each entry checked and stored (or kept). `Err` when it is
/// not an array.
struct ValuesShape<'w, 's, 'b, 'l, S> {
    walk: &'w mut Walk<'b, 'l, S>,
    si: usize,
    target: Entries<'s, 'b>,
}

impl<'b, S: Sink> Shape<'b> for ValuesShape<'_, '_, 'b, '_, S> {
    type Out = Result<(), String>;

    fn other(self, _found: Found<'b>) -> Self::Out {
        Err(VALUES_SHAPE.into())
    }

    fn array<A: SeqAccess<'b>>(mut self, mut a: A) -> Result<Self::Out, A::Error> {
        let keep = self.walk.limits.max_attributes_per_item;
        let mut ei = 0;
        while let Some(entry) = a.next_element_seed(Any(EntryShape {
            metadata: &mut self.walk.metadata,
            keep,
        }))? {
            self.entry(ei, entry);
            ei += 1;
        }
        Ok(Ok(()))
    }
}

impl<'b, S: Sink> ValuesShape<'_, '_, 'b, '_, S> {
    fn entry(&mut self, ei: usize, entry: Result<Parsed<'b>, String>) {
        let walk = &mut *self.walk;
        let checked = entry.and_then(|e| {
            check_entry(
                &e.line,
                &walk.metadata,
                e.metadata_count,
                walk.limits,
                &mut walk.attrs,
            )
            .map(|()| e)
        });
        match &mut self.target {
            Entries::Store(None) => {
                let line = checked.as_ref().map_or(0, |e| e.line.len());
                walk.footprint.add(0, line);
            }
            Entries::Store(Some(info)) => match checked {
                Ok(e) => walk.store(info, (self.si, ei), (e.ts, &e.line), false),
                Err(reason) => {
                    walk.footprint.add(info.text_bytes(), 0);
                    let e = entry_error(info, (self.si, ei), reason);
                    walk.refuse(Refused::Error(e));
                }
            },
            Entries::Keep(list) => {
                // The list costs what its entries hold, besides the rows they become.
                let size = std::mem::size_of::<Pending<'_>>()
                    + checked.as_ref().map_or(0, |e| e.line.len())
                    + walk.attrs.len();
                if !walk.footprint.add(0, size) {
                    walk.refuse(Refused::OverBudget);
                }
                if walk.refused.is_none() {
                    list.push(Pending {
                        entry: checked.map(|e| (e.ts, e.line, walk.attrs.clone())),
                    });
                }
            }
        }
    }
}

/// An entry's time and line; its metadata is in the walk's list.
struct Parsed<'b> {
    ts: i64,
    line: Cow<'b, str>,
    metadata_count: usize,
}

/// One value, `["<unix ns>", "line"]` or `["<unix ns>", "line", {metadata}]`: the entry,
/// or why it is refused. Its metadata pairs replace `metadata`'s, the first `keep` of them
/// (all are counted).
struct EntryShape<'m, 'b> {
    metadata: &'m mut Vec<(Cow<'b, str>, Cow<'b, str>)>,
    keep: usize,
}

const ENTRY_SHAPE: &str =
    "each value must be [\"<unix ns>\", \"line\"] or [\"<unix ns>\", \"line\", {metadata}]";

impl<'b> Shape<'b> for EntryShape<'_, 'b> {
    type Out = Result<Parsed<'b>, String>;

    fn other(self, _found: Found<'b>) -> Self::Out {
        self.metadata.clear();
        Err(ENTRY_SHAPE.into())
    }

    fn array<A: SeqAccess<'b>>(self, mut a: A) -> Result<Self::Out, A::Error> {
        self.metadata.clear();
        let ts = a.next_element_seed(Any(Text))?;
        let line = a.next_element_seed(Any(Text))?;
        let metadata = a.next_element_seed(Any(MetadataShape {
            pairs: &mut *self.metadata,
            keep: self.keep,
        }))?;
        let mut extra = false;
        while a.next_element::<IgnoredAny>()?.is_some() {
            extra = true;
        }
        let (Some(ts), Some(line)) = (ts, line) else {
            return Ok(Err(ENTRY_SHAPE.into()));
        };
        if extra {
            return Ok(Err(ENTRY_SHAPE.into()));
        }
        let ts = match ts {
            Found::Str(s) => match s.parse::<i64>() {
                Ok(ts) => ts,
                Err(_) => {
                    return Ok(Err(format!(
                        "timestamp {s:?} is not an integer of Unix nanoseconds"
                    )));
                }
            },
            other => {
                return Ok(Err(format!(
                    "timestamp {other} must be a string of Unix nanoseconds"
                )));
            }
        };
        let Found::Str(line) = line else {
            return Ok(Err("the log line must be a string".into()));
        };
        let metadata_count = match metadata {
            None => 0,
            Some(Ok(count)) => count,
            Some(Err(why)) => return Ok(Err(why)),
        };
        Ok(Ok(Parsed {
            ts,
            line,
            metadata_count,
        }))
    }
}

/// An entry's structured metadata object: how many pairs it has, or why it is refused.
struct MetadataShape<'m, 'b> {
    pairs: &'m mut Vec<(Cow<'b, str>, Cow<'b, str>)>,
    keep: usize,
}

impl<'b> Shape<'b> for MetadataShape<'_, 'b> {
    type Out = Result<usize, String>;

    fn other(self, _found: Found<'b>) -> Self::Out {
        Err("structured metadata must be an object of string values".into())
    }

    fn object<A: MapAccess<'b>>(self, mut a: A) -> Result<Self::Out, A::Error> {
        let (mut count, mut problem) = (0usize, None::<String>);
        while let Some(name) = next_name(&mut a)? {
            let value = a.next_value_seed(Any(Text))?;
            let Found::Str(value) = value else {
                problem.get_or_insert_with(|| {
                    format!("structured metadata {name:?} must be a string")
                });
                continue;
            };
            // A repeated name keeps its last value and counts once, as in a decoded object
            // (looked for while within the limit: past it the entry is refused anyway).
            if count <= self.keep
                && let Some(p) = self.pairs.iter_mut().find(|(n, _)| *n == name)
            {
                p.1 = value;
                continue;
            }
            count += 1;
            if self.pairs.len() < self.keep {
                self.pairs.push((name, value));
            }
        }
        Ok(problem.map_or(Ok(count), Err))
    }
}

#[cfg(test)]
mod tests;
