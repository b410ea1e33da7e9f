//! Test-only fault injection.
//!
//! With the `fault-injection` cargo feature, and only in builds with debug
//! assertions (so a release build stays clean even if a dev-dependency
//! turns the feature on),
//! `FIPSGUARD_FAULT_INJECT=<name>[@<run>][,...]` forces the named self-tests
//! (e.g. `aes-256-gcm-seal`) or pairwise consistency tests (`pct`) to fail,
//! so the error state can be tested end to end. `@<run>` delays the fault to
//! the given run of the self-test suite and every later one (power-up is run
//! 1), so a server can pass power-up and fail a periodic or on-demand run.
//! Without the feature, nothing here reads the environment and every check
//! is a constant `false`.

/// Whether this build can inject faults at all (reported by `selftest`).
pub const ENABLED: bool = cfg!(all(feature = "fault-injection", debug_assertions));

/// The environment variable naming the faults to inject.
pub const ENV_VAR: &str = "FIPSGUARD_FAULT_INJECT";

/// Whether the test named `name` must be forced to fail.
#[cfg(all(feature = "fault-injection", debug_assertions))]
pub(crate) fn injected(name: &str) -> bool {
    let run = crate::module::self_test_runs();
    std::env::var(ENV_VAR)
        .map(|list| list.split(',').any(|item| applies(item.trim(), name, run)))
        .unwrap_or(false)
}

/// Whether one entry of the list (`name` or `name@from_run`) forces `name`
/// to fail during suite run `run`.
#[cfg(all(feature = "fault-injection", debug_assertions))]
fn applies(entry: &str, name: &str, run: u64) -> bool {
    match entry.split_once('@') {
        None => entry == name,
        Some((entry, from)) => entry == name && from.parse().is_ok_and(|from: u64| run >= from),
    }
}

/// Whether the test named `name` must be forced to fail: never, in this build.
#[cfg(not(all(feature = "fault-injection", debug_assertions)))]
#[inline(always)]
pub(crate) fn injected(_name: &str) -> bool {
    false
}
