//! Requests answered without an authenticated caller (no valid token, or
//! refused before the token was checked): recorded one by one within a
//! budget, counted beyond it. Anyone who reaches the port can send them
//! as fast as the server answers; recorded one by one, a flood of them
//! would fill the audit disk, and a log that cannot be written stops every
//! request (it fails closed). Past the budget they are counted by client
//! (an IPv4 address, an IPv6 prefix: `fipsguard_net::ClientGrouping`),
//! and the counts are recorded once a minute and at an orderly stop: the
//! log still accounts for them, and for where they came from (a crash
//! loses up to a minute's counts). A client once counted stays counted
//! until that record, drawing no more on the budget: one flooder does not
//! use up what is left for everyone else's mistakes. Requests whose token
//! was verified are always recorded one by one: their callers answer for
//! them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fipsguard_audit::{ClientCount, Event};
use fipsguard_net::ClientGrouping;

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
    grouping: ClientGrouping,
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
    /// By client; those from further clients, or from none known, are
    /// in `count` alone.
    by_client: HashMap<IpAddr, u64>,
}

impl Budget {
    /// At most `per_sec` refusals a second recorded one by one; beyond,
    /// counted by client as `grouping` tells them apart.
    pub fn new(per_sec: u32, grouping: ClientGrouping) -> Self {
        let per_sec = f64::from(per_sec);
        Self {
            per_sec,
            grouping,
            state: Mutex::new(State {
                allowance: per_sec,
                refilled: Instant::now(),
                counts: Counts::default(),
            }),
        }
    }

    /// Whether a request from `client` (`address:port`, as a request's
    /// event names it) answered without an authenticated caller is
    /// recorded one by one; if not, it is counted.
    pub fn admit(&self, client: Option<&str>) -> bool {
        self.admit_at(client, Instant::now())
    }

    fn admit_at(&self, client: Option<&str>, now: Instant) -> bool {
        let address = client
            .and_then(|c| c.parse::<SocketAddr>().ok())
            .map(|a| self.grouping.client_of(a.ip()));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let earned = now.duration_since(state.refilled).as_secs_f64() * self.per_sec;
        state.allowance = (state.allowance + earned).min(self.per_sec);
        state.refilled = now;
        let counted_already = address.is_some_and(|a| state.counts.by_client.contains_key(&a));
        if state.allowance >= 1.0 && !counted_already {
            state.allowance -= 1.0;
            return true;
        }
        state.counts.add(address);
        drop(state);
        crate::metrics::record_counted_refusals(1);
        false
    }

    /// How clients are told apart, to name them in a record of counts.
    pub fn grouping(&self) -> ClientGrouping {
        self.grouping
    }

    /// The counts so far, if any, leaving none.
    pub fn take(&self) -> Option<Counts> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.counts.count > 0).then(|| std::mem::take(&mut state.counts))
    }

    /// Puts back counts that could not be recorded, for the next record.
    pub fn restore(&self, earlier: Counts) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let later = std::mem::replace(&mut state.counts, earlier);
        state.counts.count += later.count;
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

    /// Counts `n` (already in `count`) for `address`, while there is room.
    fn add_many(&mut self, address: Option<IpAddr>, n: u64) {
        if let Some(address) = address {
            if self.by_client.len() < TRACKED || self.by_client.contains_key(&address) {
                *self.by_client.entry(address).or_default() += n;
            }
        }
    }

    /// The record of these counts, naming clients as `grouping` does.
    pub fn event(&self, grouping: ClientGrouping) -> Event {
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
                    client: grouping.name(*address),
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
        let budget = Budget::new(2, ClientGrouping::default());
        let start = Instant::now();
        let admitted: Vec<_> = (0..5)
            .map(|_| budget.admit_at(Some("192.0.2.1:4000"), start))
            .collect();
        assert_eq!(admitted, [true, true, false, false, false]);
        // One host's /64 counts as one, however it draws on it.
        assert!(!budget.admit_at(Some("[2001:db8::1]:443"), start));
        assert!(!budget.admit_at(Some("[2001:db8::2:1]:443"), start));
        assert!(!budget.admit_at(Some("[::ffff:192.0.2.1]:443"), start));
        assert!(!budget.admit_at(None, start));
        // Half a second earns one more, which a client already counted does
        // not take: it is left for another.
        let later = start + Duration::from_millis(500);
        assert!(!budget.admit_at(Some("192.0.2.1:4000"), later));
        assert!(budget.admit_at(Some("198.51.100.7:4000"), later));
        assert!(!budget.admit_at(Some("198.51.100.7:4000"), later));
        let counts = budget.take().unwrap();
        let Event::UnauthenticatedRefusals {
            count,
            clients,
            others,
            ..
        } = counts.event(ClientGrouping::default())
        else {
            unreachable!()
        };
        assert_eq!((count, others), (9, 1));
        let named: Vec<_> = clients
            .iter()
            .map(|c| (c.client.as_str(), c.count))
            .collect();
        assert_eq!(
            named,
            [("192.0.2.1", 5), ("2001:db8::/64", 2), ("198.51.100.7", 1)]
        );
        assert!(budget.take().is_none(), "taken");
        // Put back, they join the next ones, and their clients stay counted.
        budget.restore(counts);
        let a_second_on = later + Duration::from_secs(1);
        assert!(!budget.admit_at(Some("192.0.2.1:4001"), a_second_on));
        assert_eq!(budget.take().unwrap().count, 10);
        // Once recorded, a client draws on the budget again.
        assert!(budget.admit_at(Some("192.0.2.1:4001"), a_second_on));
    }

    #[test]
    fn clients_are_counted_and_named_as_the_listener_tells_them_apart() {
        let each_address = ClientGrouping::by_ipv6_prefix(128).unwrap();
        let budget = Budget::new(0, each_address);
        for client in [
            "[2001:db8::1]:443",
            "[2001:db8::2]:443",
            "[2001:db8::1]:444",
        ] {
            assert!(!budget.admit(Some(client)));
        }
        let counts = budget.take().unwrap();
        let Event::UnauthenticatedRefusals { clients, .. } = counts.event(each_address) else {
            unreachable!()
        };
        let named: Vec<_> = clients
            .iter()
            .map(|c| (c.client.as_str(), c.count))
            .collect();
        assert_eq!(named, [("2001:db8::1", 2), ("2001:db8::2", 1)]);
    }

    #[test]
    fn no_budget_counts_every_refusal() {
        let budget = Budget::new(0, ClientGrouping::default());
        assert!(!budget.admit(Some("192.0.2.1:4000")));
        assert_eq!(budget.take().unwrap().count, 1);
    }
}
