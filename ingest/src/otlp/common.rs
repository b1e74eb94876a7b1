//! Pieces shared by the log and span conversions: ids and resource/scope origin.

use crate::attributes::{attribute_text, attributes_json};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use strata_storage::model::Origin;

/// Lower-case hex digits.
pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of an id; empty stays empty.
pub fn hex_id(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends lower-case hex of `id`.
pub(crate) fn push_hex(out: &mut String, id: &[u8]) {
    for &b in id {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// Checks an id's length: 16 bytes for traces, 8 for spans, or absent.
pub fn check_id(bytes: &[u8], len: usize, what: &str) -> Result<(), String> {
    if bytes.is_empty() || bytes.len() == len {
        Ok(())
    } else {
        Err(format!("{what} must be {len} bytes, got {}", bytes.len()))
    }
}

/// The `service.name` resource attribute, or OpenTelemetry's `unknown_service` default.
pub fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| attribute_text(&r.attributes, "service.name"))
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// The origin (resource and scope) of the items of one scope block.
pub fn origin(
    resource: Option<&Resource>,
    resource_schema_url: &str,
    scope: Option<&InstrumentationScope>,
    scope_schema_url: &str,
) -> Origin {
    ResourceOrigin::new(resource, resource_schema_url).with_scope(scope, scope_schema_url)
}

/// The resource half of an [`Origin`]: built once per resource block (its attribute JSON
/// can be large), then completed for each scope block that has items.
pub struct ResourceOrigin {
    service_name: String,
    attributes: String,
    dropped_attributes_count: u32,
    schema_url: String,
}

impl ResourceOrigin {
    pub fn new(resource: Option<&Resource>, schema_url: &str) -> Self {
        ResourceOrigin {
            service_name: service_name(resource),
            attributes: resource
                .map(|r| attributes_json(&r.attributes))
                .unwrap_or_else(|| "{}".into()),
            dropped_attributes_count: resource.map_or(0, |r| r.dropped_attributes_count),
            schema_url: schema_url.to_owned(),
        }
    }

    /// A resource given by its parts: its `service.name` (`None` for the default), its
    /// attributes' JSON object and its dropped attribute count.
    pub fn from_parts(
        service_name: Option<String>,
        attributes: String,
        dropped_attributes_count: u32,
        schema_url: &str,
    ) -> Self {
        ResourceOrigin {
            service_name: service_name.unwrap_or_else(|| "unknown_service".to_owned()),
            attributes,
            dropped_attributes_count,
            schema_url: schema_url.to_owned(),
        }
    }

    /// The origin of one scope block of this resource.
    pub fn with_scope(
        &self,
        scope: Option<&InstrumentationScope>,
        scope_schema_url: &str,
    ) -> Origin {
        self.with_scope_parts(
            ScopeParts {
                name: scope.map(|s| s.name.as_str()).unwrap_or_default(),
                version: scope.map(|s| s.version.as_str()).unwrap_or_default(),
                attributes: scope
                    .map(|s| attributes_json(&s.attributes))
                    .unwrap_or_else(|| "{}".into()),
                dropped_attributes_count: scope.map_or(0, |s| s.dropped_attributes_count),
            },
            scope_schema_url,
        )
    }

    /// The origin of one scope block of this resource, the scope given by its parts.
    pub fn with_scope_parts(&self, scope: ScopeParts<'_>, scope_schema_url: &str) -> Origin {
        Origin {
            service_name: self.service_name.clone(),
            resource_attributes: self.attributes.clone(),
            resource_dropped_attributes_count: self.dropped_attributes_count,
            resource_schema_url: self.schema_url.clone(),
            scope_name: scope.name.to_owned(),
            scope_version: scope.version.to_owned(),
            scope_attributes: scope.attributes,
            scope_dropped_attributes_count: scope.dropped_attributes_count,
            scope_schema_url: scope_schema_url.to_owned(),
        }
    }
}

/// An instrumentation scope's parts, its attributes as a JSON object.
pub struct ScopeParts<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub attributes: String,
    pub dropped_attributes_count: u32,
}

/// Nanoseconds as the signed form storage uses; values past year 2262 are clamped.
pub fn nanos(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// At most 128 characters of client text to show in a message, and `…` when it was cut:
/// messages go back to the client, who may have sent megabytes.
pub fn clip(text: &str) -> (&str, &'static str) {
    const SHOWN: usize = 128;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => (&text[..cut], "…"),
        None => (text, ""),
    }
}

/// Why a span was rejected, naming it by at most 128 characters of its name.
pub fn span_rejection(name: &str, why: &str) -> String {
    let (shown, more) = clip(name);
    format!("span {shown:?}{more} rejected: {why}")
}

#[cfg(test)]
mod rejection_tests {
    use super::span_rejection;

    #[test]
    fn long_span_names_are_cut_in_messages() {
        assert_eq!(
            span_rejection("GET", "bad id"),
            "span \"GET\" rejected: bad id"
        );
        let long = "é".repeat(1_000_000);
        let msg = span_rejection(&long, "bad id");
        assert!(msg.len() < 400, "{}", msg.len());
        assert!(msg.ends_with("… rejected: bad id"));
    }
}
