//! Store backends: file atomicity, permissions and refusals; memory; the record format.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn profile(name: &str) -> ProfileName {
    name.parse().unwrap()
}

fn session(token: &str, with_device: bool) -> StoredSession {
    StoredSession {
        refresh_token: RefreshToken::new(token),
        username: Some("0f1e-uuid".to_owned()),
        device: with_device.then(|| DeviceCredentials {
            device_key: "us-east-1_0123".to_owned(),
            device_group_key: "-group".to_owned(),
            device_password: DevicePassword::new("device-secret-pw"),
        }),
        rotates: None,
        refresh_unconfirmed: false,
        identity: with_device.then(|| StoredIdentity {
            pool_id: "us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f".to_owned(),
            identity_id: "us-east-1:11111111-2222-3333-4444-555555555555".to_owned(),
        }),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn file_store_round_trip_with_private_modes() {
    let state = tempfile::tempdir().unwrap();
    let store = FileStore::open(state.path()).unwrap();
    let dev = profile("dev");
    assert!(store.load(&dev).unwrap().is_none());
    store.save(&dev, &session("rt-one", true)).unwrap();
    let loaded = store.load(&dev).unwrap().unwrap();
    assert_eq!(loaded.refresh_token.expose_secret(), "rt-one");
    assert_eq!(loaded.username.as_deref(), Some("0f1e-uuid"));
    let device = loaded.device.unwrap();
    assert_eq!(device.device_key, "us-east-1_0123");
    assert_eq!(device.device_password.expose_secret(), "device-secret-pw");
    assert_eq!(
        loaded
            .identity
            .map(|identity| identity.identity_id)
            .as_deref(),
        Some("us-east-1:11111111-2222-3333-4444-555555555555")
    );

    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&store.dir().join("dev.json")), 0o600);
    // Replacing leaves exactly the session file and the lock file: no temp files.
    store.save(&dev, &session("rt-two", false)).unwrap();
    assert_eq!(entries(store.dir()), [".lock", "dev.json"]);
    let loaded = store.load(&dev).unwrap().unwrap();
    assert_eq!(loaded.refresh_token.expose_secret(), "rt-two");
    assert!(loaded.device.is_none());
    assert!(loaded.identity.is_none());

    let text = fs::read_to_string(store.dir().join("dev.json")).unwrap();
    assert!(text.contains("\"version\":1"), "{text}");

    store.erase(&dev).unwrap();
    store.erase(&dev).unwrap();
    assert!(store.load(&dev).unwrap().is_none());
    assert_eq!(entries(store.dir()), [".lock"]);
}

#[test]
fn file_store_refuses_readable_files_and_directories() {
    let state = tempfile::tempdir().unwrap();
    let store = FileStore::open(state.path()).unwrap();
    let dev = profile("dev");
    store
        .save(&dev, &session("zz-secret-token", false))
        .unwrap();
    let file = store.dir().join("dev.json");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let error = format!("{:#}", store.load(&dev).unwrap_err());
    assert!(
        error.contains("group or others can access it (mode 0644)"),
        "{error}"
    );
    assert!(error.contains("chmod 600"), "{error}");
    assert!(!error.contains("zz-secret-token"), "{error}");

    fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let error = format!("{:#}", FileStore::open(state.path()).unwrap_err());
    assert!(error.contains("mode 0755"), "{error}");
}

#[test]
fn file_store_refuses_symlinks() {
    let state = tempfile::tempdir().unwrap();
    let store = FileStore::open(state.path()).unwrap();
    let elsewhere = state.path().join("elsewhere.json");
    fs::write(&elsewhere, "{}").unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, store.dir().join("dev.json")).unwrap();
    assert!(store.load(&profile("dev")).is_err());
}

#[test]
fn a_crash_leftover_temp_file_is_removed_and_the_old_session_kept() {
    let state = tempfile::tempdir().unwrap();
    let store = FileStore::open(state.path()).unwrap();
    let dev = profile("dev");
    store.save(&dev, &session("complete", false)).unwrap();
    // What a kill between write and rename leaves: a truncated temp file.
    let leftover = store.dir().join(".dev.json.tmp-999-0");
    fs::write(&leftover, "{\"version\":1,\"refre").unwrap();
    let reopened = FileStore::open(state.path()).unwrap();
    assert!(!leftover.exists());
    assert_eq!(
        reopened
            .load(&dev)
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "complete"
    );
}

#[test]
fn a_profile_named_like_a_temp_file_keeps_its_session_across_restarts() {
    let state = tempfile::tempdir().unwrap();
    let store = FileStore::open(state.path()).unwrap();
    for name in [".x.tmp-y", ".dev.json.tmp-1-2", ".a.tmp-3-4"] {
        store.save(&profile(name), &session(name, false)).unwrap();
    }
    let reopened = FileStore::open(state.path()).unwrap();
    for name in [".x.tmp-y", ".dev.json.tmp-1-2", ".a.tmp-3-4"] {
        let kept = reopened.load(&profile(name)).unwrap();
        assert_eq!(
            kept.map(|s| s.refresh_token.expose_secret().to_owned())
                .as_deref(),
            Some(name),
            "the session of profile {name} survived"
        );
    }
}

#[test]
fn only_our_temp_file_names_count_as_stale() {
    for stale in [".dev.json.tmp-999-0", ".a.b.json.tmp-1-22"] {
        assert!(is_stale_temp(stale), "{stale}");
    }
    for kept in [
        ".x.tmp-y.json",
        ".dev.json.tmp-1-2.json",
        "dev.json.tmp-1-2",
        ".dev.json.tmp-1",
        ".dev.json.tmp-1-2-3",
        ".dev.json.tmp-a-2",
        ".dev.json.tmp--2",
    ] {
        assert!(!is_stale_temp(kept), "{kept}");
    }
}

#[test]
fn corrupt_and_foreign_records_are_refused_without_echoing_them() {
    let state = tempfile::tempdir().unwrap();
    let store = FileStore::open(state.path()).unwrap();
    let path = store.dir().join("dev.json");
    let write = |text: &str| {
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    };
    write("{\"version\":1,\"refresh_token\":\"secret-rt\",\"extra\":1}");
    let error = format!("{:#}", store.load(&profile("dev")).unwrap_err());
    assert!(error.contains("not a valid session record"), "{error}");
    assert!(!error.contains("secret-rt"), "{error}");
    write("{\"version\":2,\"refresh_token\":\"secret-rt\"}");
    let error = format!("{:#}", store.load(&profile("dev")).unwrap_err());
    assert!(error.contains("format version 2"), "{error}");
    write("{\"version\":1,\"refresh_token\":\"secret-r");
    assert!(store.load(&profile("dev")).is_err());
}

#[test]
fn memory_store_round_trip() {
    let store = MemoryStore::default();
    let dev = profile("dev");
    assert_eq!(store.kind(), "memory");
    assert!(store.load(&dev).unwrap().is_none());
    store.save(&dev, &session("m", true)).unwrap();
    assert_eq!(
        store
            .load(&dev)
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "m"
    );
    store.erase(&dev).unwrap();
    assert!(store.load(&dev).unwrap().is_none());
}

#[test]
fn open_memory_and_file_say_why() {
    let state = tempfile::tempdir().unwrap();
    let (store, why) = open(StoreKind::Memory, state.path()).unwrap();
    assert_eq!(store.kind(), "memory");
    assert!(why.contains("lost when the daemon stops"));
    let (store, why) = open(StoreKind::File, state.path()).unwrap();
    assert_eq!(store.kind(), "file");
    assert!(why.contains("sessions"), "{why}");
}

#[test]
fn auto_never_picks_memory() {
    let state = tempfile::tempdir().unwrap();
    let (store, why) = open(StoreKind::Auto, state.path()).unwrap();
    assert_ne!(store.kind(), "memory");
    assert!(why.contains("auto"), "{why}");
}

#[test]
fn debug_of_a_session_hides_secrets() {
    let shown = format!("{:?}", session("rt-secret-value", true));
    assert!(!shown.contains("rt-secret-value"), "{shown}");
    assert!(!shown.contains("device-secret-pw"), "{shown}");
}

#[test]
fn the_mock_keyring_is_refused() {
    // Process-global: from here on every keyring entry of this test binary is the mock, which
    // is exactly what the store must refuse (no real keyring is expected in tests anyway).
    keyring::set_default_credential_builder(keyring::mock::default_credential_builder());
    let error = format!("{:#}", KeyringStore::open().unwrap_err());
    assert!(error.contains("mock"), "{error}");
    let state = tempfile::tempdir().unwrap();
    let (store, why) = open(StoreKind::Auto, state.path()).unwrap();
    assert_eq!(store.kind(), "file");
    assert!(why.contains("mock"), "{why}");
}
