//! The command line: `serve`, `migrate`, `blueprints`, `render`, `check`, `audit-verify`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    },
    /// Render a blueprint to its CloudFormation JSON on stdout.
    Render {
        /// Blueprint name, e.g. network.
        #[arg(long)]
        blueprint: String,
        /// Environment class: dev, test or prod.
        #[arg(long)]
        environment: String,
        /// JSON file with parameter values, e.g. {"vpc_cidr": "10.1.0.0/16"}.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Region the template is for.
        #[arg(long, default_value = "eu-west-2")]
        region: String,
        /// Environment name used in resource names.
        #[arg(long, default_value = "core")]
        name: String,
        #[arg(long)]
        catalog: Option<PathBuf>,
    },
    /// Check a CloudFormation JSON template against the policy rules; exit 1 if a rule fails.
    Check {
        /// The template file.
        file: PathBuf,
        /// Rule folder (default: STACKGATE_RULES_DIR or ./cloudformation/rules).
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Verify the audit log's hash chain; exit 1 if it is broken.
    AuditVerify,
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var(var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(default))
}

/// Runs the offline commands (everything but `serve`, which `main` runs).
pub async fn run_offline(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => anyhow::bail!("serve is run by main"),
        Command::Migrate => {
            let config = Config::from_env()?;
            let db = crate::db::Db::connect(&config.database_url).await?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::AuditVerify => {
            let config = Config::from_env()?;
            let db = crate::db::Db::connect(&config.database_url).await?;
            let v = crate::audit::store::verify(&db).await?;
            match v.broken_at {
                None => {
                    println!(
                        "audit chain verified up to #{} (head {})",
                        v.verified_up_to, v.head_hash
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some((seq, why)) => {
                    println!(
                        "audit chain broken at #{seq}: {why} (verified up to #{})",
                        v.verified_up_to
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Blueprints { catalog } => {
            let dir =
                catalog.unwrap_or_else(|| env_path("STACKGATE_CATALOG_DIR", "cloudformation"));
            let catalog =
                Catalog::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
            for b in catalog.list() {
                println!("{}\t{}\t{}", b.slug, b.version, b.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            blueprint,
            environment,
            params,
            region,
            name,
            catalog,
        } => {
            let dir =
                catalog.unwrap_or_else(|| env_path("STACKGATE_CATALOG_DIR", "cloudformation"));
            let catalog =
                Catalog::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
            let Some(bp) = catalog.get(&blueprint) else {
                eprintln!("unknown blueprint '{blueprint}' (see `stackgate blueprints`)");
                return Ok(ExitCode::from(2));
            };
            let env_class = match environment.parse::<EnvClass>() {
                Ok(c) if c.is_workload() => c,
                _ => {
                    eprintln!("--environment must be dev, test or prod");
                    return Ok(ExitCode::from(2));
                }
            };
            let raw: BTreeMap<String, String> = match params {
                None => BTreeMap::new(),
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let value: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", path.display()))?;
                    let Some(obj) = value.as_object() else {
                        eprintln!(
                            "{}: expected a JSON object of parameter values",
                            path.display()
                        );
                        return Ok(ExitCode::from(2));
                    };
                    obj.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                }
            };
            let ctx = RenderContext {
                env_class,
                region,
                name,
            };
            match bp.render(&ctx, &raw) {
                Ok(r) => {
                    println!("{}", r.body);
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in errors {
                        eprintln!("{}: {}", e.field, e.message);
                    }
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Check { file, rules } => {
            let dir =
                rules.unwrap_or_else(|| env_path("STACKGATE_RULES_DIR", "cloudformation/rules"));
            let engine = PolicyEngine::load(&dir)
                .with_context(|| format!("loading rules from {}", dir.display()))?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            if serde_json::from_str::<serde_json::Value>(&text).is_err() {
                eprintln!("{}: not a JSON CloudFormation template", file.display());
                return Ok(ExitCode::from(2));
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
    }
}
