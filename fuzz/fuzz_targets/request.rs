//! Request bodies come from anyone who can reach the API: decoding them must
//! never panic, whatever the bytes.
#![no_main]

use fipsguard_server::api::crypto::{Batch, DataKeyRequest, DecryptRequest, EncryptRequest, MacVerifyRequest, SignRequest, VerifyRequest};
use fipsguard_server::api::keys::{ConfigureKeyRequest, CreateKeyRequest};
use fipsguard_server::api::tokens::CreateTokenRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<EncryptRequest>(data);
    let _ = serde_json::from_slice::<DecryptRequest>(data);
    let _ = serde_json::from_slice::<DataKeyRequest>(data);
    let _ = serde_json::from_slice::<SignRequest>(data);
    let _ = serde_json::from_slice::<VerifyRequest>(data);
    let _ = serde_json::from_slice::<MacVerifyRequest>(data);
    let _ = serde_json::from_slice::<Batch<EncryptRequest>>(data);
    let _ = serde_json::from_slice::<CreateKeyRequest>(data);
    let _ = serde_json::from_slice::<ConfigureKeyRequest>(data);
    let _ = serde_json::from_slice::<CreateTokenRequest>(data);
});
