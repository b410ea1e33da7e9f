//! `fipsguard check`: evidence, not claims. Three scanners, one vocabulary:
//!
//! - [`host`]: is this machine (or a root tree) set up for FIPS mode?
//! - [`binary`]: which crypto does an ELF binary carry, validated or not?
//! - [`tls`]: what does a TLS endpoint accept, against a policy?
//!
//! Each produces [`Report`]s of [`Finding`]s; [`output`] renders them for
//! people (a table) and for CI (JSON, SARIF 2.1.0, JUnit XML).

pub mod binary;
pub mod host;
pub mod output;
mod report;
pub mod tls;

pub use report::{exit_code, worst, Finding, Kind, Report, Status};
