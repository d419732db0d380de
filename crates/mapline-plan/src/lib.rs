//! `mapline-plan` owns the plan document and what it means: the schema of DESIGN.md §3, the
//! typed projection ([`project`]), the change audit and slips one update makes ([`derive`]),
//! plan health, templates worked back from go-live, the edits a well-behaved client makes, and
//! the demo plan. It is pure: no IO, no async, no clock and no randomness — callers pass in
//! today's date or a Yjs client id when one is needed — so every rule here is tested without
//! sockets or disks.

pub mod admission;
pub mod calendar;
mod conflicts;
mod demo;
pub mod derive;
pub mod edit;
pub mod export;
pub mod health;
pub mod migrate;
pub mod model;
pub mod raw;
pub mod schema;
pub mod templates;
#[cfg(test)]
mod testing;
mod walk;

use std::sync::Arc;

use chrono::NaiveDate;
use yrs::{Any, Doc, Map, MapPrelim, Options, ReadTxn, StateVector, Transact};

pub use demo::{DemoError, demo_plan};
pub use derive::{Change, ChangeKind, Derivation, HistoryTracker, Slip, derive};
pub use health::{Activity, Health, HealthSummary, SlipFact, SlipSide, health};
pub use model::{Plan, PlanIssue, project};
pub use raw::RawPlan;
pub use templates::{TEMPLATES, Template, template};

/// Projects a whole document (reads it, then [`project`]s it).
pub fn project_doc(doc: &Doc) -> Plan {
    project(&RawPlan::read(&doc.transact()))
}

/// Yjs client ids are 53-bit so JavaScript numbers hold them exactly; callers' random ids are
/// masked to that.
pub const JS_SAFE_CLIENT_ID: u64 = (1 << 53) - 1;

/// Longest accepted title or organisation name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// What a person gives to start a plan: enough for the buyer and seller to recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlan {
    pub title: String,
    pub buyer_org: String,
    pub seller_org: String,
    /// The buyer's go-live date that the plan is worked back from.
    pub go_live: NaiveDate,
    /// Milestones to start with, dated backward from go-live.
    pub template: Option<&'static Template>,
}

/// Why a requested plan cannot be created; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewPlanError {
    #[error("`{field}` must not be empty")]
    Empty { field: &'static str },
    #[error("`{field}` is longer than {MAX_NAME_CHARS} characters")]
    TooLong { field: &'static str },
    #[error("`goLive` must be a date as YYYY-MM-DD, got {got:?}")]
    BadDate { got: String },
    #[error("no template is called {got:?}; see GET /api/templates")]
    UnknownTemplate { got: String },
    #[error("go-live {go_live} is too early for the template's first milestone")]
    TemplateOutOfRange { go_live: NaiveDate },
}

impl NewPlan {
    /// Validates raw fields (as they arrive in a request) into a plan to create.
    pub fn parse(
        title: &str,
        buyer_org: &str,
        seller_org: &str,
        go_live: &str,
    ) -> Result<Self, NewPlanError> {
        Ok(Self {
            title: name_field("title", title)?,
            buyer_org: name_field("buyerOrg", buyer_org)?,
            seller_org: name_field("sellerOrg", seller_org)?,
            go_live: parse_date(go_live).ok_or_else(|| NewPlanError::BadDate {
                got: go_live.to_owned(),
            })?,
            template: None,
        })
    }

    /// Starts the plan from a built-in template, by id.
    pub fn with_template(mut self, id: &str) -> Result<Self, NewPlanError> {
        let found =
            template(id).ok_or_else(|| NewPlanError::UnknownTemplate { got: id.to_owned() })?;
        if found
            .milestones
            .iter()
            .any(|m| Template::due(m, self.go_live).is_none())
        {
            return Err(NewPlanError::TemplateOutOfRange {
                go_live: self.go_live,
            });
        }
        self.template = Some(found);
        Ok(self)
    }
}

fn name_field(field: &'static str, value: &str) -> Result<String, NewPlanError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(NewPlanError::Empty { field });
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(NewPlanError::TooLong { field });
    }
    Ok(value.to_owned())
}

/// Parses a schema date (`YYYY-MM-DD`, exactly: "2027-4-1" is not one); anything else,
/// including a day the calendar does not have, is `None`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)
}

/// Formats a date the way the schema stores it.
pub fn format_date(date: NaiveDate) -> String {
    date.format(schema::DATE_FORMAT).to_string()
}

/// The first update of a new plan's document: the `meta` fields set and the template's
/// milestones (if any) dated backward from go-live, written by a document with the given Yjs
/// client id (the caller picks it at random; this crate has no RNG). Collections need no
/// initial write: a Yjs root map exists by name on every client.
pub fn new_plan_update(plan: &NewPlan, client_id: u64) -> Vec<u8> {
    let doc = Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(client_id & JS_SAFE_CLIENT_ID),
        ..Options::default()
    });
    let meta = doc.get_or_insert_map(schema::META);
    {
        let mut txn = doc.transact_mut();
        let fields = [
            (schema::meta::TITLE, plan.title.clone()),
            (schema::meta::BUYER_ORG, plan.buyer_org.clone()),
            (schema::meta::SELLER_ORG, plan.seller_org.clone()),
            (schema::meta::GO_LIVE, format_date(plan.go_live)),
        ];
        for (field, value) in fields {
            meta.insert(&mut txn, field, value);
        }
        for (index, step) in plan
            .template
            .into_iter()
            .flat_map(|t| t.milestones)
            .enumerate()
        {
            let draft = edit::MilestoneDraft {
                title: step.title,
                workstream: step.workstream,
                side: step.side,
                owner: None,
                due: Template::due(step, plan.go_live),
                depends_on: step
                    .depends_on
                    .iter()
                    .map(|k| Template::milestone_id(k))
                    .collect(),
                order: Some(format!("a{index:03}")),
            };
            edit::add_milestone(&mut txn, &Template::milestone_id(step.key), &draft);
        }
    }
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

/// A nested entry map from string fields, the shape of every collection entry.
fn entry_prelim<'a>(fields: impl IntoIterator<Item = (&'a str, yrs::In)>) -> MapPrelim {
    fields
        .into_iter()
        .map(|(key, value)| (Arc::<str>::from(key), value))
        .collect()
}

fn text(value: &str) -> yrs::In {
    yrs::In::Any(Any::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString as _, Out, Update, updates::decoder::Decode};

    pub(crate) fn apply(update: &[u8]) -> Doc {
        let doc = Doc::new();
        let update = Update::decode_v1(update).expect("our own update decodes");
        doc.transact_mut()
            .apply_update(update)
            .expect("our own update applies");
        doc
    }

    pub(crate) fn meta_field(doc: &Doc, field: &str) -> Option<String> {
        let meta = doc.get_or_insert_map(schema::META);
        match meta.get(&doc.transact(), field)? {
            Out::Any(Any::String(s)) => Some(s.to_string()),
            Out::YText(t) => Some(t.get_string(&doc.transact())),
            _ => None,
        }
    }

    fn check_parse(input: [&str; 4], expected: Result<(), NewPlanError>) {
        let got = NewPlan::parse(input[0], input[1], input[2], input[3]).map(|_| ());
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn new_plan_fields_are_validated_one_by_one() {
        check_parse(["Rollout", "Buyer", "Seller", "2027-04-01"], Ok(()));
        check_parse(
            ["  ", "Buyer", "Seller", "2027-04-01"],
            Err(NewPlanError::Empty { field: "title" }),
        );
        check_parse(
            ["Rollout", "", "Seller", "2027-04-01"],
            Err(NewPlanError::Empty { field: "buyerOrg" }),
        );
        check_parse(
            ["Rollout", "Buyer", &"x".repeat(201), "2027-04-01"],
            Err(NewPlanError::TooLong { field: "sellerOrg" }),
        );
        for bad in [
            "2027-4-1",
            "2027-02-30",
            "01/04/2027",
            "",
            "2027-04-01T00:00",
        ] {
            check_parse(
                ["Rollout", "Buyer", "Seller", bad],
                Err(NewPlanError::BadDate { got: bad.into() }),
            );
        }
    }

    #[test]
    fn dates_are_exactly_yyyy_mm_dd_and_on_the_calendar() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(parse_date("2028-02-29"), date(2028, 2, 29));
        assert_eq!(parse_date("0000-01-01"), date(0, 1, 1));
        for bad in [
            "2027-02-29",
            "2027-1a-01",
            "2027/01/01",
            "+027-01-01",
            "2027-01-1 ",
            "2027-00-10",
            "2027-01-32",
            "",
            "2027-01-010",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
        assert_eq!(format_date(date(2027, 4, 1).unwrap()), "2027-04-01");
    }

    #[test]
    fn new_plan_update_sets_every_meta_field() {
        let plan = NewPlan::parse("Rollout", "Northwind", "Mapline", "2027-04-01").unwrap();
        let doc = apply(&new_plan_update(&plan, 42));
        assert_eq!(meta_field(&doc, "title").as_deref(), Some("Rollout"));
        assert_eq!(meta_field(&doc, "buyerOrg").as_deref(), Some("Northwind"));
        assert_eq!(meta_field(&doc, "sellerOrg").as_deref(), Some("Mapline"));
        assert_eq!(meta_field(&doc, "goLive").as_deref(), Some("2027-04-01"));
    }
}
