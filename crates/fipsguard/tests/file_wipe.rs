//! No plaintext of a file is left in freed memory by encrypting or
//! decrypting it, whether it succeeds, is found tampered with, or stops on
//! an error: this process's writable memory is read through /proc and
//! searched for a marker that only the plaintext contains. The plaintext
//! is made and checked on the fly, never held by the test itself, and
//! this is the only test of its binary, so no other test's data is there.
#![cfg(target_os = "linux")]

mod common;

use std::io::{self, Cursor, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fipsguard_core::file_format::{
    decrypt_stream, encrypt_stream, FileError, FileHeader, MIN_CHUNK_SIZE,
};
use fipsguard_core::EncryptionContext;
use fipsguard_crypto::aead::Aes256GcmKey;

/// Sixteen bytes the plaintext repeats; nothing else in this process
/// holds them in writable memory.
const MARKER: &[u8; 16] = b"\x8fplaintext\x01mark\x02";

/// How many of this process's readable, writable regions (heap, stacks,
/// anonymous mappings) hold the marker.
fn regions_with_plaintext() -> usize {
    let regions = common::writable_memory(std::process::id());
    let searched: usize = regions.iter().map(Vec::len).sum();
    assert!(searched > 1 << 20, "this process's memory was read");
    let finder = memchr::memmem::Finder::new(MARKER);
    regions.iter().filter(|r| finder.find(r).is_some()).count()
}

/// `len` bytes of the marker, repeated, made as they are read. Its reader
/// thread drops it last, after any block it still held.
struct Plaintext {
    at: usize,
    len: usize,
}

static PLAINTEXT_DROPPED: AtomicBool = AtomicBool::new(false);

impl Drop for Plaintext {
    fn drop(&mut self) {
        PLAINTEXT_DROPPED.store(true, Ordering::SeqCst);
    }
}

/// Waits until the reader thread of the last stream has let go of its
/// input (it is not joined when a stream stops on an error).
fn wait_for_the_reader() {
    common::wait_until(Duration::from_secs(10), "the reader never stopped", || {
        PLAINTEXT_DROPPED.swap(false, Ordering::SeqCst)
    });
}

/// An output that takes the header, then refuses every write.
struct FullAfterHeader {
    header_written: bool,
}

impl Write for FullAfterHeader {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if std::mem::replace(&mut self.header_written, true) {
            return Err(io::Error::other("the disk is full"));
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Plaintext {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.len - self.at);
        for (i, byte) in buf[..n].iter_mut().enumerate() {
            *byte = MARKER[(self.at + i) % MARKER.len()];
        }
        self.at += n;
        Ok(n)
    }
}

/// Checks what it is given against the repeated marker, keeping nothing.
#[derive(Debug, Default)]
struct Checked {
    at: usize,
    wrong: bool,
}

impl Write for Checked {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for (i, byte) in buf.iter().enumerate() {
            self.wrong |= *byte != MARKER[(self.at + i) % MARKER.len()];
        }
        self.at += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_plaintext_is_left_in_freed_memory() {
    let key = Aes256GcmKey::new(&[0x42; 32]).unwrap();
    let header = FileHeader {
        chunk_size: MIN_CHUNK_SIZE,
        key_name: "files".to_owned(),
        key_version: 1,
        wrapped_key: "fg:v1:AAAA".to_owned(),
        context: EncryptionContext::default(),
    };
    let len = 10 * MIN_CHUNK_SIZE as usize + 100;

    let plaintext = || Plaintext { at: 0, len };
    let file = encrypt_stream(&header, &key, plaintext(), Vec::new(), &|_| {}).unwrap();
    wait_for_the_reader();
    assert_eq!(regions_with_plaintext(), 0, "encrypting left plaintext");

    // An output that fails at its first chunk: the chunks read ahead are
    // dropped unsealed, in the channel and in the reader.
    let full = FullAfterHeader {
        header_written: false,
    };
    let refused = encrypt_stream(&header, &key, plaintext(), full, &|_| {});
    assert!(
        matches!(refused, Err(FileError::Io(_))),
        "{:?}",
        refused.err()
    );
    wait_for_the_reader();
    assert_eq!(
        regions_with_plaintext(),
        0,
        "a failed encryption left plaintext"
    );
    let (_, header_bytes) = FileHeader::read_from(&mut &file[..]).unwrap();

    let decrypt = |file: Vec<u8>| {
        let mut input = Cursor::new(file);
        input.set_position(header_bytes.len() as u64);
        decrypt_stream(
            &header,
            &header_bytes,
            &key,
            input,
            Checked::default(),
            &|_| {},
        )
    };
    let written = decrypt(file.clone()).unwrap();
    assert_eq!((written.at, written.wrong), (len, false));
    assert_eq!(regions_with_plaintext(), 0, "decrypting left plaintext");

    // A chunk near the end tampered with: the chunks before it were
    // decrypted and written, and the failing one opened in place.
    let mut tampered = file;
    let at = tampered.len() - 200;
    tampered[at] ^= 1;
    let refused = decrypt(tampered);
    assert!(
        matches!(refused, Err(FileError::Authentication { index: 9, .. })),
        "{refused:?}"
    );
    assert_eq!(
        regions_with_plaintext(),
        0,
        "a refused decryption left plaintext"
    );

    // And the search finds plaintext freed unwiped (as many blocks as a
    // file's chunks, as the search's own allocations may reuse a few):
    // this must come last.
    let unwiped: Vec<Vec<u8>> = (0..16).map(|_| MARKER.repeat(64)).collect();
    drop(std::hint::black_box(unwiped));
    assert!(regions_with_plaintext() > 0, "the search sees freed memory");
}
