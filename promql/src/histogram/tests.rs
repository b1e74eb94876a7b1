use super::*;

fn h(schema: i32, buckets: &[f64], offset: i32) -> FloatHistogram {
    FloatHistogram {
        schema,
        count: buckets.iter().sum(),
        sum: 1.0,
        positive_spans: vec![Span {
            offset,
            length: buckets.len() as u32,
        }],
        positive_buckets: buckets.to_vec(),
        ..Default::default()
    }
}

#[test]
fn exponential_bounds_match_prometheus() {
    assert_eq!(bound_exponential(0, 0), 1.0);
    assert_eq!(bound_exponential(1, 0), 2.0);
    assert_eq!(bound_exponential(1, 1), 2.0 * 0.707_106_781_186_547_5);
    assert_eq!(bound_exponential(-1, 0), 0.5);
    assert_eq!(bound_exponential(1, -1), 4.0);
}

#[test]
fn add_reduces_to_lower_schema() {
    let mut a = h(1, &[1.0, 2.0], 1);
    let b = h(0, &[3.0], 1);
    a.add(&b).expect("compatible");
    assert_eq!(a.schema, 0);
    // Schema-1 buckets 1 and 2 both map to schema-0 bucket 1.
    assert_eq!(a.pos_sparse(), vec![(1, 6.0)]);
    assert_eq!(a.count, 6.0);
}

#[test]
fn sub_and_compact_drop_empty_buckets() {
    let mut a = h(0, &[1.0, 2.0, 3.0], 0);
    let b = h(0, &[1.0, 0.0, 3.0], 0);
    a.sub(&b).expect("compatible");
    let c = a.compact();
    assert_eq!(
        c.positive_spans,
        vec![Span {
            offset: 1,
            length: 1
        }]
    );
    assert_eq!(c.positive_buckets, vec![2.0]);
}

#[test]
fn custom_and_exponential_do_not_mix() {
    let mut a = h(0, &[1.0], 0);
    let mut b = h(CUSTOM_BUCKETS_SCHEMA, &[1.0], 0);
    b.custom_values = vec![1.0];
    assert_eq!(a.add(&b), Err(HistogramError::IncompatibleSchema));
}

#[test]
fn detect_reset_on_bucket_decrease() {
    let prev = h(0, &[2.0, 2.0], 0);
    let mut cur = h(0, &[3.0, 1.0], 0);
    cur.count = 5.0;
    assert!(cur.detect_reset(&prev));
    let cur2 = h(0, &[2.0, 3.0], 0);
    assert!(!cur2.detect_reset(&prev));
}

#[test]
fn quantile_of_custom_buckets_interpolates_linearly() {
    let mut x = h(CUSTOM_BUCKETS_SCHEMA, &[5.0, 5.0], 0);
    x.custom_values = vec![10.0];
    let (q, _) = quantile::histogram_quantile(0.25, &x);
    assert!((q - 5.0).abs() < 1e-9);
}

#[test]
fn invalid_schema_does_not_panic() {
    let x = h(-60, &[1.0], 1000);
    let _ = x.all_buckets();
    let _ = x.copy_to_schema(-70);
}

#[test]
fn kahan_sum_keeps_small_values_next_to_large_ones() {
    // Bucket 0 and the sum see 1, 1e100, 1, -1e100: plain addition gives 0.
    let parts = [1.0, 1e100, 1.0, -1e100];
    let mut acc = KahanHistogram::from(&h(0, &[parts[0]], 0));
    let mut plain = h(0, &[parts[0]], 0);
    for &x in &parts[1..] {
        let mut next = h(0, &[x], 0);
        next.sum = x;
        acc.add(&next).expect("compatible");
        plain.add(&next).expect("compatible");
    }
    let sum = acc.finish();
    assert_eq!(sum.pos_sparse(), vec![(0, 2.0)]);
    assert_eq!(sum.sum, 2.0);
    assert_eq!(plain.pos_sparse(), Vec::<(i32, f64)>::new());
}

#[test]
fn kahan_compensation_follows_schema_reduction_and_custom_reconciliation() {
    // Schema-1 buckets 1 and 2 merge into schema-0 bucket 1, compensations included.
    let mut acc = KahanHistogram::from(&h(1, &[1.0, 1e100], 1));
    acc.add(&h(1, &[1.0, 0.0], 1)).expect("compatible");
    acc.add(&h(0, &[-1e100], 1)).expect("compatible");
    assert_eq!(acc.finish().pos_sparse(), vec![(1, 2.0)]);

    // Custom bounds [5 10] and [10] reconcile to [10]; (-Inf,5] and (5,10] merge.
    let custom = |bounds: &[f64], buckets: &[f64]| FloatHistogram {
        custom_values: bounds.to_vec(),
        ..h(CUSTOM_BUCKETS_SCHEMA, buckets, 0)
    };
    let mut acc = KahanHistogram::from(&custom(&[5.0, 10.0], &[1.0, 1e100, 3.0]));
    let (_, reconciled) = acc
        .add(&custom(&[10.0], &[-1e100, 4.0]))
        .expect("compatible");
    assert!(reconciled);
    let sum = acc.finish();
    assert_eq!(sum.custom_values, vec![10.0]);
    assert_eq!(sum.pos_sparse(), vec![(0, 1.0), (1, 7.0)]);

    assert!(
        KahanHistogram::from(&h(0, &[1.0], 0))
            .add(&custom(&[1.0], &[1.0]))
            .is_err()
    );
}

#[test]
fn kahan_mean_switches_to_incremental_on_overflow() {
    let big = FloatHistogram {
        count: f64::MAX,
        ..h(0, &[4.0], 0)
    };
    let mut acc = KahanHistogram::from(&big);
    let mut incremental = false;
    acc.add_for_mean(&mut incremental, 2.0, &big)
        .expect("compatible");
    assert!(incremental);
    let mean = acc.finish();
    assert_eq!(mean.count, f64::MAX);
    assert_eq!(mean.pos_sparse(), vec![(0, 4.0)]);
}

#[test]
fn trim_interpolates_exponential_buckets_on_a_log_scale() {
    // Bucket (1,2] with 4 observations: sqrt(2) is halfway on a log scale.
    let hist = h(0, &[4.0], 1);
    let below = hist.clone().trim(2f64.sqrt(), TrimSide::KeepBelow);
    assert!((below.count - 2.0).abs() < 1e-12);
    assert!((below.positive_buckets[0] - 2.0).abs() < 1e-12);
    // Its observations are represented by the geometric mean of (1, sqrt 2].
    assert!((below.sum - 2.0 * 2f64.sqrt().sqrt()).abs() < 1e-12);
    let above = hist.clone().trim(2f64.sqrt(), TrimSide::KeepAbove);
    assert!((above.count - 2.0).abs() < 1e-12);
    // Cuts outside every bucket keep the histogram unchanged.
    assert_eq!(hist.clone().trim(f64::INFINITY, TrimSide::KeepBelow), hist);
    assert_eq!(hist.clone().trim(0.5, TrimSide::KeepAbove), hist);
    // A cut below everything empties it.
    let none = hist.trim(0.5, TrimSide::KeepBelow);
    assert_eq!((none.count, none.sum), (0.0, 0.0));
    assert!(none.positive_buckets.is_empty());
}
