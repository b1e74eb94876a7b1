//! Query annotations: warnings and infos returned alongside a result.
//!
//! Messages follow Prometheus's wording ("PromQL warning: ...") but carry no
//! position suffix, because the parser does not expose source positions.

use std::collections::BTreeMap;

/// Severity of an annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A warning.
    Warning,
    /// An info.
    Info,
}

/// A de-duplicated set of annotations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    items: BTreeMap<String, Level>,
}

impl Annotations {
    /// Adds a warning (message without the "PromQL warning: " prefix).
    pub fn warn(&mut self, msg: impl AsRef<str>) {
        self.items
            .insert(format!("PromQL warning: {}", msg.as_ref()), Level::Warning);
    }

    /// Adds an info (message without the "PromQL info: " prefix).
    pub fn info(&mut self, msg: impl AsRef<str>) {
        self.items
            .insert(format!("PromQL info: {}", msg.as_ref()), Level::Info);
    }

    /// Adds all of `other`.
    pub fn merge(&mut self, other: Annotations) {
        self.items.extend(other.items);
    }

    /// Warning messages.
    pub fn warnings(&self) -> Vec<String> {
        self.of(Level::Warning)
    }

    /// Info messages.
    pub fn infos(&self) -> Vec<String> {
        self.of(Level::Info)
    }

    fn of(&self, level: Level) -> Vec<String> {
        self.items
            .iter()
            .filter(|(_, l)| **l == level)
            .map(|(m, _)| m.clone())
            .collect()
    }
}

/// Formats a float like Go's `%g`.
pub(crate) fn go_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exp = f.abs().log10().floor() as i32;
    if !(-4..6).contains(&exp) {
        return crate::json::go_exponent(f);
    }
    format!("{f}")
}

/// Quotes like Go's `%q` for ordinary strings.
pub(crate) fn go_q(s: &str) -> String {
    format!("{s:?}")
}
