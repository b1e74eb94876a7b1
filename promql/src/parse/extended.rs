//! Prometheus's experimental extended range selectors: the `anchored` and `smoothed`
//! modifiers (`rate(x[5m] anchored)`, `increase(x[1h] smoothed)`, `x smoothed`).
//!
//! `promql-parser` does not know the keywords. [`mark`] finds each one in the query text
//! (outside string literals, comments, label matchers and brackets, and only where it
//! follows a complete operand, so a metric or label called `anchored` keeps working),
//! removes it, and adds a reserved matcher [`EXT_MARK`]`="anchored"` (or `"smoothed"`) to
//! the selector it modifies. The parsed selector keeps that matcher: [`modifier_of`] reads
//! the modifier from it, selection leaves it out (`selector_matchers`) and
//! [`format_query`](super::format_query) prints it back as the keyword ([`unmark`]).
//!
//! As in Prometheus the modifier binds to the expression right before it, after any
//! `offset` / `@` modifiers (`x[5m] offset 1h anchored` or `x[5m] anchored offset 1h`); it
//! only applies to instant and range selectors. Misuse is refused with Prometheus's
//! messages and the position (line:column) of the expression the modifier follows:
//! subqueries ("... is not supported for subqueries"), other expressions ("... not
//! implemented"), and both modifiers on one selector.

use std::borrow::Cow;
use std::collections::BTreeMap;

use promql_parser::parser::VectorSelector;

use super::Scanner;

/// Reserved matcher carrying a selector's modifier through parsing.
pub(crate) const EXT_MARK: &str = "__strata_range_modifier__";

/// The modifier of an extended range (or instant) selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RangeModifier {
    /// `anchored`: the window also holds the last sample at or before its start, and
    /// `rate`/`increase`/`delta` take the plain difference between the window's ends.
    Anchored,
    /// `smoothed`: the window's ends are interpolated between the samples around them.
    Smoothed,
}

impl RangeModifier {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            RangeModifier::Anchored => "anchored",
            RangeModifier::Smoothed => "smoothed",
        }
    }

    fn of_word(w: &str) -> Option<Self> {
        if w.eq_ignore_ascii_case("anchored") {
            Some(RangeModifier::Anchored)
        } else if w.eq_ignore_ascii_case("smoothed") {
            Some(RangeModifier::Smoothed)
        } else {
            None
        }
    }

    /// The functions a range selector with this modifier may be passed to (sorted, as
    /// Prometheus lists them in its error message).
    pub(crate) fn functions(self) -> &'static [&'static str] {
        match self {
            RangeModifier::Anchored => &["changes", "delta", "increase", "rate", "resets"],
            RangeModifier::Smoothed => &["delta", "increase", "rate"],
        }
    }
}

/// The `anchored` / `smoothed` modifier of a parsed selector, if any.
pub fn modifier_of(vs: &VectorSelector) -> Option<RangeModifier> {
    let m = &vs.matchers;
    m.matchers
        .iter()
        .chain(m.or_matchers.iter().flatten())
        .find(|x| x.name == EXT_MARK)
        .and_then(|x| RangeModifier::of_word(&x.value))
}

/// Whether a label name is the reserved marker (left out of selection and output).
pub fn is_modifier_mark(label_name: &str) -> bool {
    label_name == EXT_MARK
}

/// Token kinds the scan distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    Str,
    /// `(`; `partner` is the matching `)` (or `usize::MAX`).
    Open,
    /// `)`; `partner` is the matching `(` (or `usize::MAX`).
    Close,
    /// A whole `{...}` label matcher list.
    Braces,
    /// A whole `[...]` range or subquery bracket.
    Brackets {
        subquery: bool,
    },
    /// Any other character (operators, `,`, `@`).
    Punct(u8),
    /// An `anchored` / `smoothed` keyword in modifier position.
    Modifier(RangeModifier),
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
    partner: usize,
    /// The innermost `(` this token is inside of (or `usize::MAX`).
    enclosing: usize,
}

/// Words that never end an operand: binary operators and their modifiers, aggregation
/// modifiers, `offset`.
const NON_OPERAND_WORDS: [&str; 15] = [
    "and",
    "or",
    "unless",
    "atan2",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "fill",
    "fill_left",
    "fill_right",
];

fn is_word(t: &Tok, q: &str, w: &str) -> bool {
    t.kind == Kind::Ident && q[t.start..t.end].eq_ignore_ascii_case(w)
}

fn ends_operand(t: &Tok, q: &str) -> bool {
    match t.kind {
        Kind::Close
        | Kind::Braces
        | Kind::Brackets { .. }
        | Kind::Number
        | Kind::Str
        | Kind::Modifier(_) => true,
        Kind::Ident => !NON_OPERAND_WORDS.iter().any(|w| is_word(t, q, w)),
        Kind::Open | Kind::Punct(_) => false,
    }
}

/// Whether the last token so far ends an operand: not the `)` closing the label list of
/// `on (...)`, `by (...)` etc. or the value of `fill(...)`, where an operand follows.
fn after_operand(toks: &[Tok], q: &str) -> bool {
    let Some(t) = toks.last() else {
        return false;
    };
    if t.kind == Kind::Close
        && t.partner != usize::MAX
        && let Some(w) = back(t.partner, 1)
        && LABEL_LIST_WORDS
            .iter()
            .chain(&["fill", "fill_left", "fill_right"])
            .any(|x| is_word(&toks[w], q, x))
    {
        return false;
    }
    ends_operand(t, q)
}

/// End (exclusive) of the `{`/`[` group opened at `i`, skipping string literals; the
/// text's end if it is not closed. For brackets, also whether a `:` sits at its top level
/// (a subquery).
fn group_end(sc: &Scanner<'_>, i: usize) -> (usize, bool) {
    let s = sc.s;
    let close = if s[i] == b'{' { b'}' } else { b']' };
    let (mut depth, mut colon) = (0usize, false);
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'"' | b'\'' | b'`' => {
                j = sc.string_end(j);
                continue;
            }
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b':' if depth == 0 => colon = true,
            c if c == close => return (j + 1, colon),
            _ => {}
        }
        j += 1;
    }
    (s.len(), colon)
}

/// Splits the query into tokens, classifying `anchored`/`smoothed` as modifiers where they
/// follow a complete operand.
fn tokenize(q: &str) -> Vec<Tok> {
    let sc = Scanner { s: q.as_bytes() };
    let s = sc.s;
    let mut toks: Vec<Tok> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let (kind, end) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                i = sc.comment_end(i);
                continue;
            }
            b'"' | b'\'' | b'`' => (Kind::Str, sc.string_end(i)),
            b'{' => (Kind::Braces, group_end(&sc, i).0),
            b'[' => {
                let (end, subquery) = group_end(&sc, i);
                (Kind::Brackets { subquery }, end)
            }
            b'(' => (Kind::Open, i + 1),
            b')' => (Kind::Close, i + 1),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = i + sc.ident(i).len();
                let word = &q[i..end];
                let kind = match RangeModifier::of_word(word) {
                    Some(m) if after_operand(&toks, q) => Kind::Modifier(m),
                    _ => Kind::Ident,
                };
                (kind, end)
            }
            c if c.is_ascii_digit()
                || (c == b'.' && s.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let hex = s.get(i + 1).is_some_and(|&x| x == b'x' || x == b'X');
                let mut j = i + 1;
                while j < s.len() {
                    let x = s[j];
                    // Digits, units, `.`, `_`, and an exponent's sign (`1e-3`).
                    let exponent_sign =
                        (x == b'+' || x == b'-') && !hex && matches!(s[j - 1], b'e' | b'E');
                    if !(x.is_ascii_alphanumeric() || x == b'.' || x == b'_' || exponent_sign) {
                        break;
                    }
                    j += 1;
                }
                (Kind::Number, j)
            }
            // Multi-byte characters only occur in strings and matchers; step over them whole.
            c if c >= 0x80 => {
                let len = q[i..].chars().next().map_or(1, char::len_utf8);
                (Kind::Punct(c), i + len)
            }
            c => (Kind::Punct(c), i + 1),
        };
        let idx = toks.len();
        let mut partner = usize::MAX;
        match kind {
            Kind::Open => open.push(idx),
            Kind::Close => {
                if let Some(o) = open.pop() {
                    partner = o;
                    toks[o].partner = idx;
                }
            }
            _ => {}
        }
        let enclosing = match kind {
            Kind::Open => open.len().checked_sub(2).map_or(usize::MAX, |k| open[k]),
            _ => open.last().copied().unwrap_or(usize::MAX),
        };
        toks.push(Tok {
            kind,
            start: i,
            end,
            partner,
            enclosing,
        });
        i = end;
    }
    toks
}

/// `line:column` (1-based, columns in characters) of byte offset `pos`.
fn position(q: &str, pos: usize) -> String {
    let before = &q[..pos.min(q.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let col = before[line_start..].chars().count() + 1;
    format!("{line}:{col}")
}

fn parse_err(q: &str, pos: usize, msg: &str) -> String {
    format!("{}: parse error: {msg}", position(q, pos))
}

/// Index of the token `i` steps before `j`, if any.
fn back(j: usize, i: usize) -> Option<usize> {
    j.checked_sub(i)
}

/// If the token at `j` is where an `offset` or `@` modifier's argument starts (after the
/// keyword and an optional sign), the index of the keyword.
fn modifier_keyword_before(toks: &[Tok], q: &str, j: usize) -> Option<usize> {
    let is_kw = |t: &Tok| is_word(t, q, "offset") || t.kind == Kind::Punct(b'@');
    let k = back(j, 1)?;
    if is_kw(&toks[k]) {
        return Some(k);
    }
    if matches!(toks[k].kind, Kind::Punct(b'+' | b'-')) {
        let k2 = back(k, 1)?;
        if is_kw(&toks[k2]) {
            return Some(k2);
        }
    }
    None
}

/// First token of the operand ending at token `j` (for error positions): a call's or an
/// aggregation's name, a selector's metric name, the operand of a range or subquery.
fn operand_start(toks: &[Tok], q: &str, mut j: usize) -> usize {
    loop {
        match toks[j].kind {
            Kind::Brackets { .. } => match back(j, 1) {
                Some(p) => j = p,
                None => return j,
            },
            Kind::Close if toks[j].partner != usize::MAX => {
                let o = toks[j].partner;
                let Some(p) = back(o, 1) else { return o };
                if toks[p].kind == Kind::Ident && !ends_operand(&toks[p], q) {
                    return o;
                }
                if toks[p].kind == Kind::Ident {
                    return p;
                }
                // `sum by (a) (x)`: the grouping clause sits between name and body.
                if toks[p].kind == Kind::Close && toks[p].partner != usize::MAX {
                    let g = toks[p].partner;
                    if let Some(kw) = back(g, 1)
                        && (is_word(&toks[kw], q, "by") || is_word(&toks[kw], q, "without"))
                        && let Some(name) = back(kw, 1)
                        && toks[name].kind == Kind::Ident
                    {
                        return name;
                    }
                }
                return o;
            }
            Kind::Braces => {
                return match back(j, 1) {
                    Some(p)
                        if toks[p].kind == Kind::Ident
                            && ends_operand(&toks[p], q)
                            && toks[p].end == toks[j].start =>
                    {
                        p
                    }
                    _ => j,
                };
            }
            _ => return j,
        }
    }
}

/// Words introducing a list of label names in parentheses.
const LABEL_LIST_WORDS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// `promql-parser` reserves the two words everywhere outside label matchers, but Prometheus
/// accepts them as metric and label names. What an `anchored`/`smoothed` name at token `i`
/// (not a modifier) needs: `Some(true)` as a label in a grouping list (to be quoted),
/// `Some(false)` as a metric name (to become a `__name__` matcher), None otherwise (a
/// function call, which fails as it should).
fn reserved_name_use(toks: &[Tok], q: &str, i: usize) -> Option<bool> {
    let t = &toks[i];
    if t.kind != Kind::Ident || RangeModifier::of_word(&q[t.start..t.end]).is_none() {
        return None;
    }
    if toks.get(i + 1).is_some_and(|n| n.kind == Kind::Open) {
        return None;
    }
    let in_list = back(i, 1)
        .is_some_and(|p| matches!(toks[p].kind, Kind::Open | Kind::Punct(b',')))
        && t.enclosing != usize::MAX
        && back(t.enclosing, 1)
            .is_some_and(|w| LABEL_LIST_WORDS.iter().any(|x| is_word(&toks[w], q, x)));
    Some(in_list)
}

/// Removes every `anchored`/`smoothed` modifier from `q` and marks the selector it
/// modifies (and spells the words where they are names so that the parser takes them);
/// returns the new text and the number of marks.
pub(crate) fn mark(q: &str) -> Result<(Cow<'_, str>, usize), String> {
    // The usual query has neither word: leave it as it is, without tokenizing.
    let has = |w: &[u8]| {
        q.as_bytes()
            .windows(w.len())
            .any(|x| x.eq_ignore_ascii_case(w))
    };
    if !has(b"anchored") && !has(b"smoothed") {
        return Ok((Cow::Borrowed(q), 0));
    }
    let toks = tokenize(q);
    // Matchers to add to a selector, by the token of its `{...}` or of its bare name.
    let mut added: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    // Bare names written as a `__name__` matcher instead.
    let mut renamed: Vec<usize> = Vec::new();
    // Replaced text ranges.
    let mut replaced: Vec<(usize, usize, String)> = Vec::new();
    for i in 0..toks.len() {
        let t = &toks[i];
        match reserved_name_use(&toks, q, i) {
            Some(true) => replaced.push((t.start, t.end, format!("\"{}\"", &q[t.start..t.end]))),
            Some(false) => {
                let name = format!("__name__=\"{}\"", &q[t.start..t.end]);
                match toks.get(i + 1) {
                    Some(b) if b.kind == Kind::Braces => {
                        replaced.push((t.start, t.end, String::new()));
                        added.entry(i + 1).or_default().push(name);
                    }
                    _ => {
                        renamed.push(i);
                        added.entry(i).or_default().push(name);
                    }
                }
            }
            None => {}
        }
    }
    // Selector head token -> its modifier.
    let mut heads: BTreeMap<usize, RangeModifier> = BTreeMap::new();
    for (k, tok) in toks.iter().enumerate() {
        let Kind::Modifier(modifier) = tok.kind else {
            continue;
        };
        replaced.push((tok.start, tok.end, " ".into()));
        let name = modifier.as_str();
        // Step back over the selector's other modifiers.
        let mut j = k - 1;
        loop {
            let t = &toks[j];
            let kw = match t.kind {
                Kind::Modifier(_) => back(j, 1),
                Kind::Number => modifier_keyword_before(&toks, q, j),
                // `offset (1m * 2)`, `@ start()`, `offset -step()`.
                Kind::Close if t.partner != usize::MAX => {
                    modifier_keyword_before(&toks, q, t.partner).or_else(|| {
                        back(t.partner, 1)
                            .filter(|&f| toks[f].kind == Kind::Ident)
                            .and_then(|f| modifier_keyword_before(&toks, q, f))
                    })
                }
                _ => None,
            };
            let next = match (t.kind, kw) {
                (Kind::Modifier(_), Some(p)) => Some(p),
                (_, Some(kw)) => back(kw, 1),
                _ => None,
            };
            match next {
                Some(p) => j = p,
                None => break,
            }
        }
        let head = match toks[j].kind {
            Kind::Brackets { subquery: true } => {
                let at = toks[operand_start(&toks, q, j)].start;
                return Err(parse_err(
                    q,
                    at,
                    &format!("{name} modifier is not supported for subqueries"),
                ));
            }
            Kind::Brackets { subquery: false } => match back(j, 1) {
                Some(h) if matches!(toks[h].kind, Kind::Braces | Kind::Ident) => h,
                // Not a selector's range (`(x)[5m]`): the parser reports it.
                _ => continue,
            },
            Kind::Braces | Kind::Ident => j,
            _ => {
                let at = toks[operand_start(&toks, q, j)].start;
                return Err(parse_err(
                    q,
                    at,
                    &format!("{name} modifier not implemented"),
                ));
            }
        };
        match heads.get(&head) {
            Some(&prev) if prev != modifier => {
                let at = toks[operand_start(&toks, q, head)].start;
                return Err(parse_err(
                    q,
                    at,
                    "anchored and smoothed modifiers cannot be used together",
                ));
            }
            Some(_) => {}
            None => {
                heads.insert(head, modifier);
                added
                    .entry(head)
                    .or_default()
                    .push(format!("{EXT_MARK}=\"{name}\""));
            }
        }
    }
    // Text edits, applied in text order: (from, to, replacement).
    let mut edits = replaced;
    for (&i, matchers) in &added {
        let t = &toks[i];
        let list = matchers.join(",");
        if t.kind == Kind::Braces {
            let inner = &q[t.start + 1..t.end.saturating_sub(1).max(t.start + 1)];
            let sep = if inner.trim().is_empty() { "" } else { "," };
            edits.push((t.start + 1, t.start + 1, format!("{list}{sep}")));
        } else if renamed.contains(&i) {
            edits.push((t.start, t.end, format!("{{{list}}}")));
        } else {
            edits.push((t.end, t.end, format!("{{{list}}}")));
        }
    }
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::with_capacity(q.len() + added.len() * (EXT_MARK.len() + 16));
    let mut copied = 0;
    for (a, b, text) in &edits {
        out.push_str(&q[copied..*a]);
        out.push_str(text);
        copied = *b;
    }
    out.push_str(&q[copied..]);
    Ok((Cow::Owned(out), heads.len()))
}

/// Turns every marker in prettified output back into its keyword: `x[5m] anchored`,
/// `x @ 100.000 smoothed offset 1m` (where Prometheus prints them).
pub(crate) fn unmark(p: &str) -> String {
    if !p.contains(EXT_MARK) {
        return p.to_string();
    }
    let mut out = p.to_string();
    // One marker per pass, each pass on the text the previous one produced.
    while let Some(fixed) = unmark_one(&out) {
        out = fixed;
    }
    out
}

fn unmark_one(p: &str) -> Option<String> {
    let sc = Scanner { s: p.as_bytes() };
    let s = sc.s;
    // Find the marker outside string literals.
    let mut i = 0;
    let at = loop {
        if i >= s.len() {
            return None;
        }
        match s[i] {
            b'"' | b'\'' | b'`' => i = sc.string_end(i),
            _ if s[i..].starts_with(EXT_MARK.as_bytes()) => break i,
            _ => i += 1,
        }
    };
    let value_start = sc.skip_blank(at + EXT_MARK.len());
    let mut j = value_start;
    while j < s.len() && matches!(s[j], b'=' | b' ') {
        j += 1;
    }
    if !matches!(s.get(j), Some(b'"' | b'\'' | b'`')) {
        return None;
    }
    let value_end = sc.string_end(j);
    let word = p[j + 1..value_end.saturating_sub(1)].to_string();
    let modifier = RangeModifier::of_word(&word)?;
    // The braces around the marker.
    let open = p[..at].rfind('{')?;
    let (close, _) = group_end(&sc, open);
    // Remove the marker and one separating comma.
    let (mut cut_a, mut cut_b) = (at, value_end);
    let after = sc.skip_blank(value_end);
    if s.get(after) == Some(&b',') {
        cut_b = sc.skip_blank(after + 1);
    } else if let Some(c) = p[open + 1..at].rfind(',')
        && p[open + 1 + c + 1..at].trim().is_empty()
    {
        cut_a = open + 1 + c;
    }
    let inner_rest = format!("{}{}", &p[open + 1..cut_a], &p[cut_b..close - 1]);
    let has_name = open > 0 && {
        let b = s[open - 1];
        b.is_ascii_alphanumeric() || b == b'_' || b == b':'
    };
    let braces = if inner_rest.trim().is_empty() && has_name {
        String::new()
    } else {
        format!("{{{}}}", inner_rest.trim_end())
    };
    // Where the keyword goes: after the range, or after an `@` modifier.
    let mut k = close;
    if s.get(k) == Some(&b'[') {
        k = group_end(&sc, k).0;
    } else {
        let a = sc.skip_blank(k);
        if s.get(a) == Some(&b'@') {
            let v = sc.skip_blank(a + 1);
            let mut e = v;
            if p[v..].starts_with("start()") || p[v..].starts_with("end()") {
                e = v + p[v..].find(')').map_or(0, |x| x + 1);
            } else {
                while e < s.len() && !matches!(s[e], b' ' | b'\n' | b')' | b',' | b']') {
                    e += 1;
                }
            }
            k = e;
        }
    }
    let mut out = String::with_capacity(p.len());
    out.push_str(&p[..open]);
    out.push_str(&braces);
    out.push_str(&p[close..k]);
    out.push(' ');
    out.push_str(modifier.as_str());
    out.push_str(&p[k..]);
    Some(out)
}

pub(crate) fn reserved_msg() -> String {
    format!("label name {EXT_MARK:?} is reserved")
}

/// Counts the markers of a parsed selector into `found` and refuses what Prometheus
/// refuses of a selector: one that has no non-empty matcher once the marker is left out.
pub(crate) fn check_selector(vs: &VectorSelector, found: &mut usize) -> Result<(), String> {
    let m = &vs.matchers;
    let all = || m.matchers.iter().chain(m.or_matchers.iter().flatten());
    let marks = all().filter(|x| x.name == EXT_MARK).count();
    if marks == 0 {
        return Ok(());
    }
    *found += marks;
    if vs.name.is_none() {
        let sets: Vec<Vec<&promql_parser::label::Matcher>> = if m.or_matchers.is_empty() {
            vec![m.matchers.iter().collect()]
        } else {
            m.or_matchers
                .iter()
                .map(|alt| m.matchers.iter().chain(alt).collect())
                .collect()
        };
        let empty_only = sets.iter().any(|set| {
            set.iter()
                .filter(|x| x.name != EXT_MARK)
                .all(|x| crate::source::Matcher::from_parser(x).matches(""))
        });
        if empty_only {
            return Err("vector selector must contain at least one non-empty matcher".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
