//! The command line: `serve`, `migrate`, `blueprints`, `render`, `check`, `audit-verify`,
//! `audit-keygen`, `publish-catalog`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::catalog::{Catalog, PolicyEngine, RenderContext};
use crate::config::Config;
use crate::ids::EnvClass;

#[derive(Debug, Parser)]
#[command(
    name = "stackgate",
    version,
    about = "Self-service infrastructure portal: request, approve and deploy pre-approved CloudFormation blueprints."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web portal and the deployment worker (configuration: STACKGATE_* variables).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// List the blueprints in the catalog, one per line, name first.
    Blueprints {
        /// Blueprint folder (default: STACKGATE_CATALOG_DIR or ./cloudformation).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// One JSON array: slug, version, summary, kind, audience, classes and example names.
        #[arg(long)]
        json: bool,
    },
    /// Render a blueprint to its CloudFormation JSON on stdout.
    Render(RenderArgs),
    /// Check a CloudFormation JSON template against the policy rules; exit 1 if a rule fails.
    Check {
        /// The template file.
        file: PathBuf,
        /// Rule folder (default: STACKGATE_RULES_DIR or ./cloudformation/rules).
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Verify the audit log's hash chain and its signed checkpoints, or (with --pack) an
    /// evidence pack offline; exit 1 if anything does not hold.
    AuditVerify {
        /// Public key that signed checkpoints and packs: base64 of 32 bytes, PEM, or a file
        /// holding either (repeat for rotated keys; default: from the configured signing key).
        #[arg(long = "public-key", env = "STACKGATE_AUDIT_PUBLIC_KEY")]
        public_key: Vec<String>,
        /// An evidence pack (JSON) to verify offline, with the public key only.
        #[arg(long)]
        pack: Option<PathBuf>,
    },
    /// Publish the catalog to AWS Service Catalog (the configured portfolio, shared with the
    /// registry's active accounts) and print what was created and what was kept; audited.
    PublishCatalog,
    /// Write a new Ed25519 audit signing key (PKCS#8 PEM, mode 0600) and print its public key.
    AuditKeygen {
        /// The file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Blueprint name, e.g. network.
    #[arg(long)]
    blueprint: String,
    /// Environment class: dev, test, prod or core (the blueprint's classes).
    #[arg(long)]
    environment: String,
    /// JSON file with parameter values, e.g. {"vpc_cidr": "10.1.0.0/16"}; they override the
    /// example's.
    #[arg(long)]
    params: Option<PathBuf>,
    /// A named example of the blueprint's manifest: its parameters, and the inputs and
    /// settings a render without a real environment or account needs.
    #[arg(long, default_value = "default")]
    example: String,
    /// Region the template is for.
    #[arg(long, default_value = "eu-west-2")]
    region: String,
    /// Environment name used in resource names.
    #[arg(long, default_value = "core")]
    name: String,
    #[arg(long)]
    catalog: Option<PathBuf>,
}

/// Input the command cannot use: printed to stderr, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

pub fn usage<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(Usage(message.into()).into())
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var(var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(default))
}

/// Runs the offline commands (everything but `serve`, which `main` runs). Bad input exits 2 with
/// its message on stderr; a failed check (policy, audit chain) exits 1.
pub async fn run_offline(command: Command) -> anyhow::Result<ExitCode> {
    let outcome = match command {
        Command::Serve => anyhow::bail!("serve is run by main"),
        Command::Migrate => migrate().await,
        Command::AuditVerify { public_key, pack } => match pack {
            Some(file) => crate::audit::cli::verify_pack_file(&file, &public_key),
            None => crate::audit::cli::verify_database(&public_key).await,
        },
        Command::AuditKeygen { out } => crate::audit::cli::keygen(&out),
        Command::Blueprints { catalog, json } => blueprints(catalog, json),
        Command::Render(args) => render(args),
        Command::Check { file, rules } => check(&file, rules),
        Command::PublishCatalog => publish_catalog().await,
    };
    match outcome {
        Err(e) if e.is::<Usage>() => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
        other => other,
    }
}

async fn migrate() -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let db = crate::db::Db::connect(&config.database_url).await?;
    db.migrate().await?;
    println!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

async fn publish_catalog() -> anyhow::Result<ExitCode> {
    use crate::servicecatalog::publish::{PublishError, publish_configured};
    let config = Config::from_env()?;
    let db = crate::db::Db::connect(&config.database_url).await?;
    match &config.database_owner_url {
        Some(owner) => {
            use secrecy::ExposeSecret;
            db.migrate_as_owner(owner.expose_secret()).await?
        }
        None => db.migrate().await?,
    }
    crate::accounts::store::apply_seeds(&db, &config.accounts)
        .await
        .context("registering the configured accounts")?;
    // The bundled folders become stored versions (as at the portal's start); every published
    // and deprecated stored version is then published.
    crate::catalog::store::import_bundled(&db, &config.catalog_dir)
        .await
        .with_context(|| format!("importing blueprints from {}", config.catalog_dir.display()))?;
    let library = crate::catalog::versions::Library::new(db.clone());
    let policy = PolicyEngine::load(&config.rules_dir)
        .with_context(|| format!("loading policy rules from {}", config.rules_dir.display()))?;
    let actor = crate::audit::Actor::system("stackgate publish-catalog");
    let published = publish_configured(
        &db,
        &config,
        &library,
        std::sync::Arc::new(policy),
        &actor,
        None,
    )
    .await;
    db.close().await;
    let p = match published {
        Ok(p) => p,
        Err(e @ PublishError::NoBucket) => return usage(e.to_string()),
        Err(PublishError::Failed(e)) => return Err(e.context("publishing to AWS Service Catalog")),
    };
    println!("portfolio\t{}\t{}", p.portfolio_name, p.portfolio_id);
    for (what, items) in [
        ("created", &p.created),
        ("unchanged", &p.unchanged),
        ("deprecated", &p.deprecated),
        ("skipped", &p.skipped),
    ] {
        for item in items {
            println!("{what}\t{item}");
        }
    }
    println!("shared with\t{}", p.shared_with.join(" "));
    Ok(ExitCode::SUCCESS)
}

fn load_catalog(dir: Option<PathBuf>) -> anyhow::Result<Catalog> {
    let dir = dir.unwrap_or_else(|| env_path("STACKGATE_CATALOG_DIR", "cloudformation"));
    Catalog::load(&dir).with_context(|| format!("loading {}", dir.display()))
}

fn blueprints(dir: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let catalog = load_catalog(dir)?;
    if json {
        let list: Vec<serde_json::Value> = catalog
            .list()
            .iter()
            .map(|b| {
                serde_json::json!({
                    "slug": b.slug, "version": b.version, "summary": b.summary,
                    "kind": b.kind, "audience": b.audience,
                    "classes": b.classes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "examples": b.examples.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    for b in catalog.list() {
        println!("{}\t{}\t{}", b.slug, b.version, b.summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// Parameter values from a JSON object file; numbers and booleans as their JSON text.
fn read_params(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return usage(format!("{}: not JSON: {e}", path.display())),
    };
    let Some(obj) = value.as_object() else {
        return usage(format!(
            "{}: expected a JSON object of parameter values",
            path.display()
        ));
    };
    Ok(obj
        .iter()
        .map(|(k, v)| {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            (k.clone(), text)
        })
        .collect())
}

fn render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let catalog = load_catalog(args.catalog)?;
    let Some(bp) = catalog.get(&args.blueprint) else {
        return usage(format!(
            "unknown blueprint '{}' (see `stackgate blueprints`)",
            args.blueprint
        ));
    };
    let classes: Vec<&str> = bp.classes.iter().map(|c| c.as_str()).collect();
    let env_class = match args.environment.parse::<EnvClass>() {
        Ok(c) if bp.supports(c) => c,
        _ => {
            return usage(format!(
                "--environment: {} renders for {}",
                bp.slug,
                classes.join(", ")
            ));
        }
    };
    let Some(example) = bp.example(&args.example) else {
        let names: Vec<&str> = bp.examples.iter().map(|e| e.name.as_str()).collect();
        return usage(format!(
            "--example: {} has the examples {}",
            bp.slug,
            names.join(", ")
        ));
    };
    let mut raw = bp.example_values(example);
    if let Some(path) = &args.params {
        raw.extend(read_params(path)?);
    }
    let mut ctx = RenderContext::new(env_class, &args.region, &args.name, "example");
    bp.apply_example(example, &mut ctx);
    match bp.render(&ctx, &raw) {
        Ok(r) => {
            println!("{}", serde_json::to_string_pretty(&r.template)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => usage(
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    }
}

fn check(file: &std::path::Path, rules: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = rules.unwrap_or_else(|| env_path("STACKGATE_RULES_DIR", "cloudformation/rules"));
    let engine = PolicyEngine::load(&dir)
        .with_context(|| format!("loading rules from {}", dir.display()))?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if serde_json::from_str::<serde_json::Value>(&text).is_err() {
        return usage(format!(
            "{}: not a JSON CloudFormation template",
            file.display()
        ));
    }
    let report = engine.check(&text);
    for r in &report.results {
        println!("{} {}", if r.passed { "PASS" } else { "FAIL" }, r.rule);
        for m in &r.messages {
            println!("    {m}");
        }
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
