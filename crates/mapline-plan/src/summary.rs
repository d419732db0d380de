//! A plan's summary: what the pipeline shows per plan, kept small enough that listing 10,000
//! plans reads stored summaries instead of projecting every plan.
//!
//! [`summarize`] takes the projected plan and the facts gathered from its history
//! ([`HistoryFacts`], advanced one stored entry at a time by [`HistoryFacts::observe`]) and
//! keeps only what the pipeline needs: the plan's names and go-live, its open steps (due date,
//! status, side, dependencies among them, whether a buyer-side person owns each) and the
//! history facts. [`PlanSummary::view`] evaluates it for any `today` by running the very rules
//! of [`crate::health`] on a plan made of the open steps alone — health only ever looks at open
//! milestones (and closed ones only to see that they are closed), so the verdict, overdue and
//! at-risk counts are those of the whole plan.
//!
//! Pure, like the rest of the crate: times are passed in (ms since the epoch), today is an
//! argument.

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::health::{Activity, SlipFact, SlipSide, Verdict, health};
use crate::model::{Meta, Milestone, MilestoneSide, Owner, Plan, Side, Status};
use crate::{format_date, parse_date};

/// Days without a buyer-side edit after which the pipeline says the buyer has gone quiet.
pub const BUYER_QUIET_DAYS: i64 = 7;
/// The window of "slips in the last N days".
pub const RECENT_SLIP_DAYS: i64 = 14;

/// Who stored an update, as the summary counts activity and slips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivitySide {
    Buyer,
    Seller,
    /// The admin credential or the server itself.
    Other,
}

impl From<ActivitySide> for SlipSide {
    fn from(side: ActivitySide) -> Self {
        match side {
            ActivitySide::Buyer => SlipSide::Buyer,
            ActivitySide::Seller => SlipSide::Seller,
            ActivitySide::Other => SlipSide::Other,
        }
    }
}

/// One stored history entry, as the summary needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// When the update was received (ms since the epoch).
    pub at_ms: i64,
    pub side: ActivitySide,
    /// Days each kept slip of the entry moved its date (`None`: cleared or unreadable). Moves
    /// that lost to a concurrent move never moved the plan's date and are left out.
    pub slips: Vec<Option<i64>>,
}

/// A recorded slip with its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedSlip {
    pub at_ms: i64,
    pub side: ActivitySide,
    pub days: Option<i64>,
}

/// What the summary keeps from a plan's history, advanced entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryFacts {
    /// The first entry's time (the plan's creation, for plans created by the server).
    pub first_ms: Option<i64>,
    /// The last entry's time, whoever stored it.
    pub last_ms: Option<i64>,
    pub last_buyer_ms: Option<i64>,
    pub last_seller_ms: Option<i64>,
    pub slips: Vec<TimedSlip>,
}

impl HistoryFacts {
    /// Takes one more stored entry into account (entries in log order).
    pub fn observe(&mut self, entry: &Observation) {
        let at = entry.at_ms;
        self.first_ms.get_or_insert(at);
        self.last_ms = Some(self.last_ms.map_or(at, |last| last.max(at)));
        let last_of_side = match entry.side {
            ActivitySide::Buyer => Some(&mut self.last_buyer_ms),
            ActivitySide::Seller => Some(&mut self.last_seller_ms),
            ActivitySide::Other => None,
        };
        if let Some(last) = last_of_side {
            *last = Some(last.map_or(at, |l| l.max(at)));
        }
        self.slips.extend(entry.slips.iter().map(|&days| TimedSlip {
            at_ms: at,
            side: entry.side,
            days,
        }));
    }
}

/// An open step as the summary keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenStep {
    pub id: String,
    /// `YYYY-MM-DD`.
    pub due: Option<String>,
    /// The schema's status string; `None` for a value outside it (still open).
    pub status: Option<String>,
    /// `buyer`, `seller` or `joint`.
    pub side: Option<String>,
    /// Ids of the open steps it waits for (closed ones never matter to health).
    pub depends_on: Vec<String>,
    /// Whether a buyer-side person owns it: a buyer stakeholder, or a free-text owner (not a
    /// stakeholder) of a buyer step.
    pub buyer_owner: bool,
}

/// The version of [`PlanSummary`]'s stored shape and meaning, stored with every summary: a
/// stored summary of another version reads as missing and is computed again. Bump it whenever a
/// field changes or what a field is computed from changes (2: a buyer step owned by a seller
/// stakeholder no longer counts as buyer-owned; 1 was never stored, the unversioned record).
pub const SUMMARY_VERSION: u32 = 2;

/// A plan's summary as stored (see the module docs). Dates are `YYYY-MM-DD` strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub title: Option<String>,
    pub buyer_org: Option<String>,
    pub seller_org: Option<String>,
    pub go_live: Option<String>,
    /// The go-live the plan was created with: drift is measured from it.
    pub first_go_live: Option<String>,
    /// Every step, open or not.
    pub steps: usize,
    pub open_steps: Vec<OpenStep>,
    pub facts: HistoryFacts,
}

/// Whether a change to `field` of an entry of `root` (`None`: the whole entry, created or
/// deleted) can change what [`summarize`] keeps from the plan. The writer advances a stored
/// summary without projecting the plan when none of a flush's changes is one of these: most
/// edits (notes, titles of steps, people's roles) leave the summary's plan part as it was.
pub fn summary_reads(root: &str, field: Option<&str>) -> bool {
    use crate::schema::{META, MILESTONES, STAKEHOLDERS, meta, milestone, stakeholder};
    let Some(field) = field else {
        return [META, MILESTONES, STAKEHOLDERS].contains(&root);
    };
    match root {
        META => [
            meta::TITLE,
            meta::BUYER_ORG,
            meta::SELLER_ORG,
            meta::GO_LIVE,
        ]
        .contains(&field),
        MILESTONES => [
            milestone::SIDE,
            milestone::OWNER,
            milestone::DUE,
            milestone::STATUS,
            milestone::DEPENDS_ON,
            milestone::ORDER,
        ]
        .contains(&field),
        STAKEHOLDERS => field == stakeholder::SIDE,
        _ => false,
    }
}

/// The summary of a plan from its projection and its history facts.
pub fn summarize(
    plan: &Plan,
    first_go_live: Option<NaiveDate>,
    facts: HistoryFacts,
) -> PlanSummary {
    let open: Vec<&Milestone> = plan.milestones.iter().filter(|m| m.is_open()).collect();
    let open_ids: std::collections::HashSet<&str> = open.iter().map(|m| m.id.as_str()).collect();
    let buyer_people: std::collections::HashSet<&str> = plan
        .stakeholders
        .iter()
        .filter(|s| s.side == Some(Side::Buyer))
        .map(|s| s.id.as_str())
        .collect();
    let open_steps = open
        .iter()
        .map(|m| OpenStep {
            id: m.id.clone(),
            due: m.due.map(format_date),
            status: m.status.map(|s| s.as_str().to_owned()),
            side: m.side.map(|s| s.as_str().to_owned()),
            depends_on: m
                .depends_on
                .iter()
                .filter(|d| open_ids.contains(d.as_str()))
                .cloned()
                .collect(),
            buyer_owner: m
                .owner
                .as_ref()
                .is_some_and(|owner| match &owner.stakeholder_id {
                    // A stakeholder owns it: buyer-owned only if that person is on the buyer
                    // side (a seller person on a buyer step is exactly what the pipeline flags).
                    Some(id) => buyer_people.contains(id.as_str()),
                    // Free text on a buyer step names someone at the buyer.
                    None => m.side == Some(MilestoneSide::Buyer) && !owner.name.trim().is_empty(),
                }),
        })
        .collect();
    PlanSummary {
        title: plan.meta.title.clone(),
        buyer_org: plan.meta.buyer_org.clone(),
        seller_org: plan.meta.seller_org.clone(),
        go_live: plan.meta.go_live.map(format_date),
        first_go_live: first_go_live.map(format_date),
        steps: plan.milestones.len(),
        open_steps,
        facts,
    }
}

/// The overall state the pipeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    OnTrack,
    AtRisk,
    OffTrack,
    /// Every step is done or cancelled.
    Done,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::OnTrack => "on_track",
            Standing::AtRisk => "at_risk",
            Standing::OffTrack => "off_track",
            Standing::Done => "done",
        }
    }
}

/// Slips counted for the pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlipCounts {
    pub buyer: usize,
    pub seller: usize,
    /// Slips by anyone recorded in the [`RECENT_SLIP_DAYS`] days up to today.
    pub last_14_days: usize,
}

/// A summary evaluated on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryView {
    pub health: Standing,
    pub health_words: String,
    pub overdue: usize,
    /// Open steps not overdue that are blocked, due within a week, or due before an open step
    /// they wait for.
    pub at_risk: usize,
    pub open_steps: usize,
    /// Open buyer or joint steps nobody on the buyer's side owns.
    pub open_steps_without_buyer_owner: usize,
    pub go_live_drift_days: Option<i64>,
    pub slips: SlipCounts,
    pub last_buyer_activity_ms: Option<i64>,
    pub last_seller_activity_ms: Option<i64>,
    /// Days since the buyer's side last changed the plan (since its creation if it never did).
    pub buyer_quiet_days: Option<i64>,
}

fn day_of(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())
}

fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// A health reason as the second half of "At risk: …".
fn lowercase_first(reason: &str) -> String {
    let mut chars = reason.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

impl PlanSummary {
    /// The plan's health and counts on `today`, by the rules of [`crate::health`].
    pub fn view(&self, today: NaiveDate) -> SummaryView {
        let date = |d: &Option<String>| d.as_deref().and_then(parse_date);
        let plan = Plan {
            meta: Meta {
                go_live: date(&self.go_live),
                ..Meta::default()
            },
            milestones: self
                .open_steps
                .iter()
                .map(|s| Milestone {
                    id: s.id.clone(),
                    title: None,
                    workstream: None,
                    side: s.side.as_deref().and_then(MilestoneSide::parse),
                    owner: s.buyer_owner.then(|| Owner {
                        stakeholder_id: None,
                        name: String::new(),
                    }),
                    due: date(&s.due),
                    status: s.status.as_deref().and_then(Status::parse),
                    depends_on: s.depends_on.clone(),
                    notes: None,
                    slip_reason: None,
                    order: None,
                })
                .collect(),
            ..Plan::default()
        };
        let slips: Vec<SlipFact> = self
            .facts
            .slips
            .iter()
            .map(|s| SlipFact {
                side: s.side.into(),
                days: s.days,
            })
            .collect();
        let activity = Activity {
            original_go_live: date(&self.first_go_live),
            last_update: self.facts.last_ms.and_then(day_of),
            slips: &slips,
        };
        let h = health(&plan, today, &activity);

        let overdue: std::collections::HashSet<&str> =
            h.overdue.iter().map(|o| o.milestone.id.as_str()).collect();
        let at_risk: std::collections::HashSet<&str> = h
            .due_soon
            .iter()
            .chain(&h.blocked)
            .chain(h.impossible.iter().map(|i| &i.milestone))
            .map(|m| m.id.as_str())
            .filter(|id| !overdue.contains(id))
            .collect();
        let without_buyer_owner = self
            .open_steps
            .iter()
            .filter(|s| matches!(s.side.as_deref(), Some("buyer" | "joint")) && !s.buyer_owner)
            .count();
        let recent_from = today - chrono::Duration::days(RECENT_SLIP_DAYS - 1);
        let last_14_days = self
            .facts
            .slips
            .iter()
            .filter_map(|s| day_of(s.at_ms))
            .filter(|d| *d >= recent_from && *d <= today)
            .count();
        let buyer_quiet_days = self
            .facts
            .last_buyer_ms
            .or(self.facts.first_ms)
            .and_then(day_of)
            .map(|d| (today - d).num_days().max(0));

        let health = if self.steps > 0 && self.open_steps.is_empty() {
            Standing::Done
        } else {
            match h.verdict {
                Verdict::OffTrack => Standing::OffTrack,
                Verdict::AtRisk => Standing::AtRisk,
                Verdict::OnTrack => Standing::OnTrack,
            }
        };
        let mut details = Vec::new();
        if !overdue.is_empty() {
            details.push(format!(
                "{} overdue",
                plural(overdue.len(), "step", "steps")
            ));
        }
        if health == Standing::OffTrack && details.is_empty() {
            details.extend(h.reasons.first().map(|r| lowercase_first(r)));
        }
        if !h.blocked.is_empty() {
            details.push(format!(
                "{} blocked",
                plural(h.blocked.len(), "step", "steps")
            ));
        }
        if health == Standing::AtRisk && details.is_empty() {
            details.extend(h.reasons.first().map(|r| lowercase_first(r)));
        }
        let quiet = buyer_quiet_days.filter(|d| *d >= BUYER_QUIET_DAYS && health != Standing::Done);
        let head = match health {
            Standing::Done => "Done",
            Standing::OnTrack => "On track",
            Standing::AtRisk => "At risk",
            Standing::OffTrack => "Off track",
        };
        // A buyer who never edited has not gone quiet: they have not started.
        let never_active = self.facts.last_buyer_ms.is_none();
        let quiet_words = |days: i64, capital: bool| match (never_active, capital) {
            (true, true) => format!("No buyer activity yet ({days} days)"),
            (true, false) => format!("no buyer activity yet ({days} days)"),
            (false, true) => format!("Buyer gone quiet for {days} days"),
            (false, false) => format!("buyer gone quiet for {days} days"),
        };
        let health_words = match (details.is_empty(), quiet) {
            (true, None) => head.to_owned(),
            (true, Some(days)) if health == Standing::OnTrack => quiet_words(days, true),
            (true, Some(days)) => format!("{head}: {}", quiet_words(days, false)),
            (false, quiet) => {
                details.truncate(2);
                let mut words = format!("{head}: {}", details.join(", "));
                if let Some(days) = quiet {
                    words.push_str(&format!("; {}", quiet_words(days, false)));
                }
                words
            }
        };

        SummaryView {
            health,
            health_words,
            overdue: overdue.len(),
            at_risk: at_risk.len(),
            open_steps: self.open_steps.len(),
            open_steps_without_buyer_owner: without_buyer_owner,
            go_live_drift_days: h.go_live_drift_days,
            slips: SlipCounts {
                buyer: h.slips_by_side.buyer.count,
                seller: h.slips_by_side.seller.count,
                last_14_days,
            },
            last_buyer_activity_ms: self.facts.last_buyer_ms,
            last_seller_activity_ms: self.facts.last_seller_ms,
            buyer_quiet_days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check, entry, field, milestone, t};

    fn day(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    /// Milliseconds at noon UTC of a day.
    fn at(text: &str) -> i64 {
        day(text)
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn seen(side: ActivitySide, on: &str, slips: &[i64]) -> Observation {
        Observation {
            at_ms: at(on),
            side,
            slips: slips.iter().map(|d| Some(*d)).collect(),
        }
    }

    fn facts(entries: &[Observation]) -> HistoryFacts {
        let mut facts = HistoryFacts::default();
        for entry in entries {
            facts.observe(entry);
        }
        facts
    }

    /// The sample plan: go-live 2027-03-01; a buyer step owned by a buyer stakeholder, a buyer
    /// step owned by nobody, a joint step waiting for it, a done step and a cancelled one.
    fn sample(txn: &mut yrs::TransactionMut) {
        field(txn, "meta", "title", t("Rollout"));
        field(txn, "meta", "buyerOrg", t("Northwind"));
        field(txn, "meta", "sellerOrg", t("Mapline"));
        field(txn, "meta", "goLive", t("2027-03-01"));
        entry(
            txn,
            "stakeholders",
            "st-lena",
            vec![("name", t("Lena")), ("side", t("buyer"))],
        );
        entry(
            txn,
            "stakeholders",
            "st-sam",
            vec![("name", t("Sam")), ("side", t("seller"))],
        );
        milestone(
            txn,
            "security",
            "2027-01-20",
            &[],
            vec![("side", t("buyer")), ("owner", t("st-lena"))],
        );
        milestone(txn, "legal", "2027-02-01", &[], vec![("side", t("buyer"))]);
        milestone(
            txn,
            "kickoff",
            "2027-02-10",
            &["legal", "done"],
            vec![("owner", t("st-sam"))],
        );
        milestone(txn, "done", "2027-01-01", &[], vec![("status", t("done"))]);
        milestone(
            txn,
            "dropped",
            "2027-01-01",
            &[],
            vec![("status", t("cancelled"))],
        );
    }

    /// Sets one field of `meta` (`id: None`) or of an entry of a collection.
    fn set(
        txn: &mut yrs::TransactionMut,
        root: &str,
        id: Option<&str>,
        name: &str,
        value: yrs::In,
    ) {
        use yrs::{Map, WriteTxn};
        let Some(id) = id else {
            return field(txn, root, name, value);
        };
        let map = txn.get_or_insert_map(root);
        let Some(yrs::Out::YMap(entry)) = map.get(txn, id) else {
            panic!("{root}/{id} is not in the sample");
        };
        entry.insert(txn, name, value);
    }

    #[test]
    fn summary_reads_names_every_field_whose_change_changes_a_summary() {
        use crate::testing::ids;
        let edits: Vec<(&str, Option<&str>, &str, yrs::In)> = vec![
            ("meta", None, "title", t("Other")),
            ("meta", None, "buyerOrg", t("Other")),
            ("meta", None, "sellerOrg", t("Other")),
            ("meta", None, "goLive", t("2027-04-01")),
            ("meta", None, "goLiveReason", t("because")),
            ("meta", None, "goLiveSlipReason", t("because")),
            ("meta", None, "costOfInaction", t("a lot")),
            ("meta", None, "objective", t("win")),
            (
                "milestones",
                Some("security"),
                "title",
                t("Security review"),
            ),
            ("milestones", Some("security"), "workstream", t("IT")),
            ("milestones", Some("security"), "side", t("seller")),
            ("milestones", Some("security"), "owner", t("st-sam")),
            ("milestones", Some("security"), "due", t("2027-01-21")),
            ("milestones", Some("security"), "status", t("done")),
            ("milestones", Some("security"), "dependsOn", ids(&["legal"])),
            ("milestones", Some("security"), "notes", t("call Lena")),
            ("milestones", Some("security"), "slipReason", t("holidays")),
            ("milestones", Some("security"), "order", t("zz")),
            (
                "milestones",
                Some("legal"),
                "owner",
                t("Someone at Northwind"),
            ),
            ("stakeholders", Some("st-lena"), "name", t("Lena B")),
            ("stakeholders", Some("st-lena"), "title", t("CTO")),
            ("stakeholders", Some("st-lena"), "side", t("seller")),
            ("stakeholders", Some("st-lena"), "role", t("champion")),
            (
                "stakeholders",
                Some("st-lena"),
                "notes",
                t("likes dashboards"),
            ),
        ];
        let summary_of = |edit: Option<(&str, Option<&str>, &str, yrs::In)>| {
            let plan = crate::project_doc(&crate::testing::doc_with(|txn| {
                sample(txn);
                if let Some((root, id, name, value)) = edit {
                    set(txn, root, id, name, value);
                }
            }));
            summarize(&plan, Some(day("2027-02-15")), HistoryFacts::default())
        };
        let before = summary_of(None);
        let mut changed = Vec::new();
        for (root, id, name, value) in edits {
            if summary_of(Some((root, id, name, value))) != before {
                assert!(
                    summary_reads(root, Some(name)),
                    "a change of {root}.{name} changes the summary, but summary_reads says no"
                );
                changed.push(format!("{root}.{name}"));
            } else {
                assert!(
                    !summary_reads(root, Some(name)) || name == "order" || name == "dependsOn",
                    "{root}.{name} is said to be read but changed nothing here"
                );
            }
        }
        // Not vacuous: the fields the pipeline lives on do change it.
        for expected in [
            "meta.goLive",
            "milestones.due",
            "milestones.status",
            "milestones.owner",
        ] {
            assert!(
                changed.iter().any(|c| c == expected),
                "{expected} in {changed:?}"
            );
        }
        // Whole entries: a new step counts, a new risk does not.
        assert!(summary_reads("milestones", None) && summary_reads("stakeholders", None));
        assert!(!summary_reads("risks", None) && !summary_reads("criteria", Some("title")));
    }

    #[test]
    fn a_summary_keeps_the_open_steps_and_whether_a_buyer_owns_each() {
        check(sample, |plan| {
            let s = summarize(plan, Some(day("2027-02-15")), HistoryFacts::default());
            assert_eq!(s.title.as_deref(), Some("Rollout"));
            assert_eq!(s.go_live.as_deref(), Some("2027-03-01"));
            assert_eq!(s.steps, 5);
            let open: Vec<(&str, bool, &[String])> = s
                .open_steps
                .iter()
                .map(|o| (o.id.as_str(), o.buyer_owner, o.depends_on.as_slice()))
                .collect();
            // The done dependency is dropped: health never looks past a closed step.
            assert_eq!(
                open,
                [
                    ("kickoff", false, &["legal".to_owned()][..]),
                    ("legal", false, &[][..]),
                    ("security", true, &[][..]),
                ]
            );
            let v = s.view(day("2027-01-25"));
            assert_eq!(v.open_steps, 3);
            // legal (buyer) and kickoff (joint, a seller owns it) have no buyer-side owner.
            assert_eq!(v.open_steps_without_buyer_owner, 2);
            assert_eq!(v.go_live_drift_days, Some(14));
        });
    }

    #[test]
    fn a_buyer_step_owned_by_a_seller_stakeholder_is_not_buyer_owned() {
        check(
            |txn| {
                entry(
                    txn,
                    "stakeholders",
                    "st-sam",
                    vec![("name", t("Sam")), ("side", t("seller"))],
                );
                let buyer = || vec![("side", t("buyer"))];
                let owned = |owner: &str| vec![("side", t("buyer")), ("owner", t(owner))];
                milestone(txn, "by-seller", "2027-01-20", &[], owned("st-sam"));
                milestone(
                    txn,
                    "by-name",
                    "2027-01-20",
                    &[],
                    owned("Lena at Northwind"),
                );
                milestone(txn, "nobody", "2027-01-20", &[], buyer());
            },
            |plan| {
                let s = summarize(plan, None, HistoryFacts::default());
                let owned: Vec<(&str, bool)> = s
                    .open_steps
                    .iter()
                    .map(|o| (o.id.as_str(), o.buyer_owner))
                    .collect();
                assert_eq!(
                    owned,
                    [("by-name", true), ("by-seller", false), ("nobody", false)]
                );
                assert_eq!(s.view(day("2027-01-01")).open_steps_without_buyer_owner, 2);
            },
        );
    }

    #[test]
    fn the_view_agrees_with_health_on_the_whole_plan_for_any_day() {
        check(sample, |plan| {
            let s = summarize(plan, Some(day("2027-03-01")), HistoryFacts::default());
            for today in [
                "2027-01-01",
                "2027-01-25",
                "2027-02-05",
                "2027-02-20",
                "2027-04-01",
            ] {
                let full = health(
                    plan,
                    day(today),
                    &Activity {
                        original_go_live: Some(day("2027-03-01")),
                        ..Activity::default()
                    },
                );
                let v = s.view(day(today));
                assert_eq!(v.overdue, full.overdue.len(), "{today}");
                let expected = match full.verdict {
                    Verdict::OffTrack => Standing::OffTrack,
                    Verdict::AtRisk => Standing::AtRisk,
                    Verdict::OnTrack => Standing::OnTrack,
                };
                assert_eq!(v.health, expected, "{today}");
            }
        });
    }

    #[test]
    fn overdue_and_at_risk_move_with_today() {
        check(sample, |plan| {
            let s = summarize(plan, None, HistoryFacts::default());
            assert_eq!(
                s.view(day("2027-02-28")).health_words,
                "Off track: 3 steps overdue"
            );
            let counts = |today| {
                let v = s.view(day(today));
                (v.overdue, v.at_risk, v.health)
            };
            assert_eq!(counts("2027-01-01"), (0, 0, Standing::OnTrack));
            // security due in 5 days: at risk, while the plan as a whole is on track.
            assert_eq!(counts("2027-01-15"), (0, 1, Standing::OnTrack));
            // security late; legal due within a week.
            assert_eq!(counts("2027-01-26"), (1, 1, Standing::AtRisk));
            assert_eq!(
                s.view(day("2027-01-26")).health_words,
                "At risk: 1 step overdue"
            );
            // Everything late; kickoff is the end of the critical path, so off track.
            let late = s.view(day("2027-02-20"));
            assert_eq!((late.overdue, late.health), (3, Standing::OffTrack));
            assert_eq!(late.health_words, "Off track: 3 steps overdue");
        });
    }

    #[test]
    fn history_facts_give_activity_slips_by_side_and_recent_slips() {
        check(sample, |plan| {
            let facts = facts(&[
                seen(ActivitySide::Other, "2026-12-01", &[]),
                seen(ActivitySide::Seller, "2026-12-02", &[7]),
                seen(ActivitySide::Buyer, "2026-12-20", &[14, 3]),
                seen(ActivitySide::Seller, "2027-01-05", &[]),
            ]);
            let s = summarize(plan, Some(day("2027-03-01")), facts);
            let v = s.view(day("2027-01-02"));
            assert_eq!((v.slips.buyer, v.slips.seller), (2, 1));
            // 2026-12-20 is within the 14 days up to 2027-01-02; 2026-12-02 is not.
            assert_eq!(v.slips.last_14_days, 2);
            assert_eq!(v.last_buyer_activity_ms, Some(at("2026-12-20")));
            assert_eq!(v.last_seller_activity_ms, Some(at("2027-01-05")));
            assert_eq!(v.buyer_quiet_days, Some(13));
            assert_eq!(v.health_words, "Buyer gone quiet for 13 days");
            // A later today moves the window past every slip.
            assert_eq!(s.view(day("2027-01-20")).slips.last_14_days, 0);
        });
    }

    #[test]
    fn a_buyer_who_never_edited_is_quiet_since_the_plan_began() {
        check(sample, |plan| {
            let s = summarize(
                plan,
                None,
                facts(&[seen(ActivitySide::Other, "2026-12-01", &[])]),
            );
            assert_eq!(s.view(day("2026-12-11")).buyer_quiet_days, Some(10));
            assert_eq!(s.view(day("2026-12-11")).last_buyer_activity_ms, None);
            assert_eq!(
                s.view(day("2026-12-11")).health_words,
                "No buyer activity yet (10 days)"
            );
        });
    }

    #[test]
    fn a_plan_whose_steps_are_all_closed_is_done() {
        check(
            |txn| {
                field(txn, "meta", "goLive", t("2027-03-01"));
                milestone(txn, "a", "2027-01-01", &[], vec![("status", t("done"))]);
            },
            |plan| {
                let v = summarize(plan, None, HistoryFacts::default()).view(day("2027-05-01"));
                assert_eq!(
                    (v.health, v.health_words.as_str()),
                    (Standing::Done, "Done")
                );
            },
        );
    }

    #[test]
    fn a_summary_round_trips_through_serde() {
        check(sample, |plan| {
            let s = summarize(
                plan,
                Some(day("2027-03-01")),
                facts(&[seen(ActivitySide::Buyer, "2027-01-01", &[2])]),
            );
            let text = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<PlanSummary>(&text).unwrap(), s);
        });
    }
}
