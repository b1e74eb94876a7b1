//! The service dependency graph (Jaeger's `/api/dependencies`): for every span whose parent
//! span belongs to another service, one call from the parent's service to the child's.

use super::limits::Budget;
use super::read::{SpanColumns, scan};
use crate::error::{Error, Result};
use datafusion::arrow::array::RecordBatch;
use std::collections::{BTreeMap, HashMap};
use strata_storage::{Storage, TenantId};
use xxhash_rust::xxh3::xxh3_64;

/// One edge: `parent` service called `child` service `call_count` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

fn key(trace: &str, span: &str) -> u64 {
    let mut buf = [0u8; 48];
    let (t, s) = (trace.as_bytes(), span.as_bytes());
    if t.len() + s.len() <= buf.len() {
        buf[..t.len()].copy_from_slice(t);
        buf[t.len()..t.len() + s.len()].copy_from_slice(s);
        xxh3_64(&buf[..t.len() + s.len()])
    } else {
        xxh3_64(format!("{trace}{span}").as_bytes())
    }
}

/// Edges between services from the spans starting in `[start_ns, end_ns]`.
pub fn dependencies(
    storage: &Storage,
    tenant: &TenantId,
    start_ns: i64,
    end_ns: i64,
    budget: &Budget,
) -> Result<Vec<Dependency>> {
    let mut services: Vec<String> = Vec::new();
    let mut service_ix: HashMap<String, u32> = HashMap::new();
    // (trace, span) -> service index; and the child edges to resolve afterwards.
    let mut owner: HashMap<u64, u32> = HashMap::new();
    let mut children: Vec<(u64, u32)> = Vec::new();
    let cols = ["trace_id", "span_id", "parent_span_id", "service_name"];
    scan(
        storage,
        tenant,
        start_ns,
        end_ns,
        &cols,
        budget,
        &mut |b: &RecordBatch| {
            let c = SpanColumns::new(b);
            let (Some(t), Some(s), Some(p), Some(svc)) = (
                c.str("trace_id"),
                c.str("span_id"),
                c.str("parent_span_id"),
                c.str("service_name"),
            ) else {
                return Err(Error::Internal("spans batch lacks id columns".into()));
            };
            for i in 0..b.num_rows() {
                let name = svc.value(i);
                let ix = match service_ix.get(name) {
                    Some(ix) => *ix,
                    None => {
                        let ix = services.len() as u32;
                        services.push(name.to_owned());
                        service_ix.insert(name.to_owned(), ix);
                        ix
                    }
                };
                owner.insert(key(t.value(i), s.value(i)), ix);
                if !p.value(i).is_empty() {
                    children.push((key(t.value(i), p.value(i)), ix));
                }
            }
            Ok(true)
        },
    )?;
    let mut edges: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for (parent_key, child) in children {
        if let Some(parent) = owner.get(&parent_key)
            && *parent != child
        {
            *edges.entry((*parent, child)).or_default() += 1;
        }
    }
    let name = |i: u32| services.get(i as usize).cloned().unwrap_or_default();
    Ok(edges
        .into_iter()
        .map(|((p, c), n)| Dependency {
            parent: name(p),
            child: name(c),
            call_count: n,
        })
        .collect())
}
