//! Connected accounts and the authorizations that create them (see the `connected_accounts`
//! migration). Tokens arrive sealed and are stored as they are.

use domain::accounts::{AccountStatus, ConnectedAccount, PendingGrant, SealedTokens};
use domain::collect::TrackedPost;
use domain::model::{Platform, from_micros, to_micros};
use domain::{Error, Result};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{SqlStore, db_error};

const ACCOUNT_COLS: &str = "id::text, user_id::text, platform, external_id, handle, followers, gv_us(followers_at), scopes, status, \
                            access_token, refresh_token, gv_us(token_expires_at), last_error, gv_us(created_at), gv_us(updated_at)";

type AccountRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    String,
    String,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<String>,
    i64,
    i64,
);

fn bad(what: &str, v: &str) -> Error {
    Error::Internal(format!("connected account {what} {v}"))
}

fn platform(p: &str) -> Result<Platform> {
    p.parse().map_err(|_| bad("platform", p))
}

fn account(row: AccountRow) -> Result<ConnectedAccount> {
    let (id, user, p, external_id, handle, followers, followers_at, scopes, status, access, refresh, expires, last_error, created, updated) =
        row;
    Ok(ConnectedAccount {
        id: id.parse().map_err(|_| bad("id", &id))?,
        user_id: user.parse().map_err(|_| bad("user", &user))?,
        platform: platform(&p)?,
        external_id,
        handle,
        followers: followers.map(|f| f.max(0) as u64),
        followers_at: followers_at.map(from_micros),
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        status: AccountStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        tokens: SealedTokens { access, refresh, expires_at: expires.map(from_micros) },
        last_error,
        created_at: from_micros(created),
        updated_at: from_micros(updated),
    })
}

impl SqlStore {
    pub(crate) async fn write_pending_grant(&self, g: &PendingGrant, max: u32, now: OffsetDateTime) -> Result<bool> {
        let purge = "DELETE FROM oauth_pending_grants WHERE user_id = $1::uuid AND expires_at <= gv_ts($2)";
        let insert = "INSERT INTO oauth_pending_grants (state_hash, user_id, platform, verifier, expires_at) \
                      SELECT $1, $2::uuid, $3, $4, gv_ts($5) \
                      WHERE (SELECT COUNT(*) FROM oauth_pending_grants WHERE user_id = $2::uuid) < $6 RETURNING state_hash";
        let written: Option<String> = on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            sqlx::query(&sql(purge)).bind(g.user_id.to_string()).bind(to_micros(now)).execute(&mut *tx).await.map_err(db_error)?;
            let written = sqlx::query_scalar(&sql(insert))
                .bind(&g.state_hash)
                .bind(g.user_id.to_string())
                .bind(g.platform.as_str())
                .bind(&g.verifier)
                .bind(to_micros(g.expires_at))
                .bind(i64::from(max))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            written
        });
        Ok(written.is_some())
    }

    pub(crate) async fn remove_pending_grant(&self, state_hash: &str, now: OffsetDateTime) -> Result<Option<PendingGrant>> {
        // Deleted whether expired or not: a state is good for one attempt.
        let q = "DELETE FROM oauth_pending_grants WHERE state_hash = $1 RETURNING user_id::text, platform, verifier, gv_us(expires_at)";
        let row: Option<(String, String, Vec<u8>, i64)> =
            on_pool!(self, write, |pool, sql| sqlx::query_as(&sql(q)).bind(state_hash).fetch_optional(pool).await.map_err(db_error)?);
        let Some((user, p, verifier, expires)) = row else { return Ok(None) };
        let expires_at = from_micros(expires);
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(PendingGrant {
            state_hash: state_hash.to_string(),
            user_id: user.parse().map_err(|_| bad("grant user", &user))?,
            platform: platform(&p)?,
            verifier,
            expires_at,
        }))
    }

    async fn accounts_where(&self, filter: &str, binds: &[String]) -> Result<Vec<ConnectedAccount>> {
        let q = format!("SELECT {ACCOUNT_COLS} FROM connected_accounts WHERE {filter} ORDER BY created_at, id");
        let rows: Vec<AccountRow> = on_pool!(self, read, |pool, sql| {
            let q = sql(&q);
            let mut query = sqlx::query_as(&q);
            for b in binds {
                query = query.bind(b.clone());
            }
            query.fetch_all(pool).await.map_err(db_error)?
        });
        rows.into_iter().map(account).collect()
    }

    pub(crate) async fn read_account_by_external(&self, user_id: Uuid, p: Platform, external_id: &str) -> Result<Option<ConnectedAccount>> {
        let found = self
            .accounts_where(
                "user_id = $1::uuid AND platform = $2 AND external_id = $3",
                &[user_id.to_string(), p.as_str().into(), external_id.into()],
            )
            .await?;
        Ok(found.into_iter().next())
    }

    pub(crate) async fn read_account(&self, id: Uuid) -> Result<Option<ConnectedAccount>> {
        Ok(self.accounts_where("id = $1::uuid", &[id.to_string()]).await?.into_iter().next())
    }

    pub(crate) async fn read_accounts_for_user(&self, user_id: Uuid) -> Result<Vec<ConnectedAccount>> {
        self.accounts_where("user_id = $1::uuid", &[user_id.to_string()]).await
    }

    pub(crate) async fn write_account(&self, a: &ConnectedAccount, max: u32) -> Result<bool> {
        // A new account only while the user has fewer than `max`; an existing one is replaced.
        let q = "INSERT INTO connected_accounts (id, user_id, platform, external_id, handle, followers, followers_at, scopes, status, \
                 access_token, refresh_token, token_expires_at, last_error, created_at, updated_at) \
                 SELECT $1::uuid, $2::uuid, $3, $4, $5, $6, gv_ts($7), $8, $9, $10, $11, gv_ts($12), $13, gv_ts($14), gv_ts($15) \
                 WHERE EXISTS (SELECT 1 FROM connected_accounts WHERE id = $1::uuid) \
                    OR (SELECT COUNT(*) FROM connected_accounts WHERE user_id = $2::uuid) < $16 \
                 ON CONFLICT (id) DO UPDATE SET handle = excluded.handle, followers = excluded.followers, followers_at = excluded.followers_at, \
                 scopes = excluded.scopes, status = excluded.status, access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
                 token_expires_at = excluded.token_expires_at, last_error = excluded.last_error, updated_at = excluded.updated_at \
                 RETURNING id::text";
        let written: Option<String> = on_pool!(self, write, |pool, sql| {
            sqlx::query_scalar(&sql(q))
                .bind(a.id.to_string())
                .bind(a.user_id.to_string())
                .bind(a.platform.as_str())
                .bind(&a.external_id)
                .bind(&a.handle)
                .bind(a.followers.map(|f| f.min(i64::MAX as u64) as i64))
                .bind(a.followers_at.map(to_micros))
                .bind(a.scopes.join(" "))
                .bind(a.status.as_str())
                .bind(&a.tokens.access)
                .bind(&a.tokens.refresh)
                .bind(a.tokens.expires_at.map(to_micros))
                .bind(&a.last_error)
                .bind(to_micros(a.created_at))
                .bind(to_micros(a.updated_at))
                .bind(i64::from(max))
                .fetch_optional(pool)
                .await
                .map_err(db_error)?
        });
        Ok(written.is_some())
    }

    pub(crate) async fn write_account_tokens(&self, a: &ConnectedAccount) -> Result<()> {
        let q = "UPDATE connected_accounts SET access_token = $2, refresh_token = $3, token_expires_at = gv_ts($4), scopes = $5, \
                 updated_at = gv_ts($6) WHERE id = $1::uuid";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(a.id.to_string())
                .bind(&a.tokens.access)
                .bind(&a.tokens.refresh)
                .bind(a.tokens.expires_at.map(to_micros))
                .bind(a.scopes.join(" "))
                .bind(to_micros(a.updated_at))
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(())
    }

    pub(crate) async fn write_account_status(
        &self,
        id: Uuid,
        status: AccountStatus,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let q = "UPDATE connected_accounts SET status = $2, last_error = $3, updated_at = gv_ts($4) WHERE id = $1::uuid";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(id.to_string())
                .bind(status.as_str())
                .bind(error)
                .bind(to_micros(now))
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(())
    }

    pub(crate) async fn remove_account(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let q = "DELETE FROM connected_accounts WHERE id = $1::uuid AND user_id = $2::uuid";
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).bind(id.to_string()).bind(user_id.to_string()).execute(pool).await.map_err(db_error)?.rows_affected()
        });
        Ok(done == 1)
    }
}

const POST_COLS: &str = "id::text, job_id::text, user_id::text, account_id::text, platform, post_id, post_url, gv_us(posted_at), followers, \
                         gv_us(next_check_at), checks_done::bigint, last_error, gv_us(created_at)";

type PostRow = (String, String, String, String, String, String, Option<String>, i64, Option<i64>, Option<i64>, i64, Option<String>, i64);

fn tracked(row: PostRow) -> Result<TrackedPost> {
    let (id, job, user, account, p, post_id, post_url, posted, followers, next, checks, last_error, created) = row;
    let uuid = |what: &str, v: &str| v.parse::<Uuid>().map_err(|_| bad(what, v));
    Ok(TrackedPost {
        id: uuid("post id", &id)?,
        job_id: uuid("post job", &job)?,
        user_id: uuid("post user", &user)?,
        account_id: uuid("post account", &account)?,
        platform: platform(&p)?,
        post_id,
        post_url,
        posted_at: from_micros(posted),
        followers: followers.map(|f| f.max(0) as u64),
        next_check_at: next.map(from_micros),
        checks_done: checks.clamp(0, i64::from(u32::MAX)) as u32,
        last_error,
        created_at: from_micros(created),
    })
}

impl SqlStore {
    pub(crate) async fn read_accounts_to_renew(&self, before: OffsetDateTime, limit: u32) -> Result<Vec<ConnectedAccount>> {
        let q = format!(
            "SELECT {ACCOUNT_COLS} FROM connected_accounts WHERE status = 'active' AND refresh_token IS NULL \
             AND token_expires_at IS NOT NULL AND token_expires_at < gv_ts($1) ORDER BY token_expires_at LIMIT $2"
        );
        let rows: Vec<AccountRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(to_micros(before)).bind(i64::from(limit)).fetch_all(pool).await.map_err(db_error)?
        });
        rows.into_iter().map(account).collect()
    }

    pub(crate) async fn write_tracked_post(&self, t: &TrackedPost, max: u32) -> Result<bool> {
        let q = "INSERT INTO tracked_posts (id, job_id, user_id, account_id, platform, post_id, post_url, posted_at, followers, next_check_at, \
                 checks_done, last_error, created_at) \
                 SELECT $1::uuid, $2::uuid, $3::uuid, $4::uuid, $5, $6, $7, gv_ts($8), $9, gv_ts($10), $11, $12, gv_ts($13) \
                 WHERE (SELECT COUNT(*) FROM tracked_posts WHERE job_id = $2::uuid) < $14 \
                 ON CONFLICT (job_id, account_id, post_id) DO NOTHING RETURNING id::text";
        let written: Option<String> = on_pool!(self, write, |pool, sql| {
            sqlx::query_scalar(&sql(q))
                .bind(t.id.to_string())
                .bind(t.job_id.to_string())
                .bind(t.user_id.to_string())
                .bind(t.account_id.to_string())
                .bind(t.platform.as_str())
                .bind(&t.post_id)
                .bind(&t.post_url)
                .bind(to_micros(t.posted_at))
                .bind(t.followers.map(|f| f.min(i64::MAX as u64) as i64))
                .bind(t.next_check_at.map(to_micros))
                .bind(i64::from(t.checks_done))
                .bind(&t.last_error)
                .bind(to_micros(t.created_at))
                .bind(i64::from(max))
                .fetch_optional(pool)
                .await
                .map_err(db_error)?
        });
        Ok(written.is_some())
    }

    pub(crate) async fn claim_posts(&self, now: OffsetDateTime, lease_until: OffsetDateTime, limit: u32) -> Result<Vec<TrackedPost>> {
        // The outer condition is checked again on a row another collector claimed meanwhile
        // (PostgreSQL re-reads it), so a check is claimed once.
        let q = format!(
            "UPDATE tracked_posts SET next_check_at = gv_ts($2) WHERE next_check_at <= gv_ts($1) AND id IN \
             (SELECT id FROM tracked_posts WHERE next_check_at <= gv_ts($1) ORDER BY next_check_at LIMIT $3) RETURNING {POST_COLS}"
        );
        let rows: Vec<PostRow> = on_pool!(self, write, |pool, sql| {
            sqlx::query_as(&sql(&q))
                .bind(to_micros(now))
                .bind(to_micros(lease_until))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db_error)?
        });
        rows.into_iter().map(tracked).collect()
    }

    pub(crate) async fn write_post_check(
        &self,
        id: Uuid,
        next: Option<OffsetDateTime>,
        checks_done: u32,
        last_error: Option<&str>,
    ) -> Result<()> {
        let q = "UPDATE tracked_posts SET next_check_at = gv_ts($2), checks_done = $3, last_error = $4 WHERE id = $1::uuid";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(id.to_string())
                .bind(next.map(to_micros))
                .bind(i64::from(checks_done))
                .bind(last_error)
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(())
    }

    pub(crate) async fn read_tracked_posts(&self, job_id: Uuid) -> Result<Vec<TrackedPost>> {
        let q = format!("SELECT {POST_COLS} FROM tracked_posts WHERE job_id = $1::uuid ORDER BY created_at, id");
        let rows: Vec<PostRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(job_id.to_string()).fetch_all(pool).await.map_err(db_error)?
        });
        rows.into_iter().map(tracked).collect()
    }
}
