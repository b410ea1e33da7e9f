//! The hash chain and what a checkpoint signs.

use fipsguard_crypto::digest::{digest_parts, HashAlgorithm};

/// A SHA-256 chain value.
pub type Hash = [u8; 32];

/// What the first record of a new chain is chained to.
pub const GENESIS: Hash = [0; 32];

const CHAIN_LABEL: &[u8] = b"fipsguard-audit-v1\0";
const CHECKPOINT_LABEL: &[u8] = b"fipsguard-audit-checkpoint-v1\0";

/// The hash of a record: its exact bytes chained to the hash before it.
pub(crate) fn next(previous: &Hash, record: &[u8]) -> Result<Hash, fipsguard_crypto::Error> {
    let hash = digest_parts(HashAlgorithm::Sha256, &[CHAIN_LABEL, previous, record])?;
    Ok(hash.try_into().expect("SHA-256 is 32 bytes"))
}

/// What a checkpoint signs: the sequence number and hash of the record it
/// covers, under a label of its own so no other signature can pass as one.
pub(crate) fn checkpoint_message(covers: u64, hash: &Hash) -> Vec<u8> {
    [CHECKPOINT_LABEL, &covers.to_be_bytes(), hash].concat()
}

/// Hex for hashes in records.
pub(crate) fn to_hex(hash: &Hash) -> String {
    String::from_utf8(hex_bytes(hash).to_vec()).expect("hex is ASCII")
}

/// The same, without an allocation: one per record adds up (`hex::encode`
/// also builds its string a character at a time).
pub(crate) fn hex_bytes(hash: &Hash) -> [u8; 64] {
    let mut hex = [0; 64];
    hex::encode_to_slice(hash, &mut hex).expect("64 digits for 32 bytes");
    hex
}

/// A hash from its hex form.
pub(crate) fn from_hex(text: &str) -> Option<Hash> {
    let mut hash = [0; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}
