//! Connected accounts: a creator's account on a platform (YouTube, X, Instagram, TikTok),
//! granted to us with OAuth2 (authorization code, with PKCE where the platform takes it), so
//! the counts of their posts come back as outcomes without anyone typing them in.
//!
//! Tokens are kept sealed ([`TokenCipher`]: envelope encryption, a data key per token wrapped
//! by a master key), each bound to the account and purpose it belongs to, so a database dump
//! reveals none and a sealed token cannot be moved to another row. The platforms are reached
//! through one port, [`PlatformApi`]; its adapters map each API's answers and errors onto the
//! same few outcomes ([`PlatformError`]) the use cases act on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Platform, now};
use crate::service::{App, Origin, Principal};

/// How long a started authorization may take to come back.
pub const AUTHORIZATION_TTL_SECS: i64 = 600;
/// Authorizations one user may have open at once.
pub const PENDING_GRANTS_PER_USER_MAX: u32 = 20;
/// Accounts one user may connect.
pub const ACCOUNTS_PER_USER_MAX: u32 = 50;
/// A token this close to expiry is refreshed before use.
const REFRESH_AHEAD_SECS: i64 = 300;

/// A grant of access, as the platform's token endpoint answers it.
#[derive(Clone, PartialEq)]
pub struct TokenGrant {
    pub access_token: String,
    /// None where the platform refreshes with the access token itself (Instagram's long-lived
    /// tokens) or issues none.
    pub refresh_token: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant").field("expires_at", &self.expires_at).field("scopes", &self.scopes).finish_non_exhaustive()
    }
}

/// Who the account is on the platform.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformProfile {
    /// The platform's id for the account (channel id, user id, open_id).
    pub external_id: String,
    pub handle: Option<String>,
    /// Subscribers / followers now, where the platform shows them.
    pub followers: Option<u64>,
}

/// One post's public counts at the time they were read.
#[derive(Debug, Clone, PartialEq)]
pub struct PostStats {
    pub post_id: String,
    /// The post's public address, where the platform gives it.
    pub permalink: Option<String>,
    /// Whose post it is (the account's external id), where the answer says.
    pub author_id: Option<String>,
    pub posted_at: Option<OffsetDateTime>,
    pub views: Option<u64>,
    pub likes: Option<u64>,
    pub comments: Option<u64>,
    pub shares: Option<u64>,
}

/// What can go wrong talking to a platform, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlatformError {
    /// The access token is expired or revoked (401): refresh it and try once more.
    #[error("the platform refused the access token: {0}")]
    Unauthorized(String),
    /// The grant lacks a permission this call needs: the creator must connect again.
    #[error("the grant lacks a permission: {0}")]
    Forbidden(String),
    /// The refresh was refused (revoked, expired): the creator must connect again.
    #[error("the platform revoked the grant: {0}")]
    Revoked(String),
    /// Too many requests for now, even after backing off; try after `retry_after`.
    #[error("rate limited; retry in {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// Our quota with the platform is spent until `until`.
    #[error("the platform quota is spent until {until}")]
    QuotaExhausted { until: OffsetDateTime },
    /// The user this call is for has spent their share of our quota (`share` calls per
    /// `window`) until `until`; other users' calls go on.
    #[error("this account's share of the platform's quota ({share} calls per {} s) is spent until {until}", window.as_secs())]
    ShareSpent { until: OffsetDateTime, share: u64, window: Duration },
    /// The post or account is gone, or not visible with this grant.
    #[error("not found: {0}")]
    NotFound(String),
    /// An answer that does not match the platform's documented shape.
    #[error("the platform's answer could not be read: {0}")]
    Malformed(String),
    /// No answer, or a server error; worth retrying later.
    #[error("the platform is unavailable: {0}")]
    Unavailable(String),
    /// Refused for a reason that will not change by retrying (a bad request).
    #[error("the platform refused the request: {0}")]
    Refused(String),
}

/// The start of an authorization: where the creator goes, with what.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizeRequest {
    pub state: String,
    /// `BASE64URL(SHA256(verifier))` (RFC 7636 S256).
    pub code_challenge: String,
    pub redirect_uri: String,
}

/// One platform's API, as the learning loop uses it. Each adapter maps its API's shapes and
/// errors onto these; pagination, batching, quota and back-off are the adapter's business.
#[async_trait]
pub trait PlatformApi: Send + Sync {
    fn platform(&self) -> Platform;
    /// The platform's consent page for this request.
    fn authorize_url(&self, request: &AuthorizeRequest) -> String;
    async fn exchange_code(&self, code: &str, verifier: &str, redirect_uri: &str) -> std::result::Result<TokenGrant, PlatformError>;
    /// A new grant from the current one (its refresh token, or the long-lived access token).
    async fn refresh(&self, current: &TokenGrant) -> std::result::Result<TokenGrant, PlatformError>;
    async fn profile(&self, access_token: &str) -> std::result::Result<PlatformProfile, PlatformError>;
    /// The account's follower (subscriber) count now, where the platform shows it.
    async fn followers(&self, access_token: &str, account: &str) -> std::result::Result<Option<u64>, PlatformError>;
    /// Current counts of these posts of the account (missing ones are left out).
    async fn posts(&self, access_token: &str, account: &str, post_ids: &[String]) -> std::result::Result<Vec<PostStats>, PlatformError>;
    /// The account's latest posts, newest first, at most `max` (paging through the API).
    async fn recent_posts(&self, access_token: &str, account: &str, max: usize) -> std::result::Result<Vec<PostStats>, PlatformError>;
    /// The post id in one of the platform's post addresses, where the address holds one.
    fn post_id(&self, post_url: &str) -> Option<String>;
}

tokio::task_local! {
    /// The user whose work the platform calls in this task are for (their share is spent).
    static SPENDING_FOR: Uuid;
}

/// Runs `work` with every platform call in it counted against `user`'s share of the
/// platform budgets (as well as the budget itself).
pub async fn spending_for<F: std::future::Future>(user: Uuid, work: F) -> F::Output {
    SPENDING_FOR.scope(user, work).await
}

/// The user the current platform calls are for, inside [`spending_for`].
pub fn spent_for() -> Option<Uuid> {
    SPENDING_FOR.try_with(|u| *u).ok()
}

impl PlatformError {
    /// What a caller is told when a platform call made for them failed for want of quota:
    /// their own share spent is a 429 with when to retry; the whole budget spent (or the
    /// platform throttling us) is a 503.
    pub fn share_refusal(&self) -> Option<Error> {
        let PlatformError::ShareSpent { until, share, window } = self else { return None };
        Some(Error::RateLimited {
            policy: "platform-share",
            limit: *share,
            window_secs: window.as_secs(),
            retry_after_secs: (*until - now()).whole_seconds().max(1) as u64,
        })
    }
}

/// Seals secrets at rest. `context` binds a sealed value to where it belongs: opening it
/// under another context fails.
#[async_trait]
pub trait TokenCipher: Send + Sync {
    async fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>>;
    async fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>>;
}

/// The platforms this deployment has apps for, the token cipher, and where they send
/// creators back.
#[derive(Clone)]
pub struct Platforms {
    pub apis: HashMap<Platform, Arc<dyn PlatformApi>>,
    pub cipher: Arc<dyn TokenCipher>,
    /// `…/api/v1/accounts/callback`, registered with each platform's app.
    pub redirect_uri: String,
}

impl Platforms {
    pub fn api(&self, platform: Platform) -> Result<&Arc<dyn PlatformApi>> {
        self.apis.get(&platform).ok_or_else(|| Error::validation("platform", format!("this deployment has no {platform} app configured")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// The grant was revoked, expired or lacks a permission: the creator must connect again.
    ReauthRequired,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::ReauthRequired => "reauth_required",
        }
    }

    pub fn parse(s: &str) -> Option<AccountStatus> {
        match s {
            "active" => Some(AccountStatus::Active),
            "reauth_required" => Some(AccountStatus::ReauthRequired),
            _ => None,
        }
    }
}

/// A sealed token as stored.
#[derive(Clone, PartialEq)]
pub struct SealedTokens {
    pub access: Vec<u8>,
    pub refresh: Option<Vec<u8>>,
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for SealedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedTokens").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectedAccount {
    pub id: Uuid,
    pub user_id: Uuid,
    pub platform: Platform,
    pub external_id: String,
    pub handle: Option<String>,
    pub followers: Option<u64>,
    pub followers_at: Option<OffsetDateTime>,
    pub scopes: Vec<String>,
    pub status: AccountStatus,
    pub tokens: SealedTokens,
    /// Why the account needs attention, when it does.
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An authorization under way: the PKCE verifier (sealed) waits for the platform's redirect.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingGrant {
    /// sha256 of the `state` parameter (the state itself is never stored).
    pub state_hash: String,
    pub user_id: Uuid,
    pub platform: Platform,
    pub verifier: Vec<u8>,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct AuthorizationStart {
    pub platform: Platform,
    pub authorize_url: String,
    pub state: String,
    pub expires_at: OffsetDateTime,
}

/// What the platform's redirect brings back.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    /// Set when the creator declined (`access_denied`) or the platform failed.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// RFC 7636: the S256 challenge of a verifier.
pub fn code_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn token_context(account: Uuid, which: &str) -> String {
    format!("account:{account}:{which}")
}

impl App {
    fn platforms(&self) -> Result<&Platforms> {
        self.platforms.as_ref().ok_or_else(|| Error::Unavailable("this deployment does not connect accounts".into()))
    }

    /// Starts connecting an account: a consent page address for the creator, valid 10 minutes.
    pub async fn start_connection(&self, principal: &Principal, platform: Platform) -> Result<AuthorizationStart> {
        let platforms = self.platforms()?;
        let api = platforms.api(platform)?;
        let (state, verifier) = (crate::auth::random_token(32), crate::auth::random_token(48));
        let hash = state_hash(&state);
        let at = now();
        let grant = PendingGrant {
            state_hash: hash.clone(),
            user_id: principal.user.id,
            platform,
            verifier: platforms.cipher.seal(verifier.as_bytes(), &format!("grant:{hash}")).await?,
            expires_at: at + time::Duration::seconds(AUTHORIZATION_TTL_SECS),
        };
        if !self.store.create_pending_grant(&grant, PENDING_GRANTS_PER_USER_MAX, at).await? {
            return Err(Error::Conflict(format!(
                "{PENDING_GRANTS_PER_USER_MAX} connections are already waiting for consent; finish one or wait 10 minutes"
            )));
        }
        let request = AuthorizeRequest {
            state: state.clone(),
            code_challenge: code_challenge(&verifier),
            redirect_uri: platforms.redirect_uri.clone(),
        };
        Ok(AuthorizationStart { platform, authorize_url: api.authorize_url(&request), state, expires_at: grant.expires_at })
    }

    /// Finishes a connection from the platform's redirect: the state is used once, the code
    /// exchanged with its verifier, and the tokens kept sealed. Reconnecting an account
    /// replaces its tokens. Only the account that started the connection can finish it:
    /// otherwise a creator tricked into consenting through someone else's connect link would
    /// hand their platform account to that person.
    pub async fn finish_connection(&self, principal: &Principal, callback: Callback, origin: &Origin) -> Result<ConnectedAccount> {
        let platforms = self.platforms()?;
        let state = callback.state.filter(|s| !s.is_empty() && s.len() <= 256).ok_or_else(|| Error::validation("state", "is required"))?;
        let at = now();
        let grant = self
            .store
            .take_pending_grant(&state_hash(&state), at)
            .await?
            .ok_or_else(|| Error::validation("state", "is unknown, used or expired; start the connection again"))?;
        if grant.user_id != principal.user.id {
            // The state is spent either way: whoever started it cannot try it again.
            let payload = serde_json::json!({"platform": grant.platform, "started_by": grant.user_id});
            self.audit(principal.actor(), "account.connect_refused", payload, origin).await?;
            return Err(Error::Forbidden(format!(
                "this {} connection was started by another GoViralNow account; nothing was connected. Start the connection from your own Accounts page",
                grant.platform
            )));
        }
        if let Some(error) = callback.error {
            // The platform's words, bounded: they come back through the creator's browser.
            let clip = |t: String| t.chars().filter(|c| !c.is_control()).take(200).collect::<String>();
            let (error, why) = (clip(error), clip(callback.error_description.unwrap_or_default()));
            return Err(Error::Forbidden(format!(
                "{} did not grant access ({error}{}{why})",
                grant.platform,
                if why.is_empty() { "" } else { ": " }
            )));
        }
        let code = callback.code.filter(|c| !c.is_empty() && c.len() <= 2048).ok_or_else(|| Error::validation("code", "is required"))?;
        let verifier = platforms.cipher.open(&grant.verifier, &format!("grant:{}", grant.state_hash)).await?;
        let verifier = String::from_utf8(verifier).map_err(|_| Error::Internal("a sealed verifier is not text".into()))?;
        let api = platforms.api(grant.platform)?;
        let (tokens, profile) = spending_for(grant.user_id, async {
            let tokens = api.exchange_code(&code, &verifier, &platforms.redirect_uri).await?;
            let profile = api.profile(&tokens.access_token).await?;
            Ok((tokens, profile))
        })
        .await
        .map_err(connect_error)?;
        let existing = self.store.account_by_external(grant.user_id, grant.platform, &profile.external_id).await?;
        let id = existing.as_ref().map_or_else(Uuid::now_v7, |a| a.id);
        let account = ConnectedAccount {
            id,
            user_id: grant.user_id,
            platform: grant.platform,
            external_id: profile.external_id.clone(),
            handle: profile.handle.clone(),
            followers: profile.followers,
            followers_at: profile.followers.map(|_| at),
            scopes: tokens.scopes.clone(),
            status: AccountStatus::Active,
            tokens: self.seal_tokens(id, &tokens).await?,
            last_error: None,
            created_at: existing.as_ref().map_or(at, |a| a.created_at),
            updated_at: at,
        };
        if !self.store.save_account(&account, ACCOUNTS_PER_USER_MAX).await? {
            return Err(Error::Conflict(format!("at most {ACCOUNTS_PER_USER_MAX} accounts may be connected")));
        }
        let payload = serde_json::json!({"account_id": id, "platform": grant.platform, "external_id": profile.external_id, "reconnected": existing.is_some()});
        self.audit(grant.user_id.to_string(), "account.connect", payload, origin).await?;
        Ok(account)
    }

    pub async fn accounts(&self, principal: &Principal) -> Result<Vec<ConnectedAccount>> {
        self.store.accounts_for_user(principal.user.id).await
    }

    /// Disconnects an account: its tokens are deleted, and its posts are no longer followed.
    pub async fn disconnect_account(&self, principal: &Principal, id: Uuid, origin: &Origin) -> Result<()> {
        if !self.store.delete_account(principal.user.id, id).await? {
            return Err(Error::NotFound("account"));
        }
        self.audit(principal.actor(), "account.disconnect", serde_json::json!({"account_id": id}), origin).await
    }

    async fn seal_tokens(&self, account: Uuid, tokens: &TokenGrant) -> Result<SealedTokens> {
        let cipher = &self.platforms()?.cipher;
        let access = cipher.seal(tokens.access_token.as_bytes(), &token_context(account, "access")).await?;
        let refresh = match &tokens.refresh_token {
            Some(r) => Some(cipher.seal(r.as_bytes(), &token_context(account, "refresh")).await?),
            None => None,
        };
        Ok(SealedTokens { access, refresh, expires_at: tokens.expires_at })
    }

    async fn open_tokens(&self, account: &ConnectedAccount) -> Result<TokenGrant> {
        let cipher = &self.platforms()?.cipher;
        let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| Error::Internal("a sealed token is not text".into()));
        let access = text(cipher.open(&account.tokens.access, &token_context(account.id, "access")).await?)?;
        let refresh = match &account.tokens.refresh {
            Some(r) => Some(text(cipher.open(r, &token_context(account.id, "refresh")).await?)?),
            None => None,
        };
        Ok(TokenGrant {
            access_token: access,
            refresh_token: refresh,
            expires_at: account.tokens.expires_at,
            scopes: account.scopes.clone(),
        })
    }

    /// Refreshes the account's grant, keeping the new tokens sealed; a refused refresh marks
    /// the account for reconnection.
    pub async fn refresh_account(&self, account: &mut ConnectedAccount) -> std::result::Result<TokenGrant, AccountFailure> {
        let platforms = self.platforms()?;
        let api = platforms.api(account.platform)?;
        let current = self.open_tokens(account).await?;
        match api.refresh(&current).await {
            Ok(mut fresh) => {
                // Platforms that do not rotate refresh tokens answer without one.
                if fresh.refresh_token.is_none() {
                    fresh.refresh_token = current.refresh_token;
                }
                if fresh.scopes.is_empty() {
                    fresh.scopes = current.scopes;
                }
                account.tokens = self.seal_tokens(account.id, &fresh).await?;
                account.scopes = fresh.scopes.clone();
                account.updated_at = now();
                self.store.update_account_tokens(account).await?;
                Ok(fresh)
            }
            Err(e) => Err(self.account_failed(account, e).await),
        }
    }

    /// Records what a platform error means for the account: a grant that cannot be used
    /// any more needs the creator to connect again.
    async fn account_failed(&self, account: &mut ConnectedAccount, e: PlatformError) -> AccountFailure {
        if matches!(e, PlatformError::Revoked(_) | PlatformError::Forbidden(_)) {
            account.status = AccountStatus::ReauthRequired;
            account.last_error = Some(e.to_string());
            if let Err(store) = self.store.set_account_status(account.id, account.status, account.last_error.as_deref(), now()).await {
                return AccountFailure::Store(store);
            }
        }
        AccountFailure::Platform(e)
    }

    /// Runs `call` with a live access token: refreshed first when about to expire, and once
    /// more when the platform says it expired anyway (clocks differ, grants get revoked).
    /// Every call counts against the account owner's share of the platform's budget.
    pub async fn with_token<T, F, Fut>(&self, account: &mut ConnectedAccount, call: F) -> std::result::Result<T, AccountFailure>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, PlatformError>>,
    {
        let user = account.user_id;
        spending_for(user, self.with_token_spent(account, call)).await
    }

    async fn with_token_spent<T, F, Fut>(&self, account: &mut ConnectedAccount, call: F) -> std::result::Result<T, AccountFailure>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, PlatformError>>,
    {
        if account.status != AccountStatus::Active {
            return Err(AccountFailure::Platform(PlatformError::Revoked(
                account.last_error.clone().unwrap_or_else(|| "reconnect the account".into()),
            )));
        }
        let mut tokens = self.open_tokens(account).await?;
        if tokens.expires_at.is_some_and(|e| e <= now() + time::Duration::seconds(REFRESH_AHEAD_SECS)) {
            tokens = self.refresh_account(account).await?;
        }
        match call(tokens.access_token.clone()).await {
            Err(PlatformError::Unauthorized(_)) => {
                let fresh = self.refresh_account(account).await?;
                match call(fresh.access_token).await {
                    Ok(v) => Ok(v),
                    Err(e) => Err(self.account_failed(account, e).await),
                }
            }
            Err(e) => Err(self.account_failed(account, e).await),
            Ok(v) => Ok(v),
        }
    }

    /// Current counts of the account's posts `ids`, with a live token (see `with_token`).
    pub async fn read_posts(
        &self,
        api: &Arc<dyn PlatformApi>,
        account: &mut ConnectedAccount,
        ids: &[String],
    ) -> std::result::Result<Vec<PostStats>, AccountFailure> {
        let ext = account.external_id.clone();
        self.with_token(account, |t| {
            let (api, ext) = (api.clone(), ext.clone());
            async move { api.posts(&t, &ext, ids).await }
        })
        .await
    }

    /// The API of a connected account's platform.
    pub fn platform_api(&self, platform: Platform) -> Result<Arc<dyn PlatformApi>> {
        Ok(self.platforms()?.api(platform)?.clone())
    }
}

/// Why a call on an account's behalf failed: the platform said so, or our side did.
#[derive(Debug, thiserror::Error)]
pub enum AccountFailure {
    #[error(transparent)]
    Platform(PlatformError),
    #[error(transparent)]
    Store(#[from] Error),
}

/// A failed exchange or profile read while connecting, as the creator should see it.
fn connect_error(e: PlatformError) -> Error {
    if let Some(refusal) = e.share_refusal() {
        return refusal;
    }
    match e {
        PlatformError::Unauthorized(m) | PlatformError::Revoked(m) | PlatformError::Refused(m) => {
            Error::validation("code", format!("the platform refused the authorization code ({m}); start the connection again"))
        }
        PlatformError::Forbidden(m) => Error::Forbidden(format!("the grant lacks a permission we need: {m}")),
        other => Error::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn grants_never_print_tokens() {
        let g = TokenGrant { access_token: "secret-a".into(), refresh_token: Some("secret-r".into()), expires_at: None, scopes: vec![] };
        assert!(!format!("{g:?}").contains("secret"));
    }
}
