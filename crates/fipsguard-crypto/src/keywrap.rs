//! AES-256 key wrap with padding (KWP, SP 800-38F): how key material is
//! protected at rest under a key-encryption key.

use std::fmt;

use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};

use crate::error::{Error, Refusal};
use crate::module::ensure_operational;
use crate::secret::SecretBytes;

/// KWP adds at most this many bytes (an 8-byte integrity block plus up to 7
/// bytes of padding).
const WRAP_OVERHEAD: usize = 15;

/// An AES-256 key-encryption key. AWS-LC's KEK object is single-use, so the
/// material is kept (zeroized on drop) and a KEK is built per call; an AES
/// key schedule costs far less than the wrap itself.
pub struct KeyEncryptionKey {
    material: SecretBytes,
}

impl KeyEncryptionKey {
    /// Makes a KEK from 32 bytes of key material; other lengths are refused.
    pub fn new(key_bytes: &[u8]) -> Result<Self, Error> {
        ensure_operational()?;
        if key_bytes.len() != 32 {
            return Err(Refusal::AesKeySizeNotOffered.into());
        }
        Ok(Self {
            material: SecretBytes::copy_from(key_bytes),
        })
    }

    /// Wraps `key` (any length from 1 byte).
    pub fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, Error> {
        ensure_operational()?;
        if key.is_empty() {
            return Err(Error::InvalidInput("cannot wrap an empty key"));
        }
        let mut out = vec![0u8; key.len() + WRAP_OVERHEAD + 1];
        let len = self
            .kek()?
            .wrap_with_padding(key, &mut out)
            .map_err(|_| Error::Module("AES-256-KWP wrap"))?
            .len();
        out.truncate(len);
        Ok(out)
    }

    /// Unwraps a key wrapped by [`wrap`](Self::wrap) under this KEK. A wrong
    /// KEK or any modification gives [`Error::AuthenticationFailed`].
    pub fn unwrap(&self, wrapped: &[u8]) -> Result<SecretBytes, Error> {
        ensure_operational()?;
        let mut out = SecretBytes::new(vec![0u8; wrapped.len()]);
        let len = self
            .kek()?
            .unwrap_with_padding(wrapped, out.expose_secret_mut())
            .map_err(|_| Error::AuthenticationFailed)?
            .len();
        out.truncate(len);
        Ok(out)
    }

    fn kek(&self) -> Result<AesKek, Error> {
        AesKek::new(&AES_256, self.material.expose_secret())
            .map_err(|_| Error::InvalidKey("AES-256 key-encryption key rejected by the module"))
    }
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}
