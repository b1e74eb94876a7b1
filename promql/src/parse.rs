//! Query parsing: `promql-parser`, extended with Prometheus's histogram trim
//! operators `</` (TRIM_UPPER) and `>/` (TRIM_LOWER), which the parser does
//! not know.
//!
//! Prometheus gives the trim operators the precedence and left
//! associativity of the comparison operators. [`parse`] therefore rewrites
//! each `X </ Y` in the query text (outside string literals and comments)
//! into a comparison `X < bool ignoring() group_left(MARK) Y`, which the
//! parser accepts for every operand type, and then normalises each marked
//! node of the AST back into what the user wrote plus one reserved label in
//! its `on`/`ignoring` list ([`TRIM_MARK`]): `<` marks TRIM_UPPER, `>`
//! marks TRIM_LOWER. The marker label never exists on a series, so matching
//! is unchanged by it; the evaluator ([`trim_of`]) recognises trims by it and
//! [`format_query`] prints them back as `</` / `>/`. The user's own `on`,
//! `ignoring`, `group_left`/`group_right` and fill modifiers keep working.
//!
//! Other text passes before parsing: duration expressions (`durations`), the
//! `anchored`/`smoothed` range selector modifiers (`extended`) and `info()`'s
//! label selector.

use promql_parser::label::Labels as LabelList;
use promql_parser::parser::{BinModifier, BinaryExpr, Expr, LabelModifier, VectorMatchCardinality};

use crate::error::{Error, Result};
use crate::histogram::TrimSide;

/// Reserved label in the matching list of a normalised trim node.
pub(crate) const TRIM_MARK: &str = "__strata_trim__";
/// Text-form marker: the trim had a `group_left`/`group_right` of the user's.
const GROUP_MARK: &str = "__strata_trim_grouped__";
/// Every label name starting with this is reserved for the markers.
const RESERVED_PREFIX: &str = "__strata_trim";
/// Matcher added to the label selector of `info(v, {...})`: Prometheus accepts a
/// selector there whose matchers all match the empty string (`{data=~".*"}`), which
/// the parser refuses as a selector; the mark makes it acceptable and is removed again.
const INFO_MARK: &str = "__strata_info__";

/// Markers the text rewrite added and normalisation found.
#[derive(Default)]
struct Marks {
    trims: usize,
    infos: usize,
    exts: usize,
}

/// Parses a query, mapping errors to `bad_data`. Duration expressions using `step()`
/// or `range()` need the evaluation's times: see [`parse_in`].
pub fn parse(query: &str) -> Result<Expr> {
    parse_in(query, None)
}

/// Parses a query to evaluate over `times`, which duration expressions such as
/// `rate(x[step() * 4])` may refer to.
pub fn parse_in(query: &str, times: Option<QueryTimes>) -> Result<Expr> {
    check_nesting(query).map_err(Error::BadData)?;
    let (query, exts) = extended::mark(query).map_err(Error::BadData)?;
    let query = &durations::rewrite(&query, times).map_err(Error::BadData)?;
    let (marked, infos) = mark_info_selectors(query);
    let (text, trims) = rewrite(&marked).map_err(Error::BadData)?;
    let mut expr = promql_parser::parser::parse(&text).map_err(|e| {
        // Our markers are valid labels: a message naming one is about a
        // reserved name the query itself uses (and must not show ours).
        if (trims > 0 && e.contains(RESERVED_PREFIX)) || (infos > 0 && e.contains(INFO_MARK)) {
            Error::BadData(reserved_msg())
        } else if exts > 0 && e.contains(extended::EXT_MARK) {
            Error::BadData(extended::reserved_msg())
        } else {
            Error::BadData(e)
        }
    })?;
    let mut found = Marks::default();
    normalize(&mut expr, &mut found).map_err(Error::BadData)?;
    if found.trims != trims || found.infos != infos {
        // The query spells out a marker itself.
        return Err(Error::BadData(reserved_msg()));
    }
    if found.exts != exts {
        return Err(Error::BadData(extended::reserved_msg()));
    }
    Ok(expr)
}

/// Formats a parsed query like `promql-parser`'s `prettify`, with trim
/// operators printed as `</` and `>/` and `anchored`/`smoothed` modifiers as keywords.
pub fn format_query(expr: &Expr) -> String {
    extended::unmark(&unmark(&expr.prettify()))
}

/// The trim operator a binary node stands for, if any: `</` keeps the
/// observations below its right operand, `>/` those above.
pub(crate) fn trim_of(b: &BinaryExpr) -> Option<TrimSide> {
    let m = b.modifier.as_ref()?.matching.as_ref()?;
    if !m.labels().labels.iter().any(|l| l == TRIM_MARK) {
        return None;
    }
    match b.op.to_string().as_str() {
        "<" => Some(TrimSide::KeepBelow),
        ">" => Some(TrimSide::KeepAbove),
        _ => None,
    }
}

fn reserved_msg() -> String {
    format!("label names starting with {RESERVED_PREFIX:?} are reserved")
}

fn is_reserved(l: &str) -> bool {
    l.starts_with(RESERVED_PREFIX)
}

// ---------------------------------------------------------------------------
// Text rewrite.

/// Byte scanner over the query text that knows PromQL's string literals
/// and comments.
struct Scanner<'a> {
    s: &'a [u8],
}

impl Scanner<'_> {
    /// End (exclusive) of the string literal starting at `i`, or the text's
    /// end if it is unterminated.
    fn string_end(&self, i: usize) -> usize {
        let q = self.s[i];
        let mut j = i + 1;
        while j < self.s.len() {
            match self.s[j] {
                b'\\' if q != b'`' => j += 2,
                c if c == q => return j + 1,
                _ => j += 1,
            }
        }
        self.s.len()
    }

    /// End of the comment starting at `i` (at its newline, exclusive).
    fn comment_end(&self, i: usize) -> usize {
        self.s[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.s.len(), |p| i + p)
    }

    /// First position at or after `i` that is not whitespace or comment.
    fn skip_blank(&self, mut i: usize) -> usize {
        while i < self.s.len() {
            match self.s[i] {
                b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                b'#' => i = self.comment_end(i),
                _ => break,
            }
        }
        i
    }

    /// The identifier starting at `i` (possibly empty).
    fn ident(&self, i: usize) -> &str {
        let mut j = i;
        while j < self.s.len()
            && (self.s[j].is_ascii_alphanumeric() || self.s[j] == b'_' || self.s[j] == b':')
        {
            j += 1;
        }
        std::str::from_utf8(&self.s[i..j]).unwrap_or("")
    }

    /// Position after the `)` closing the `(` at `i`, if any.
    fn paren_end(&self, i: usize) -> Option<usize> {
        let mut j = i + 1;
        while j < self.s.len() {
            match self.s[j] {
                b'"' | b'\'' | b'`' => j = self.string_end(j),
                b'#' => j = self.comment_end(j),
                b')' => return Some(j + 1),
                b'(' => return None,
                _ => j += 1,
            }
        }
        None
    }
}

impl Scanner<'_> {
    /// The first `,` at nesting depth zero inside the call whose `(` is at `open`.
    fn first_argument_end(&self, open: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut j = open + 1;
        while j < self.s.len() {
            match self.s[j] {
                b'"' | b'\'' | b'`' => {
                    j = self.string_end(j);
                    continue;
                }
                b'#' => {
                    j = self.comment_end(j);
                    continue;
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => return None,
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 => return Some(j),
                _ => {}
            }
            j += 1;
        }
        None
    }
}

/// Most nesting a query may have: parentheses plus operators, which is what bounds the
/// depth of its syntax tree. Parsing, rewriting, evaluating and dropping the tree recurse
/// on it, so a hostile `((((…` or `1+1+1…` of tens of thousands would overflow the stack
/// and take the server down; real queries stay far below this.
const MAX_NESTING: usize = 256;

/// Refuses queries whose syntax tree could be deeper than [`MAX_NESTING`]: it counts the
/// deepest parenthesis nesting plus every operator (symbols, `and`/`or`/`unless`/`atan2`)
/// outside strings, comments, label matchers and durations.
fn check_nesting(q: &str) -> std::result::Result<(), String> {
    let sc = Scanner { s: q.as_bytes() };
    let s = sc.s;
    let (mut depth, mut deepest, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' | b'\'' | b'`' => {
                i = sc.string_end(i);
                continue;
            }
            b'#' => {
                i = sc.comment_end(i);
                continue;
            }
            // Matchers and durations add no depth; skip to the closing bracket.
            c @ (b'{' | b'[') => {
                let close = if c == b'{' { b'}' } else { b']' };
                let mut j = i + 1;
                while j < s.len() && s[j] != close {
                    j = match s[j] {
                        b'"' | b'\'' | b'`' => sc.string_end(j),
                        _ => j + 1,
                    };
                }
                i = j + 1;
                continue;
            }
            b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' => depth = depth.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' | b'!' => operators += 1,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let word = sc.ident(i);
                if ["and", "or", "unless", "atan2"]
                    .iter()
                    .any(|w| word.eq_ignore_ascii_case(w))
                {
                    operators += 1;
                }
                i += word.len().max(1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if deepest + operators > MAX_NESTING {
        return Err(format!(
            "query is too deeply nested: {deepest} levels of parentheses and {operators} \
             operators, more than {MAX_NESTING} in all"
        ));
    }
    Ok(())
}

/// Adds [`INFO_MARK`] to the label selector argument of every `info(v, {...})`;
/// returns the new text and the number of marks.
fn mark_info_selectors(q: &str) -> (String, usize) {
    let sc = Scanner { s: q.as_bytes() };
    let s = sc.s;
    let mut out = String::with_capacity(q.len());
    let mut copied = 0;
    let mut marks = 0;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' | b'\'' | b'`' => i = sc.string_end(i),
            b'#' => i = sc.comment_end(i),
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b':' => {
                let word = sc.ident(i);
                let open = sc.skip_blank(i + word.len());
                if word == "info" && s.get(open) == Some(&b'(') {
                    let brace = sc
                        .first_argument_end(open)
                        .map(|comma| sc.skip_blank(comma + 1))
                        .filter(|&b| s.get(b) == Some(&b'{'));
                    if let Some(b) = brace {
                        out.push_str(&q[copied..=b]);
                        out.push_str(INFO_MARK);
                        out.push_str("=\"1\",");
                        copied = b + 1;
                        marks += 1;
                    }
                }
                i += word.len().max(1);
            }
            _ => i += 1,
        }
    }
    out.push_str(&q[copied..]);
    (out, marks)
}

/// Rewrites every trim operator into a marked comparison and re-spells raw
/// bytes that are not valid UTF-8 in string literals (see `raw_bytes`);
/// returns the new text and the number of trims.
fn rewrite(q: &str) -> std::result::Result<(String, usize), String> {
    let sc = Scanner { s: q.as_bytes() };
    let s = sc.s;
    let mut out = String::with_capacity(q.len() + 64);
    let mut trims = 0;
    let mut copied = 0; // s[..copied] is in `out`
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            q0 @ (b'"' | b'\'') => {
                let end = sc.string_end(i);
                if end - i >= 2
                    && s[end - 1] == q0
                    && let Some(lit) = raw_bytes::respell_raw_bytes(&q[i..end])
                {
                    out.push_str(&q[copied..i]);
                    out.push_str(&lit);
                    copied = end;
                }
                i = end;
            }
            b'`' => i = sc.string_end(i),
            b'#' => i = sc.comment_end(i),
            c @ (b'<' | b'>') if s.get(i + 1) == Some(&b'/') => {
                trims += 1;
                out.push_str(&q[copied..i]);
                out.push(c as char);
                out.push_str(" bool");
                i += 2;
                copied = i;
                let j = sc.skip_blank(i);
                let word = sc.ident(j).to_ascii_lowercase();
                match word.as_str() {
                    "bool" => {
                        return Err("bool modifier can only be used on comparison operators".into());
                    }
                    "group_left" | "group_right" => return Err(format!("unexpected <{word}>")),
                    "on" | "ignoring" => {
                        let open = sc.skip_blank(j + word.len());
                        if s.get(open) != Some(&b'(') {
                            // Malformed: leave it to the parser to report.
                            continue;
                        }
                        let Some(close) = sc.paren_end(open) else {
                            continue;
                        };
                        out.push_str(&q[copied..close]);
                        copied = close;
                        i = close;
                        let k = sc.skip_blank(close);
                        let group = sc.ident(k).to_ascii_lowercase();
                        if group == "group_left" || group == "group_right" {
                            let after = k + group.len();
                            out.push_str(&q[copied..after]);
                            copied = after;
                            i = after;
                            let open = sc.skip_blank(after);
                            if s.get(open) == Some(&b'(') {
                                out.push_str(&q[copied..=open]);
                                out.push_str(GROUP_MARK);
                                if s.get(sc.skip_blank(open + 1)) != Some(&b')') {
                                    out.push(',');
                                }
                                copied = open + 1;
                                i = open + 1;
                            } else {
                                out.push('(');
                                out.push_str(GROUP_MARK);
                                out.push(')');
                            }
                        } else {
                            out.push_str(" group_left(");
                            out.push_str(TRIM_MARK);
                            out.push(')');
                        }
                    }
                    _ => {
                        out.push_str(" ignoring() group_left(");
                        out.push_str(TRIM_MARK);
                        out.push_str(") ");
                    }
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&q[copied..]);
    Ok((out, trims))
}

// ---------------------------------------------------------------------------
// AST normalisation.

/// Turns the parsed text form of each trim into its normalised form and
/// counts them in `found`; rejects reserved label names anywhere else.
fn normalize(e: &mut Expr, found: &mut Marks) -> std::result::Result<(), String> {
    match e {
        Expr::Aggregate(a) => {
            if let Some(p) = a.param.as_mut() {
                normalize(p, found)?;
            }
            normalize(&mut a.expr, found)
        }
        Expr::Unary(u) => normalize(&mut u.expr, found),
        Expr::Paren(p) => normalize(&mut p.expr, found),
        Expr::Subquery(s) => normalize(&mut s.expr, found),
        Expr::Call(c) => {
            if c.func.name == "info"
                && let Some(Expr::VectorSelector(vs)) = c.args.args.get_mut(1).map(|a| &mut **a)
            {
                let before = vs.matchers.matchers.len();
                vs.matchers.matchers.retain(|m| m.name != INFO_MARK);
                found.infos += before - vs.matchers.matchers.len();
            }
            for a in c.args.args.iter_mut() {
                normalize(a, found)?;
            }
            Ok(())
        }
        Expr::Binary(b) => {
            normalize(&mut b.lhs, found)?;
            normalize(&mut b.rhs, found)?;
            let op = b.op.to_string();
            if let Some(m) = b.modifier.as_mut() {
                if (op == "<" || op == ">") && text_marked(m) {
                    found.trims += 1;
                    normalize_trim(m)?;
                } else if modifier_labels(m).any(is_reserved) {
                    return Err(reserved_msg());
                }
            }
            Ok(())
        }
        Expr::VectorSelector(vs) => extended::check_selector(vs, &mut found.exts),
        Expr::MatrixSelector(ms) => extended::check_selector(&ms.vs, &mut found.exts),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Ok(()),
    }
}

fn modifier_labels(m: &BinModifier) -> impl Iterator<Item = &str> {
    let matching = m.matching.iter().flat_map(|l| l.labels().labels.iter());
    let card = m.card.labels().into_iter().flat_map(|l| l.labels.iter());
    matching.chain(card).map(String::as_str)
}

fn text_marked(m: &BinModifier) -> bool {
    m.card
        .labels()
        .and_then(|l| l.labels.first())
        .is_some_and(|l| l == TRIM_MARK || l == GROUP_MARK)
}

fn normalize_trim(m: &mut BinModifier) -> std::result::Result<(), String> {
    m.return_bool = false;
    let card = std::mem::replace(&mut m.card, VectorMatchCardinality::OneToOne);
    m.card = match card {
        VectorMatchCardinality::ManyToOne(l) if l.labels.len() == 1 && l.labels[0] == TRIM_MARK => {
            VectorMatchCardinality::OneToOne
        }
        VectorMatchCardinality::ManyToOne(l) => VectorMatchCardinality::ManyToOne(strip_group(l)?),
        VectorMatchCardinality::OneToMany(l) => VectorMatchCardinality::OneToMany(strip_group(l)?),
        _ => return Err(reserved_msg()),
    };
    let mut labels = match m.matching.take() {
        Some(LabelModifier::Include(l)) => LabelModifier::Include(l),
        Some(LabelModifier::Exclude(l)) => LabelModifier::Exclude(l),
        None => LabelModifier::Exclude(LabelList { labels: Vec::new() }),
    };
    let list = match &mut labels {
        LabelModifier::Include(l) | LabelModifier::Exclude(l) => &mut l.labels,
    };
    if modifier_labels(m).any(is_reserved) || list.iter().any(|l| is_reserved(l)) {
        return Err(reserved_msg());
    }
    list.push(TRIM_MARK.to_string());
    m.matching = Some(labels);
    Ok(())
}

/// Removes the leading group marker from a `group_left`/`group_right` list.
fn strip_group(mut l: LabelList) -> std::result::Result<LabelList, String> {
    if l.labels.first().map(String::as_str) != Some(GROUP_MARK) {
        return Err(reserved_msg());
    }
    l.labels.remove(0);
    Ok(l)
}

// ---------------------------------------------------------------------------
// Printing.

/// Rewrites `< on (a, MARK)` / `> ignoring (MARK)` in prettified output
/// back to `</ on (a)` / `>/`.
fn unmark(p: &str) -> String {
    let sc = Scanner { s: p.as_bytes() };
    let s = sc.s;
    let mut out = String::with_capacity(p.len());
    let mut copied = 0;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' | b'\'' | b'`' => i = sc.string_end(i),
            b'<' | b'>' if s.get(i + 1) != Some(&b'=') => {
                let j = sc.skip_blank(i + 1);
                let word = sc.ident(j);
                let open = sc.skip_blank(j + word.len());
                let marked = (word == "on" || word == "ignoring") && s.get(open) == Some(&b'(');
                let items = if marked {
                    sc.paren_end(open)
                        .map(|close| (close, split_list(&p[open + 1..close - 1])))
                } else {
                    None
                };
                match items {
                    Some((close, items)) if items.contains(&TRIM_MARK) => {
                        let rest: Vec<&str> =
                            items.into_iter().filter(|l| *l != TRIM_MARK).collect();
                        out.push_str(&p[copied..=i]);
                        out.push('/');
                        if word == "on" || !rest.is_empty() {
                            out.push_str(&format!(" {word} ({})", rest.join(", ")));
                        }
                        copied = close;
                        i = close;
                    }
                    _ => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&p[copied..]);
    out
}

/// Splits a printed label list at top-level commas (not inside quotes).
fn split_list(s: &str) -> Vec<&str> {
    let sc = Scanner { s: s.as_bytes() };
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < s.len() {
        match sc.s[i] {
            b'"' | b'\'' | b'`' => i = sc.string_end(i),
            b',' => {
                out.push(s[start..i].trim());
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

mod durations;
mod extended;
mod raw_bytes;

pub use durations::QueryTimes;
pub use extended::{RangeModifier, is_modifier_mark, modifier_of};
pub(crate) use raw_bytes::{display as display_raw, quote as quote_raw, valid_label_name};

#[cfg(test)]
mod tests;
