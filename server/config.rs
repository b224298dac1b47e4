//! One typed configuration, loaded once at start from an optional TOML file (`STACKGATE_CONFIG`)
//! and `STACKGATE_*` environment variables (which win). Every setting is listed in the README.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::change::{ChangeWindow, RiskFlag};
use crate::ids::EnvClass;

/// A secret setting: redacted in `Debug`, zeroed when dropped; read with `expose_secret()`.
pub type Secret = secrecy::SecretString;

/// A target account as written in the config file's `[[accounts]]` tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSeed {
    pub id: String,
    pub name: String,
    pub env_class: EnvClass,
    /// What the account is for (management, security, log-archive, shared-services, dev, test,
    /// prod). Optional: a workload account's is its class; a core account's is kept from the
    /// registry, and a new core account must name it.
    #[serde(default)]
    pub purpose: Option<crate::accounts::Purpose>,
    pub deploy_role_arn: String,
    /// The CloudFormation service role in the account (`stackgate-cfn-exec`), if rolled out.
    #[serde(default)]
    pub cfn_execution_role_arn: Option<String>,
    pub regions: Vec<String>,
    /// Unset: the registry keeps what it has (an admin's edit in the portal survives).
    #[serde(default)]
    pub teams: Option<Vec<String>>,
    /// Admin-set values blueprints read (docs/blueprints.md): strings or lists of strings.
    /// Unset: the registry keeps what it has.
    #[serde(default)]
    pub settings: Option<BTreeMap<String, serde_json::Value>>,
}

/// A team as written in the config file's `[[teams]]` tables: which IdP groups make its
/// requesters and its approvers. Nothing else grants a team role.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub name: String,
    #[serde(default)]
    pub requester_groups: Vec<String>,
    #[serde(default)]
    pub approver_groups: Vec<String>,
    /// Cost centre the team's resources are tagged with.
    #[serde(default)]
    pub cost_centre: Option<String>,
    /// Where the team's notifications go (a Slack-compatible incoming webhook). A secret: Slack's
    /// URLs carry a token, so it is never logged, stored or shown; only its host is logged.
    #[serde(default)]
    pub webhook_url: Option<WebhookUrl>,
}

/// A team's webhook URL, checked at start (https, or http to a loopback address only). Redacted
/// in `Debug`; [`WebhookUrl::host`] is the only part that may be logged.
#[derive(Clone)]
pub struct WebhookUrl(Secret);

impl WebhookUrl {
    /// The URL, for the one place that sends to it.
    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }

    /// The host, which is all a log line may say about the URL.
    pub fn host(&self) -> String {
        url::Url::parse(self.expose())
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "?".into())
    }

    /// Https, or http only to a loopback address (tests, a local relay). The message never
    /// repeats the URL.
    fn check(&self) -> Result<(), &'static str> {
        let url = url::Url::parse(self.expose()).map_err(|_| "is not a URL")?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            _ if url.host().is_none() => Err("names no host"),
            "https" => Ok(()),
            "http" if loopback => Ok(()),
            "http" => Err("must use https:// (http:// only to a loopback address)"),
            _ => Err("must be an https:// URL"),
        }
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({}, path redacted)", self.host())
    }
}

impl PartialEq for WebhookUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for WebhookUrl {}

impl<'de> Deserialize<'de> for WebhookUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| WebhookUrl(Secret::from(s)))
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `STACKGATE_LISTEN`: address to listen on.
    pub listen: SocketAddr,
    /// `STACKGATE_DATABASE_URL`: `sqlite://…` (default) or `postgres://…`.
    pub database_url: String,
    /// `STACKGATE_DATABASE_OWNER_URL` (PostgreSQL): the role that owns the schema. When set,
    /// migrations run as it and the portal's own role (of `database_url`) is granted only what it
    /// needs: on `audit_log`, INSERT and SELECT (so it cannot alter or empty the log).
    pub database_owner_url: Option<Secret>,
    /// `STACKGATE_PUBLIC_URL`: the URL users reach the portal at (callback URL, cookie security).
    pub public_url: url::Url,
    /// `STACKGATE_OIDC_ISSUER`, `STACKGATE_OIDC_CLIENT_ID`, `STACKGATE_OIDC_CLIENT_SECRET`.
    pub oidc_issuer: String,
    pub oidc_client_id: String,
    pub oidc_client_secret: Secret,
    /// `STACKGATE_AWS_ENDPOINT_URL`: unset means real AWS.
    pub aws_endpoint_url: Option<String>,
    /// `STACKGATE_AWS_REGION`: region for the portal's own STS calls (unset: the SDK's chain).
    pub aws_region: Option<String>,
    /// `STACKGATE_PORTAL_ROLE_ARN`: the portal's own role, which deploy roles trust (shown to
    /// admins and rendered into the `account-bootstrap` blueprint).
    pub portal_role_arn: Option<String>,
    /// `STACKGATE_CATALOG_DIR`: blueprints (each a folder with blueprint.toml).
    pub catalog_dir: PathBuf,
    /// `STACKGATE_RULES_DIR`: cfn-guard policy rules.
    pub rules_dir: PathBuf,
    /// `STACKGATE_STATIC_DIR` and `STACKGATE_HTMX_PATH`.
    pub static_dir: PathBuf,
    pub htmx_path: PathBuf,
    /// `STACKGATE_SESSION_IDLE_MINUTES`, `STACKGATE_SESSION_ABSOLUTE_HOURS`.
    pub session_idle_minutes: i64,
    pub session_absolute_hours: i64,
    /// `STACKGATE_WORKER`: run the deployment worker in this process.
    pub worker_enabled: bool,
    /// `STACKGATE_WORKER_POLL_MS`: how often an idle worker looks for work.
    pub worker_poll_ms: u64,
    /// `STACKGATE_LEASE_SECONDS`: how long a claimed job is held before another worker may take it.
    pub lease_seconds: i64,
    /// `STACKGATE_ADMIN_GROUPS`, `STACKGATE_AUDITOR_GROUPS`, `STACKGATE_GLOBAL_APPROVER_GROUPS`
    /// (comma-separated IdP groups). Team groups are `<team>-requesters` and `<team>-approvers`.
    pub admin_groups: Vec<String>,
    pub auditor_groups: Vec<String>,
    pub global_approver_groups: Vec<String>,
    /// `STACKGATE_APPROVALS_DEV` / `_TEST` / `_PROD`: distinct approvals a request needs, as
    /// the first version of the approval rules (stored at the first start; admins change the
    /// rules in the portal from then on, see `policies`).
    pub approvals_required: BTreeMap<EnvClass, u32>,
    /// `STACKGATE_RISK_ROUTES` (`flag=group,…`): a request with the flag needs one approval from a
    /// member of the group (as well as the usual count). Seeds the first rules version too.
    pub risk_routes: BTreeMap<RiskFlag, String>,
    /// `STACKGATE_RISK_CHANGE_THRESHOLD`: more resource changes than this is a large change.
    pub risk_change_threshold: usize,
    /// `STACKGATE_AUTO_APPROVE_DEV`: dev requests with no risk flag and every policy rule passing
    /// are approved by the rules, recorded as such.
    pub auto_approve_dev: bool,
    /// `STACKGATE_APPROVAL_MAX_AGE_HOURS`: an approval older than this no longer counts.
    pub approval_max_age_ms: i64,
    /// `STACKGATE_REVIEW_EXPIRY_HOURS`: a request waiting for review longer than this expires
    /// (its change set is deleted).
    pub review_expiry_ms: i64,
    /// `STACKGATE_CHANGE_WINDOWS` (`class=Mon-Thu 09:00-16:00;…`, UTC): approved changes of a class
    /// with windows run only inside one.
    pub change_windows: BTreeMap<EnvClass, Vec<ChangeWindow>>,
    /// `[[teams]]` in the config file: each team and the IdP groups of its requesters/approvers.
    pub teams: Vec<TeamConfig>,
    /// `STACKGATE_GROUPS_REFRESH_SECONDS`: how old the IdP's confirmation of a user's groups may
    /// be; older, the portal asks the IdP's userinfo endpoint again (always before a decision).
    pub groups_refresh_seconds: i64,
    /// `STACKGATE_SESSION_CACHE_MS`: how long a reading request may reuse a session check of
    /// this replica (writes always check the database); 0 turns the cache off.
    pub session_cache_ms: u64,
    /// `STACKGATE_LOGIN_RATE_PER_MINUTE`: sign-in starts and callbacks allowed per client address.
    pub login_rate_per_minute: u32,
    /// What a decision on a production request needs of the decider's sign-in (step-up, B9).
    pub step_up: StepUpPolicy,
    /// `STACKGATE_NOTIFY_POLL_MS`: how often the notifier looks for new audit records and due
    /// deliveries; retries back off from ten times this.
    pub notify_poll_ms: u64,
    /// `STACKGATE_NOTIFY_MAX_ATTEMPTS`: deliveries tried before a notification is given up.
    pub notify_max_attempts: i64,
    /// `STACKGATE_NOTIFY_TIMEOUT_MS`: the limit on one webhook call, connection included.
    pub notify_timeout_ms: u64,
    /// `[[accounts]]` in the config file: the account registry, upserted at start.
    pub accounts: Vec<AccountSeed>,
    /// `[[address_pools]]` in the config file: where new networks' blocks come from, per class
    /// (and optionally region). Without any, [`AddressPool::defaults`] apply.
    pub address_pools: Vec<AddressPool>,
    /// `STACKGATE_LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_json: bool,
    /// `STACKGATE_AUDIT_SIGNING_KEY` (PKCS#8 PEM or base64 of the 32-byte seed) or
    /// `STACKGATE_AUDIT_SIGNING_KEY_FILE`: the Ed25519 key that signs audit checkpoints and
    /// evidence packs. Unset: no checkpoints, unsigned packs (a warning at start).
    pub audit_signing_key: Option<crate::audit::keys::AuditKey>,
    /// `STACKGATE_AUDIT_CHECKPOINT_SECONDS`: how often the chain's head is signed (default 300).
    pub audit_checkpoint_seconds: u64,
    /// `STACKGATE_AUDIT_EXPORT_BUCKET`: an S3 bucket with Object Lock (compliance mode) that
    /// receives the checkpointed records and the checkpoints; needs the signing key.
    pub audit_export_bucket: Option<String>,
    /// `STACKGATE_SERVICE_CATALOG_PORTFOLIO`: the AWS Service Catalog portfolio the catalog is
    /// published to (default `stackgate blueprints`).
    pub service_catalog_portfolio: String,
    /// `STACKGATE_SERVICE_CATALOG_BUCKET`: the S3 bucket (in the portal's account and region)
    /// that holds the templates Service Catalog reads; publishing needs it.
    pub service_catalog_bucket: Option<String>,
}

/// The config file: the same settings in snake_case, plus `[[accounts]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    database_owner_url: Option<String>,
    public_url: Option<String>,
    oidc_issuer: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<String>,
    aws_endpoint_url: Option<String>,
    aws_region: Option<String>,
    portal_role_arn: Option<String>,
    catalog_dir: Option<String>,
    rules_dir: Option<String>,
    static_dir: Option<String>,
    htmx_path: Option<String>,
    session_idle_minutes: Option<String>,
    session_absolute_hours: Option<String>,
    worker: Option<String>,
    worker_poll_ms: Option<String>,
    lease_seconds: Option<String>,
    admin_groups: Option<String>,
    auditor_groups: Option<String>,
    global_approver_groups: Option<String>,
    approvals_dev: Option<String>,
    approvals_test: Option<String>,
    approvals_prod: Option<String>,
    risk_routes: Option<String>,
    risk_change_threshold: Option<String>,
    auto_approve_dev: Option<String>,
    approval_max_age_hours: Option<String>,
    review_expiry_hours: Option<String>,
    change_windows: Option<String>,
    groups_refresh_seconds: Option<String>,
    session_cache_ms: Option<String>,
    login_rate_per_minute: Option<String>,
    step_up_max_age_seconds: Option<String>,
    step_up_amr: Option<String>,
    step_up_acr: Option<String>,
    notify_poll_ms: Option<String>,
    notify_max_attempts: Option<String>,
    notify_timeout_ms: Option<String>,
    log_format: Option<String>,
    audit_signing_key_file: Option<String>,
    audit_checkpoint_seconds: Option<String>,
    audit_export_bucket: Option<String>,
    service_catalog_portfolio: Option<String>,
    service_catalog_bucket: Option<String>,
    #[serde(default)]
    teams: Vec<TeamConfig>,
    #[serde(default)]
    accounts: Vec<AccountSeed>,
    #[serde(default)]
    address_pools: Vec<AddressPool>,
}

/// A pool of the address plan as written in `[[address_pools]]`: networks of `class` (in
/// `region`, when given) get `/prefix` blocks from `cidr`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddressPool {
    pub class: EnvClass,
    #[serde(default)]
    pub region: Option<String>,
    pub cidr: String,
    pub prefix: u8,
}

impl AddressPool {
    /// The plan without configuration: a /12 per workload class, /16 networks (16 each).
    pub fn defaults() -> Vec<AddressPool> {
        [
            (EnvClass::Dev, "10.64.0.0/12"),
            (EnvClass::Test, "10.80.0.0/12"),
            (EnvClass::Prod, "10.96.0.0/12"),
        ]
        .into_iter()
        .map(|(class, cidr)| AddressPool {
            class,
            region: None,
            cidr: cidr.into(),
            prefix: 16,
        })
        .collect()
    }
}

fn checked_pools(pools: Vec<AddressPool>) -> Result<Vec<AddressPool>, ConfigError> {
    if pools.is_empty() {
        return Ok(AddressPool::defaults());
    }
    for p in &pools {
        let bad = |message: String| ConfigError {
            setting: "address_pools".into(),
            message,
        };
        let net: ipnet::Ipv4Net = p
            .cidr
            .parse()
            .map_err(|_| bad(format!("'{}' is not an IPv4 CIDR block", p.cidr)))?;
        if net.network() != net.addr() {
            return Err(bad(format!("{} has host bits set", p.cidr)));
        }
        if !(net.prefix_len().max(16)..=24).contains(&p.prefix) {
            return Err(bad(format!(
                "{}: prefix /{} must lie between the pool's /{} (and /16) and /24",
                p.cidr,
                p.prefix,
                net.prefix_len()
            )));
        }
    }
    Ok(pools)
}

/// What a decision on a production request needs of the decider's sign-in at the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpPolicy {
    /// `STACKGATE_STEP_UP_MAX_AGE_SECONDS` (1 to 86400, default 900): the sign-in (`auth_time`)
    /// may be at most this old.
    pub max_age_seconds: i64,
    /// `STACKGATE_STEP_UP_AMR` (comma-separated, default none): methods the sign-in's `amr` must
    /// all include, e.g. `mfa`.
    pub amr: Vec<String>,
    /// `STACKGATE_STEP_UP_ACR` (default none): the `acr` the sign-in must report.
    pub acr: Option<String>,
}

/// Longest sign-in age a step-up may accept: a day.
const STEP_UP_MAX_AGE_LIMIT: i64 = 86_400;

/// A configuration error names the setting and says what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        message: message.into(),
    }
}

/// Team names are unique and well formed, and every team names at least one group.
/// A group a risk flag routes to must be able to see and decide the requests routed to it: a
/// global approver group, or some team's approver group. Anything else would be a rule nobody
/// can satisfy.
fn checked_routes(config: &Config) -> Result<(), ConfigError> {
    for (flag, group) in &config.risk_routes {
        let approves = config.global_approver_groups.contains(group)
            || config
                .teams
                .iter()
                .any(|t| t.approver_groups.contains(group));
        if !approves {
            return Err(err(
                "STACKGATE_RISK_ROUTES",
                format!(
                    "{}={group}: '{group}' is neither a global approver group \
                     (STACKGATE_GLOBAL_APPROVER_GROUPS) nor a team's approver group, so nobody \
                     in it could see or decide the requests routed to it",
                    flag.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn checked_teams(teams: Vec<TeamConfig>) -> Result<Vec<TeamConfig>, ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for t in &teams {
        let setting = format!("STACKGATE_CONFIG: [[teams]] {}", t.name);
        if !crate::ids::valid_team(&t.name) {
            return Err(err(
                &setting,
                "a team name is 2-32 lowercase letters, digits and '-', starting with a letter",
            ));
        }
        if !seen.insert(t.name.clone()) {
            return Err(err(&setting, "is listed twice"));
        }
        if t.requester_groups.is_empty() && t.approver_groups.is_empty() {
            return Err(err(
                &setting,
                "name its requester_groups or approver_groups (IdP group names)",
            ));
        }
        if let Some(Err(why)) = t.webhook_url.as_ref().map(WebhookUrl::check) {
            return Err(err(&format!("{setting}: webhook_url"), why));
        }
    }
    Ok(teams)
}

impl Config {
    /// The cost centre a team's resources are tagged with; `unassigned` when the configuration
    /// names none (the tag is never missing).
    pub fn cost_centre(&self, team: &str) -> String {
        self.teams
            .iter()
            .find(|t| t.name == team)
            .and_then(|t| t.cost_centre.clone())
            .unwrap_or_else(|| "unassigned".into())
    }

    /// The webhook a team's notifications go to, if it has one.
    pub fn webhook(&self, team: &str) -> Option<&WebhookUrl> {
        self.teams
            .iter()
            .find(|t| t.name == team)
            .and_then(|t| t.webhook_url.as_ref())
    }

    /// Whether any team has a webhook: without one, the notifier does not run at all.
    pub fn notifications_enabled(&self) -> bool {
        self.teams.iter().any(|t| t.webhook_url.is_some())
    }

    /// Loads from the process environment (and the file `STACKGATE_CONFIG` names, if any).
    pub fn from_env() -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("STACKGATE_"))
            .collect();
        Self::from_vars(&vars)
    }

    /// Loads from the given `STACKGATE_*` variables (tests pass their own).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let file = read_file(vars)?;
        let s = Settings { vars, file: &file };
        let f = &file;
        let (listen, public_url) = s.addresses()?;
        let (database_url, database_owner_url) = s.database()?;
        let config = Config {
            listen,
            database_url,
            database_owner_url,
            public_url,
            oidc_issuer: s.require("OIDC_ISSUER", &f.oidc_issuer)?,
            oidc_client_id: s.require("OIDC_CLIENT_ID", &f.oidc_client_id)?,
            oidc_client_secret: Secret::from(
                s.require("OIDC_CLIENT_SECRET", &f.oidc_client_secret)?,
            ),
            aws_endpoint_url: s.pick("AWS_ENDPOINT_URL", &f.aws_endpoint_url),
            aws_region: s.pick("AWS_REGION", &f.aws_region),
            portal_role_arn: s.pick("PORTAL_ROLE_ARN", &f.portal_role_arn),
            catalog_dir: s.path("CATALOG_DIR", &f.catalog_dir, "cloudformation"),
            rules_dir: s.path("RULES_DIR", &f.rules_dir, "cloudformation/rules"),
            static_dir: s.path("STATIC_DIR", &f.static_dir, "static"),
            htmx_path: s.path(
                "HTMX_PATH",
                &f.htmx_path,
                "node_modules/htmx.org/dist/htmx.min.js",
            ),
            session_idle_minutes: s
                .number("SESSION_IDLE_MINUTES", &f.session_idle_minutes, 15)?
                .max(1),
            session_absolute_hours: s
                .number("SESSION_ABSOLUTE_HOURS", &f.session_absolute_hours, 12)?
                .max(1),
            worker_enabled: s.flag("WORKER", &f.worker, true)?,
            worker_poll_ms: s.number("WORKER_POLL_MS", &f.worker_poll_ms, 1000)?.max(10) as u64,
            lease_seconds: s.number("LEASE_SECONDS", &f.lease_seconds, 60)?.max(1),
            admin_groups: s.list("ADMIN_GROUPS", &f.admin_groups, "platform-admins"),
            auditor_groups: s.list("AUDITOR_GROUPS", &f.auditor_groups, "auditors"),
            global_approver_groups: s.list(
                "GLOBAL_APPROVER_GROUPS",
                &f.global_approver_groups,
                "security-approvers",
            ),
            approvals_required: s.approvals()?,
            risk_routes: s.risk_routes()?,
            risk_change_threshold: s.number(
                "RISK_CHANGE_THRESHOLD",
                &f.risk_change_threshold,
                100,
            )? as usize,
            auto_approve_dev: s.flag("AUTO_APPROVE_DEV", &f.auto_approve_dev, false)?,
            approval_max_age_ms: s
                .number("APPROVAL_MAX_AGE_HOURS", &f.approval_max_age_hours, 72)?
                .max(1)
                * 3_600_000,
            review_expiry_ms: s
                .number("REVIEW_EXPIRY_HOURS", &f.review_expiry_hours, 168)?
                .max(1)
                * 3_600_000,
            change_windows: s.change_windows()?,
            teams: checked_teams(file.teams.clone())?,
            groups_refresh_seconds: s.number(
                "GROUPS_REFRESH_SECONDS",
                &f.groups_refresh_seconds,
                300,
            )?,
            session_cache_ms: s
                .number("SESSION_CACHE_MS", &f.session_cache_ms, 1000)?
                .min(60_000) as u64,
            login_rate_per_minute: s
                .number("LOGIN_RATE_PER_MINUTE", &f.login_rate_per_minute, 20)?
                .clamp(1, 100_000) as u32,
            step_up: s.step_up()?,
            notify_poll_ms: s
                .number("NOTIFY_POLL_MS", &f.notify_poll_ms, 1000)?
                .clamp(10, 600_000) as u64,
            notify_max_attempts: s
                .number("NOTIFY_MAX_ATTEMPTS", &f.notify_max_attempts, 8)?
                .clamp(1, 100),
            notify_timeout_ms: s
                .number("NOTIFY_TIMEOUT_MS", &f.notify_timeout_ms, 10_000)?
                .clamp(100, 120_000) as u64,
            accounts: file.accounts.clone(),
            address_pools: checked_pools(file.address_pools.clone())?,
            log_json: s.log_json()?,
            audit_export_bucket: s.audit_export_bucket()?,
            service_catalog_portfolio: s.service_catalog_portfolio()?,
            service_catalog_bucket: s.service_catalog_bucket()?,
            audit_signing_key: s.audit_signing_key()?,
            audit_checkpoint_seconds: match s.number(
                "AUDIT_CHECKPOINT_SECONDS",
                &f.audit_checkpoint_seconds,
                300,
            )? {
                n @ 1..=86_400 => n as u64,
                n => {
                    return Err(err(
                        "STACKGATE_AUDIT_CHECKPOINT_SECONDS",
                        format!("{n} is not between 1 and 86400 seconds"),
                    ));
                }
            },
        };
        checked_routes(&config)?;
        Ok(config)
    }

    /// Whether cookies can be marked `Secure` with the `__Host-` prefix (an https public URL).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The OIDC redirect URI registered at the IdP.
    pub fn callback_url(&self) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}/auth/callback")
    }

    /// Approvals a request in this class of environment needs.
    pub fn approvals_for(&self, class: EnvClass) -> u32 {
        self.approvals_required.get(&class).copied().unwrap_or(1)
    }
}

/// Reads the file `STACKGATE_CONFIG` names, if any.
fn read_file(vars: &BTreeMap<String, String>) -> Result<FileConfig, ConfigError> {
    let Some(path) = vars.get("STACKGATE_CONFIG") else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("STACKGATE_CONFIG", format!("cannot read {path}: {e}")))?;
    toml::from_str::<FileConfig>(&text).map_err(|e| err("STACKGATE_CONFIG", format!("{path}: {e}")))
}

/// The two layers of settings: a `STACKGATE_*` variable wins over the file's value; a blank value
/// counts as unset.
struct Settings<'a> {
    vars: &'a BTreeMap<String, String>,
    file: &'a FileConfig,
}

impl Settings<'_> {
    fn pick(&self, name: &str, from_file: &Option<String>) -> Option<String> {
        self.vars
            .get(&format!("STACKGATE_{name}"))
            .cloned()
            .or_else(|| from_file.clone())
            .filter(|v| !v.trim().is_empty())
    }

    fn require(&self, name: &str, from_file: &Option<String>) -> Result<String, ConfigError> {
        self.pick(name, from_file).ok_or_else(|| {
            err(
                &format!("STACKGATE_{name}"),
                "is required (see README, Configuration)",
            )
        })
    }

    /// A whole number of zero or more.
    fn number(
        &self,
        name: &str,
        from_file: &Option<String>,
        default: i64,
    ) -> Result<i64, ConfigError> {
        match self.pick(name, from_file) {
            None => Ok(default),
            Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                err(
                    &format!("STACKGATE_{name}"),
                    format!("'{s}' is not a whole number"),
                )
            }),
        }
    }

    /// The portfolio's name: 1–100 characters, no control characters (Service Catalog's limit).
    fn service_catalog_portfolio(&self) -> Result<String, ConfigError> {
        let name = self
            .pick(
                "SERVICE_CATALOG_PORTFOLIO",
                &self.file.service_catalog_portfolio,
            )
            .unwrap_or_else(|| "stackgate blueprints".to_string());
        let len = name.chars().count();
        if (1..=100).contains(&len) && !name.chars().any(char::is_control) {
            Ok(name)
        } else {
            Err(err(
                "STACKGATE_SERVICE_CATALOG_PORTFOLIO",
                "must be 1-100 characters without control characters",
            ))
        }
    }

    /// The template bucket: an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens).
    fn service_catalog_bucket(&self) -> Result<Option<String>, ConfigError> {
        let Some(bucket) = self.pick("SERVICE_CATALOG_BUCKET", &self.file.service_catalog_bucket)
        else {
            return Ok(None);
        };
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if ok {
            Ok(Some(bucket))
        } else {
            Err(err(
                "STACKGATE_SERVICE_CATALOG_BUCKET",
                format!(
                    "'{bucket}' is not an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)"
                ),
            ))
        }
    }

    /// The export bucket, which exports only what signed checkpoints cover.
    fn audit_export_bucket(&self) -> Result<Option<String>, ConfigError> {
        let bucket = self.pick("AUDIT_EXPORT_BUCKET", &self.file.audit_export_bucket);
        let keyed = self.pick("AUDIT_SIGNING_KEY", &None).is_some()
            || self
                .pick("AUDIT_SIGNING_KEY_FILE", &self.file.audit_signing_key_file)
                .is_some();
        match bucket {
            Some(_) if !keyed => Err(err(
                "STACKGATE_AUDIT_EXPORT_BUCKET",
                "needs STACKGATE_AUDIT_SIGNING_KEY or STACKGATE_AUDIT_SIGNING_KEY_FILE: only \
                 records covered by a signed checkpoint are exported",
            )),
            other => Ok(other),
        }
    }

    /// The audit signing key, from the variable or the file it names (not both).
    fn audit_signing_key(&self) -> Result<Option<crate::audit::keys::AuditKey>, ConfigError> {
        let inline = self.pick("AUDIT_SIGNING_KEY", &None);
        let file = self.pick("AUDIT_SIGNING_KEY_FILE", &self.file.audit_signing_key_file);
        let (setting, text) = match (inline, file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(err(
                    "STACKGATE_AUDIT_SIGNING_KEY",
                    "set it or STACKGATE_AUDIT_SIGNING_KEY_FILE, not both",
                ));
            }
            (Some(text), None) => ("STACKGATE_AUDIT_SIGNING_KEY", text),
            (None, Some(path)) => (
                "STACKGATE_AUDIT_SIGNING_KEY_FILE",
                std::fs::read_to_string(&path).map_err(|e| {
                    err(
                        "STACKGATE_AUDIT_SIGNING_KEY_FILE",
                        format!("cannot read {path}: {e}"),
                    )
                })?,
            ),
        };
        crate::audit::keys::AuditKey::parse(&text)
            .map(Some)
            .map_err(|e| err(setting, e.to_string()))
    }

    /// A comma-separated list.
    fn list(&self, name: &str, from_file: &Option<String>, default: &str) -> Vec<String> {
        self.pick(name, from_file)
            .unwrap_or_else(|| default.to_string())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn path(&self, name: &str, from_file: &Option<String>, default: &str) -> PathBuf {
        self.pick(name, from_file)
            .unwrap_or_else(|| default.to_string())
            .into()
    }

    fn flag(
        &self,
        name: &str,
        from_file: &Option<String>,
        default: bool,
    ) -> Result<bool, ConfigError> {
        match self.pick(name, from_file).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(err(
                &format!("STACKGATE_{name}"),
                format!("'{other}' is not true or false"),
            )),
        }
    }

    /// Where to listen, and the URL users reach the portal at (by default, the listen address).
    fn addresses(&self) -> Result<(SocketAddr, url::Url), ConfigError> {
        let raw = self
            .pick("LISTEN", &self.file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let listen: SocketAddr = raw
            .parse()
            .map_err(|_| err("STACKGATE_LISTEN", format!("'{raw}' is not host:port")))?;
        let public = self
            .pick("PUBLIC_URL", &self.file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let public_url = url::Url::parse(&public)
            .map_err(|e| err("STACKGATE_PUBLIC_URL", format!("'{public}': {e}")))?;
        Ok((listen, public_url))
    }

    /// The database URL (SQLite by default) and, for PostgreSQL only, the schema owner's.
    fn database(&self) -> Result<(String, Option<Secret>), ConfigError> {
        let url = self
            .pick("DATABASE_URL", &self.file.database_url)
            .unwrap_or_else(|| "sqlite://data/stackgate.db".to_string());
        if !(url.starts_with("sqlite:") || url.starts_with("postgres")) {
            return Err(err(
                "STACKGATE_DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ));
        }
        let owner = self.pick("DATABASE_OWNER_URL", &self.file.database_owner_url);
        if owner.is_some() && !url.starts_with("postgres") {
            return Err(err(
                "STACKGATE_DATABASE_OWNER_URL",
                "applies to PostgreSQL only (SQLite has no roles)",
            ));
        }
        Ok((url, owner.map(Secret::from)))
    }

    /// Distinct approvals per class of environment, 1 to 10 each.
    fn approvals(&self) -> Result<BTreeMap<EnvClass, u32>, ConfigError> {
        let f = self.file;
        [
            (EnvClass::Dev, "APPROVALS_DEV", &f.approvals_dev, 1),
            (EnvClass::Test, "APPROVALS_TEST", &f.approvals_test, 1),
            (EnvClass::Prod, "APPROVALS_PROD", &f.approvals_prod, 2),
        ]
        .into_iter()
        .map(|(class, name, from_file, default)| {
            Ok((
                class,
                self.number(name, from_file, default)?.clamp(1, 10) as u32,
            ))
        })
        .collect()
    }

    fn risk_routes(&self) -> Result<BTreeMap<RiskFlag, String>, ConfigError> {
        let name = "STACKGATE_RISK_ROUTES";
        self.list("RISK_ROUTES", &self.file.risk_routes, "")
            .iter()
            .map(|pair| {
                let (flag, group) = pair
                    .split_once('=')
                    .ok_or_else(|| err(name, format!("'{pair}': write flag=group")))?;
                let flag = RiskFlag::parse(flag.trim())
                    .ok_or_else(|| err(name, format!("'{}' is not a risk flag", flag.trim())))?;
                let group = group.trim();
                if group.is_empty() {
                    return Err(err(name, format!("'{pair}': name the approver group")));
                }
                Ok((flag, group.to_string()))
            })
            .collect()
    }

    fn change_windows(&self) -> Result<BTreeMap<EnvClass, Vec<ChangeWindow>>, ConfigError> {
        let name = "STACKGATE_CHANGE_WINDOWS";
        let mut out: BTreeMap<EnvClass, Vec<ChangeWindow>> = BTreeMap::new();
        let text = self
            .pick("CHANGE_WINDOWS", &self.file.change_windows)
            .unwrap_or_default();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (class, window) = part
                .split_once('=')
                .ok_or_else(|| err(name, format!("'{part}': write class=Mon-Thu 09:00-16:00")))?;
            let class: EnvClass = class.trim().parse().map_err(|_| {
                err(
                    name,
                    format!("'{}' is not an environment class", class.trim()),
                )
            })?;
            let window = ChangeWindow::parse(window).map_err(|e| err(name, e))?;
            out.entry(class).or_default().push(window);
        }
        Ok(out)
    }

    fn step_up(&self) -> Result<StepUpPolicy, ConfigError> {
        let f = self.file;
        let max_age_seconds =
            self.number("STEP_UP_MAX_AGE_SECONDS", &f.step_up_max_age_seconds, 900)?;
        if !(1..=STEP_UP_MAX_AGE_LIMIT).contains(&max_age_seconds) {
            return Err(err(
                "STACKGATE_STEP_UP_MAX_AGE_SECONDS",
                format!("{max_age_seconds} is outside 1 to {STEP_UP_MAX_AGE_LIMIT} seconds"),
            ));
        }
        let amr = self.list("STEP_UP_AMR", &f.step_up_amr, "");
        if let Some(bad) = amr.iter().find(|m| !valid_claim_value(m)) {
            return Err(err(
                "STACKGATE_STEP_UP_AMR",
                format!("'{bad}' is not an authentication method name (letters, digits, -_.:/)"),
            ));
        }
        let acr = self
            .pick("STEP_UP_ACR", &f.step_up_acr)
            .map(|a| a.trim().to_string());
        if let Some(bad) = acr.as_deref().filter(|a| !valid_claim_value(a)) {
            return Err(err(
                "STACKGATE_STEP_UP_ACR",
                format!("'{bad}' is not an assurance level (letters, digits, -_.:/)"),
            ));
        }
        Ok(StepUpPolicy {
            max_age_seconds,
            amr,
            acr,
        })
    }

    fn log_json(&self) -> Result<bool, ConfigError> {
        match self
            .pick("LOG_FORMAT", &self.file.log_format)
            .as_deref()
            .unwrap_or("json")
        {
            "json" => Ok(true),
            "pretty" => Ok(false),
            _ => Err(err("STACKGATE_LOG_FORMAT", "use json or pretty")),
        }
    }
}

/// An `amr` or `acr` value as IdPs write them (`mfa`, `urn:…:loa:2`, a URL): it goes into a
/// header and a URL, so nothing else.
fn valid_claim_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 200
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

/// A configuration for unit tests: the required settings and one team, `payments`, whose
/// requesters are `payments-requesters` and approvers `payments-approvers` or `pay-leads`.
#[cfg(test)]
pub fn for_tests() -> Config {
    let vars: BTreeMap<String, String> = [
        ("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9"),
        ("STACKGATE_OIDC_CLIENT_ID", "stackgate"),
        ("STACKGATE_OIDC_CLIENT_SECRET", "s3cret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut c = match Config::from_vars(&vars) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    c.teams.push(TeamConfig {
        name: "payments".into(),
        requester_groups: vec!["payments-requesters".into()],
        approver_groups: vec!["payments-approvers".into(), "pay-leads".into()],
        cost_centre: Some("CC-1042".into()),
        webhook_url: None,
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BTreeMap<String, String> {
        [
            ("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9"),
            ("STACKGATE_OIDC_CLIENT_ID", "stackgate"),
            ("STACKGATE_OIDC_CLIENT_SECRET", "s3cret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn a_risk_route_must_name_a_group_that_can_see_and_decide_the_requests() {
        let with = |routes: &str| {
            let mut vars = base();
            vars.insert("STACKGATE_RISK_ROUTES".into(), routes.into());
            Config::from_vars(&vars)
        };
        let ok = with("iam_change=security-approvers").expect("a global approver group");
        assert_eq!(
            ok.risk_routes.get(&RiskFlag::IamChange).map(String::as_str),
            Some("security-approvers")
        );
        let refused = match with("stateful_replacement=dba-approvers") {
            Ok(_) => panic!("a group nobody approves with was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            refused.contains("STACKGATE_RISK_ROUTES") && refused.contains("dba-approvers"),
            "{refused}"
        );
        let mut vars = base();
        vars.insert(
            "STACKGATE_RISK_ROUTES".into(),
            "stateful_replacement=dba-approvers".into(),
        );
        vars.insert(
            "STACKGATE_GLOBAL_APPROVER_GROUPS".into(),
            "security-approvers,dba-approvers".into(),
        );
        assert!(
            Config::from_vars(&vars).is_ok(),
            "once it approves for every team"
        );
    }

    #[test]
    fn the_audit_key_comes_from_the_variable_or_a_file_and_bad_settings_name_themselves() {
        let key = crate::audit::keys::AuditKey::generate();
        let pem = key.to_pem().unwrap_or_default();
        let file = std::env::temp_dir().join(format!("sg-key-{}", uuid::Uuid::new_v4().simple()));
        let _ = std::fs::write(&file, &pem);
        let with = |pairs: &[(&str, &str)]| {
            let mut vars = base();
            for (k, v) in pairs {
                vars.insert(k.to_string(), v.to_string());
            }
            Config::from_vars(&vars)
        };
        let id = |c: Result<Config, ConfigError>| c.ok()?.audit_signing_key.map(|k| k.key_id());
        assert_eq!(id(with(&[])), None);
        assert_eq!(
            id(with(&[("STACKGATE_AUDIT_SIGNING_KEY", &pem)])),
            Some(key.key_id())
        );
        let path = file.display().to_string();
        assert_eq!(
            id(with(&[("STACKGATE_AUDIT_SIGNING_KEY_FILE", &path)])),
            Some(key.key_id())
        );
        for (pairs, setting, says) in [
            (
                vec![("STACKGATE_AUDIT_SIGNING_KEY", "bm90IGEga2V5")],
                "STACKGATE_AUDIT_SIGNING_KEY",
                "32 bytes",
            ),
            (
                vec![
                    ("STACKGATE_AUDIT_SIGNING_KEY", pem.as_str()),
                    ("STACKGATE_AUDIT_SIGNING_KEY_FILE", path.as_str()),
                ],
                "STACKGATE_AUDIT_SIGNING_KEY",
                "not both",
            ),
            (
                vec![("STACKGATE_AUDIT_SIGNING_KEY_FILE", "/nonexistent/key.pem")],
                "STACKGATE_AUDIT_SIGNING_KEY_FILE",
                "cannot read",
            ),
            (
                vec![("STACKGATE_AUDIT_EXPORT_BUCKET", "audit-archive")],
                "STACKGATE_AUDIT_EXPORT_BUCKET",
                "needs STACKGATE_AUDIT_SIGNING_KEY",
            ),
            (
                vec![("STACKGATE_AUDIT_CHECKPOINT_SECONDS", "0")],
                "STACKGATE_AUDIT_CHECKPOINT_SECONDS",
                "between 1 and 86400",
            ),
        ] {
            let e = with(&pairs).err().map(|e| (e.setting, e.message));
            assert!(
                e.as_ref()
                    .is_some_and(|(s, m)| s == setting && m.contains(says)),
                "{pairs:?}: {e:?}"
            );
        }
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn address_pools_default_per_class_and_bad_ones_name_the_setting() -> Result<(), ConfigError> {
        let pools = Config::from_vars(&base())?.address_pools;
        assert_eq!(pools, AddressPool::defaults());
        assert_eq!(pools.len(), 3);
        let dir = std::env::temp_dir().join(format!("sg-cfg-{}", uuid::Uuid::new_v4().simple()));
        let _ = std::fs::create_dir_all(&dir);
        for (pool, says) in [
            (
                "class = \"dev\"\ncidr = \"10.64.0.1/12\"\nprefix = 16",
                "host bits",
            ),
            (
                "class = \"dev\"\ncidr = \"10.64.0.0/12\"\nprefix = 8",
                "prefix /8",
            ),
            (
                "class = \"dev\"\ncidr = \"ten\"\nprefix = 16",
                "not an IPv4 CIDR",
            ),
        ] {
            let file = dir.join("c.toml");
            let _ = std::fs::write(&file, format!("[[address_pools]]\n{pool}\n"));
            let mut v = base();
            v.insert("STACKGATE_CONFIG".into(), file.display().to_string());
            let e = Config::from_vars(&v)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.contains("address_pools") && e.contains(says),
                "{pool}: {e}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn defaults_apply_and_secrets_are_redacted() -> Result<(), ConfigError> {
        let c = Config::from_vars(&base())?;
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://data/stackgate.db");
        assert_eq!(c.callback_url(), "http://127.0.0.1:8080/auth/callback");
        assert!(!c.secure_cookies());
        assert_eq!(c.approvals_for(EnvClass::Prod), 2);
        assert!(!format!("{c:?}").contains("s3cret"));
        Ok(())
    }

    #[test]
    fn step_up_defaults_to_fifteen_minutes_and_bad_values_name_the_setting()
    -> Result<(), ConfigError> {
        let c = Config::from_vars(&base())?;
        assert_eq!(c.step_up.max_age_seconds, 900);
        assert!(c.step_up.amr.is_empty() && c.step_up.acr.is_none());
        let mut v = base();
        v.insert("STACKGATE_STEP_UP_AMR".into(), "mfa, hwk".into());
        v.insert(
            "STACKGATE_STEP_UP_ACR".into(),
            "urn:stackgate:acr:mfa".into(),
        );
        v.insert("STACKGATE_STEP_UP_MAX_AGE_SECONDS".into(), "300".into());
        let c = Config::from_vars(&v)?;
        assert_eq!(c.step_up.amr, vec!["mfa".to_string(), "hwk".to_string()]);
        assert_eq!(c.step_up.acr.as_deref(), Some("urn:stackgate:acr:mfa"));
        assert_eq!(c.step_up.max_age_seconds, 300);
        for (name, value) in [
            ("STACKGATE_STEP_UP_MAX_AGE_SECONDS", "0"),
            ("STACKGATE_STEP_UP_MAX_AGE_SECONDS", "90000"),
            ("STACKGATE_STEP_UP_MAX_AGE_SECONDS", "soon"),
            ("STACKGATE_STEP_UP_AMR", "mfa,a b"),
            ("STACKGATE_STEP_UP_ACR", "level\"2"),
        ] {
            let mut v = base();
            v.insert(name.into(), value.into());
            let e = Config::from_vars(&v)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(name), "{name}={value}: {e}");
        }
        Ok(())
    }

    #[test]
    fn missing_or_bad_settings_name_the_setting() {
        let mut v = base();
        v.remove("STACKGATE_OIDC_ISSUER");
        let e = Config::from_vars(&v)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("STACKGATE_OIDC_ISSUER"), "{e}");
        let mut v = base();
        v.insert("STACKGATE_LISTEN".into(), "nonsense".into());
        let e = Config::from_vars(&v)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("STACKGATE_LISTEN"), "{e}");
        let mut v = base();
        v.insert("STACKGATE_DATABASE_URL".into(), "mysql://x".into());
        assert!(Config::from_vars(&v).is_err());
    }

    #[test]
    fn a_variable_wins_over_the_file_and_a_blank_value_counts_as_unset() -> Result<(), ConfigError>
    {
        let dir = std::env::temp_dir().join(format!("sg-cfg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| err("test", e.to_string()))?;
        let path = dir.join("stackgate.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9100\"\nworker = \"no\"\napprovals_prod = \"3\"\n\
             admin_groups = \"ops, sec ,\"\n",
        )
        .map_err(|e| err("test", e.to_string()))?;
        let mut v = base();
        v.insert("STACKGATE_CONFIG".into(), path.display().to_string());
        v.insert("STACKGATE_APPROVALS_PROD".into(), "4".into());
        v.insert("STACKGATE_LOG_FORMAT".into(), "  ".into());
        let c = Config::from_vars(&v)?;
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100", "from the file");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:9100/");
        assert!(!c.worker_enabled, "from the file");
        assert_eq!(c.approvals_for(EnvClass::Prod), 4, "the variable wins");
        assert_eq!(c.admin_groups, vec!["ops".to_string(), "sec".to_string()]);
        assert!(c.log_json, "a blank variable falls back to the default");
        v.insert("STACKGATE_APPROVALS_PROD".into(), "99".into());
        assert_eq!(Config::from_vars(&v)?.approvals_for(EnvClass::Prod), 10);
        v.insert("STACKGATE_WORKER".into(), "maybe".into());
        let e = Config::from_vars(&v)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("STACKGATE_WORKER") && e.contains("'maybe'"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).map_err(|e| err("test", e.to_string()))?;
        Ok(())
    }

    #[test]
    fn a_webhook_must_be_https_or_loopback_and_never_shows_in_errors_or_debug()
    -> Result<(), ConfigError> {
        let dir = std::env::temp_dir().join(format!("sg-cfg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| err("test", e.to_string()))?;
        let file = dir.join("c.toml");
        let with = |url: &str| -> Result<Config, ConfigError> {
            std::fs::write(
                &file,
                format!(
                    "[[teams]]\nname = \"payments\"\nrequester_groups = [\"p\"]\n\
                     webhook_url = \"{url}\"\n"
                ),
            )
            .map_err(|e| err("test", e.to_string()))?;
            let mut v = base();
            v.insert("STACKGATE_CONFIG".into(), file.display().to_string());
            Config::from_vars(&v)
        };
        let secret = "https://hooks.example.com/services/T0/B0/XSECRETTOKEN";
        let c = with(secret)?;
        assert!(c.notifications_enabled());
        let hook = c.webhook("payments").map(WebhookUrl::host);
        assert_eq!(hook.as_deref(), Some("hooks.example.com"));
        assert!(!format!("{c:?}").contains("XSECRETTOKEN"), "{c:?}");
        assert!(c.webhook("lending").is_none());
        assert!(with("http://127.0.0.1:9/hook").is_ok());
        assert!(with("http://[::1]:9/hook").is_ok());
        assert!(with("http://localhost:9/hook").is_ok());
        for bad in [
            "http://hooks.example.com/services/XSECRETTOKEN",
            "ftp://hooks.example.com/XSECRETTOKEN",
            "hooks.example.com/XSECRETTOKEN",
        ] {
            let e = with(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("webhook_url"), "{bad}: {e}");
            assert!(
                !e.contains("XSECRETTOKEN"),
                "the error repeats the URL: {e}"
            );
        }
        assert!(!Config::from_vars(&base())?.notifications_enabled());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
