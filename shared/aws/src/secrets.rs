//! Secrets Manager: read once when a Lambda container starts, then kept in its configuration.
//!
//! A function's environment names secrets by ARN; each becomes the setting the rest of the
//! code already reads, so nothing past `main` knows where a secret came from:
//! - `GOVIRAL_JWT_SECRET_ARN` → `GOVIRAL_JWT_SECRET` (the secret string itself)
//! - `GOVIRAL_OPENAI_SECRET_ARN` → `GOVIRAL_OPENAI_API_KEY` (the secret string itself)
//! - `GOVIRAL_STRIPE_SECRET_ARN` → `GOVIRAL_STRIPE_API_KEY` (the secret string itself)
//! - `GOVIRAL_PLATFORM_APPS_SECRET_ARN` → `GOVIRAL_{YOUTUBE,X,INSTAGRAM,TIKTOK}_CLIENT_ID` and
//!   `…_CLIENT_SECRET`, from one JSON document: `{"youtube": {"client_id", "client_secret"}, …}`
//! - `GOVIRAL_DATABASE_SECRET_ARN` → `GOVIRAL_DATABASE_URL`, from the JSON document RDS keeps
//!   (`username`, `password`, `host`, `port`, `dbname`). `GOVIRAL_DATABASE_HOST` replaces the
//!   host (the RDS Proxy endpoint); TLS is required and verified (`GOVIRAL_DATABASE_SSLMODE`,
//!   default `verify-full`).

use std::collections::HashMap;

use domain::{Error, Result};
use serde::Deserialize;

use crate::unavailable;

#[derive(Deserialize)]
struct DatabaseSecret {
    username: String,
    password: String,
    host: Option<String>,
    port: Option<u16>,
    dbname: Option<String>,
}

/// Userinfo and path segments keep only unreserved characters; the rest is %-escaped.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn database_url(secret: &str, host_override: Option<String>, sslmode: &str) -> Result<String> {
    let db: DatabaseSecret = serde_json::from_str(secret)
        .map_err(|e| Error::Internal(format!("database secret: not the RDS JSON document (username, password, host, ...): {e}")))?;
    let host = host_override
        .or(db.host)
        .ok_or_else(|| Error::Internal("database secret: no host, and GOVIRAL_DATABASE_HOST is not set".into()))?;
    Ok(format!(
        "postgres://{}:{}@{}:{}/{}?sslmode={}",
        escape(&db.username),
        escape(&db.password),
        host,
        db.port.unwrap_or(5432),
        escape(db.dbname.as_deref().unwrap_or("postgres")),
        sslmode
    ))
}

async fn secret_string(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<String> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| unavailable("secretsmanager:GetSecretValue", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))?;
    out.secret_string().map(str::to_string).ok_or_else(|| Error::Internal(format!("secret {arn} holds no string")))
}

/// Fetches every secret the environment names and returns the settings they become.
pub async fn resolve(config: &aws_config::SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<HashMap<String, String>> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let mut settings = HashMap::new();
    let named = [
        ("GOVIRAL_JWT_SECRET_ARN", "GOVIRAL_JWT_SECRET"),
        ("GOVIRAL_OPENAI_SECRET_ARN", "GOVIRAL_OPENAI_API_KEY"),
        ("GOVIRAL_STRIPE_SECRET_ARN", "GOVIRAL_STRIPE_API_KEY"),
    ];
    for (arn_var, setting) in named {
        if let Some(arn) = lookup(arn_var) {
            settings.insert(setting.to_string(), secret_string(&client, &arn).await?.trim().to_string());
        }
    }
    if let Some(arn) = lookup("GOVIRAL_PLATFORM_APPS_SECRET_ARN") {
        settings.extend(platform_apps(&secret_string(&client, &arn).await?)?);
    }
    if let Some(arn) = lookup("GOVIRAL_DATABASE_SECRET_ARN") {
        let secret = secret_string(&client, &arn).await?;
        let sslmode = lookup("GOVIRAL_DATABASE_SSLMODE").unwrap_or_else(|| "verify-full".into());
        settings.insert("GOVIRAL_DATABASE_URL".into(), database_url(&secret, lookup("GOVIRAL_DATABASE_HOST"), &sslmode)?);
    }
    Ok(settings)
}

/// The platform apps' credentials, one JSON document for all: `{"youtube": {"client_id":
/// "…", "client_secret": "…"}, "x": …}`; platforms left out are not offered.
fn platform_apps(secret: &str) -> Result<HashMap<String, String>> {
    let doc: serde_json::Value =
        serde_json::from_str(secret).map_err(|e| Error::Internal(format!("the platform apps secret is not JSON: {e}")))?;
    let apps = doc.as_object().ok_or_else(|| Error::Internal("the platform apps secret is not a JSON object".into()))?;
    let mut settings = HashMap::new();
    for (platform, app) in apps {
        if !["youtube", "x", "instagram", "tiktok"].contains(&platform.as_str()) {
            return Err(Error::Internal(format!("the platform apps secret names an unknown platform {platform:?}")));
        }
        let field = |name: &str| {
            app[name]
                .as_str()
                .filter(|v| !v.trim().is_empty())
                .map(str::to_string)
                .ok_or_else(|| Error::Internal(format!("the platform apps secret: {platform}.{name} is missing")))
        };
        let prefix = format!("GOVIRAL_{}", platform.to_ascii_uppercase());
        settings.insert(format!("{prefix}_CLIENT_ID"), field("client_id")?);
        settings.insert(format!("{prefix}_CLIENT_SECRET"), field("client_secret")?);
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_apps_come_from_one_document() {
        let s = platform_apps(
            r#"{"youtube": {"client_id": "yt-id", "client_secret": "yt-secret"}, "tiktok": {"client_id": "tk", "client_secret": "ts"}}"#,
        )
        .unwrap();
        assert_eq!(s["GOVIRAL_YOUTUBE_CLIENT_ID"], "yt-id");
        assert_eq!(s["GOVIRAL_TIKTOK_CLIENT_SECRET"], "ts");
        assert_eq!(s.len(), 4);
        assert!(platform_apps(r#"{"myspace": {"client_id": "a", "client_secret": "b"}}"#).is_err());
        assert!(platform_apps(r#"{"x": {"client_id": "a"}}"#).is_err());
        assert!(platform_apps("[]").is_err());
    }

    #[test]
    fn database_url_escapes_and_prefers_the_proxy_host() {
        let secret = r#"{"username":"app","password":"p@ss/w:rd","host":"db.internal","port":5433,"dbname":"goviral","engine":"postgres"}"#;
        assert_eq!(
            database_url(secret, None, "verify-full").unwrap(),
            "postgres://app:p%40ss%2Fw%3Ard@db.internal:5433/goviral?sslmode=verify-full"
        );
        let proxied = database_url(secret, Some("proxy.example".into()), "require").unwrap();
        assert!(proxied.starts_with("postgres://app:p%40ss%2Fw%3Ard@proxy.example:5433/"), "{proxied}");
        assert!(database_url(r#"{"username":"a","password":"b"}"#, None, "require").is_err(), "no host anywhere");
        assert!(database_url("hunter2", None, "require").is_err(), "not JSON");
    }
}
