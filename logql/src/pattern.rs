//! Loki's pattern language (`<name>` captures, `<_>` placeholders, literals)
//! used by the `pattern` parser and the `|>`/`!>` line filters.

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(String),
    /// A capture; `None` for `<_>`.
    Cap(Option<String>),
}

#[derive(Debug, Clone)]
pub struct Pattern {
    nodes: Vec<Node>,
}

impl Pattern {
    /// Parses a pattern; `need_named` requires at least one named capture
    /// (the parser stage), the line filter accepts any pattern.
    pub fn parse(s: &str, need_named: bool) -> Result<Pattern, String> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = s;
        let mut lit = String::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('<')
                && let Some(end) = after.find('>')
            {
                let name = &after[..end];
                let valid = name == "_" || crate::parser::is_label_name(name);
                if valid {
                    if !lit.is_empty() {
                        nodes.push(Node::Lit(std::mem::take(&mut lit)));
                    }
                    if matches!(nodes.last(), Some(Node::Cap(_))) {
                        return Err(format!(
                            "invalid pattern {s:?}: consecutive capture <{name}> is not allowed"
                        ));
                    }
                    let cap = if name == "_" {
                        None
                    } else {
                        Some(name.to_string())
                    };
                    if let Some(n) = &cap
                        && nodes
                            .iter()
                            .any(|x| matches!(x, Node::Cap(Some(o)) if o == n))
                    {
                        return Err(format!("invalid pattern {s:?}: duplicate capture <{n}>"));
                    }
                    nodes.push(Node::Cap(cap));
                    rest = &after[end + 1..];
                    continue;
                }
            }
            let c = rest.chars().next().unwrap_or(' ');
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            nodes.push(Node::Lit(lit));
        }
        if need_named && !nodes.iter().any(|n| matches!(n, Node::Cap(Some(_)))) {
            return Err(format!(
                "invalid pattern {s:?}: at least one capture is required"
            ));
        }
        if nodes.is_empty() {
            return Err("invalid pattern: empty".into());
        }
        Ok(Pattern { nodes })
    }

    /// Named capture names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Cap(Some(s)) => Some(s.as_str()),
            _ => None,
        })
    }

    /// Extracts captures like Loki's pattern parser: a leading literal must
    /// start the line; each capture runs to the next literal; a missing
    /// literal ends matching with the capture taking the rest of the line.
    pub fn captures<'l>(&self, line: &'l str, mut f: impl FnMut(&str, &'l str)) {
        let mut input = line;
        let mut nodes = &self.nodes[..];
        if input.is_empty() {
            return;
        }
        if let Some(Node::Lit(l)) = nodes.first() {
            if !input.starts_with(l.as_str()) {
                return;
            }
            input = &input[l.len()..];
            nodes = &nodes[1..];
        }
        while !nodes.is_empty() {
            let Node::Cap(name) = &nodes[0] else { return };
            if nodes.len() == 1 {
                if let Some(n) = name {
                    f(n, input);
                }
                return;
            }
            let Node::Lit(l) = &nodes[1] else { return };
            nodes = &nodes[2..];
            match input.find(l.as_str()) {
                None => {
                    if let Some(n) = name {
                        f(n, input);
                    }
                    return;
                }
                Some(i) => {
                    if let Some(n) = name {
                        f(n, &input[..i]);
                    }
                    input = &input[i + l.len()..];
                }
            }
        }
    }

    /// Whether a line matches the pattern (line filter semantics): literals
    /// appear in order, a leading literal starts the line, a trailing
    /// literal ends it, and each capture takes at least one byte.
    pub fn test(&self, line: &str) -> bool {
        let mut off = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            let Node::Lit(l) = n else { continue };
            if i == 0 {
                if !line.starts_with(l.as_str()) {
                    return false;
                }
                off = l.len();
                continue;
            }
            match line[off..].find(l.as_str()) {
                None | Some(0) => return false,
                Some(j) => off += j + l.len(),
            }
        }
        if let Some(Node::Lit(_)) = self.nodes.last() {
            return off == line.len();
        }
        true
    }
}
