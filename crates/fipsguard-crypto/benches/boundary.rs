//! What the boundary costs: each operation through fipsguard-crypto next to
//! the same operation called directly on aws-lc-rs, in the same run.
//! `bench/boundary.sh` runs this and reports the ratios.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use aws_lc_rs::aead::{Aad, RandomizedNonceKey, AES_256_GCM};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fipsguard_crypto::aead::Aes256GcmKey;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::sign::{SignatureScheme, SigningKey, SigningKeyType};

const KEY: [u8; 32] = [0x42; 32];

fn aes_gcm_seal(c: &mut Criterion) {
    let plaintext = vec![0x17u8; 1024];
    let mut group = c.benchmark_group("aes-256-gcm-seal-1KiB");
    group.throughput(Throughput::Bytes(plaintext.len() as u64));

    let direct = RandomizedNonceKey::new(&AES_256_GCM, &KEY).unwrap();
    group.bench_function(BenchmarkId::new("aws-lc-rs", "direct"), |b| {
        b.iter(|| {
            let mut in_out = Vec::with_capacity(plaintext.len() + 16);
            in_out.extend_from_slice(&plaintext);
            direct
                .seal_in_place_append_tag(Aad::from(b"context"), &mut in_out)
                .unwrap()
        })
    });
    let boundary = Aes256GcmKey::new(&KEY).unwrap();
    group.bench_function(BenchmarkId::new("fipsguard", "boundary"), |b| {
        b.iter(|| {
            let mut in_out = Vec::with_capacity(plaintext.len() + 16);
            in_out.extend_from_slice(&plaintext);
            boundary.seal_in_place(b"context", &mut in_out).unwrap()
        })
    });
    group.finish();
}

fn ecdsa_p256_sign(c: &mut Criterion) {
    let message = b"a 32-byte-ish message to be signed";
    let mut group = c.benchmark_group("ecdsa-p256-sign");

    let direct = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let rng = SystemRandom::new();
    group.bench_function(BenchmarkId::new("aws-lc-rs", "direct"), |b| {
        b.iter(|| direct.sign(&rng, message).unwrap())
    });
    let boundary = SigningKey::generate(SigningKeyType::EcdsaP256).unwrap();
    group.bench_function(BenchmarkId::new("fipsguard", "boundary"), |b| {
        b.iter(|| {
            boundary
                .sign(SignatureScheme::EcdsaP256Sha256, message)
                .unwrap()
        })
    });
    group.finish();
}

fn hmac_sha256(c: &mut Criterion) {
    let data = vec![0x17u8; 1024];
    let mut group = c.benchmark_group("hmac-sha256-1KiB");
    group.throughput(Throughput::Bytes(data.len() as u64));

    let direct = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &KEY);
    group.bench_function(BenchmarkId::new("aws-lc-rs", "direct"), |b| {
        b.iter(|| aws_lc_rs::hmac::sign(&direct, &data))
    });
    let boundary = MacKey::new(MacAlgorithm::HmacSha256, &KEY).unwrap();
    group.bench_function(BenchmarkId::new("fipsguard", "boundary"), |b| {
        b.iter(|| boundary.sign(&data).unwrap())
    });
    group.finish();
}

criterion_group!(benches, aes_gcm_seal, ecdsa_p256_sign, hmac_sha256);
criterion_main!(benches);
