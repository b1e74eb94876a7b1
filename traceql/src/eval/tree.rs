//! Parent/child structure of one trace and the span relations of the structural
//! operators, computed in linear time over a pre-order of the spans.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::data::TraceData;

/// Parent/child structure of a trace, built once per trace when first needed.
pub(super) struct Tree {
    pub(super) parent: Vec<Option<u32>>,
    /// Spans ordered so that every parent comes before its children.
    pub(super) preorder: Vec<u32>,
    pub(super) child_count: Vec<u32>,
}

impl Tree {
    pub(super) fn build(trace: &TraceData) -> Tree {
        let n = trace.spans.len();
        let mut by_id: HashMap<&str, u32, BuildHasherDefault<FxHasher>> =
            HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default());
        by_id.extend(
            trace
                .spans
                .iter()
                .enumerate()
                .map(|(i, s)| (s.span_id.as_str(), i as u32)),
        );
        let parent: Vec<Option<u32>> = trace
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parent_id()
                    .and_then(|p| by_id.get(p).copied())
                    .filter(|&p| p as usize != i)
            })
            .collect();
        // children lists in CSR form
        let mut child_count = vec![0u32; n];
        for p in parent.iter().flatten() {
            child_count[*p as usize] += 1;
        }
        let mut start = vec![0usize; n + 1];
        for i in 0..n {
            start[i + 1] = start[i] + child_count[i] as usize;
        }
        let mut fill = start.clone();
        let mut children = vec![0u32; start[n]];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[fill[*p as usize]] = i as u32;
                fill[*p as usize] += 1;
            }
        }
        let mut preorder = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        for root in (0..n).filter(|&i| parent[i].is_none()) {
            stack.push(root as u32);
            while let Some(s) = stack.pop() {
                if std::mem::replace(&mut seen[s as usize], true) {
                    continue;
                }
                preorder.push(s);
                let (a, b) = (start[s as usize], start[s as usize + 1]);
                stack.extend(children[a..b].iter().rev());
            }
        }
        // spans on a parent cycle (malformed data) are not reachable from a root
        preorder.extend((0..n as u32).filter(|&i| !seen[i as usize]));
        Tree {
            parent,
            preorder,
            child_count,
        }
    }

    /// For every span x: does x stand in relation `kind` to some span marked in `set`?
    pub(super) fn relation(&self, kind: Rel, set: &[bool]) -> Vec<bool> {
        let tree = self;
        let n = set.len();
        let mut out = vec![false; n];
        match kind {
            Rel::ParentIn => {
                for (x, p) in tree.parent.iter().enumerate() {
                    out[x] = p.is_some_and(|p| set[p as usize]);
                }
            }
            Rel::ChildIn => {
                for (x, p) in tree.parent.iter().enumerate() {
                    if let (Some(p), true) = (p, set[x]) {
                        out[*p as usize] = true;
                    }
                }
            }
            Rel::AncestorIn => {
                for &x in &tree.preorder {
                    if let Some(p) = tree.parent[x as usize] {
                        out[x as usize] = set[p as usize] || out[p as usize];
                    }
                }
            }
            Rel::DescendantIn => {
                for &x in tree.preorder.iter().rev() {
                    if let Some(p) = tree.parent[x as usize]
                        && (set[x as usize] || out[x as usize])
                    {
                        out[p as usize] = true;
                    }
                }
            }
            Rel::SiblingIn => {
                let mut count = vec![0u32; n];
                for (x, p) in tree.parent.iter().enumerate() {
                    if let (Some(p), true) = (p, set[x]) {
                        count[*p as usize] += 1;
                    }
                }
                for (x, p) in tree.parent.iter().enumerate() {
                    if let Some(p) = p {
                        let others = count[*p as usize] - u32::from(set[x]);
                        out[x] = others > 0;
                    }
                }
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug)]
#[allow(clippy::enum_variant_names)]
pub(super) enum Rel {
    /// x's parent is in the set.
    ParentIn,
    /// some child of x is in the set.
    ChildIn,
    /// some ancestor of x is in the set.
    AncestorIn,
    /// some descendant of x is in the set.
    DescendantIn,
    /// some other child of x's parent is in the set.
    SiblingIn,
}

impl Rel {
    pub(super) fn converse(self) -> Rel {
        match self {
            Rel::ParentIn => Rel::ChildIn,
            Rel::ChildIn => Rel::ParentIn,
            Rel::AncestorIn => Rel::DescendantIn,
            Rel::DescendantIn => Rel::AncestorIn,
            Rel::SiblingIn => Rel::SiblingIn,
        }
    }
}

/// FxHash (as in rustc): span ids are short, trusted-length strings hashed once per
/// span; SipHash's DoS resistance is not needed for a map that lives for one trace.
#[derive(Default)]
pub(super) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
