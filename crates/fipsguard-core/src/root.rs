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
use crate::key_type::KeyType;
use crate::store::{
    RebindToken, RootKeyChange, Store, StoreError, Wrapped, ROOT_KEY_CHECK_SETTING,
};

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
    /// Whether values wrapped before values were bound are taken (only in
    /// a store whose check value is itself unbound, and only for `rekey`).
    unbound: UnboundValues,
}

/// What to do with a value wrapped under the root key by a release that
/// did not bind values to their place in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnboundValues {
    /// Refuse it: a store that holds such values must be rekeyed first.
    Refuse,
    /// Take it, in a store whose check value is unbound (one written by
    /// such a release): what `fipsguard rekey` does to bind every value.
    /// In a store whose check value is bound, an unbound value was put
    /// there by someone else and is refused all the same.
    AcceptToRebind,
}

impl RootKek {
    /// Loads the root KEK and checks it is the one this store was created
    /// with (a first open records a check value). A wrong KEK is refused
    /// before anything is written.
    pub async fn open(
        source: &RootKekSource,
        store: &dyn Store,
        unbound: UnboundValues,
    ) -> Result<Self> {
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
                let check = wrap_bound(&kek, CHECK, &random::secret(32)?)?;
                store.init_setting(CHECK_SETTING, &check).await?
            }
        };
        let unwrapped = kek.unwrap(&check).map_err(|_| {
            KmsError::RootKek(
                "this root key is not the one the store was created with (its check value does not unwrap); nothing was changed"
                    .into(),
            )
        })?;
        // The check value tells a store written before values were bound.
        let unbound = match (unbind(CHECK, &unwrapped), unbound) {
            (Found::Bound(_), _) => UnboundValues::Refuse,
            (Found::Unbound, UnboundValues::AcceptToRebind) => UnboundValues::AcceptToRebind,
            (found, _) => {
                let why = found.reason(CHECK);
                return Err(StoreError::Corrupt(format!("{CHECK} {why}")).into());
            }
        };
        Ok(Self {
            kek: Arc::new(kek),
            check,
            unbound,
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

    /// Whether this key takes values an earlier release wrapped unbound (in
    /// a store such a release wrote, opened to be rekeyed).
    pub(crate) fn takes_unbound(&self) -> bool {
        self.unbound == UnboundValues::AcceptToRebind
    }

    /// The check value this key was verified against, which new versions
    /// carry so that the store refuses them once the root key has changed.
    pub(crate) fn check(&self) -> &[u8] {
        &self.check
    }

    /// Changes the store's root key from this one to the key `new` names,
    /// in one transaction: every version's material, the check value and
    /// the token key are unwrapped and wrapped again under the new key,
    /// bound to their places, each token's hash is what `rebind_token`
    /// makes of it, and a passphrase gets a new salt (a key file, none).
    /// Nothing changes if any value does not unwrap under this key or is
    /// bound elsewhere. Returns how many versions were wrapped again.
    pub(crate) async fn change(
        &self,
        store: &dyn Store,
        new: &RootKekSource,
        rebind_token: RebindToken,
    ) -> Result<u64> {
        let (material, salt) = match new {
            RootKekSource::KeyFile(path) => (read_key_file(path)?, None),
            RootKekSource::Passphrase(passphrase) => {
                check_passphrase(passphrase)?;
                // Under the store's salt it would be the key in use: a new
                // salt would hide that the passphrase is not new.
                if let Some(salt) = store.setting(SALT_SETTING).await? {
                    let kek = KeyEncryptionKey::new(stretch(passphrase, &salt)?.expose_secret())?;
                    if kek.unwrap(&self.check).is_ok() {
                        return Err(same_key());
                    }
                }
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
            return Err(same_key());
        }
        let (old, successor, unbound) = (self.kek.clone(), new.clone(), self.unbound);
        // What an earlier release wrapped unbound comes out bound.
        let rewrap = move |what: Wrapped<'_>, wrapped: &[u8]| {
            let value = unwrap_bound(&old, what, wrapped, unbound).map_err(str::to_owned)?;
            // What is bound now must be the key its place says: an earlier
            // release's value is bound where it is found.
            if let Wrapped::Material { key_type, .. } = what {
                load_as(key_type, &value)?;
            }
            wrap_bound(&successor, what, &value)
                .map_err(|e| format!("cannot be wrapped under the new root key: {e}"))
        };
        let change = RootKeyChange {
            rewrap: Arc::new(rewrap),
            rebind_token,
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

    /// Wraps `value` for storage, bound to its place in the store.
    pub(crate) fn wrap(&self, place: Wrapped<'_>, value: &SecretBytes) -> Result<Vec<u8>> {
        wrap_bound(&self.kek, place, value)
    }

    /// Unwraps the value stored at `place`, refusing one bound elsewhere.
    pub(crate) fn unwrap(&self, place: Wrapped<'_>, wrapped: &[u8]) -> Result<SecretBytes> {
        unwrap_bound(&self.kek, place, wrapped, self.unbound)
            .map_err(|why| StoreError::Corrupt(format!("{place} {why}")).into())
    }
}

/// The check value's place.
const CHECK: Wrapped<'static> = Wrapped::Setting(CHECK_SETTING);
/// The token key's place.
pub(crate) const TOKEN_KEY: Wrapped<'static> = Wrapped::Setting(TOKEN_KEY_SETTING);

/// What begins every value wrapped under the root key, inside the wrap,
/// followed by the value's place in the store (a key's name and type, or a
/// setting's name): the wrap authenticates the place with the value, so
/// that whoever can write to the database, without the root key, cannot
/// move a value to another place (a key's material to another key, the
/// token key into a key's material). Values wrapped by earlier releases
/// have no such beginning: raw AES and HMAC keys are random bytes, which
/// begin so with a chance of 2^-128, and private keys are DER, which begins
/// with a SEQUENCE tag (0x30).
const BOUND: &[u8; 16] = b"fipsguard bound1";

/// The bytes that bind a value to `place`: each part preceded by its
/// length, so that no two places bind alike.
fn binding(place: Wrapped<'_>) -> Vec<u8> {
    let mut bytes = BOUND.to_vec();
    let mut part = |part: &[u8]| {
        bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bytes.extend_from_slice(part);
    };
    match place {
        Wrapped::Material { key, key_type, .. } => {
            part(b"material");
            part(key.as_bytes());
            part(key_type.as_bytes());
        }
        Wrapped::Setting(name) => {
            part(b"setting");
            part(name.as_bytes());
        }
    }
    bytes
}

fn wrap_bound(kek: &KeyEncryptionKey, place: Wrapped<'_>, value: &SecretBytes) -> Result<Vec<u8>> {
    let binding = binding(place);
    // Filled within its capacity: never moved, so no copy is left behind.
    let mut bound = Vec::with_capacity(binding.len() + value.len());
    bound.extend_from_slice(&binding);
    bound.extend_from_slice(value.expose_secret());
    Ok(kek.wrap(SecretBytes::new(bound).expose_secret())?)
}

/// The value stored at `place`, or why it is not taken (to follow the
/// place's name in a message).
fn unwrap_bound(
    kek: &KeyEncryptionKey,
    place: Wrapped<'_>,
    wrapped: &[u8],
    unbound: UnboundValues,
) -> std::result::Result<SecretBytes, &'static str> {
    let unwrapped = kek
        .unwrap(wrapped)
        .map_err(|_| "does not unwrap under the root key in use")?;
    match unbind(place, &unwrapped) {
        Found::Bound(value) => Ok(value),
        Found::Unbound if unbound == UnboundValues::AcceptToRebind => Ok(unwrapped),
        found => Err(found.reason(place)),
    }
}

/// What an unwrapped value turned out to be.
enum Found {
    /// Bound to the place asked for: the value.
    Bound(SecretBytes),
    /// Bound to another place.
    Elsewhere,
    /// Bound to no place (an earlier release wrapped it).
    Unbound,
}

impl Found {
    /// Why a value found at `place` is refused.
    fn reason(&self, place: Wrapped<'_>) -> &'static str {
        match (self, place) {
            (Self::Unbound, Wrapped::Setting(CHECK_SETTING)) => {
                "was wrapped by a release that did not bind values to their place in the store: \
                 change the root key once with `fipsguard rekey --bind-earlier-release`, which \
                 binds every value (docs/key-ceremony.md, \"Upgrading a store an earlier release wrote\")"
            }
            (Self::Unbound, _) => {
                "is bound to no place in a store whose values are bound, so the store was changed outside fipsguard"
            }
            _ => "is bound to another place in the store, so the store was changed outside fipsguard",
        }
    }
}

/// What `unwrapped` holds if it is bound to `place`.
fn unbind(place: Wrapped<'_>, unwrapped: &SecretBytes) -> Found {
    let value = unwrapped.expose_secret();
    match value.strip_prefix(binding(place).as_slice()) {
        Some(rest) => Found::Bound(SecretBytes::copy_from(rest)),
        None if value.starts_with(BOUND) => Found::Elsewhere,
        None => Found::Unbound,
    }
}

/// Whether `value` loads as a key of `key_type`; `Err` says why not.
fn load_as(key_type: &str, value: &SecretBytes) -> std::result::Result<(), String> {
    let loaded = key_type.parse::<KeyType>().and_then(|t| t.load(value));
    loaded
        .map(drop)
        .map_err(|e| format!("does not load as a {key_type} key ({e})"))
}

fn same_key() -> KmsError {
    KmsError::RootKek("the new root key is the one in use; nothing was changed".into())
}

/// Refuses a passphrase too short to stretch into a root key.
pub fn check_passphrase(passphrase: &SecretBytes) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn material<'a>(key: &'a str, key_type: &'a str) -> Wrapped<'a> {
        Wrapped::Material {
            key,
            key_type,
            version: Some(1),
        }
    }

    #[test]
    fn no_two_places_bind_alike() {
        let places = [
            material("ab", "c"),
            material("a", "bc"),
            material("ab", "cd"),
            Wrapped::Setting("ab"),
            Wrapped::Setting("abc"),
        ];
        for (i, a) in places.iter().enumerate() {
            for b in &places[i + 1..] {
                let (a, b) = (binding(*a), binding(*b));
                assert!(!a.starts_with(&b) && !b.starts_with(&a), "{a:?} {b:?}");
            }
        }
        // A version's number is not bound: the store numbers new versions.
        let other_version = Wrapped::Material {
            key: "ab",
            key_type: "c",
            version: None,
        };
        assert_eq!(binding(material("ab", "c")), binding(other_version));
    }

    #[test]
    fn a_value_is_found_at_its_own_place_only() {
        let kek = KeyEncryptionKey::new(&[7; 32]).unwrap();
        let value = SecretBytes::copy_from(&[9; 32]);
        let here = material("here", "aes256-gcm");
        let wrapped = wrap_bound(&kek, here, &value).unwrap();
        let take = |place, unbound| unwrap_bound(&kek, place, &wrapped, unbound);
        for unbound in [UnboundValues::Refuse, UnboundValues::AcceptToRebind] {
            assert_eq!(take(here, unbound).unwrap().expose_secret(), &[9; 32]);
            let elsewhere = take(material("there", "aes256-gcm"), unbound).unwrap_err();
            assert!(elsewhere.contains("bound to another place"), "{elsewhere}");
            let other_type = take(material("here", "hmac-sha256"), unbound).unwrap_err();
            assert!(
                other_type.contains("bound to another place"),
                "{other_type}"
            );
        }
        let earlier = kek.wrap(&[9; 32]).unwrap();
        let refused = unwrap_bound(&kek, here, &earlier, UnboundValues::Refuse).unwrap_err();
        assert!(refused.contains("bound to no place"), "{refused}");
        let taken = unwrap_bound(&kek, here, &earlier, UnboundValues::AcceptToRebind).unwrap();
        assert_eq!(taken.expose_secret(), &[9; 32]);
    }
}
