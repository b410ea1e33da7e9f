//! A listener's cap on the connections one client holds, shared by
//! `serve` and `tunnel` (plain TCP bookkeeping, before any TLS), and how
//! clients are told apart: by IPv4 address, and IPv6 addresses by a
//! prefix, by default the /64 one host is commonly given whole (and could
//! otherwise spread its connections over).

use std::collections::hash_map::{Entry, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// How clients are told apart: each IPv4 address (IPv4-mapped IPv6
/// included) is one, and IPv6 addresses are grouped by their first
/// `ipv6_prefix` bits (128: each address alone, as on a LAN whose hosts
/// share one /64). A link-local address is always alone: every host on a
/// link has one in the same fe80::/64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientGrouping {
    ipv6_prefix: u8,
}

impl Default for ClientGrouping {
    fn default() -> Self {
        Self {
            ipv6_prefix: Self::DEFAULT_IPV6_PREFIX,
        }
    }
}

impl ClientGrouping {
    /// The prefix an IPv6 client is known by unless told otherwise.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;

    /// IPv6 clients by their first `bits` bits: 32 (a whole provider's
    /// allocation) to 128 (each address alone).
    pub fn by_ipv6_prefix(bits: u8) -> Result<Self, &'static str> {
        match bits {
            32..=128 => Ok(Self { ipv6_prefix: bits }),
            _ => Err("client_ipv6_prefix must be 32 to 128"),
        }
    }

    /// The client `peer` belongs to.
    pub fn client_of(self, peer: IpAddr) -> IpAddr {
        match peer {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None if v6.is_unicast_link_local() => peer,
                None => {
                    let mask = u128::MAX << (128 - u32::from(self.ipv6_prefix));
                    IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
                }
            },
            v4 => v4,
        }
    }

    /// How a client is named in a record: `2001:db8::/64` for an IPv6
    /// prefix, the address alone otherwise.
    pub fn name(self, client: IpAddr) -> String {
        match client {
            IpAddr::V6(v6) if self.ipv6_prefix < 128 && !v6.is_unicast_link_local() => {
                format!("{client}/{}", self.ipv6_prefix)
            }
            _ => client.to_string(),
        }
    }
}

/// The connections open from each client.
#[derive(Clone)]
pub struct ClientConnections {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    grouping: ClientGrouping,
    /// Most open from one client; `None`: no cap, nothing counted.
    cap: Option<usize>,
}

/// A connection refused: its client holds as many as its cap allows.
#[derive(Debug)]
pub struct RefusedAtCap {
    /// The cap.
    pub cap: usize,
    /// The client, as records name it (`192.0.2.7`, `2001:db8::/64`).
    pub client: String,
}

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
    /// None open yet, from clients told apart by `grouping`, each allowed
    /// at most `cap`.
    pub fn new(grouping: ClientGrouping, cap: Option<usize>) -> Self {
        Self {
            open: Arc::default(),
            grouping,
            cap,
        }
    }

    /// Counts a connection from `peer` against the cap, if there is one:
    /// its slot (`None` without a cap), or the refusal at the cap.
    pub fn admit(&self, peer: IpAddr) -> Result<Option<ClientSlot>, RefusedAtCap> {
        match self.cap {
            None => Ok(None),
            Some(cap) => self.take(peer, cap).map(Some).ok_or_else(|| RefusedAtCap {
                cap,
                client: self.grouping.name(self.grouping.client_of(peer)),
            }),
        }
    }

    /// Counts a connection from `peer`, unless its client has `cap` open.
    fn take(&self, peer: IpAddr, cap: usize) -> Option<ClientSlot> {
        let client = self.grouping.client_of(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
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
        let mut open = self.clients.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Entry::Occupied(mut count) = open.entry(self.client) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientConnections, ClientGrouping};

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_is_an_ipv4_address_an_ipv6_64_or_a_link_local_address() {
        let client_of = |text| ClientGrouping::default().client_of(ip(text));
        assert_eq!(client_of("192.0.2.7"), ip("192.0.2.7"));
        assert_eq!(client_of("::ffff:192.0.2.7"), ip("192.0.2.7"));
        assert_eq!(client_of("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2::"));
        assert_eq!(
            client_of("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            client_of("2001:db8:1:2::9")
        );
        assert_ne!(client_of("2001:db8:1:3::1"), client_of("2001:db8:1:2::1"));
        // Every host of a link has an address in fe80::/64: each is alone.
        assert_eq!(client_of("fe80::1:2"), ip("fe80::1:2"));
        assert_ne!(client_of("fe80::1"), client_of("fe80::2"));
        assert_eq!(ClientGrouping::default().name(ip("fe80::1")), "fe80::1");

        // One /64 shares its cap; a slot given back is taken again.
        let clients = ClientConnections::new(ClientGrouping::default(), None);
        let first = clients.take(ip("2001:db8:1:2::1"), 2).unwrap();
        let _second = clients.take(ip("2001:db8:1:2::2"), 2).unwrap();
        assert!(clients.take(ip("2001:db8:1:2::3"), 2).is_none());
        assert!(clients.take(ip("2001:db8:1:3::1"), 2).is_some());
        drop(first);
        assert!(clients.take(ip("2001:db8:1:2::3"), 2).is_some());
    }

    #[test]
    fn the_ipv6_prefix_is_chosen_from_32_to_128() {
        for refused in [0, 31, 129] {
            assert_eq!(
                ClientGrouping::by_ipv6_prefix(refused),
                Err("client_ipv6_prefix must be 32 to 128")
            );
        }
        // Each address alone, as the hosts of one LAN are.
        let each = ClientGrouping::by_ipv6_prefix(128).unwrap();
        assert_ne!(each.client_of(ip("fe80::1")), each.client_of(ip("fe80::2")));
        assert_eq!(each.name(each.client_of(ip("2001:db8::1"))), "2001:db8::1");
        let clients = ClientConnections::new(each, None);
        let _first = clients.take(ip("2001:db8:1:2::1"), 1).unwrap();
        assert!(clients.take(ip("2001:db8:1:2::2"), 1).is_some());
        assert!(clients.take(ip("2001:db8:1:2::1"), 1).is_none());
        // A refusal names the client as the grouping knows it.
        let site = ClientConnections::new(ClientGrouping::by_ipv6_prefix(48).unwrap(), Some(1));
        let _held = site.admit(ip("2001:db8:1:2::1")).unwrap();
        let refused = site.admit(ip("2001:db8:1:3::1")).err().unwrap();
        assert_eq!(
            (refused.cap, refused.client.as_str()),
            (1, "2001:db8:1::/48")
        );
        // A /48: a site.
        let site = ClientGrouping::by_ipv6_prefix(48).unwrap();
        let client = site.client_of(ip("2001:db8:1:ffff::1"));
        assert_eq!(client, ip("2001:db8:1::"));
        assert_eq!(site.name(client), "2001:db8:1::/48");
        assert_eq!(site.name(ip("192.0.2.7")), "192.0.2.7");
        assert_eq!(
            ClientGrouping::by_ipv6_prefix(32)
                .unwrap()
                .client_of(ip("2001:db8:ff::1")),
            ip("2001:db8::")
        );
    }
}
