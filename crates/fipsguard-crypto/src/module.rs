//! The module's identity and state: FIPS mode, power-up, error state.
//!
//! FIPS 140-3 asks a module to test itself before it offers any service and
//! to refuse every service once a test fails. Here that is one state
//! machine: every public operation of this crate starts with
//! [`ensure_operational`], which runs the power-up self-tests the first time
//! (in whichever thread gets there first; the others wait) and afterwards is
//! a single atomic load.
//!
//! AWS-LC has its own layer underneath: its power-on integrity test and
//! conditional algorithm self-tests (CASTs) run inside the module, and on
//! failure AWS-LC aborts the whole process. fipsguard's layer adds
//! known-answer tests of exactly the services it exposes, through its own
//! API, with results that can be shown, audited and monitored, and an error
//! state that refuses service instead of killing the process (so health
//! checks and metrics can still report what happened).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::error::Error;
use crate::selftest::{self, SelfTestReport};

const NOT_STARTED: u8 = 0;
const OPERATIONAL: u8 = 1;
const ERROR_STATE: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(NOT_STARTED);
static POWER_UP: OnceLock<SelfTestReport> = OnceLock::new();
static FIRST_FAILURE: Mutex<Option<String>> = Mutex::new(None);
static LATEST: Mutex<Option<SelfTestReport>> = Mutex::new(None);
/// Held while the suite runs, so runs never overlap and each report is whole.
static RUNNING: Mutex<()> = Mutex::new(());
static RUNS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set while this thread runs the self-test suite, so the tests can call
    /// the same public API they test before the module is operational.
    static SELF_TESTING: Cell<bool> = const { Cell::new(false) };
}

/// The CMVP certificate of the module as fipsguard links it: AWS-LC FIPS 3.0
/// built statically into the binary (aws-lc-fips-sys 0.13, aws-lc-rs 1.17).
/// The dynamic build of the same module is certificate #5298.
pub const CMVP_CERTIFICATE: &str = "CMVP #5314 (AWS-LC FIPS 3.0, static)";

/// What the module is: shown by `selftest`, health and audit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModuleInfo {
    /// The module's name as validated.
    pub name: &'static str,
    /// The AWS-LC library version linked into this process.
    pub library_version: &'static str,
    /// The FIPS module major version the build corresponds to.
    pub fips_module_version: Option<u32>,
    /// The CMVP certificate(s) covering that module.
    pub certificate: &'static str,
}

/// The module's identity, read from the linked library.
pub fn info() -> ModuleInfo {
    ModuleInfo {
        name: "AWS-LC FIPS",
        library_version: aws_lc_rs::awslc_version(),
        fips_module_version: aws_lc_rs::fips_version(),
        certificate: CMVP_CERTIFICATE,
    }
}

/// The state of the module as a whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Power-up self-tests have not run yet in this process.
    NotStarted,
    /// Self-tests passed; services are offered.
    Operational,
    /// A self-test or consistency test failed; every service is refused.
    Error {
        /// The first test that failed.
        failed_test: String,
    },
}

/// The current state, without running anything.
pub fn state() -> State {
    match STATE.load(Ordering::Acquire) {
        NOT_STARTED => State::NotStarted,
        OPERATIONAL => State::Operational,
        _ => State::Error {
            failed_test: first_failure(),
        },
    }
}

/// Runs the power-up self-tests once per process and returns their report.
/// Later calls return the same report.
pub fn power_up() -> &'static SelfTestReport {
    POWER_UP.get_or_init(run_self_tests)
}

/// Runs the whole self-test suite now (at power-up, periodically or on
/// demand). A failure moves the module into its error state; a pass never
/// leaves it: only a restart whose power-up tests pass does.
///
/// Other threads keep being served while the suite runs (it takes a few
/// milliseconds); concurrent calls run one after the other.
pub fn run_self_tests() -> SelfTestReport {
    let _running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    RUNS.fetch_add(1, Ordering::AcqRel);
    let report = {
        let _testing = SelfTesting::begin();
        selftest::run_suite()
    };
    match report.first_failure() {
        Some(name) => enter_error_state(name),
        None => {
            let _ = STATE.compare_exchange(
                NOT_STARTED,
                OPERATIONAL,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }
    *LATEST.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
    report
}

/// How many runs of the suite this process has started (power-up is the first).
pub fn self_test_runs() -> u64 {
    RUNS.load(Ordering::Acquire)
}

/// The report of the most recent run of the suite (power-up, periodic or on
/// demand); runs the power-up tests if none has run yet.
pub fn latest_report() -> SelfTestReport {
    power_up();
    LATEST
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| power_up().clone())
}

/// Marks this thread as running the self-tests until dropped, even if a
/// test panics, so the mark can never outlive the run.
struct SelfTesting {
    was_testing: bool,
}

impl SelfTesting {
    fn begin() -> Self {
        Self {
            was_testing: SELF_TESTING.replace(true),
        }
    }
}

impl Drop for SelfTesting {
    fn drop(&mut self) {
        SELF_TESTING.set(self.was_testing);
    }
}

/// Refuses service unless the module is operational. Every public
/// cryptographic operation of this crate calls this first.
#[inline]
pub(crate) fn ensure_operational() -> Result<(), Error> {
    if STATE.load(Ordering::Acquire) == OPERATIONAL || SELF_TESTING.get() {
        return Ok(());
    }
    power_up();
    match state() {
        State::Operational => Ok(()),
        State::Error { failed_test } => Err(Error::ErrorState { failed_test }),
        State::NotStarted => unreachable!("power-up always leaves the not-started state"),
    }
}

/// Moves the module into its error state, naming the failed test. The first
/// failure is the one reported.
pub(crate) fn enter_error_state(failed_test: &str) {
    let mut first = FIRST_FAILURE.lock().unwrap_or_else(|e| e.into_inner());
    first.get_or_insert_with(|| failed_test.to_owned());
    STATE.store(ERROR_STATE, Ordering::Release);
}

fn first_failure() -> String {
    FIRST_FAILURE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}
