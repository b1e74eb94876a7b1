use super::*;

fn column(texts: &[&str]) -> StringArray {
    StringArray::from(texts.to_vec())
}

fn round_trip(texts: &[&str]) -> (Vec<Dedicated>, ArrayRef, Vec<(Field, ArrayRef)>) {
    let attrs = column(texts);
    let plan = choose(&attrs);
    let (rest, cols) = split(&attrs, &plan);
    let dedicated: Vec<DedicatedColumn<'_>> = cols
        .iter()
        .map(|(f, values)| DedicatedColumn {
            key: parse_column_name(f.name()).expect("dedicated name").1,
            values,
        })
        .collect();
    let back = merge_attributes(rest.as_string::<i32>(), &dedicated).expect("merge");
    assert_eq!(
        back.as_string::<i32>(),
        &attrs,
        "merge gives the written text back"
    );
    (plan, rest, cols)
}

#[test]
fn common_keys_get_typed_columns_and_the_rest_stays_json() {
    let mut texts = Vec::new();
    for i in 0..100 {
        texts.push(format!(
            r#"{{"a.rare":{},"cache.hit":{},"http.route":"/r{}","http.status_code":{},"nested":{{"x":[1,"}}"]}}}}"#,
            i,
            i % 3 == 0,
            i % 4,
            200 + i % 2
        ));
    }
    // A tenth of the rows carry `0.some`; one row has a key with an escape and one row
    // has its status code as a string.
    for t in texts.iter_mut().step_by(10) {
        t.insert_str(1, r#""0.some":"yes","#);
    }
    texts[5] = r#"{"http.route":"/x","k\"ey":1}"#.into();
    texts[6] = r#"{"http.route":"/y","http.status_code":"500"}"#.into();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (plan, rest, cols) = round_trip(&refs);
    let names: Vec<String> = plan.iter().map(Dedicated::column_name).collect();
    assert_eq!(
        names,
        [
            "attr:str:0.some",
            "attr:int:a.rare",
            "attr:bool:cache.hit",
            "attr:str:http.route",
            "attr:int:http.status_code"
        ]
    );
    let rest = rest.as_string::<i32>();
    assert_eq!(rest.value(0), r#"{"nested":{"x":[1,"}"]}}"#);
    // The escaped key keeps its whole row in the JSON; a string status stays there too.
    assert_eq!(rest.value(5), texts[5]);
    assert_eq!(rest.value(6), r#"{"http.status_code":"500"}"#);
    let route = &cols[3].1;
    assert_eq!(route.as_string::<i32>().value(6), "/y");
    assert!(route.is_null(5));
    let code = &cols[4].1;
    assert!(code.is_null(6));
    assert_eq!(code.as_primitive::<Int64Type>().value(1), 201);
}

#[test]
fn odd_text_round_trips_unchanged() {
    let texts = [
        "{}",
        r#"{"b":1,"a":2}"#,
        r#"{"a":"x","a":"y"}"#,
        r#"{"a":-0,"b":007,"c":1.5,"d":null,"e":"é\u00e9"}"#,
        r#"{"a":"","b":-12,"c":false}"#,
        r#"{"a":"q\"","b":9223372036854775807}"#,
        "not json",
        r#"{"a": 1}"#,
        r#"{"a":"unterminated}"#,
        "",
    ];
    round_trip(&texts);
    let all_same: Vec<&str> = std::iter::repeat_n(r#"{"a":"","b":-12,"c":false}"#, 20).collect();
    let (plan, rest, _) = round_trip(&all_same);
    assert_eq!(plan.len(), 3);
    assert!(plan.iter().all(|d| d.dictionary));
    assert_eq!(rest.as_string::<i32>().value(0), "{}");
}

#[test]
fn many_distinct_values_are_not_dictionary_encoded() {
    let texts: Vec<String> = (0..5000)
        .map(|i| format!(r#"{{"id":"u{i}","n":{}}}"#, i % 7))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (plan, _, _) = round_trip(&refs);
    let by_key: HashMap<&str, bool> = plan
        .iter()
        .map(|d| (d.key.as_str(), d.dictionary))
        .collect();
    assert_eq!(by_key.get("id"), Some(&false));
    assert_eq!(by_key.get("n"), Some(&true));
}

#[test]
fn column_names_parse_back() {
    for ty in [AttrType::Str, AttrType::Int, AttrType::Bool] {
        let name = column_name(ty, "http.route:x");
        assert_eq!(parse_column_name(&name), Some((ty, "http.route:x")));
    }
    assert_eq!(parse_column_name("attributes"), None);
    assert_eq!(parse_column_name("attr:float:x"), None);
    assert_eq!(canonical_int("-0"), None);
    assert_eq!(canonical_int("0"), Some(0));
    assert_eq!(canonical_int("-9223372036854775808"), Some(i64::MIN));
    assert_eq!(canonical_int("9223372036854775808"), None);
}

/// Merging reads each column's validity once for the batch: sliced columns (whose
/// bitmaps start mid-byte), columns without nulls, all-null columns and rows with no
/// dedicated value all give the text that was split.
#[test]
fn merge_handles_sliced_columns_and_every_null_shape() {
    let texts: Vec<String> = (0..300)
        .map(|i| match i % 5 {
            0 => "{}".to_owned(),
            1 => format!(r#"{{"a":"v{i}","always":1,"b":{}}}"#, i % 2 == 0),
            2 => format!(r#"{{"always":2,"c":{i},"z":[1]}}"#),
            3 => format!(r#"{{"a":"w","always":3,"b":true,"c":-{i}}}"#),
            _ => r#"{"always":4,"m":null}"#.to_owned(),
        })
        .collect();
    let attrs = column(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let plan = choose(&attrs);
    let keys: Vec<&str> = plan.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["a", "always", "b", "c"]);
    let (rest, cols) = split(&attrs, &plan);
    // A column of `always` with every value null.
    let all_null: ArrayRef = Arc::new(Int64Array::new_null(attrs.len()));
    for (offset, len) in [(0, 300), (3, 200), (7, 1), (13, 0)] {
        let rest = rest.slice(offset, len);
        let sliced: Vec<ArrayRef> = cols.iter().map(|(_, c)| c.slice(offset, len)).collect();
        let dedicated: Vec<DedicatedColumn<'_>> = cols
            .iter()
            .zip(&sliced)
            .map(|((f, _), values)| DedicatedColumn {
                key: parse_column_name(f.name()).expect("name").1,
                values,
            })
            .collect();
        let back = merge_attributes(rest.as_string::<i32>(), &dedicated).expect("merge");
        assert_eq!(
            back.as_string::<i32>(),
            &attrs.slice(offset, len),
            "slice {offset}+{len}"
        );
        // `always` has no nulls, so every row is merged; without it only some are.
        let without: Vec<DedicatedColumn<'_>> = dedicated
            .iter()
            .filter(|d| d.key != "always")
            .map(|d| DedicatedColumn {
                key: d.key,
                values: d.values,
            })
            .collect();
        let back = merge_attributes(rest.as_string::<i32>(), &without).expect("merge");
        for (i, t) in back.as_string::<i32>().iter().enumerate() {
            let mut expected = attrs.value(offset + i).to_owned();
            for k in 1..=4 {
                expected = expected.replace(&format!("\"always\":{k},"), "");
            }
            assert_eq!(t, Some(expected.as_str()));
        }
        let sliced_null = all_null.slice(offset, len);
        let mut with_null: Vec<DedicatedColumn<'_>> = without;
        with_null.push(DedicatedColumn {
            key: "always",
            values: &sliced_null,
        });
        let back = merge_attributes(rest.as_string::<i32>(), &with_null).expect("merge");
        let again = merge_attributes(rest.as_string::<i32>(), &with_null[..with_null.len() - 1])
            .expect("merge");
        assert_eq!(back.as_ref(), again.as_ref());
    }
}
