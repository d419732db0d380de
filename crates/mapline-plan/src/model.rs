//! The typed plan: what the API serves and the health rules read. Built from a [`RawPlan`] by
//! [`project`], which is total — every value it cannot use becomes a [`PlanIssue`] on the plan,
//! and the rest of the plan is still there.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use crate::raw::{Collection, Fields, RawEntry, RawPlan};
use crate::{parse_date, schema};

/// Declares a schema enumeration: its exact strings (DESIGN.md §3) and parsing from them.
macro_rules! enumeration {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every allowed value, as stored.
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The value as stored in the document.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored string; anything else is `None`.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

enumeration!(
    /// The side of the deal a stakeholder is on.
    Side { Buyer = "buyer", Seller = "seller" }
);
enumeration!(
    /// Who owns a milestone: one side, or both together.
    MilestoneSide { Buyer = "buyer", Seller = "seller", Joint = "joint" }
);
enumeration!(
    /// Where a milestone stands.
    Status {
        NotStarted = "not_started",
        InProgress = "in_progress",
        Done = "done",
        Blocked = "blocked",
        Cancelled = "cancelled",
    }
);
enumeration!(
    /// A stakeholder's part in the decision.
    Role {
        EconomicBuyer = "economic_buyer",
        Champion = "champion",
        TechnicalEvaluator = "technical_evaluator",
        EndUser = "end_user",
        Procurement = "procurement",
        Legal = "legal",
        Security = "security",
        Finance = "finance",
        ExecutiveSponsor = "executive_sponsor",
        Other = "other",
    }
);
enumeration!(
    /// How much a stakeholder can sway the decision.
    Power { Decider = "decider", Influencer = "influencer", Blocker = "blocker", User = "user" }
);
enumeration!(
    /// How engaged a stakeholder is.
    Engagement { Engaged = "engaged", Neutral = "neutral", Dark = "dark", Unknown = "unknown" }
);
enumeration!(
    /// How much a decision criterion matters to the buyer.
    Priority { Must = "must", Should = "should", Nice = "nice" }
);
enumeration!(
    /// What kind of risk.
    RiskKind {
        Budget = "budget",
        Competitive = "competitive",
        Organizational = "organizational",
        Technical = "technical",
        Other = "other",
    }
);
enumeration!(
    /// Likelihood or impact of a risk.
    Level { Low = "low", Medium = "medium", High = "high" }
);
enumeration!(
    /// Where a risk stands.
    RiskStatus { Open = "open", Mitigated = "mitigated", Closed = "closed" }
);

impl Status {
    /// Whether the milestone still needs doing (not done, not cancelled).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Done | Status::Cancelled)
    }
}

/// The plan's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub title: Option<String>,
    pub buyer_org: Option<String>,
    pub seller_org: Option<String>,
    pub go_live: Option<NaiveDate>,
    /// Why this date matters to the buyer (never touched by a move).
    pub go_live_reason: Option<String>,
    /// Why go-live last moved (schema v2; written with `goLive` in one transaction).
    pub go_live_slip_reason: Option<String>,
    pub cost_of_inaction: Option<String>,
    pub objective: Option<String>,
    /// The document's schema version: `meta.schemaVersion`, 1 when absent (a v1 document).
    pub schema_version: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    pub id: String,
    pub text: Option<String>,
    pub metric: Option<String>,
    pub baseline: Option<String>,
    pub target: Option<String>,
    pub order: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stakeholder {
    pub id: String,
    pub name: Option<String>,
    pub title: Option<String>,
    pub side: Option<Side>,
    pub role: Option<Role>,
    /// The notes both sides read. The seller's judgments of the person (`power`, `engagement`,
    /// private notes) are not here: they live in the internal document ([`crate::judgments`]),
    /// and a v1 document's shared values are never read.
    pub notes: Option<String>,
    pub order: Option<String>,
}

/// Who owns a milestone: a stakeholder of the plan, or a name typed in freely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// The stakeholder's id when the owner is one (or names one that no longer exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stakeholder_id: Option<String>,
    /// The person's name as shown: the stakeholder's name, or the free text.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Milestone {
    pub id: String,
    pub title: Option<String>,
    pub workstream: Option<String>,
    pub side: Option<MilestoneSide>,
    pub owner: Option<Owner>,
    pub due: Option<NaiveDate>,
    /// `not_started` when unset; `None` only for a value outside the enumeration.
    pub status: Option<Status>,
    /// Ids of milestones this one waits for, dangling ones removed (and reported as issues).
    pub depends_on: Vec<String>,
    pub notes: Option<String>,
    pub slip_reason: Option<String>,
    pub order: Option<String>,
}

impl Milestone {
    /// Whether the milestone still needs doing; an unreadable status counts as open.
    pub fn is_open(&self) -> bool {
        self.status.is_none_or(Status::is_open)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Criterion {
    pub id: String,
    pub text: Option<String>,
    pub quote: Option<String>,
    pub source: Option<String>,
    pub priority: Option<Priority>,
    pub order: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Risk {
    pub id: String,
    pub text: Option<String>,
    pub kind: Option<RiskKind>,
    pub likelihood: Option<Level>,
    pub impact: Option<Level>,
    pub mitigation: Option<String>,
    pub owner: Option<String>,
    pub status: Option<RiskStatus>,
    pub order: Option<String>,
}

/// The outcome both teams aim for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Success {
    pub definition: Option<String>,
    pub metrics: Option<String>,
}

/// Something in the document the projection could not use as the schema says. The value is
/// left out of the typed field (or, for references, the reference is dropped); the rest of the
/// plan is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanIssue {
    /// A field holds the wrong kind of value (e.g. a number where text belongs).
    WrongType {
        path: String,
        expected: &'static str,
        found: String,
    },
    /// An enumeration field holds a value outside its list.
    UnknownValue {
        path: String,
        value: String,
        allowed: &'static [&'static str],
    },
    /// A date field does not hold a `YYYY-MM-DD` date.
    BadDate { path: String, value: String },
    /// A collection entry is not a map.
    NotAnEntry { path: String },
    /// A root collection was written as a sequence (e.g. `getArray`) instead of a map.
    RootNotMap { root: &'static str },
    /// `dependsOn` names a milestone that does not exist.
    DanglingDependency {
        milestone: String,
        depends_on: String,
    },
    /// `owner` looks like a stakeholder id, but no stakeholder has it.
    DanglingOwner { milestone: String, owner: String },
    /// Milestones that wait for each other in a circle (a milestone depending on itself
    /// included); listed in id order.
    DependencyCycle { milestones: Vec<String> },
}

/// The projected plan, every collection in display order (`order`, then id).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub meta: Meta,
    pub objectives: Vec<Objective>,
    pub stakeholders: Vec<Stakeholder>,
    pub milestones: Vec<Milestone>,
    pub criteria: Vec<Criterion>,
    pub risks: Vec<Risk>,
    pub success: Success,
    /// What could not be used as the schema says, in a stable order.
    pub issues: Vec<PlanIssue>,
}

impl Plan {
    /// A milestone by id.
    pub fn milestone(&self, id: &str) -> Option<&Milestone> {
        self.milestones.iter().find(|m| m.id == id)
    }
}

/// Reads typed fields out of one map, recording what does not fit.
struct Reader<'a> {
    fields: &'a Fields,
    /// The root, and the entry's id within a collection: the path of an issue, built only
    /// when there is one.
    root: &'static str,
    id: Option<&'a str>,
    issues: &'a mut Vec<PlanIssue>,
}

impl Reader<'_> {
    fn path(&self, field: &str) -> String {
        match self.id {
            Some(id) => format!("{}.{id}.{field}", self.root),
            None => format!("{}.{field}", self.root),
        }
    }

    /// A text field; an empty string is the same as unset.
    fn text(&mut self, field: &str) -> Option<String> {
        match self.fields.get(field)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => {
                let path = self.path(field);
                self.issues.push(PlanIssue::WrongType {
                    path,
                    expected: "text",
                    found: describe(other),
                });
                None
            }
        }
    }

    /// The schema version: a whole number from 1 up; absent is version 1, anything else is
    /// reported and read as 1.
    fn version(&mut self, field: &str) -> u32 {
        match self.fields.get(field) {
            None | Some(Value::Null) => 1,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v >= 1) => {
                n.as_u64().and_then(|v| u32::try_from(v).ok()).unwrap_or(1)
            }
            Some(other) => {
                let path = self.path(field);
                self.issues.push(PlanIssue::WrongType {
                    path,
                    expected: "a schema version (a whole number)",
                    found: describe(other),
                });
                1
            }
        }
    }

    fn date(&mut self, field: &str) -> Option<NaiveDate> {
        let text = self.text(field)?;
        let date = parse_date(&text);
        if date.is_none() {
            let path = self.path(field);
            self.issues.push(PlanIssue::BadDate { path, value: text });
        }
        date
    }

    fn choice<E>(
        &mut self,
        field: &str,
        parse: fn(&str) -> Option<E>,
        allowed: &'static [&'static str],
    ) -> Option<E> {
        let text = self.text(field)?;
        let value = parse(&text);
        if value.is_none() {
            let path = self.path(field);
            self.issues.push(PlanIssue::UnknownValue {
                path,
                value: text,
                allowed,
            });
        }
        value
    }

    /// A list of ids; non-text items are reported and skipped.
    fn ids(&mut self, field: &str) -> Vec<String> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut ids = Vec::with_capacity(items.len());
                // First occurrence wins; a set, not `ids.contains`, so a milestone waiting for
                // thousands of others stays linear.
                let mut seen: HashSet<&str> = HashSet::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(id) => {
                            if seen.insert(id.as_str()) {
                                ids.push(id.clone());
                            }
                        }
                        other => {
                            let path = self.path(field);
                            self.issues.push(PlanIssue::WrongType {
                                path,
                                expected: "milestone id",
                                found: describe(other),
                            });
                        }
                    }
                }
                ids
            }
            Some(other) => {
                let path = self.path(field);
                self.issues.push(PlanIssue::WrongType {
                    path,
                    expected: "list of milestone ids",
                    found: describe(other),
                });
                Vec::new()
            }
        }
    }
}

/// A short description of an unexpected value for an issue: its JSON, cut to a readable length.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 80;
    let text = value.to_string();
    if text.chars().count() <= MAX_CHARS {
        text
    } else {
        let cut: String = text.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    }
}

/// Turns the raw document into the typed plan. Total: never panics, never drops an entry.
pub fn project(raw: &RawPlan) -> Plan {
    let mut issues: Vec<PlanIssue> = raw
        .roots_not_maps
        .iter()
        .map(|&root| PlanIssue::RootNotMap { root })
        .collect();
    let meta = {
        let mut r = Reader {
            fields: &raw.meta,
            root: schema::META,
            id: None,
            issues: &mut issues,
        };
        use schema::meta as f;
        Meta {
            title: r.text(f::TITLE),
            buyer_org: r.text(f::BUYER_ORG),
            seller_org: r.text(f::SELLER_ORG),
            go_live: r.date(f::GO_LIVE),
            go_live_reason: r.text(f::GO_LIVE_REASON),
            go_live_slip_reason: r.text(f::GO_LIVE_SLIP_REASON),
            cost_of_inaction: r.text(f::COST_OF_INACTION),
            objective: r.text(f::OBJECTIVE),
            schema_version: r.version(f::SCHEMA_VERSION),
        }
    };
    let success = {
        let mut r = Reader {
            fields: &raw.success,
            root: schema::SUCCESS,
            id: None,
            issues: &mut issues,
        };
        Success {
            definition: r.text("definition"),
            metrics: r.text("metrics"),
        }
    };
    let objectives = entries(raw, Collection::Objectives, &mut issues, |id, r| {
        Objective {
            id,
            text: r.text("text"),
            metric: r.text("metric"),
            baseline: r.text("baseline"),
            target: r.text("target"),
            order: r.text("order"),
        }
    });
    let stakeholders = entries(raw, Collection::Stakeholders, &mut issues, |id, r| {
        Stakeholder {
            id,
            name: r.text("name"),
            title: r.text("title"),
            side: r.choice("side", Side::parse, Side::VALUES),
            role: r.choice("role", Role::parse, Role::VALUES),
            notes: r.text("notes"),
            order: r.text("order"),
        }
    });
    let mut milestones = entries(raw, Collection::Milestones, &mut issues, |id, r| {
        use schema::milestone as f;
        Milestone {
            id,
            title: r.text(f::TITLE),
            workstream: r.text(f::WORKSTREAM),
            side: r.choice(f::SIDE, MilestoneSide::parse, MilestoneSide::VALUES),
            // Resolved against the stakeholders below.
            owner: r.text(f::OWNER).map(|name| Owner {
                stakeholder_id: None,
                name,
            }),
            due: r.date(f::DUE),
            status: match r.fields.get(f::STATUS) {
                None | Some(Value::Null) => Some(Status::NotStarted),
                Some(Value::String(s)) if s.is_empty() => Some(Status::NotStarted),
                Some(_) => r.choice(f::STATUS, Status::parse, Status::VALUES),
            },
            depends_on: r.ids(f::DEPENDS_ON),
            notes: r.text(f::NOTES),
            slip_reason: r.text(f::SLIP_REASON),
            order: r.text(f::ORDER),
        }
    });
    let criteria = entries(raw, Collection::Criteria, &mut issues, |id, r| Criterion {
        id,
        text: r.text("text"),
        quote: r.text("quote"),
        source: r.text("source"),
        priority: r.choice("priority", Priority::parse, Priority::VALUES),
        order: r.text("order"),
    });
    let risks = entries(raw, Collection::Risks, &mut issues, |id, r| Risk {
        id,
        text: r.text("text"),
        kind: r.choice("kind", RiskKind::parse, RiskKind::VALUES),
        likelihood: r.choice("likelihood", Level::parse, Level::VALUES),
        impact: r.choice("impact", Level::parse, Level::VALUES),
        mitigation: r.text("mitigation"),
        owner: r.text("owner"),
        status: r.choice("status", RiskStatus::parse, RiskStatus::VALUES),
        order: r.text("order"),
    });

    resolve_owners(&mut milestones, &stakeholders, &mut issues);
    resolve_dependencies(&mut milestones, &mut issues);
    issues.sort();
    issues.dedup();
    Plan {
        meta,
        objectives,
        stakeholders,
        milestones,
        criteria,
        risks,
        success,
        issues,
    }
}

/// Projects every entry of a collection with `build`, in display order.
fn entries<T>(
    raw: &RawPlan,
    collection: Collection,
    issues: &mut Vec<PlanIssue>,
    mut build: impl FnMut(String, &mut Reader<'_>) -> T,
) -> Vec<T> {
    let mut built: Vec<(Option<&str>, &str, T)> = Vec::new();
    for (id, entry) in raw.entries(collection) {
        match entry {
            RawEntry::Entry(fields) => {
                let order = match fields.get("order") {
                    Some(Value::String(s)) => Some(s.as_str()),
                    _ => None,
                };
                let mut reader = Reader {
                    fields,
                    root: collection.root(),
                    id: Some(id),
                    issues,
                };
                built.push((order, id, build(id.clone(), &mut reader)));
            }
            RawEntry::NotAMap(_) => issues.push(PlanIssue::NotAnEntry {
                path: format!("{}.{id}", collection.root()),
            }),
        }
    }
    // Entries with an order come first, by order (fractional indexes compare as strings), then
    // by id so concurrent inserts at the same position still show in one stable order.
    built.sort_by(|a, b| (a.0.is_none(), a.0, a.1).cmp(&(b.0.is_none(), b.0, b.1)));
    built.into_iter().map(|(_, _, item)| item).collect()
}

/// Whether a free-text owner is meant as a reference: a UUID, or a lower-case slug with a dash
/// like the ids clients and templates write (`st-raj`). A person's name never looks like this.
fn looks_like_id(text: &str) -> bool {
    let slug = text.contains('-')
        && !text.starts_with('-')
        && !text.ends_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    slug || uuid_like(text)
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn resolve_owners(
    milestones: &mut [Milestone],
    stakeholders: &[Stakeholder],
    issues: &mut Vec<PlanIssue>,
) {
    let by_id: HashMap<&str, &Stakeholder> =
        stakeholders.iter().map(|s| (s.id.as_str(), s)).collect();
    for milestone in milestones {
        let Some(owner) = &mut milestone.owner else {
            continue;
        };
        if let Some(person) = by_id.get(owner.name.as_str()) {
            owner.stakeholder_id = Some(person.id.clone());
            owner.name = person.name.clone().unwrap_or_else(|| person.id.clone());
        } else if looks_like_id(&owner.name) {
            issues.push(PlanIssue::DanglingOwner {
                milestone: milestone.id.clone(),
                owner: owner.name.clone(),
            });
            owner.stakeholder_id = Some(owner.name.clone());
        }
    }
}

/// Drops dangling dependencies (reported) and reports every cycle.
fn resolve_dependencies(milestones: &mut [Milestone], issues: &mut Vec<PlanIssue>) {
    let index: HashMap<String, usize> = milestones
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.clone(), i))
        .collect();
    let mut graph: Vec<Vec<usize>> = Vec::with_capacity(milestones.len());
    for milestone in milestones.iter_mut() {
        let id = &milestone.id;
        let mut edges = Vec::with_capacity(milestone.depends_on.len());
        milestone.depends_on.retain(|dep| match index.get(dep) {
            Some(&target) => {
                edges.push(target);
                true
            }
            None => {
                issues.push(PlanIssue::DanglingDependency {
                    milestone: id.clone(),
                    depends_on: dep.clone(),
                });
                false
            }
        });
        graph.push(edges);
    }
    for component in cycles(&graph) {
        let mut ids: Vec<String> = component
            .into_iter()
            .map(|i| milestones[i].id.clone())
            .collect();
        ids.sort_unstable();
        issues.push(PlanIssue::DependencyCycle { milestones: ids });
    }
}

/// The strongly connected components of a graph (node → the nodes it depends on) that are
/// cycles: more than one node, or one that depends on itself. Tarjan's algorithm, iterative so a
/// long chain cannot overflow the stack.
pub(crate) fn cycles(graph: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let mut index = vec![UNSEEN; graph.len()];
    let mut low = vec![0; graph.len()];
    let mut on_stack = vec![false; graph.len()];
    let mut stack = Vec::new();
    let mut found = Vec::new();
    let mut next_index = 0;
    for start in 0..graph.len() {
        if index[start] != UNSEEN {
            continue;
        }
        // (node, position in its edge list)
        let mut work = vec![(start, 0)];
        index[start] = next_index;
        low[start] = next_index;
        next_index += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (node, ref mut edge)) = work.last_mut() {
            if let Some(&next) = graph[node].get(*edge) {
                *edge += 1;
                if index[next] == UNSEEN {
                    index[next] = next_index;
                    low[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(index[next]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 || graph[node].contains(&node) {
                    found.push(component);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check, entry, field, milestone, t};
    use yrs::{Array as _, WriteTxn as _};

    #[test]
    fn demo_plan_projects_without_issues() {
        let (_, update) = crate::demo_plan(7).unwrap();
        let plan = project_doc_from(&update.plan);
        assert_eq!(plan.issues, []);
        assert_eq!(plan.meta.schema_version, 2);
        assert_eq!(plan.meta.go_live, crate::parse_date("2027-04-01"));
        assert_eq!(plan.milestones.len(), 13);
        let sign = plan.milestone("ms-sign").unwrap();
        assert_eq!(sign.depends_on, ["ms-approval", "ms-msa", "ms-procure"]);
        let scope = plan.milestone("ms-pov-scope").unwrap();
        assert_eq!(
            scope.owner,
            Some(Owner {
                stakeholder_id: Some("st-raj".into()),
                name: "Raj Mehta".into()
            })
        );
        assert_eq!(scope.status, Some(Status::Done));
    }

    #[test]
    fn a_v1_document_projects_as_version_1_without_the_shared_judgments() {
        check(
            |txn| {
                field(txn, "meta", "goLiveReason", t("Board meeting"));
                entry(
                    txn,
                    "stakeholders",
                    "st-a",
                    vec![
                        ("name", t("Ann")),
                        ("notes", t("Shared notes")),
                        ("power", t("blocker")),
                        ("engagement", t("dark")),
                    ],
                );
            },
            |plan| {
                assert_eq!(plan.meta.schema_version, 1);
                assert_eq!(plan.meta.go_live_reason.as_deref(), Some("Board meeting"));
                assert_eq!(plan.meta.go_live_slip_reason, None);
                assert_eq!(plan.stakeholders[0].notes.as_deref(), Some("Shared notes"));
                let json = serde_json::to_string(plan).unwrap();
                assert!(
                    !json.contains("blocker") && !json.contains("dark"),
                    "{json}"
                );
                assert!(
                    !json.contains("power") && !json.contains("engagement"),
                    "{json}"
                );
                assert_eq!(plan.issues, []);
            },
        );
    }

    #[test]
    fn prose_reads_the_same_as_y_text_and_as_a_v1_string() {
        check(
            |txn| {
                field(
                    txn,
                    "meta",
                    "title",
                    yrs::In::from(yrs::TextPrelim::new("Rollout")),
                );
                field(txn, "meta", "objective", t("Ramp faster"));
                field(txn, "meta", "goLiveSlipReason", t("Board moved"));
                field(
                    txn,
                    "meta",
                    "schemaVersion",
                    yrs::In::Any(yrs::Any::from(2i64)),
                );
            },
            |plan| {
                assert_eq!(plan.meta.title.as_deref(), Some("Rollout"));
                assert_eq!(plan.meta.objective.as_deref(), Some("Ramp faster"));
                assert_eq!(
                    plan.meta.go_live_slip_reason.as_deref(),
                    Some("Board moved")
                );
                assert_eq!(plan.meta.schema_version, 2);
                assert_eq!(plan.issues, []);
            },
        );
    }

    fn project_doc_from(update: &[u8]) -> Plan {
        crate::project_doc(&crate::tests::apply(update))
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_issue_and_the_rest_stays() {
        check(
            |txn| {
                field(txn, "meta", "title", yrs::In::Any(yrs::Any::from(42.0)));
                field(txn, "meta", "buyerOrg", t("Northwind"));
            },
            |plan| {
                assert_eq!(plan.meta.title, None);
                assert_eq!(plan.meta.buyer_org.as_deref(), Some("Northwind"));
                assert_eq!(
                    plan.issues,
                    [PlanIssue::WrongType {
                        path: "meta.title".into(),
                        expected: "text",
                        found: "42".into()
                    }]
                );
            },
        );
    }

    #[test]
    fn an_unknown_enumeration_value_is_an_issue_and_the_milestone_stays_open() {
        check(
            |txn| {
                milestone(
                    txn,
                    "m1",
                    "2027-01-01",
                    &[],
                    vec![("status", t("finished"))],
                )
            },
            |plan| {
                let m = plan.milestone("m1").unwrap();
                assert_eq!(m.status, None);
                assert!(m.is_open());
                assert_eq!(
                    plan.issues,
                    [PlanIssue::UnknownValue {
                        path: "milestones.m1.status".into(),
                        value: "finished".into(),
                        allowed: Status::VALUES
                    }]
                );
            },
        );
    }

    #[test]
    fn a_missing_status_means_not_started() {
        check(
            |txn| entry(txn, "milestones", "m1", vec![("title", t("Kickoff"))]),
            |plan| {
                assert_eq!(
                    plan.milestone("m1").unwrap().status,
                    Some(Status::NotStarted)
                );
                assert_eq!(plan.issues, []);
            },
        );
    }

    #[test]
    fn a_bad_date_is_an_issue() {
        for bad in ["next week", "2027-02-30", "2027-2-3"] {
            check(
                |txn| milestone(txn, "m1", bad, &[], vec![]),
                |plan| {
                    assert_eq!(plan.milestone("m1").unwrap().due, None);
                    assert_eq!(
                        plan.issues,
                        [PlanIssue::BadDate {
                            path: "milestones.m1.due".into(),
                            value: bad.into()
                        }]
                    );
                },
            );
        }
    }

    #[test]
    fn a_dangling_dependency_is_dropped_and_reported() {
        check(
            |txn| {
                milestone(txn, "a", "2027-01-01", &[], vec![]);
                milestone(txn, "b", "2027-02-01", &["a", "ghost"], vec![]);
            },
            |plan| {
                assert_eq!(plan.milestone("b").unwrap().depends_on, ["a"]);
                assert_eq!(
                    plan.issues,
                    [PlanIssue::DanglingDependency {
                        milestone: "b".into(),
                        depends_on: "ghost".into()
                    }]
                );
            },
        );
    }

    #[test]
    fn owners_resolve_to_stakeholders_free_names_or_dangling_ids() {
        check(
            |txn| {
                entry(
                    txn,
                    "stakeholders",
                    "st-dev",
                    vec![("name", t("Dev Patel"))],
                );
                milestone(txn, "a", "2027-01-01", &[], vec![("owner", t("st-dev"))]);
                milestone(
                    txn,
                    "b",
                    "2027-01-01",
                    &[],
                    vec![("owner", t("Jean-Luc Picard"))],
                );
                milestone(txn, "c", "2027-01-01", &[], vec![("owner", t("st-gone"))]);
            },
            |plan| {
                let owner = |id| plan.milestone(id).unwrap().owner.clone().unwrap();
                assert_eq!(owner("a").name, "Dev Patel");
                assert_eq!(owner("b").stakeholder_id, None);
                assert_eq!(owner("b").name, "Jean-Luc Picard");
                assert_eq!(
                    plan.issues,
                    [PlanIssue::DanglingOwner {
                        milestone: "c".into(),
                        owner: "st-gone".into()
                    }]
                );
            },
        );
    }

    #[test]
    fn dependency_cycles_are_reported_once_each() {
        check(
            |txn| {
                milestone(txn, "a", "2027-01-01", &["c"], vec![]);
                milestone(txn, "b", "2027-01-01", &["a"], vec![]);
                milestone(txn, "c", "2027-01-01", &["b"], vec![]);
                milestone(txn, "d", "2027-01-01", &["d"], vec![]);
                milestone(txn, "e", "2027-01-01", &["a"], vec![]);
            },
            |plan| {
                assert_eq!(
                    plan.issues,
                    [
                        PlanIssue::DependencyCycle {
                            milestones: vec!["a".into(), "b".into(), "c".into()]
                        },
                        PlanIssue::DependencyCycle {
                            milestones: vec!["d".into()]
                        },
                    ]
                );
            },
        );
    }

    #[test]
    fn an_entry_that_is_not_a_map_is_reported_and_others_stay() {
        check(
            |txn| {
                field(txn, "risks", "r1", t("just text"));
                entry(
                    txn,
                    "risks",
                    "r2",
                    vec![("text", t("Budget freeze")), ("kind", t("budget"))],
                );
            },
            |plan| {
                assert_eq!(plan.risks.len(), 1);
                assert_eq!(plan.risks[0].kind, Some(RiskKind::Budget));
                assert_eq!(
                    plan.issues,
                    [PlanIssue::NotAnEntry {
                        path: "risks.r1".into()
                    }]
                );
            },
        );
    }

    #[test]
    fn a_collection_written_as_an_array_is_reported() {
        check(
            |txn| {
                let array = txn.get_or_insert_array("milestones");
                array.push_back(txn, "not an entry");
            },
            |plan| {
                assert_eq!(plan.issues, [PlanIssue::RootNotMap { root: "milestones" }]);
            },
        );
    }

    #[test]
    fn entries_are_in_order_then_id_with_unordered_last() {
        check(
            |txn| {
                entry(txn, "objectives", "z", vec![("order", t("a0"))]);
                entry(txn, "objectives", "y", vec![("order", t("a1"))]);
                entry(txn, "objectives", "b", vec![]);
                entry(txn, "objectives", "a", vec![("order", t("a1"))]);
            },
            |plan| {
                let order: Vec<_> = plan.objectives.iter().map(|o| o.id.as_str()).collect();
                assert_eq!(order, ["z", "a", "y", "b"]);
            },
        );
    }

    #[test]
    fn dependencies_that_are_not_ids_are_reported() {
        check(
            |txn| {
                milestone(txn, "a", "2027-01-01", &[], vec![]);
                milestone(txn, "b", "2027-01-01", &[], vec![("dependsOn", t("a"))]);
            },
            |plan| {
                assert_eq!(
                    plan.milestone("b").unwrap().depends_on,
                    Vec::<String>::new()
                );
                assert!(matches!(
                    &plan.issues[..],
                    [PlanIssue::WrongType { path, .. }] if path == "milestones.b.dependsOn"
                ));
            },
        );
    }
}
