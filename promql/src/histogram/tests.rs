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
