//! The plan outside the app: the one-page Markdown a champion forwards internally, the
//! milestones as CSV, and the import of an exported plan (its JSON) into a new document.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use yrs::{
    Any, Array as _, ArrayPrelim, Doc, Map as _, MapPrelim, ReadTxn as _, Transact as _,
    WriteTxn as _,
};

use crate::model::{Plan, Status};
use crate::{NewPlan, NewPlanError, format_date, schema};

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

/// Markdown cell text: one line, pipes escaped.
fn cell(value: &str) -> String {
    value.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The one-page plan: objective, go-live and why, milestones by workstream with owners and
/// dates, stakeholders, risks, and every moved date.
pub fn markdown(plan: &Plan, moves: &[MovedDate]) -> String {
    let mut out = String::new();
    let meta = &plan.meta;
    let _ = writeln!(out, "# {}\n", text(meta.title.as_deref()));
    let _ = writeln!(
        out,
        "**{}** and **{}** · go-live **{}**\n",
        text(meta.buyer_org.as_deref()),
        text(meta.seller_org.as_deref()),
        meta.go_live
            .map(format_date)
            .unwrap_or_else(|| "not set".into())
    );
    if let Some(objective) = &meta.objective {
        let _ = writeln!(out, "## Objective\n\n{objective}\n");
    }
    if let Some(reason) = &meta.go_live_reason {
        let _ = writeln!(out, "## Why this date\n\n{reason}\n");
    }
    if let Some(cost) = &meta.cost_of_inaction {
        let _ = writeln!(out, "## Cost of doing nothing\n\n{cost}\n");
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
                cell(text(o.text.as_deref())),
                cell(text(o.metric.as_deref())),
                cell(text(o.baseline.as_deref())),
                cell(text(o.target.as_deref()))
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
                    cell(text(m.title.as_deref())),
                    m.side.map(|s| s.as_str()).unwrap_or_default(),
                    cell(
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
            "## Who is involved\n\n| Name | Title | Side | Role | Engagement |\n| --- | --- | --- | --- | --- |"
        );
        for s in &plan.stakeholders {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(text(s.name.as_deref())),
                cell(text(s.title.as_deref())),
                s.side.map(|v| v.as_str()).unwrap_or_default(),
                s.role
                    .map(|v| v.as_str().replace('_', " "))
                    .unwrap_or_default(),
                s.engagement.map(|v| v.as_str()).unwrap_or_default()
            );
        }
        out.push('\n');
    }
    if !plan.risks.is_empty() {
        let _ = writeln!(out, "## Risks\n");
        for r in &plan.risks {
            let _ = writeln!(
                out,
                "- **{}** ({}): {}",
                text(r.text.as_deref()),
                r.status.map(|s| s.as_str()).unwrap_or("open"),
                text(r.mitigation.as_deref())
            );
        }
        out.push('\n');
    }
    if plan.success.definition.is_some() {
        let _ = writeln!(
            out,
            "## What success looks like\n\n{}\n",
            text(plan.success.definition.as_deref())
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
            m.on,
            m.subject.as_deref().unwrap_or("Go-live"),
            m.from,
            m.to.as_deref().unwrap_or("no date"),
            m.who,
            m.reason
                .as_deref()
                .map(|r| format!(": “{r}”"))
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
        .map_or_else(|| name.to_owned(), |(_, w)| (*w).to_owned())
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(value: &str) -> String {
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
        let fields = [
            m.id.clone(),
            m.workstream.clone().unwrap_or_default(),
            m.title.clone().unwrap_or_default(),
            m.side.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            m.owner.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
            m.due.map(format_date).unwrap_or_default(),
            m.status.unwrap_or(Status::NotStarted).as_str().to_owned(),
            m.depends_on.join(" "),
            mine.len().to_string(),
            days.to_string(),
            m.notes.clone().unwrap_or_default(),
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
        &[
            "name",
            "title",
            "side",
            "role",
            "power",
            "engagement",
            "notes",
            "order",
        ],
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
const META_FIELDS: [&str; 7] = [
    "title",
    "buyerOrg",
    "sellerOrg",
    "goLive",
    "goLiveReason",
    "costOfInaction",
    "objective",
];
const SUCCESS_FIELDS: [&str; 2] = ["definition", "metrics"];

/// Builds a new plan's first document update from an exported plan (`plan` of the JSON export,
/// the projected plan's shape). Entries keep their ids, so links between them (owners,
/// dependencies) survive. The meta fields are checked as for a new plan.
pub fn import(export: &Value, client_id: u64) -> Result<(NewPlan, Vec<u8>), ImportError> {
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
    {
        let mut txn = doc.transact_mut();
        let root = txn.get_or_insert_map(schema::META);
        for name in META_FIELDS {
            if let Some(value) = meta.get(name).and_then(Value::as_str) {
                root.insert(&mut txn, name, value);
            }
        }
        if let Some(success) = plan.get("success").and_then(Value::as_object) {
            let root = txn.get_or_insert_map(schema::SUCCESS);
            for name in SUCCESS_FIELDS {
                if let Some(value) = success.get(name).and_then(Value::as_str) {
                    root.insert(&mut txn, name, value);
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
                        map.insert(&mut txn, *name, value);
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
    Ok((new_plan, update))
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
    fn an_import_needs_valid_meta_and_well_formed_collections() {
        let meta =
            json!({ "title": "T", "buyerOrg": "B", "sellerOrg": "S", "goLive": "2027-04-01" });
        let ok = json!({ "plan": { "meta": meta, "milestones": [{ "id": "m1", "title": "Kickoff",
            "owner": { "stakeholderId": "st-a", "name": "Ann" }, "dependsOn": ["m0"] }] } });
        let (plan, update) = import(&ok, 7).unwrap();
        assert_eq!(plan.title, "T");
        let doc = Doc::new();
        let update = yrs::Update::decode_v1(&update).unwrap();
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
