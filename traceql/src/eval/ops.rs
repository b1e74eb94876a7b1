//! Comparisons, arithmetic, aggregation and grouping on evaluated values.

use std::cmp::Ordering;

use crate::ast::BinOp;
use crate::value::{Ev, Value};

/// Hashable identity of a `by()` value; groups keep first-appearance order.
#[derive(PartialEq, Eq, Hash)]
pub(super) enum GroupKey<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(u64),
    Duration(i64),
    Str(&'a str),
    Status(crate::value::StatusCode),
    Kind(crate::value::SpanKind),
    Array(String),
}

impl<'a> GroupKey<'a> {
    pub(super) fn of(v: Ev<'a>) -> Self {
        match v {
            Ev::Nil => GroupKey::Nil,
            Ev::Bool(b) => GroupKey::Bool(b),
            Ev::Int(i) => GroupKey::Int(i),
            Ev::Float(f) => GroupKey::Float(f.to_bits()),
            Ev::Duration(d) => GroupKey::Duration(d),
            Ev::Str(s) => GroupKey::Str(s),
            Ev::Status(s) => GroupKey::Status(s),
            Ev::Kind(k) => GroupKey::Kind(k),
            Ev::Array(a) => GroupKey::Array(format!("{a:?}")),
        }
    }
}

/// Sum/average of numeric values: ints stay ints, durations stay durations, a mix
/// becomes a float.
#[derive(Default)]
pub(super) struct Acc {
    pub(super) n: usize,
    int_sum: i64,
    float_sum: f64,
    all_int: bool,
    all_duration: bool,
    started: bool,
}

impl Acc {
    pub(super) fn add(&mut self, v: Ev<'_>) {
        if !self.started {
            self.started = true;
            self.all_int = true;
            self.all_duration = true;
        }
        self.n += 1;
        match v {
            Ev::Int(i) => {
                self.all_duration = false;
                self.int_sum = self.int_sum.wrapping_add(i);
            }
            Ev::Duration(d) => {
                self.all_int = false;
                self.int_sum = self.int_sum.wrapping_add(d);
            }
            _ => {
                self.all_int = false;
                self.all_duration = false;
            }
        }
        self.float_sum += v.as_f64().unwrap_or(0.0);
    }

    pub(super) fn sum(&self) -> Value {
        if self.all_int {
            Value::Int(self.int_sum)
        } else if self.all_duration {
            Value::Duration(self.int_sum)
        } else {
            Value::Float(self.float_sum)
        }
    }

    pub(super) fn avg(&self) -> Value {
        if self.all_duration {
            Value::Duration(self.int_sum / self.n as i64)
        } else {
            Value::Float(self.float_sum / self.n as f64)
        }
    }
}

/// Arithmetic on two values; ints stay ints (division by zero gives nil), other
/// numeric mixes are computed as floats (durations as nanoseconds), as in Tempo.
pub(crate) fn arith<'x>(op: BinOp, l: Ev<'x>, r: Ev<'x>) -> Ev<'x> {
    if let (Ev::Int(a), Ev::Int(b)) = (l, r) {
        return match op {
            BinOp::Add => Ev::Int(a.wrapping_add(b)),
            BinOp::Sub => Ev::Int(a.wrapping_sub(b)),
            BinOp::Mul => Ev::Int(a.wrapping_mul(b)),
            BinOp::Div => a.checked_div(b).map_or(Ev::Nil, Ev::Int),
            BinOp::Mod => a.checked_rem(b).map_or(Ev::Nil, Ev::Int),
            BinOp::Pow => match u32::try_from(b) {
                Ok(e) => Ev::Int(a.wrapping_pow(e)),
                Err(_) => Ev::Float((a as f64).powf(b as f64)),
            },
            _ => Ev::Nil,
        };
    }
    let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) else {
        return Ev::Nil;
    };
    let v = match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        _ => return Ev::Nil,
    };
    Ev::Float(v)
}

/// A comparison or regex match. Nil on either side is false (also for `!=`), values of
/// incompatible types are false, arrays match when any element does (`!=`/`!~`: all).
pub(crate) fn compare(op: BinOp, l: Ev<'_>, r: Ev<'_>, regex: Option<&regex::Regex>) -> bool {
    match (l, r) {
        (Ev::Nil, _) | (_, Ev::Nil) => false,
        (Ev::Array(a), Ev::Array(_)) => {
            // Tempo rejects array-to-array comparisons; equal arrays are equal
            op == BinOp::Eq && matches!(r, Ev::Array(b) if a == b)
        }
        (Ev::Array(a), _) => {
            let all = matches!(op, BinOp::Neq | BinOp::Nre);
            let mut it = a.iter().map(|v| compare(op, Ev::from_value(v), r, regex));
            if all { it.all(|m| m) } else { it.any(|m| m) }
        }
        (_, Ev::Array(a)) => {
            let all = matches!(op, BinOp::Neq | BinOp::Nre);
            let mut it = a.iter().map(|v| compare(op, l, Ev::from_value(v), regex));
            if all { it.all(|m| m) } else { it.any(|m| m) }
        }
        (Ev::Str(a), Ev::Str(b)) => match op {
            BinOp::Re | BinOp::Nre => {
                let m = match regex {
                    Some(re) => re.is_match(a),
                    None => false,
                };
                m == (op == BinOp::Re)
            }
            _ => ordered(op, a.cmp(b)),
        },
        (Ev::Bool(a), Ev::Bool(b)) => match op {
            BinOp::Eq => a == b,
            BinOp::Neq => a != b,
            _ => false,
        },
        (Ev::Status(a), Ev::Status(b)) => eq_only(op, a == b),
        (Ev::Kind(a), Ev::Kind(b)) => eq_only(op, a == b),
        _ => match l.num_cmp(r) {
            Some(ord) => ordered(op, ord),
            None => false,
        },
    }
}

fn eq_only(op: BinOp, equal: bool) -> bool {
    match op {
        BinOp::Eq => equal,
        BinOp::Neq => !equal,
        _ => false,
    }
}

fn ordered(op: BinOp, ord: Ordering) -> bool {
    match op {
        BinOp::Eq => ord == Ordering::Equal,
        BinOp::Neq => ord != Ordering::Equal,
        BinOp::Lt => ord == Ordering::Less,
        BinOp::Lte => ord != Ordering::Greater,
        BinOp::Gt => ord == Ordering::Greater,
        BinOp::Gte => ord != Ordering::Less,
        _ => false,
    }
}
