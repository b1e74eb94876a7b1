//! No input may panic the parser or the engine: mutate valid queries
//! (insert, delete, replace characters and tokens) with a fixed-seed
//! generator, parse each, and evaluate those that parse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_logql::{Direction, Engine, Entry, Limits, MemorySource, Stream, parse};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"{app="api"} |= "x" != "y" |~ "a.*b" !~ "(?i)c" |> "<_> d <_>""#,
    r#"{app="api"} | json | status >= 400 and (level="error" or latency > 1s), size < 1KB"#,
    r#"{app="api"} | logfmt --strict --keep-empty a, b="c" | drop a, b="x" | keep c"#,
    r#"{app="api"} | regexp "(?P<a>\\w+) (?P<b>\\d+)" | pattern "<x> - <_> <y>" | unpack"#,
    r#"{app="api"} | line_format "{{ if eq .a \"1\" }}{{ .b | upper | printf \"%-5s|%05d\" 3 }}{{ else }}{{ __line__ }}{{ end }}" | label_format x=y, z="{{ repeat 3 .a }}""#,
    r#"sum by (a) (rate({app="api"} | json | unwrap duration(latency) | __error__="" [5m] offset 1m))"#,
    r#"topk(2, quantile_over_time(0.9, {app="api"} | logfmt | unwrap bytes(size) [1m]) by (host)) / on(host) group_left(x) sum(count_over_time({app="api"}[1m])) by (host)"#,
    r#"label_replace(sum(bytes_rate({app="api"}[30s])) > bool 2 ^ 3 % 4, "d", "$1", "s", "(.*)") or vector(1) unless absent_over_time({app="x"}[1m])"#,
];

const PIECES: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "[5m]",
    "\"",
    "`",
    "|",
    "|=",
    "|~",
    "!=",
    "=~",
    "!~",
    "=",
    "==",
    ">",
    "<",
    ",",
    " ",
    "\\",
    "json",
    "logfmt",
    "unwrap",
    "by",
    "without",
    "sum",
    "rate",
    "{{",
    "}}",
    "-",
    "--strict",
    "1e999",
    "-9223372036854775808",
    "999999999y",
    "é",
    "\u{0}",
    "<_>",
    "offset",
    "bool",
    "on",
    "group_left",
    "0.5",
];

fn source() -> MemorySource {
    let lines = [
        r#"{"a":"1","b":"two","latency":"1.5s","size":"2KB","status":500,"level":"error","n":{"m":[1,2]}}"#,
        "a=1 b=\"x y\" latency=20ms size=1KiB host=h1 status=200",
        "10.0.0.1 - d e plain",
        "",
        "\u{1b}[31mred\u{1b}[0m é ü \\ \"",
    ];
    let mut entries = Vec::new();
    for (i, l) in lines.iter().cycle().take(40).enumerate() {
        entries.push(
            Entry::new(i as i64 * 7_000_000_000, *l)
                .with_metadata(vec![("trace_id".into(), format!("t{}", i % 3))]),
        );
    }
    MemorySource::new(vec![Stream {
        labels: vec![("app".into(), "api".into()), ("host".into(), "h1".into())],
        entries,
    }])
}

#[test]
fn mutated_queries_never_panic() {
    let src = source();
    let engine = Engine::new(Limits {
        max_series: 1000,
        ..Limits::default()
    });
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut parsed, mut evaluated) = (0, 0);
    for round in 0..3000 {
        let mut q: Vec<char> = SEEDS[round % SEEDS.len()].chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(q.len() + 1);
            match rng.below(3) {
                0 => {
                    let p = PIECES[rng.below(PIECES.len())];
                    for (k, c) in p.chars().enumerate() {
                        q.insert((at + k).min(q.len()), c);
                    }
                }
                1 if !q.is_empty() => {
                    let end = (at + 1 + rng.below(6)).min(q.len());
                    q.drain(at.min(q.len())..end);
                }
                _ if at < q.len() => {
                    q[at] = PIECES[rng.below(PIECES.len())].chars().next().unwrap()
                }
                _ => {}
            }
        }
        let text: String = q.into_iter().collect();
        let Ok(expr) = parse(&text) else { continue };
        parsed += 1;
        if expr.is_log_query() {
            let _ = engine.query_range(
                &src,
                &expr,
                0,
                300_000_000_000,
                0,
                None,
                50,
                Direction::Backward,
            );
        } else {
            let _ = engine.query_range(
                &src,
                &expr,
                0,
                300_000_000_000,
                30_000_000_000,
                None,
                50,
                Direction::Forward,
            );
            let _ = engine.query_instant(&src, &expr, 200_000_000_000, 50, Direction::Backward);
        }
        evaluated += 1;
    }
    println!("parsed {parsed} of 3000 mutations, evaluated {evaluated}");
    assert!(
        parsed > 100,
        "mutations too destructive to exercise the engine"
    );
}

#[test]
fn every_seed_parses_and_runs() {
    let src = source();
    let engine = Engine::new(Limits::default());
    for q in SEEDS {
        let expr = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        if expr.is_log_query() {
            engine
                .query_range(
                    &src,
                    &expr,
                    0,
                    300_000_000_000,
                    0,
                    None,
                    50,
                    Direction::Backward,
                )
                .unwrap_or_else(|e| panic!("{q}: {e}"));
        } else {
            // Pipeline errors are a legitimate outcome for some seeds.
            let _ = engine.query_range(
                &src,
                &expr,
                0,
                300_000_000_000,
                30_000_000_000,
                None,
                50,
                Direction::Forward,
            );
        }
    }
}
