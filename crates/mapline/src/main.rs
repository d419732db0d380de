//! The `mapline` binary: parses the command line into a validated config, opens the store,
//! settles the admin credential, optionally seeds the demo plan, and runs the server.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod admin;
mod cluster_ops;
mod cluster_serve;
mod members;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use mapline_plan::admission::PlanLimits;
use mapline_server::{OutboxLimits, ServerConfig, new_admin_token, now_ms, plans, token_hash};
use mapline_store::Store;

/// Mapline: mutual action plans that buyers and sellers edit together, live and offline, with
/// every moved date on record.
#[derive(Parser)]
#[command(name = "mapline", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: y-websocket sync at /sync/{planId}, the JSON API at /api, the web client.
    Serve(Box<ServeArgs>),
    /// Derive every plan's slip history and change audit again from its update log, and store
    /// it (or, with --check, only compare it with what is stored). Run it with the server
    /// stopped. Exit code 1 if --check finds a difference.
    RebuildHistory(RebuildArgs),
    /// Check the data file: every plan's update log is whole, its history chain unbroken and
    /// equal to what the log derives, its snapshot equal to the log. Names each problem's table
    /// and log position. Exit code 1 if anything is wrong. Run it with the server stopped (or
    /// on a backup).
    Verify(VerifyArgs),
    /// Check an audit export (`GET /api/plans/{id}/audit.json`) offline: every entry's record
    /// hashes to its `hash`, commits to the entry before it and holds what the entry shows.
    /// Prints ok and the head hash, or the first entry that does not check out (exit code 1).
    VerifyAudit(VerifyAuditArgs),
    /// Write a consistent copy of the data: from a running server (--server, with the admin
    /// token) while it keeps serving, or from the data file (--data) with the server stopped.
    /// The copy is verified before the command succeeds.
    Backup(BackupArgs),
    /// Replace the data file with a backup, after verifying the backup. Run it with the server
    /// stopped; the replaced file is kept beside it as `<data>.before-restore-<time>`.
    Restore(RestoreArgs),
    /// Plans: list, create, show, export, import (through --server, or on the data file).
    Plans {
        #[command(subcommand)]
        command: admin::PlansCommand,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Share links: list, create, revoke (through --server, or on the data file).
    Shares {
        #[command(subcommand)]
        command: admin::SharesCommand,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Members of the seller team: invite (prints a sign-in link), list, sessions,
    /// revoke-sessions (through --server, or on the data file).
    Members {
        #[command(subcommand)]
        command: members::MembersCommand,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Shrink the data file (server stopped).
    Compact {
        #[command(flatten)]
        target: admin::Target,
    },
    /// Manage the admin credential stored in the data file.
    #[command(subcommand)]
    AdminToken(AdminTokenCommand),
    /// Move a single-node data file into a fresh cluster: verifies it, and uploads a
    /// consistent copy as the cluster's base (log position 0). Nodes started with an empty
    /// data file then start from it. Refuses a cluster already in use.
    Migrate(cluster_ops::MigrateArgs),
}

#[derive(Args)]
struct VerifyAuditArgs {
    /// The audit export (JSON).
    file: PathBuf,
    /// A head hash (hex) obtained elsewhere — the server's `/verify`, a copy kept earlier: the
    /// export's chain must end exactly there. Without it the check proves only that the file is
    /// consistent with itself.
    #[arg(long, value_name = "HEX")]
    head: Option<String>,
    /// An older export of the same plan kept earlier: it must check out, and its entries must
    /// be this export's first entries (nothing it held was rewritten or removed).
    #[arg(long, value_name = "OLD.json")]
    extends: Option<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    /// The redb data file.
    #[arg(long, env = "MAPLINE_DATA", default_value = "./data/mapline.redb")]
    data: PathBuf,
    /// Print one JSON report per plan (one per line) instead of text.
    #[arg(long)]
    json: bool,
    /// With --cluster: verify the cluster's state (its base and log, applied into a temp
    /// file) instead of a data file.
    #[command(flatten)]
    cluster: cluster_ops::ClusterArgs,
}

#[derive(Args)]
struct BackupArgs {
    /// Where to write the backup (must not exist).
    file: PathBuf,
    /// The running server's address, e.g. http://127.0.0.1:8080.
    #[arg(long, conflicts_with = "data")]
    server: Option<String>,
    /// The admin credential, for --server.
    #[arg(long, env = "MAPLINE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The redb data file, when the server is stopped.
    #[arg(long)]
    data: Option<PathBuf>,
    /// With --cluster: back up the cluster's state as of now (its base and log through its
    /// last position, applied into a file).
    #[command(flatten)]
    cluster: cluster_ops::ClusterArgs,
}

#[derive(Args)]
struct RestoreArgs {
    /// The backup to restore.
    file: PathBuf,
    /// The redb data file to replace (or create).
    #[arg(long, env = "MAPLINE_DATA", default_value = "./data/mapline.redb")]
    data: PathBuf,
    /// Restore even if the backup does not verify.
    #[arg(long)]
    force: bool,
    /// Refused: restore a cluster by migrating a backup into a fresh cluster.
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    cluster: Vec<String>,
}

#[derive(Subcommand)]
enum AdminTokenCommand {
    /// Replace the stored admin credential with a new one, printed once; the old one stops
    /// working at the next start. Run it with the server stopped. A token given with
    /// --admin-token / MAPLINE_ADMIN_TOKEN at start still takes precedence.
    Rotate(DataArgs),
}

#[derive(Args)]
struct DataArgs {
    /// The redb data file.
    #[arg(long, env = "MAPLINE_DATA", default_value = "./data/mapline.redb")]
    data: PathBuf,
}

#[derive(Args)]
struct RebuildArgs {
    /// The redb data file.
    #[arg(long, env = "MAPLINE_DATA", default_value = "./data/mapline.redb")]
    data: PathBuf,
    /// Compare only; change nothing.
    #[arg(long)]
    check: bool,
    /// Print one JSON report per plan (one per line) instead of text.
    #[arg(long)]
    json: bool,
    /// With --cluster: first apply the cluster's base and log into --data, which must be a
    /// new file, then rebuild there.
    #[command(flatten)]
    cluster: cluster_ops::ClusterArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "MAPLINE_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The redb data file; it and its folder are created if missing.
    #[arg(long, env = "MAPLINE_DATA", default_value = "./data/mapline.redb")]
    data: PathBuf,
    /// The admin credential. Without one, the stored one is used, or a new one is generated on
    /// first start, printed once, and only its hash stored.
    #[arg(long, env = "MAPLINE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Failed attempts allowed per client address and token per minute; beyond them, that token
    /// is answered 429 from that address until the minute is over (other tokens are not). 0: no
    /// limit.
    #[arg(long, env = "MAPLINE_AUTH_FAILURES_PER_MINUTE", default_value_t = 30)]
    auth_failures_per_minute: u32,
    /// Failed token attempts allowed per client address per minute, whatever the tokens (a sweep
    /// of guesses); beyond them, every request with a token from that address is answered 429
    /// until the minute is over. Default: 10 times --auth-failures-per-minute. 0: no limit.
    #[arg(long, env = "MAPLINE_AUTH_FAILURES_PER_ADDRESS_PER_MINUTE")]
    auth_failures_per_address_per_minute: Option<u32>,
    /// If the store holds no plan, create the demo plan and print its buyer and seller links.
    #[arg(long, env = "MAPLINE_DEMO")]
    demo: bool,
    /// Origin for share links, e.g. https://plans.example.com (links are relative without it).
    #[arg(long, env = "MAPLINE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest WebSocket message accepted; larger ones close the connection with 4413.
    #[arg(long, env = "MAPLINE_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    max_message_bytes: usize,
    /// Folder of the built web client, served at /.
    #[arg(long, env = "MAPLINE_WEB", default_value = "web/dist")]
    web: PathBuf,
    /// Seconds a plan with nobody connected stays in memory.
    #[arg(long, env = "MAPLINE_ROOM_IDLE_SECS", default_value_t = 60)]
    room_idle_secs: u64,
    /// Let webhooks be delivered to loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7)
    /// and CGNAT addresses, for receivers inside your own network. Link-local (cloud metadata)
    /// and other special addresses stay refused.
    #[arg(long, env = "MAPLINE_WEBHOOKS_ALLOW_PRIVATE")]
    webhooks_allow_private: bool,
    /// Memory for the data file's page cache, in MiB.
    #[arg(long, env = "MAPLINE_CACHE_MB", default_value_t = 64)]
    cache_mb: usize,
    /// Most entries one collection of a plan may hold (milestones, stakeholders, criteria,
    /// risks, objectives); updates and imports over it are refused.
    #[arg(long, env = "MAPLINE_MAX_ENTRIES", default_value_t = PlanLimits::default().entries_per_collection)]
    max_entries: usize,
    /// Most characters in one text value of a plan (a title, a note).
    #[arg(long, env = "MAPLINE_MAX_TEXT_CHARS", default_value_t = PlanLimits::default().text_chars)]
    max_text_chars: usize,
    /// The company's OpenID Connect provider (its issuer URL, e.g.
    /// https://login.example.com/realms/sales), for "Sign in with your company account". Needs
    /// --oidc-client-id and --oidc-client-secret too. https only (plain http on loopback only).
    #[arg(long, env = "MAPLINE_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// Mapline's client id at the IdP. Register the redirect URI
    /// `<public URL>/auth/oidc/callback` there.
    #[arg(long, env = "MAPLINE_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// Mapline's client secret at the IdP (sent as client_secret_basic). Prefer the
    /// environment variable: a flag is visible to everyone who can list processes.
    #[arg(long, env = "MAPLINE_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// Email domains (comma-separated, e.g. example.com,example.co.uk) whose people may sign in
    /// with the IdP without an invitation; they become `rep` members. Others need to be members.
    #[arg(long, env = "MAPLINE_OIDC_ALLOWED_DOMAINS", value_delimiter = ',')]
    oidc_allowed_domains: Vec<String>,
    /// Sign-ins with the IdP one client address may start per minute; beyond them
    /// /auth/oidc/login answers a 429 page until the minute is over. 0: no limit.
    #[arg(
        long,
        env = "MAPLINE_OIDC_LOGINS_PER_ADDRESS_PER_MINUTE",
        default_value_t = 30
    )]
    oidc_logins_per_address_per_minute: u32,
    /// Log filter (tracing syntax), e.g. `info` or `mapline_server=debug`.
    #[arg(long, env = "MAPLINE_LOG", default_value = "info")]
    log: String,
    #[command(flatten)]
    cluster: cluster_serve::ClusterArgs,
    /// This node's name in a cluster's log lines and in the ids of what it publishes (letters,
    /// digits and `_`; at most 32). Default: a random one.
    #[arg(long, env = "MAPLINE_NODE_ID")]
    node_id: Option<String>,
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(*args).map(|()| std::process::ExitCode::SUCCESS),
        Command::RebuildHistory(args) if args.cluster.given() => {
            cluster_ops::materialize_new(&args.cluster, &args.data)
                .and_then(|()| rebuild_history(args))
        }
        Command::RebuildHistory(args) => rebuild_history(args),
        Command::Verify(args) if args.cluster.given() => {
            cluster_ops::verify(&args.cluster, args.json)
        }
        Command::Verify(args) => verify(&args),
        Command::Members { command, target } => {
            refuse_replica(command.writes(), &target).and_then(|()| {
                members::members(&command, &target).map(|()| std::process::ExitCode::SUCCESS)
            })
        }
        Command::VerifyAudit(args) => verify_audit(&args),
        Command::Plans { command, target } => {
            refuse_replica(command.writes(), &target).and_then(|()| {
                admin::plans(&command, &target).map(|()| std::process::ExitCode::SUCCESS)
            })
        }
        Command::Shares { command, target } => {
            refuse_replica(command.writes(), &target).and_then(|()| {
                admin::shares(&command, &target).map(|()| std::process::ExitCode::SUCCESS)
            })
        }
        Command::Backup(args) if args.cluster.given() => {
            if args.server.is_some() || args.data.is_some() {
                Err(anyhow::anyhow!(
                    "back up from one place: --cluster, --server or --data"
                ))
            } else {
                cluster_ops::backup(&args.cluster, &args.file)
                    .map(|()| std::process::ExitCode::SUCCESS)
            }
        }
        Command::Restore(args) if !args.cluster.is_empty() => Err(anyhow::anyhow!(
            "restore does not work on a cluster: restore a cluster by migrating a backup into a fresh cluster (mapline migrate --from-data BACKUP --cluster URLS)"
        )),
        Command::Migrate(args) => {
            cluster_ops::migrate(&args).map(|()| std::process::ExitCode::SUCCESS)
        }
        Command::Compact { target } => {
            admin::compact(&target).map(|()| std::process::ExitCode::SUCCESS)
        }
        Command::Backup(args) => backup(&args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Restore(args) => restore(&args),
        Command::AdminToken(AdminTokenCommand::Rotate(args)) => {
            cluster_ops::refuse_replica_writes(&args.data)
                .and_then(|()| rotate_admin_token(&args).map(|()| std::process::ExitCode::SUCCESS))
        }
    };
    // One line with the whole chain of causes: what failed and why, without a backtrace.
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        std::process::ExitCode::from(2)
    })
}

/// An admin command that writes to the data file (not through --server) is refused on a
/// cluster replica's file.
fn refuse_replica(writes: bool, target: &admin::Target) -> anyhow::Result<()> {
    if writes && target.server.is_none() {
        cluster_ops::refuse_replica_writes(&target.data)?;
    }
    Ok(())
}

/// Opens an existing data file for an offline command, with a clear error when it is missing
/// or held by a running server.
fn open_existing(data: &std::path::Path) -> anyhow::Result<Store> {
    if !data.exists() {
        bail!("no data file at {}", data.display());
    }
    Store::open(data).with_context(|| {
        format!(
            "cannot open {} (is the server still running?)",
            data.display()
        )
    })
}

fn progress_bar(len: usize, unit: &str) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(len as u64).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit} {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    )
}

fn verify(args: &VerifyArgs) -> anyhow::Result<std::process::ExitCode> {
    let store = open_existing(&args.data)?;
    let problems = verify_store(&store, args.json)?;
    Ok(if problems == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

/// Verifies every plan of a store, printing each problem; returns how many there were.
fn verify_store(store: &Store, json: bool) -> anyhow::Result<usize> {
    let plans = store.plans().context("cannot list the plans")?;
    let progress = progress_bar(plans.len(), "plans");
    let (mut updates, mut entries, mut problems) = (0, 0, 0);
    for (plan_id, _) in &plans {
        let report = mapline_server::verify::verify_plan(store, *plan_id)
            .with_context(|| format!("reading plan {plan_id}"))?;
        progress.inc(1);
        updates += report.updates;
        entries += report.history_entries;
        problems += report.problems.len();
        if json {
            let line = serde_json::to_string(&report)?;
            progress.suspend(|| println!("{line}"));
        }
        for problem in report.problems.iter().filter(|_| !json) {
            let at = problem
                .seq
                .map_or(String::new(), |seq| format!(" at {seq}"));
            progress.suspend(|| {
                println!(
                    "{plan_id}: {}{at}: {} ({})",
                    problem.table, problem.detail, problem.kind
                );
            });
        }
    }
    progress.finish_and_clear();
    let summary = format!(
        "{} plans, {updates} updates, {entries} history entries",
        plans.len()
    );
    if problems == 0 {
        eprintln!("verified {summary}: no problem found");
    } else {
        eprintln!("verified {summary}: {problems} problems");
    }
    Ok(problems)
}

fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    if args.file.exists() {
        bail!(
            "{} already exists; a backup never overwrites a file",
            args.file.display()
        );
    }
    match (&args.server, &args.data) {
        (Some(server), None) => {
            let token = args
                .admin_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .context("--server needs the admin token (--admin-token or MAPLINE_ADMIN_TOKEN)")?;
            download_backup(server, token, &args.file)?;
        }
        (None, Some(data)) => {
            let store = open_existing(data)?;
            store
                .backup_to(&args.file)
                .with_context(|| format!("writing {}", args.file.display()))?;
        }
        _ => bail!("say where to back up from: --server URL (running) or --data FILE (stopped)"),
    }
    let copy = Store::open(&args.file)
        .with_context(|| format!("the backup {} does not open", args.file.display()))?;
    let problems = verify_store(&copy, false)?;
    if problems > 0 {
        bail!(
            "the backup {} does not verify ({problems} problems)",
            args.file.display()
        );
    }
    println!("backup written to {}", args.file.display());
    Ok(())
}

/// Downloads `GET /api/admin/backup` into `file`, through a `.partial` file renamed at the end.
fn download_backup(server: &str, token: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let url = format!("{}/api/admin/backup", server.trim_end_matches('/'));
    let response = ureq::get(&url)
        .header("authorization", &format!("Bearer {token}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.read_to_string().unwrap_or_default();
        bail!("the server refused the backup ({status}): {text}");
    }
    let partial = file.with_extension("partial");
    let progress = indicatif::ProgressBar::new(length.unwrap_or(0)).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut out = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let copied = std::io::copy(&mut progress.wrap_read(body.as_reader()), &mut out)
        .with_context(|| format!("downloading the backup into {}", partial.display()))?;
    out.sync_all().context("syncing the backup to disk")?;
    progress.finish_and_clear();
    if length.is_some_and(|expected| expected != copied) {
        let _ = std::fs::remove_file(&partial);
        bail!(
            "the download ended early ({copied} of {} bytes)",
            length.unwrap_or(0)
        );
    }
    std::fs::rename(&partial, file).with_context(|| format!("renaming to {}", file.display()))?;
    Ok(())
}

fn restore(args: &RestoreArgs) -> anyhow::Result<std::process::ExitCode> {
    if !args.file.is_file() {
        bail!("no backup at {}", args.file.display());
    }
    // Verify a private copy, so the backup file itself is never modified (opening may upgrade
    // an older format).
    let staged = args.data.with_extension("restoring");
    if let Some(folder) = staged.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    std::fs::copy(&args.file, &staged)
        .with_context(|| format!("copying {} to {}", args.file.display(), staged.display()))?;
    let checked = Store::open(&staged)
        .map_err(anyhow::Error::from)
        .and_then(|store| verify_store(&store, false));
    let problems = match checked {
        Ok(problems) => problems,
        Err(error) => {
            let _ = std::fs::remove_file(&staged);
            return Err(error.context(format!(
                "{} is not a Mapline data file",
                args.file.display()
            )));
        }
    };
    if problems > 0 && !args.force {
        let _ = std::fs::remove_file(&staged);
        eprintln!(
            "error: the backup does not verify ({problems} problems); nothing was changed (--force restores it anyway)"
        );
        return Ok(std::process::ExitCode::from(1));
    }
    if args.data.exists() {
        // Refuses while a server holds the file.
        drop(open_existing(&args.data).inspect_err(|_| {
            let _ = std::fs::remove_file(&staged);
        })?);
        let kept = args
            .data
            .with_extension(format!("before-restore-{}", now_ms()));
        std::fs::rename(&args.data, &kept)
            .with_context(|| format!("moving the current data file to {}", kept.display()))?;
        println!("the replaced data file is kept as {}", kept.display());
    }
    std::fs::rename(&staged, &args.data)
        .with_context(|| format!("moving the backup into {}", args.data.display()))?;
    println!(
        "restored {} into {}",
        args.file.display(),
        args.data.display()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

fn rotate_admin_token(args: &DataArgs) -> anyhow::Result<()> {
    let store = open_existing(&args.data)?;
    let token = new_admin_token();
    store
        .set_admin_token_hash(&token_hash(&token))
        .context("storing the new admin credential")?;
    println!("New admin token (shown only now; keep it): {token}");
    println!("The previous admin token no longer works.");
    Ok(())
}

fn rebuild_history(args: RebuildArgs) -> anyhow::Result<std::process::ExitCode> {
    let store = open_existing(&args.data)?;
    let plans = store.plans().context("cannot list the plans")?;
    let progress = progress_bar(plans.len(), "plans");
    let mut different = 0;
    for (plan_id, _) in &plans {
        let report = mapline_server::history::rebuild_plan(&store, *plan_id, !args.check)
            .with_context(|| format!("rebuilding the history of plan {plan_id}"))?;
        progress.inc(1);
        if !report.identical() {
            different += 1;
        }
        let line = if args.json {
            serde_json::to_string(&report)?
        } else {
            describe_rebuild(&report)
        };
        progress.suspend(|| println!("{line}"));
    }
    progress.finish_and_clear();
    let verb = if args.check {
        "differ"
    } else {
        "differed and were rewritten"
    };
    eprintln!("{} plans checked; {different} {verb}", plans.len());
    Ok(if args.check && different > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn describe_rebuild(report: &mapline_server::history::RebuildReport) -> String {
    if report.identical() {
        return format!(
            "{}: identical ({} entries through log position {})",
            report.plan_id, report.entries, report.rebuilt_through
        );
    }
    let seqs = |s: &[u64]| s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let mut parts = vec![format!(
        "derived through {} (log ends at {})",
        report.stored_through, report.rebuilt_through
    )];
    if !report.missing.is_empty() {
        parts.push(format!("missing at {}", seqs(&report.missing)));
    }
    if !report.extra.is_empty() {
        parts.push(format!("not derivable at {}", seqs(&report.extra)));
    }
    if !report.differing.is_empty() {
        parts.push(format!("different at {}", seqs(&report.differing)));
    }
    format!("{}: DIFFERS: {}", report.plan_id, parts.join("; "))
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).context("bad --log filter")?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let public_url = args
        .public_url
        .as_deref()
        .map(validate_public_url)
        .transpose()?;
    let oidc = mapline_server::OidcSettings::from_flags(
        args.oidc_issuer.as_deref(),
        args.oidc_client_id.as_deref(),
        args.oidc_client_secret.as_deref(),
    )?;
    let oidc_allowed_domains: Vec<String> = args
        .oidc_allowed_domains
        .iter()
        .map(|domain| domain.trim().trim_start_matches('@').to_ascii_lowercase())
        .filter(|domain| !domain.is_empty())
        .collect();
    if let Some(domain) = oidc_allowed_domains
        .iter()
        .find(|d| !d.contains('.') || d.contains(['/', ' ', ':']))
    {
        bail!("--oidc-allowed-domains: {domain:?} is not an email domain like example.com");
    }
    if oidc.is_some() && public_url.is_none() {
        // The redirect URI registered at the IdP and the cookies' `Secure` come from it; a
        // Host header is not something to build them from.
        bail!(
            "OIDC needs --public-url (MAPLINE_PUBLIC_URL): the redirect URI <public URL>/auth/oidc/callback and the cookies' Secure flag come from it"
        );
    }
    if let Some(oidc) = &oidc {
        tracing::info!(issuer = %oidc.issuer, client_id = %oidc.client_id, allowed_domains = ?oidc_allowed_domains, "sign-in with the company IdP is on");
    }
    if args.max_message_bytes < 1024 {
        bail!("--max-message-bytes must be at least 1024");
    }

    if args.cache_mb == 0 {
        bail!("--cache-mb must be at least 1");
    }
    let cluster_config = args.cluster.config()?;
    if let Some(given) = &args.node_id {
        cluster_serve::node_id(Some(given))?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // On a cluster: the engine first (a node waits for it), then the replica file, fed
        // from the log before anything here writes to it.
        let cluster = match cluster_config {
            Some(config) => {
                let cluster = cluster_serve::connect(config).await?;
                // A new node's empty file starts from the cluster's base (a migrated file),
                // when it has one, and reads the log on from the position the base covers.
                cluster_ops::bootstrap_if_empty(&cluster, &args.data).await?;
                Some(cluster)
            }
            None => None,
        };
        let store = Arc::new(
            Store::open_with_cache(&args.data, args.cache_mb.saturating_mul(1 << 20))
                .with_context(|| format!("opening the data file {}", args.data.display()))?,
        );
        let node = match cluster {
            Some(cluster) => {
                // The given id, else the one this file's node had (a restarted node keeps its
                // claims, e.g. of webhook deliveries), else a new one.
                let node_id = match &args.node_id {
                    Some(given) => given.clone(),
                    None => store
                        .node_id_or(|| cluster_serve::node_id(None).unwrap_or_default())
                        .context("reading this node's id")?,
                };
                Some(cluster_serve::join(cluster, store.clone(), &node_id).await?)
            }
            None => None,
        };
        if node.is_some() && args.admin_token.is_none() && store.admin_token_hash()?.is_none() {
            // Two new nodes would each make up a token of their own.
            bail!(
                "--cluster needs --admin-token (MAPLINE_ADMIN_TOKEN), the same on every node, until the cluster has one stored"
            );
        }
        let admin_token_hash = {
            let store = store.clone();
            let configured = args.admin_token.clone();
            tokio::task::spawn_blocking(move || settle_admin_token(&store, configured.as_deref()))
                .await
                .context("settling the admin credential")??
        };
        // Taken before anything is written: if this run crashes, the next start must look for
        // history the crash left underived.
        let was_clean = store
            .take_clean_shutdown()
            .context("reading the shutdown mark")?;
        watch_file_size_limit();
        let listener = listen(args.addr).with_context(|| format!("listening on {}", args.addr))?;
        let origin = format!(
            "http://{}",
            listener.local_addr().context("reading the bound address")?
        );
        println!("Mapline listening on {origin}");
        if args.demo {
            let seeds = match &node {
                Some(node) => cluster_serve::claim_demo(node).await?,
                None => true,
            };
            if seeds {
                let store = store.clone();
                let origin = public_url.clone().unwrap_or(origin.clone());
                tokio::task::spawn_blocking(move || seed_demo(&store, &origin))
                    .await
                    .context("seeding the demo plan")??;
            } else {
                println!("Demo: another node of the cluster seeded the demo plan; its links were printed there.");
            }
        }
        let config = ServerConfig {
            public_url,
            max_message_bytes: args.max_message_bytes,
            room_idle: Duration::from_secs(args.room_idle_secs),
            web_root: Some(args.web),
            admin_token_hash,
            auth_failures_per_minute: args.auth_failures_per_minute,
            plan_limits: PlanLimits {
                entries_per_collection: args.max_entries,
                text_chars: args.max_text_chars,
            },
            auth_failures_per_address_per_minute: args
                .auth_failures_per_address_per_minute
                .unwrap_or(args.auth_failures_per_minute.saturating_mul(10)),
            // A cluster's node also derives the history of what it applied while catching up
            // (no room was open to derive it then).
            catch_up_history: !was_clean || node.is_some(),
            webhooks_allow_private: args.webhooks_allow_private,
            oidc,
            oidc_allowed_domains,
            oidc_logins_per_address_per_minute: args.oidc_logins_per_address_per_minute,
            outbox: OutboxLimits {
                messages: 1024,
                // Room for a few of the largest messages, however small the limit is set.
                bytes: args
                    .max_message_bytes
                    .saturating_mul(4)
                    .max(4 * 1024 * 1024),
            },
        };
        match node {
            Some(node) => {
                mapline_server::run_cluster_node(listener, store, config, node, shutdown_signal())
                    .await
            }
            None => mapline_server::run(listener, store, config, shutdown_signal()).await,
        }
        .context("serving")
    })
}

fn validate_public_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(['?', '#']) {
        bail!("--public-url must be an origin such as https://plans.example.com, got {url:?}");
    }
    Ok(url.to_owned())
}

/// The admin credential's hash: the configured token's, else the stored one, else a new token
/// generated, stored as a hash, and printed this once.
fn settle_admin_token(store: &Store, configured: Option<&str>) -> anyhow::Result<[u8; 32]> {
    if let Some(token) = configured.filter(|t| !t.is_empty()) {
        if token.len() < 16 {
            bail!("--admin-token must be at least 16 characters");
        }
        return Ok(token_hash(token));
    }
    if let Some(hash) = store
        .admin_token_hash()
        .context("reading the admin credential")?
    {
        return Ok(hash);
    }
    let token = new_admin_token();
    let hash = token_hash(&token);
    store
        .set_admin_token_hash(&hash)
        .context("storing the admin credential")?;
    println!("Admin token (shown only now; keep it): {token}");
    Ok(hash)
}

/// The demo seller `--demo` creates (an admin member, owner of the demo plan).
const DEMO_SELLER_EMAIL: &str = "demo.seller@mapline.local";

fn seed_demo(store: &Store, origin: &str) -> anyhow::Result<()> {
    if !store.is_empty().context("reading plans")? {
        println!(
            "Demo: the store already holds plans; its links were printed when it was created."
        );
        // A sign-in link works once and briefly: each start prints a fresh one.
        if let Some(seller) = store
            .member_by_email(DEMO_SELLER_EMAIL)
            .context("reading the demo seller")?
        {
            let url = mapline_server::members::new_sign_in_link(
                store,
                seller.id,
                Some(origin),
                mapline_server::members::SIGN_IN_LINK_MS,
                now_ms(),
            )
            .context("making the demo seller's sign-in link")?;
            println!(
                "  Sign in as the demo seller, {} <{DEMO_SELLER_EMAIL}>: {url}",
                seller.name
            );
        }
        return Ok(());
    }
    let (id, shares) =
        plans::create_demo_plan(store, now_ms()).context("creating the demo plan")?;
    println!("Demo plan {id} created. Open it as:");
    for share in shares {
        let view = share.view(Some(origin));
        println!(
            "  {} ({} {}): {}",
            view.label, view.side, view.role, view.url
        );
    }
    let seller = mapline_server::members::invite_member(
        store,
        DEMO_SELLER_EMAIL,
        "Dana Seller",
        "admin",
        Some(origin),
        mapline_server::members::SIGN_IN_LINK_MS,
        now_ms(),
    )
    .context("creating the demo seller")?;
    store
        .add_plan_member(
            id,
            seller.member.id,
            mapline_store::PlanMemberRecord {
                role: mapline_store::PlanMemberRole::Owner,
                added_at_ms: now_ms(),
            },
        )
        .context("making the demo seller the demo plan's owner")?;
    println!(
        "  Sign in as the demo seller, Dana Seller <{DEMO_SELLER_EMAIL}> (admin; works once, for 15 minutes): {}",
        seller.sign_in_url
    );
    Ok(())
}

/// A process over its file-size limit (`ulimit -f`) gets SIGXFSZ, which kills it by default.
/// Handled instead, the write fails with EFBIG like on a full disk: the commit fails, its
/// senders are told to resend, and the server recovers once the limit is raised.
fn watch_file_size_limit() {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ)) {
        Ok(mut signal) => {
            tokio::spawn(async move {
                while signal.recv().await.is_some() {
                    tracing::error!(
                        "the file-size limit was reached; writes fail until it is raised"
                    );
                }
            });
        }
        Err(error) => {
            tracing::warn!(%error, "cannot handle SIGXFSZ; a file-size limit will stop the server")
        }
    }
}

/// How many connections the kernel queues for the server before it accepts them. tokio's
/// `TcpListener::bind` asks for 128 (mio 1.2 follows the standard library; `ss -ltn` showed
/// Send-Q 128): in a connect storm (2,000 clients at once, BENCHMARKS.md) the queue overflowed
/// (`nstat` TcpExtListenOverflows: 800–3,250 per storm), the kernel dropped the handshakes that
/// did not fit, and each of those clients waited for its SYN's retransmission (1 s, then 3 s):
/// the storm's time swung from 0.5 to 2.3 s with the machine's load. Linux caps this at
/// `net.core.somaxconn` (4,096 by default since 5.4); raise that too for more.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` as `TcpListener::bind` does (on Unix SO_REUSEADDR, so a restart does not wait
/// out TIME_WAIT; elsewhere it would let another socket take the port, and tokio leaves it off
/// too), with a listen backlog of [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn verify_audit(args: &VerifyAuditArgs) -> anyhow::Result<std::process::ExitCode> {
    let read = |path: &PathBuf| -> anyhow::Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    };
    let export = read(&args.file)?;
    let old = args.extends.as_ref().map(read).transpose()?;
    let check = mapline_server::audit::check_export(&export);
    if let Some(bad) = &check.first_bad {
        let seq = bad.seq.map_or("?".to_owned(), |s| s.to_string());
        println!("bad: entry {} (seq {seq}): {}", bad.index, bad.reason);
        return Ok(std::process::ExitCode::from(1));
    }
    if let Some(trusted) = &args.head
        && let Err(why) = mapline_server::audit::check_head(&check, trusted)
    {
        println!("bad: head: {why}");
        return Ok(std::process::ExitCode::from(1));
    }
    if let (Some(old), Some(path)) = (&old, &args.extends)
        && let Err(why) = mapline_server::audit::check_extends(old, &export)
    {
        println!("bad: extends {}: {why}", path.display());
        return Ok(std::process::ExitCode::from(1));
    }
    println!(
        "ok: {} entries, head {}",
        check.entries,
        check.head.as_deref().unwrap_or("(none)")
    );
    if args.head.is_some() {
        println!("the head is the trusted one");
    }
    if let Some(path) = &args.extends {
        println!(
            "it extends {}: every entry of it is still here",
            path.display()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    /// Connections the kernel completes before the server accepts any: with tokio's default
    /// backlog (128) the 130th SYN is dropped and its connect waits out the deadline.
    #[test]
    fn the_listener_queues_more_connections_than_tokios_default_backlog() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(async { listen(SocketAddr::from(([127, 0, 0, 1], 0))) })
            .expect("listening");
        let addr = listener.local_addr().expect("an address");
        // The kernel caps the backlog at net.core.somaxconn (4,096 since Linux 5.4, 128 before).
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(4096);
        if cap <= 256 {
            eprintln!("net.core.somaxconn is {cap}: this machine cannot show the larger backlog");
            return;
        }
        let n = cap.min(600);
        // Nothing accepts: every connection below waits in the kernel's accept queue.
        let mut held = Vec::new();
        for i in 0..n {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connection {i} was not queued: {e}"));
            held.push(stream);
        }
        assert_eq!(held.len(), n);
    }
}
