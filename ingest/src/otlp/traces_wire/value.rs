//! OTLP `KeyValue`s and `AnyValue`s on the wire: checked as prost would decode them and
//! written as the JSON [`crate::attributes::any_to_json`] gives for their prost form,
//! without building them.
//!
//! An `AnyValue` is a oneof: of its fields the last one present wins, and when the last
//! ones are the same message variant (array or kvlist) given more than once, they merge
//! (their values concatenate). A `KeyValue`'s `value` given more than once merges too,
//! which [`Merged`] walks as one message.

use crate::attributes::{bytes_text, double_json, push_int, push_json_str, write_attributes_json};
use crate::protowire::{
    At, Fields, I64, LEN, Merged, Named, VARINT, Walk, WireError, bytes, fixed64, text, varint,
};

// Field names of the messages walked, for errors.
const KEY_VALUE: &[(u32, &str, u8)] = &[
    (1, "key", LEN),
    (2, "value", LEN),
    (3, "key_strindex", VARINT),
];
const ANY_VALUE: &[(u32, &str, u8)] = &[
    (1, "value", LEN),
    (2, "value", VARINT),
    (3, "value", VARINT),
    (4, "value", I64),
    (5, "value", LEN),
    (6, "value", LEN),
    (7, "value", LEN),
    (8, "value", VARINT),
];
const VALUES: &[(u32, &str, u8)] = &[(1, "values", LEN)];

/// An attribute value as the walk keeps it: the common scalars, or the `KeyValue` whose
/// value is anything else (walked again when written). Every value is checked when its
/// `KeyValue` is read.
#[derive(Clone)]
pub(crate) enum AttrValue<'a> {
    Null,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Other(Fields<'a>),
}

/// Reads a `KeyValue` message: its key (the last given) and its value, checked.
pub(crate) fn key_value(f: Fields<'_>) -> Result<(&str, AttrValue<'_>), WireError> {
    let mut key = "";
    let mut values = 0usize;
    let mut single = None;
    let mut g = f.clone();
    while let Some((n, w)) = g.next_field().named("KeyValue", KEY_VALUE)? {
        match n {
            1 => key = text(w).at("KeyValue", "key")?,
            2 => {
                single = Some(g.message(w).at("KeyValue", "value")?);
                values += 1;
            }
            3 => {
                varint(w).at("KeyValue", "key_strindex")?;
            }
            _ => {}
        }
    }
    let value = match (values, single) {
        (1, Some(v)) => match scalar(v).at("KeyValue", "value")? {
            Some(v) => v,
            None => other(f)?,
        },
        (0, _) => AttrValue::Null,
        _ => other(f)?,
    };
    Ok((key, value))
}

/// A value that is not one plain scalar: checked now, written later.
fn other(kv: Fields<'_>) -> Result<AttrValue<'_>, WireError> {
    any_value(Merged::new(kv.clone(), 2), None).at("KeyValue", "value")?;
    Ok(AttrValue::Other(kv))
}

/// An `AnyValue` holding a string, bool or int (the last of its fields), checked; `None`
/// when it holds anything else.
fn scalar(mut f: Fields<'_>) -> Result<Option<AttrValue<'_>>, WireError> {
    let mut out = AttrValue::Null;
    while let Some((n, w)) = f.next_field().named("AnyValue", ANY_VALUE)? {
        out = match n {
            1 => AttrValue::Str(text(w).at("AnyValue", "value")?),
            2 => AttrValue::Bool(varint(w).at("AnyValue", "value")? != 0),
            3 => AttrValue::Int(varint(w).at("AnyValue", "value")? as i64),
            4..=8 => return Ok(None),
            _ => continue,
        };
    }
    Ok(Some(out))
}

/// Writes a value's JSON into `out`.
pub(crate) fn write_value(out: &mut String, v: &AttrValue<'_>) -> Result<(), WireError> {
    match v {
        AttrValue::Null => out.push_str("null"),
        AttrValue::Str(s) => push_json_str(out, s),
        AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AttrValue::Int(n) => push_int(out, *n),
        AttrValue::Other(kv) => any_value(Merged::new(kv.clone(), 2), Some(out))?,
    }
    Ok(())
}

/// Writes an attribute list's JSON object into `out`: keys sorted, the last of a key kept.
pub(crate) fn write_attributes(
    out: &mut String,
    members: &mut [(&str, AttrValue<'_>)],
) -> Result<(), WireError> {
    let mut result = Ok(());
    write_attributes_json(out, members, |o, v| {
        if result.is_ok() {
            result = write_value(o, v);
        }
    });
    result
}

/// The oneof's variants by field number.
const STRING: u32 = 1;
const BOOL: u32 = 2;
const INT: u32 = 3;
const DOUBLE: u32 = 4;
const ARRAY: u32 = 5;
const KVLIST: u32 = 6;
const BYTES: u32 = 7;
const STRINDEX: u32 = 8;

/// The final value of a oneof of scalars.
enum Scalar<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Strindex(i32),
}

/// Checks the `AnyValue` whose fields `v` walks, and writes its JSON into `out` if given.
pub(crate) fn any_value<'a>(v: impl Walk<'a>, out: Option<&mut String>) -> Result<(), WireError> {
    // Which variant wins, and where its final run of fields starts (counted in oneof
    // fields): only that run is written; every field is checked.
    let (mut last, mut index, mut run_start) = (0u32, 0usize, 0usize);
    let mut scan = v.clone();
    while let Some((n, _)) = scan.next_field().named("AnyValue", ANY_VALUE)? {
        if (STRING..=STRINDEX).contains(&n) {
            if n != last {
                run_start = index;
                last = n;
            }
            index += 1;
        }
    }
    let mut out = out;
    if let Some(o) = out.as_deref_mut() {
        match last {
            ARRAY => o.push('['),
            0 => o.push_str("null"),
            _ => {}
        }
    }
    let mut scalar = None;
    let mut first_element = true;
    let mut members: Vec<(&'a str, AttrValue<'a>)> = Vec::new();
    let mut index = 0usize;
    let mut g = v;
    while let Some((n, w)) = g.next_field().named("AnyValue", ANY_VALUE)? {
        if !(STRING..=STRINDEX).contains(&n) {
            continue;
        }
        let in_run = index >= run_start;
        index += 1;
        let r = (|| -> Result<(), WireError> {
            match n {
                STRING => scalar = Some(Scalar::Str(text(w)?)),
                BOOL => scalar = Some(Scalar::Bool(varint(w)? != 0)),
                INT => scalar = Some(Scalar::Int(varint(w)? as i64)),
                DOUBLE => scalar = Some(Scalar::Double(f64::from_bits(fixed64(w)?))),
                BYTES => scalar = Some(Scalar::Bytes(bytes(w)?)),
                STRINDEX => scalar = Some(Scalar::Strindex(varint(w)? as i32)),
                ARRAY => {
                    let mut a = g.message(w)?;
                    while let Some((n, w)) = a.next_field().named("ArrayValue", VALUES)? {
                        if n != 1 {
                            continue;
                        }
                        let element = a.message(w).at("ArrayValue", "values")?;
                        match out.as_deref_mut().filter(|_| in_run) {
                            Some(o) => {
                                if !first_element {
                                    o.push(',');
                                }
                                first_element = false;
                                any_value(element, Some(o)).at("ArrayValue", "values")?;
                            }
                            None => any_value(element, None).at("ArrayValue", "values")?,
                        }
                    }
                }
                _ => {
                    // KVLIST
                    let mut l = g.message(w)?;
                    while let Some((n, w)) = l.next_field().named("KeyValueList", VALUES)? {
                        if n != 1 {
                            continue;
                        }
                        let kv = key_value(l.message(w).at("KeyValueList", "values")?)
                            .at("KeyValueList", "values")?;
                        if in_run && out.is_some() {
                            members.push(kv);
                        }
                    }
                }
            }
            Ok(())
        })();
        r.at("AnyValue", "value")?;
    }
    let Some(o) = out else {
        return Ok(());
    };
    match last {
        ARRAY => o.push(']'),
        KVLIST => write_attributes(o, &mut members)?,
        _ => match scalar {
            None => {}
            Some(Scalar::Str(s)) => push_json_str(o, s),
            Some(Scalar::Bool(b)) => o.push_str(if b { "true" } else { "false" }),
            Some(Scalar::Int(n)) => push_int(o, n),
            Some(Scalar::Double(d)) => o.push_str(&double_json(d).to_string()),
            Some(Scalar::Bytes(b)) => push_json_str(o, &bytes_text(b)),
            Some(Scalar::Strindex(i)) => push_int(o, i64::from(i)),
        },
    }
    Ok(())
}
