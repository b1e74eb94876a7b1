//! Prometheus HTTP API JSON for query results: the `data` object
//! (`resultType`, `result`) with floats as strings formatted like
//! Prometheus ("NaN", "+Inf", "-Inf", shortest round-trip) and native
//! histograms as `{count, sum, buckets: [[rule, lower, upper, count]]}`.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::histogram::FloatHistogram;
use crate::model::{FPoint, HPoint, Labels, Sample, Series, Value};

/// Formats like Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{f}")
    }
}

/// `f` in Go's `%e`-style exponent notation (`1e+21`, `1.5e-07`): Rust writes `1e21` and
/// `1.5e-7`, so the exponent gets its sign and at least two digits.
pub(crate) fn go_exponent(f: f64) -> String {
    let s = format!("{f:e}");
    let Some((m, e)) = s.split_once('e') else {
        return s;
    };
    let (sign, digits) = match e.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', e),
    };
    if digits.len() < 2 {
        format!("{m}e{sign}0{digits}")
    } else {
        format!("{m}e{sign}{digits}")
    }
}

/// Formats a sample value the way Prometheus's JSON API does ('e' notation
/// below 1e-6 and from 1e21 on).
pub fn format_api_float(f: f64) -> String {
    let a = f.abs();
    if f.is_finite() && a != 0.0 && !(1e-6..1e21).contains(&a) {
        return go_exponent(f);
    }
    format_float(f)
}

/// Formats like Prometheus's `labels.FormatOpenMetricsFloat` (integers get ".0").
pub fn format_openmetrics_float(f: f64) -> String {
    let s = format_api_float(f);
    if f.is_finite() && !s.contains(['e', '.']) {
        format!("{s}.0")
    } else {
        s
    }
}

struct Ts(i64);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

struct Metric<'a>(&'a Labels);

impl Serialize for Metric<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct FPair(i64, f64);

impl Serialize for FPair {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut q = s.serialize_seq(Some(2))?;
        q.serialize_element(&Ts(self.0))?;
        q.serialize_element(&ApiFloat(self.1))?;
        q.end()
    }
}

/// A sample value serialized as [`format_api_float`] formats it. A range query's matrix
/// holds thousands of values: writing each straight into the output (serde_json's
/// `collect_str`) instead of into a new `String` saved a sixth of a small range query's
/// CPU.
pub(crate) struct ApiFloat(pub f64);

impl Serialize for ApiFloat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        let a = f.abs();
        // Plain decimal notation: what `format_api_float` writes for finite values in the
        // range it does not put in exponent notation.
        if f.is_finite() && (a == 0.0 || (1e-6..1e21).contains(&a)) {
            return s.collect_str(&f);
        }
        s.serialize_str(&format_api_float(f))
    }
}

struct HPair<'a>(i64, &'a FloatHistogram);

impl Serialize for HPair<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut q = s.serialize_seq(Some(2))?;
        q.serialize_element(&Ts(self.0))?;
        q.serialize_element(&Hist(self.1))?;
        q.end()
    }
}

/// A native histogram in API JSON form.
struct Hist<'a>(&'a FloatHistogram);

impl Serialize for Hist<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let buckets: Vec<(u8, String, String, String)> = h
            .all_buckets()
            .into_iter()
            .filter(|b| b.count != 0.0)
            .map(|b| {
                let rule = match (b.lower_inclusive, b.upper_inclusive) {
                    (true, true) => 3,
                    (true, false) => 1,
                    (false, true) => 0,
                    (false, false) => 2,
                };
                (
                    rule,
                    format_api_float(b.lower),
                    format_api_float(b.upper),
                    format_api_float(b.count),
                )
            })
            .collect();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("count", &format_api_float(h.count))?;
        m.serialize_entry("sum", &format_api_float(h.sum))?;
        if !buckets.is_empty() {
            m.serialize_entry("buckets", &buckets)?;
        }
        m.end()
    }
}

struct VectorElem<'a>(&'a Sample);

impl Serialize for VectorElem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &Metric(&self.0.metric))?;
        match &self.0.h {
            Some(h) => m.serialize_entry("histogram", &HPair(self.0.t, h))?,
            None => m.serialize_entry("value", &FPair(self.0.t, self.0.f))?,
        }
        m.end()
    }
}

struct MatrixElem<'a>(&'a Series);

impl Serialize for MatrixElem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("metric", &Metric(&self.0.metric))?;
        if !self.0.floats.is_empty() {
            let v: Vec<FPair> = self
                .0
                .floats
                .iter()
                .map(|p: &FPoint| FPair(p.t, p.f))
                .collect();
            m.serialize_entry("values", &v)?;
        }
        if !self.0.histograms.is_empty() {
            let v: Vec<HPair<'_>> = self
                .0
                .histograms
                .iter()
                .map(|p: &HPoint| HPair(p.t, &p.h))
                .collect();
            m.serialize_entry("histograms", &v)?;
        }
        m.end()
    }
}

/// The API `data` object of a query result; serialize it with serde.
pub struct ApiData<'a>(pub &'a Value);

impl Serialize for ApiData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        match self.0 {
            Value::Scalar { t, v } => {
                m.serialize_entry("resultType", "scalar")?;
                m.serialize_entry("result", &FPair(*t, *v))?;
            }
            Value::String { t, v } => {
                m.serialize_entry("resultType", "string")?;
                m.serialize_entry("result", &(Ts(*t), v))?;
            }
            Value::Vector(vec) => {
                m.serialize_entry("resultType", "vector")?;
                let e: Vec<VectorElem<'_>> = vec.iter().map(VectorElem).collect();
                m.serialize_entry("result", &e)?;
            }
            Value::Matrix(mat) => {
                m.serialize_entry("resultType", "matrix")?;
                let e: Vec<MatrixElem<'_>> = mat.iter().map(MatrixElem).collect();
                m.serialize_entry("result", &e)?;
            }
        }
        m.end()
    }
}

/// The API `data` object as a JSON value.
pub fn to_api_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(ApiData(v)).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests;
