//! The PROXY protocol v2 header a server tunnel can send its target, so
//! that the target logs who connected: the client's address, and for
//! mTLS the verified identity.
//!
//! TLVs: `PP2_TYPE_SSL` (0x20) with the client flags, the verify result
//! (0, "verified", only with a verified client certificate; 1 without one)
//! and the sub-TLVs `SSL_VERSION`, `SSL_CN` (the subject's
//! common name) and `SSL_CIPHER`; and 0xE0 (the first custom type),
//! the name the allow-list matched (without one: the first URI SAN, else
//! the first DNS SAN, else the subject).

use std::net::SocketAddr;

use ppp::v2::{Builder, Command, Protocol, Version};

use crate::identity::PeerIdentity;

const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
/// Custom TLV type: the verified identity.
pub const PP2_TYPE_FIPSGUARD_IDENTITY: u8 = 0xE0;
const PP2_CLIENT_SSL: u8 = 0x01;
const PP2_CLIENT_CERT_CONN: u8 = 0x02;
const PP2_CLIENT_CERT_SESS: u8 = 0x04;

/// The header for a connection from `peer` to `local`; `client` is the
/// verified certificate's names and the one it was admitted as.
pub fn header(
    peer: SocketAddr,
    local: Option<SocketAddr>,
    client: Option<(&PeerIdentity, &str)>,
    version: &str,
    suite: &str,
) -> std::io::Result<Vec<u8>> {
    // An IPv4 client of a dual-stack listener is named as IPv4, as the
    // target's rules for its addresses expect.
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (peer, local) = (canonical(peer), local.map(canonical));
    // Both addresses must be of one family; a local address of the other
    // (dual-stack listeners) is reported as the unspecified one.
    let local = local
        .filter(|local| local.is_ipv4() == peer.is_ipv4())
        .unwrap_or_else(|| match peer {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        });
    let mut ssl = vec![PP2_CLIENT_SSL];
    let identity = client.map(|(identity, _)| identity);
    if identity.is_some() {
        ssl[0] |= PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS;
    }
    // The protocol's 0 says a client certificate was presented and verified.
    let verify: u32 = if identity.is_some() { 0 } else { 1 };
    ssl.extend_from_slice(&verify.to_be_bytes());
    push_tlv(&mut ssl, PP2_SUBTYPE_SSL_VERSION, version.as_bytes())?;
    if let Some(cn) = identity.and_then(|id| id.common_name.as_deref()) {
        push_tlv(&mut ssl, PP2_SUBTYPE_SSL_CN, cn.as_bytes())?;
    }
    push_tlv(&mut ssl, PP2_SUBTYPE_SSL_CIPHER, suite.as_bytes())?;
    let mut builder = Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        (peer, local),
    )
    .write_tlv(PP2_TYPE_SSL, ssl.as_slice())?;
    if let Some((_, admitted_as)) = client {
        builder = builder.write_tlv(PP2_TYPE_FIPSGUARD_IDENTITY, admitted_as.as_bytes())?;
    }
    builder.build()
}

/// A sub-TLV inside the SSL TLV (ppp builds only the outer ones).
fn push_tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(value.len())
        .map_err(|_| std::io::Error::other("a PROXY header value is over 64 KiB"))?;
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use ppp::v2::{Addresses, Header};

    use super::*;

    #[test]
    fn a_client_without_a_certificate_is_not_called_verified_and_ipv4_stays_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:40000".parse().unwrap();
        let local: SocketAddr = "[::ffff:10.0.0.1]:443".parse().unwrap();
        let bytes = header(
            mapped,
            Some(local),
            None,
            "TLSv1_3",
            "TLS13_AES_256_GCM_SHA384",
        )
        .unwrap();
        let parsed = Header::try_from(bytes.as_slice()).unwrap();
        match parsed.addresses {
            Addresses::IPv4(a) => {
                assert_eq!(a.source_address, Ipv4Addr::new(10, 1, 2, 3));
                assert_eq!(a.destination_address, Ipv4Addr::new(10, 0, 0, 1));
            }
            other => panic!("addresses: {other:?}"),
        }
        let tlvs: Vec<_> = parsed.tlvs().map(Result::unwrap).collect();
        let ssl = tlvs.iter().find(|t| t.kind == PP2_TYPE_SSL).unwrap();
        assert_eq!(ssl.value[0], PP2_CLIENT_SSL, "no client certificate flags");
        assert_eq!(&ssl.value[1..5], &1u32.to_be_bytes(), "not verified");
    }
}
