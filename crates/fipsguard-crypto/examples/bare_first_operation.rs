//! The baseline for `first_operation`: the same first operation on bare
//! aws-lc-rs, with only its FIPS-mode check and no fipsguard self-tests.

use aws_lc_rs::aead::{Aad, RandomizedNonceKey, AES_256_GCM};

fn main() {
    aws_lc_rs::try_fips_mode().expect("FIPS mode");
    let key = RandomizedNonceKey::new(&AES_256_GCM, &[0x42; 32]).expect("key");
    let mut data = b"first operation".to_vec();
    key.seal_in_place_append_tag(Aad::empty(), &mut data)
        .expect("seal");
}
