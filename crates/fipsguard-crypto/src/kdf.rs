//! Key derivation: HKDF-SHA-256 (SP 800-56C Rev. 2) and
//! PBKDF2-HMAC-SHA-512 (SP 800-132), with the bounds the module itself does
//! not enforce.

use aws_lc_rs::{hkdf, pbkdf2};

use crate::error::{Error, Refusal};
use crate::module::ensure_operational;
use crate::secret::SecretBytes;

/// Fewest PBKDF2 iterations accepted (SP 800-132 section 5.2).
pub const PBKDF2_MIN_ITERATIONS: u32 = 1000;
/// Shortest PBKDF2 salt accepted, in bytes (128 bits, SP 800-132 section 5.1).
pub const PBKDF2_MIN_SALT_LEN: usize = 16;
/// Shortest PBKDF2 password accepted, in bytes (FIPS 140-3 IG D.N).
pub const PBKDF2_MIN_PASSWORD_LEN: usize = 14;
/// Shortest PBKDF2 output accepted, in bytes (112 bits).
pub const PBKDF2_MIN_OUTPUT_LEN: usize = 14;
/// Longest HKDF-SHA-256 output (RFC 5869: 255 hash blocks).
pub const HKDF_SHA256_MAX_OUTPUT_LEN: usize = 255 * 32;

/// Derives `len` bytes with HKDF-SHA-256 (extract then expand). An empty
/// salt is refused.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Result<SecretBytes, Error> {
    ensure_operational()?;
    if salt.is_empty() {
        return Err(Refusal::HkdfEmptySalt.into());
    }
    if len == 0 || len > HKDF_SHA256_MAX_OUTPUT_LEN {
        return Err(Error::InvalidInput(
            "HKDF-SHA-256 output must be 1 to 8160 bytes",
        ));
    }
    let mut out = SecretBytes::new(vec![0u8; len]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], OutputLen(len))
        .and_then(|okm| okm.fill(out.expose_secret_mut()))
        .map_err(|_| Error::Module("HKDF-SHA-256"))?;
    Ok(out)
}

/// Derives `len` bytes from a password with PBKDF2-HMAC-SHA-512, refusing
/// parameters outside SP 800-132's bounds.
pub fn pbkdf2_hmac_sha512(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    len: usize,
) -> Result<SecretBytes, Error> {
    ensure_operational()?;
    if iterations < PBKDF2_MIN_ITERATIONS {
        return Err(Refusal::Pbkdf2Iterations { iterations }.into());
    }
    if salt.len() < PBKDF2_MIN_SALT_LEN {
        return Err(Refusal::Pbkdf2SaltTooShort {
            bits: salt.len() * 8,
        }
        .into());
    }
    if password.len() < PBKDF2_MIN_PASSWORD_LEN {
        return Err(Refusal::Pbkdf2PasswordTooShort.into());
    }
    if len < PBKDF2_MIN_OUTPUT_LEN {
        return Err(Refusal::Pbkdf2OutputTooShort.into());
    }
    if len > 1024 {
        return Err(Error::InvalidInput(
            "PBKDF2 output is limited to 1024 bytes",
        ));
    }
    let iterations = std::num::NonZeroU32::new(iterations).expect("checked above");
    let mut out = SecretBytes::new(vec![0u8; len]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA512,
        iterations,
        salt,
        password,
        out.expose_secret_mut(),
    );
    Ok(out)
}

/// An output length for HKDF expand.
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}
