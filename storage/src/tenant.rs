//! Tenant ids: every write and query belongs to one; they become storage paths.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The HTTP header (and gRPC metadata key) that names the tenant.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// A validated tenant id: letters, digits and `-_.`, 1 to 150 bytes, never `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 150;

    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > Self::MAX_LEN {
            Some("it is longer than 150 bytes")
        } else if id == "." || id == ".." {
            Some("`.` and `..` are not allowed")
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            Some("only letters, digits, `-`, `_` and `.` are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidTenant { id, reason }),
            None => Ok(TenantId(id)),
        }
    }

    /// The tenant used when a request names none.
    pub fn default_tenant() -> Self {
        TenantId("default".to_owned())
    }

    /// Resolves the raw bytes of an optional `X-Scope-OrgID` header (or gRPC metadata
    /// value): absent means the default tenant; bytes that are not UTF-8 are invalid.
    pub fn from_header(value: Option<&[u8]>) -> Result<Self> {
        match value {
            None => Ok(Self::default_tenant()),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(v) => Self::new(v.trim()),
                Err(_) => Err(Error::InvalidTenant {
                    id: String::from_utf8_lossy(bytes).into_owned(),
                    reason: "it is not UTF-8",
                }),
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        TenantId::new(s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids() {
        for id in ["default", "team-a", "a.b_c", "X9", &"a".repeat(150)] {
            assert!(TenantId::new(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_invalid_ids() {
        for id in ["", ".", "..", "a/b", "a b", "ü", &"a".repeat(151), "../etc"] {
            assert!(TenantId::new(id).is_err(), "{id}");
        }
    }

    #[test]
    fn absent_header_is_default() {
        assert_eq!(
            TenantId::from_header(None).ok(),
            Some(TenantId::default_tenant())
        );
        assert_eq!(
            TenantId::from_header(Some(b" team-a ")).ok(),
            TenantId::new("team-a").ok()
        );
        assert!(TenantId::from_header(Some(b"\xff")).is_err());
    }
}
