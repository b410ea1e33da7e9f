//! Process start to first operation through the boundary, power-up
//! self-tests included: what `bench/boundary.sh` times with hyperfine.

fn main() {
    let key = fipsguard_crypto::aead::Aes256GcmKey::new(&[0x42; 32]).expect("module operational");
    let mut data = b"first operation".to_vec();
    key.seal_in_place(b"", &mut data).expect("seal");
}
