//! Where sessions live between runs: the OS keyring, 0600 files, or memory (design.md §7).
//!
//! This is the only code that touches the keyring or the session files, and the only place a
//! refresh token is serialised. Every backend's `save` is durable when it returns `Ok`.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use cognito_auth::DeviceCredentials;
use cognito_auth::secret::{DevicePassword, RefreshToken};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::{ProfileName, StoreKind};

/// The keyring service name of every entry cogbroker writes.
pub const KEYRING_SERVICE: &str = "cogbroker";
/// The version written into every stored record; records of other versions are refused.
pub const FORMAT_VERSION: u32 = 1;
/// How long the keyring probe (and any one keyring call) may take before the keyring counts as
/// unusable.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(10);

/// What survives a restart for one profile. Never holds the user's password.
#[derive(Clone)]
pub struct StoredSession {
    /// The refresh token (rotated ones replace it).
    pub refresh_token: RefreshToken,
    /// The internal username (`username` claim), needed for REFRESH_TOKEN_AUTH's SECRET_HASH.
    pub username: Option<String>,
    /// The remembered device, if any.
    pub device: Option<DeviceCredentials>,
    /// Whether this session's refresh tokens rotate, as learned from its last refresh (`None`
    /// before the first): a refresh may replace the stored token.
    pub rotates: Option<bool>,
    /// A refresh of a rotating session was sent and its result is not stored yet: the upstream
    /// may already hold a new refresh token and keep the old one only for its grace period, so
    /// a restart must refresh at once rather than wait for a caller.
    pub refresh_unconfirmed: bool,
    /// The identity-pool identity GetId gave this session's user (GetId is quota-limited: it is
    /// asked once per user, not per refresh nor per restart).
    pub identity: Option<StoredIdentity>,
}

/// An identity pool's identity id for the session's user, with the pool it belongs to (a
/// changed `identity_pool_id` asks GetId again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredIdentity {
    /// The identity pool, `<region>:<uuid>`.
    pub pool_id: String,
    /// The identity id, `<region>:<uuid>` (not a secret: it grants nothing without a login).
    pub identity_id: String,
}

impl StoredSession {
    /// A new session from a login: nothing known about rotation yet.
    pub fn new(
        refresh_token: RefreshToken,
        username: Option<String>,
        device: Option<DeviceCredentials>,
    ) -> Self {
        Self {
            refresh_token,
            username,
            device,
            rotates: None,
            refresh_unconfirmed: false,
            identity: None,
        }
    }
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("refresh_token", &self.refresh_token)
            .field("username", &self.username)
            .field("device", &self.device.as_ref().map(|d| &d.device_key))
            .field("rotates", &self.rotates)
            .field("refresh_unconfirmed", &self.refresh_unconfirmed)
            .field("identity", &self.identity)
            .finish()
    }
}

/// A place to keep sessions. Implementations block; call them off the async executor.
pub trait SecretStore: Send + Sync {
    /// "keyring", "file" or "memory".
    fn kind(&self) -> &'static str;
    /// The stored session of `profile`, if any.
    fn load(&self, profile: &ProfileName) -> anyhow::Result<Option<StoredSession>>;
    /// Stores `session`, replacing any previous one. Durable when it returns `Ok`.
    fn save(&self, profile: &ProfileName, session: &StoredSession) -> anyhow::Result<()>;
    /// Forgets `profile`'s session (no error if there was none).
    fn erase(&self, profile: &ProfileName) -> anyhow::Result<()>;
}

/// Opens the configured backend. Returns the store and a sentence saying why this backend was
/// chosen (for the startup log line and `status`). `auto` never picks `memory`.
pub fn open(kind: StoreKind, state_dir: &Path) -> anyhow::Result<(Arc<dyn SecretStore>, String)> {
    match kind {
        StoreKind::Memory => Ok((
            Arc::new(MemoryStore::default()),
            "memory store: sessions are lost when the daemon stops (tests and demos only)"
                .to_owned(),
        )),
        StoreKind::File => {
            let store = FileStore::open(state_dir)?;
            let reason = format!(
                "file store in {} (plaintext, mode 0600, as configured)",
                store.dir().display()
            );
            Ok((Arc::new(store), reason))
        }
        StoreKind::Keyring => {
            let store = KeyringStore::open().context(
                "the keyring is unusable (store = \"keyring\"); unlock it, or set store = \"file\"",
            )?;
            Ok((Arc::new(store), "keyring (probe succeeded)".to_owned()))
        }
        StoreKind::Auto => match KeyringStore::open() {
            Ok(store) => Ok((
                Arc::new(store),
                "keyring (auto: probe succeeded)".to_owned(),
            )),
            Err(error) => {
                let store = FileStore::open(state_dir)?;
                let reason = format!(
                    "file store in {} (auto: the keyring is unusable: {error:#}; tokens are kept in plaintext files, mode 0600)",
                    store.dir().display()
                );
                Ok((Arc::new(store), reason))
            }
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The serialised form (only here may a refresh token be serialised).

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    version: u32,
    refresh_token: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    device: Option<DeviceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotates: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    refresh_unconfirmed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<StoredIdentity>,
}

// Serde's `skip_serializing_if` takes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(value: &bool) -> bool {
    !*value
}

/// The keyring keeps the refresh token alone (Windows limits a blob to 2560 bytes) and this
/// metadata in a second entry.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaRecord {
    version: u32,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    device: Option<DeviceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotates: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    refresh_unconfirmed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<StoredIdentity>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceRecord {
    device_key: String,
    device_group_key: String,
    device_password: String,
}

impl Drop for DeviceRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.device_password);
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.refresh_token);
    }
}

fn device_record(device: &DeviceCredentials) -> DeviceRecord {
    DeviceRecord {
        device_key: device.device_key.clone(),
        device_group_key: device.device_group_key.clone(),
        device_password: device.device_password.expose_secret().to_owned(),
    }
}

fn device_from_record(record: &DeviceRecord) -> DeviceCredentials {
    DeviceCredentials {
        device_key: record.device_key.clone(),
        device_group_key: record.device_group_key.clone(),
        device_password: DevicePassword::new(record.device_password.clone()),
    }
}

/// A temp file [`FileStore`] writes: exactly `.{profile}.json.tmp-{pid}-{n}`. A session file
/// always ends in `.json`, so no profile name (even `.x.tmp-y`) is ever taken for one.
fn is_stale_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some((_, suffix)) = rest.rsplit_once(".json.tmp-") else {
        return false;
    };
    let mut parts = suffix.split('-');
    let digits = |part: Option<&str>| {
        part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

fn encode_record(session: &StoredSession) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let record = Record {
        version: FORMAT_VERSION,
        refresh_token: session.refresh_token.expose_secret().to_owned(),
        username: session.username.clone(),
        device: session.device.as_ref().map(device_record),
        rotates: session.rotates,
        refresh_unconfirmed: session.refresh_unconfirmed,
        identity: session.identity.clone(),
    };
    Ok(Zeroizing::new(
        serde_json::to_vec(&record).context("cannot encode the session")?,
    ))
}

fn decode_record(bytes: &[u8], what: &str) -> anyhow::Result<StoredSession> {
    let record: Record = serde_json::from_slice(bytes).map_err(|error| {
        anyhow!(
            "{what} is not a valid session record ({})",
            error.classify_name()
        )
    })?;
    if record.version != FORMAT_VERSION {
        bail!(
            "{what} has format version {}, this cogbroker reads version {FORMAT_VERSION}",
            record.version
        );
    }
    if record.refresh_token.is_empty() {
        bail!("{what} holds an empty refresh token");
    }
    Ok(StoredSession {
        refresh_token: RefreshToken::new(record.refresh_token.clone()),
        username: record.username.clone(),
        device: record.device.as_ref().map(device_from_record),
        rotates: record.rotates,
        refresh_unconfirmed: record.refresh_unconfirmed,
        identity: record.identity.clone(),
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    /// The error category only: serde_json's message can quote input, which here is a secret.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected fields or types",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory.

/// Sessions in memory: lost at exit. For tests and `store = "memory"`.
#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<ProfileName, StoredSession>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl SecretStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn load(&self, profile: &ProfileName) -> anyhow::Result<Option<StoredSession>> {
        Ok(self.lock().get(profile).cloned())
    }

    fn save(&self, profile: &ProfileName, session: &StoredSession) -> anyhow::Result<()> {
        self.lock().insert(profile.clone(), session.clone());
        Ok(())
    }

    fn erase(&self, profile: &ProfileName) -> anyhow::Result<()> {
        self.lock().remove(profile);
        Ok(())
    }
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProfileName, StoredSession>> {
        // A panic while holding this lock cannot leave the map half-updated (single insert or
        // remove), so a poisoned lock is still consistent.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

// ---------------------------------------------------------------------------------------------
// Files.

/// One 0600 JSON file per profile in a 0700 directory (`STATE_DIR/sessions`), written
/// atomically (O_EXCL temp file in the same directory, fsync, rename, fsync of the directory)
/// under an `flock` so a CLI and a daemon never interleave.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileStore {
    /// Opens (creating if needed) `STATE_DIR/sessions`. Refuses a directory that is not ours or
    /// that group or others can access, and removes temp files a crash left behind.
    pub fn open(state_dir: &Path) -> anyhow::Result<Self> {
        let dir = state_dir.join("sessions");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create the session directory {}", dir.display()))?;
        let meta = fs::symlink_metadata(&dir)
            .with_context(|| format!("cannot inspect {}", dir.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        check_private(&meta, &dir, "chmod 700")?;
        let store = Self { dir };
        store.remove_stale_temps()?;
        Ok(store)
    }

    /// The directory holding the session files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, profile: &ProfileName) -> PathBuf {
        self.dir.join(format!("{profile}.json"))
    }

    fn lock(&self) -> anyhow::Result<File> {
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nofollow())
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("cannot lock {}", path.display()))?;
        // The lock is released when the returned file is closed.
        Ok(file)
    }

    fn remove_stale_temps(&self) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        for entry in fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_stale_temp(&name) {
                fs::remove_file(entry.path()).with_context(|| {
                    format!(
                        "cannot remove the stale temp file {}",
                        entry.path().display()
                    )
                })?;
            }
        }
        Ok(())
    }

    fn sync_dir(&self) -> anyhow::Result<()> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot fsync {}", self.dir.display()))
    }

    fn write_atomically(&self, target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let file_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = self.dir.join(format!(
            ".{file_name}.tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| -> anyhow::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nofollow())
                .open(&temp)
                .with_context(|| format!("cannot create {}", temp.display()))?;
            file.write_all(bytes)
                .with_context(|| format!("cannot write {}", temp.display()))?;
            file.sync_all()
                .with_context(|| format!("cannot fsync {}", temp.display()))?;
            fs::rename(&temp, target).with_context(|| {
                format!("cannot rename {} to {}", temp.display(), target.display())
            })?;
            self.sync_dir()
        })();
        if result.is_err() {
            // Best effort: the temp file may not exist (create failed) or be already renamed.
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

fn nofollow() -> i32 {
    // O_NOFOLLOW fits in an i32 on every platform (it is a small flag bit).
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn check_private(meta: &fs::Metadata, path: &Path, fix: &str) -> anyhow::Result<()> {
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        bail!(
            "refusing to use {}: it is owned by uid {}, not by us (uid {uid})",
            path.display(),
            meta.uid()
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "refusing to use {}: group or others can access it (mode {mode:04o}); run `{fix} {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

impl SecretStore for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn load(&self, profile: &ProfileName) -> anyhow::Result<Option<StoredSession>> {
        let path = self.path(profile);
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(nofollow())
            .open(&path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot open {}", path.display()));
            }
        };
        let meta = file
            .metadata()
            .with_context(|| format!("cannot inspect {}", path.display()))?;
        if !meta.is_file() {
            bail!("refusing to read {}: not a regular file", path.display());
        }
        check_private(&meta, &path, "chmod 600")?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        decode_record(&bytes, &path.display().to_string()).map(Some)
    }

    fn save(&self, profile: &ProfileName, session: &StoredSession) -> anyhow::Result<()> {
        let bytes = encode_record(session)?;
        let _lock = self.lock()?;
        self.write_atomically(&self.path(profile), &bytes)
    }

    fn erase(&self, profile: &ProfileName) -> anyhow::Result<()> {
        let path = self.path(profile);
        let _lock = self.lock()?;
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keyring.

type KeyringJob = Box<dyn FnOnce() + Send>;

/// All keyring calls run on one dedicated thread, one at a time (keyring-rs: concurrent access
/// to a credential can fail, and the async Secret Service deadlocks on a runtime thread).
fn keyring_thread() -> &'static Mutex<SyncSender<KeyringJob>> {
    static SENDER: OnceLock<Mutex<SyncSender<KeyringJob>>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (sender, receiver) = mpsc::sync_channel::<KeyringJob>(64);
        std::thread::Builder::new()
            .name("cogbroker-keyring".to_owned())
            .spawn(move || {
                while let Ok(job) = receiver.recv() {
                    job();
                }
            })
            // Without a thread there is no keyring; failing to spawn one means the process is
            // out of resources, which nothing later could recover from either.
            .expect("cannot spawn the keyring thread");
        Mutex::new(sender)
    })
}

/// Runs `job` on the keyring thread and waits (blocking) for its result, at most
/// [`KEYRING_TIMEOUT`].
fn on_keyring_thread<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (reply, answer) = mpsc::sync_channel(1);
    let boxed: KeyringJob = Box::new(move || {
        let _ = reply.send(job());
    });
    keyring_thread()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        // Never block here: a call stuck behind an unlock prompt (dbus-secret-service waits
        // for one indefinitely) would otherwise fill the queue and then hang every later
        // caller while it holds this lock, shutdown included.
        .try_send(boxed)
        .map_err(|error| match error {
            mpsc::TrySendError::Full(_) => anyhow!(
                "the keyring is busy: earlier calls have not returned (a locked keyring waiting for an unlock prompt?)"
            ),
            mpsc::TrySendError::Disconnected(_) => anyhow!("the keyring thread is gone"),
        })?;
    answer.recv_timeout(KEYRING_TIMEOUT).map_err(|_| {
        anyhow!(
            "the keyring did not answer within {}s",
            KEYRING_TIMEOUT.as_secs()
        )
    })
}

/// Reads a user-provided secret (a `{ keyring = true }` source) from the keyring: service
/// "cogbroker", user `account`. `Ok(None)` when there is no such entry.
pub async fn keyring_secret(account: &str) -> anyhow::Result<Option<String>> {
    let account = account.to_owned();
    tokio::task::spawn_blocking(move || {
        ensure_persistent_keyring()?;
        on_keyring_thread(move || -> anyhow::Result<Option<String>> {
            let entry = keyring::Entry::new(KEYRING_SERVICE, &account)
                .map_err(|error| anyhow!("keyring entry {account:?}: {error}"))?;
            match entry.get_password() {
                Ok(value) => Ok(Some(value)),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(error) => Err(anyhow!("keyring read of {account:?} failed: {error}")),
            }
        })?
    })
    .await
    .map_err(|_| anyhow!("the keyring lookup was cancelled"))?
}

fn ensure_persistent_keyring() -> anyhow::Result<()> {
    let persistence = keyring::default::default_credential_builder().persistence();
    if matches!(
        persistence,
        keyring::credential::CredentialPersistence::EntryOnly
    ) {
        bail!("this build has no real keyring backend (only the mock store)");
    }
    Ok(())
}

/// The OS keyring (Secret Service on Linux). Per profile two entries under service
/// "cogbroker": user `NAME` holds the refresh token alone, user `NAME/session` a JSON record of
/// the username and device (so the token fits Windows' 2560-byte blob limit).
#[derive(Debug)]
pub struct KeyringStore {
    _private: (),
}

impl KeyringStore {
    /// Checks the active backend persists (not the mock) and probes it with a set, get and
    /// delete of a throwaway entry.
    pub fn open() -> anyhow::Result<Self> {
        ensure_persistent_keyring()?;
        let probe_user = format!("probe-{}", std::process::id());
        on_keyring_thread(move || -> anyhow::Result<()> {
            let entry = keyring::Entry::new(KEYRING_SERVICE, &probe_user)
                .map_err(|error| anyhow!("cannot create a probe entry: {error}"))?;
            if entry
                .get_credential()
                .downcast_ref::<keyring::mock::MockCredential>()
                .is_some()
            {
                bail!("the active keyring backend is the in-memory mock");
            }
            let value = b"cogbroker keyring probe";
            entry
                .set_secret(value)
                .map_err(|error| anyhow!("probe write failed: {error}"))?;
            let read = entry
                .get_secret()
                .map_err(|error| anyhow!("probe read failed: {error}"))?;
            let deleted = entry.delete_credential();
            if read != value {
                bail!("probe read back a different value");
            }
            deleted.map_err(|error| anyhow!("probe delete failed: {error}"))?;
            Ok(())
        })??;
        Ok(Self { _private: () })
    }
}

fn keyring_entry(user: &str) -> anyhow::Result<keyring::Entry> {
    keyring::Entry::new(KEYRING_SERVICE, user)
        .map_err(|error| anyhow!("keyring entry {user:?}: {error}"))
}

impl SecretStore for KeyringStore {
    fn kind(&self) -> &'static str {
        "keyring"
    }

    fn load(&self, profile: &ProfileName) -> anyhow::Result<Option<StoredSession>> {
        let name = profile.to_string();
        on_keyring_thread(move || -> anyhow::Result<Option<StoredSession>> {
            let token = match keyring_entry(&name)?.get_secret() {
                Ok(bytes) => Zeroizing::new(bytes),
                Err(keyring::Error::NoEntry) => return Ok(None),
                Err(error) => bail!("keyring read for profile {name} failed: {error}"),
            };
            let token = String::from_utf8(token.to_vec())
                .map_err(|_| anyhow!("the keyring entry of profile {name} is not UTF-8"))?;
            let meta = match keyring_entry(&format!("{name}/session"))?.get_secret() {
                Ok(bytes) => {
                    let meta: MetaRecord = serde_json::from_slice(&bytes).map_err(|error| {
                        anyhow!(
                            "the keyring session record of profile {name} is invalid ({})",
                            error.classify_name()
                        )
                    })?;
                    if meta.version != FORMAT_VERSION {
                        bail!(
                            "the keyring session record of profile {name} has format version {}",
                            meta.version
                        );
                    }
                    Some(meta)
                }
                Err(keyring::Error::NoEntry) => None,
                Err(error) => bail!("keyring read for profile {name} failed: {error}"),
            };
            Ok(Some(StoredSession {
                refresh_token: RefreshToken::new(token),
                username: meta.as_ref().and_then(|m| m.username.clone()),
                device: meta
                    .as_ref()
                    .and_then(|m| m.device.as_ref().map(device_from_record)),
                rotates: meta.as_ref().and_then(|m| m.rotates),
                refresh_unconfirmed: meta.as_ref().is_some_and(|m| m.refresh_unconfirmed),
                identity: meta.as_ref().and_then(|m| m.identity.clone()),
            }))
        })?
    }

    fn save(&self, profile: &ProfileName, session: &StoredSession) -> anyhow::Result<()> {
        let name = profile.to_string();
        let meta = Zeroizing::new(
            serde_json::to_vec(&MetaRecord {
                version: FORMAT_VERSION,
                username: session.username.clone(),
                device: session.device.as_ref().map(device_record),
                rotates: session.rotates,
                refresh_unconfirmed: session.refresh_unconfirmed,
                identity: session.identity.clone(),
            })
            .context("cannot encode the session record")?,
        );
        let token = Zeroizing::new(session.refresh_token.expose_secret().as_bytes().to_vec());
        on_keyring_thread(move || -> anyhow::Result<()> {
            // The metadata first: the refresh token entry is the commit point of a session.
            keyring_entry(&format!("{name}/session"))?
                .set_secret(&meta)
                .map_err(|error| anyhow!("keyring write for profile {name} failed: {error}"))?;
            keyring_entry(&name)?
                .set_secret(&token)
                .map_err(|error| anyhow!("keyring write for profile {name} failed: {error}"))
        })?
    }

    fn erase(&self, profile: &ProfileName) -> anyhow::Result<()> {
        let name = profile.to_string();
        on_keyring_thread(move || -> anyhow::Result<()> {
            for user in [name.clone(), format!("{name}/session")] {
                match keyring_entry(&user)?.delete_credential() {
                    Ok(()) | Err(keyring::Error::NoEntry) => {}
                    Err(error) => bail!("keyring delete for profile {name} failed: {error}"),
                }
            }
            Ok(())
        })?
    }
}

#[cfg(test)]
mod tests;
