//! Users, client credentials, bearer tokens and API keys: issuing, verifying (through the
//! bounded hashing pool and the failed-authentication throttle), rotating, revoking.

use super::webhooks::new_webhook_secret;
use super::*;

impl App {
    /// Operator action (CLI): a new user with a client secret and a first API key.
    pub async fn create_user(&self, email: &str, plan: Plan, roles: Vec<Role>, actor: &str) -> Result<NewUserCredentials> {
        let email = normalize_email(email)?;
        let client_secret = auth::random_token(32);
        let at = now();
        let user = User {
            id: Uuid::now_v7(),
            email,
            hashed_secret: self.hash(client_secret.clone()).await?,
            plan,
            is_active: true,
            roles: if roles.is_empty() { vec![Role::User] } else { roles },
            webhook_secret: new_webhook_secret(),
            created_at: at,
            updated_at: at,
        };
        self.store.create_user(&user).await?;
        let origin = Origin::default();
        let payload = serde_json::json!({"user_id": user.id, "email": user.email, "plan": plan, "roles": user.roles});
        self.audit(actor.into(), "user.create", payload, &origin).await?;
        let issued = self.new_key(user.id, None).await?;
        self.store.insert_api_key(&issued.key).await?;
        self.audit(actor.into(), "api_key.issue", key_payload(&issued.key), &origin).await?;
        Ok(NewUserCredentials { user, client_secret, api_key: issued.plaintext })
    }

    pub async fn set_user_active(&self, user_id: Uuid, active: bool, actor: &str) -> Result<()> {
        if !self.store.set_user_active(user_id, active, now()).await? {
            return Err(Error::NotFound("user"));
        }
        let action = if active { "user.activate" } else { "user.deactivate" };
        self.audit(actor.into(), action, serde_json::json!({"user_id": user_id}), &Origin::default()).await
    }

    /// Client credentials or an API key for a bearer token. A token minted from a key names
    /// the key, and ends when the key is revoked or rotated.
    pub async fn exchange_token(&self, credentials: Credentials, origin: &Origin) -> Result<IssuedToken> {
        let (user, key_id) = match credentials {
            Credentials::ClientSecret { client_id, client_secret } => {
                let ip = origin.ip;
                let credential = format!("client:{client_id}");
                self.throttle.check(ip, &credential)?;
                let user = match client_id.parse::<Uuid>() {
                    Ok(id) => self.store.user_by_id(id).await?,
                    Err(_) => None,
                };
                let digest = auth::sha256_hex(format!("client\0{client_id}\0{client_secret}").as_bytes());
                let matches = match &user {
                    Some(u) if self.cached(&digest, u.id) => true,
                    Some(u) => self.verify_shared(&digest, u.hashed_secret.clone(), client_secret).await?,
                    // The decoy makes an unknown client id cost what a wrong secret does, so
                    // user ids cannot be probed by timing; the throttle bounds how often.
                    None => {
                        self.verify_hash(self.decoy_hash.clone(), client_secret).await?;
                        false
                    }
                };
                match user {
                    Some(user) if matches => {
                        self.remember(digest, user.id);
                        (user, None)
                    }
                    _ => {
                        self.throttle.record_failure(ip, &credential);
                        return Err(Error::Unauthorized("invalid client credentials".into()));
                    }
                }
            }
            Credentials::ApiKey(key) => {
                let principal = self.authenticate_api_key(&key, origin).await?;
                let key_id = principal.key_id();
                (principal.user, key_id)
            }
        };
        if !user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        let access_token = self.settings.auth.issue_token(user.id, key_id, OffsetDateTime::now_utc().unix_timestamp())?;
        Ok(IssuedToken { access_token, expires_in: self.settings.auth.token_ttl_secs })
    }

    pub async fn authenticate_bearer(&self, token: &str) -> Result<Principal> {
        let subject = self.settings.auth.verify_token(token)?;
        let user = self.store.user_by_id(subject.user_id).await?.ok_or_else(|| Error::Unauthorized("token invalid".into()))?;
        if !user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        if let Some(key_id) = subject.key_id {
            self.check_key_live(key_id, user.id).await?;
        }
        Ok(Principal { user, method: AuthMethod::Token { key_id: subject.key_id } })
    }

    /// Opens a dashboard session with an API key (throttled and verified as on every route).
    pub async fn open_session(&self, api_key: &str, origin: &Origin) -> Result<Session> {
        let principal = self.authenticate_api_key(api_key.trim(), origin).await?;
        let AuthMethod::ApiKey { key_id } = principal.method else {
            return Err(Error::Internal("an API key authenticated as something else".into()));
        };
        let csrf_token = auth::random_token(24);
        let at = now();
        let record = SessionRecord {
            id: Uuid::now_v7(),
            user_id: principal.user.id,
            key_id,
            created_at: at,
            expires_at: at + time::Duration::seconds(auth::SESSION_TTL_SECS),
            revoked_at: None,
        };
        self.store.insert_session(&record).await?;
        let subject = auth::SessionSubject { user_id: record.user_id, session_id: record.id, key_id, csrf: csrf_token.clone() };
        let token = self.settings.auth.issue_session_token(&subject, at.unix_timestamp())?;
        self.audit(principal.actor(), "session.open", serde_json::json!({"key_id": key_id, "session_id": record.id}), origin).await?;
        Ok(Session { token, csrf_token, expires_at: record.expires_at, user: principal.user })
    }

    /// Signs out: the cookie's session is ended on the server, so a copy of the cookie stops
    /// working too. A cookie that is not a valid session (expired, forged) has nothing to end.
    pub async fn close_session(&self, token: &str, origin: &Origin) -> Result<()> {
        let Ok(subject) = self.settings.auth.verify_session_token(token) else { return Ok(()) };
        if self.store.revoke_session(subject.user_id, subject.session_id, now()).await? {
            self.forget_key(subject.session_id);
            let payload = serde_json::json!({"session_id": subject.session_id});
            self.audit(subject.user_id.to_string(), "session.close", payload, origin).await?;
        }
        Ok(())
    }

    /// The caller behind a session cookie. A request that changes anything must carry the
    /// session's CSRF token: another site can make the browser send the cookie, but cannot
    /// read the token.
    pub async fn authenticate_session(&self, token: &str, csrf_header: Option<&str>, changes_state: bool) -> Result<Principal> {
        let subject = self.settings.auth.verify_session_token(token)?;
        if changes_state && !csrf_header.is_some_and(|h| auth::constant_time_eq(h.as_bytes(), subject.csrf.as_bytes())) {
            return Err(Error::Forbidden("this request needs the session's X-CSRF-Token header".into()));
        }
        let user = self.store.user_by_id(subject.user_id).await?.ok_or_else(|| Error::Unauthorized("session invalid".into()))?;
        if !user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        self.check_session_live(subject.session_id, user.id).await?;
        self.check_key_live(subject.key_id, user.id).await?;
        Ok(Principal { user, method: AuthMethod::Session { session_id: subject.session_id, key_id: subject.key_id, csrf: subject.csrf } })
    }

    /// Whether the credential behind `principal` still stands: the account active, its key
    /// not revoked, its session not ended. A live stream asks again at every heartbeat.
    pub async fn check_credential_live(&self, principal: &Principal) -> Result<()> {
        let user = self.store.user_by_id(principal.user.id).await?.ok_or_else(|| Error::Unauthorized("the account is gone".into()))?;
        if !user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        if let Some(session_id) = principal.session_id() {
            self.check_session_live(session_id, user.id).await?;
        }
        if let Some(key_id) = principal.key_id() {
            self.check_key_live(key_id, user.id).await?;
        }
        Ok(())
    }

    /// A session is as good as its record: refused once it is ended or past its time.
    async fn check_session_live(&self, session_id: Uuid, user_id: Uuid) -> Result<()> {
        if self.known_live(session_id) {
            return Ok(());
        }
        match self.store.session(session_id).await? {
            Some(s) if s.user_id == user_id && s.revoked_at.is_none() && s.expires_at > now() => {
                self.remember_live(session_id);
                Ok(())
            }
            Some(s) if s.user_id == user_id => Err(Error::Unauthorized("the session has ended: sign in again".into())),
            _ => Err(Error::Unauthorized("session invalid".into())),
        }
    }

    /// Whether a key or session was found live within the last few seconds (revocations in
    /// this process forget it at once; other processes see them within the cache's life).
    fn known_live(&self, id: Uuid) -> bool {
        let now_us = to_micros(now());
        self.live_keys.lock().unwrap_or_else(|p| p.into_inner()).get(&id).is_some_and(|until| *until > now_us)
    }

    fn remember_live(&self, id: Uuid) {
        let mut live = self.live_keys.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= VERIFIED_KEY_CACHE_MAX {
            live.clear();
        }
        live.insert(id, to_micros(now()) + LIVE_KEY_CACHE_SECS * 1_000_000);
    }

    /// A token minted from a key is as good as the key: refused once it is revoked.
    async fn check_key_live(&self, key_id: Uuid, user_id: Uuid) -> Result<()> {
        if self.known_live(key_id) {
            return Ok(());
        }
        match self.store.api_key(key_id).await? {
            Some(k) if k.user_id == user_id && k.revoked_at.is_none() => {
                self.remember_live(key_id);
                Ok(())
            }
            Some(k) if k.user_id == user_id => Err(Error::Unauthorized("the API key this token came from has been revoked".into())),
            _ => Err(Error::Unauthorized("token invalid".into())),
        }
    }

    fn forget_key(&self, key_id: Uuid) {
        self.live_keys.lock().unwrap_or_else(|p| p.into_inner()).remove(&key_id);
    }

    pub async fn authenticate_api_key(&self, key: &str, origin: &Origin) -> Result<Principal> {
        let invalid = || Error::Unauthorized("invalid API key".into());
        let prefix = auth::api_key_prefix(key).ok_or_else(invalid)?;
        let ip = origin.ip;
        let credential = format!("key:{prefix}");
        let digest = auth::sha256_hex(key.as_bytes());
        let record = self.store.api_key_by_prefix(prefix).await?;
        // A key already verified costs no hashing and is never throttled.
        let cached = record.as_ref().is_some_and(|r| self.cached(&digest, r.id));
        if !cached {
            self.throttle.check(ip, &credential)?;
            // An unknown prefix is refused without a decoy hash: it tells the caller only that
            // a random 48-bit prefix is not in use, which says nothing about any real key.
            let verified = match &record {
                Some(r) => self.verify_shared(&digest, r.hashed_key.clone(), key.to_string()).await?,
                None => false,
            };
            if !verified {
                self.throttle.record_failure(ip, &credential);
                return Err(invalid());
            }
        }
        let record = record.ok_or_else(invalid)?;
        if !cached {
            self.remember(digest, record.id);
        }
        if record.revoked_at.is_some() {
            return Err(Error::Forbidden("the API key has been revoked".into()));
        }
        let user = self.store.user_by_id(record.user_id).await?.ok_or_else(invalid)?;
        if !user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        let now_us = to_micros(now());
        let stale = record.last_used_at.is_none_or(|t| to_micros(t) < now_us - KEY_TOUCH_INTERVAL_SECS * 1_000_000);
        if stale {
            self.store.touch_api_key(record.id, from_micros(now_us)).await?;
        }
        Ok(Principal { user, method: AuthMethod::ApiKey { key_id: record.id } })
    }

    async fn new_key(&self, user_id: Uuid, rotated_from: Option<Uuid>) -> Result<IssuedKey> {
        let (plaintext, prefix) = auth::new_api_key();
        let key = ApiKey {
            id: Uuid::now_v7(),
            user_id,
            prefix,
            hashed_key: self.hash(plaintext.clone()).await?,
            created_at: now(),
            revoked_at: None,
            last_used_at: None,
            rotated_from,
        };
        Ok(IssuedKey { key, plaintext })
    }

    pub async fn issue_api_key(&self, principal: &Principal, origin: &Origin) -> Result<IssuedKey> {
        let issued = self.new_key(principal.user.id, None).await?;
        self.store.insert_api_key(&issued.key).await?;
        self.audit(principal.actor(), "api_key.issue", key_payload(&issued.key), origin).await?;
        Ok(issued)
    }

    pub async fn list_api_keys(&self, principal: &Principal) -> Result<Vec<ApiKey>> {
        self.store.api_keys_for_user(principal.user.id).await
    }

    pub async fn rotate_api_key(&self, principal: &Principal, key_id: Uuid, origin: &Origin) -> Result<IssuedKey> {
        let issued = self.new_key(principal.user.id, Some(key_id)).await?;
        if !self.store.rotate_api_key(principal.user.id, key_id, &issued.key, now()).await? {
            return Err(Error::NotFound("api key"));
        }
        self.forget_key(key_id);
        self.audit(principal.actor(), "api_key.rotate", key_payload(&issued.key), origin).await?;
        Ok(issued)
    }

    pub async fn revoke_api_key(&self, principal: &Principal, key_id: Uuid, origin: &Origin) -> Result<()> {
        if !self.store.revoke_api_key(principal.user.id, key_id, now()).await? {
            return Err(Error::NotFound("api key"));
        }
        self.forget_key(key_id);
        self.audit(principal.actor(), "api_key.revoke", serde_json::json!({"key_id": key_id}), origin).await
    }
}

pub(super) fn key_payload(key: &ApiKey) -> serde_json::Value {
    serde_json::json!({"key_id": key.id, "prefix": key.prefix, "user_id": key.user_id, "rotated_from": key.rotated_from})
}

pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(email) } else { Err(Error::validation("email", "not a valid email address")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(normalize_email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        assert!(normalize_email("nope").is_err());
        assert!(normalize_email("a@b").is_err());
        assert!(normalize_email("a b@c.d").is_err());
    }
}
