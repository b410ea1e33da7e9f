//! AES-256-GCM (FIPS 197, SP 800-38D) with module-generated IVs.
//!
//! The only encryption API takes no IV: the module draws a fresh 96-bit IV
//! from its DRBG for every seal (aws-lc-rs `RandomizedNonceKey`, the IV
//! construction of SP 800-38D section 8.2.2). A caller-chosen IV is not an
//! approved GCM encryption service, so it cannot be expressed here.
//! Decryption takes the IV that was stored with the ciphertext.

use std::fmt;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM};
use zeroize::Zeroize;

use crate::error::{Error, Refusal};
use crate::module::ensure_operational;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// IV length in bytes (96 bits, SP 800-38D section 8.2).
pub const IV_LEN: usize = 12;
/// Tag length in bytes (128 bits).
pub const TAG_LEN: usize = 16;

/// A 96-bit GCM IV, as stored beside a ciphertext. Only the module makes
/// new ones (as the result of a seal); callers hold them to decrypt.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GcmIv([u8; IV_LEN]);

impl GcmIv {
    /// The IV's bytes, to store with the ciphertext.
    pub fn as_bytes(&self) -> &[u8; IV_LEN] {
        &self.0
    }
}

impl TryFrom<&[u8]> for GcmIv {
    type Error = Error;

    /// Reads a stored IV. Any length other than 96 bits is refused.
    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        bytes
            .try_into()
            .map(GcmIv)
            .map_err(|_| Refusal::GcmIvLength.into())
    }
}

impl fmt::Debug for GcmIv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcmIv(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

/// An AES-256-GCM key. Not `Clone`; its expanded key schedule lives inside
/// AWS-LC, which wipes it when the key drops.
pub struct Aes256GcmKey {
    key: RandomizedNonceKey,
}

impl Aes256GcmKey {
    /// Makes a key from 32 bytes of key material. Other lengths are refused:
    /// only AES-256 is offered.
    pub fn new(key_bytes: &[u8]) -> Result<Self, Error> {
        ensure_operational()?;
        if key_bytes.len() != KEY_LEN {
            return Err(Refusal::AesKeySizeNotOffered.into());
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, key_bytes)
            .map_err(|_| Error::InvalidKey("AES-256-GCM key rejected by the module"))?;
        Ok(Self { key })
    }

    /// Encrypts `in_out` in place and appends the tag; returns the IV the
    /// module chose, which the caller stores with the ciphertext.
    pub fn seal_in_place(&self, aad: &[u8], in_out: &mut Vec<u8>) -> Result<GcmIv, Error> {
        ensure_operational()?;
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), in_out)
            .map_err(|_| Error::Module("AES-256-GCM seal"))?;
        Ok(GcmIv(*nonce.as_ref()))
    }

    /// Seals a record laid out as `[.. | IV's place | plaintext]`, with the
    /// IV's place at `iv_at`: the plaintext is encrypted in place, the IV
    /// the module chose is written into its place and the tag appended, so
    /// the record is whole in one buffer without another copy. On failure
    /// the plaintext is wiped, whatever the module left of it.
    ///
    /// # Panics
    ///
    /// If `frame` ends before the IV's place does: the caller lays out the
    /// frame, so that is a bug in the caller, not bad input.
    pub fn seal_in_frame(
        &self,
        aad: &[u8],
        frame: &mut Vec<u8>,
        iv_at: usize,
    ) -> Result<(), Error> {
        let body = iv_at + IV_LEN;
        match self.seal_in_place_separate_tag(aad, &mut frame[body..]) {
            Ok((iv, tag)) => {
                frame[iv_at..body].copy_from_slice(iv.as_bytes());
                frame.extend_from_slice(&tag);
                Ok(())
            }
            Err(e) => {
                frame[body..].zeroize();
                Err(e)
            }
        }
    }

    fn seal_in_place_separate_tag(
        &self,
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<(GcmIv, [u8; TAG_LEN]), Error> {
        ensure_operational()?;
        let (nonce, tag) = self
            .key
            .seal_in_place_separate_tag(Aad::from(aad), in_out)
            .map_err(|_| Error::Module("AES-256-GCM seal"))?;
        let tag = tag
            .as_ref()
            .try_into()
            .map_err(|_| Error::Module("AES-256-GCM tag length"))?;
        Ok((GcmIv(*nonce.as_ref()), tag))
    }

    /// Decrypts `in_out` (ciphertext followed by tag) in place and returns the
    /// plaintext part. On failure nothing is released: AWS-LC decrypts before
    /// it checks the tag, so the whole buffer is wiped here.
    pub fn open_in_place<'a>(
        &self,
        iv: &GcmIv,
        aad: &[u8],
        in_out: &'a mut [u8],
    ) -> Result<&'a mut [u8], Error> {
        ensure_operational()?;
        if in_out.len() < TAG_LEN
            || self
                .key
                .open_in_place(Nonce::from(iv.as_bytes()), Aad::from(aad), in_out)
                .is_err()
        {
            in_out.zeroize();
            return Err(Error::AuthenticationFailed);
        }
        let plaintext_len = in_out.len() - TAG_LEN;
        Ok(&mut in_out[..plaintext_len])
    }

    /// Encrypts with a given IV. Only the known-answer test may do this: it
    /// needs a fixed IV to compare against a published vector.
    pub(crate) fn seal_with_fixed_iv_for_self_test(
        key_bytes: &[u8],
        iv: &[u8; IV_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        use aws_lc_rs::aead::{LessSafeKey, UnboundKey};
        let key = UnboundKey::new(&AES_256_GCM, key_bytes)
            .map(LessSafeKey::new)
            .map_err(|_| Error::InvalidKey("AES-256-GCM key rejected by the module"))?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*iv),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| Error::Module("AES-256-GCM seal"))?;
        Ok(in_out)
    }
}

impl fmt::Debug for Aes256GcmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Aes256GcmKey([redacted])")
    }
}
