//! Random bytes from the module's DRBG (SP 800-90A CTR_DRBG).

use crate::error::Error;
use crate::module::ensure_operational;
use crate::secret::SecretBytes;

/// Most bytes one call returns (callers asking for more are mistaken or hostile).
pub const MAX_LEN: usize = 1 << 20;

/// Fills `out` with random bytes.
pub fn fill(out: &mut [u8]) -> Result<(), Error> {
    ensure_operational()?;
    aws_lc_rs::rand::fill(out).map_err(|_| Error::Module("DRBG generate"))
}

/// Returns `len` random bytes that are not secret (IDs, salts, nonces).
pub fn bytes(len: usize) -> Result<Vec<u8>, Error> {
    check_len(len)?;
    let mut out = vec![0u8; len];
    fill(&mut out)?;
    Ok(out)
}

/// Returns `len` random bytes to use as key material.
pub fn secret(len: usize) -> Result<SecretBytes, Error> {
    check_len(len)?;
    let mut out = SecretBytes::new(vec![0u8; len]);
    fill(out.expose_secret_mut())?;
    Ok(out)
}

fn check_len(len: usize) -> Result<(), Error> {
    match len <= MAX_LEN {
        true => Ok(()),
        false => Err(Error::InvalidInput(
            "at most 1 MiB of random bytes per call",
        )),
    }
}
