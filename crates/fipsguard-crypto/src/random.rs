//! Random bytes from the module's DRBG (SP 800-90A CTR_DRBG).

use crate::error::Error;
use crate::module::ensure_operational;
use crate::secret::SecretBytes;

/// Fills `out` with random bytes.
pub fn fill(out: &mut [u8]) -> Result<(), Error> {
    ensure_operational()?;
    aws_lc_rs::rand::fill(out).map_err(|_| Error::Module("DRBG generate"))
}

/// Returns `len` random bytes that are not secret (IDs, salts, nonces).
pub fn bytes(len: usize) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; len];
    fill(&mut out)?;
    Ok(out)
}

/// Returns `len` random bytes to use as key material.
pub fn secret(len: usize) -> Result<SecretBytes, Error> {
    let mut out = SecretBytes::new(vec![0u8; len]);
    fill(out.expose_secret_mut())?;
    Ok(out)
}
