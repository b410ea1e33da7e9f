//! Who a verified peer certificate names, and whether an allow-list lets
//! it in. The certificate was verified by the handshake already (chain,
//! validity, revocation); this only reads its names.

use std::fmt::Write;

use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid2abbrev, oid_registry};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::config::TunnelConfig;

/// The names in a verified end-entity certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject, as `CN=…, O=…`, with `,` `+` `=` and `\` in values escaped
    /// by a backslash and control characters as hex (RFC 4514), so that a
    /// value cannot pose as more attributes or break a log line.
    pub subject: String,
    /// The subject's attributes in order: short name (or dotted OID) and value.
    pub subject_attributes: Vec<(String, String)>,
    /// The subject's common name, if it has one that is plain text (no
    /// control character, line separator or bidi control).
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// URI subject alternative names (SPIFFE IDs, say).
    pub uris: Vec<String>,
}

impl PeerIdentity {
    /// Reads the names of a DER certificate.
    pub fn of(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("the peer certificate does not parse: {e}"))?;
        let subject_attributes = attributes(cert.subject());
        let mut identity = Self {
            subject: subject_attributes
                .iter()
                .map(|(name, value)| format!("{name}={}", escape(value)))
                .collect::<Vec<_>>()
                .join(", "),
            subject_attributes,
            common_name: plain_common_name(cert.subject()),
            ..Self::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                let (names, name) = match name {
                    GeneralName::DNSName(dns) => (&mut identity.dns, *dns),
                    GeneralName::URI(uri) => (&mut identity.uris, *uri),
                    _ => continue,
                };
                // Logs and the PROXY header carry these names as they are:
                // a line break, a separator or a bidi override could fake
                // a log line. RFC 5280 makes both ASCII (IA5String), and
                // neither has spaces.
                if !name.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(format!(
                        "a DNS or URI name of the peer certificate holds a character other than printable ASCII (RFC 5280): {:?}",
                        escape(name)
                    ));
                }
                names.push(name.to_owned());
            }
        }
        Ok(identity)
    }

    /// The one name logs and the PROXY header carry: the first URI SAN,
    /// else the first DNS SAN, else the subject.
    pub fn principal(&self) -> &str {
        self.uris
            .first()
            .or(self.dns.first())
            .map_or(self.subject.as_str(), String::as_str)
    }

    /// The name under which `tunnel` lets this identity in: the one its
    /// allow-list matched (a listed URI, DNS name (case-insensitive) or
    /// subject, in that order), so that logs and the PROXY header carry
    /// the name that was checked; with no allow-list, the
    /// [`principal`](Self::principal). `None`: the allow-list refuses it.
    pub fn admitted_as(&self, tunnel: &TunnelConfig) -> Option<&str> {
        if !tunnel.has_allow_list() {
            return Some(self.principal());
        }
        let uri = tunnel
            .allow_uri
            .iter()
            .find_map(|allowed| self.uris.iter().find(|uri| *uri == allowed));
        let dns = || {
            tunnel.allow_dns.iter().find_map(|allowed| {
                self.dns
                    .iter()
                    .find(|dns| dns.eq_ignore_ascii_case(allowed))
            })
        };
        let subject = || {
            tunnel
                .allow_subject
                .iter()
                .filter_map(|allowed| parse_subject(allowed).ok())
                .any(|allowed| same_attributes(&allowed, &self.subject_attributes))
                .then_some(&self.subject)
        };
        uri.or_else(dns).or_else(subject).map(String::as_str)
    }
}

/// A name's attributes in their order in the certificate: short name (or
/// dotted OID) and value. A value that is not a plain string (a BMPString,
/// say) is `#`, its ASN.1 tag and the hex of its bytes, and a string that
/// starts with `#` or `\` keeps a `\` before it, so that no two values read
/// alike (`#x` is `\#x`, `\#x` is `\\#x`).
fn attributes(name: &X509Name<'_>) -> Vec<(String, String)> {
    name.iter_attributes()
        .map(|attribute| {
            let oid = attribute.attr_type();
            let name = oid2abbrev(oid, oid_registry())
                .map(str::to_owned)
                .unwrap_or_else(|_| oid.to_id_string());
            let raw = attribute.attr_value();
            let value = match attribute.as_str() {
                Ok(text) if text.starts_with(['#', '\\']) => format!("\\{text}"),
                Ok(text) => text.to_owned(),
                Err(_) => format!("#{:02x}{}", raw.tag().0, hex::encode(raw.data)),
            };
            (name, value)
        })
        .collect()
}

/// The first common name, if it is a string with nothing that could break
/// or disguise a line: the PROXY header hands it to the target as it is
/// (SSL_CN), where it lands in logs. Any other is left out there, and is
/// still in the escaped subject.
fn plain_common_name(subject: &X509Name) -> Option<String> {
    let text = subject.iter_common_name().next()?.as_str().ok()?;
    let disguising = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    (!text.contains(disguising)).then(|| text.to_owned())
}

/// A value with RFC 4514's special characters escaped, and control
/// characters as `\` and the hex of their bytes (RFC 4514's hexpair), so
/// that a value cannot break a log line or pose as more of it.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(out, "\\{byte:02x}");
            }
            continue;
        }
        if matches!(c, ',' | '+' | '=' | '\\' | '"' | ';' | '<' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reads an allow-list subject, `CN=batch, O=Example`, into its attributes
/// (a `\` and two hex digits is a byte, RFC 4514's hexpair, as the log
/// writes control characters; a `\` before anything else keeps it as it
/// is), so it is compared attribute by attribute, never as text a
/// certificate's values could imitate.
pub fn parse_subject(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut parts = vec![Vec::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("one part");
        match c {
            '\\' => {
                let hex: String = chars.clone().take(2).collect();
                if hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    part.push(u8::from_str_radix(&hex, 16).expect("two hex digits"));
                    chars.nth(1);
                    continue;
                }
                match chars.next() {
                    Some(next) => part.extend_from_slice(next.encode_utf8(&mut [0; 4]).as_bytes()),
                    None => return Err(format!("{text:?} ends in a lone backslash")),
                }
            }
            ',' => parts.push(Vec::new()),
            _ => part.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    parts
        .into_iter()
        .map(|part| {
            let part = String::from_utf8(part)
                .map_err(|_| format!("{text:?}: its \\ hex escapes are not UTF-8"))?;
            let part = part.trim_start();
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{text:?}: {part:?} is not NAME=value"))?;
            Ok((name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

fn same_attributes(a: &[(String, String)], b: &[(String, String)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((an, av), (bn, bv))| an.eq_ignore_ascii_case(bn) && av == bv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        tunnel: TunnelConfig,
    }

    fn tunnel_allowing(subject: &str) -> TunnelConfig {
        let flags = ["t", "--listen", "127.0.0.1:1", "--target", "127.0.0.1:2"];
        let mut tunnel = Flags::parse_from(flags).tunnel;
        tunnel.allow_subject = vec![subject.to_owned()];
        tunnel
    }

    fn peer(attributes: &[(&str, &str)]) -> PeerIdentity {
        PeerIdentity {
            subject_attributes: attributes
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..PeerIdentity::default()
        }
    }

    #[test]
    fn subjects_match_attribute_by_attribute_so_a_value_cannot_pose_as_more() {
        let batch = tunnel_allowing("CN=batch, O=Example");
        let admitted = |attributes: &[(&str, &str)], tunnel: &TunnelConfig| {
            peer(attributes).admitted_as(tunnel).is_some()
        };
        assert!(admitted(&[("CN", "batch"), ("O", "Example")], &batch));
        assert!(
            !admitted(&[("O", "Example"), ("CN", "batch")], &batch),
            "attributes compare in the certificate's order"
        );
        assert!(!admitted(
            &[("CN", "batch"), ("O", "Example"), ("OU", "x")],
            &batch
        ));
        assert!(
            !admitted(&[("CN", "batch, O=Example")], &batch),
            "a CN that imitates two attributes"
        );
        let escaped = tunnel_allowing("CN=batch\\, O=Example");
        assert!(admitted(&[("CN", "batch, O=Example")], &escaped));
        assert!(parse_subject("CN=a\\").is_err());
        assert!(parse_subject("no equals sign").is_err());
    }

    #[test]
    fn the_name_admitted_is_the_one_the_allow_list_matched() {
        let identity = PeerIdentity {
            subject: "CN=reports".into(),
            dns: vec!["Reports.Internal".into()],
            uris: vec!["spiffe://example.test/admin".into()],
            ..PeerIdentity::default()
        };
        let mut tunnel = tunnel_allowing("CN=other");
        tunnel.allow_dns = vec!["reports.internal".into()];
        assert_eq!(
            identity.admitted_as(&tunnel),
            Some("Reports.Internal"),
            "not the first URI, which nobody checked"
        );
        tunnel.allow_dns.clear();
        assert_eq!(identity.admitted_as(&tunnel), None);
        tunnel.allow_subject.clear();
        assert_eq!(
            identity.admitted_as(&tunnel),
            Some("spiffe://example.test/admin"),
            "no allow-list: the principal"
        );
    }

    #[test]
    fn values_that_are_not_plain_strings_keep_their_bytes() {
        // Name ::= SEQUENCE { SET { SEQUENCE { id-at-commonName, BMPString } } }
        let name = |b: u8| {
            let der = [
                0x30, 0x0f, 0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x04, 0x00,
                b'a', 0x00, b,
            ];
            attributes(&X509Name::from_der(&der).unwrap().1)
        };
        assert_eq!(name(b'b'), [("CN".to_owned(), "#1e00610062".to_owned())]);
        assert_ne!(name(b'b'), name(b'c'));
        // A UTF8String that spells the same is told apart.
        let text = b"#1e00610062";
        let mut der = vec![
            0x30, 0x16, 0x31, 0x14, 0x30, 0x12, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x0b,
        ];
        der.extend_from_slice(text);
        let spelled = attributes(&X509Name::from_der(&der).unwrap().1);
        assert_eq!(spelled, [("CN".to_owned(), "\\#1e00610062".to_owned())]);
    }

    /// A Name with one common name, a UTF8String of `text` (under 100
    /// bytes), as DER.
    fn name_der(text: &str) -> Vec<u8> {
        let len = u8::try_from(text.len()).unwrap();
        let mut der = vec![0x30, len + 11, 0x31, len + 9, 0x30, len + 7];
        der.extend_from_slice(&[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, len]);
        der.extend_from_slice(text.as_bytes());
        der
    }

    /// The attributes of [`name_der`]'s Name.
    fn common_name(text: &str) -> Vec<(String, String)> {
        attributes(&X509Name::from_der(&name_der(text)).unwrap().1)
    }

    #[test]
    fn only_a_plain_common_name_is_handed_on() {
        let name_of =
            |text: &str| plain_common_name(&X509Name::from_der(&name_der(text)).unwrap().1);
        assert_eq!(name_of("batch job").as_deref(), Some("batch job"));
        assert_eq!(name_of("J\u{fc}rgen").as_deref(), Some("J\u{fc}rgen"));
        for disguised in [
            "x\nfake log line",
            "x\u{85}y",
            "x\u{2028}y",
            "admin\u{202e}txt",
        ] {
            assert_eq!(name_of(disguised), None, "{disguised:?}");
        }
    }

    #[test]
    fn values_that_start_with_an_escape_are_told_apart() {
        let (hash, escaped) = (common_name("#x"), common_name("\\#x"));
        assert_ne!(hash, escaped);
        // Each allowed by its subject as the log shows it, and only it.
        let logged = |cn: &[(String, String)]| format!("CN={}", escape(&cn[0].1));
        let allows = |entry: &str, cn: &[(String, String)]| {
            same_attributes(&parse_subject(entry).unwrap(), cn)
        };
        assert!(allows(&logged(&hash), &hash) && !allows(&logged(&hash), &escaped));
        assert!(allows(&logged(&escaped), &escaped) && !allows(&logged(&escaped), &hash));
    }

    #[test]
    fn control_characters_cannot_break_the_subjects_line() {
        let attributes = common_name("ops\nCN=admin");
        let subject = format!("CN={}", escape(&attributes[0].1));
        assert_eq!(subject, "CN=ops\\0aCN\\=admin");
        // Copied from the log, it allows that certificate and no other.
        let entry = parse_subject(&subject).unwrap();
        assert!(same_attributes(&entry, &attributes));
        assert!(!same_attributes(&entry, &common_name("ops0aCN=admin")));
        let accented = common_name("caf\u{e9}\u{85}");
        let logged = parse_subject(&format!("CN={}", escape(&accented[0].1))).unwrap();
        assert!(same_attributes(&logged, &accented), "{logged:?}");
        assert!(
            parse_subject("CN=a\\ff").is_err(),
            "a lone byte that is not UTF-8"
        );
    }
}
