//! The encrypted file format of `fipsguard encrypt` (see docs/file-format.md).
//!
//! A file is a header, then the body in chunks. The header names the
//! server key that wrapped the file's data key and carries everything
//! needed to decrypt:
//!
//! | bytes | field |
//! |---|---|
//! | 6 | magic `FGFILE` |
//! | 1 | format version (1) |
//! | 4 | length of the rest of the header, big-endian |
//! | 4 | chunk size (plaintext bytes per chunk but the last) |
//! | 1 + n | key name |
//! | 4 | key version of the wrapped data key |
//! | 2 + n | wrapped data key (`fg:v…` ciphertext, ASCII) |
//! | 2 | number of context pairs, then per pair 2 + n key, 2 + n value |
//!
//! Each chunk is `IV (12) || AES-256-GCM ciphertext || tag (16)`, sealed
//! under the data key with a module-generated IV. Its additional data is
//! SHA-256(header) || chunk index (u64) || final flag (u8), so a chunk
//! verifies only in its own file, at its own place, and only the last
//! chunk may claim to be last: truncation, reordering, duplication,
//! splicing and appending all fail authentication. Every chunk but the
//! last holds exactly `chunk size` plaintext bytes; the last holds 0 to
//! `chunk size` (0 only for an empty file).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use fipsguard_crypto::aead::{Aes256GcmKey, GcmIv, IV_LEN, TAG_LEN};
use fipsguard_crypto::digest::{digest, HashAlgorithm};
use fipsguard_crypto::secret::wipe;

use crate::context::EncryptionContext;
use crate::name::KeyName;

const MAGIC: &[u8; 6] = b"FGFILE";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const AAD_LABEL: &[u8] = b"fipsguard/file/v1\0";
/// Plaintext bytes per chunk unless told otherwise: large enough that the
/// per-chunk cost (an IV, a tag, a channel hand-off) is lost in the noise.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE: u32 = 1 << 10;
/// Largest chunk size accepted: it bounds the memory decryption needs.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
const MAX_HEADER_LEN: u32 = 64 << 10;
const MAX_WRAPPED_KEY_LEN: usize = 4096;
/// SP 800-38D, 8.3: at most 2^32 random-IV seals under one key.
const MAX_CHUNKS: u64 = 1 << 32;
/// Chunks in flight between the reading, sealing and writing threads:
/// what bounds memory, whatever the file's size.
const PIPELINE_DEPTH: usize = 4;

/// Why a file did not encrypt or decrypt.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The input does not start like a fipsguard encrypted file.
    #[error("not a fipsguard encrypted file (no FGFILE header)")]
    NotEncrypted,
    /// A format version this build does not read.
    #[error(
        "unknown encrypted file format version {0} (this fipsguard reads version {FORMAT_VERSION})"
    )]
    UnknownVersion(u8),
    /// The header is damaged or out of its limits.
    #[error("malformed file header: {0}")]
    MalformedHeader(&'static str),
    /// The file ends inside its header or inside a chunk shorter than any
    /// chunk can be.
    #[error("the file is truncated: {0}")]
    Truncated(&'static str),
    /// A chunk did not authenticate: the file was modified, truncated at a
    /// chunk boundary, reordered, spliced or appended to, or the data key
    /// is not this file's.
    #[error("chunk {index} does not authenticate{}: the file was modified, truncated, reordered, spliced or appended to", if *.last { " as the last one" } else { "" })]
    Authentication {
        /// The chunk's position, from 0.
        index: u64,
        /// Whether it was read as the file's last chunk.
        last: bool,
    },
    /// An empty last chunk after others: it authenticates, but no writer
    /// makes one (only an empty file has an empty last chunk).
    #[error("chunk {index} is an empty last chunk after others: not a file a writer made")]
    EmptyLastChunk {
        /// The chunk's position, from 0.
        index: u64,
    },
    /// Too many chunks for one data key (SP 800-38D, 8.3).
    #[error("the file needs more than 2^32 chunks, the limit of random-IV seals under one key (SP 800-38D, 8.3); use a larger chunk size")]
    TooManyChunks,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The module refused or failed.
    #[error(transparent)]
    Crypto(#[from] fipsguard_crypto::Error),
}

/// What a file's header says. Not secret: the data key in it is wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// Plaintext bytes per chunk (but the last).
    pub chunk_size: u32,
    /// The server key that wrapped the data key.
    pub key_name: String,
    /// That key's version.
    pub key_version: u32,
    /// The data key, encrypted under the server key (`fg:v…`).
    pub wrapped_key: String,
    /// The encryption context the data key was wrapped with.
    pub context: EncryptionContext,
}

impl FileHeader {
    /// The header's bytes, as written at the start of the file.
    pub fn encode(&self) -> Result<Vec<u8>, FileError> {
        self.check()?;
        let mut body = Vec::new();
        body.extend_from_slice(&self.chunk_size.to_be_bytes());
        put_field(&mut body, self.key_name.as_bytes(), 1);
        body.extend_from_slice(&self.key_version.to_be_bytes());
        put_field(&mut body, self.wrapped_key.as_bytes(), 2);
        let pairs = self.context.pairs();
        let count = u16::try_from(pairs.len()).expect("at most MAX_PAIRS");
        body.extend_from_slice(&count.to_be_bytes());
        for (key, value) in pairs {
            put_field(&mut body, key.as_bytes(), 2);
            put_field(&mut body, value.as_bytes(), 2);
        }
        let mut out = Vec::with_capacity(11 + body.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Reads a header from the start of `input`; returns it with its bytes,
    /// which the chunks are bound to.
    pub fn read_from(input: &mut impl Read) -> Result<(Self, Vec<u8>), FileError> {
        let mut prefix = [0u8; 11];
        let read = read_full(input, &mut prefix)?;
        // Judged on what arrived, so a file cut inside its first bytes is
        // called truncated, not foreign.
        let magic = read.min(MAGIC.len());
        if read == 0 || prefix[..magic] != MAGIC[..magic] {
            return Err(FileError::NotEncrypted);
        }
        if read > 6 && prefix[6] != FORMAT_VERSION {
            return Err(FileError::UnknownVersion(prefix[6]));
        }
        if read < prefix.len() {
            return Err(FileError::Truncated("it ends inside the header"));
        }
        let len = u32::from_be_bytes(prefix[7..11].try_into().expect("4 bytes"));
        if len > MAX_HEADER_LEN {
            return Err(FileError::MalformedHeader("it is longer than 64 KiB"));
        }
        let mut bytes = prefix.to_vec();
        bytes.resize(11 + len as usize, 0);
        read_exact_or(
            input,
            &mut bytes[11..],
            FileError::Truncated("it ends inside the header"),
        )?;
        let header = Self::parse_body(&bytes[11..])?;
        Ok((header, bytes))
    }

    fn parse_body(body: &[u8]) -> Result<Self, FileError> {
        let mut r = Fields(body);
        let chunk_size = r.u32()?;
        let key_name = r.text(1, "the key name is not UTF-8")?;
        let key_version = r.u32()?;
        let wrapped_key = r.text(2, "the wrapped key is not UTF-8")?;
        let mut pairs = BTreeMap::new();
        for _ in 0..r.u16()? {
            let key = r.text(2, "a context key is not UTF-8")?;
            let value = r.text(2, "a context value is not UTF-8")?;
            // One encoding per header: keys in strictly increasing order.
            if pairs.last_key_value().is_some_and(|(last, _)| *last >= key) {
                return Err(FileError::MalformedHeader(
                    "the context keys are not in increasing order",
                ));
            }
            pairs.insert(key, value);
        }
        if !r.0.is_empty() {
            return Err(FileError::MalformedHeader(
                "bytes follow the last field of the header",
            ));
        }
        let context = EncryptionContext::new(pairs)
            .map_err(|_| FileError::MalformedHeader("the context is out of its limits"))?;
        let header = Self {
            chunk_size,
            key_name,
            key_version,
            wrapped_key,
            context,
        };
        header.check()?;
        Ok(header)
    }

    fn check(&self) -> Result<(), FileError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(FileError::MalformedHeader(
                "the chunk size is outside 1 KiB to 16 MiB",
            ));
        }
        if !KeyName::is_valid(&self.key_name) {
            return Err(FileError::MalformedHeader("the key name is not a key name"));
        }
        if self.key_version == 0 {
            return Err(FileError::MalformedHeader("the key version is 0"));
        }
        if self.wrapped_key.is_empty() || self.wrapped_key.len() > MAX_WRAPPED_KEY_LEN {
            return Err(FileError::MalformedHeader(
                "the wrapped key is not 1-4096 bytes",
            ));
        }
        // One spelling per wrapped key: `fg:v…` is printable ASCII without
        // spaces, which the ciphertext parser would otherwise trim away.
        if !self.wrapped_key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FileError::MalformedHeader(
                "the wrapped key is not printable ASCII without spaces",
            ));
        }
        if crate::ciphertext::key_version(&self.wrapped_key) != Some(self.key_version) {
            return Err(FileError::MalformedHeader(
                "the key version is not the wrapped key's",
            ));
        }
        Ok(())
    }

    fn record_len(&self) -> usize {
        IV_LEN + self.chunk_size as usize + TAG_LEN
    }
}

/// `field` after its length in `len_bytes` bytes; [`FileHeader::check`] and
/// the context's own limits keep every length within them.
fn put_field(out: &mut Vec<u8>, field: &[u8], len_bytes: usize) {
    let len = u16::try_from(field.len()).expect("checked before encoding");
    assert!(len_bytes == 2 || len <= 0xff, "checked before encoding");
    out.extend_from_slice(&len.to_be_bytes()[2 - len_bytes..]);
    out.extend_from_slice(field);
}

/// A cursor over the header's fields.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FileError> {
        if self.0.len() < n {
            return Err(FileError::MalformedHeader(
                "a field runs past the end of the header",
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, FileError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }

    fn u32(&mut self) -> Result<u32, FileError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn text(&mut self, len_bytes: usize, why: &'static str) -> Result<String, FileError> {
        let len = match len_bytes {
            1 => self.take(1)?[0] as usize,
            _ => self.u16()? as usize,
        };
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| FileError::MalformedHeader(why))
    }
}

/// Reads exactly `buf.len()` bytes; an early end is `short`.
fn read_exact_or(input: &mut impl Read, buf: &mut [u8], short: FileError) -> Result<(), FileError> {
    match read_full(input, buf)? {
        n if n == buf.len() => Ok(()),
        _ => Err(short),
    }
}

/// Fills `buf` unless the input ends first; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Additional data of chunk `index`.
fn chunk_aad(header_hash: &[u8], index: u64, last: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + header_hash.len() + 9);
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(header_hash);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

/// A chunk's buffer, wiped when it is dropped while it holds plaintext:
/// a decrypted chunk once written, or a chunk read for encryption that an
/// error left unsealed. Without it, plaintext would linger in freed memory.
struct ChunkBuffer {
    bytes: Vec<u8>,
    plaintext: bool,
}

impl Drop for ChunkBuffer {
    fn drop(&mut self) {
        if self.plaintext {
            wipe(&mut self.bytes);
        }
    }
}

/// A block of the input with whether it is the input's last.
type Block = io::Result<(ChunkBuffer, bool)>;

/// Reads `input` in blocks of `size` bytes on its own thread, telling
/// which block is the last: a full block is the last only if nothing
/// follows it, so the reader keeps one block in hand. Each block's data
/// starts after `front` spare bytes and has `back` spare capacity behind,
/// so that a chunk's IV and tag join it without copying it. `plaintext`
/// tells whether the input is plaintext (to be wiped unless sealed).
///
/// The thread is not joined: after an error the pipeline returns at once,
/// while the reader may wait on an input that never ends (a stalled pipe)
/// until the process exits; it stops by itself at its next block.
fn read_blocks<R: Read + Send + 'static>(
    mut input: R,
    size: usize,
    (front, back): (usize, usize),
    plaintext: bool,
) -> Receiver<Block> {
    let (tx, rx) = sync_channel::<Block>(PIPELINE_DEPTH);
    thread::spawn(move || {
        let mut read_block = || -> io::Result<ChunkBuffer> {
            let mut block = ChunkBuffer {
                bytes: Vec::with_capacity(front + size + back),
                plaintext,
            };
            block.bytes.resize(front + size, 0);
            let n = read_full(&mut input, &mut block.bytes[front..])?;
            block.bytes.truncate(front + n);
            Ok(block)
        };
        let result = (|| -> io::Result<()> {
            let mut current = read_block()?;
            loop {
                if current.bytes.len() < front + size {
                    return send(&tx, Ok((current, true)));
                }
                let next = read_block()?;
                if next.bytes.len() == front {
                    return send(&tx, Ok((current, true)));
                }
                send(&tx, Ok((current, false)))?;
                current = next;
            }
        })();
        if let Err(e) = result {
            let _ = tx.send(Err(e));
        }
    });
    rx
}

/// Sends on a pipeline channel; a closed channel means the consumer
/// stopped on an error of its own, which it reports.
fn send<T>(tx: &SyncSender<T>, item: T) -> io::Result<()> {
    tx.send(item)
        .map_err(|_| io::Error::other("the pipeline stopped"))
}

/// What the writer writes for one block: `body[range]`, so that the
/// decryptor need not copy a chunk to drop its IV and tag.
struct Piece {
    body: ChunkBuffer,
    range: Range<usize>,
}

/// Writes what arrives to `output` on its own thread; returns the sender
/// and a handle whose result is the writer's.
fn write_pieces<'scope, W: Write + Send + 'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    mut output: W,
) -> (
    SyncSender<Piece>,
    thread::ScopedJoinHandle<'scope, io::Result<W>>,
) {
    let (tx, rx) = sync_channel::<Piece>(PIPELINE_DEPTH);
    let handle = scope.spawn(move || {
        for piece in rx {
            output.write_all(&piece.body.bytes[piece.range])?;
        }
        output.flush()?;
        Ok(output)
    });
    (tx, handle)
}

/// Runs `transform` on every block of `input` on this thread while other
/// threads read and write, and returns `output` once all is written.
/// Blocks have `spare` bytes before and capacity after, and hold
/// `plaintext` or not (see [`read_blocks`]).
fn pipeline<R, W>(
    input: R,
    output: W,
    block_size: usize,
    spare: (usize, usize),
    plaintext: bool,
    mut transform: impl FnMut(ChunkBuffer, bool) -> Result<Piece, FileError>,
) -> Result<W, FileError>
where
    R: Read + Send + 'static,
    W: Write + Send,
{
    thread::scope(|scope| {
        let blocks = read_blocks(input, block_size, spare, plaintext);
        let (tx, writer) = write_pieces(scope, output);
        let transformed = (|| -> Result<(), FileError> {
            for block in blocks.iter() {
                let (block, last) = block?;
                // A writer that failed has hung up; its error is the one to report.
                if tx.send(transform(block, last)?).is_err() || last {
                    return Ok(());
                }
            }
            // The reader ends with the last block or an error; anything
            // else (it panicked) must not pass for a complete input.
            Err(FileError::Truncated(
                "the input's reader stopped before its end",
            ))
        })();
        drop(tx);
        drop(blocks);
        let written = writer.join().expect("the writer thread does not panic");
        transformed?;
        Ok(written?)
    })
}

/// Encrypts `input` to `output` under `data_key`: writes `header`, then the
/// chunks. `progress` hears of each chunk's plaintext bytes.
pub fn encrypt_stream<R, W>(
    header: &FileHeader,
    data_key: &Aes256GcmKey,
    input: R,
    mut output: W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<W, FileError>
where
    R: Read + Send + 'static,
    W: Write + Send,
{
    let header_bytes = header.encode()?;
    let header_hash = digest(HashAlgorithm::Sha256, &header_bytes)?;
    output.write_all(&header_bytes)?;
    let mut index = 0u64;
    pipeline(
        input,
        output,
        header.chunk_size as usize,
        (IV_LEN, TAG_LEN),
        true,
        |mut record, last| {
            if index >= MAX_CHUNKS {
                return Err(FileError::TooManyChunks);
            }
            // The record is [IV space | plaintext]: sealed in place, and
            // written whole.
            let aad = chunk_aad(&header_hash, index, last);
            data_key.seal_in_frame(&aad, &mut record.bytes, 0)?;
            record.plaintext = false;
            index += 1;
            progress((record.bytes.len() - IV_LEN - TAG_LEN) as u64);
            Ok(Piece {
                range: 0..record.bytes.len(),
                body: record,
            })
        },
    )
}

/// Decrypts the chunks of a file whose header was read already (with
/// [`FileHeader::read_from`]) from `input` to `output`. Only authenticated
/// plaintext is written, but a file cut short is found only at its end:
/// write to a temporary file and keep it only if this returns `Ok`.
pub fn decrypt_stream<R, W>(
    header: &FileHeader,
    header_bytes: &[u8],
    data_key: &Aes256GcmKey,
    input: R,
    output: W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<W, FileError>
where
    R: Read + Send + 'static,
    W: Write + Send,
{
    let header_hash = digest(HashAlgorithm::Sha256, header_bytes)?;
    let mut index = 0u64;
    pipeline(
        input,
        output,
        header.record_len(),
        (0, 0),
        false,
        |mut record, last| {
            if record.bytes.len() < IV_LEN + TAG_LEN {
                return Err(FileError::Truncated(
                    "the last chunk is shorter than an IV and a tag",
                ));
            }
            let iv = GcmIv::try_from(&record.bytes[..IV_LEN])?;
            let aad = chunk_aad(&header_hash, index, last);
            // Opened in place, so from here on it is wiped when dropped,
            // whether it opens or not.
            record.plaintext = true;
            let plaintext_len = data_key
                .open_in_place(&iv, &aad, &mut record.bytes[IV_LEN..])
                .map_err(|e| match e {
                    fipsguard_crypto::Error::AuthenticationFailed => {
                        FileError::Authentication { index, last }
                    }
                    other => FileError::Crypto(other),
                })?
                .len();
            // One plaintext, one file: a writer ends a file whose size is a
            // multiple of the chunk size with a full last chunk.
            if plaintext_len == 0 && index > 0 {
                return Err(FileError::EmptyLastChunk { index });
            }
            index += 1;
            progress(plaintext_len as u64);
            Ok(Piece {
                body: record,
                range: IV_LEN..IV_LEN + plaintext_len,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header() -> FileHeader {
        FileHeader {
            chunk_size: MIN_CHUNK_SIZE,
            key_name: "files".into(),
            key_version: 1,
            wrapped_key: "fg:v1:AAAA".into(),
            context: EncryptionContext::new(BTreeMap::new()).unwrap(),
        }
    }

    fn data_key() -> Aes256GcmKey {
        Aes256GcmKey::new(&[0x42; 32]).unwrap()
    }

    fn seal(header: &FileHeader, plaintext: &[u8]) -> Vec<u8> {
        let input = Cursor::new(plaintext.to_vec());
        encrypt_stream(header, &data_key(), input, Vec::new(), &|_| ()).unwrap()
    }

    fn open(file: &[u8]) -> Result<Vec<u8>, FileError> {
        let mut input = Cursor::new(file.to_vec());
        let (header, header_bytes) = FileHeader::read_from(&mut input)?;
        decrypt_stream(
            &header,
            &header_bytes,
            &data_key(),
            input,
            Vec::new(),
            &|_| (),
        )
    }

    #[test]
    fn a_chunk_opens_only_under_its_own_headers_bytes() {
        let file = seal(&header(), &[7; 100]);
        assert_eq!(open(&file).unwrap(), [7; 100]);
        // A header still well formed, but with another chunk size: every
        // field the chunks do not depend on otherwise would pass.
        let mut changed = file.clone();
        changed[11..15].copy_from_slice(&(2 * MIN_CHUNK_SIZE).to_be_bytes());
        let result = open(&changed);
        assert!(
            matches!(
                result,
                Err(FileError::Authentication {
                    index: 0,
                    last: true
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn a_full_last_chunk_followed_by_more_no_longer_opens_as_the_last() {
        let chunk = MIN_CHUNK_SIZE as usize;
        let short = seal(&header(), &vec![1; 2 * chunk]);
        let long = seal(&header(), &vec![1; 3 * chunk]);
        // Same header and key: the longer file's last record is chunk 2 of
        // the same file as far as index and header go; only the flag that
        // chunk 1 was sealed as the last tells the two apart.
        let record_len = header().record_len();
        let mut extended = short.clone();
        extended.extend_from_slice(&long[long.len() - record_len..]);
        let result = open(&extended);
        assert!(
            matches!(
                result,
                Err(FileError::Authentication {
                    index: 1,
                    last: false
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn only_an_empty_file_has_an_empty_last_chunk() {
        assert_eq!(open(&seal(&header(), &[])).unwrap(), b"");
        // One full chunk sealed as not the last, then an empty last one:
        // each authenticates, as only the data key's holder could make.
        let chunk = MIN_CHUNK_SIZE as usize;
        let header_bytes = header().encode().unwrap();
        let header_hash = digest(HashAlgorithm::Sha256, &header_bytes).unwrap();
        let mut file = header_bytes;
        for (index, plaintext, last) in [(0, vec![1; chunk], false), (1, Vec::new(), true)] {
            let mut record = vec![0; IV_LEN];
            record.extend_from_slice(&plaintext);
            data_key()
                .seal_in_frame(&chunk_aad(&header_hash, index, last), &mut record, 0)
                .unwrap();
            file.extend_from_slice(&record);
        }
        let result = open(&file);
        assert!(
            matches!(result, Err(FileError::EmptyLastChunk { index: 1 })),
            "{result:?}"
        );
        // The same plaintext as a writer makes it opens.
        assert_eq!(
            open(&seal(&header(), &vec![1; chunk])).unwrap(),
            vec![1; chunk]
        );
    }

    #[test]
    fn a_wrapped_key_has_one_spelling() {
        let mut spaced = header();
        spaced.wrapped_key = " fg:v1:AAAA".into();
        assert!(matches!(
            spaced.encode(),
            Err(FileError::MalformedHeader(_))
        ));
        let mut bytes = header().encode().unwrap();
        let end = bytes.len() - 2; // before the context's pair count
        assert_eq!(&bytes[end - 4..end], b"AAAA");
        bytes[end - 1] = b' ';
        let result = FileHeader::read_from(&mut Cursor::new(bytes));
        assert!(
            matches!(result, Err(FileError::MalformedHeader(why)) if why.contains("printable ASCII")),
            "{result:?}"
        );
    }

    /// Gives one block's worth of bytes, then panics.
    struct Breaks(usize);

    impl Read for Breaks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            assert!(self.0 > 0, "a reader that breaks");
            let n = self.0.min(buf.len());
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_reader_that_breaks_is_not_taken_for_the_end_of_the_input() {
        let copy = |body: ChunkBuffer, _last| {
            Ok(Piece {
                range: 0..body.bytes.len(),
                body,
            })
        };
        let result = pipeline(Breaks(16), Vec::new(), 16, (0, 0), false, copy);
        assert!(matches!(result, Err(FileError::Truncated(_))), "{result:?}");
        let whole = pipeline(
            &b"0123456789abcdef0123"[..],
            Vec::new(),
            16,
            (0, 0),
            false,
            copy,
        );
        assert_eq!(whole.unwrap(), b"0123456789abcdef0123");
    }
}
