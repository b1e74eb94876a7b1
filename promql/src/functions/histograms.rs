//! Histogram functions: `histogram_quantile(s)` and `histogram_fraction` over
//! classic `le` buckets and native histograms, and `histogram_count`,
//! `_sum`, `_avg`, `_stddev`, `_stdvar` over native histograms.

use std::collections::HashMap;

use promql_parser::parser::{Call, Expr};

use super::string_arg;
use crate::annotations::go_g;
use crate::error::Result;
use crate::eval::{Evaluator, aggregate_kahan as kahan_inc};
use crate::histogram::FloatHistogram;
use crate::histogram::quantile::{
    ClassicBucket, bucket_fraction, bucket_quantile, histogram_fraction, histogram_quantile,
};
use crate::model::{Labels, METRIC_NAME, Matrix, Sample, Vector};

fn variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let d = val - mean;
        (var, c) = kahan_inc(b.count * d * d, var, c);
    }
    (var + c) / h.count
}

/// Classic buckets grouped by series (without `le`), plus native histograms.
struct Split {
    classic: Vec<(Labels, Vec<ClassicBucket>)>,
    native: Vec<Sample>,
}

fn split(ev: &Evaluator<'_>, v: &Vector) -> Split {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut classic: Vec<(Labels, Vec<ClassicBucket>)> = Vec::new();
    let mut native = Vec::new();
    for s in v {
        if s.h.is_some() {
            native.push(s.clone());
            continue;
        }
        let le = s.metric.get("le");
        let Ok(ub) = parse_go_float(le) else {
            ev.ctx.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                le,
                s.metric.get(METRIC_NAME)
            ));
            continue;
        };
        let key = s.metric.drop_names(&["le".to_string()]);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            classic.push((key, Vec::new()));
            classic.len() - 1
        });
        classic[i].1.push(ClassicBucket {
            upper_bound: ub,
            count: s.f,
        });
    }
    // A native histogram with the same labels as a classic one is ambiguous.
    native.retain(|s| {
        if let Some(&i) = index.get(&s.metric)
            && !classic[i].1.is_empty()
        {
            ev.ctx.warn(format!(
                "vector contains a mix of classic and native histograms for metric name {:?}",
                s.metric.get(METRIC_NAME)
            ));
            classic[i].1.clear();
            return false;
        }
        true
    });
    Split { classic, native }
}

/// Parses a float like Go's `strconv.ParseFloat`.
pub(crate) fn parse_go_float(s: &str) -> std::result::Result<f64, ()> {
    let t = s.trim();
    if t.is_empty() || t != s {
        return Err(());
    }
    match t.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Ok(f64::INFINITY),
        "-inf" | "-infinity" => return Ok(f64::NEG_INFINITY),
        "nan" => return Ok(f64::NAN),
        _ => {}
    }
    t.parse::<f64>().map_err(|_| ())
}

fn quantile_warning(ev: &Evaluator<'_>, q: f64) {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        ev.ctx.warn(format!(
            "quantile value should be between 0 and 1, got {}",
            go_g(q)
        ));
    }
}

fn native_quantile(ev: &Evaluator<'_>, q: f64, s: &Sample) -> f64 {
    let Some(h) = &s.h else { return f64::NAN };
    let (v, flags) = histogram_quantile(q, h);
    let name = s.metric.get(METRIC_NAME);
    if flags.nan_result {
        ev.ctx.info(format!(
            "input to histogram_quantile has NaN observations, result is NaN for metric name {name:?}"
        ));
    }
    if flags.nan_skew {
        ev.ctx.info(format!(
            "input to histogram_quantile has NaN observations, result is skewed higher for metric name {name:?}"
        ));
    }
    v
}

fn classic_quantile(ev: &Evaluator<'_>, q: f64, l: &Labels, b: &[ClassicBucket]) -> f64 {
    let (v, flags) = bucket_quantile(q, b.to_vec());
    if flags.forced_monotonic {
        ev.ctx.info(format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
            l.get(METRIC_NAME)
        ));
    }
    v
}

fn out(metric: Labels, f: f64) -> Sample {
    Sample {
        metric,
        t: 0,
        f,
        h: None,
        drop_name: true,
    }
}

pub(crate) fn eval(ev: &Evaluator<'_>, c: &Call, args: &[&Expr]) -> Result<Matrix> {
    let name = c.func.name;
    let qlabel = if name == "histogram_quantiles" {
        string_arg(c, 1)?
    } else {
        String::new()
    };
    ev.range_eval(args, |v, _| {
        let res: Vector = match name {
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => v[0]
                .iter()
                .filter_map(|s| {
                    let h = s.h.as_ref()?;
                    let f = match name {
                        "histogram_count" => h.count,
                        "histogram_sum" => h.sum,
                        "histogram_avg" => h.sum / h.count,
                        "histogram_stddev" => variance(h).sqrt(),
                        _ => variance(h),
                    };
                    Some(out(s.metric.clone(), f))
                })
                .collect(),
            "histogram_quantile" => {
                let Some(q) = v.first().and_then(|x| x.first()).map(|s| s.f) else {
                    return Ok(Vec::new());
                };
                quantile_warning(ev, q);
                let sp = split(ev, &v[1]);
                let mut o = Vec::new();
                for s in &sp.native {
                    o.push(out(s.metric.clone(), native_quantile(ev, q, s)));
                }
                for (l, b) in &sp.classic {
                    if !b.is_empty() {
                        o.push(out(l.clone(), classic_quantile(ev, q, l, b)));
                    }
                }
                o
            }
            "histogram_quantiles" => {
                let qs: Vec<f64> = v
                    .iter()
                    .skip(2)
                    .map(|x| x.first().map(|s| s.f).unwrap_or(f64::NAN))
                    .collect();
                for q in &qs {
                    quantile_warning(ev, *q);
                }
                let sp = split(ev, &v[0]);
                let mut o = Vec::new();
                for q in qs {
                    let qs = crate::json::format_openmetrics_float(q);
                    for s in &sp.native {
                        let mut l = s.metric.clone();
                        l.set(&qlabel, &qs);
                        o.push(out(l, native_quantile(ev, q, s)));
                    }
                    for (l0, b) in &sp.classic {
                        if !b.is_empty() {
                            let mut l = l0.clone();
                            l.set(&qlabel, &qs);
                            o.push(out(l, classic_quantile(ev, q, l0, b)));
                        }
                    }
                }
                o
            }
            "histogram_fraction" => {
                let (Some(lo), Some(hi)) = (
                    v.first().and_then(|x| x.first()).map(|s| s.f),
                    v.get(1).and_then(|x| x.first()).map(|s| s.f),
                ) else {
                    return Ok(Vec::new());
                };
                let sp = split(ev, &v[2]);
                let mut o = Vec::new();
                for s in &sp.native {
                    if let Some(h) = &s.h {
                        let (f, nan) = histogram_fraction(lo, hi, h);
                        if nan {
                            ev.ctx.info(format!(
                                "input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {:?}",
                                s.metric.get(METRIC_NAME)
                            ));
                        }
                        o.push(out(s.metric.clone(), f));
                    }
                }
                for (l, b) in &sp.classic {
                    if !b.is_empty() {
                        o.push(out(l.clone(), bucket_fraction(lo, hi, b.clone())));
                    }
                }
                o
            }
            _ => Vec::new(),
        };
        Ok(res)
    })
}
