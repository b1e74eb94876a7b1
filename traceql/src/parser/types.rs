//! Tempo's static type rules: literal and intrinsic types are known when parsing,
//! attributes are not (`Ty::Unknown`), and operands of known, incompatible types are an
//! error (`{ name = 1 }`), while at evaluation time they are merely false.

use crate::ast::{BinOp, Field, Intrinsic};
use crate::value::Value;

/// Static type of an expression; `Unknown` for attributes (decided per span).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ty {
    Unknown,
    Nil,
    Bool,
    Int,
    Float,
    Duration,
    Str,
    Status,
    Kind,
}

impl Ty {
    fn of_value(v: &Value) -> Ty {
        match v {
            Value::Str(_) => Ty::Str,
            Value::Int(_) => Ty::Int,
            Value::Float(_) => Ty::Float,
            Value::Bool(_) => Ty::Bool,
            Value::Duration(_) => Ty::Duration,
            Value::Status(_) => Ty::Status,
            Value::Kind(_) => Ty::Kind,
            Value::Array(_) => Ty::Unknown,
            Value::Nil => Ty::Nil,
        }
    }

    fn of_intrinsic(i: Intrinsic) -> Ty {
        match i {
            Intrinsic::Status => Ty::Status,
            Intrinsic::Kind => Ty::Kind,
            Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart => {
                Ty::Duration
            }
            Intrinsic::ChildCount => Ty::Int,
            _ => Ty::Str,
        }
    }

    pub(super) fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Duration)
    }

    fn matches_operand(self, other: Ty) -> bool {
        self == Ty::Unknown
            || other == Ty::Unknown
            || self == other
            || (self.numeric() && other.numeric())
            || self == Ty::Nil
            || other == Ty::Nil
    }

    /// Tempo's `binaryTypeValid`.
    fn valid_for(self, op: BinOp) -> bool {
        match self {
            Ty::Unknown => true,
            Ty::Bool => matches!(op, BinOp::And | BinOp::Or | BinOp::Eq | BinOp::Neq),
            Ty::Int | Ty::Float | Ty::Duration => op.is_arithmetic() || op.is_comparison(),
            Ty::Str => op.is_comparison() || matches!(op, BinOp::Re | BinOp::Nre),
            Ty::Nil | Ty::Status | Ty::Kind => matches!(op, BinOp::Eq | BinOp::Neq),
        }
    }
}

/// Static type of `e`, failing (with a message) on operand types Tempo rejects.
pub(super) fn type_of(e: &Field) -> Result<Ty, String> {
    Ok(match e {
        Field::Lit(v) => Ty::of_value(v),
        Field::Attr(_) => Ty::Unknown,
        Field::Intrinsic(i) => Ty::of_intrinsic(*i),
        Field::Exists(..) => Ty::Bool,
        Field::Not(_) => Ty::Bool,
        Field::Neg(inner) => type_of(inner)?,
        Field::Binary { op, lhs, rhs, .. } => {
            let lt = type_of(lhs)?;
            let rt = type_of(rhs)?;
            if !lt.matches_operand(rt) {
                return Err(format!(
                    "binary operations must operate on the same type: {e}"
                ));
            }
            if !lt.valid_for(*op) || !rt.valid_for(*op) {
                return Err(format!("illegal operation for the given types: {e}"));
            }
            if op.is_arithmetic() {
                match (lt, rt) {
                    (Ty::Int, Ty::Int) => Ty::Int,
                    (Ty::Unknown, _) | (_, Ty::Unknown) => Ty::Unknown,
                    _ => Ty::Float,
                }
            } else {
                Ty::Bool
            }
        }
    })
}

pub(super) fn scoped_intrinsic(scope: &str, name: &str) -> Option<Intrinsic> {
    Some(match (scope, name) {
        ("trace", "duration") => Intrinsic::TraceDuration,
        ("trace", "rootName") => Intrinsic::RootName,
        ("trace", "rootService") => Intrinsic::RootServiceName,
        ("trace", "id") => Intrinsic::TraceId,
        ("span", "duration") => Intrinsic::Duration,
        ("span", "name") => Intrinsic::Name,
        ("span", "kind") => Intrinsic::Kind,
        ("span", "status") => Intrinsic::Status,
        ("span", "statusMessage") => Intrinsic::StatusMessage,
        ("span", "id") => Intrinsic::SpanId,
        ("span", "parentID") => Intrinsic::ParentId,
        ("span", "childCount") => Intrinsic::ChildCount,
        ("event", "name") => Intrinsic::EventName,
        ("event", "timeSinceStart") => Intrinsic::EventTimeSinceStart,
        ("link", "traceID") => Intrinsic::LinkTraceId,
        ("link", "spanID") => Intrinsic::LinkSpanId,
        ("instrumentation", "name") => Intrinsic::InstrumentationName,
        ("instrumentation", "version") => Intrinsic::InstrumentationVersion,
        _ => return None,
    })
}
