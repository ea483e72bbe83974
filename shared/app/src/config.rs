//! Configuration, read once at start-up from the environment (or any lookup, in tests), into
//! one `Config` for either profile. Every setting has one name, `GOVIRAL_*`; bad values stop
//! start-up with a clear message. Which adapter serves each port follows from it (see
//! `Composition`): a bucket means S3, a state machine means Step Functions, both counter
//! tables mean DynamoDB; otherwise the embedded adapters.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use domain::auth::AuthConfig;
use domain::service::{RateLimits, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// One machine, no cloud: SQLite file, data dir, local adapters. Missing secrets are
    /// generated and kept in the data dir.
    Embedded,
    /// A Lambda container: the database must be named, secrets come from Secrets Manager,
    /// and the AWS resources below pick the adapters.
    Aws,
}

/// The AWS resources a function is given (its environment in template.yaml).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsResources {
    /// `GOVIRAL_BLOB_BUCKET`: blobs and signed URLs in S3.
    pub blob_bucket: Option<String>,
    /// `GOVIRAL_S3_PATH_STYLE`: path-style addressing, for emulators.
    pub s3_path_style: bool,
    /// `GOVIRAL_STATE_MACHINE_ARN`: jobs start executions of this state machine.
    pub state_machine_arn: Option<String>,
    /// `GOVIRAL_COUNTERS_TABLE` + `GOVIRAL_IDEMPOTENCY_TABLE`: hot counters in DynamoDB.
    pub dynamo_tables: Option<(String, String)>,
    /// `GOVIRAL_USAGE_TABLE`: admission checks the per-period usage totals in DynamoDB
    /// (markers go to the idempotency table, so it needs the two above).
    pub usage_table: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub profile: Profile,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    pub bind: SocketAddr,
    /// How clients reach the local server (signed blob URLs point here); default: the bound address.
    pub public_url: Option<String>,
    /// The built web dashboard (`shared/dashboard/dist`), served at `/` by `goviral serve`;
    /// None: the API alone.
    pub dashboard_dir: Option<PathBuf>,
    /// Apply migrations at start-up (the local server does; Lambdas leave it to deploys).
    pub migrate: bool,
    pub settings: Settings,
    pub log_json: bool,
    /// Where traces go (an OTLP/HTTP endpoint, e.g. `http://127.0.0.1:4318/v1/traces`); None: not exported.
    pub otlp_endpoint: Option<String>,
    /// Pipeline steps the local runner executes at once.
    pub pipeline_concurrency: usize,
    /// `GOVIRAL_PIPELINE_PER_USER`: the local runner's jobs under way at once for one user
    /// (downloads included); users take turns for the rest.
    pub pipeline_per_user: u32,
    pub webhook_timeout: Duration,
    /// Development only: let webhooks reach loopback addresses over http.
    pub webhook_allow_loopback: bool,
    /// Video analysis and `source_url` downloads.
    pub media: MediaConfig,
    /// Multiplies the state machine's retry delays (1.0 in production).
    pub pipeline_retry_scale: f64,
    /// The OpenAI path, on when `GOVIRAL_OPENAI_API_KEY` is set.
    pub openai: Option<goviral_llm::OpenAiSettings>,
    /// The billing export to Stripe's Meters API, on when `GOVIRAL_STRIPE_API_KEY` is set.
    pub stripe: Option<goviral_adapters::stripe::StripeSettings>,
    /// Timeouts and the connection cap of `goviral serve`.
    pub server: goviral_api::server::ServerLimits,
    /// Connected platform accounts: the apps registered with each platform, and the key that
    /// seals their tokens.
    pub accounts: AccountsConfig,
    /// `GOVIRAL_MODEL_REFRESH_SECS`: how often a process re-reads which model version serves.
    pub model_refresh: Duration,
    /// `GOVIRAL_TRAINING_DIR`: what retraining reads (train.csv, gate.csv or dev.csv, minilm/);
    /// set, `goviral serve` retrains weekly. On AWS, `GOVIRAL_TRAINING_PREFIX` in the blob
    /// bucket holds the same files.
    pub training_dir: Option<PathBuf>,
    pub training_prefix: Option<String>,
    pub aws: AwsResources,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountsConfig {
    /// `GOVIRAL_{YOUTUBE,X,INSTAGRAM,TIKTOK}_CLIENT_ID` + `_CLIENT_SECRET` (+ `_BASE_URL`,
    /// `_BUDGET` as `calls/seconds`): the platforms creators may connect.
    pub apps: Vec<(domain::model::Platform, goviral_adapters::platforms::PlatformSettings)>,
    /// `GOVIRAL_OAUTH_REDIRECT_URL`: where platforms send creators back; default
    /// `{GOVIRAL_PUBLIC_URL}/api/v1/accounts/callback`.
    pub redirect_url: Option<String>,
    /// `GOVIRAL_TOKEN_KEY_FILE`: the master key sealing tokens on one machine (created on
    /// first use); default `{data dir}/token-master.key`.
    pub key_file: PathBuf,
    /// `GOVIRAL_KMS_KEY_ID`: on AWS, the KMS key that wraps each token's data key.
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// `GOVIRAL_MEDIA_MAX_SECONDS`: longer videos are refused before they are decoded.
    pub max_seconds: f64,
    /// `GOVIRAL_MEDIA_TOOL_TIMEOUT_MS`: the longest one ffmpeg/ffprobe run may take.
    pub tool_timeout: Duration,
    /// `GOVIRAL_MEDIA_FETCH_TIMEOUT_MS`: the longest a `source_url` download may take.
    pub fetch_timeout: Duration,
    /// `GOVIRAL_MEDIA_FETCH_MAX_BYTES`: the largest `source_url` download.
    pub fetch_max_bytes: u64,
    /// `GOVIRAL_MEDIA_FETCH_MIN_BYTES_PER_SEC`: a download slower than this over any window
    /// of `GOVIRAL_MEDIA_FETCH_RATE_WINDOW_MS` (10 s) is given up (a server trickling bytes
    /// would otherwise hold a download place for the whole timeout); 0 turns it off.
    pub fetch_min_rate: u64,
    pub fetch_rate_window: Duration,
    /// `GOVIRAL_MEDIA_DOWNLOADS_AT_ONCE`: `source_url` downloads the local runner makes at
    /// once, outside its pipeline slots.
    pub downloads_at_once: usize,
    /// `GOVIRAL_MEDIA_ALLOW_LOOPBACK`, development only: `source_url` may be http:// on loopback.
    pub allow_loopback: bool,
    /// `GOVIRAL_WHISPER_DIR`: the converted speech model (scripts/whisper-model); without it
    /// videos are measured and scored without their speech, and say so.
    pub whisper_dir: Option<PathBuf>,
    /// `GOVIRAL_FACE_MODEL`: CenterFace's `centerface.onnx` (scripts/face-model); without it
    /// faces are not looked for (`metrics.media.faces` is null).
    pub face_model: Option<PathBuf>,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

fn parse<T: std::str::FromStr>(lookup: &impl Fn(&str) -> Option<String>, name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e| ConfigError(format!("{name}={v:?}: {e}"))),
    }
}

impl Config {
    pub fn from_env(profile: Profile) -> Result<Config, ConfigError> {
        Self::from_lookup(profile, env)
    }

    pub fn from_lookup(profile: Profile, lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mode = profile;
        let data_dir = PathBuf::from(lookup("GOVIRAL_DATA_DIR").unwrap_or_else(|| ".goviral".into()));
        let database_url = match (lookup("GOVIRAL_DATABASE_URL"), &mode) {
            (Some(url), _) => url,
            (None, Profile::Embedded) => format!("sqlite://{}", data_dir.join("goviral.db").display()),
            (None, Profile::Aws) => return Err(ConfigError("GOVIRAL_DATABASE_URL is required".into())),
        };
        // Only functions that issue or check tokens need the key; `Composition::app` asks for
        // it. The embedded default generates one into the data dir (`prepare_data_dir`).
        let jwt_secret = match lookup("GOVIRAL_JWT_SECRET") {
            Some(s) if s.len() < 32 => return Err(ConfigError("GOVIRAL_JWT_SECRET must be at least 32 characters".into())),
            Some(s) => Some(s.into_bytes()),
            None => None,
        };
        let argon2_memory_kib = parse(&lookup, "GOVIRAL_ARGON2_MEMORY_KIB", 19_456u32)?;
        let argon2_iterations = parse(&lookup, "GOVIRAL_ARGON2_ITERATIONS", 2u32)?;
        if !(8..=1_048_576).contains(&argon2_memory_kib) || !(1..=10).contains(&argon2_iterations) {
            return Err(ConfigError("Argon2 memory must be 8–1048576 KiB and iterations 1–10".into()));
        }
        let token_ttl_secs = parse(&lookup, "GOVIRAL_TOKEN_TTL_SECS", 3_600u64)?;
        if !(60..=86_400).contains(&token_ttl_secs) {
            return Err(ConfigError("GOVIRAL_TOKEN_TTL_SECS must be 60–86400".into()));
        }
        let defaults = RateLimits::default();
        let rate_limits = RateLimits {
            free_per_minute: parse(&lookup, "GOVIRAL_RATE_LIMIT_FREE", defaults.free_per_minute)?,
            pro_per_minute: parse(&lookup, "GOVIRAL_RATE_LIMIT_PRO", defaults.pro_per_minute)?,
            enterprise_per_minute: parse(&lookup, "GOVIRAL_RATE_LIMIT_ENTERPRISE", defaults.enterprise_per_minute)?,
        };
        let dynamo_tables = match (lookup("GOVIRAL_COUNTERS_TABLE"), lookup("GOVIRAL_IDEMPOTENCY_TABLE")) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(ConfigError("set both GOVIRAL_COUNTERS_TABLE and GOVIRAL_IDEMPOTENCY_TABLE, or neither".into())),
        };
        let usage_table = lookup("GOVIRAL_USAGE_TABLE");
        if usage_table.is_some() && dynamo_tables.is_none() {
            return Err(ConfigError("GOVIRAL_USAGE_TABLE needs GOVIRAL_COUNTERS_TABLE and GOVIRAL_IDEMPOTENCY_TABLE".into()));
        }
        let aws = AwsResources {
            blob_bucket: lookup("GOVIRAL_BLOB_BUCKET"),
            s3_path_style: parse(&lookup, "GOVIRAL_S3_PATH_STYLE", false)?,
            state_machine_arn: lookup("GOVIRAL_STATE_MACHINE_ARN"),
            dynamo_tables,
            usage_table,
        };
        if profile == Profile::Embedded && aws != AwsResources::default() {
            return Err(ConfigError("AWS resources (GOVIRAL_BLOB_BUCKET, …) are for the AWS profile".into()));
        }
        let accounts = accounts(&lookup, &data_dir)?;
        Ok(Config {
            profile,
            aws,
            data_dir,
            database_url,
            db_max_connections: parse(&lookup, "GOVIRAL_DB_MAX_CONNECTIONS", if mode == Profile::Aws { 2 } else { 8 })?,
            db_acquire_timeout: Duration::from_millis(parse(&lookup, "GOVIRAL_DB_ACQUIRE_TIMEOUT_MS", 5_000u64)?),
            bind: parse(&lookup, "GOVIRAL_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            public_url: public_url(&lookup)?,
            migrate: parse(&lookup, "GOVIRAL_MIGRATE", mode == Profile::Embedded)?,
            settings: Settings {
                auth: AuthConfig { jwt_secret: jwt_secret.unwrap_or_default(), token_ttl_secs, argon2_memory_kib, argon2_iterations },
                rate_limits,
                usage: usage_terms(&lookup)?,
                allow_loopback_webhooks: parse(&lookup, "GOVIRAL_WEBHOOK_ALLOW_LOOPBACK", false)?,
                allow_loopback_media: parse(&lookup, "GOVIRAL_MEDIA_ALLOW_LOOPBACK", false)?,
                stream_heartbeat: Duration::from_millis(parse(&lookup, "GOVIRAL_STREAM_HEARTBEAT_MS", 15_000u64)?.max(100)),
                stream_max: Duration::from_secs(parse(&lookup, "GOVIRAL_STREAM_MAX_SECS", 1_800u64)?.max(1)),
                stream_base_url: lookup("GOVIRAL_STREAM_BASE_URL").map(|u| u.trim_end_matches('/').to_string()),
                streams_per_user: parse(&lookup, "GOVIRAL_STREAMS_PER_USER", 10u32)?.max(1),
                streams_per_key: parse(&lookup, "GOVIRAL_STREAMS_PER_KEY", 5u32)?.max(1),
                // Cookies marked Secure are sent over https only: always so on AWS, and on one
                // machine when it is reached over https.
                secure_cookies: parse(
                    &lookup,
                    "GOVIRAL_SECURE_COOKIES",
                    mode == Profile::Aws || public_url(&lookup)?.is_some_and(|u| u.starts_with("https://")),
                )?,
                dashboard_origins: dashboard_origins(&lookup)?,
            },
            dashboard_dir: lookup("GOVIRAL_DASHBOARD_DIR").map(PathBuf::from),
            log_json: parse(&lookup, "GOVIRAL_LOG_JSON", mode == Profile::Aws)?,
            otlp_endpoint: match lookup("GOVIRAL_OTLP_ENDPOINT").filter(|u| !u.trim().is_empty()) {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => Some(u),
                Some(u) => return Err(ConfigError(format!("GOVIRAL_OTLP_ENDPOINT={u:?}: must be an http(s) URL"))),
                None => None,
            },
            pipeline_concurrency: parse(&lookup, "GOVIRAL_PIPELINE_CONCURRENCY", 16usize)?,
            pipeline_per_user: parse(&lookup, "GOVIRAL_PIPELINE_PER_USER", 4u32)?.max(1),
            webhook_timeout: Duration::from_millis(parse(&lookup, "GOVIRAL_WEBHOOK_TIMEOUT_MS", 10_000u64)?),
            webhook_allow_loopback: parse(&lookup, "GOVIRAL_WEBHOOK_ALLOW_LOOPBACK", false)?,
            pipeline_retry_scale: parse(&lookup, "GOVIRAL_PIPELINE_RETRY_SCALE", 1.0f64)?,
            media: media(&lookup)?,
            openai: openai(&lookup)?,
            stripe: stripe(&lookup)?,
            server: server_limits(&lookup)?,
            accounts,
            model_refresh: Duration::from_secs(parse(&lookup, "GOVIRAL_MODEL_REFRESH_SECS", 60u64)?.clamp(1, 86_400)),
            training_dir: lookup("GOVIRAL_TRAINING_DIR").map(PathBuf::from),
            training_prefix: lookup("GOVIRAL_TRAINING_PREFIX").map(|p| p.trim_matches('/').to_string()),
        })
    }
}

/// Each plan's monthly units (`GOVIRAL_{FREE,PRO,ENTERPRISE}_MONTHLY_UNITS`); a video reserves
/// one unit per started minute of the media length cap.
fn usage_terms(lookup: &impl Fn(&str) -> Option<String>) -> Result<domain::usage::UsageTerms, ConfigError> {
    let d = domain::usage::UsageTerms::default();
    let mut terms = d.with_video_cap(parse(lookup, "GOVIRAL_MEDIA_MAX_SECONDS", 180.0f64)?);
    terms.free.monthly_units = parse(lookup, "GOVIRAL_FREE_MONTHLY_UNITS", d.free.monthly_units)?;
    terms.pro.monthly_units = parse(lookup, "GOVIRAL_PRO_MONTHLY_UNITS", d.pro.monthly_units)?;
    terms.enterprise.monthly_units = parse(lookup, "GOVIRAL_ENTERPRISE_MONTHLY_UNITS", d.enterprise.monthly_units)?;
    Ok(terms)
}

/// A variable from the process environment; empty counts as unset.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn server_limits(lookup: &impl Fn(&str) -> Option<String>) -> Result<goviral_api::server::ServerLimits, ConfigError> {
    let defaults = goviral_api::server::ServerLimits::default();
    let ms = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
        let v = parse(lookup, name, default.as_millis() as u64)?;
        if !(1..=3_600_000).contains(&v) {
            return Err(ConfigError(format!("{name} must be 1–3600000 ms")));
        }
        Ok(Duration::from_millis(v))
    };
    let max_connections = parse(lookup, "GOVIRAL_HTTP_MAX_CONNECTIONS", defaults.max_connections)?;
    if !(1..=100_000).contains(&max_connections) {
        return Err(ConfigError("GOVIRAL_HTTP_MAX_CONNECTIONS must be 1–100000".into()));
    }
    let per_address = parse(lookup, "GOVIRAL_HTTP_MAX_CONNECTIONS_PER_ADDRESS", defaults.per_address)?;
    if !(1..=max_connections).contains(&per_address) {
        return Err(ConfigError("GOVIRAL_HTTP_MAX_CONNECTIONS_PER_ADDRESS must be 1–GOVIRAL_HTTP_MAX_CONNECTIONS".into()));
    }
    Ok(goviral_api::server::ServerLimits {
        header_timeout: ms("GOVIRAL_HTTP_HEADER_TIMEOUT_MS", defaults.header_timeout)?,
        body_idle_timeout: ms("GOVIRAL_HTTP_BODY_IDLE_TIMEOUT_MS", defaults.body_idle_timeout)?,
        max_connections,
        per_address,
        reserve: parse(lookup, "GOVIRAL_HTTP_RESERVED_CONNECTIONS", defaults.reserve)?,
        drain_timeout: defaults.drain_timeout,
    })
}

fn media(lookup: &impl Fn(&str) -> Option<String>) -> Result<MediaConfig, ConfigError> {
    let max_seconds = parse(lookup, "GOVIRAL_MEDIA_MAX_SECONDS", 180.0f64)?;
    if !(1.0..=3_600.0).contains(&max_seconds) {
        return Err(ConfigError("GOVIRAL_MEDIA_MAX_SECONDS must be 1–3600".into()));
    }
    let ms = |name: &str, default: u64| -> Result<Duration, ConfigError> {
        let v = parse(lookup, name, default)?;
        if !(100..=900_000).contains(&v) {
            return Err(ConfigError(format!("{name} must be 100–900000 ms")));
        }
        Ok(Duration::from_millis(v))
    };
    let fetch_max_bytes = parse(lookup, "GOVIRAL_MEDIA_FETCH_MAX_BYTES", domain::media::FETCH_MAX_BYTES)?;
    if !(1..=domain::media::FETCH_MAX_BYTES).contains(&fetch_max_bytes) {
        return Err(ConfigError(format!("GOVIRAL_MEDIA_FETCH_MAX_BYTES must be 1–{}", domain::media::FETCH_MAX_BYTES)));
    }
    Ok(MediaConfig {
        max_seconds,
        tool_timeout: ms("GOVIRAL_MEDIA_TOOL_TIMEOUT_MS", 120_000)?,
        fetch_timeout: ms("GOVIRAL_MEDIA_FETCH_TIMEOUT_MS", 120_000)?,
        fetch_max_bytes,
        fetch_min_rate: parse(lookup, "GOVIRAL_MEDIA_FETCH_MIN_BYTES_PER_SEC", 32 * 1024u64)?,
        fetch_rate_window: ms("GOVIRAL_MEDIA_FETCH_RATE_WINDOW_MS", 10_000)?,
        downloads_at_once: parse(lookup, "GOVIRAL_MEDIA_DOWNLOADS_AT_ONCE", 4usize)?.clamp(1, 64),
        allow_loopback: parse(lookup, "GOVIRAL_MEDIA_ALLOW_LOOPBACK", false)?,
        whisper_dir: lookup("GOVIRAL_WHISPER_DIR").map(PathBuf::from),
        face_model: lookup("GOVIRAL_FACE_MODEL").map(PathBuf::from),
    })
}

/// `GOVIRAL_DASHBOARD_ORIGINS` (comma-separated `https://host[:port]`) and the public URL's
/// origin: the pages a browser may sign in from besides the API's own origin.
fn dashboard_origins(lookup: &impl Fn(&str) -> Option<String>) -> Result<Vec<String>, ConfigError> {
    let mut origins: Vec<String> = public_url(lookup)?.map(|u| origin_of(&u)).into_iter().collect();
    for origin in lookup("GOVIRAL_DASHBOARD_ORIGINS").unwrap_or_default().split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if !(origin.starts_with("https://") || origin.starts_with("http://127.0.0.1") || origin.starts_with("http://localhost")) {
            return Err(ConfigError(format!("GOVIRAL_DASHBOARD_ORIGINS: {origin:?} must be https (or http on loopback)")));
        }
        origins.push(origin_of(origin));
    }
    Ok(origins)
}

/// `scheme://host[:port]` of a URL (what a browser sends as `Origin`).
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    format!("{scheme}://{}", rest.split('/').next().unwrap_or_default())
}

fn public_url(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    match lookup("GOVIRAL_PUBLIC_URL") {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            Err(ConfigError(format!("GOVIRAL_PUBLIC_URL={url:?}: must be an http(s) URL")))
        }
        other => Ok(other.map(|u| u.trim_end_matches('/').to_string())),
    }
}

fn openai(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<goviral_llm::OpenAiSettings>, ConfigError> {
    let Some(key) = lookup("GOVIRAL_OPENAI_API_KEY").filter(|k| !k.trim().is_empty()) else { return Ok(None) };
    let base_url = lookup("GOVIRAL_OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into());
    if !(base_url.starts_with("https://") || base_url.starts_with("http://127.0.0.1") || base_url.starts_with("http://localhost")) {
        return Err(ConfigError(format!("GOVIRAL_OPENAI_BASE_URL={base_url:?}: must be https (or http on loopback)")));
    }
    let mut settings =
        goviral_llm::OpenAiSettings::new(base_url, key.trim(), lookup("GOVIRAL_OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()));
    settings.timeout = Duration::from_millis(parse(lookup, "GOVIRAL_OPENAI_TIMEOUT_MS", 8_000u64)?);
    settings.max_attempts = parse(lookup, "GOVIRAL_OPENAI_MAX_ATTEMPTS", 3u32)?.max(1);
    Ok(Some(settings))
}

fn loopback_or_https(name: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost") {
        Ok(())
    } else {
        Err(ConfigError(format!("{name}={url:?}: must be https (or http on loopback)")))
    }
}

fn accounts(lookup: &impl Fn(&str) -> Option<String>, data_dir: &std::path::Path) -> Result<AccountsConfig, ConfigError> {
    use domain::model::Platform;
    use goviral_adapters::platforms::{Backoff, Budget, PlatformSettings};
    let timeout = Duration::from_millis(parse(lookup, "GOVIRAL_PLATFORM_TIMEOUT_MS", 10_000u64)?.clamp(100, 120_000));
    let backoff = Backoff {
        retries: parse(lookup, "GOVIRAL_PLATFORM_RETRIES", Backoff::default().retries)?.min(10),
        first: Duration::from_millis(parse(lookup, "GOVIRAL_PLATFORM_BACKOFF_MS", 500u64)?.clamp(1, 60_000)),
        max_wait: Duration::from_millis(parse(lookup, "GOVIRAL_PLATFORM_MAX_WAIT_MS", 10_000u64)?.min(300_000)),
    };
    let mut apps = Vec::new();
    for platform in [Platform::Youtube, Platform::X, Platform::Instagram, Platform::Tiktok] {
        let prefix = format!("GOVIRAL_{}", platform.as_str().to_ascii_uppercase());
        let (id, secret) = (lookup(&format!("{prefix}_CLIENT_ID")), lookup(&format!("{prefix}_CLIENT_SECRET")));
        let (client_id, client_secret) = match (id, secret) {
            (None, None) => continue,
            (Some(i), Some(s)) => (i.trim().to_string(), s.trim().to_string()),
            _ => return Err(ConfigError(format!("set both {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET, or neither"))),
        };
        let base_name = format!("{prefix}_BASE_URL");
        let base_url = lookup(&base_name);
        if let Some(url) = &base_url {
            loopback_or_https(&base_name, url)?;
        }
        let mut budget = PlatformSettings::default_budget(platform);
        let budget_name = format!("{prefix}_BUDGET");
        if let Some(b) = lookup(&budget_name) {
            let parsed = b.split_once('/').and_then(|(c, w)| Some((c.trim().parse::<u64>().ok()?, w.trim().parse::<u64>().ok()?)));
            let Some((calls, secs)) = parsed.filter(|(c, w)| *c >= 1 && (1..=31 * 86_400).contains(w)) else {
                return Err(ConfigError(format!("{budget_name}={b:?}: want calls/seconds, e.g. 10000/86400")));
            };
            budget = Budget {
                calls,
                window: Duration::from_secs(secs),
                offset: if secs == budget.window.as_secs() { budget.offset } else { Duration::ZERO },
                per_user: Budget::default_share(calls),
            };
        }
        let share_name = format!("{prefix}_USER_SHARE");
        if let Some(share) = lookup(&share_name) {
            match share.trim().parse::<u64>() {
                Ok(n) if (1..=budget.calls).contains(&n) => budget.per_user = n,
                _ => {
                    return Err(ConfigError(format!(
                        "{share_name}={share:?}: want a number of calls from 1 to the budget's {}",
                        budget.calls
                    )));
                }
            }
        }
        apps.push((platform, PlatformSettings { client_id, client_secret, base_url, timeout, budget, backoff }));
    }
    let redirect_url = lookup("GOVIRAL_OAUTH_REDIRECT_URL");
    if let Some(u) = &redirect_url {
        loopback_or_https("GOVIRAL_OAUTH_REDIRECT_URL", u)?;
    }
    Ok(AccountsConfig {
        apps,
        redirect_url,
        key_file: lookup("GOVIRAL_TOKEN_KEY_FILE").map_or_else(|| data_dir.join("token-master.key"), PathBuf::from),
        kms_key_id: lookup("GOVIRAL_KMS_KEY_ID"),
    })
}

fn stripe(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<goviral_adapters::stripe::StripeSettings>, ConfigError> {
    let Some(key) = lookup("GOVIRAL_STRIPE_API_KEY").filter(|k| !k.trim().is_empty()) else { return Ok(None) };
    let base_url = lookup("GOVIRAL_STRIPE_BASE_URL").unwrap_or_else(|| "https://api.stripe.com".into());
    if !(base_url.starts_with("https://") || base_url.starts_with("http://127.0.0.1") || base_url.starts_with("http://localhost")) {
        return Err(ConfigError(format!("GOVIRAL_STRIPE_BASE_URL={base_url:?}: must be https (or http on loopback)")));
    }
    Ok(Some(goviral_adapters::stripe::StripeSettings {
        base_url,
        api_key: key.trim().to_string(),
        event_name: lookup("GOVIRAL_STRIPE_METER_EVENT").unwrap_or_else(|| "goviral_units".into()),
        timeout: Duration::from_millis(parse(lookup, "GOVIRAL_STRIPE_TIMEOUT_MS", 10_000u64)?),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(mode: Profile, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(mode, |k| vars.get(k).cloned())
    }

    #[test]
    fn openai_is_off_without_a_key_and_checked_with_one() {
        assert!(config(Profile::Embedded, &[]).unwrap().openai.is_none());
        let c = config(Profile::Embedded, &[("GOVIRAL_OPENAI_API_KEY", "sk-test"), ("GOVIRAL_OPENAI_MODEL", "gpt-x")]).unwrap();
        let o = c.openai.unwrap();
        assert_eq!((o.base_url.as_str(), o.model.as_str(), o.max_attempts), ("https://api.openai.com/v1", "gpt-x", 3));
        let e =
            config(Profile::Embedded, &[("GOVIRAL_OPENAI_API_KEY", "k"), ("GOVIRAL_OPENAI_BASE_URL", "http://10.0.0.1/v1")]).unwrap_err();
        assert!(e.0.contains("GOVIRAL_OPENAI_BASE_URL"));
    }

    #[test]
    fn embedded_defaults_need_nothing() {
        let c = config(Profile::Embedded, &[]).unwrap();
        assert_eq!(c.database_url, "sqlite://.goviral/goviral.db");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert!(c.migrate);
    }

    #[test]
    fn lambda_requires_secrets_and_bad_values_are_named() {
        assert!(config(Profile::Aws, &[]).unwrap_err().0.contains("GOVIRAL_DATABASE_URL"));
        let e = config(Profile::Aws, &[("GOVIRAL_DATABASE_URL", "postgres://x"), ("GOVIRAL_JWT_SECRET", "short")]).unwrap_err();
        assert!(e.0.contains("at least 32"));
        let e = config(Profile::Embedded, &[("GOVIRAL_RATE_LIMIT_PRO", "many")]).unwrap_err();
        assert!(e.0.contains("GOVIRAL_RATE_LIMIT_PRO"));
        let ok = config(Profile::Aws, &[("GOVIRAL_DATABASE_URL", "postgres://x"), ("GOVIRAL_JWT_SECRET", &"s".repeat(32))]).unwrap();
        assert!(!ok.migrate && ok.log_json);
        // Workers are given no signing key at all.
        assert!(config(Profile::Aws, &[("GOVIRAL_DATABASE_URL", "postgres://x")]).unwrap().settings.auth.jwt_secret.is_empty());
        let e = config(Profile::Aws, &[("GOVIRAL_DATABASE_URL", "postgres://x"), ("GOVIRAL_COUNTERS_TABLE", "c")]).unwrap_err();
        assert!(e.0.contains("GOVIRAL_IDEMPOTENCY_TABLE"));
        let e = config(Profile::Aws, &[("GOVIRAL_DATABASE_URL", "postgres://x"), ("GOVIRAL_USAGE_TABLE", "u")]).unwrap_err();
        assert!(e.0.contains("GOVIRAL_COUNTERS_TABLE"));
    }
}
