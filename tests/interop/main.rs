//! Interop against moto, an independent Cognito peer: every flow of `cognito_auth::Authenticator`
//! that moto implements, with every returned JWT checked against moto's JWKS. Run by `make interop`.
//!
//! What moto does and does not check is in shared/peers.md. In short: it checks passwords on
//! USER_PASSWORD_AUTH, SECRET_HASH on SRP initiate, refresh and MFA answers, the pool's password
//! policy, and (with `MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP=true`) TOTP codes against one fixed
//! secret; it never checks the SRP maths, which `srp-vectors.json` and the emulator cover instead.

mod aws;
mod moto;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, bail, ensure};
use cognito_auth::authenticator::{Authenticator, RefreshRequest, Refreshed};
use cognito_auth::env::{OsEntropy, SystemClock};
use cognito_auth::error::{ErrorClass, ErrorCode, RefreshFailure};
use cognito_auth::flow::{
    AuthFlow, Challenge, ChallengeAnswer, DeviceRemembering, LoginRequest, LoginStep, LoginSuccess,
    PendingLogin,
};
use cognito_auth::pool::{AppClient, UserPoolId};
use cognito_auth::secret::{ClientSecret, OneTimeCode, Password};
use cognito_auth::tokens::{Expectation, Jwks, TokenSet, TokenUse, issuer};

use crate::moto::{Moto, Pool, totp_now};

/// moto routes unsigned calls to us-east-1 (peers.md §1.6), so the pool lives there.
const REGION: &str = "us-east-1";
/// A password that satisfies the provisioned pool's policy.
const PASSWORD: &str = "Interop-Passw0rd";
/// A temporary password for the FORCE_CHANGE_PASSWORD user.
const TEMPORARY_PASSWORD: &str = "Temporary-Passw0rd";

/// A fresh moto with the standard pool, plus the client-side pieces pointed at it.
struct World {
    moto: Moto,
    pool: Pool,
    pool_id: UserPoolId,
    jwks: Jwks,
}

impl World {
    async fn start() -> anyhow::Result<Self> {
        let moto = Moto::start().await?;
        let pool = moto.provision_pool(PASSWORD).await?;
        let pool_id = UserPoolId::parse(&pool.id)
            .with_context(|| format!("cognito-auth refuses moto's pool id {}", pool.id))?;
        let jwks = moto
            .cognito_client()?
            .fetch_jwks(&pool_id)
            .await
            .context("fetch moto's JWKS through CognitoClient::fetch_jwks")?;
        Ok(Self {
            moto,
            pool,
            pool_id,
            jwks,
        })
    }

    fn authenticator(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> anyhow::Result<Authenticator> {
        let app = AppClient {
            user_pool_id: self.pool_id.clone(),
            client_id: client_id.to_owned(),
            client_secret: secret.map(ClientSecret::new),
        };
        Ok(Authenticator::new(
            self.moto.cognito_client()?,
            app,
            Arc::new(SystemClock),
            Arc::new(OsEntropy),
        ))
    }

    fn public(&self) -> anyhow::Result<Authenticator> {
        self.authenticator(&self.pool.public_client_id, None)
    }

    fn confidential(&self) -> anyhow::Result<Authenticator> {
        self.authenticator(&self.pool.secret_client_id, Some(&self.pool.client_secret))
    }

    /// The issuer moto writes into its tokens: the real service's URL, not the local endpoint.
    fn issuer(&self) -> String {
        format!(
            "https://cognito-idp.{REGION}.amazonaws.com/{}",
            self.pool.id
        )
    }

    /// Checks both tokens of `tokens` against moto's JWKS, issuer, audience and token use, and
    /// that they name `username`.
    fn verify(&self, tokens: &TokenSet, client_id: &str, username: &str) -> anyhow::Result<()> {
        let now = SystemTime::now();
        let access = Expectation {
            issuer: self.issuer(),
            client_id: client_id.to_owned(),
            token_use: TokenUse::Access,
        };
        let id = Expectation {
            issuer: self.issuer(),
            client_id: client_id.to_owned(),
            token_use: TokenUse::Id,
        };
        let access_claims = self
            .jwks
            .verify(tokens.access_token().expose_secret(), &access, now)
            .context("moto's access token fails verification against its JWKS")?;
        let id_claims = self
            .jwks
            .verify(
                tokens.id_token().expect("an id token").expose_secret(),
                &id,
                now,
            )
            .context("moto's id token fails verification against its JWKS")?;
        ensure!(
            access_claims.username.as_deref() == Some(username),
            "access token names {:?}, expected {username}",
            access_claims.username
        );
        ensure!(
            id_claims.username.as_deref() == Some(username),
            "id token names {:?}, expected {username}",
            id_claims.username
        );
        ensure!(
            access_claims.sub == id_claims.sub,
            "access and id tokens name different subjects"
        );
        ensure!(
            access_claims.client_id.as_deref() == Some(client_id),
            "access token was issued to {:?}, expected {client_id}",
            access_claims.client_id
        );
        ensure!(
            tokens.username() == Some(username),
            "TokenSet::username is {:?}",
            tokens.username()
        );
        // moto's tokens live exactly 3600 s (peers.md §1.4).
        let lifetime = tokens.lifetime().as_secs();
        ensure!(
            (3590..=3600).contains(&lifetime),
            "token lifetime {lifetime} s, moto issues 3600 s"
        );
        // The same token must not pass as the other kind.
        ensure!(
            self.jwks
                .verify(tokens.access_token().expose_secret(), &id, now)
                .is_err(),
            "an access token verified as an id token"
        );
        let wrong_issuer = Expectation {
            issuer: format!("https://cognito-idp.{REGION}.amazonaws.com/us-east-1_Other"),
            client_id: client_id.to_owned(),
            token_use: TokenUse::Access,
        };
        ensure!(
            self.jwks
                .verify(tokens.access_token().expose_secret(), &wrong_issuer, now)
                .is_err(),
            "an access token verified under another pool's issuer"
        );
        Ok(())
    }
}

fn login_request(username: &str, password: &str, flow: AuthFlow) -> LoginRequest {
    LoginRequest {
        username: username.to_owned(),
        password: Some(Password::new(password)),
        flow,
        device: None,
        remember_device: DeviceRemembering::DoNotRemember,
        device_name: "cogbroker interop".to_owned(),
    }
}

fn authenticated(step: LoginStep, what: &str) -> anyhow::Result<LoginSuccess> {
    match step {
        LoginStep::Authenticated(success) => Ok(*success),
        LoginStep::Challenge(pending) => {
            bail!(
                "{what}: expected tokens, got challenge {}",
                pending.challenge().name()
            )
        }
    }
}

fn challenged(step: LoginStep, what: &str) -> anyhow::Result<PendingLogin> {
    match step {
        LoginStep::Challenge(pending) => Ok(*pending),
        LoginStep::Authenticated(_) => bail!("{what}: expected a challenge, got tokens"),
    }
}

/// moto's current TOTP code as a [`OneTimeCode`], and its 30-second step.
fn moto_totp_now() -> anyhow::Result<(OneTimeCode, u64)> {
    let (code, step) = totp_now()?;
    Ok((OneTimeCode::new(code), step))
}

fn current_step() -> anyhow::Result<u64> {
    Ok(totp_now()?.1)
}

/// Answers a SOFTWARE_TOKEN_MFA challenge with moto's current code. moto accepts only the
/// current 30-second step, so a mismatch that straddles a step boundary is answered once more with
/// the new step's code (the challenge stays pending after CodeMismatch).
async fn answer_totp(
    authenticator: &Authenticator,
    pending: PendingLogin,
) -> anyhow::Result<LoginSuccess> {
    let (code, step) = moto_totp_now()?;
    match authenticator
        .respond(pending, ChallengeAnswer::Code(code))
        .await
    {
        Ok(step) => authenticated(step, "SOFTWARE_TOKEN_MFA with the right code"),
        Err(error) if error.pending.is_some() && current_step()? != step => {
            let pending = *error.pending.expect("checked just above");
            let (code, _) = moto_totp_now()?;
            let step = authenticator
                .respond(pending, ChallengeAnswer::Code(code))
                .await
                .map_err(|error| error.error)
                .context("SOFTWARE_TOKEN_MFA with the next step's code")?;
            authenticated(step, "SOFTWARE_TOKEN_MFA with the next step's code")
        }
        Err(error) => Err(error.error).context("SOFTWARE_TOKEN_MFA with the right code"),
    }
}

/// Refreshes through `Authenticator::refresh`. moto lacks GetTokensFromRefreshToken (HTTP 500,
/// HTML), so this passes only if the authenticator falls back to REFRESH_TOKEN_AUTH.
async fn refresh(
    authenticator: &Authenticator,
    session: &LoginSuccess,
) -> Result<Refreshed, cognito_auth::error::Error> {
    let request = RefreshRequest {
        refresh_token: &session.refresh_token,
        device: None,
        username: session.tokens.username(),
    };
    authenticator.refresh(request).await
}

/// What a failed refresh against moto most likely means.
const REFRESH_CONTEXT: &str = "Authenticator::refresh against moto, which answers \
    GetTokensFromRefreshToken with a bare HTTP 500 HTML page: this needs the REFRESH_TOKEN_AUTH \
    fallback";

#[tokio::test]
async fn jwks_and_issuer_match_moto() -> anyhow::Result<()> {
    let world = World::start().await?;
    ensure!(
        issuer(REGION, &world.pool_id) == world.issuer(),
        "cognito_auth::tokens::issuer gives {}, moto issues {}",
        issuer(REGION, &world.pool_id),
        world.issuer()
    );
    let discovered = world.moto.openid_issuer(&world.pool.id).await?;
    ensure!(
        discovered == world.issuer(),
        "moto's discovery names issuer {discovered}"
    );
    Ok(())
}

#[tokio::test]
async fn user_password_auth_then_refresh_by_fallback() -> anyhow::Result<()> {
    let world = World::start().await?;
    let authenticator = world.public()?;
    let step = authenticator
        .start_login(login_request("alice", PASSWORD, AuthFlow::UserPassword))
        .await
        .context("USER_PASSWORD_AUTH")?;
    let session = authenticated(step, "USER_PASSWORD_AUTH")?;
    world.verify(&session.tokens, &world.pool.public_client_id, "alice")?;

    let refreshed = refresh(&authenticator, &session)
        .await
        .context(REFRESH_CONTEXT)?;
    world.verify(&refreshed.tokens, &world.pool.public_client_id, "alice")?;
    ensure!(
        refreshed.rotated_refresh_token.is_none(),
        "moto never rotates refresh tokens, yet a new one was reported"
    );
    ensure!(
        refreshed.tokens.access_token().expose_secret()
            != session.tokens.access_token().expose_secret(),
        "refresh returned the old access token"
    );
    Ok(())
}

#[tokio::test]
async fn user_srp_auth() -> anyhow::Result<()> {
    let world = World::start().await?;
    let authenticator = world.public()?;
    let step = authenticator
        .start_login(login_request("alice", PASSWORD, AuthFlow::UserSrp))
        .await
        .context(
            "USER_SRP_AUTH (moto's USER_ID_FOR_SRP is the sub and its PASSWORD_VERIFIER looks \
             USERNAME up by username: the flow must answer with ChallengeParameters.USERNAME)",
        )?;
    let session = authenticated(step, "USER_SRP_AUTH")?;
    world.verify(&session.tokens, &world.pool.public_client_id, "alice")?;
    Ok(())
}

#[tokio::test]
async fn wrong_password_is_not_authorized_and_needs_the_user() -> anyhow::Result<()> {
    let world = World::start().await?;
    let authenticator = world.public()?;
    let Err(error) = authenticator
        .start_login(login_request(
            "alice",
            "Wrong-Passw0rd",
            AuthFlow::UserPassword,
        ))
        .await
    else {
        bail!("a wrong password was accepted");
    };
    ensure!(
        matches!(error.code(), Some(ErrorCode::NotAuthorized)),
        "wrong password gave {error:?}, expected NotAuthorized"
    );
    ensure!(
        error.class() == ErrorClass::NeedsUser,
        "wrong password classed {:?}",
        error.class()
    );
    Ok(())
}

#[tokio::test]
async fn new_password_required_enforces_the_pool_policy() -> anyhow::Result<()> {
    let world = World::start().await?;
    let authenticator = world.public()?;
    for (username, flow, again) in [
        (
            "newcomer-password",
            AuthFlow::UserPassword,
            AuthFlow::UserPassword,
        ),
        ("newcomer-srp", AuthFlow::UserSrp, AuthFlow::UserSrp),
    ] {
        world
            .moto
            .create_temporary_user(&world.pool.id, username, TEMPORARY_PASSWORD)
            .await?;
        let step = authenticator
            .start_login(login_request(username, TEMPORARY_PASSWORD, flow))
            .await
            .with_context(|| format!("{username}: login with the temporary password"))?;
        let pending = challenged(step, "login of a FORCE_CHANGE_PASSWORD user")?;
        ensure!(
            matches!(pending.challenge(), Challenge::NewPasswordRequired { .. }),
            "{username}: expected NEW_PASSWORD_REQUIRED, got {}",
            pending.challenge().name()
        );

        // Too short for the pool's policy: moto says InvalidPassword and keeps the session.
        let weak = ChallengeAnswer::NewPassword {
            password: Password::new("Sh0rt"),
            attributes: BTreeMap::new(),
        };
        let Err(refused) = authenticator.respond(pending, weak).await else {
            bail!("{username}: a password against the pool policy was accepted");
        };
        ensure!(
            matches!(refused.error.code(), Some(ErrorCode::InvalidPassword)),
            "{username}: weak new password gave {:?}, expected InvalidPassword",
            refused.error
        );
        let pending = *refused.pending.with_context(|| {
            format!("{username}: InvalidPassword must leave the challenge pending")
        })?;

        let strong = ChallengeAnswer::NewPassword {
            password: Password::new(PASSWORD),
            attributes: BTreeMap::new(),
        };
        let step = authenticator
            .respond(pending, strong)
            .await
            .map_err(|error| error.error)
            .with_context(|| format!("{username}: NEW_PASSWORD_REQUIRED with a good password"))?;
        let session = authenticated(step, "NEW_PASSWORD_REQUIRED")?;
        world.verify(&session.tokens, &world.pool.public_client_id, username)?;
        ensure!(
            world.moto.user_status(&world.pool.id, username).await? == "CONFIRMED",
            "{username}: still not CONFIRMED after the new password"
        );

        // The new password now works on its own.
        let step = authenticator
            .start_login(login_request(username, PASSWORD, again))
            .await
            .with_context(|| format!("{username}: login with the new password"))?;
        authenticated(step, "login with the new password")?;
    }
    Ok(())
}

#[tokio::test]
async fn software_token_mfa() -> anyhow::Result<()> {
    let world = World::start().await?;
    world
        .moto
        .enable_totp(&world.pool, "totp-user", PASSWORD)
        .await?;
    for (what, authenticator, client_id, flow) in [
        (
            "USER_PASSWORD_AUTH, public client",
            world.public()?,
            &world.pool.public_client_id,
            AuthFlow::UserPassword,
        ),
        (
            "USER_SRP_AUTH, public client",
            world.public()?,
            &world.pool.public_client_id,
            AuthFlow::UserSrp,
        ),
        // SECRET_HASH is checked on the SOFTWARE_TOKEN_MFA answer (peers.md §1.5).
        (
            "USER_SRP_AUTH, secret client",
            world.confidential()?,
            &world.pool.secret_client_id,
            AuthFlow::UserSrp,
        ),
    ] {
        let step = authenticator
            .start_login(login_request("totp-user", PASSWORD, flow))
            .await
            .with_context(|| format!("{what}: login of a TOTP user"))?;
        let pending = challenged(step, "login of a TOTP user")?;
        ensure!(
            matches!(pending.challenge(), Challenge::SoftwareTokenMfa { .. }),
            "{what}: expected SOFTWARE_TOKEN_MFA, got {}",
            pending.challenge().name()
        );

        // A wrong code: CodeMismatch, and the challenge stays open for another try.
        let (right, _) = moto_totp_now()?;
        let wrong_value = (right
            .expose_secret()
            .parse::<u32>()
            .context("a numeric code")?
            + 1)
            % 1_000_000;
        let wrong = OneTimeCode::new(format!("{wrong_value:06}"));
        let Err(mismatch) = authenticator
            .respond(pending, ChallengeAnswer::Code(wrong))
            .await
        else {
            bail!("{what}: a wrong TOTP code was accepted");
        };
        ensure!(
            matches!(mismatch.error.code(), Some(ErrorCode::CodeMismatch)),
            "{what}: wrong code gave {:?}, expected CodeMismatch",
            mismatch.error
        );
        let pending = *mismatch
            .pending
            .with_context(|| format!("{what}: CodeMismatch must leave the challenge pending"))?;

        let session = answer_totp(&authenticator, pending).await.context(what)?;
        world.verify(&session.tokens, client_id, "totp-user")?;
    }
    Ok(())
}

#[tokio::test]
async fn secret_client_srp_and_refresh() -> anyhow::Result<()> {
    let world = World::start().await?;
    let authenticator = world.confidential()?;
    let client_id = world.pool.secret_client_id.clone();
    let step = authenticator
        .start_login(login_request("alice", PASSWORD, AuthFlow::UserSrp))
        .await
        .context("USER_SRP_AUTH on the secret client (moto checks SECRET_HASH here)")?;
    let session = authenticated(step, "USER_SRP_AUTH on the secret client")?;
    world.verify(&session.tokens, &client_id, "alice")?;

    let refreshed = refresh(&authenticator, &session)
        .await
        .context(REFRESH_CONTEXT)
        .context("refresh on the secret client (moto checks SECRET_HASH on REFRESH_TOKEN_AUTH)")?;
    world.verify(&refreshed.tokens, &client_id, "alice")?;

    // The same client with the wrong secret is refused at SRP initiate: proof the hash is checked.
    let impostor = world.authenticator(&client_id, Some("not-the-client-secret"))?;
    let Err(error) = impostor
        .start_login(login_request("alice", PASSWORD, AuthFlow::UserSrp))
        .await
    else {
        bail!("USER_SRP_AUTH with a wrong client secret was accepted");
    };
    ensure!(
        matches!(error.code(), Some(ErrorCode::NotAuthorized)),
        "a wrong SECRET_HASH gave {error:?}, expected NotAuthorized"
    );
    Ok(())
}

/// Both ways an authenticator can meet a revoked refresh token on moto must end in
/// NotAuthorized / Revoked / NeedsUser: one that already switched to REFRESH_TOKEN_AUTH, and a
/// fresh one (a daemon just restarted) whose GetTokensFromRefreshToken gets moto's bare 500 first.
#[tokio::test]
async fn global_sign_out_revokes_the_refresh_token() -> anyhow::Result<()> {
    let world = World::start().await?;
    let seasoned = world.public()?;
    let step = seasoned
        .start_login(login_request("alice", PASSWORD, AuthFlow::UserPassword))
        .await
        .context("USER_PASSWORD_AUTH")?;
    let session = authenticated(step, "USER_PASSWORD_AUTH")?;
    refresh(&seasoned, &session)
        .await
        .context(REFRESH_CONTEXT)?;
    seasoned
        .global_sign_out(session.tokens.access_token())
        .await
        .context("GlobalSignOut")?;

    let fresh = world.public()?;
    for (what, authenticator) in [
        ("an authenticator already on REFRESH_TOKEN_AUTH", &seasoned),
        (
            "a fresh authenticator (GetTokensFromRefreshToken first)",
            &fresh,
        ),
    ] {
        let Err(error) = refresh(authenticator, &session).await else {
            bail!("{what}: a refresh token survived GlobalSignOut");
        };
        ensure!(
            matches!(error.code(), Some(ErrorCode::NotAuthorized)),
            "{what}: refresh after sign-out gave {error:?}, expected NotAuthorized from the \
             REFRESH_TOKEN_AUTH fallback (a 500 here is GetTokensFromRefreshToken's, returned \
             instead of the fallback's verdict)"
        );
        ensure!(
            error.refresh_failure() == Some(RefreshFailure::Revoked),
            "{what}: moto's \"Refresh Token has been revoked\" read as {:?}",
            error.refresh_failure()
        );
        ensure!(
            error.class() == ErrorClass::NeedsUser,
            "{what}: a revoked refresh token classed {:?}",
            error.class()
        );
    }
    Ok(())
}
