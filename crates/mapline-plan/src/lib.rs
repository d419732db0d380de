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
pub mod judgments;
pub mod migrate;
pub mod model;
pub mod raw;
pub mod schema;
pub mod summary;
pub mod templates;
#[cfg(test)]
mod testing;
mod walk;

use std::sync::Arc;

use chrono::NaiveDate;
use yrs::{
    Any, Doc, Map, MapPrelim, Options, ReadTxn, StateVector, TextPrelim, Transact, WriteTxn,
};

pub use demo::{DemoError, demo_plan};
pub use derive::{Change, ChangeKind, Derivation, HistoryTracker, Slip, TrackerIndex, derive};
pub use health::{Activity, Health, HealthSummary, SlipFact, SlipSide, health};
pub use judgments::{Judgment, Judgments, merge_judgments, read_judgments};
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
        let go_live = format_date(plan.go_live);
        let fields = [
            (schema::meta::TITLE, plan.title.as_str()),
            (schema::meta::BUYER_ORG, plan.buyer_org.as_str()),
            (schema::meta::SELLER_ORG, plan.seller_org.as_str()),
            (schema::meta::GO_LIVE, go_live.as_str()),
        ];
        for (field, value) in fields {
            meta.insert(&mut txn, field, field_value(schema::META, field, value));
        }
        meta.insert(
            &mut txn,
            schema::meta::SCHEMA_VERSION,
            Any::from(i64::from(schema::SCHEMA_VERSION)),
        );
        // Every other prose field as an empty text, so nobody's first words compete.
        for root in [schema::META, schema::SUCCESS] {
            let map = txn.get_or_insert_map(root);
            for field in schema::prose_fields(root) {
                if map.get(&txn, field).is_none() {
                    map.insert(&mut txn, field, TextPrelim::new(""));
                }
            }
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

/// A new plan's first updates: its document's and, when it starts with seller judgments (the
/// demo, an imported plan), its internal document's. The server stores both in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstUpdates {
    pub plan: Vec<u8>,
    pub internal: Option<Vec<u8>>,
}

impl From<Vec<u8>> for FirstUpdates {
    /// A plan without seller judgments: its internal document starts empty.
    fn from(plan: Vec<u8>) -> Self {
        FirstUpdates {
            plan,
            internal: None,
        }
    }
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

/// A field's value as a writer of schema v2 stores it: a `Y.Text` for prose
/// ([`schema::is_prose`]), a plain string for everything else. `root` is the root map (for a
/// collection, the root its entries are in). Every writer in this crate goes through this.
pub fn field_value(root: &str, field: &str, value: &str) -> yrs::In {
    if schema::is_prose(root, field) {
        yrs::In::from(TextPrelim::new(value))
    } else {
        text(value)
    }
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

    /// Every field of every root and entry in `doc` whose value is a `Y.Text`, and every other
    /// field, as `(root, field)` pairs.
    type Fields = Vec<(String, String)>;

    fn shapes(doc: &Doc) -> (Fields, Fields) {
        let txn = doc.transact();
        let (mut text, mut plain) = (Vec::new(), Vec::new());
        let mut note = |root: &str, field: &str, value: &Out| {
            let pair = (root.to_owned(), field.to_owned());
            if matches!(value, Out::YText(_)) {
                text.push(pair);
            } else {
                plain.push(pair);
            }
        };
        for root in [schema::META, schema::SUCCESS] {
            if let Some(map) = txn.get_map(root) {
                for (field, value) in map.iter(&txn) {
                    note(root, field, &value);
                }
            }
        }
        for collection in raw::Collection::ALL {
            let root = collection.root();
            let Some(map) = txn.get_map(root) else {
                continue;
            };
            for (_, entry) in map.iter(&txn) {
                if let Out::YMap(entry) = entry {
                    for (field, value) in entry.iter(&txn) {
                        note(root, field, &value);
                    }
                }
            }
        }
        (text, plain)
    }

    /// Writers produce `Y.Text` for exactly the prose fields, and `meta.schemaVersion` 2.
    fn check_writer(name: &str, update: &[u8]) {
        let doc = apply(update);
        let (text, plain) = shapes(&doc);
        assert!(!text.is_empty(), "{name} wrote no prose");
        for (root, field) in &text {
            assert!(
                schema::is_prose(root, field),
                "{name}: {root}.{field} is a Y.Text"
            );
        }
        for (root, field) in &plain {
            assert!(
                !schema::is_prose(root, field),
                "{name}: {root}.{field} is not a Y.Text"
            );
        }
        let version = doc
            .get_or_insert_map(schema::META)
            .get(&doc.transact(), schema::meta::SCHEMA_VERSION);
        assert_eq!(version, Some(Out::Any(Any::from(2i64))), "{name}");
        assert_eq!(project_doc(&doc).meta.schema_version, 2, "{name}");
    }

    #[test]
    fn every_writer_makes_exactly_the_prose_fields_y_text() {
        let plan = NewPlan::parse("Rollout", "Northwind", "Mapline", "2027-04-01")
            .unwrap()
            .with_template("enterprise")
            .unwrap();
        check_writer("new plan", &new_plan_update(&plan, 42));
        let (_, demo) = demo_plan(42).unwrap();
        check_writer("demo", &demo.plan);
        let export = serde_json::json!({ "plan": project_doc(&apply(&demo.plan)) });
        let (_, imported) = export::import(&export, 42).unwrap();
        check_writer("import", &imported.plan);
        // Every prose field the demo fills is a Y.Text there (success, meta, all collections).
        let (text, _) = shapes(&apply(&demo.plan));
        for (root, field) in schema::PROSE {
            assert!(
                text.iter().any(|(r, f)| r == root && f == field),
                "the demo has no {root}.{field}"
            );
        }
    }

    #[test]
    fn the_demo_plans_judgments_are_in_its_internal_update_only() {
        let (_, demo) = demo_plan(42).unwrap();
        let doc = apply(&demo.plan);
        let txn = doc.transact();
        let stakeholders = txn.get_map(schema::STAKEHOLDERS).unwrap();
        for (id, entry) in stakeholders.iter(&txn) {
            let Out::YMap(entry) = entry else {
                panic!("{id}")
            };
            for judgment in schema::SELLER_JUDGMENTS {
                assert!(
                    entry.get(&txn, judgment).is_none(),
                    "{id}.{judgment} is shared"
                );
            }
        }
        let internal = apply(demo.internal.as_deref().expect("the demo has judgments"));
        let judgments = read_judgments(&internal.transact());
        assert_eq!(judgments.len(), 6);
        assert_eq!(
            judgments["st-lena"].power,
            Some(model::Power::Blocker),
            "{judgments:?}"
        );
        assert_eq!(
            judgments["st-omar"].engagement,
            Some(model::Engagement::Dark)
        );
    }

    #[test]
    fn moving_go_live_writes_its_slip_reason_and_keeps_why_the_date_matters() {
        let plan = NewPlan::parse("Rollout", "Northwind", "Mapline", "2027-04-01").unwrap();
        let doc = apply(&new_plan_update(&plan, 42));
        {
            let meta = doc.get_or_insert_map(schema::META);
            let mut txn = doc.transact_mut();
            meta.insert(&mut txn, schema::meta::GO_LIVE_REASON, "Fiscal year");
            edit::move_go_live(&mut txn, parse_date("2027-05-01").unwrap(), "Board moved");
        }
        let meta = project_doc(&doc).meta;
        assert_eq!(meta.go_live_reason.as_deref(), Some("Fiscal year"));
        assert_eq!(meta.go_live_slip_reason.as_deref(), Some("Board moved"));
        assert_eq!(meta.go_live, parse_date("2027-05-01"));
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
