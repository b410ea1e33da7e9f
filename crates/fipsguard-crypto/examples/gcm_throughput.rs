//! The baseline of `bench/files.sh`: raw AES-256-GCM through the module on
//! one core, sealing 1 GiB in memory in 1 MiB pieces (module IVs), with no
//! I/O at all. Prints seconds and MiB/s.

use std::time::Instant;

fn main() {
    let key = fipsguard_crypto::aead::Aes256GcmKey::new(&[0x42; 32]).expect("module operational");
    let piece = vec![0x5au8; 1 << 20];
    let mut buf = Vec::with_capacity(piece.len() + 16);
    let started = Instant::now();
    for _ in 0..1024 {
        buf.clear();
        buf.extend_from_slice(&piece);
        key.seal_in_place(b"", &mut buf).expect("seal");
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{secs:.4} {:.1}", 1024.0 / secs);
}
