#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{Scope, Template, funcs};

struct S;

impl Scope for S {
    fn label(&self, name: &str) -> Option<&str> {
        match name {
            "a" => Some("Hello World"),
            "n" => Some("42"),
            "empty" => Some(""),
            _ => None,
        }
    }
    fn line(&self) -> &str {
        "the line"
    }
    fn ts_ns(&self) -> i64 {
        // 2024-02-29T13:04:05.120Z, a Thursday.
        1_709_211_845_120_000_000
    }
}

fn render(t: &str) -> String {
    let mut out = String::new();
    Template::parse(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .render(&S, &mut out)
        .unwrap_or_else(|e| panic!("{t}: {e}"));
    out
}

#[test]
fn fields_pipelines_and_missing_keys() {
    assert_eq!(
        render("{{.a}}|{{.missing}}|{{ .a | lower | replace \"o\" \"0\" }}"),
        "Hello World||hell0 w0rld"
    );
    assert_eq!(
        render("{{ printf \"%s=%d %5.2f|%-4s|%q\" .a 7 3.14159 \"x\" .n }}"),
        "Hello World=7  3.14|x   |\"42\""
    );
    assert_eq!(
        render("{{ (len .a) }} {{ add (int .n) 8 }} {{ .n | float64 | mulf 0.5 }}"),
        "11 50 21"
    );
}

#[test]
fn conditionals() {
    assert_eq!(
        render("{{ if .empty }}yes{{ else if eq .n \"42\" }}answer{{ else }}no{{ end }}"),
        "answer"
    );
    assert_eq!(render("{{ if and .a (ne .n \"1\") }}both{{ end }}"), "both");
    assert_eq!(render("{{ if not .missing }}absent{{ end }}"), "absent");
    assert_eq!(render("a {{- \" b \" -}} c"), "a b c");
}

#[test]
fn string_functions() {
    assert_eq!(
        render("{{ trunc 5 .a }}|{{ trunc -5 .a }}|{{ substr 6 11 .a }}"),
        "Hello|World|World"
    );
    assert_eq!(
        render("{{ regexReplaceAll \"o(.)\" .a \"0${1}\" }}"),
        "Hell0 W0rld"
    );
    assert_eq!(
        render("{{ regexReplaceAllLiteral \"o(.)\" .a \"$1\" }}"),
        "Hell$1W$1ld"
    );
    assert_eq!(render("{{ .a | upper | trimSuffix \"LD\" }}"), "HELLO WOR");
    assert_eq!(
        render("{{ default \"d\" .empty }} {{ .a | title }} {{ repeat 3 \"ab\" }}"),
        "d Hello World ababab"
    );
    assert_eq!(
        render("{{ alignLeft 3 .a }}|{{ alignRight 7 .n }}|"),
        "Hel|     42|"
    );
    assert_eq!(
        render("{{ count \"l\" .a }} {{ contains \"World\" .a }}"),
        "3 true"
    );
}

#[test]
fn time_functions() {
    assert_eq!(
        render("{{ __timestamp__ }}"),
        "2024-02-29 13:04:05.12 +0000 UTC"
    );
    assert_eq!(
        render("{{ __timestamp__ | date \"2006-01-02T15:04:05.000Z07:00 Mon Jan _2 03PM 002\" }}"),
        "2024-02-29T13:04:05.120Z Thu Feb 29 01PM 060"
    );
    assert_eq!(
        render("{{ __timestamp__ | unixEpoch }} {{ __timestamp__ | unixEpochMillis }}"),
        "1709211845 1709211845120"
    );
    assert_eq!(
        render("{{ unixToTime \"1709211845\" | date \"2006-01-02\" }}"),
        "2024-02-29"
    );
    assert_eq!(
        render("{{ __line__ | b64enc }} {{ \"dGhlIGxpbmU=\" | b64dec }}"),
        "dGhlIGxpbmU= the line"
    );
    assert_eq!(
        render("{{ urlencode \"a b&c=d/é\" }} {{ urldecode \"a+b%26c\" }}"),
        "a+b%26c%3Dd%2F%C3%A9 a b&c"
    );
}

#[test]
fn parse_errors() {
    for bad in [
        "{{",
        "{{ .a",
        "{{ if .a }}x",
        "{{ end }}",
        "{{ nope }}",
        "{{ \"x }}",
        "{{ range .a }}{{ end }}",
    ] {
        assert!(Template::parse(bad).is_err(), "{bad} should not parse");
    }
}

#[test]
fn runtime_errors_do_not_panic() {
    let t = Template::parse("{{ div 1 0 }}").unwrap();
    assert!(t.render(&S, &mut String::new()).is_err());
    let t = Template::parse("{{ substr 9 2 .a }}{{ trunc 100 .a }}{{ printf \"%d %z\" }}").unwrap();
    assert!(t.render(&S, &mut String::new()).is_ok());
}

#[test]
fn go_layout_details() {
    // 2006-01-02T15:04:05.000000007Z
    let ns = 1_136_214_245_000_000_007;
    assert_eq!(
        funcs::go_format("Jan 2, 2006 at 3:04pm (MST) .999999999 -0700", ns),
        "Jan 2, 2006 at 3:04pm (UTC) .000000007 +0000"
    );
    assert_eq!(
        funcs::go_format("Monday January 06", ns),
        "Monday January 06"
    );
}
