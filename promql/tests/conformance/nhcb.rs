//! `load_with_nhcb`: converts classic histogram series (`_bucket{le}`,
//! `_count`, `_sum`) into native histograms with custom buckets, like
//! Prometheus's `convertnhcb` does for test data.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_promql::Labels;
use strata_promql::histogram::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Span};
use strata_promql::model::{RawSample, SampleValue};

use crate::series::SeqVal;

#[derive(Default, Clone)]
struct Temp {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    err: bool,
}

impl Temp {
    fn convert(mut self) -> Option<FloatHistogram> {
        if self.err {
            return None;
        }
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.buckets.dedup_by(|b, a| a.0 == b.0);
        for w in self.buckets.windows(2) {
            if w[1].1 < w[0].1 {
                return None;
            }
        }
        let count = match self.count {
            Some(c) => c,
            None => self.buckets.last()?.1,
        };
        if self.buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            self.buckets.push((f64::INFINITY, count));
        }
        let mut h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: self.sum,
            positive_spans: vec![Span {
                offset: 0,
                length: self.buckets.len() as u32,
            }],
            ..Default::default()
        };
        let mut prev = 0.0;
        for (le, c) in &self.buckets {
            h.positive_buckets.push(c - prev);
            prev = *c;
            if le.is_finite() {
                h.custom_values.push(*le);
            }
        }
        if count != self.buckets.last()?.1 {
            return None;
        }
        Some(h.compact())
    }
}

/// Returns the NHCB series built from the classic histograms in `series`.
pub fn convert_classic(
    gap: i64,
    series: &[(Labels, Vec<SeqVal>)],
) -> Vec<(Labels, Vec<RawSample>)> {
    let mut groups: BTreeMap<Labels, BTreeMap<i64, Temp>> = BTreeMap::new();
    for (labels, vals) in series {
        let name = labels.get("__name__");
        let (kind, base) = if let Some(b) = name.strip_suffix("_bucket") {
            (0, b)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (1, b)
        } else if let Some(b) = name.strip_suffix("_count") {
            (2, b)
        } else {
            continue;
        };
        let le = if kind == 0 {
            match labels.get("le").parse::<f64>() {
                Ok(v) if !v.is_nan() => Some(v),
                _ => continue,
            }
        } else {
            None
        };
        let mut key = labels.clone();
        key.set("__name__", base);
        key.del("le");
        let g = groups.entry(key).or_default();
        for (i, v) in vals.iter().enumerate() {
            let SeqVal::Float(f) = v else { continue };
            let t = g.entry(i as i64 * gap).or_default();
            match kind {
                0 => {
                    if *f < 0.0 {
                        t.err = true;
                    }
                    if let Some(le) = le {
                        t.buckets.push((le, *f));
                    }
                }
                1 => t.sum = *f,
                _ => t.count = Some(*f),
            }
        }
    }
    groups
        .into_iter()
        .map(|(labels, by_t)| {
            let samples = by_t
                .into_iter()
                .filter_map(|(t, tmp)| {
                    tmp.convert().map(|h| RawSample {
                        t,
                        value: SampleValue::Histogram(Arc::new(h)),
                    })
                })
                .collect();
            (labels, samples)
        })
        .collect()
}
