//! The composition root, shared by the local server, the CLI, the Lambdas and the testkit:
//! one `Config` read once, and one `Composition` that builds from it the adapters, the domain
//! App and the stage context. The AWS adapters come in with the `aws` feature, which only the
//! Lambda crate turns on, so `cargo run -p goviral` builds no AWS SDK.

pub mod compose;
pub mod config;
pub mod telemetry;

pub use compose::{AppUses, Composition, InitError, Swaps};
pub use config::{AwsResources, Config, ConfigError, Profile};

/// JSON logs on Lambda (CloudWatch), human ones locally; `RUST_LOG` filters (default info);
/// spans exported over OTLP where `otlp_endpoint` is set (see `telemetry`).
pub fn init_tracing(json: bool, otlp_endpoint: Option<&str>, service: &str) {
    telemetry::init(json, otlp_endpoint, service);
}

/// Creates the data dir and, when no JWT secret was configured, a random one kept in it so
/// tokens survive restarts of the embedded server.
pub fn prepare_data_dir(config: &mut Config) -> std::io::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    if config.settings.auth.jwt_secret.is_empty() {
        let path = config.data_dir.join("jwt.secret");
        let secret = match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => s.trim().to_string(),
            _ => {
                let s = hex::encode(domain::auth::random_bytes::<32>());
                write_private(&path, &s)?;
                s
            }
        };
        config.settings.auth.jwt_secret = secret.into_bytes();
    }
    Ok(())
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content.as_bytes())
}

/// This build, as the model registry records it (`GOVIRAL_GIT_COMMIT` at build time, when set).
pub fn code_version() -> String {
    format!("goviral {}{}", env!("CARGO_PKG_VERSION"), option_env!("GOVIRAL_GIT_COMMIT").map(|c| format!(" ({c})")).unwrap_or_default())
}
