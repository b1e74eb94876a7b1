use super::*;
use crate::model::{FPoint, Labels, Series, Value};

#[test]
fn floats_format_like_prometheus() {
    assert_eq!(format_api_float(f64::NAN), "NaN");
    assert_eq!(format_api_float(f64::INFINITY), "+Inf");
    assert_eq!(format_api_float(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_api_float(0.1), "0.1");
    assert_eq!(format_api_float(1e21), "1e+21");
    assert_eq!(format_api_float(1.5e-7), "1.5e-07");
    assert_eq!(format_api_float(100.0), "100");
    assert_eq!(format_openmetrics_float(1.0), "1.0");
}

#[test]
fn matrix_json_shape() {
    let v = Value::Matrix(vec![Series {
        metric: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
        floats: vec![FPoint { t: 1500, f: 1.0 }, FPoint { t: 3000, f: 2.5 }],
        histograms: Vec::new(),
        drop_name: false,
    }]);
    let j = to_api_json(&v);
    assert_eq!(
        j,
        serde_json::json!({
            "resultType": "matrix",
            "result": [{"metric": {"__name__": "up", "job": "a"}, "values": [[1.5, "1"], [3, "2.5"]]}]
        })
    );
}

#[test]
fn scalar_json_shape() {
    let j = to_api_json(&Value::Scalar {
        t: 1000,
        v: f64::NAN,
    });
    assert_eq!(
        j,
        serde_json::json!({"resultType": "scalar", "result": [1, "NaN"]})
    );
}

#[test]
fn sample_values_serialize_as_format_api_float_writes_them() {
    let mut values = vec![
        0.0,
        -0.0,
        1e-6,
        -1e-6,
        // Just below the bounds of plain decimal notation.
        f64::from_bits(1e-6f64.to_bits() - 1),
        f64::from_bits(1e21f64.to_bits() - 1),
        -1.234_567_8e-6,
        1e21,
        999_999_999_999_999_900_000.0,
        -999_999_999_999_999_900_000.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.1,
        100.0,
        123_456.789,
        1.0 / 3.0,
    ];
    // Values spread over the whole range of exponents, both signs.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        values.push(f64::from_bits(x));
    }
    for v in values {
        let got = serde_json::to_string(&ApiFloat(v)).expect("serialize");
        let want = serde_json::to_string(&format_api_float(v)).expect("serialize");
        assert_eq!(got, want, "value {v:e}");
    }
}
