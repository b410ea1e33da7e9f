//! Hand-built ClientHellos and the server's plaintext answer. Reading which
//! version, suite and group a server picks needs no crypto: everything up to
//! the ServerHello (and, before TLS 1.3, the certificate and key exchange)
//! travels in the clear.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tls_parser::{
    parse_dh_params, parse_digitally_signed, parse_ecdh_params, parse_tls_extensions,
    parse_tls_message_handshake, ECParametersContent, TlsCipherAu, TlsCipherKx, TlsCipherSuite,
    TlsExtension, TlsMessage, TlsMessageHandshake,
};

use super::catalog::{Protocol, SIGNATURE_SCHEMES};

const HANDSHAKE: u8 = 22;
const ALERT: u8 = 21;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO_DONE: u8 = 14;
/// A record body is at most 2^14 bytes (plus expansion); anything larger is not TLS.
const MAX_RECORD: usize = 16384 + 2048;
/// Enough for any certificate chain a server sends before ServerHelloDone.
const MAX_HANDSHAKE_BYTES: usize = 256 * 1024;
/// Signalling suite for secure renegotiation (RFC 5746), so strict servers talk.
const RENEGOTIATION_SCSV: u16 = 0x00ff;

/// What one probe offers.
#[derive(Debug, Clone)]
pub struct Offer<'a> {
    /// The one protocol version offered.
    pub protocol: Protocol,
    /// Cipher suites, in preference order.
    pub suites: &'a [u16],
    /// Named groups (supported_groups).
    pub groups: &'a [u16],
    /// Signature schemes (signature_algorithms).
    pub signature_schemes: &'a [u16],
    /// Read on to the certificate and key exchange (TLS 1.2 and older).
    pub through_key_exchange: bool,
}

impl<'a> Offer<'a> {
    /// An offer of `suites` under `protocol` with every group and scheme.
    pub fn new(protocol: Protocol, suites: &'a [u16], groups: &'a [u16]) -> Self {
        Offer {
            protocol,
            suites,
            groups,
            signature_schemes: SIGNATURE_SCHEMES,
            through_key_exchange: false,
        }
    }
}

/// The server's answer to one ClientHello.
#[derive(Debug)]
pub enum Reply {
    /// A ServerHello (or HelloRetryRequest).
    Hello(ServerHello),
    /// The server refused: an alert, or an answer that is no hello.
    Refused(String),
    /// The connection was closed or reset before any hello, without an
    /// alert: the server's refusal, or a limiter in front of it.
    CutOff(&'static str),
    /// No verdict: the probe timed out, or the bytes were not TLS. Read as
    /// a refusal it would pass an old protocol a rate limit or a dropping
    /// firewall only kept from answering.
    Unanswered(String),
}

/// The plaintext part of a server's handshake.
#[derive(Debug, Default)]
pub struct ServerHello {
    /// The version chosen (from supported_versions when present).
    pub version: u16,
    /// The cipher suite chosen.
    pub suite: u16,
    /// The group the server chose in a TLS 1.3 key_share (or HelloRetryRequest).
    pub group: Option<u16>,
    /// The certificate chain (TLS 1.2 and older only: TLS 1.3 encrypts it).
    pub certificates: Vec<Vec<u8>>,
    /// The named group of an ECDHE ServerKeyExchange.
    pub key_exchange_group: Option<u16>,
    /// The size of a DHE ServerKeyExchange's prime, in bits.
    pub dh_bits: Option<usize>,
    /// The signature scheme of the ServerKeyExchange.
    pub key_exchange_signature: Option<u16>,
}

/// Sends one ClientHello to `address` and reads the answer. `Err` only when
/// the endpoint cannot be reached at all: a refusal is a [`Reply`].
pub fn probe(
    address: SocketAddr,
    server_name: Option<&str>,
    offer: &Offer<'_>,
    timeout: Duration,
) -> io::Result<Reply> {
    let mut stream = Deadline::connect(address, timeout)?;
    stream.write_all(&client_hello(offer, server_name))?;
    Ok(read_reply(&mut stream, offer.through_key_exchange))
}

/// A connection with one deadline for everything done on it, so a server
/// that answers a byte at a time cannot hold a probe longer than its timeout.
pub(super) struct Deadline {
    stream: TcpStream,
    until: Instant,
}

impl Deadline {
    /// Connects within `timeout`; reads and writes must end within it too.
    pub(super) fn connect(address: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let until = Instant::now() + timeout;
        let stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_nodelay(true)?;
        Ok(Deadline { stream, until })
    }

    /// What is left of the deadline, or a timeout error once it has passed.
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "probe deadline passed",
            ));
        }
        Ok(left)
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.remaining()?))?;
        self.stream.read(buf)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.remaining()?))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// The ClientHello record for `offer` (RFC 5246 7.4.1.2, RFC 8446 4.1.2).
pub fn client_hello(offer: &Offer<'_>, server_name: Option<&str>) -> Vec<u8> {
    let tls13 = offer.protocol == Protocol::Tls13;
    let legacy_version = if tls13 { 0x0303 } else { offer.protocol.wire() };
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(&legacy_version.to_be_bytes());
    body.extend_from_slice(&hello_random());
    body.push(32);
    body.extend_from_slice(&hello_random());
    let mut suites: Vec<u16> = offer.suites.to_vec();
    if !tls13 {
        suites.push(RENEGOTIATION_SCSV);
    }
    put_u16_list(&mut body, &suites);
    body.extend_from_slice(&[1, 0]);
    if offer.protocol != Protocol::Ssl3 {
        put_vec16(&mut body, &extensions(offer, server_name));
    }
    let mut handshake = vec![CLIENT_HELLO];
    put_u24(&mut handshake, body.len());
    handshake.extend_from_slice(&body);
    let record_version = if offer.protocol == Protocol::Ssl3 {
        0x0300
    } else {
        0x0301
    };
    let mut record = vec![HANDSHAKE];
    record.extend_from_slice(&u16::to_be_bytes(record_version));
    put_vec16(&mut record, &handshake);
    record
}

/// Random bytes for the hello random and session id. They protect nothing
/// (the probe never finishes a handshake) but must not repeat.
fn hello_random() -> [u8; 32] {
    let mut random = [0u8; 32];
    fipsguard_crypto::random::fill(&mut random).expect("the module's DRBG is operational");
    random
}

fn extensions(offer: &Offer<'_>, server_name: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(name) = server_name {
        let mut entry = vec![0u8];
        put_vec16(&mut entry, name.as_bytes());
        let mut list = Vec::new();
        put_vec16(&mut list, &entry);
        extension(&mut out, 0, &list);
    }
    let mut groups = Vec::new();
    put_u16_list(&mut groups, offer.groups);
    extension(&mut out, 10, &groups);
    extension(&mut out, 11, &[1, 0]);
    let mut schemes = Vec::new();
    put_u16_list(&mut schemes, offer.signature_schemes);
    extension(&mut out, 13, &schemes);
    extension(&mut out, 23, &[]);
    if offer.protocol == Protocol::Tls13 {
        extension(&mut out, 43, &[2, 0x03, 0x04]);
        extension(&mut out, 45, &[1, 1]);
        // No key share: a server that supports one of the groups must answer
        // with a HelloRetryRequest naming it, which is all a probe needs.
        extension(&mut out, 51, &[0, 0]);
    }
    out
}

fn extension(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    put_vec16(out, body);
}

fn put_u16_list(out: &mut Vec<u8>, values: &[u16]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    put_vec16(out, &bytes);
}

fn put_vec16(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("a hello field fits in 64 KiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_u24(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("a hello fits in 16 MiB");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
}

/// Reads records until the answer is complete, the server refuses, or the
/// connection ends. Handshake messages may span records, so their bytes are
/// gathered before parsing. Whatever a server sends, the answer is a
/// [`Reply`], never a panic: the entry point for fuzzing.
pub fn read_reply(stream: &mut impl Read, through_key_exchange: bool) -> Reply {
    let mut handshake = Vec::new();
    let mut hello: Option<ServerHello> = None;
    loop {
        let (kind, body) = match read_record(stream) {
            Ok(record) => record,
            Err(e) => return ended(hello, &e),
        };
        match kind {
            HANDSHAKE => handshake.extend_from_slice(&body),
            ALERT if hello.is_none() => return Reply::Refused(alert_text(&body)),
            _ if hello.is_some() => break,
            other => return Reply::Refused(format!("unexpected record type {other}")),
        }
        if handshake.len() > MAX_HANDSHAKE_BYTES {
            // After a hello the server took the offer: what it sends next
            // cannot be judged, which is no verdict, never a refusal.
            let reason = "a handshake larger than 256 KiB";
            return match hello {
                None => Reply::Refused(reason.into()),
                Some(_) => Reply::Unanswered(format!("{reason} after its ServerHello")),
            };
        }
        match absorb_messages(&mut handshake, &mut hello) {
            Err(reason) => return Reply::Refused(reason),
            Ok(done) if done || !wants_more(hello.as_ref(), through_key_exchange) => break,
            Ok(_) => {}
        }
    }
    hello.map_or_else(|| Reply::Refused("no ServerHello".into()), Reply::Hello)
}

fn ended(hello: Option<ServerHello>, error: &io::Error) -> Reply {
    match (hello, error.kind()) {
        (Some(hello), _) => Reply::Hello(hello),
        (None, io::ErrorKind::UnexpectedEof) => Reply::CutOff("connection closed"),
        (None, io::ErrorKind::ConnectionReset) => Reply::CutOff("connection reset"),
        (None, _) => Reply::Unanswered(format!("no answer: {error}")),
    }
}

/// Only a TLS 1.2-or-older hello is followed by plaintext worth reading.
fn wants_more(hello: Option<&ServerHello>, through_key_exchange: bool) -> bool {
    match hello {
        None => true,
        Some(hello) => through_key_exchange && hello.version <= 0x0303,
    }
}

fn read_record(stream: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header)?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > MAX_RECORD || header[1] != 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the answer is not a TLS record",
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok((header[0], body))
}

/// Parses the complete handshake messages in `buffer`, leaving a partial one.
/// `Ok(true)` once ServerHelloDone has been seen.
fn absorb_messages(buffer: &mut Vec<u8>, hello: &mut Option<ServerHello>) -> Result<bool, String> {
    let mut done = false;
    let mut used = 0;
    while buffer.len() - used >= 4 {
        let rest = &buffer[used..];
        let len = usize::from(rest[1]) << 16 | usize::from(rest[2]) << 8 | usize::from(rest[3]);
        if rest.len() < 4 + len {
            break;
        }
        let message = &rest[..4 + len];
        done |= message[0] == SERVER_HELLO_DONE;
        absorb(message, hello)?;
        used += 4 + len;
    }
    buffer.drain(..used);
    Ok(done)
}

fn absorb(message: &[u8], hello: &mut Option<ServerHello>) -> Result<(), String> {
    let parsed = match parse_tls_message_handshake(message) {
        Ok((_, TlsMessage::Handshake(parsed))) => parsed,
        // A message the parser does not know (e.g. CertificateStatus) changes nothing.
        _ => return Ok(()),
    };
    match (parsed, hello.as_mut()) {
        (TlsMessageHandshake::ServerHello(contents), None) => {
            *hello = Some(server_hello(
                contents.version.0,
                contents.cipher.0,
                contents.ext,
            )?);
        }
        (TlsMessageHandshake::Certificate(contents), Some(hello)) => {
            hello.certificates = contents
                .cert_chain
                .iter()
                .map(|c| c.data.to_vec())
                .collect();
        }
        (TlsMessageHandshake::ServerKeyExchange(contents), Some(hello)) => {
            key_exchange(contents.parameters, hello);
        }
        _ => {}
    }
    Ok(())
}

fn server_hello(
    version: u16,
    suite: u16,
    extensions: Option<&[u8]>,
) -> Result<ServerHello, String> {
    let mut hello = ServerHello {
        version,
        suite,
        ..ServerHello::default()
    };
    let extensions = match extensions.map(parse_tls_extensions) {
        Some(Ok((_, extensions))) => extensions,
        Some(Err(_)) => return Err("malformed ServerHello extensions".into()),
        None => Vec::new(),
    };
    for extension in extensions {
        match extension {
            TlsExtension::SupportedVersions(versions) => {
                hello.version = versions.first().map_or(version, |v| v.0);
            }
            // A HelloRetryRequest names only the group; a ServerHello adds its share.
            TlsExtension::KeyShare(share) if share.len() >= 2 => {
                hello.group = Some(u16::from_be_bytes([share[0], share[1]]));
            }
            _ => {}
        }
    }
    Ok(hello)
}

/// The group (or DH prime size) and signature scheme of a ServerKeyExchange,
/// read in the layout the chosen suite's key exchange gives it: the two
/// cannot be told apart by their bytes (a 6144-bit prime's length starts
/// with the byte that marks a named curve). A PSK key exchange, which
/// starts with an identity hint, is not read.
fn key_exchange(parameters: &[u8], hello: &mut ServerHello) {
    let suite = TlsCipherSuite::from_id(hello.suite).filter(|s| s.au != TlsCipherAu::Psk);
    match suite.map(|suite| suite.kx) {
        Some(TlsCipherKx::Ecdhe) => {
            if let Ok((signed, params)) = parse_ecdh_params(parameters) {
                if let ECParametersContent::NamedGroup(group) = params.curve_params.params_content {
                    hello.key_exchange_group = Some(group.0);
                }
                hello.key_exchange_signature = signature_scheme(signed);
            }
        }
        Some(TlsCipherKx::Dhe) => {
            if let Ok((signed, params)) = parse_dh_params(parameters) {
                hello.dh_bits = Some(significant_bits(params.dh_p));
                hello.key_exchange_signature = signature_scheme(signed);
            }
        }
        _ => {}
    }
}

fn signature_scheme(signed: &[u8]) -> Option<u16> {
    let (_, signed) = parse_digitally_signed(signed).ok()?;
    let scheme = signed.alg?;
    Some(u16::from(scheme.hash.0) << 8 | u16::from(scheme.sign.0))
}

fn significant_bits(number: &[u8]) -> usize {
    let trimmed: &[u8] = match number.iter().position(|&b| b != 0) {
        Some(start) => &number[start..],
        None => return 0,
    };
    trimmed.len() * 8 - trimmed[0].leading_zeros() as usize
}

fn alert_text(body: &[u8]) -> String {
    match body {
        [_, description, ..] => format!("alert {}", tls_parser::TlsAlertDescription(*description)),
        _ => "alert".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ServerHello split over two records, then ServerHelloDone, is
    /// reassembled; bytes that are not TLS are no verdict, and a close
    /// before any hello is a cut-off.
    #[test]
    fn handshake_messages_are_reassembled_across_records() {
        let mut hello_body = vec![0x03, 0x03];
        hello_body.extend_from_slice(&[7u8; 32]);
        hello_body.push(0);
        hello_body.extend_from_slice(&[0xc0, 0x2f, 0]);
        let mut message = vec![2u8];
        put_u24(&mut message, hello_body.len());
        message.extend_from_slice(&hello_body);
        message.extend_from_slice(&[SERVER_HELLO_DONE, 0, 0, 0]);
        let (hello, done) = message.split_at(message.len() - 4);
        let (first, second) = hello.split_at(10);
        let records = |parts: &[&[u8]]| {
            let mut wire = Vec::new();
            for part in parts {
                wire.extend_from_slice(&[HANDSHAKE, 3, 3]);
                put_vec16(&mut wire, part);
            }
            wire
        };
        let wire = records(&[first, second, done]);
        match read_reply(&mut wire.as_slice(), true) {
            Reply::Hello(hello) => assert_eq!((hello.version, hello.suite), (0x0303, 0xc02f)),
            Reply::Refused(reason) | Reply::Unanswered(reason) => panic!("no hello: {reason}"),
            Reply::CutOff(reason) => panic!("no hello: {reason}"),
        }
        // A hello, then certificates too large to read: no verdict, not a
        // refusal that would hide the suite the server took.
        let mut certificates = vec![11u8];
        put_u24(&mut certificates, 300 * 1024);
        certificates.resize(4 + 300 * 1024, 0);
        let mut parts = vec![first, second];
        parts.extend(certificates.chunks(16384));
        let wire = records(&parts);
        assert!(matches!(
            read_reply(&mut wire.as_slice(), true),
            Reply::Unanswered(reason) if reason.contains("after its ServerHello")
        ));
        let garbage = b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec();
        assert!(matches!(
            read_reply(&mut garbage.as_slice(), true),
            Reply::Unanswered(_)
        ));
        assert!(matches!(
            read_reply(&mut [].as_slice(), true),
            Reply::CutOff("connection closed")
        ));
    }

    /// A DHE key exchange with a 6144-bit prime: its length, 0x0300, starts
    /// with the byte an ECDHE body uses for "named curve".
    #[test]
    fn the_key_exchange_is_read_in_the_layout_of_the_chosen_suite() {
        let prime = [0xffu8; 768];
        let mut parameters = Vec::new();
        put_vec16(&mut parameters, &prime);
        put_vec16(&mut parameters, &[2]);
        put_vec16(&mut parameters, &prime);
        parameters.extend_from_slice(&[2, 1]); // rsa_pkcs1_sha1
        put_vec16(&mut parameters, &[0x5a; 256]);
        let mut hello = ServerHello {
            suite: 0x009e, // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
            ..ServerHello::default()
        };
        key_exchange(&parameters, &mut hello);
        assert_eq!(hello.dh_bits, Some(6144));
        assert_eq!(hello.key_exchange_group, None);
        assert_eq!(hello.key_exchange_signature, Some(0x0201));

        let mut ecdhe = vec![3, 0x00, 0x17]; // named curve secp256r1
        ecdhe.push(65);
        ecdhe.extend_from_slice(&[4; 65]);
        ecdhe.extend_from_slice(&[4, 3]); // ecdsa_secp256r1_sha256
        put_vec16(&mut ecdhe, &[0x30; 70]);
        let mut hello = ServerHello {
            suite: 0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            ..ServerHello::default()
        };
        key_exchange(&ecdhe, &mut hello);
        assert_eq!(hello.key_exchange_group, Some(0x0017));
        assert_eq!(hello.key_exchange_signature, Some(0x0403));
        assert_eq!(hello.dh_bits, None);
    }

    #[test]
    fn dh_prime_sizes_count_significant_bits() {
        assert_eq!(significant_bits(&[0, 0x80, 0]), 16);
        assert_eq!(significant_bits(&[0x01, 0xff]), 9);
        assert_eq!(significant_bits(&[0, 0]), 0);
    }
}
