//! `mapline plans …`, `mapline shares …`, `mapline compact`: administration from the command
//! line. With `--server URL` a command goes through the running server's HTTP API (admin token
//! from `--admin-token` / `MAPLINE_ADMIN_TOKEN`); otherwise it works on the data file, which
//! needs the server stopped. `--json` prints machine-readable output.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use mapline_server::exports::{ExportFormat, export_stored, import_into};
use mapline_server::now_ms;
use mapline_server::plans::{self, IssuedShare};
use mapline_store::{PlanId, Role, Side, Store};
use serde_json::{Value, json};

/// Where an admin command works: the running server, or the data file.
#[derive(Args, Clone)]
pub struct Target {
    /// The running server's address (e.g. http://127.0.0.1:8080); without it, the data file is
    /// used directly and the server must be stopped.
    #[arg(long, global = true)]
    pub(crate) server: Option<String>,
    /// The admin credential, for --server.
    #[arg(
        long,
        env = "MAPLINE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    /// The redb data file, without --server.
    #[arg(
        long,
        env = "MAPLINE_DATA",
        default_value = "./data/mapline.redb",
        global = true
    )]
    pub(crate) data: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub enum PlansCommand {
    /// Every plan: id, title, organisations, go-live.
    List,
    /// Create a plan (optionally from a template) and print its seller and buyer links.
    Create(CreatePlan),
    /// One plan: the one-page Markdown, or with --json the projected plan.
    Show { id: String },
    /// Write a plan's export (JSON with slips and history, Markdown or CSV).
    Export {
        id: String,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Create a new plan from an export (JSON).
    Import { file: PathBuf },
}

#[derive(Args)]
pub struct CreatePlan {
    #[arg(long)]
    title: String,
    #[arg(long)]
    buyer_org: String,
    #[arg(long)]
    seller_org: String,
    /// YYYY-MM-DD.
    #[arg(long)]
    go_live: String,
    /// enterprise, mid-market or renewal-expansion.
    #[arg(long)]
    template: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Md,
    Csv,
}

#[derive(Subcommand)]
pub enum SharesCommand {
    /// A plan's links with when each was last used.
    List { plan: String },
    /// Make a link for one person and print it (its token is shown this once).
    Create {
        plan: String,
        #[arg(long, value_parser = ["buyer", "seller"])]
        side: String,
        #[arg(long, value_parser = ["editor", "viewer"])]
        role: String,
        #[arg(long)]
        label: String,
        /// RFC 3339 time when the link stops working.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Revoke a link (with --server, its open sockets close at once).
    Revoke { plan: String, share: String },
}

impl PlansCommand {
    /// Whether it writes to the store (refused on a cluster replica's file).
    pub fn writes(&self) -> bool {
        matches!(self, Self::Create(_) | Self::Import { .. })
    }
}

impl SharesCommand {
    /// Whether it writes to the store (refused on a cluster replica's file).
    pub fn writes(&self) -> bool {
        matches!(self, Self::Create { .. } | Self::Revoke { .. })
    }
}

/// Talks to the running server.
pub(crate) struct Http {
    base: String,
    token: String,
}

impl Http {
    pub(crate) fn new(target: &Target) -> anyhow::Result<Option<Self>> {
        let Some(server) = &target.server else {
            return Ok(None);
        };
        let token = target
            .admin_token
            .clone()
            .filter(|t| !t.is_empty())
            .context("--server needs the admin token (--admin-token or MAPLINE_ADMIN_TOKEN)")?;
        Ok(Some(Self {
            base: server.trim_end_matches('/').to_owned(),
            token,
        }))
    }

    /// Calls the API; a non-2xx answer becomes an error with the server's code and message.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let auth = format!("Bearer {}", self.token);
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => agent.delete(&url).header("authorization", &auth).call(),
            (_, Some(body)) => agent
                .post(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(body.to_string().as_bytes()),
            (_, None) => agent.post(&url).header("authorization", &auth).send_empty(),
        }
        .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response
            .into_body()
            .read_to_string()
            .context("reading the answer")?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    let e = v.get("error")?;
                    Some(format!(
                        "{} ({})",
                        e.get("message")?.as_str()?,
                        e.get("code")?.as_str()?
                    ))
                })
                .unwrap_or(text);
            bail!("the server refused: {message} [{status}]");
        }
        Ok(text)
    }

    pub(crate) fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        serde_json::from_str(&self.call(method, path, body)?).context("the server's answer")
    }
}

/// The data file, which must exist (a command that reads plans).
pub(crate) fn open(data: &Path) -> anyhow::Result<Store> {
    if !data.exists() {
        bail!("no data file at {}", data.display());
    }
    open_or_create(data)
}

/// The data file for a command that adds a plan: created (with its folder) if missing.
pub(crate) fn open_or_create(data: &Path) -> anyhow::Result<Store> {
    Store::open(data).with_context(|| {
        format!(
            "cannot open {} (is the server running? then pass --server URL)",
            data.display()
        )
    })
}

fn plan_id(text: &str) -> anyhow::Result<PlanId> {
    PlanId::parse_str(text).with_context(|| format!("{text:?} is not a plan id"))
}

pub(crate) fn print(target: &Target, value: &Value, text: impl FnOnce() -> String) {
    if target.json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

fn shares_json(shares: &[IssuedShare]) -> Value {
    json!(shares.iter().map(|s| s.view(None)).collect::<Vec<_>>())
}

fn links_text(value: &Value) -> String {
    let mut out = String::new();
    for share in value["shares"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {} ({} {}): {}\n",
            share["label"].as_str().unwrap_or(""),
            share["side"].as_str().unwrap_or(""),
            share["role"].as_str().unwrap_or(""),
            share["url"].as_str().unwrap_or("")
        ));
    }
    out
}

/// `mapline plans …`.
pub fn plans(command: &PlansCommand, target: &Target) -> anyhow::Result<()> {
    let http = Http::new(target)?;
    match command {
        PlansCommand::List => {
            let plans =
                match &http {
                    Some(http) => http.json("GET", "/api/plans", None)?["plans"].clone(),
                    None => json!(
                    open(&target.data)?
                        .plans()?
                        .into_iter()
                        .map(|(id, p)| json!({ "id": id, "title": p.title, "buyerOrg": p.buyer_org,
                            "sellerOrg": p.seller_org, "goLive": p.go_live }))
                        .collect::<Vec<_>>()
                ),
                };
            print(target, &plans, || {
                plans
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        format!(
                            "{}  {}  go-live {}  ({} × {})",
                            p["id"].as_str().unwrap_or(""),
                            p["title"].as_str().unwrap_or(""),
                            p["goLive"].as_str().unwrap_or("-"),
                            p["buyerOrg"].as_str().unwrap_or(""),
                            p["sellerOrg"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PlansCommand::Create(create) => {
            let body = json!({ "title": create.title, "buyerOrg": create.buyer_org,
                "sellerOrg": create.seller_org, "goLive": create.go_live, "template": create.template });
            let created = match &http {
                Some(http) => http.json("POST", "/api/plans", Some(&body))?,
                None => {
                    let store = open_or_create(&target.data)?;
                    let plan = mapline_plan::NewPlan::parse(
                        &create.title,
                        &create.buyer_org,
                        &create.seller_org,
                        &create.go_live,
                    )
                    .and_then(|p| match &create.template {
                        Some(t) => p.with_template(t),
                        None => Ok(p),
                    })?;
                    let id = uuid::Uuid::now_v7();
                    let update = mapline_plan::new_plan_update(&plan, plans::server_client_id());
                    let shares = plans::create_plan(&store, id, &plan, update, now_ms())?;
                    json!({ "id": id, "shares": shares_json(&shares) })
                }
            };
            print(target, &created, || {
                format!(
                    "Plan {} created. Links:\n{}",
                    created["id"].as_str().unwrap_or(""),
                    links_text(&created)
                )
            });
        }
        PlansCommand::Show { id } => {
            let id = plan_id(id)?;
            let (plan, markdown) = match &http {
                Some(http) => (
                    http.json("GET", &format!("/api/plans/{id}"), None)?,
                    http.call("GET", &format!("/api/plans/{id}/export.md"), None)?,
                ),
                None => {
                    let store = open(&target.data)?;
                    let plan = mapline_server::history::project_stored(&store, id)?;
                    (
                        json!({ "id": id, "plan": plan }),
                        export_stored(&store, id, ExportFormat::Markdown)?,
                    )
                }
            };
            print(target, &plan, || markdown);
        }
        PlansCommand::Export { id, format, output } => {
            let id = plan_id(id)?;
            let (format, file) = match format {
                Format::Json => (ExportFormat::Json, "export.json"),
                Format::Md => (ExportFormat::Markdown, "export.md"),
                Format::Csv => (ExportFormat::Csv, "export.csv"),
            };
            let text = match &http {
                Some(http) => http.call("GET", &format!("/api/plans/{id}/{file}"), None)?,
                None => export_stored(&open(&target.data)?, id, format)?,
            };
            match output {
                Some(path) => std::fs::write(path, &text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
        }
        PlansCommand::Import { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let export: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let created = match &http {
                Some(http) => http.json("POST", "/api/plans/import", Some(&export))?,
                None => {
                    let store = open_or_create(&target.data)?;
                    let (id, shares) = import_into(
                        &store,
                        &export,
                        mapline_plan::admission::PlanLimits::default(),
                        now_ms(),
                    )?;
                    json!({ "id": id, "shares": shares_json(&shares) })
                }
            };
            print(target, &created, || {
                format!(
                    "Plan {} imported. Links:\n{}",
                    created["id"].as_str().unwrap_or(""),
                    links_text(&created)
                )
            });
        }
    }
    Ok(())
}

/// `mapline shares …`.
pub fn shares(command: &SharesCommand, target: &Target) -> anyhow::Result<()> {
    let http = Http::new(target)?;
    match command {
        SharesCommand::List { plan } => {
            let id = plan_id(plan)?;
            let shares = match &http {
                Some(http) => {
                    http.json("GET", &format!("/api/plans/{id}/shares"), None)?["shares"].clone()
                }
                None => {
                    let store = open(&target.data)?;
                    if store.plan(id)?.is_none() {
                        bail!("no plan {id}");
                    }
                    let listed = store.shares_of(id)?;
                    let label_of = |parent: mapline_store::ShareId| {
                        listed
                            .iter()
                            .find(|(s, _)| s.record.id == parent)
                            .map(|(s, _)| s.record.label.clone())
                    };
                    json!(
                        listed
                            .iter()
                            .map(|(linked, seen)| {
                                let s = &linked.record;
                                json!({
                                "id": s.id, "label": s.label, "side": plans::side_name(s.side),
                                "role": plans::role_name(s.role),
                                "status": if s.revoked_at_ms.is_some() { "revoked" } else if s.expires_at_ms.is_some_and(|at| at <= now_ms()) { "expired" } else { "active" },
                                "opens": seen.map_or(0, |v| v.opens),
                                "parentId": linked.parent,
                                "mintedBy": linked.parent.and_then(label_of),
                            })
                            })
                            .collect::<Vec<_>>()
                    )
                }
            };
            print(target, &shares, || {
                shares
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let minted = match (s["mintedBy"].as_str(), s["parentId"].as_str()) {
                            (Some(label), _) => format!("  minted by {label}"),
                            (None, Some(parent)) => format!("  minted by {parent}"),
                            (None, None) => String::new(),
                        };
                        format!(
                            "{}  {} ({} {})  {}  opened {}×{minted}",
                            s["id"].as_str().unwrap_or(""),
                            s["label"].as_str().unwrap_or(""),
                            s["side"].as_str().unwrap_or(""),
                            s["role"].as_str().unwrap_or(""),
                            s["status"].as_str().unwrap_or(""),
                            s["opens"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        SharesCommand::Create {
            plan,
            side,
            role,
            label,
            expires_at,
        } => {
            let id = plan_id(plan)?;
            let made = match &http {
                Some(http) => http.json(
                    "POST",
                    &format!("/api/plans/{id}/shares"),
                    Some(&json!({ "side": side, "role": role, "label": label, "expiresAt": expires_at })),
                )?,
                None => {
                    let store = open(&target.data)?;
                    let expires_at_ms = expires_at
                        .as_deref()
                        .map(|t| {
                            chrono::DateTime::parse_from_rfc3339(t)
                                .map(|t| t.timestamp_millis())
                                .with_context(|| format!("--expires-at must be RFC 3339, got {t:?}"))
                        })
                        .transpose()?;
                    let label = label.trim();
                    if label.is_empty() {
                        bail!("--label must name who the link is for");
                    }
                    let side = if side == "buyer" { Side::Buyer } else { Side::Seller };
                    let role = if role == "editor" { Role::Editor } else { Role::Viewer };
                    let share = plans::issue_share(id, side, role, label, expires_at_ms, now_ms());
                    // Made on the file like with the admin credential: no parent.
                    store
                        .insert_share(&share.record, None)
                        .with_context(|| format!("no plan {id}"))?;
                    json!(share.view(None))
                }
            };
            print(target, &made, || {
                format!(
                    "Link for {}: {}",
                    made["label"].as_str().unwrap_or(""),
                    made["url"].as_str().unwrap_or("")
                )
            });
        }
        SharesCommand::Revoke { plan, share } => {
            let id = plan_id(plan)?;
            let share_id = plan_id(share)?;
            let revoked = match &http {
                Some(http) => http.json(
                    "DELETE",
                    &format!("/api/plans/{id}/shares/{share_id}"),
                    None,
                )?,
                None => {
                    let revocation = open(&target.data)?
                        .revoke_share(id, share_id, now_ms())?
                        .with_context(|| format!("plan {id} has no link {share_id}"))?;
                    let ids: Vec<_> = revocation.links.iter().map(|l| l.record.id).collect();
                    json!({ "id": share_id, "status": "revoked",
                        "revoked": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() })
                }
            };
            print(target, &revoked, || {
                // Links minted through it went with it.
                let along = revoked["revoked"]
                    .as_array()
                    .map_or(0, |all| all.len().saturating_sub(1));
                if along == 0 {
                    format!("Link {share_id} revoked.")
                } else {
                    format!("Link {share_id} revoked, with {along} link(s) minted through it.")
                }
            });
        }
    }
    Ok(())
}

/// `mapline compact`: shrinks the data file (server stopped).
pub fn compact(target: &Target) -> anyhow::Result<()> {
    if target.server.is_some() {
        bail!("compact works on the data file itself: stop the server and run it with --data");
    }
    let store = open(&target.data)?;
    let spinner = indicatif::ProgressBar::new_spinner().with_message("compacting");
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let (before, after) = store.compact()?;
    spinner.finish_and_clear();
    let value = json!({ "bytesBefore": before, "bytesAfter": after });
    print(target, &value, || {
        format!("{}: {before} → {after} bytes", target.data.display())
    });
    Ok(())
}
