//! Plan health: what a seller's manager scans in the pipeline and what both teams check before
//! a call — what is late, what is coming, what cannot work as scheduled, how much room is left
//! before go-live, and whose turn it is. "Today" and the plan's activity are arguments, so every
//! rule is tested at any date.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::model::{Milestone, MilestoneSide, Plan, Status, cycles};

/// Days ahead that count as "due soon".
pub const DUE_SOON_DAYS: i64 = 7;
/// Days without an accepted update after which a plan counts as stalled.
pub const STALLED_AFTER_DAYS: i64 = 14;

/// Which side moved a date (for slips by side). `Other` is the admin or the server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlipSide {
    Buyer,
    Seller,
    Other,
}

/// One recorded slip, as the health rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlipFact {
    pub side: SlipSide,
    /// Days moved (later is positive); `None` when a date was cleared or unreadable.
    pub days: Option<i64>,
}

/// What health needs beyond the plan itself.
#[derive(Debug, Clone, Default)]
pub struct Activity<'a> {
    /// The go-live date the plan was created with.
    pub original_go_live: Option<NaiveDate>,
    /// The day of the last accepted update.
    pub last_update: Option<NaiveDate>,
    pub slips: &'a [SlipFact],
}

/// Overall verdict, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The schedule cannot hold as written: go-live is overrun, dependencies are due after the
    /// milestones waiting for them, open milestones wait for each other in a circle, or the
    /// critical path is late.
    OffTrack,
    /// Something needs attention: overdue or blocked milestones, or nobody has touched the plan.
    AtRisk,
    OnTrack,
}

/// A milestone as health reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MilestoneRef {
    pub id: String,
    pub title: Option<String>,
    pub side: Option<MilestoneSide>,
    pub owner: Option<String>,
    pub due: Option<NaiveDate>,
    pub status: Option<Status>,
}

impl MilestoneRef {
    fn of(m: &Milestone) -> Self {
        Self {
            id: m.id.clone(),
            title: m.title.clone(),
            side: m.side,
            owner: m.owner.as_ref().map(|o| o.name.clone()),
            due: m.due,
            status: m.status,
        }
    }
}

/// An overdue milestone and how late it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overdue {
    #[serde(flatten)]
    pub milestone: MilestoneRef,
    pub days_late: i64,
}

/// A milestone due before one of the open milestones it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Impossible {
    pub milestone: MilestoneRef,
    pub depends_on: MilestoneRef,
    /// How many days too early the milestone is scheduled.
    pub days_short: i64,
}

/// The chain of open milestones that ends last before go-live, each waiting for the one
/// before it, and the days between its end and go-live (negative: go-live is overrun).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CriticalPath {
    pub milestones: Vec<MilestoneRef>,
    pub slack_days: Option<i64>,
}

/// Slips recorded for one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlipTally {
    pub count: usize,
    /// Sum of days moved (later is positive).
    pub days: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SlipsBySide {
    pub buyer: SlipTally,
    pub seller: SlipTally,
    pub other: SlipTally,
}

/// The next milestone each side can act on: open, not blocked, everything it waits for done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NextUp {
    pub buyer: Option<MilestoneRef>,
    pub seller: Option<MilestoneRef>,
}

/// The full health of one plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub today: NaiveDate,
    pub verdict: Verdict,
    /// Why the verdict is what it is, in plain words.
    pub reasons: Vec<String>,
    pub go_live: Option<NaiveDate>,
    pub days_to_go_live: Option<i64>,
    /// Days go-live moved since the plan was created (later is positive).
    pub go_live_drift_days: Option<i64>,
    pub overdue: Vec<Overdue>,
    pub due_soon: Vec<MilestoneRef>,
    pub blocked: Vec<MilestoneRef>,
    pub impossible: Vec<Impossible>,
    /// Open milestones that wait, through open ones, for themselves: none of them can start.
    /// Each cycle in id order, the cycles by their first id.
    pub cycles: Vec<Vec<MilestoneRef>>,
    pub critical_path: CriticalPath,
    pub slips_by_side: SlipsBySide,
    pub days_since_last_update: Option<i64>,
    pub stalled: bool,
    pub next_up: NextUp,
}

/// What the pipeline view shows per plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSummary {
    pub verdict: Verdict,
    pub overdue: usize,
    pub due_soon: usize,
    pub blocked: usize,
    pub impossible: usize,
    /// Open milestones on dependency cycles.
    pub in_cycles: usize,
    pub slack_days: Option<i64>,
    pub go_live_drift_days: Option<i64>,
    pub stalled: bool,
    pub next_up: NextUp,
}

impl Health {
    pub fn summary(&self) -> HealthSummary {
        HealthSummary {
            verdict: self.verdict,
            overdue: self.overdue.len(),
            due_soon: self.due_soon.len(),
            blocked: self.blocked.len(),
            impossible: self.impossible.len(),
            in_cycles: self.cycles.iter().map(Vec::len).sum(),
            slack_days: self.critical_path.slack_days,
            go_live_drift_days: self.go_live_drift_days,
            stalled: self.stalled,
            next_up: self.next_up.clone(),
        }
    }
}

/// The dependency graph health walks: every milestone by id (the first of an id, as
/// [`Plan::milestone`] finds it), so each lookup is O(1) and health is linear in milestones +
/// dependencies.
struct Graph<'a> {
    by_id: HashMap<&'a str, &'a Milestone>,
}

impl<'a> Graph<'a> {
    fn of(plan: &'a Plan) -> Self {
        let mut by_id = HashMap::with_capacity(plan.milestones.len());
        for m in &plan.milestones {
            by_id.entry(m.id.as_str()).or_insert(m);
        }
        Self { by_id }
    }

    /// The milestones `m` waits for that exist, in `dependsOn` order.
    fn dependencies(&self, m: &'a Milestone) -> impl Iterator<Item = &'a Milestone> + '_ {
        m.depends_on
            .iter()
            .filter_map(|id| self.by_id.get(id.as_str()).copied())
    }
}

/// Evaluates a plan's health on `today`. Linear in milestones + dependencies (plus sorting the
/// lists it reports); a dependency cycle is reported, never followed.
pub fn health(plan: &Plan, today: NaiveDate, activity: &Activity<'_>) -> Health {
    let graph = Graph::of(plan);
    let open: Vec<&Milestone> = plan.milestones.iter().filter(|m| m.is_open()).collect();
    let by_due = |a: &&Milestone, b: &&Milestone| (a.due, &a.id).cmp(&(b.due, &b.id));

    let mut overdue: Vec<Overdue> = open
        .iter()
        .filter_map(|m| {
            let due = m.due?;
            (due < today).then(|| Overdue {
                milestone: MilestoneRef::of(m),
                days_late: (today - due).num_days(),
            })
        })
        .collect();
    overdue.sort_by(|a, b| {
        (a.milestone.due, &a.milestone.id).cmp(&(b.milestone.due, &b.milestone.id))
    });

    let mut due_soon: Vec<&Milestone> = open
        .iter()
        .copied()
        .filter(|m| {
            m.due
                .is_some_and(|d| d >= today && (d - today).num_days() <= DUE_SOON_DAYS)
        })
        .collect();
    due_soon.sort_by(by_due);

    let mut blocked: Vec<&Milestone> = open
        .iter()
        .copied()
        .filter(|m| m.status == Some(Status::Blocked))
        .collect();
    blocked.sort_by(by_due);

    let mut impossible = Vec::new();
    for m in &open {
        let Some(due) = m.due else { continue };
        for dep in graph.dependencies(m) {
            if let Some(dep_due) = dep.due.filter(|d| dep.is_open() && *d > due) {
                impossible.push(Impossible {
                    milestone: MilestoneRef::of(m),
                    depends_on: MilestoneRef::of(dep),
                    days_short: (dep_due - due).num_days(),
                });
            }
        }
    }

    let cycles = open_cycles(&graph, &open);
    let go_live = plan.meta.go_live;
    let critical_path = critical_path(&graph, &open, go_live);
    let go_live_drift_days = match (go_live, activity.original_go_live) {
        (Some(now), Some(then)) => Some((now - then).num_days()),
        _ => None,
    };
    let mut slips_by_side = SlipsBySide::default();
    for slip in activity.slips {
        let tally = match slip.side {
            SlipSide::Buyer => &mut slips_by_side.buyer,
            SlipSide::Seller => &mut slips_by_side.seller,
            SlipSide::Other => &mut slips_by_side.other,
        };
        tally.count += 1;
        tally.days += slip.days.unwrap_or(0);
    }
    let days_since_last_update = activity.last_update.map(|d| (today - d).num_days());
    let stalled = days_since_last_update.is_some_and(|d| d >= STALLED_AFTER_DAYS);
    let next_up = NextUp {
        buyer: next_up(&graph, &open, MilestoneSide::Buyer),
        seller: next_up(&graph, &open, MilestoneSide::Seller),
    };

    let on_path: HashSet<&str> = critical_path
        .milestones
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    let mut off = Vec::new();
    if critical_path.slack_days.is_some_and(|s| s < 0) {
        off.push("Milestones are due after go-live".to_owned());
    }
    if !impossible.is_empty() {
        off.push(format!(
            "{} due before what {} for",
            milestones(impossible.len()),
            if impossible.len() == 1 {
                "it waits"
            } else {
                "they wait"
            }
        ));
    }
    if !cycles.is_empty() {
        off.push(cycle_reason(&cycles));
    }
    let late_on_path = overdue
        .iter()
        .filter(|o| on_path.contains(o.milestone.id.as_str()))
        .count();
    if late_on_path > 0 {
        off.push(format!(
            "{} on the critical path",
            overdue_milestones(late_on_path)
        ));
    }
    let mut risk = Vec::new();
    if overdue.len() > late_on_path {
        risk.push(overdue_milestones(overdue.len() - late_on_path));
    }
    if !blocked.is_empty() {
        risk.push(format!("{} blocked", milestones(blocked.len())));
    }
    // The last step due on go-live day leaves nothing for any slip: not "on track".
    if critical_path.slack_days == Some(0) {
        risk.push("No slack: the last step is due on go-live day".to_owned());
    }
    if stalled {
        risk.push(format!(
            "No change for {} days",
            days_since_last_update.unwrap_or_default()
        ));
    }
    let verdict = if !off.is_empty() {
        Verdict::OffTrack
    } else if !risk.is_empty() {
        Verdict::AtRisk
    } else {
        Verdict::OnTrack
    };
    off.extend(risk);

    Health {
        today,
        verdict,
        reasons: off,
        go_live,
        days_to_go_live: go_live.map(|g| (g - today).num_days()),
        go_live_drift_days,
        overdue,
        due_soon: due_soon.into_iter().map(MilestoneRef::of).collect(),
        blocked: blocked.into_iter().map(MilestoneRef::of).collect(),
        impossible,
        cycles,
        critical_path,
        slips_by_side,
        days_since_last_update,
        stalled,
        next_up,
    }
}

/// "1 milestone", "3 milestones".
fn milestones(count: usize) -> String {
    if count == 1 {
        "1 milestone".to_owned()
    } else {
        format!("{count} milestones")
    }
}

/// "1 overdue milestone", "3 overdue milestones".
fn overdue_milestones(count: usize) -> String {
    if count == 1 {
        "1 overdue milestone".to_owned()
    } else {
        format!("{count} overdue milestones")
    }
}

/// How many cycle members a reason names before it says how many more there are.
const CYCLE_NAMES_IN_REASON: usize = 5;

/// "3 milestones wait for each other in a circle: a, b, c" (the first few ids, in the order
/// of [`Health::cycles`]).
fn cycle_reason(cycles: &[Vec<MilestoneRef>]) -> String {
    let count: usize = cycles.iter().map(Vec::len).sum();
    let names: Vec<&str> = cycles
        .iter()
        .flatten()
        .take(CYCLE_NAMES_IN_REASON)
        .map(|m| m.id.as_str())
        .collect();
    let more = count - names.len();
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{} for each other in a circle: {}{more}",
        if count == 1 {
            "1 milestone waits".to_owned()
        } else {
            format!("{count} milestones wait")
        },
        names.join(", ")
    )
}

/// The cycles among open milestones (each open milestone waiting, through open ones, for
/// itself): none of their members can ever start. Each cycle in id order, the cycles by their
/// first id. Tarjan's strongly connected components over open → open edges: linear.
fn open_cycles(graph: &Graph<'_>, open: &[&Milestone]) -> Vec<Vec<MilestoneRef>> {
    let position: HashMap<&str, usize> = open
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let edges: Vec<Vec<usize>> = open
        .iter()
        .map(|m| {
            graph
                .dependencies(m)
                .filter_map(|d| position.get(d.id.as_str()).copied())
                .collect()
        })
        .collect();
    let mut found: Vec<Vec<MilestoneRef>> = cycles(&edges)
        .into_iter()
        .map(|component| {
            let mut members: Vec<&Milestone> = component.into_iter().map(|i| open[i]).collect();
            members.sort_by(|a, b| a.id.cmp(&b.id));
            members.into_iter().map(MilestoneRef::of).collect()
        })
        .collect();
    found.sort_by(|a, b| a.first().map(|m| &m.id).cmp(&b.first().map(|m| &m.id)));
    found
}

/// Which of two dated milestones binds: the one due later; on the same day, the smaller id.
fn binds_later(a: &Milestone, b: &Milestone) -> std::cmp::Ordering {
    (a.due, &b.id).cmp(&(b.due, &a.id))
}

/// From the open milestone due last, walk back through the dependency that binds it (the open
/// one due latest) until a milestone waits for nothing open. Each milestone is visited at most
/// once, so a cycle stops the walk and the walk is linear in milestones + dependencies.
fn critical_path(
    graph: &Graph<'_>,
    open: &[&Milestone],
    go_live: Option<NaiveDate>,
) -> CriticalPath {
    let Some(last) = open
        .iter()
        .filter(|m| m.due.is_some())
        .max_by(|a, b| binds_later(a, b))
    else {
        return CriticalPath::default();
    };
    let mut path = vec![*last];
    let mut seen: HashSet<&str> = HashSet::from([last.id.as_str()]);
    let mut current = *last;
    while let Some(binding) = graph
        .dependencies(current)
        .filter(|d| d.is_open() && d.due.is_some() && !seen.contains(d.id.as_str()))
        .max_by(|a, b| binds_later(a, b))
    {
        seen.insert(binding.id.as_str());
        path.push(binding);
        current = binding;
    }
    path.reverse();
    let slack_days = match (go_live, last.due) {
        (Some(go_live), Some(due)) => Some((go_live - due).num_days()),
        _ => None,
    };
    CriticalPath {
        milestones: path.into_iter().map(MilestoneRef::of).collect(),
        slack_days,
    }
}

fn next_up(graph: &Graph<'_>, open: &[&Milestone], side: MilestoneSide) -> Option<MilestoneRef> {
    open.iter()
        .filter(|m| matches!(m.side, Some(s) if s == side || s == MilestoneSide::Joint))
        .filter(|m| m.status != Some(Status::Blocked))
        .filter(|m| graph.dependencies(m).all(|d| !d.is_open()))
        .min_by(|a, b| {
            (a.due.is_none(), a.due, &a.order, &a.id).cmp(&(
                b.due.is_none(),
                b.due,
                &b.order,
                &b.id,
            ))
        })
        .map(|m| MilestoneRef::of(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check, field, milestone, t};

    fn day(text: &str) -> NaiveDate {
        crate::parse_date(text).unwrap()
    }

    fn on(plan: &Plan, today: &str) -> Health {
        health(plan, day(today), &Activity::default())
    }

    fn ids(refs: &[MilestoneRef]) -> Vec<&str> {
        refs.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn overdue_and_due_soon_count_open_milestones_only() {
        check(
            |txn| {
                milestone(txn, "late", "2027-01-01", &[], vec![]);
                milestone(
                    txn,
                    "done-late",
                    "2027-01-01",
                    &[],
                    vec![("status", t("done"))],
                );
                milestone(txn, "soon", "2027-01-17", &[], vec![]);
                milestone(txn, "later", "2027-01-18", &[], vec![]);
            },
            |plan| {
                let h = on(plan, "2027-01-10");
                assert_eq!(h.overdue.len(), 1);
                assert_eq!(h.overdue[0].milestone.id, "late");
                assert_eq!(h.overdue[0].days_late, 9);
                assert_eq!(ids(&h.due_soon), ["soon"]);
            },
        );
    }

    #[test]
    fn a_milestone_due_before_an_open_dependency_is_impossible() {
        check(
            |txn| {
                milestone(txn, "security", "2027-02-10", &[], vec![]);
                milestone(txn, "sign", "2027-02-01", &["security"], vec![]);
                milestone(txn, "old", "2027-03-01", &[], vec![("status", t("done"))]);
                milestone(txn, "fine", "2027-02-15", &["old"], vec![]);
            },
            |plan| {
                let h = on(plan, "2027-01-01");
                assert_eq!(h.impossible.len(), 1);
                assert_eq!(h.impossible[0].milestone.id, "sign");
                assert_eq!(h.impossible[0].depends_on.id, "security");
                assert_eq!(h.impossible[0].days_short, 9);
                assert_eq!(h.verdict, Verdict::OffTrack);
            },
        );
    }

    #[test]
    fn the_critical_path_follows_the_binding_dependency_back_from_the_last_milestone() {
        check(
            |txn| {
                field(txn, "meta", "goLive", t("2027-04-01"));
                milestone(txn, "a", "2027-01-01", &[], vec![]);
                milestone(txn, "b", "2027-02-01", &["a"], vec![]);
                milestone(txn, "c", "2027-01-15", &[], vec![]);
                milestone(txn, "d", "2027-03-20", &["b", "c"], vec![]);
                milestone(txn, "side", "2027-03-01", &[], vec![]);
            },
            |plan| {
                let h = on(plan, "2026-12-01");
                assert_eq!(ids(&h.critical_path.milestones), ["a", "b", "d"]);
                assert_eq!(h.critical_path.slack_days, Some(12));
                assert_eq!(h.verdict, Verdict::OnTrack);
            },
        );
    }

    #[test]
    fn a_last_step_due_on_go_live_day_leaves_no_slack_and_is_not_on_track() {
        check(
            |txn| {
                field(txn, "meta", "goLive", t("2027-04-01"));
                milestone(txn, "a", "2027-03-01", &[], vec![]);
                milestone(txn, "go", "2027-04-01", &["a"], vec![]);
            },
            |plan| {
                let h = on(plan, "2027-01-01");
                assert_eq!(h.critical_path.slack_days, Some(0));
                assert_eq!(h.verdict, Verdict::AtRisk);
                assert_eq!(h.reasons, ["No slack: the last step is due on go-live day"]);
            },
        );
    }

    #[test]
    fn reasons_say_one_milestone_or_many_in_sentence_case() {
        check(
            |txn| {
                field(txn, "meta", "goLive", t("2027-04-01"));
                milestone(txn, "late", "2027-01-01", &[], vec![]);
                milestone(txn, "s1", "2027-02-01", &[], vec![("status", t("blocked"))]);
                milestone(txn, "s2", "2027-02-02", &[], vec![("status", t("blocked"))]);
                milestone(txn, "last", "2027-03-01", &[], vec![]);
            },
            |plan| {
                let h = on(plan, "2027-01-05");
                assert_eq!(h.reasons, ["1 overdue milestone", "2 milestones blocked"]);
                for reason in &h.reasons {
                    assert!(!reason.contains("(s)"), "{reason}");
                    assert!(!reason.starts_with(char::is_lowercase), "{reason}");
                }
            },
        );
    }

    #[test]
    fn a_milestone_after_go_live_puts_the_plan_off_track() {
        check(
            |txn| {
                field(txn, "meta", "goLive", t("2027-04-01"));
                milestone(txn, "train", "2027-04-05", &[], vec![]);
            },
            |plan| {
                let h = on(plan, "2027-01-01");
                assert_eq!(h.critical_path.slack_days, Some(-4));
                assert_eq!(h.verdict, Verdict::OffTrack);
                assert_eq!(h.days_to_go_live, Some(90));
            },
        );
    }

    #[test]
    fn an_overdue_milestone_off_the_critical_path_is_a_risk() {
        check(
            |txn| {
                field(txn, "meta", "goLive", t("2027-04-01"));
                milestone(txn, "late", "2027-01-01", &[], vec![]);
                milestone(txn, "last", "2027-03-01", &[], vec![]);
            },
            |plan| {
                let h = on(plan, "2027-01-05");
                assert_eq!(h.verdict, Verdict::AtRisk);
                assert_eq!(h.reasons, ["1 overdue milestone"]);
            },
        );
    }

    #[test]
    fn next_up_is_the_earliest_actionable_milestone_per_side() {
        check(
            |txn| {
                milestone(
                    txn,
                    "b1",
                    "2027-01-05",
                    &[],
                    vec![("side", t("buyer")), ("status", t("done"))],
                );
                milestone(txn, "b2", "2027-01-20", &["b1"], vec![("side", t("buyer"))]);
                milestone(txn, "b3", "2027-01-10", &["s1"], vec![("side", t("buyer"))]);
                milestone(
                    txn,
                    "s1",
                    "2027-01-08",
                    &[],
                    vec![("side", t("seller")), ("status", t("blocked"))],
                );
                milestone(txn, "j1", "2027-01-25", &[], vec![("side", t("joint"))]);
            },
            |plan| {
                let h = on(plan, "2027-01-01");
                assert_eq!(h.next_up.buyer.as_ref().map(|m| m.id.as_str()), Some("b2"));
                assert_eq!(h.next_up.seller.as_ref().map(|m| m.id.as_str()), Some("j1"));
                assert_eq!(ids(&h.blocked), ["s1"]);
            },
        );
    }

    #[test]
    fn open_milestones_waiting_for_each_other_are_reported_not_followed() {
        check(
            |txn| {
                field(txn, "meta", "goLive", t("2027-04-01"));
                milestone(txn, "a", "2027-01-01", &["c"], vec![]);
                milestone(txn, "b", "2027-02-01", &["a"], vec![]);
                milestone(txn, "c", "2027-03-01", &["b"], vec![]);
                milestone(txn, "self", "2027-01-10", &["self"], vec![]);
                // A circle through a done milestone does not hold anything up.
                milestone(txn, "x", "2027-01-05", &["y"], vec![("status", t("done"))]);
                milestone(txn, "y", "2027-01-06", &["x"], vec![]);
            },
            |plan| {
                let h = on(plan, "2026-12-01");
                let cycles: Vec<Vec<&str>> = h.cycles.iter().map(|c| ids(c)).collect();
                assert_eq!(cycles, [vec!["a", "b", "c"], vec!["self"]]);
                assert!(h.reasons.contains(
                    &"4 milestones wait for each other in a circle: a, b, c, self".to_owned()
                ));
                assert_eq!(h.verdict, Verdict::OffTrack);
                assert_eq!(ids(&h.critical_path.milestones), ["a", "b", "c"]);
                assert_eq!(h.summary().in_cycles, 4);
            },
        );
    }

    #[test]
    fn drift_slips_by_side_and_stalling_come_from_activity() {
        check(
            |txn| field(txn, "meta", "goLive", t("2027-04-15")),
            |plan| {
                let slips = [
                    SlipFact {
                        side: SlipSide::Buyer,
                        days: Some(7),
                    },
                    SlipFact {
                        side: SlipSide::Buyer,
                        days: Some(-2),
                    },
                    SlipFact {
                        side: SlipSide::Seller,
                        days: None,
                    },
                    SlipFact {
                        side: SlipSide::Other,
                        days: Some(14),
                    },
                ];
                let activity = Activity {
                    original_go_live: Some(day("2027-04-01")),
                    last_update: Some(day("2027-01-01")),
                    slips: &slips,
                };
                let h = health(plan, day("2027-01-15"), &activity);
                assert_eq!(h.go_live_drift_days, Some(14));
                assert_eq!(h.slips_by_side.buyer, SlipTally { count: 2, days: 5 });
                assert_eq!(h.slips_by_side.seller, SlipTally { count: 1, days: 0 });
                assert_eq!(h.days_since_last_update, Some(14));
                assert!(h.stalled);
                assert_eq!(h.verdict, Verdict::AtRisk);
                let fresh = health(plan, day("2027-01-14"), &activity);
                assert!(!fresh.stalled);
            },
        );
    }
}
