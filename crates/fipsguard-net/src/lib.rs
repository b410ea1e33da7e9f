//! A listener's cap on the connections one client holds, shared by
//! `serve` and `tunnel` (plain TCP bookkeeping, before any TLS): a client
//! is an IPv4 address, or an IPv6 /64, which one host commonly holds
//! whole (and could otherwise spread its connections over).

use std::collections::hash_map::{Entry, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The connections open from each client.
#[derive(Clone, Default)]
pub struct ClientConnections(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// A connection counted against its client's cap until it is dropped.
pub struct ClientSlot {
    clients: ClientConnections,
    client: IpAddr,
}

/// Refuses a cap outside 1 to `max_connections` (a listener's cap on
/// all connections), naming the setting.
pub fn check_cap(cap: Option<usize>, max_connections: usize) -> Result<(), &'static str> {
    match cap {
        Some(cap) if !(1..=max_connections).contains(&cap) => {
            Err("max_connections_per_client must be 1 to max_connections")
        }
        _ => Ok(()),
    }
}

impl ClientConnections {
    /// Counts a connection from `peer` against `cap`, if there is one:
    /// its slot (`None` without a cap), or the cap it is refused at.
    pub fn admit(&self, peer: IpAddr, cap: Option<usize>) -> Result<Option<ClientSlot>, usize> {
        match cap {
            None => Ok(None),
            Some(cap) => self.take(peer, cap).map(Some).ok_or(cap),
        }
    }

    /// Counts a connection from `peer`, unless its client has `cap` open.
    fn take(&self, peer: IpAddr, cap: usize) -> Option<ClientSlot> {
        let client = client_of(peer);
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            client,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Entry::Occupied(mut count) = open.entry(self.client) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

/// The client an address belongs to: an IPv4 address (IPv4-mapped IPv6
/// included), or an IPv6 /64, which one host commonly holds whole.
pub fn client_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::{client_of, ClientConnections};

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_64() {
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(client_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client_of(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            client_of(ip("2001:db8:1:3::1")),
            client_of(ip("2001:db8:1:2::1"))
        );

        // One /64 shares its cap; a slot given back is taken again.
        let clients = ClientConnections::default();
        let first = clients.take(ip("2001:db8:1:2::1"), 2).unwrap();
        let _second = clients.take(ip("2001:db8:1:2::2"), 2).unwrap();
        assert!(clients.take(ip("2001:db8:1:2::3"), 2).is_none());
        assert!(clients.take(ip("2001:db8:1:3::1"), 2).is_some());
        drop(first);
        assert!(clients.take(ip("2001:db8:1:2::3"), 2).is_some());
    }
}
