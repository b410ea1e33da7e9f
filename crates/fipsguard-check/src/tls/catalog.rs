//! What a probe can offer: protocol versions, every registered cipher suite,
//! the named groups and signature schemes worth asking about.

use serde::{Deserialize, Serialize};
use tls_parser::{TlsCipherKx, TlsCipherSuite, CIPHERS};

/// A protocol version, SSL 3.0 to TLS 1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// SSL 3.0 (RFC 6101), prohibited since RFC 7568.
    #[serde(rename = "SSL3.0")]
    Ssl3,
    /// TLS 1.0 (RFC 2246).
    #[serde(rename = "TLS1.0")]
    Tls10,
    /// TLS 1.1 (RFC 4346).
    #[serde(rename = "TLS1.1")]
    Tls11,
    /// TLS 1.2 (RFC 5246).
    #[serde(rename = "TLS1.2")]
    Tls12,
    /// TLS 1.3 (RFC 8446).
    #[serde(rename = "TLS1.3")]
    Tls13,
}

impl Protocol {
    /// Every version a scan probes, oldest first.
    pub const ALL: [Protocol; 5] = [
        Protocol::Ssl3,
        Protocol::Tls10,
        Protocol::Tls11,
        Protocol::Tls12,
        Protocol::Tls13,
    ];

    /// The version's number on the wire.
    pub fn wire(self) -> u16 {
        match self {
            Protocol::Ssl3 => 0x0300,
            Protocol::Tls10 => 0x0301,
            Protocol::Tls11 => 0x0302,
            Protocol::Tls12 => 0x0303,
            Protocol::Tls13 => 0x0304,
        }
    }

    /// The name in policies and findings, e.g. `TLS1.2`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ssl3 => "SSL3.0",
            Protocol::Tls10 => "TLS1.0",
            Protocol::Tls11 => "TLS1.1",
            Protocol::Tls12 => "TLS1.2",
            Protocol::Tls13 => "TLS1.3",
        }
    }

    /// The version with this wire number, if it is one a scan knows.
    pub fn from_wire(wire: u16) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.wire() == wire)
    }
}

/// A named group (RFC 8446 4.2.7 and the IANA registry).
#[derive(Debug, Clone, Copy)]
pub struct Group {
    /// The code point.
    pub id: u16,
    /// The IANA name.
    pub name: &'static str,
}

/// Groups a scan asks about, one probe each.
pub const GROUPS: &[Group] = &[
    Group {
        id: 0x0017,
        name: "secp256r1",
    },
    Group {
        id: 0x0018,
        name: "secp384r1",
    },
    Group {
        id: 0x0019,
        name: "secp521r1",
    },
    Group {
        id: 0x001d,
        name: "x25519",
    },
    Group {
        id: 0x001e,
        name: "x448",
    },
    Group {
        id: 0x0100,
        name: "ffdhe2048",
    },
    Group {
        id: 0x0101,
        name: "ffdhe3072",
    },
    Group {
        id: 0x0102,
        name: "ffdhe4096",
    },
    Group {
        id: 0x0103,
        name: "ffdhe6144",
    },
    Group {
        id: 0x0104,
        name: "ffdhe8192",
    },
    // The registry's other curves, legacy and national: each one a server
    // takes is reported, whatever the policy allows.
    Group {
        id: 0x0001,
        name: "sect163k1",
    },
    Group {
        id: 0x0002,
        name: "sect163r1",
    },
    Group {
        id: 0x0003,
        name: "sect163r2",
    },
    Group {
        id: 0x0004,
        name: "sect193r1",
    },
    Group {
        id: 0x0005,
        name: "sect193r2",
    },
    Group {
        id: 0x0006,
        name: "sect233k1",
    },
    Group {
        id: 0x0007,
        name: "sect233r1",
    },
    Group {
        id: 0x0008,
        name: "sect239k1",
    },
    Group {
        id: 0x0009,
        name: "sect283k1",
    },
    Group {
        id: 0x000a,
        name: "sect283r1",
    },
    Group {
        id: 0x000b,
        name: "sect409k1",
    },
    Group {
        id: 0x000c,
        name: "sect409r1",
    },
    Group {
        id: 0x000d,
        name: "sect571k1",
    },
    Group {
        id: 0x000e,
        name: "sect571r1",
    },
    Group {
        id: 0x000f,
        name: "secp160k1",
    },
    Group {
        id: 0x0010,
        name: "secp160r1",
    },
    Group {
        id: 0x0011,
        name: "secp160r2",
    },
    Group {
        id: 0x0012,
        name: "secp192k1",
    },
    Group {
        id: 0x0013,
        name: "secp192r1",
    },
    Group {
        id: 0x0014,
        name: "secp224k1",
    },
    Group {
        id: 0x001f,
        name: "brainpoolP256r1tls13",
    },
    Group {
        id: 0x0020,
        name: "brainpoolP384r1tls13",
    },
    Group {
        id: 0x0021,
        name: "brainpoolP512r1tls13",
    },
    Group {
        id: 0x0029,
        name: "curveSM2",
    },
    Group {
        id: 0x0015,
        name: "secp224r1",
    },
    Group {
        id: 0x0016,
        name: "secp256k1",
    },
    Group {
        id: 0x001a,
        name: "brainpoolP256r1",
    },
    Group {
        id: 0x001b,
        name: "brainpoolP384r1",
    },
    Group {
        id: 0x001c,
        name: "brainpoolP512r1",
    },
    Group {
        id: 0x0201,
        name: "MLKEM768",
    },
    Group {
        id: 0x0202,
        name: "MLKEM1024",
    },
    Group {
        id: 0x11eb,
        name: "SecP256r1MLKEM768",
    },
    Group {
        id: 0x11ec,
        name: "X25519MLKEM768",
    },
    Group {
        id: 0x11ed,
        name: "SecP384r1MLKEM1024",
    },
];

/// The name of a group code point (hex when unregistered here).
pub fn group_name(id: u16) -> String {
    GROUPS
        .iter()
        .find(|g| g.id == id)
        .map_or_else(|| format!("0x{id:04x}"), |g| g.name.to_owned())
}

/// Every group code point, for offers that should not limit the server.
pub fn all_groups() -> Vec<u16> {
    GROUPS.iter().map(|g| g.id).collect()
}

/// Signature schemes offered by default: the modern ones first, then the
/// legacy ones a weak server might still pick.
pub const SIGNATURE_SCHEMES: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0809, 0x080a, 0x080b, 0x0401, 0x0501, 0x0601,
    0x0807, 0x0808, 0x0303, 0x0301, 0x0402, 0x0502, 0x0602, 0x0201, 0x0203, 0x0202, 0x0101,
];

/// Schemes that sign a SHA-1 digest (RFC 5246 7.4.1.4.1).
pub const SHA1_SCHEMES: &[u16] = &[0x0201, 0x0203, 0x0202];
/// Schemes that sign an MD5 digest.
pub const MD5_SCHEMES: &[u16] = &[0x0101, 0x0103];

/// The hash a TLS 1.2 signature scheme signs with, as the policy names it.
pub fn scheme_hash(scheme: u16) -> &'static str {
    match scheme >> 8 {
        1 => "MD5",
        2 => "SHA-1",
        3 => "SHA-224",
        4 => "SHA-256",
        5 => "SHA-384",
        6 => "SHA-512",
        8 => "intrinsic",
        _ => "unknown",
    }
}

/// Every registered suite usable under `protocol`, by code point.
pub fn suites_for(protocol: Protocol) -> Vec<u16> {
    let mut suites: Vec<u16> = CIPHERS
        .values()
        .filter(|suite| (suite.kx == TlsCipherKx::Tls13) == (protocol == Protocol::Tls13))
        .filter(|suite| !suite.name.contains("SCSV"))
        .map(|suite| suite.id.0)
        .collect();
    suites.sort_unstable();
    suites
}

/// The IANA name of a suite (hex when unregistered).
pub fn suite_name(id: u16) -> String {
    TlsCipherSuite::from_id(id).map_or_else(|| format!("0x{id:04x}"), |s| s.name.to_owned())
}
