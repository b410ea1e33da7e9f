//! Authentication as an extractor, authorization as one function: every
//! handler names what it needs, nothing else decides.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use fipsguard_core::auth::{Operation, Principal, Role};
use fipsguard_core::name::KeyName;
use fipsguard_core::KmsError;

use crate::audit::Subject;
use crate::error::ApiError;
use crate::layers::RequestContext;
use crate::listener::Peer;
use crate::state::AppState;

/// The authenticated caller of a request: its token's principal and, over
/// mTLS, the SHA-256 fingerprint of its verified client certificate.
pub struct Caller {
    /// The token's principal.
    pub principal: Principal,
    /// The client certificate's fingerprint, over mTLS.
    pub certificate: Option<Arc<str>>,
    /// The request's context (absent outside the request layer).
    context: Option<Arc<RequestContext>>,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = header
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or(KmsError::Unauthenticated);
        let principal = match token {
            Ok(token) => state.kms.authenticate(token.trim()).await,
            Err(e) => Err(e),
        }
        .inspect_err(|e| crate::metrics::record_access_refusal(e.code()))?;
        // Named before its intent is recorded: a change refused there is
        // still its caller's, and recorded one by one as such.
        let context = parts.extensions.get::<Arc<RequestContext>>().cloned();
        if let Some(context) = &context {
            let _ = context.actor.set(principal.clone());
        }
        crate::audit::record_intent(state, parts, &principal).await?;
        let certificate = parts
            .extensions
            .get::<Peer>()
            .and_then(|p| p.certificate.clone());
        Ok(Caller {
            principal,
            certificate,
            context,
        })
    }
}

/// What an endpoint needs.
pub enum Access<'a> {
    /// Key management, tokens: officers.
    Officer,
    /// Inventory and status: officers and auditors.
    Oversight,
    /// An operation on a key: users by grant (officers and auditors read metadata).
    Key(Operation, &'a str),
    /// A signing key's public key: whoever may read the key or verify with it.
    PublicKey(&'a str),
    /// Random bytes: users and officers.
    Random,
    /// Running the self-tests on demand: officers.
    SelfTest,
}

impl Caller {
    /// Tells the audit log what the request acted on, beyond what its path
    /// names (a key version, a created key or token).
    pub fn acted_on(&self, subject: Subject) {
        if let Some(context) = &self.context {
            let _ = context.subject.set(subject);
        }
    }

    /// Refuses unless the caller has `access`, naming what was refused.
    pub fn require(&self, access: Access<'_>) -> Result<&Principal, ApiError> {
        let p = &self.principal;
        // What was refused is spelled out only for a refusal: most
        // requests pass, and need no strings.
        let (allowed, operation, key): (bool, &str, Option<&str>) = match access {
            Access::Officer => (p.role() == Role::Officer, "manage keys and tokens", None),
            Access::Oversight => (
                matches!(p.role(), Role::Officer | Role::Auditor),
                "read inventory or status",
                None,
            ),
            // The audit key signs checkpoints and nothing else: no grant
            // lets anyone sign with it, or the log could be forged.
            Access::Key(operation, key) => (
                p.may(operation, key)
                    && (key != crate::audit::AUDIT_KEY
                        || matches!(operation, Operation::Read | Operation::Verify)),
                operation.as_str(),
                Some(key),
            ),
            Access::PublicKey(key) => (
                p.may(Operation::Verify, key) || p.may(Operation::Read, key),
                "read the public key",
                Some(key),
            ),
            Access::Random => (
                matches!(p.role(), Role::Officer | Role::User),
                "draw random bytes",
                None,
            ),
            Access::SelfTest => (p.role() == Role::Officer, "run the self-tests", None),
        };
        if !allowed {
            crate::metrics::record_access_refusal("forbidden");
            return Err(KmsError::Forbidden {
                role: p.role(),
                operation: operation.to_owned(),
                // Only a key name is repeated: a path may hold anything,
                // a token pasted in its place included.
                key: key.filter(|k| KeyName::is_valid(k)).map(str::to_owned),
            }
            .into());
        }
        Ok(p)
    }
}
