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

/// One checkpoint, as kept outside the log to show later that the log
/// still holds it: the sequence number of the record it covers and that
/// record's chain hash. Written `SEQ:HASH` (hash in hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointId {
    /// The sequence number of the record the checkpoint covers.
    pub seq: u64,
    /// That record's chain hash.
    pub hash: Hash,
}

impl std::str::FromStr for CheckpointId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (seq, hash) = text.split_once(':').ok_or("expected SEQ:HASH")?;
        let seq = seq.parse().map_err(|e| format!("SEQ {seq:?}: {e}"))?;
        let hash = from_hex(hash).ok_or("HASH: 64 hexadecimal digits")?;
        Ok(Self { seq, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::CheckpointId;

    #[test]
    fn a_checkpoint_is_read_from_seq_colon_hash() {
        let hex = "Ab".repeat(32);
        let read: CheckpointId = format!("42:{hex}").parse().unwrap();
        assert_eq!(
            read,
            CheckpointId {
                seq: 42,
                hash: [0xab; 32]
            }
        );
        for (text, says) in [
            ("42", "expected SEQ:HASH"),
            (format!("x:{hex}").as_str(), "SEQ \"x\""),
            ("42:abcd", "HASH: 64 hexadecimal digits"),
            (
                format!("42:{}", "zz".repeat(32)).as_str(),
                "HASH: 64 hexadecimal digits",
            ),
        ] {
            let refused = text.parse::<CheckpointId>().unwrap_err();
            assert!(refused.contains(says), "{text}: {refused}");
        }
    }
}
