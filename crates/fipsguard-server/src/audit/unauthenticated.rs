//! Requests refused without an authenticated caller: recorded one by one
//! within a budget, counted beyond it. Anyone who reaches the port can
//! send them as fast as the server answers; recorded one by one, a flood
//! of them would fill the audit disk, and a log that cannot be written
//! stops every request (it fails closed). Past the budget they are counted
//! by client address, and the counts are recorded once a minute and at a
//! stop: the log still accounts for every one, and for where it came
//! from. Requests with a valid token are always recorded one by one: their
//! callers answer for them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fipsguard_audit::{ClientCount, Event};

/// How often the counts are recorded while there are any.
pub const RECORDED_EVERY: Duration = Duration::from_secs(60);

/// Addresses named in a record of counts, those with the most first.
const LISTED: usize = 16;

/// Addresses counted apart between two records; refusals from further
/// ones (a flood from many addresses) count among the others.
const TRACKED: usize = 4096;

/// The budget and the counts beyond it.
pub struct Budget {
    per_sec: f64,
    state: Mutex<State>,
}

struct State {
    /// Refusals that may still be recorded one by one: refilled at the
    /// budget's rate, holding at most one second's worth.
    allowance: f64,
    refilled: Instant,
    counts: Counts,
}

/// Refusals counted since the last record of them.
#[derive(Default)]
pub struct Counts {
    /// When the first was counted (RFC 3339).
    since: Option<String>,
    /// How many.
    pub count: u64,
    by_client: HashMap<IpAddr, u64>,
    /// From addresses beyond [`TRACKED`], or none known.
    untracked: u64,
}

impl Budget {
    /// At most `per_sec` refusals a second recorded one by one.
    pub fn new(per_sec: u32) -> Self {
        let per_sec = f64::from(per_sec);
        Self {
            per_sec,
            state: Mutex::new(State {
                allowance: per_sec,
                refilled: Instant::now(),
                counts: Counts::default(),
            }),
        }
    }

    /// Whether a refusal of a request from `client` (`address:port`, as a
    /// request's event names it) is recorded one by one; if not, it is
    /// counted.
    pub fn admit(&self, client: Option<&str>) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(state.refilled).as_secs_f64() * self.per_sec;
        state.allowance = (state.allowance + earned).min(self.per_sec);
        state.refilled = now;
        if state.allowance >= 1.0 {
            state.allowance -= 1.0;
            return true;
        }
        let address = client.and_then(|c| c.parse::<SocketAddr>().ok());
        state.counts.add(address.map(|a| a.ip()));
        crate::metrics::record_counted_refusals(1);
        false
    }

    /// The counts so far, if any, leaving none.
    pub fn take(&self) -> Option<Counts> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.counts.count > 0).then(|| std::mem::take(&mut state.counts))
    }

    /// Puts back counts that could not be recorded, for the next record.
    pub fn restore(&self, earlier: Counts) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let later = std::mem::take(&mut state.counts);
        state.counts = earlier;
        state.counts.count += later.count;
        state.counts.untracked += later.untracked;
        for (address, count) in later.by_client {
            state.counts.add_many(Some(address), count);
        }
    }
}

impl Counts {
    fn add(&mut self, address: Option<IpAddr>) {
        if self.since.is_none() {
            self.since = Some(fipsguard_audit::now());
        }
        self.count += 1;
        self.add_many(address, 1);
    }

    /// Counts `n` (already in `count`) for `address`.
    fn add_many(&mut self, address: Option<IpAddr>, n: u64) {
        match address {
            Some(address) if self.by_client.len() < TRACKED => {
                *self.by_client.entry(address).or_default() += n
            }
            Some(address) if self.by_client.contains_key(&address) => {
                *self.by_client.entry(address).or_default() += n
            }
            _ => self.untracked += n,
        }
    }

    /// The record of these counts.
    pub fn event(&self) -> Event {
        let mut clients: Vec<_> = self.by_client.iter().collect();
        clients.sort_unstable_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        clients.truncate(LISTED);
        let listed: u64 = clients.iter().map(|(_, count)| **count).sum();
        Event::UnauthenticatedRefusals {
            since: self.since.clone().unwrap_or_default(),
            count: self.count,
            clients: clients
                .into_iter()
                .map(|(address, count)| ClientCount {
                    client: address.to_string(),
                    count: *count,
                })
                .collect(),
            others: self.count - listed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_budget_refusals_are_counted_by_address() {
        let budget = Budget::new(2);
        let admitted: Vec<_> = (0..5)
            .map(|_| budget.admit(Some("192.0.2.1:4000")))
            .collect();
        assert_eq!(admitted[..2], [true, true]);
        assert_eq!(admitted.iter().filter(|a| **a).count(), 2, "{admitted:?}");
        assert!(!budget.admit(Some("[2001:db8::1]:443")));
        assert!(!budget.admit(None));
        let counts = budget.take().unwrap();
        let Event::UnauthenticatedRefusals {
            count,
            clients,
            others,
            ..
        } = counts.event()
        else {
            unreachable!()
        };
        assert_eq!((count, others), (5, 1));
        let named: Vec<_> = clients
            .iter()
            .map(|c| (c.client.as_str(), c.count))
            .collect();
        assert_eq!(named, [("192.0.2.1", 3), ("2001:db8::1", 1)]);
        assert!(budget.take().is_none(), "taken");
        // Put back, they join the next ones.
        budget.restore(counts);
        assert!(!budget.admit(Some("192.0.2.1:4001")));
        assert_eq!(budget.take().unwrap().count, 6);
    }

    #[test]
    fn no_budget_counts_every_refusal() {
        let budget = Budget::new(0);
        assert!(!budget.admit(Some("192.0.2.1:4000")));
        assert_eq!(budget.take().unwrap().count, 1);
    }
}
