//! Seed parsing: defaults, and errors that name the offending key.

use super::*;

const MINIMAL: &str = r#"
[[pools]]
id = "us-east-1_Demo1"

[[pools.clients]]
id = "demo-public"

[[pools.users]]
username = "demo"
password = "Demo-Passw0rd!"
"#;

fn error_of(text: &str) -> String {
    Seed::from_toml(text)
        .expect_err("seed must be rejected")
        .to_string()
}

#[test]
fn minimal_seed_gets_defaults() {
    let seed = Seed::from_toml(MINIMAL).expect("valid seed");
    assert_eq!(seed.pool_ids(), ["us-east-1_Demo1"]);
    let pool = &seed.pools[0];
    assert_eq!(pool.device_tracking, DeviceTracking::Off);
    assert_eq!(pool.mfa, PoolMfa::Off);
    assert_eq!(pool.lockout_threshold, 5);
    let client = &pool.clients[0];
    assert_eq!(
        (
            client.access_token_ttl,
            client.id_token_ttl,
            client.session_ttl
        ),
        (3600, 3600, 180)
    );
    assert!(client.refresh_token_auth());
    assert_eq!(client.flows().len(), ALL_FLOWS.len());
    assert_eq!(pool.users[0].status, UserStatus::Confirmed);
    assert!(
        !format!("{seed:?}").contains("Demo-Passw0rd!"),
        "Debug must not show passwords"
    );
}

#[test]
fn the_documented_example_parses() {
    let text = include_str!("../../examples/demo-seed.toml");
    let seed = Seed::from_toml(text).expect("examples/demo-seed.toml is valid");
    assert!(!seed.pool_ids().is_empty());
}

#[test]
fn unknown_keys_are_named_with_their_location() {
    let message = error_of(&MINIMAL.replace("password = ", "pasword = \"x\"\npassword = "));
    assert!(message.contains("unknown field `pasword`"), "{message}");
    assert!(message.contains("line"), "{message}");
    let message = error_of(&format!("{MINIMAL}\n[extra]\nx = 1\n"));
    assert!(message.contains("unknown field `extra`"), "{message}");
    let message = error_of(&MINIMAL.replace(
        "id = \"us-east-1_Demo1\"",
        "id = \"us-east-1_Demo1\"\nmfa = \"sometimes\"",
    ));
    assert!(message.contains("unknown variant `sometimes`"), "{message}");
}

#[test]
fn range_and_shape_errors_name_the_key() {
    let cases = [
        (MINIMAL.replace("us-east-1_Demo1", "Demo1"), "pools[0].id"),
        (
            MINIMAL.replace("us-east-1_Demo1", "us-east-1_De-mo"),
            "pools[0].id",
        ),
        (
            MINIMAL.replace("id = \"demo-public\"", "id = \"demo public\""),
            "pools[0].clients[0].id",
        ),
        (
            MINIMAL.replace("id = \"demo-public\"", "id = \"c\"\naccess_token_ttl = 0"),
            "pools[0].clients[0].access_token_ttl",
        ),
        (
            MINIMAL.replace("id = \"demo-public\"", "id = \"c\"\nsession_ttl = 901"),
            "pools[0].clients[0].session_ttl",
        ),
        (
            MINIMAL.replace(
                "id = \"demo-public\"",
                "id = \"c\"\nrotation = { enabled = true, grace_seconds = 61 }",
            ),
            "pools[0].clients[0].rotation.grace_seconds",
        ),
        (
            MINIMAL.replace(
                "id = \"demo-public\"",
                "id = \"c\"\nrotation = { enabled = true }\nrefresh_token_auth_enabled = true",
            ),
            "pools[0].clients[0].refresh_token_auth_enabled",
        ),
        (
            MINIMAL.replace(
                "id = \"demo-public\"",
                "id = \"c\"\nflows = [\"USER_SRP_AUTH\"]",
            ),
            "pools[0].clients[0].flows[0]",
        ),
        (
            format!("{MINIMAL}mfa = \"totp\"\n"),
            "pools[0].users[0].totp_secret",
        ),
        (
            format!("{MINIMAL}mfa = \"totp\"\ntotp_secret = \"not base32!\"\n"),
            "pools[0].users[0].totp_secret",
        ),
        (
            format!("{MINIMAL}mfa = \"sms\"\n"),
            "pools[0].users[0].phone_number",
        ),
        (
            format!("{MINIMAL}phone_number = \"555-1234\"\n"),
            "pools[0].users[0].phone_number",
        ),
        (
            format!("{MINIMAL}[[pools.users]]\nusername = \"DEMO\"\npassword = \"x\"\n"),
            "pools[0].users[1].username",
        ),
        (
            format!("{MINIMAL}[[pools]]\nid = \"us-east-1_Demo1\"\n"),
            "pools[1].id",
        ),
    ];
    for (text, key) in cases {
        let message = error_of(&text);
        assert!(
            message.contains(&format!("`{key}`")),
            "expected {key} in: {message}"
        );
    }
}

#[test]
fn email_pools_sign_in_by_email() {
    let text = r#"
[[pools]]
id = "eu-west-1_Mail"
username_attributes = ["email"]
[[pools.users]]
email = "ann@example.com"
password = "Ann-Passw0rd!"
"#;
    let seed = Seed::from_toml(text).expect("valid");
    assert_eq!(seed.pools[0].users[0].username, None);
    let message = error_of(&text.replace(
        "email = \"ann@example.com\"",
        "username = \"ann\"\nemail = \"ann@example.com\"",
    ));
    assert!(message.contains("pools[0].users[0].username"), "{message}");
    let message = error_of(&text.replace("email = \"ann@example.com\"\n", ""));
    assert!(message.contains("pools[0].users[0].email"), "{message}");
}

#[test]
fn oauth_client_keys_are_checked() {
    let with = |resource: &str, client: &str| {
        MINIMAL.replace(
            "[[pools.clients]]\nid = \"demo-public\"\n",
            &format!("{resource}\n[[pools.clients]]\nid = \"demo-public\"\n{client}\n"),
        )
    };
    let api = "[[pools.resource_servers]]\nidentifier = \"https://api\"\nscopes = [\"read\"]\n";
    let ok = with(
        api,
        "callback_urls = [\"http://localhost:7468/callback\"]\nallowed_oauth_flows = [\"code\"]\nallowed_scopes = [\"openid\", \"https://api/read\"]",
    );
    let seed = Seed::from_toml(&ok).expect("valid oauth seed");
    assert_eq!(seed.pools[0].clients[0].callback_urls.len(), 1);
    for (client, key, why) in [
        (
            "allowed_scopes = [\"https://api/write\"]",
            "allowed_scopes[0]",
            "neither a standard scope",
        ),
        (
            "callback_urls = [\"http://app.example.com/cb\"]",
            "callback_urls[0]",
            "only for localhost",
        ),
        (
            "callback_urls = [\"https://app.example.com/cb#x\"]",
            "callback_urls[0]",
            "fragment",
        ),
        (
            "allowed_oauth_flows = [\"implicit\"]",
            "allowed_oauth_flows[0]",
            "not one of",
        ),
        (
            "allowed_oauth_flows = [\"code\"]",
            "callback_urls",
            "at least one callback URL",
        ),
        (
            "allowed_oauth_flows = [\"client_credentials\"]",
            "allowed_oauth_flows",
            "needs a client secret",
        ),
    ] {
        let message = error_of(&with(api, client));
        assert!(
            message.contains(&format!("pools[0].clients[0].{key}")),
            "{message}"
        );
        assert!(message.contains(why), "{message}");
    }
    let message = error_of(&with(
        "[[pools.resource_servers]]\nidentifier = \"https://api\"\nscope = [\"read\"]\n",
        "",
    ));
    assert!(message.contains("unknown field `scope`"), "{message}");
}

#[test]
fn identity_pools_are_checked() {
    let pool = |body: &str| format!("{MINIMAL}\n[[identity_pools]]\n{body}\n");
    let good = "id = \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nuser_pool = \"us-east-1_Demo1\"\nclient_id = \"demo-public\"\nroles = { authenticated = \"arn:aws:iam::123456789012:role/Auth\" }";
    let seed = Seed::from_toml(&pool(good)).expect("valid identity pool");
    assert_eq!(seed.identity_pools[0].credentials_ttl, 3600);
    assert!(!seed.identity_pools[0].allow_basic_flow);
    for (from, to, key) in [
        ("us-east-1:0b7f", "us-east-1_0b7f", "identity_pools[0].id"),
        (
            "\"us-east-1_Demo1\"",
            "\"us-east-1_Nope\"",
            "identity_pools[0].user_pool",
        ),
        (
            "\"demo-public\"",
            "\"nobody\"",
            "identity_pools[0].client_id",
        ),
        (
            "123456789012:role",
            "1234:role",
            "identity_pools[0].roles.authenticated",
        ),
    ] {
        let message = error_of(&pool(&good.replace(from, to)));
        assert!(message.contains(key), "{message}");
    }
    let message = error_of(&pool(&format!("{good}\ncredentials_ttl = 0")));
    assert!(
        message.contains("identity_pools[0].credentials_ttl"),
        "{message}"
    );
    let message = error_of(&pool(&format!("{good}\nallow_classic_flow = true")));
    assert!(
        message.contains("unknown field `allow_classic_flow`"),
        "{message}"
    );
}
