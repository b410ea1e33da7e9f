//! The PROXY protocol v2 header a server tunnel can send its target, so
//! that the target logs who connected: the client's address, and for
//! mTLS the verified identity.
//!
//! TLVs: `PP2_TYPE_SSL` (0x20) with the client flags, verify result 0
//! (verified) and the sub-TLVs `SSL_VERSION`, `SSL_CN` (the subject's
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
    ssl.extend_from_slice(&0u32.to_be_bytes());
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
