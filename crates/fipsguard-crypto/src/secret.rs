//! Secret bytes: key material and other values that must never be printed
//! and must be wiped when dropped.

use std::fmt;

use zeroize::Zeroize;

/// Bytes that are secret: a key, a derived key, a shared secret, a
/// decrypted data key. Wiped on drop; `Debug` shows `[redacted]`; not
/// `Clone`, so a copy is always a visible decision (`expose_secret().to_vec()`).
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are wiped when this value drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies `bytes` into a new secret. The caller still owns (and should
    /// wipe) its own copy.
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// The secret itself. The name makes every use easy to find in review.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The secret, writable (to decrypt or derive into it in place).
    pub fn expose_secret_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Shortens the secret; the cut bytes are wiped.
    pub fn truncate(&mut self, len: usize) {
        let keep = len.min(self.0.len());
        self.0[keep..].zeroize();
        self.0.truncate(len);
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Empties `bytes` and zeroes its whole allocation in bulk, behind an
/// optimization barrier (zeroize 1.9.2): for a buffer that held a secret
/// and is about to be freed or reused. (`zeroize`'s own `Vec` impl writes
/// the elements one volatile byte at a time: for a 64 KiB plaintext, tens
/// of microseconds.) Copies left behind by earlier reallocations are out
/// of its reach: a secret buffer is sized once, or wiped as it grows.
pub fn wipe(bytes: &mut Vec<u8>) {
    bytes.clear();
    bytes.spare_capacity_mut().zeroize();
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {} bytes])", self.0.len())
    }
}

/// Compares two byte strings in time that depends only on their lengths, for
/// secrets such as token hashes and MAC tags.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}
