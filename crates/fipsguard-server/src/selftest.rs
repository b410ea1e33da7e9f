//! Self-tests while serving: periodically and on demand (ISO/IEC 19790,
//! 7.10), next to the power-up run every process starts with.
//!
//! The suite runs on a blocking thread while requests go on being served
//! (it takes milliseconds). A failure moves the whole process into the
//! module's error state at once: from then on every cryptographic request
//! is refused, health answers 503 naming the failed test, the metrics show
//! it, and only a restart whose power-up tests pass leaves the state.

use std::sync::Arc;
use std::time::Duration;

use fipsguard_audit::Event;
use fipsguard_crypto::module::{self, State};
use fipsguard_crypto::selftest::SelfTestReport;

use crate::state::AppState;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The interval elapsed.
    Periodic,
    /// An officer asked (`POST /v1/selftest`).
    OnDemand,
}

impl Trigger {
    /// The name the audit log, logs and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Periodic => "periodic",
            Trigger::OnDemand => "on-demand",
        }
    }
}

/// Runs the whole suite now and leaves its evidence: metrics, a log line
/// and an audit event (outside the chain if the run failed, since the
/// module then can no longer hash or sign).
pub async fn run(state: &AppState, trigger: Trigger) -> SelfTestReport {
    let report = tokio::task::spawn_blocking(module::run_self_tests)
        .await
        .unwrap_or_else(|_| module::latest_report());
    crate::metrics::record_self_test_run(trigger.as_str(), &report);
    let tests = report.results.len();
    let recorded = match report.first_failure() {
        None => {
            tracing::info!(
                trigger = trigger.as_str(),
                tests,
                micros = report.total_micros,
                "self-tests passed"
            );
            let event = Event::SelfTest {
                trigger: trigger.as_str().to_owned(),
                passed: true,
                tests,
                failed: None,
            };
            match &state.audit {
                Some(audit) => audit.record(event).await,
                None => Ok(()),
            }
        }
        Some(failed) => {
            tracing::error!(
                trigger = trigger.as_str(),
                failed,
                "a self-test failed: the module is in its error state and refuses every cryptographic operation until a restart passes its power-up self-tests (docs/runbooks/self-test-failure.md)"
            );
            match &state.audit {
                Some(audit) => {
                    audit
                        .record_self_test_failure(trigger.as_str(), tests, failed)
                        .await
                }
                None => Ok(()),
            }
        }
    };
    if let Err(e) = recorded {
        tracing::error!(trigger = trigger.as_str(), error = %e, "the self-test run could not be recorded in the audit log");
    }
    report
}

/// Re-runs the suite every `interval`, jittered by up to a tenth either
/// way so that nodes started together do not test together. Stops once
/// the module is in its error state: nothing but a restart changes it.
pub fn spawn_periodic(state: Arc<AppState>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(jittered(interval)).await;
            if matches!(module::state(), State::Error { .. }) {
                return;
            }
            run(&state, Trigger::Periodic).await;
        }
    })
}

/// `interval` times a factor drawn uniformly from [0.9, 1.1).
fn jittered(interval: Duration) -> Duration {
    let mut draw = [0u8; 2];
    match fipsguard_crypto::random::fill(&mut draw) {
        Ok(()) => interval.mul_f64(0.9 + 0.2 * f64::from(u16::from_be_bytes(draw)) / 65536.0),
        // In the error state the loop stops at its next check anyway.
        Err(_) => interval,
    }
}
