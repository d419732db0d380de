//! The demo plan: a realistic enterprise plan (the shared fixture, embedded at build time) turned
//! into a document update, its milestone dates worked back from go-live.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use serde::Deserialize;
use serde_json::Value;
use yrs::{ArrayPrelim, Doc, Map, Options, ReadTxn, StateVector, Transact, WriteTxn};

use crate::judgments::{Judgment, Judgments, judgments_update};
use crate::{
    FirstUpdates, JS_SAFE_CLIENT_ID, NewPlan, entry_prelim, field_value, format_date, parse_date,
    schema, text,
};

const FIXTURE: &str = include_str!("../fixtures/demo-plan.json");

/// The embedded demo fixture could not be turned into a plan (a build-time mistake, reported
/// rather than panicking so a server never dies on it).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo fixture is not valid JSON of the expected shape: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("demo fixture has a bad go-live date {0:?}")]
    GoLive(String),
    #[error("demo fixture: {0}")]
    Plan(#[from] crate::NewPlanError),
    #[error("demo milestone {id} is dated outside the calendar")]
    Date { id: String },
}

#[derive(Deserialize)]
struct Fixture {
    meta: BTreeMap<String, String>,
    #[serde(default)]
    objectives: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    stakeholders: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    milestones: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    criteria: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    risks: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    success: BTreeMap<String, String>,
}

/// The demo plan as its creation fields and the updates that write all of it (schema v2),
/// authored by documents with the given Yjs client id. Milestone `dueOffsetDays` become `due`
/// dates relative to the fixture's go-live. The stakeholders' `power` and `engagement` (the
/// seller's judgments) go to the internal document's update, never the plan's.
pub fn demo_plan(client_id: u64) -> Result<(NewPlan, FirstUpdates), DemoError> {
    let fixture: Fixture = serde_json::from_str(FIXTURE)?;
    let meta_text = |field: &str| fixture.meta.get(field).map(String::as_str).unwrap_or("");
    let go_live_text = meta_text(schema::meta::GO_LIVE);
    let go_live =
        parse_date(go_live_text).ok_or_else(|| DemoError::GoLive(go_live_text.to_owned()))?;
    let plan = NewPlan::parse(
        meta_text(schema::meta::TITLE),
        meta_text(schema::meta::BUYER_ORG),
        meta_text(schema::meta::SELLER_ORG),
        go_live_text,
    )?;

    let doc = Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(client_id & JS_SAFE_CLIENT_ID),
        ..Options::default()
    });
    let meta = doc.get_or_insert_map(schema::META);
    let success = doc.get_or_insert_map(schema::SUCCESS);
    let collections = [
        (schema::OBJECTIVES, &fixture.objectives),
        (schema::STAKEHOLDERS, &fixture.stakeholders),
        (schema::MILESTONES, &fixture.milestones),
        (schema::CRITERIA, &fixture.criteria),
        (schema::RISKS, &fixture.risks),
    ];
    let mut judgments = Judgments::new();
    {
        let mut txn = doc.transact_mut();
        for (field, value) in &fixture.meta {
            meta.insert(
                &mut txn,
                field.as_str(),
                field_value(schema::META, field, value),
            );
        }
        meta.insert(
            &mut txn,
            schema::meta::SCHEMA_VERSION,
            yrs::Any::from(i64::from(schema::SCHEMA_VERSION)),
        );
        for (field, value) in &fixture.success {
            success.insert(
                &mut txn,
                field.as_str(),
                field_value(schema::SUCCESS, field, value),
            );
        }
        for (root, entries) in collections {
            let map = txn.get_or_insert_map(root);
            for (id, fields) in entries {
                if root == schema::STAKEHOLDERS {
                    let fields: serde_json::Map<String, Value> =
                        fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    judgments.insert(id.clone(), Judgment::from_fields(&fields, "privateNotes"));
                }
                let mut prelim = Vec::with_capacity(fields.len());
                for (field, value) in fields {
                    if root == schema::STAKEHOLDERS
                        && schema::SELLER_JUDGMENTS.contains(&field.as_str())
                    {
                        continue;
                    }
                    let (name, value) = match (field.as_str(), value) {
                        ("dueOffsetDays", Value::Number(offset)) => {
                            let due = offset
                                .as_i64()
                                .and_then(|days| shift(go_live, days))
                                .ok_or_else(|| DemoError::Date { id: id.clone() })?;
                            (schema::milestone::DUE, text(&format_date(due)))
                        }
                        (name, Value::Array(items)) => (
                            name,
                            yrs::In::Array(ArrayPrelim::from_iter(
                                items.iter().filter_map(Value::as_str).map(text),
                            )),
                        ),
                        (name, Value::String(s)) => (name, field_value(root, name, s)),
                        (name, other) => (name, text(&other.to_string())),
                    };
                    prelim.push((name, value));
                }
                map.insert(&mut txn, id.as_str(), entry_prelim(prelim));
            }
        }
    }
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let internal = judgments_update(&judgments, client_id);
    Ok((
        plan,
        FirstUpdates {
            plan: update,
            internal,
        },
    ))
}

fn shift(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    let magnitude = Days::new(days.unsigned_abs());
    if days >= 0 {
        date.checked_add_days(magnitude)
    } else {
        date.checked_sub_days(magnitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{apply, meta_field};
    use yrs::{Any, Array as _, Out};

    fn milestone_field(doc: &Doc, id: &str, field: &str) -> Option<Out> {
        let txn = doc.transact();
        let milestones = txn.get_map(schema::MILESTONES)?;
        match milestones.get(&txn, id)? {
            Out::YMap(entry) => entry.get(&txn, field),
            _ => None,
        }
    }

    #[test]
    fn demo_plan_dates_are_worked_back_from_go_live() {
        let (plan, update) = demo_plan(7).unwrap();
        let doc = apply(&update.plan);
        assert_eq!(format_date(plan.go_live), "2027-04-01");
        assert_eq!(meta_field(&doc, "goLive").as_deref(), Some("2027-04-01"));
        // ms-pov-scope is 98 days before go-live; ms-live is on it.
        let due = |id| match milestone_field(&doc, id, "due") {
            Some(Out::Any(Any::String(s))) => s.to_string(),
            other => panic!("{id} has due {other:?}"),
        };
        assert_eq!(due("ms-pov-scope"), "2026-12-24");
        assert_eq!(due("ms-live"), "2027-04-01");
        assert!(milestone_field(&doc, "ms-live", "dueOffsetDays").is_none());
    }

    #[test]
    fn demo_plan_dependencies_are_nested_arrays_of_ids() {
        let (_, update) = demo_plan(7).unwrap();
        let doc = apply(&update.plan);
        let Some(Out::YArray(deps)) = milestone_field(&doc, "ms-sign", "dependsOn") else {
            panic!("dependsOn is not a Y.Array");
        };
        let txn = doc.transact();
        let ids: Vec<String> = deps.iter(&txn).map(|v| v.to_string(&txn)).collect();
        assert_eq!(ids, ["ms-approval", "ms-msa", "ms-procure"]);
    }

    #[test]
    fn demo_plan_fills_every_collection() {
        let (_, update) = demo_plan(7).unwrap();
        let doc = apply(&update.plan);
        let txn = doc.transact();
        for root in [
            schema::OBJECTIVES,
            schema::STAKEHOLDERS,
            schema::MILESTONES,
            schema::CRITERIA,
            schema::RISKS,
        ] {
            let len = txn.get_map(root).map(|m| m.len(&txn)).unwrap_or(0);
            assert!(len > 0, "{root} is empty");
        }
        assert!(txn.get_map(schema::SUCCESS).unwrap().len(&txn) >= 1);
    }
}
