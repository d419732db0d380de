//! `mapline members …`: invite members of the seller team (each gets a single-use sign-in
//! link), list them, list and revoke their sessions. Like `mapline plans`, a command goes
//! through the running server with `--server URL` (admin token), or works on the data file
//! with the server stopped.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use mapline_server::members::{
    Invited, invite_member, member_json, new_sign_in_link, session_json,
};
use mapline_server::now_ms;
use serde_json::{Value, json};

use crate::admin::{Http, Target, open, open_or_create, print};

#[derive(Subcommand)]
pub enum MembersCommand {
    /// Add a member and print their single-use sign-in link (valid 15 minutes unless
    /// --link-valid-secs says otherwise).
    Invite {
        email: String,
        /// Their name, as history and presence show it.
        #[arg(long)]
        name: String,
        /// rep (their own plans), manager (every plan, the pipeline) or admin (and members).
        #[arg(long, value_parser = ["rep", "manager", "admin"])]
        role: String,
        #[command(flatten)]
        link: LinkArgs,
    },
    /// A new single-use sign-in link for an existing member (their last one expired or was
    /// used, or their session ended).
    Link {
        email: String,
        #[command(flatten)]
        link: LinkArgs,
    },
    /// Offboard a member: they can no longer sign in, their sessions end (with --server their
    /// open sockets close at once) and their unused sign-in links stop working.
    Disable { email: String },
    /// Every member: email, name, role.
    List,
    /// Sessions of one member (by email), or of every member.
    Sessions { email: Option<String> },
    /// End every session of a member (with --server, their open sockets close at once).
    RevokeSessions { email: String },
}

impl MembersCommand {
    /// Whether it writes to the store (refused on a cluster replica's file).
    pub fn writes(&self) -> bool {
        !matches!(self, Self::List | Self::Sessions { .. })
    }
}

/// How a sign-in link is made.
#[derive(clap::Args)]
pub struct LinkArgs {
    /// Origin for the sign-in link when working on the data file (e.g.
    /// https://plans.example.com); with --server the server's own is used.
    #[arg(long, env = "MAPLINE_PUBLIC_URL")]
    public_url: Option<String>,
    /// How long the sign-in link works, in seconds.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u32).range(1..=604_800))]
    link_valid_secs: u32,
}

impl LinkArgs {
    /// The origin for a link made on the data file; warns when there is none (the link is
    /// then relative: the member must be told the server's address).
    fn origin_for_file(&self) -> Option<&str> {
        let origin = self
            .public_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty());
        if origin.is_none() {
            eprintln!(
                "warning: no --public-url (MAPLINE_PUBLIC_URL): the sign-in link is relative; put the server's address in front of it"
            );
        }
        origin
    }

    fn valid_ms(&self) -> i64 {
        i64::from(self.link_valid_secs) * 1000
    }
}

fn link_text(answer: &Value, verb: &str) -> String {
    format!(
        "{verb} {} <{}> as {}. Sign-in link (works once, until {}):\n  {}",
        answer["member"]["name"].as_str().unwrap_or(""),
        answer["member"]["email"].as_str().unwrap_or(""),
        answer["member"]["role"].as_str().unwrap_or(""),
        answer["signInExpiresAt"].as_str().unwrap_or("-"),
        answer["signInUrl"].as_str().unwrap_or("")
    )
}

/// The member with this email, over HTTP.
fn find_over_http(http: &Http, email: &str) -> anyhow::Result<Value> {
    let wanted = email.trim().to_lowercase();
    http.json("GET", "/api/members", None)?["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["email"].as_str() == Some(wanted.as_str()))
        .cloned()
        .with_context(|| format!("no member has the email {email}"))
}

fn members_text(members: &Value) -> String {
    members
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{}  {}  {}  {}",
                m["id"].as_str().unwrap_or(""),
                m["email"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sessions_text(rows: &Value) -> String {
    let mut out = Vec::new();
    for row in rows.as_array().into_iter().flatten() {
        out.push(format!("{}:", row["email"].as_str().unwrap_or("")));
        for s in row["sessions"].as_array().into_iter().flatten() {
            out.push(format!(
                "  {}  {}  via {}  created {}  expires {}  {}",
                &s["id"].as_str().unwrap_or("")[..16.min(s["id"].as_str().unwrap_or("").len())],
                s["status"].as_str().unwrap_or(""),
                s["via"].as_str().unwrap_or(""),
                s["createdAt"].as_str().unwrap_or("-"),
                s["expiresAt"].as_str().unwrap_or("-"),
                s["userAgent"].as_str().unwrap_or("")
            ));
        }
    }
    out.join("\n")
}

/// `mapline members …`.
pub fn members(command: &MembersCommand, target: &Target) -> anyhow::Result<()> {
    let http = Http::new(target)?;
    match command {
        MembersCommand::Invite {
            email,
            name,
            role,
            link,
        } => {
            let answer = match &http {
                Some(http) => {
                    if link.public_url.is_some() {
                        eprintln!(
                            "note: --public-url is ignored with --server: the server's own makes the link"
                        );
                    }
                    http.json(
                        "POST",
                        "/api/members",
                        Some(&json!({ "email": email, "name": name, "role": role,
                            "validSecs": link.link_valid_secs })),
                    )?
                }
                None => {
                    let store = open_or_create(&target.data)?;
                    let invited = invite_member(
                        &store,
                        email,
                        name,
                        role,
                        link.origin_for_file(),
                        link.valid_ms(),
                        now_ms(),
                    )
                    .context("inviting the member")?;
                    invited.to_json()
                }
            };
            print(target, &answer, || link_text(&answer, "Invited"));
        }
        MembersCommand::Link { email, link } => {
            let answer = match &http {
                Some(http) => {
                    let member = find_over_http(http, email)?;
                    let id = member["id"].as_str().unwrap_or("");
                    http.json(
                        "POST",
                        &format!("/api/members/{id}/sign-in-link"),
                        Some(&json!({ "validSecs": link.link_valid_secs })),
                    )?
                }
                None => {
                    let store = open(&target.data)?;
                    let Some(member) = store.member_by_email(email)? else {
                        bail!("no member has the email {email}");
                    };
                    if member.disabled_at_ms.is_some() {
                        bail!("{email} is disabled");
                    }
                    let now = now_ms();
                    let url = new_sign_in_link(
                        &store,
                        member.id,
                        link.origin_for_file(),
                        link.valid_ms(),
                        now,
                    )
                    .context("making the sign-in link")?;
                    Invited {
                        member,
                        sign_in_url: url,
                        expires_at_ms: now + link.valid_ms(),
                    }
                    .to_json()
                }
            };
            print(target, &answer, || {
                link_text(&answer, "New sign-in link for")
            });
        }
        MembersCommand::Disable { email } => {
            let answer = match &http {
                Some(http) => {
                    let member = find_over_http(http, email)?;
                    let id = member["id"].as_str().unwrap_or("");
                    http.json("POST", &format!("/api/members/{id}/disable"), None)?
                }
                None => {
                    let store = open(&target.data)?;
                    let Some(member) = store.member_by_email(email)? else {
                        bail!("no member has the email {email}");
                    };
                    let (member, revoked) = store.disable_member(member.id, now_ms())?;
                    json!({ "member": member_json(&member), "revoked": revoked.len() })
                }
            };
            print(target, &answer, || {
                format!(
                    "Disabled {email}; ended {} session(s).",
                    answer["revoked"].as_u64().unwrap_or(0)
                )
            });
        }
        MembersCommand::List => {
            let members = match &http {
                Some(http) => http.json("GET", "/api/members", None)?["members"].clone(),
                None => json!(
                    open(&target.data)?
                        .members()?
                        .iter()
                        .map(member_json)
                        .collect::<Vec<_>>()
                ),
            };
            print(target, &members, || members_text(&members));
        }
        MembersCommand::Sessions { email } => {
            let rows = match &http {
                Some(http) => {
                    let members = match email {
                        Some(email) => vec![find_over_http(http, email)?],
                        None => http.json("GET", "/api/members", None)?["members"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default(),
                    };
                    let mut rows = Vec::new();
                    for m in members {
                        let id = m["id"].as_str().unwrap_or("");
                        let sessions =
                            http.json("GET", &format!("/api/members/{id}/sessions"), None)?;
                        rows.push(json!({ "email": m["email"], "sessions": sessions["sessions"] }));
                    }
                    json!(rows)
                }
                None => {
                    let store = open(&target.data)?;
                    let members = match email {
                        Some(email) => vec![
                            store
                                .member_by_email(email)?
                                .with_context(|| format!("no member has the email {email}"))?,
                        ],
                        None => store.members()?,
                    };
                    let now = now_ms();
                    let mut rows = Vec::new();
                    for m in members {
                        let sessions: Vec<_> = store
                            .sessions_of(m.id)?
                            .iter()
                            .map(|(hash, s)| session_json(hash, s, now))
                            .collect();
                        rows.push(json!({ "email": m.email, "sessions": sessions }));
                    }
                    json!(rows)
                }
            };
            print(target, &rows, || sessions_text(&rows));
        }
        MembersCommand::RevokeSessions { email } => {
            let revoked = match &http {
                Some(http) => {
                    let member = find_over_http(http, email)?;
                    let id = member["id"].as_str().unwrap_or("");
                    http.json("DELETE", &format!("/api/members/{id}/sessions"), None)?["revoked"]
                        .as_u64()
                        .unwrap_or(0)
                }
                None => {
                    let store = open(&target.data)?;
                    let Some(member) = store.member_by_email(email)? else {
                        bail!("no member has the email {email}");
                    };
                    store.revoke_sessions_of(member.id, now_ms())?.len() as u64
                }
            };
            let answer = json!({ "revoked": revoked });
            print(target, &answer, || {
                format!("Ended {revoked} session(s) of {email}.")
            });
        }
    }
    Ok(())
}
