//! The LogQL syntax tree produced by [`crate::parse`].

use regex::Regex;

use crate::matcher::Matcher;
use crate::template::Template;

/// A parsed LogQL query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `{selector} | pipeline`: returns log lines.
    Log(LogExpr),
    /// `count_over_time({..}[5m])` and friends.
    RangeAgg(RangeAgg),
    /// `sum by (x) (...)`, `topk(3, ...)`.
    VectorAgg(VectorAgg),
    /// `a + b`, `a > bool 3`, `a and b`.
    Binary(Box<BinaryExpr>),
    /// A number literal.
    Literal(f64),
    /// `vector(3)`.
    Vector(f64),
    /// `label_replace(v, "dst", "replacement", "src", "regex")`.
    LabelReplace(Box<LabelReplace>),
}

impl Expr {
    /// True for queries returning log lines (`{app="x"} |= "y"`).
    pub fn is_log_query(&self) -> bool {
        matches!(self, Expr::Log(_))
    }

    /// The stream matchers of every selector in the query.
    pub fn selectors(&self) -> Vec<&[Matcher]> {
        let mut out = Vec::new();
        self.walk_selectors(&mut out);
        out
    }

    fn walk_selectors<'a>(&'a self, out: &mut Vec<&'a [Matcher]>) {
        match self {
            Expr::Log(l) => out.push(&l.matchers),
            Expr::RangeAgg(r) => out.push(&r.log.matchers),
            Expr::VectorAgg(v) => v.inner.walk_selectors(out),
            Expr::Binary(b) => {
                b.lhs.walk_selectors(out);
                b.rhs.walk_selectors(out);
            }
            Expr::LabelReplace(l) => l.inner.walk_selectors(out),
            Expr::Literal(_) | Expr::Vector(_) => {}
        }
    }
}

/// A stream selector followed by pipeline stages.
#[derive(Debug, Clone)]
pub struct LogExpr {
    pub matchers: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

impl LogExpr {
    /// The line filters before the first stage that is not a line filter:
    /// a source may use them to skip data.
    pub fn leading_line_filters(&self) -> Vec<LineFilter> {
        let mut out = Vec::new();
        for s in &self.stages {
            match s {
                Stage::LineFilter(f) if f.or.is_empty() => out.push(f.filter.clone()),
                Stage::LineFilter(_) => {}
                _ => break,
            }
        }
        out
    }
}

/// A line filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|= "text"`
    Contains,
    /// `!= "text"`
    NotContains,
    /// `|~ "regex"`
    Regex,
    /// `!~ "regex"`
    NotRegex,
    /// `|= "text"` with case-insensitive matching (not produced by the parser;
    /// kept for sources that want to express it).
    ContainsCi,
    /// `|> "pattern <_> here"`
    Pattern,
    /// `!> "pattern <_> here"`
    NotPattern,
}

impl LineFilterOp {
    pub fn is_negative(self) -> bool {
        matches!(
            self,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        )
    }
}

/// One line filter: operator and its pattern text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFilter {
    pub op: LineFilterOp,
    pub pattern: String,
}

/// A line filter stage with its compiled form; `or` alternatives use the same
/// operator (`|= "a" or "b"`).
#[derive(Debug, Clone)]
pub struct LineFilterStage {
    pub filter: LineFilter,
    pub or: Vec<String>,
    pub(crate) compiled: Vec<CompiledLineFilter>,
}

#[derive(Debug, Clone)]
pub(crate) enum CompiledLineFilter {
    Contains(String),
    ContainsCi(String),
    Regex(Regex),
    Pattern(crate::pattern::Pattern),
}

/// A pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    LineFilter(LineFilterStage),
    /// `json` or `json a="x.y", b`.
    Json(Vec<ExtractParam>),
    /// `logfmt [--strict] [--keep-empty] [params]`.
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<ExtractParam>,
    },
    /// `regexp "(?P<name>...)"`.
    Regexp(RegexpParser),
    /// `pattern "<ip> - <_>"`.
    Pattern(crate::pattern::Pattern),
    /// `unpack`.
    Unpack,
    /// `| label > 3 and other="x"`.
    LabelFilter(LabelFilter),
    /// `line_format "{{.x}}"`.
    LineFormat(Template),
    /// `label_format a=b, c="{{.d}}"`.
    LabelFormat(Vec<LabelFmt>),
    /// `drop a, b="v"`.
    Drop(Vec<LabelSel>),
    /// `keep a, b="v"`.
    Keep(Vec<LabelSel>),
    /// `decolorize`.
    Decolorize,
}

/// `name="expression"` (or bare `name`) parameter of `json`/`logfmt`.
#[derive(Debug, Clone)]
pub struct ExtractParam {
    pub label: String,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct RegexpParser {
    pub regex: Regex,
    /// Capture group names by group index (None for unnamed groups).
    pub names: Vec<Option<String>>,
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `name op "string"`.
    Matcher(Matcher),
    /// `name op number`.
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    /// `name op 5s`.
    Duration {
        name: String,
        op: CmpOp,
        value_ns: i64,
    },
    /// `name op 5MB`.
    Bytes {
        name: String,
        op: CmpOp,
        value: u64,
    },
}

/// Numeric comparison operator of label filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    pub fn cmp(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Neq => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
        }
    }
}

/// One `label_format` item.
#[derive(Debug, Clone)]
pub enum LabelFmt {
    /// `dst=src`
    Rename { dst: String, src: String },
    /// `dst="{{template}}"`
    Template { dst: String, tmpl: Template },
}

/// `drop`/`keep` argument: `name` or `name="value"` (any matcher op).
#[derive(Debug, Clone)]
pub enum LabelSel {
    Name(String),
    Matcher(Matcher),
}

impl LabelSel {
    pub fn name(&self) -> &str {
        match self {
            LabelSel::Name(n) => n,
            LabelSel::Matcher(m) => &m.name,
        }
    }
}

/// Range aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    Count,
    Rate,
    RateCounter,
    Bytes,
    BytesRate,
    Absent,
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Stdvar,
    Quantile,
    First,
    Last,
}

impl RangeOp {
    pub fn from_name(s: &str) -> Option<RangeOp> {
        Some(match s {
            "count_over_time" => RangeOp::Count,
            "rate" => RangeOp::Rate,
            "rate_counter" => RangeOp::RateCounter,
            "bytes_over_time" => RangeOp::Bytes,
            "bytes_rate" => RangeOp::BytesRate,
            "absent_over_time" => RangeOp::Absent,
            "sum_over_time" => RangeOp::Sum,
            "avg_over_time" => RangeOp::Avg,
            "min_over_time" => RangeOp::Min,
            "max_over_time" => RangeOp::Max,
            "stddev_over_time" => RangeOp::Stddev,
            "stdvar_over_time" => RangeOp::Stdvar,
            "quantile_over_time" => RangeOp::Quantile,
            "first_over_time" => RangeOp::First,
            "last_over_time" => RangeOp::Last,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RangeOp::Count => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::Bytes => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::Absent => "absent_over_time",
            RangeOp::Sum => "sum_over_time",
            RangeOp::Avg => "avg_over_time",
            RangeOp::Min => "min_over_time",
            RangeOp::Max => "max_over_time",
            RangeOp::Stddev => "stddev_over_time",
            RangeOp::Stdvar => "stdvar_over_time",
            RangeOp::Quantile => "quantile_over_time",
            RangeOp::First => "first_over_time",
            RangeOp::Last => "last_over_time",
        }
    }
}

/// `| unwrap [duration|duration_seconds|bytes](label)`.
#[derive(Debug, Clone)]
pub struct Unwrap {
    pub label: String,
    pub conv: UnwrapConv,
    /// Label filters after the unwrap (`| unwrap x | __error__=""`).
    pub post_filters: Vec<LabelFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapConv {
    Float,
    Duration,
    Bytes,
}

#[derive(Debug, Clone)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

/// `op(param, {sel} | pipeline | unwrap x [range] offset o) by (..)`.
#[derive(Debug, Clone)]
pub struct RangeAgg {
    pub op: RangeOp,
    pub param: Option<f64>,
    pub log: LogExpr,
    pub unwrap: Option<Unwrap>,
    pub range_ns: i64,
    pub offset_ns: i64,
    pub grouping: Option<Grouping>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

impl VectorOp {
    pub fn from_name(s: &str) -> Option<VectorOp> {
        Some(match s {
            "sum" => VectorOp::Sum,
            "avg" => VectorOp::Avg,
            "min" => VectorOp::Min,
            "max" => VectorOp::Max,
            "count" => VectorOp::Count,
            "stddev" => VectorOp::Stddev,
            "stdvar" => VectorOp::Stdvar,
            "topk" => VectorOp::Topk,
            "bottomk" => VectorOp::Bottomk,
            "sort" => VectorOp::Sort,
            "sort_desc" => VectorOp::SortDesc,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct VectorAgg {
    pub op: VectorOp,
    pub param: Option<i64>,
    pub grouping: Option<Grouping>,
    pub inner: Box<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte
        )
    }
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSide {
    None,
    Left,
    Right,
}

#[derive(Debug, Clone)]
pub struct BinaryExpr {
    pub op: BinOp,
    pub lhs: Expr,
    pub rhs: Expr,
    pub return_bool: bool,
    /// `on(..)` (true) or `ignoring(..)` (false) with its labels.
    pub matching: Option<(bool, Vec<String>)>,
    pub group: GroupSide,
    pub include: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LabelReplace {
    pub inner: Expr,
    pub dst: String,
    pub replacement: String,
    pub src: String,
    pub regex: Regex,
}
