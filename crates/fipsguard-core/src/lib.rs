//! The key management domain of fipsguard: keys, versions and their
//! lifecycle (SP 800-57), the ciphertext format, the root of trust, the
//! operations (one async function each, on [`Kms`]) and the [`Store`]
//! interface that backends implement.

pub mod auth;
mod cache;
pub mod ciphertext;
pub mod context;
pub mod error;
pub mod file_format;
pub mod key_type;
pub mod kms;
pub mod lifecycle;
pub mod name;
pub mod root;
pub mod store;

pub use auth::{Grant, Operation, Principal, Role, TokenInfo};
pub use context::EncryptionContext;
pub use error::{DecryptError, KmsError};
pub use key_type::KeyType;
pub use kms::{
    Clock, ConfigureKey, CreateKey, DataKey, DestructionOutcome, DestructionSweep, KeyMetadata,
    Kms, KmsConfig, LifecycleWitness, MacTag, MaterialSweep, Page, RotationOutcome, SignInput,
    Signature, StoreAnswer, SystemClock,
};
pub use lifecycle::KeyState;
pub use root::RootKekSource;
pub use store::{
    AddedVersion, Due, KeyRecord, NewVersion, RebindToken, Reservation, Revocation, Rewrap,
    RootKeyChange, Store, StoreError, VersionRecord, Wrapped, ROOT_KEY_CHECK_SETTING,
};

/// Lower-case hex, for ids.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
