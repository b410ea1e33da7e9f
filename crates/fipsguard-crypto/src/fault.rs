//! Test-only fault injection.
//!
//! With the `fault-injection` cargo feature, and only in builds with debug
//! assertions (so a release build stays clean even if a dev-dependency
//! turns the feature on),
//! `FIPSGUARD_FAULT_INJECT=<name>[,<name>...]` forces the named self-tests
//! (e.g. `aes-256-gcm-seal`) or pairwise consistency tests (`pct`) to fail,
//! so the error state can be tested end to end. Without the feature, nothing
//! here reads the environment and every check is a constant `false`.

/// Whether this build can inject faults at all (reported by `selftest`).
pub const ENABLED: bool = cfg!(all(feature = "fault-injection", debug_assertions));

/// The environment variable naming the faults to inject.
pub const ENV_VAR: &str = "FIPSGUARD_FAULT_INJECT";

/// Whether the test named `name` must be forced to fail.
#[cfg(all(feature = "fault-injection", debug_assertions))]
pub(crate) fn injected(name: &str) -> bool {
    std::env::var(ENV_VAR)
        .map(|list| list.split(',').any(|item| item.trim() == name))
        .unwrap_or(false)
}

/// Whether the test named `name` must be forced to fail: never, in this build.
#[cfg(not(all(feature = "fault-injection", debug_assertions)))]
#[inline(always)]
pub(crate) fn injected(_name: &str) -> bool {
    false
}
