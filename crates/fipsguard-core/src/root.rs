//! The root key-encryption key: every key version's material is wrapped
//! under it (AES-256-KWP, SP 800-38F) before it reaches the store.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fipsguard_crypto::kdf::{pbkdf2_hmac_sha512, PBKDF2_MIN_PASSWORD_LEN};
use fipsguard_crypto::keywrap::KeyEncryptionKey;
use fipsguard_crypto::{random, SecretBytes};

use crate::error::{KmsError, Result};
use crate::store::{RootKeyChange, Store, StoreError, ROOT_KEY_CHECK_SETTING};

/// PBKDF2 iterations for a passphrase-derived root KEK (OWASP 2023 guidance
/// for PBKDF2-HMAC-SHA-512 is 210,000; fipsguard asks for more).
pub const PASSPHRASE_ITERATIONS: u32 = 600_000;

const SALT_SETTING: &str = "root_kek_passphrase_salt";
const CHECK_SETTING: &str = ROOT_KEY_CHECK_SETTING;
/// The key that hashes token secrets, wrapped under the root KEK.
pub(crate) const TOKEN_KEY_SETTING: &str = "token_hmac_key";
/// Every setting whose value is wrapped under the root KEK: a change of
/// root key wraps them again.
const WRAPPED_SETTINGS: &[&str] = &[CHECK_SETTING, TOKEN_KEY_SETTING];

/// Where the root KEK comes from.
pub enum RootKekSource {
    /// 32 raw bytes in a file readable by its owner only (mode 0600 or tighter).
    KeyFile(PathBuf),
    /// A passphrase, stretched with PBKDF2-HMAC-SHA-512 and a salt kept in the store.
    Passphrase(SecretBytes),
    /// A random key that lives as long as the process: development only.
    Ephemeral,
}

/// The root key-encryption key, checked against the store it protects.
pub struct RootKek {
    kek: Arc<KeyEncryptionKey>,
    /// The store's check value this key was verified against.
    check: Vec<u8>,
}

impl RootKek {
    /// Loads the root KEK and checks it is the one this store was created
    /// with (a first open records a check value). A wrong KEK is refused
    /// before anything is written.
    pub async fn open(source: &RootKekSource, store: &dyn Store) -> Result<Self> {
        let existing = store.setting(CHECK_SETTING).await?;
        let material = match source {
            RootKekSource::KeyFile(path) => read_key_file(path)?,
            RootKekSource::Passphrase(passphrase) => {
                // Refused before a new store gets its salt: a store that
                // holds one would take a key file as a wrong passphrase.
                check_passphrase(passphrase)?;
                let salt = match existing {
                    Some(_) => store.setting(SALT_SETTING).await?.ok_or_else(|| {
                        KmsError::RootKek(
                            "this store was not created with a passphrase; nothing was changed"
                                .into(),
                        )
                    })?,
                    None => {
                        store
                            .init_setting(SALT_SETTING, &random::bytes(32)?)
                            .await?
                    }
                };
                stretch(passphrase, &salt)?
            }
            RootKekSource::Ephemeral if existing.is_some() => {
                return Err(KmsError::RootKek(
                    "an ephemeral root key cannot open a store that already holds keys; nothing was changed".into(),
                ));
            }
            RootKekSource::Ephemeral => random::secret(32)?,
        };
        let kek = KeyEncryptionKey::new(material.expose_secret())?;
        let check = match existing {
            Some(check) => check,
            None => {
                let check = kek.wrap(random::secret(32)?.expose_secret())?;
                store.init_setting(CHECK_SETTING, &check).await?
            }
        };
        kek.unwrap(&check).map_err(|_| {
            KmsError::RootKek(
                "this root key is not the one the store was created with (its check value does not unwrap); nothing was changed"
                    .into(),
            )
        })?;
        Ok(Self {
            kek: Arc::new(kek),
            check,
        })
    }

    /// Refuses to go on once the store's root key has been changed
    /// (`fipsguard rekey`) since this key was opened: a change gives the
    /// store a new check value.
    pub(crate) async fn ensure_current(&self, store: &dyn Store) -> Result<()> {
        match store.setting(CHECK_SETTING).await? {
            Some(check) if check == self.check => Ok(()),
            _ => Err(StoreError::RootKeyChanged.into()),
        }
    }

    /// The check value this key was verified against, which new versions
    /// carry so that the store refuses them once the root key has changed.
    pub(crate) fn check(&self) -> &[u8] {
        &self.check
    }

    /// Changes the store's root key from this one to the key `new` names,
    /// in one transaction: every version's material, the check value and
    /// the token key are unwrapped and wrapped again under the new key, and
    /// a passphrase gets a new salt (a key file, none). Nothing changes if
    /// any of them does not unwrap under this key. Returns how many
    /// versions were wrapped again.
    pub(crate) async fn change(&self, store: &dyn Store, new: &RootKekSource) -> Result<u64> {
        let (material, salt) = match new {
            RootKekSource::KeyFile(path) => (read_key_file(path)?, None),
            RootKekSource::Passphrase(passphrase) => {
                check_passphrase(passphrase)?;
                let salt = random::bytes(32)?;
                (stretch(passphrase, &salt)?, Some(salt))
            }
            RootKekSource::Ephemeral => {
                return Err(KmsError::RootKek(
                    "an ephemeral root key would lose every key when the process ends; nothing was changed".into(),
                ))
            }
        };
        let new = Arc::new(KeyEncryptionKey::new(material.expose_secret())?);
        if new.unwrap(&self.check).is_ok() {
            return Err(KmsError::RootKek(
                "the new root key is the one in use; nothing was changed".into(),
            ));
        }
        let (old, successor) = (self.kek.clone(), new.clone());
        let rewrap = move |wrapped: &[u8]| {
            let material = old
                .unwrap(wrapped)
                .map_err(|_| "does not unwrap under the root key in use".to_owned())?;
            successor
                .wrap(material.expose_secret())
                .map_err(|e| format!("cannot be wrapped under the new root key: {e}"))
        };
        let change = RootKeyChange {
            rewrap: Arc::new(rewrap),
            wrapped_settings: WRAPPED_SETTINGS,
            settings: vec![(SALT_SETTING, salt)],
        };
        let versions = store.change_root_key(change).await.map_err(|e| match e {
            StoreError::CommitUnknown(_) => {
                KmsError::RootKek(format!("{e}: whichever key opens the store tells"))
            }
            _ => KmsError::RootKek(format!("{e}; the root key was not changed")),
        })?;
        // Read back: the store now answers to the new key.
        let unconfirmed = |why: String| {
            KmsError::RootKek(format!(
                "the change was committed, but {why}: keep both keys, and confirm with the new one (start a node with it) before anything else"
            ))
        };
        let check = store
            .setting(CHECK_SETTING)
            .await
            .map_err(|e| unconfirmed(format!("reading it back failed ({e})")))?
            .unwrap_or_default();
        new.unwrap(&check).map_err(|_| {
            unconfirmed("the store's check value does not unwrap under the new key".into())
        })?;
        Ok(versions)
    }

    /// Wraps key material for storage.
    pub(crate) fn wrap(&self, material: &SecretBytes) -> Result<Vec<u8>> {
        Ok(self.kek.wrap(material.expose_secret())?)
    }

    /// Unwraps stored key material.
    pub(crate) fn unwrap(&self, wrapped: &[u8]) -> Result<SecretBytes> {
        self.kek.unwrap(wrapped).map_err(|_| {
            KmsError::RootKek(
                "stored key material does not unwrap under the root key (corrupted store?)".into(),
            )
        })
    }
}

/// Refuses a passphrase too short to stretch into a root key.
fn check_passphrase(passphrase: &SecretBytes) -> Result<()> {
    if passphrase.len() < PBKDF2_MIN_PASSWORD_LEN {
        return Err(KmsError::RootKek(format!(
            "a passphrase must be at least {PBKDF2_MIN_PASSWORD_LEN} bytes (FIPS 140-3 IG D.N); nothing was changed"
        )));
    }
    Ok(())
}

/// The root key a passphrase and the store's salt make.
fn stretch(passphrase: &SecretBytes, salt: &[u8]) -> Result<SecretBytes> {
    Ok(pbkdf2_hmac_sha512(
        passphrase.expose_secret(),
        salt,
        PASSPHRASE_ITERATIONS,
        32,
    )?)
}

/// Creates a new key file with 32 random bytes, mode 0600. Refuses to
/// overwrite an existing file.
pub fn create_key_file(path: &Path) -> Result<()> {
    let material = random::secret(32)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            KmsError::RootKek(format!("cannot create key file {}: {e}", path.display()))
        })?;
    // The directory too: a crash must not lose the name of a key that
    // the store may already be wrapped under.
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty());
    file.write_all(material.expose_secret())
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::File::open(directory.unwrap_or(Path::new(".")))?.sync_all())
        .map_err(|e| KmsError::RootKek(format!("cannot write key file {}: {e}", path.display())))
}

/// Reads the key file through one handle that is not a symbolic link, and
/// checks that handle's permissions: no window between check and read.
fn read_key_file(path: &Path) -> Result<SecretBytes> {
    use std::io::Read;
    let fail = |why: String| KmsError::RootKek(format!("key file {}: {why}", path.display()));
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| fail(format!("{e} (symbolic links are not followed)")))?;
    let metadata = file.metadata().map_err(|e| fail(e.to_string()))?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "permissions {:o} are wider than 0600; run chmod 600",
            mode & 0o777
        )));
    }
    if metadata.len() != 32 {
        return Err(fail(format!(
            "holds {} bytes; a root key is exactly 32 bytes",
            metadata.len()
        )));
    }
    let mut bytes = SecretBytes::new(vec![0u8; 32]);
    file.read_exact(bytes.expose_secret_mut())
        .map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}
