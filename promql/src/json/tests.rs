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
