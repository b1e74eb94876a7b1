//! Functions over instant vectors and scalars: math, trig, clamping,
//! rounding, time/date, `scalar`/`vector`, sorting, `absent`, `timestamp`.

use promql_parser::parser::{Call, Expr};

use super::{absent_labels, string_arg};
use crate::error::{Result, exec_err};
use crate::eval::Evaluator;
use crate::model::{Labels, Matrix, Sample, Vector};

fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn simple(v: &Vector, f: impl Fn(f64) -> f64) -> Vector {
    v.iter()
        .filter(|s| s.h.is_none())
        .map(|s| Sample {
            metric: s.metric.clone(),
            t: s.t,
            f: f(s.f),
            h: None,
            drop_name: true,
        })
        .collect()
}

fn scalar_at(v: &[Vector], i: usize) -> f64 {
    v.get(i)
        .and_then(|x| x.first())
        .map(|s| s.f)
        .unwrap_or(f64::NAN)
}

/// Civil date from days since the epoch (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(name: &str, secs: i64) -> f64 {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "year" => y as f64,
        "month" => m as f64,
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
            let mut doy = cum[(m - 1) as usize] + d as i64;
            if m > 2 && is_leap(y) {
                doy += 1;
            }
            doy as f64
        }
        "hour" => (rem / 3600) as f64,
        "minute" => ((rem % 3600) / 60) as f64,
        "days_in_month" => match m {
            2 => {
                if is_leap(y) {
                    29.0
                } else {
                    28.0
                }
            }
            4 | 6 | 9 | 11 => 30.0,
            _ => 31.0,
        },
        _ => f64::NAN,
    }
}

/// Natural ordering used by `sort_by_label` (digits compared numerically).
fn natural_less(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

/// Sorts ascending by value with NaN last.
fn sort_by_value(v: &mut Vector, desc: bool) {
    v.retain(|s| s.h.is_none());
    v.sort_by(|a, b| {
        use std::cmp::Ordering::*;
        match (a.f.is_nan(), b.f.is_nan()) {
            (true, true) => Equal,
            (true, false) => Greater,
            (false, true) => Less,
            _ => {
                let o = a.f.partial_cmp(&b.f).unwrap_or(Equal);
                if desc { o.reverse() } else { o }
            }
        }
    });
}

/// Evaluates a function whose arguments are all instant vectors, scalars
/// or strings.
pub(crate) fn eval_instant(ev: &Evaluator<'_>, c: &Call, args: &[&Expr]) -> Result<Matrix> {
    let name = c.func.name;
    let sort_labels: Vec<String> = if name.starts_with("sort_by_label") {
        (1..args.len())
            .map(|i| string_arg(c, i))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    if name.starts_with("histogram_") {
        return super::histograms::eval(ev, c, args);
    }
    let absent_lbls = if name == "absent" {
        args.first().map(|a| absent_labels(a)).unwrap_or_default()
    } else {
        Labels::empty()
    };
    ev.range_eval(args, |v, ts| {
        let out: Vector = match name {
            "abs" => simple(&v[0], f64::abs),
            "ceil" => simple(&v[0], f64::ceil),
            "floor" => simple(&v[0], f64::floor),
            "exp" => simple(&v[0], f64::exp),
            "sqrt" => simple(&v[0], f64::sqrt),
            "ln" => simple(&v[0], f64::ln),
            "log2" => simple(&v[0], f64::log2),
            "log10" => simple(&v[0], f64::log10),
            "sin" => simple(&v[0], f64::sin),
            "cos" => simple(&v[0], f64::cos),
            "tan" => simple(&v[0], f64::tan),
            "asin" => simple(&v[0], f64::asin),
            "acos" => simple(&v[0], f64::acos),
            "atan" => simple(&v[0], f64::atan),
            "sinh" => simple(&v[0], f64::sinh),
            "cosh" => simple(&v[0], f64::cosh),
            "tanh" => simple(&v[0], f64::tanh),
            "asinh" => simple(&v[0], f64::asinh),
            "acosh" => simple(&v[0], f64::acosh),
            "atanh" => simple(&v[0], f64::atanh),
            "rad" => simple(&v[0], |x| x * std::f64::consts::PI / 180.0),
            "deg" => simple(&v[0], |x| x * 180.0 / std::f64::consts::PI),
            "sgn" => simple(&v[0], |x| {
                if x < 0.0 {
                    -1.0
                } else if x > 0.0 {
                    1.0
                } else {
                    x
                }
            }),
            "pi" => vec![Sample::float(Labels::empty(), std::f64::consts::PI)],
            "time" => vec![Sample::float(Labels::empty(), ts as f64 / 1000.0)],
            "max_of" => vec![Sample::float(
                Labels::empty(),
                go_max(scalar_at(v, 0), scalar_at(v, 1)),
            )],
            "min_of" => vec![Sample::float(
                Labels::empty(),
                go_min(scalar_at(v, 0), scalar_at(v, 1)),
            )],
            "round" => {
                let to = if args.len() >= 2 {
                    scalar_at(v, 1)
                } else {
                    1.0
                };
                let inv = 1.0 / to;
                simple(&v[0], |f| (f * inv + 0.5).floor() / inv)
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let (lo, hi) = match name {
                    "clamp" => (scalar_at(v, 1), scalar_at(v, 2)),
                    "clamp_min" => (scalar_at(v, 1), f64::INFINITY),
                    _ => (f64::NEG_INFINITY, scalar_at(v, 1)),
                };
                if hi < lo {
                    Vec::new()
                } else {
                    simple(&v[0], |f| go_max(lo, go_min(hi, f)))
                }
            }
            "scalar" => {
                let floats: Vec<f64> = v[0].iter().filter(|s| s.h.is_none()).map(|s| s.f).collect();
                let f = if floats.len() == 1 {
                    floats[0]
                } else {
                    f64::NAN
                };
                vec![Sample::float(Labels::empty(), f)]
            }
            "vector" => vec![Sample::float(Labels::empty(), scalar_at(v, 0))],
            "timestamp" => v[0]
                .iter()
                .map(|s| Sample {
                    metric: s.metric.clone(),
                    t: s.t,
                    f: s.t as f64 / 1000.0,
                    h: None,
                    drop_name: true,
                })
                .collect(),
            "absent" => {
                if v[0].is_empty() {
                    vec![Sample::float(absent_lbls.clone(), 1.0)]
                } else {
                    Vec::new()
                }
            }
            "sort" | "sort_desc" => {
                let mut x = v[0].clone();
                sort_by_value(&mut x, name == "sort_desc");
                x
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut x = v[0].clone();
                let desc = name == "sort_by_label_desc";
                x.sort_by(|a, b| {
                    for l in &sort_labels {
                        let (va, vb) = (a.metric.get(l), b.metric.get(l));
                        if va == vb {
                            continue;
                        }
                        let o = natural_less(va, vb);
                        return if desc { o.reverse() } else { o };
                    }
                    let o = a.metric.cmp(&b.metric);
                    if desc { o.reverse() } else { o }
                });
                x
            }
            "year" | "month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour"
            | "minute" | "days_in_month" => {
                if args.is_empty() {
                    vec![Sample::float(
                        Labels::empty(),
                        date_part(name, ts.div_euclid(1000)),
                    )]
                } else {
                    v[0].iter()
                        .filter(|s| s.h.is_none())
                        .map(|s| Sample {
                            metric: s.metric.clone(),
                            t: s.t,
                            f: if s.f.is_finite() {
                                date_part(name, s.f as i64)
                            } else {
                                date_part(name, i64::MIN / 4)
                            },
                            h: None,
                            drop_name: true,
                        })
                        .collect()
                }
            }
            other => return Err(exec_err!("function {other} is not supported")),
        };
        Ok(out)
    })
}
