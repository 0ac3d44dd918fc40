//! Config parsing and validation: defaults, overrides, and an error table (file, line, key).

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.entry("HOME".to_owned())
        .or_insert_with(|| "/home/alice".to_owned());
    map
}

const GOOD: &str = r#"
[daemon]
listen = "127.0.0.1:7467"
socket = "auto"
store = "file"

[profiles.dev]
region = "eu-west-1"
user_pool_id = "eu-west-1_AbCdEf123"
client_id = "4k2j7c0q9s8m1n3b5v6x7z8a9d"
client_secret = { env = "DEV_CLIENT_SECRET" }
username = "alice@example.com"
auth_flow = "USER_SRP_AUTH"
password = { command = "pass show cognito/alice" }
remember_device = true
endpoint = "http://127.0.0.1:9229"
refresh_before = "5m"
"#;

fn parse_ok(text: &str, env: &BTreeMap<String, String>) -> Config {
    match parse(text, Path::new("/etc/cb.toml"), env) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

#[test]
fn the_design_example_parses() {
    let config = parse_ok(GOOD, &env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]));
    assert_eq!(
        config.daemon.listen,
        Listen::Tcp("127.0.0.1:7467".parse().unwrap())
    );
    assert_eq!(
        config.daemon.socket,
        SocketSetting::Path("/run/user/1000/cogbroker/cogbroker.sock".into())
    );
    assert_eq!(config.daemon.store, StoreKind::File);
    assert_eq!(
        config.daemon.state_dir,
        Path::new("/home/alice/.local/state/cogbroker")
    );
    assert_eq!(config.daemon.log, "info");
    let dev = &config.profiles[&"dev".parse::<ProfileName>().unwrap()];
    assert_eq!(dev.region, "eu-west-1");
    assert_eq!(
        dev.user_pool_id.as_ref().map(UserPoolId::as_str),
        Some("eu-west-1_AbCdEf123")
    );
    assert!(
        matches!(&dev.client_secret, Some(SecretSource::Env(name)) if name == "DEV_CLIENT_SECRET")
    );
    assert!(matches!(&dev.password, Some(SecretSource::Command(_))));
    assert_eq!(dev.auth_flow, AuthFlow::UserSrp);
    assert_eq!(dev.refresh_before, Some(Duration::from_secs(300)));
    assert_eq!(
        dev.endpoint.as_ref().unwrap().as_str(),
        "http://127.0.0.1:9229/"
    );
    assert!(dev.remember_device);
    assert!(config.warnings.is_empty());
}

#[test]
fn defaults_of_an_empty_file() {
    let config = parse_ok(
        "",
        &env(&[
            ("XDG_STATE_HOME", "/var/state"),
            ("XDG_RUNTIME_DIR", "/run/user/7"),
        ]),
    );
    assert_eq!(
        config.daemon.listen,
        Listen::Tcp("127.0.0.1:7467".parse().unwrap())
    );
    assert_eq!(config.daemon.store, StoreKind::Auto);
    assert_eq!(config.daemon.state_dir, Path::new("/var/state/cogbroker"));
    assert_eq!(
        config.daemon.socket,
        SocketSetting::Path("/run/user/7/cogbroker/cogbroker.sock".into())
    );
    assert!(config.profiles.is_empty());
}

#[test]
fn minimal_profile_defaults() {
    let text = r#"
[profiles.p]
user_pool_id = "us-east-1_Demo1"
client_id = "demo-public"
username = "demo"
"#;
    let config = parse_ok(text, &env(&[]));
    let profile = config.profiles.values().next().unwrap();
    assert_eq!(profile.region, "us-east-1");
    assert_eq!(profile.auth_flow, AuthFlow::UserSrp);
    assert_eq!(profile.auth_flow_name, "USER_SRP_AUTH");
    assert!(profile.remember_device);
    assert!(profile.client_secret.is_none() && profile.password.is_none());
    assert_eq!(profile.endpoint_variant, EndpointVariant::Standard);
    assert!(profile.refresh_before.is_none());
}

#[test]
fn env_overrides_the_daemon_table() {
    let config = parse_ok(
        GOOD,
        &env(&[
            ("COGBROKER_LISTEN", "off"),
            ("COGBROKER_SOCKET", "/tmp/x.sock"),
            ("COGBROKER_STORE", "memory"),
            ("COGBROKER_STATE_DIR", "~/st"),
            ("COGBROKER_LOG", "cogbroker=debug,warn"),
        ]),
    );
    assert_eq!(config.daemon.listen, Listen::Off);
    assert_eq!(
        config.daemon.socket,
        SocketSetting::Path("/tmp/x.sock".into())
    );
    assert_eq!(config.daemon.store, StoreKind::Memory);
    assert_eq!(config.daemon.state_dir, Path::new("/home/alice/st"));
    assert_eq!(config.daemon.log, "cogbroker=debug,warn");
}

#[test]
fn a_bad_env_override_names_the_variable() {
    let errors = parse(
        GOOD,
        Path::new("/etc/cb.toml"),
        &env(&[("COGBROKER_LISTEN", "0.0.0.0:80")]),
    )
    .unwrap_err();
    assert_eq!(errors.0.len(), 1);
    let error = &errors.0[0];
    assert_eq!(error.path, "environment");
    assert_eq!(error.key, "COGBROKER_LISTEN");
    assert!(error.message.contains("not a loopback"), "{error}");
}

/// (what, toml, line, key, part of the message)
#[rustfmt::skip]
const ERRORS: &[(&str, &str, usize, &str, &str)] = &[
    ("unknown top-level key", "\n\nbogus = 1\n", 3, "bogus", "unknown field"),
    ("unknown daemon key", "[daemon]\nlisten = \"off\"\nport = 9\n", 3, "daemon.port", "unknown field"),
    ("non-loopback listen", "[daemon]\n\nlisten = \"0.0.0.0:7467\"\n", 3, "daemon.listen", "not a loopback address"),
    ("listen not an address", "[daemon]\nlisten = \"localhost\"\n", 2, "daemon.listen", "not an address:port"),
    ("bad store", "[daemon]\nstore = \"vault\"\n", 2, "daemon.store", "allowed: \"auto\", \"keyring\", \"file\", \"memory\""),
    ("relative socket", "[daemon]\nsocket = \"x.sock\"\n", 2, "daemon.socket", "not an absolute path"),
    ("relative state dir", "[daemon]\nstate_dir = \"state\"\n", 2, "daemon.state_dir", "not an absolute path"),
    ("bad log filter", "[daemon]\nlog = \"info,,=[\"\n", 2, "daemon.log", "invalid log filter"),
    ("syntax error", "[daemon\nlisten = 1\n", 1, "daemon", ""),
    ("wrong type", "[daemon]\nlisten = 7467\n", 2, "daemon.listen", "invalid type"),
    ("missing pool id", "[profiles.a]\nclient_id = \"c\"\nusername = \"u\"\n", 1, "profiles.a.user_pool_id", "missing `user_pool_id`"),
    ("unknown grant", "[profiles.a]\ngrant = \"implicit\"\nclient_id = \"c\"\n", 2, "profiles.a.grant", "allowed: \"user_pool\" (default), \"client_credentials\""),
    ("machine client without domain", "[profiles.a]\ngrant = \"client_credentials\"\nclient_id = \"c\"\nclient_secret = { env = \"S\" }\n", 1, "profiles.a.domain", "needs `domain`"),
    ("machine client without secret", "[profiles.a]\ngrant = \"client_credentials\"\ndomain = \"https://x.auth.eu-west-1.amazoncognito.com\"\nclient_id = \"c\"\n", 1, "profiles.a.client_secret", "needs `client_secret`"),
    ("machine client with an identity pool", "[profiles.a]\ngrant = \"client_credentials\"\ndomain = \"https://x.auth.eu-west-1.amazoncognito.com\"\nclient_id = \"c\"\nclient_secret = { env = \"S\" }\nidentity_pool_id = \"eu-west-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nlogins_provider = \"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc\"\n", 1, "profiles.a.identity_pool_id", "client_credentials issues none"),
    ("machine client with a username", "[profiles.a]\ngrant = \"client_credentials\"\ndomain = \"https://x.auth.eu-west-1.amazoncognito.com\"\nclient_id = \"c\"\nclient_secret = { env = \"S\" }\nusername = \"u\"\n", 6, "profiles.a.username", "has no username"),
    ("plain http domain", "[profiles.a]\ngrant = \"authorization_code\"\ndomain = \"http://example.com\"\nclient_id = \"c\"\n", 3, "profiles.a.domain", "plain http"),
    ("remote redirect", "[profiles.a]\ngrant = \"authorization_code\"\ndomain = \"https://x.example.com\"\nclient_id = \"c\"\nredirect_uri = \"https://app.example.com/cb\"\n", 5, "profiles.a.redirect_uri", "must be http on localhost"),
    ("redirect without port", "[profiles.a]\ngrant = \"authorization_code\"\ndomain = \"https://x.example.com\"\nclient_id = \"c\"\nredirect_uri = \"http://localhost/cb\"\n", 5, "profiles.a.redirect_uri", "explicit port"),
    ("domain on a user pool profile", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\ndomain = \"https://x.example.com\"\n", 5, "profiles.a.domain", "belongs to the OAuth grants"),
    ("sink with dotdot", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\n[[profiles.a.sinks]]\npath = \"/tmp/../etc/t\"\n", 6, "profiles.a.sinks.path", "no `.` or `..`"),
    ("passwordless without USER_AUTH", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\npreferred_challenge = \"EMAIL_OTP\"\n", 5, "profiles.a.preferred_challenge", "needs auth_flow = \"USER_AUTH\""),
    ("unknown first factor", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nauth_flow = \"USER_AUTH\"\npreferred_challenge = \"WEB_AUTHN\"\n", 6, "profiles.a.preferred_challenge", "unknown first factor"),
    ("bad pool id", "[profiles.a]\nuser_pool_id = \"nope\"\nclient_id = \"c\"\nusername = \"u\"\n", 2, "profiles.a.user_pool_id", "expected REGION_NAME"),
    ("region mismatch", "[profiles.a]\nregion = \"eu-west-1\"\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\n", 2, "profiles.a.region", "does not match"),
    ("bad flow", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nauth_flow = \"MAGIC\"\n", 5, "profiles.a.auth_flow", "allowed: \"USER_SRP_AUTH\""),
    ("literal password", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\npassword = \"hunter2\"\n", 5, "profiles.a.password", "a literal value is not allowed"),
    ("two secret forms", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nclient_secret = { env = \"A\", command = \"b\" }\n", 5, "profiles.a.client_secret", "exactly one of"),
    ("keyring false", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nclient_secret = { keyring = false }\n", 5, "profiles.a.client_secret", "must be `true`"),
    ("unknown secret form", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\npassword = { file = \"/x\" }\n", 5, "profiles.a.password", "unknown secret source `file`"),
    ("bad endpoint", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nendpoint = \"ftp://x\"\n", 5, "profiles.a.endpoint", "not an http(s) URL"),
    ("bare number duration", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nrefresh_before = \"300\"\n", 5, "profiles.a.refresh_before", "with a unit"),
    ("zero duration", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nrefresh_before = \"0s\"\n", 5, "profiles.a.refresh_before", "between 1s and 24h"),
    ("bad variant", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nendpoint_variant = \"fast\"\n", 5, "profiles.a.endpoint_variant", "\"fips\""),
    ("bad profile name", "[profiles.\"a b\"]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\n", 1, "profiles.a b", "may only contain"),
    ("dot-dot profile", "[profiles.\"..\"]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\n", 1, "profiles...", "not allowed"),
    ("empty username", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \" \"\n", 4, "profiles.a.username", "must not be empty"),
    ("bad client id", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c d\"\nusername = \"u\"\n", 3, "profiles.a.client_id", "letters, digits"),
    ("unknown profile key", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nmfa = \"totp\"\n", 5, "profiles.a.mfa", "unknown field"),
    ("missing profile key", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nusername = \"u\"\n", 1, "profiles.a.client_id", "missing field"),
    ("wrong profile type", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nremember_device = \"yes\"\n", 5, "profiles.a.remember_device", "invalid type"),
    ("daemon typo", "[daemon]\nlsten = \"127.0.0.1:1\"\n", 2, "daemon.lsten", "unknown field"),
    ("host with a scheme", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nhosts = [\"https://git.example.com\"]\n", 5, "profiles.a.hosts", "is not a host"),
    ("host with a bad port", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nhosts = [\"ok.example.com\",\n  \"r.example.com:99999\"]\n", 6, "profiles.a.hosts", "is not a host"),
    ("host twice", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nhosts = [\"a.example.com\", \"A.example.com\"]\n", 5, "profiles.a.hosts", "listed twice"),
    ("unknown token kind", "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\ntoken_kind = \"refresh\"\n", 5, "profiles.a.token_kind", "allowed: \"access\", \"id\""),
    ("autostart not a boolean", "[daemon]\nautostart = \"no\"\n", 2, "daemon.autostart", "invalid type"),
];

#[test]
fn error_table() {
    for (what, text, line, key, message) in ERRORS {
        let errors = match parse(text, Path::new("/etc/cb.toml"), &env(&[])) {
            Ok(_) => panic!("{what}: parsed"),
            Err(errors) => errors,
        };
        let error = &errors.0[0];
        assert_eq!(error.path, "/etc/cb.toml", "{what}");
        assert_eq!(error.line, Some(*line), "{what}: {error}");
        assert_eq!(error.key, *key, "{what}: {error}");
        assert!(error.message.contains(message), "{what}: {error}");
        let shown = errors.to_string();
        assert!(
            shown.starts_with(&format!("invalid configuration: /etc/cb.toml:{line}: ")),
            "{what}: {shown}"
        );
        assert!(!shown.contains("hunter2"), "{what}: {shown}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = "[daemon]\nlisten = \"10.0.0.1:1\"\nstore = \"x\"\n[profiles.a]\nuser_pool_id = \"bad\"\nclient_id = \"c\"\nusername = \"u\"\n";
    let errors = parse(text, Path::new("c.toml"), &env(&[])).unwrap_err();
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["daemon.listen", "daemon.store", "profiles.a.user_pool_id"]
    );
}

#[test]
fn a_literal_secret_in_a_readable_file_warns() {
    let text = "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nclient_secret = \"s3cr3t-value\"\n";
    let config = parse_with(text, Path::new("/c.toml"), &env(&[]), true).unwrap();
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].contains("/c.toml:5: profiles.a.client_secret"),
        "{}",
        config.warnings[0]
    );
    assert!(!config.warnings[0].contains("s3cr3t"));
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    let quiet = parse_with(text, Path::new("/c.toml"), &env(&[]), false).unwrap();
    assert!(quiet.warnings.is_empty());
}

#[test]
fn load_reads_the_file_and_checks_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nclient_secret = \"s\"\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(load(&path, &env(&[])).unwrap().warnings.len(), 1);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(load(&path, &env(&[])).unwrap().warnings.is_empty());
    let missing = dir.path().join("missing.toml");
    let error = load(&missing, &env(&[])).unwrap_err().to_string();
    assert!(error.contains("missing.toml"), "{error}");
    assert!(
        load_or_default(&missing, &env(&[]))
            .unwrap()
            .profiles
            .is_empty()
    );
}

#[test]
fn default_path_order() {
    assert_eq!(
        default_path(&env(&[("COGBROKER_CONFIG", "/x.toml")])),
        Path::new("/x.toml")
    );
    assert_eq!(
        default_path(&env(&[("XDG_CONFIG_HOME", "/cfg")])),
        Path::new("/cfg/cogbroker/config.toml")
    );
    assert_eq!(
        default_path(&env(&[])),
        Path::new("/home/alice/.config/cogbroker/config.toml")
    );
}

#[test]
fn durations() {
    let ok = [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172_800),
        (" 10 s ", 10),
        ("1m 30s", 90),
    ];
    for (text, seconds) in ok {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(seconds)),
            "{text}"
        );
    }
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    for bad in ["", "5", "m", "5x", "-5s", "1.5m", "99999999999999999999d"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_socket_path_too_long_for_sun_path_is_refused() {
    let long = format!("/{}/s.sock", "d".repeat(120));
    let text = format!("[daemon]\nsocket = \"{long}\"\n");
    let errors = parse(&text, Path::new("c.toml"), &env(&[])).unwrap_err();
    assert_eq!(errors.0[0].key, "daemon.socket");
    assert_eq!(errors.0[0].line, Some(2));
    assert!(errors.0[0].message.contains("at most 107"), "{errors}");
}

#[test]
fn listen_values() {
    assert_eq!(parse_listen("off"), Ok(Listen::Off));
    assert_eq!(
        parse_listen("localhost:80"),
        Ok(Listen::Tcp("127.0.0.1:80".parse().unwrap()))
    );
    assert_eq!(
        parse_listen("[::1]:0"),
        Ok(Listen::Tcp("[::1]:0".parse().unwrap()))
    );
    assert!(parse_listen("[::]:1").is_err());
    assert!(parse_listen("192.168.1.1:1").is_err());
}

const ONE_PROFILE: &str =
    "[profiles.dev]\nuser_pool_id = \"eu-west-1_AbCdEf123\"\nclient_id = \"c\"\nusername = \"u\"\n";

fn write_config(dir: &Path, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("config.toml");
    std::fs::write(&path, ONE_PROFILE).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn a_config_file_others_may_write_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o666, 0o620, 0o602] {
        let path = write_config(dir.path(), mode);
        let error = load(&path, &env(&[])).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("refusing the config file {}", path.display())),
            "{error}"
        );
        assert!(error.contains("chmod go-w"), "{error}");
        assert!(error.contains(&format!("mode {:04o}", mode)), "{error}");
    }
    for mode in [0o600, 0o644, 0o400] {
        let path = write_config(dir.path(), mode);
        load(&path, &env(&[])).unwrap_or_else(|e| panic!("mode {mode:o}: {e:#}"));
    }
}

#[test]
fn a_config_file_in_a_directory_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 0o600);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = load(&path, &env(&[])).unwrap_err().to_string();
    assert!(error.contains("its directory"), "{error}");
    assert!(error.contains("mode 0777"), "{error}");
    // A sticky directory (like /tmp) lets nobody replace another user's file.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    load(&path, &env(&[])).unwrap();
}

#[test]
fn a_config_file_of_another_owner_is_refused() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 0o600);
    let me = rustix::process::geteuid().as_raw();
    let (error, owner) = if me == 0 {
        // As root (CI): the file really belongs to another user, and load refuses it.
        let other = 4242;
        std::os::unix::fs::chown(&path, Some(other), None).unwrap();
        (load(&path, &env(&[])).unwrap_err().to_string(), other)
    } else {
        // Not root, a file cannot be given away: check it as a uid that owns neither it nor is
        // root would.
        let meta = std::fs::metadata(&path).unwrap();
        let other = meta.uid() + 4242;
        let error = check_ownership(&path, &meta, other)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("not to you (uid {other})")),
            "{error}"
        );
        (error, meta.uid())
    };
    assert!(error.starts_with("refusing the config file"), "{error}");
    assert!(
        error.contains(&format!("it belongs to uid {owner}")),
        "{error}"
    );
}

#[test]
fn plain_http_endpoints_are_allowed_only_to_loopback() {
    for endpoint in [
        "http://127.0.0.1:9229",
        "http://127.1.2.3:80/",
        "http://[::1]:9229",
        "http://localhost:9229",
        "https://cognito-idp.eu-west-1.amazonaws.com",
        "https://10.0.0.5:443",
    ] {
        let text = format!("{ONE_PROFILE}endpoint = \"{endpoint}\"\n");
        parse(&text, Path::new("c.toml"), &env(&[])).unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }
    for endpoint in [
        "http://10.0.0.5:9229",
        "http://cognito.example.com",
        "http://localhost.evil.example:80",
    ] {
        let text = format!("{ONE_PROFILE}endpoint = \"{endpoint}\"\n");
        let error = parse(&text, Path::new("c.toml"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("profiles.dev.endpoint"), "{error}");
        assert!(error.contains("plain http to another host"), "{error}");
    }
}

#[test]
fn hosts_and_token_kind() {
    let text = "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\nhosts = [\"Git.Example.com.\", \"registry.example.com:5000\", \"[::1]:8443\"]\ntoken_kind = \"id\"\n";
    let config = parse_ok(text, &env(&[]));
    let profile = &config.profiles[&ProfileName::from_str("a").unwrap()];
    assert_eq!(
        profile.hosts,
        ["git.example.com", "registry.example.com:5000", "[::1]:8443"]
    );
    assert_eq!(profile.token_kind, Some(TokenKind::Id));
    // A host without a port matches any port; one with a port only that port.
    assert!(profile.claims_host("git.example.com"));
    assert!(profile.claims_host("GIT.example.com:8443"));
    assert!(profile.claims_host("registry.example.com:5000"));
    assert!(!profile.claims_host("registry.example.com"));
    assert!(!profile.claims_host("registry.example.com:5001"));
    assert!(profile.claims_host("[::1]:8443"));
    assert!(!profile.claims_host("[::1]"));
    assert!(!profile.claims_host("example.com"));
    assert!(!profile.claims_host("evil-git.example.com"));

    let minimal = parse_ok(
        "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\n",
        &env(&[]),
    );
    let profile = &minimal.profiles[&ProfileName::from_str("a").unwrap()];
    assert!(profile.hosts.is_empty());
    assert_eq!(profile.token_kind, None);
    assert!(!profile.claims_host("git.example.com"));
}

#[test]
fn autostart_is_on_unless_the_file_or_the_environment_turns_it_off() {
    assert!(parse_ok("", &env(&[])).daemon.autostart);
    assert!(
        !parse_ok("[daemon]\nautostart = false\n", &env(&[]))
            .daemon
            .autostart
    );
    assert!(
        parse_ok("[daemon]\nautostart = true\n", &env(&[]))
            .daemon
            .autostart
    );
    for off in ["1", "true"] {
        let config = parse_ok("", &env(&[("COGBROKER_NO_AUTOSTART", off)]));
        assert!(!config.daemon.autostart, "{off}");
    }
    // 0 (or empty) leaves the file's choice alone, in both directions.
    assert!(
        parse_ok("", &env(&[("COGBROKER_NO_AUTOSTART", "0")]))
            .daemon
            .autostart
    );
    let text = "[daemon]\nautostart = false\n";
    assert!(
        !parse_ok(text, &env(&[("COGBROKER_NO_AUTOSTART", "")]))
            .daemon
            .autostart
    );

    let errors = parse(
        "",
        Path::new("/etc/cb.toml"),
        &env(&[("COGBROKER_NO_AUTOSTART", "yes")]),
    )
    .unwrap_err();
    let error = &errors.0[0];
    assert_eq!(error.key, "COGBROKER_NO_AUTOSTART");
    assert!(error.message.contains("not a boolean"), "{error}");
}

/// Sinks go only into a directory that is ours, never through a symlink; their keys are
/// checked like the rest.
#[test]
fn sinks_are_checked_against_the_filesystem() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let profile = |sink: &str| {
        format!(
            "[profiles.a]\ngrant = \"client_credentials\"\ndomain = \"https://x.example.com\"\nclient_id = \"c\"\nclient_secret = {{ env = \"S\" }}\n[[profiles.a.sinks]]\n{sink}\n"
        )
    };
    let config = parse_ok(
        &profile(&format!(
            "path = \"{root}/new/dir/token\"\nformat = \"netrc\"\nhost = \"registry.example.com\"\non_change = {{ command = \"true\" }}"
        )),
        &env(&[]),
    );
    let sink = &config.profiles.values().next().unwrap().sinks[0];
    assert_eq!(sink.path, dir.path().join("new/dir/token"));
    assert_eq!(sink.format, SinkFormat::Netrc);
    assert_eq!(sink.host.as_deref(), Some("registry.example.com"));
    assert_eq!(sink.on_change.as_deref(), Some("true"));

    let first_error = |text: &str| {
        let errors = parse(text, Path::new("/c.toml"), &env(&[])).unwrap_err();
        (errors.0[0].key.clone(), errors.0[0].message.clone())
    };
    let (key, message) = first_error(&profile(&format!("path = \"{root}/t\"\nformat = \"yaml\"")));
    assert_eq!(key, "profiles.a.sinks.format");
    assert!(message.contains("unknown sink format"), "{message}");
    let (key, message) = first_error(&profile(&format!("path = \"{root}/t\"\nkind = \"id\"")));
    assert_eq!(key, "profiles.a.sinks.kind");
    assert!(message.contains("access tokens only"), "{message}");
    let (_, message) = first_error(&profile(&format!(
        "path = \"{root}/t\"\nformat = \"npmrc\""
    )));
    assert!(message.contains("needs `host`"), "{message}");

    // A symlink, as the file or as the directory, is refused.
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
    let (key, message) = first_error(&profile(&format!("path = \"{root}/link\"")));
    assert_eq!(key, "profiles.a.sinks.path");
    assert!(message.contains("is a symlink"), "{message}");
    std::os::unix::fs::symlink("/tmp", dir.path().join("dirlink")).unwrap();
    let (_, message) = first_error(&profile(&format!("path = \"{root}/dirlink/t\"")));
    assert!(message.contains("is a symlink"), "{message}");

    // A directory others may write is not ours.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (_, message) = first_error(&profile(&format!("path = \"{root}/shared/t\"")));
    assert!(
        message.contains("outside your own directories"),
        "{message}"
    );
}
