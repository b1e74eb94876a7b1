//! Parse errors with the position of the offending token.

/// A query the parser rejected: syntax errors, type errors, invalid regexes and constructs
/// this engine does not support. `line` and `col` are 1-based (`col` counts characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {col}: {message}")]
pub struct ParseError {
    /// Byte offset into the query.
    pub offset: usize,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn at(src: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(src.len());
        let before = src.get(..offset).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        ParseError {
            offset,
            line,
            col,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let e = ParseError::at("{ a }\n{ bé x", 11, "boom");
        assert_eq!((e.line, e.col), (2, 5));
        assert_eq!(e.to_string(), "parse error at line 2, col 5: boom");
    }
}
