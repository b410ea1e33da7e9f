//! Key names: 1-64 characters of `[A-Za-z0-9_.-]` other than `.` and
//! `..`, so they are safe in URLs, file names, logs and SQL without
//! escaping; none starts with `fgt.` or holds a token's text after it.

use std::fmt;

use crate::auth::{holds_token, TOKEN_PREFIX};
use crate::error::{KmsError, Result};

/// A validated key name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

/// The longest key name.
pub const MAX_LEN: usize = 64;

impl KeyName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self> {
        if !Self::is_valid(name) {
            return Err(KmsError::InvalidRequest(format!(
                "key names are 1-{MAX_LEN} characters of A-Z a-z 0-9 _ . -, not . or .., and are not a token, with or without its {TOKEN_PREFIX} (got {} characters)",
                name.chars().count()
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// Whether `name` would be accepted by [`new`](Self::new), without
    /// copying it.
    pub fn is_valid(name: &str) -> bool {
        // "." and ".." would be read as path steps in a URL (/v1/keys/..).
        let path_step = name == "." || name == "..";
        Self::is_valid_prefix(name) && !path_step
    }

    /// Whether some key name could start with `prefix` (as a grant's
    /// `prefix*` names them).
    pub fn is_valid_prefix(prefix: &str) -> bool {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        // A whole token fits the other rules: one pasted in place of a key
        // name must be refused before it reaches an error, a log or the
        // audit log, which records the names requests ask for. So does one
        // pasted without its prefix, or with text around it.
        let token = prefix.starts_with(TOKEN_PREFIX) || holds_token(prefix);
        !prefix.is_empty() && prefix.len() <= MAX_LEN && prefix.chars().all(allowed) && !token
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
