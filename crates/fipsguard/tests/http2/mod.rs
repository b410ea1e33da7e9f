//! A bare HTTP/2 client (RFC 9113) over the FIPS TLS client, frame by
//! frame, that never answers a ping: the client the server must not trust
//! to stop sending requests once told to go away.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fipsguard_crypto::tls::{self, rustls};

const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const DATA: u8 = 0x0;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// One frame as read: its type, flags, stream and payload.
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// An HTTP/2 connection that sends GETs on streams 1, 3, 5… and reads the
/// server's frames one at a time.
pub struct Http2 {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    next_stream: u32,
    /// Whether a GOAWAY has been read.
    pub told_to_go: bool,
}

impl Http2 {
    /// Connects to `port` on loopback as `localhost`, trusting `ca`, with
    /// the client certificate and key given, and sends the preface.
    pub fn open(port: u16, ca: &Path, cert: &Path, key: &Path) -> Self {
        let identity = tls::Identity::from_pem_files(cert, key).unwrap();
        let roots = tls::read_roots(ca).unwrap();
        let mut config = tls::client_config(roots, Some(identity)).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut http2 = Self {
            tls: rustls::StreamOwned::new(connection, tcp),
            next_stream: 1,
            told_to_go: false,
        };
        http2
            .tls
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .unwrap();
        http2.send(SETTINGS, 0, 0, &[]);
        assert_eq!(http2.tls.conn.alpn_protocol(), Some(&b"h2"[..]));
        http2
    }

    /// Sends a GET for `path` on the next stream, and returns the answer's
    /// body; `None` if the connection ends first.
    pub fn get(&mut self, path: &str) -> Option<String> {
        let stream = self.next_stream;
        self.next_stream += 2;
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
        ] {
            // A literal field without indexing, new name, no Huffman coding
            // (RFC 7541, 6.2.2): lengths under 127 fit in the prefix.
            block.push(0);
            for part in [name, value] {
                let length = u8::try_from(part.len()).ok().filter(|l| *l < 127);
                block.push(length.expect("header parts under 127 bytes"));
                block.extend_from_slice(part.as_bytes());
            }
        }
        self.send(HEADERS, END_STREAM | END_HEADERS, stream, &block);
        let mut body = Vec::new();
        loop {
            let frame = self.frame()?;
            if frame.stream != stream {
                continue;
            }
            if frame.kind == DATA {
                body.extend_from_slice(&frame.payload);
            }
            if frame.flags & END_STREAM != 0 {
                return Some(String::from_utf8_lossy(&body).into_owned());
            }
        }
    }

    /// The next frame from the server; settings are acknowledged, pings
    /// are not. `None` once the connection ends.
    pub fn frame(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        self.tls.read_exact(&mut head).ok()?;
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; length];
        self.tls.read_exact(&mut payload).ok()?;
        let frame = Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        };
        match frame.kind {
            SETTINGS if frame.flags & ACK == 0 => self.send(SETTINGS, ACK, 0, &[]),
            GOAWAY => self.told_to_go = true,
            _ => {}
        }
        Some(frame)
    }

    fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![length[1], length[2], length[3], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        // The server may have closed the connection already.
        let _ = self.tls.write_all(&frame).and_then(|()| self.tls.flush());
    }
}
