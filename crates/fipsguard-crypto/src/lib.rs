//! The FIPS 140-3 module boundary of fipsguard.
//!
//! This is the only crate in the workspace that touches cryptographic
//! primitives; it wraps AWS-LC's validated FIPS module (via aws-lc-rs with
//! the `fips` feature) and adds what the module itself leaves to its user:
//!
//! - [`module`]: FIPS mode, power-up self-tests and the error state; every
//!   operation below refuses service unless the module is operational;
//! - [`registry`]: the approved algorithms, and refusal by rule of anything else;
//! - one module per service family ([`aead`], [`keywrap`], [`mac`],
//!   [`digest`], [`kdf`], [`sign`], [`kem`], [`random`]), each with key types
//!   that cannot be misused: no caller-chosen GCM IVs, no short HMAC keys, no
//!   RSA below 2048 bits, a pairwise consistency test on every generated key;
//! - [`secret`]: secret bytes that zeroize and never print.

pub mod aead;
pub mod certificate;
pub mod digest;
pub mod error;
pub mod fault;
pub mod kdf;
pub mod kem;
pub mod keywrap;
pub mod mac;
pub mod module;
pub mod random;
pub mod registry;
pub mod secret;
pub mod selftest;
pub mod sign;
pub mod tls;

pub use error::{Error, Refusal};
pub use secret::SecretBytes;
