//! The health computation as it was before issue 17 (every dependency looked up by a linear
//! search of the plan, so quadratic on long chains), kept word for word as the reference the
//! property test compares the linear one with, and as the benchmark's baseline. The one
//! addition ([`health`], not [`health_before`]) is the rule the old code lacked: open milestones waiting for each other in a
//! circle, found here the obvious way (a milestone is on a cycle when it can reach itself; two
//! are on the same cycle when each reaches the other).

use std::collections::HashSet;

use chrono::NaiveDate;
use mapline_plan::health::{
    Activity, CriticalPath, DUE_SOON_DAYS, Health, Impossible, MilestoneRef, NextUp, Overdue,
    STALLED_AFTER_DAYS, SlipSide, SlipsBySide, Verdict,
};
use mapline_plan::model::{Milestone, MilestoneSide, Plan, Status};

fn milestone_ref(m: &Milestone) -> MilestoneRef {
    MilestoneRef {
        id: m.id.clone(),
        title: m.title.clone(),
        side: m.side,
        owner: m.owner.as_ref().map(|o| o.name.clone()),
        due: m.due,
        status: m.status,
    }
}

/// The reference: the old computation with the cycle rule.
pub fn health(plan: &Plan, today: NaiveDate, activity: &Activity<'_>) -> Health {
    let open: Vec<&Milestone> = plan.milestones.iter().filter(|m| m.is_open()).collect();
    evaluate(plan, today, activity, open_cycles(plan, &open))
}

/// The old computation exactly (no cycle rule: its reachability sets are quadratic in memory
/// on a long chain), the benchmark's baseline. The same as [`health`] on acyclic plans.
pub fn health_before(plan: &Plan, today: NaiveDate, activity: &Activity<'_>) -> Health {
    evaluate(plan, today, activity, Vec::new())
}

fn evaluate(
    plan: &Plan,
    today: NaiveDate,
    activity: &Activity<'_>,
    cycles: Vec<Vec<MilestoneRef>>,
) -> Health {
    let open: Vec<&Milestone> = plan.milestones.iter().filter(|m| m.is_open()).collect();
    let by_due = |a: &&Milestone, b: &&Milestone| (a.due, &a.id).cmp(&(b.due, &b.id));

    let mut overdue: Vec<Overdue> = open
        .iter()
        .filter_map(|m| {
            let due = m.due?;
            (due < today).then(|| Overdue {
                milestone: milestone_ref(m),
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
        for dep in m.depends_on.iter().filter_map(|id| plan.milestone(id)) {
            if let Some(dep_due) = dep.due.filter(|d| dep.is_open() && *d > due) {
                impossible.push(Impossible {
                    milestone: milestone_ref(m),
                    depends_on: milestone_ref(dep),
                    days_short: (dep_due - due).num_days(),
                });
            }
        }
    }

    let go_live = plan.meta.go_live;
    let critical_path = critical_path(plan, &open, go_live);
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
        buyer: next_up(plan, &open, MilestoneSide::Buyer),
        seller: next_up(plan, &open, MilestoneSide::Seller),
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
        off.push(match impossible.len() {
            1 => "1 milestone due before what it waits for".to_owned(),
            n => format!("{n} milestones due before what they wait for"),
        });
    }
    if !cycles.is_empty() {
        let ids: Vec<&str> = cycles.iter().flatten().map(|m| m.id.as_str()).collect();
        let shown = ids.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        let more = match ids.len().saturating_sub(5) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let who = match ids.len() {
            1 => "1 milestone waits".to_owned(),
            n => format!("{n} milestones wait"),
        };
        off.push(format!("{who} for each other in a circle: {shown}{more}"));
    }
    let late_on_path = overdue
        .iter()
        .filter(|o| on_path.contains(o.milestone.id.as_str()))
        .count();
    if late_on_path > 0 {
        off.push(match late_on_path {
            1 => "1 overdue milestone on the critical path".to_owned(),
            n => format!("{n} overdue milestones on the critical path"),
        });
    }
    let mut risk = Vec::new();
    if overdue.len() > late_on_path {
        risk.push(match overdue.len() - late_on_path {
            1 => "1 overdue milestone".to_owned(),
            n => format!("{n} overdue milestones"),
        });
    }
    if !blocked.is_empty() {
        risk.push(match blocked.len() {
            1 => "1 milestone blocked".to_owned(),
            n => format!("{n} milestones blocked"),
        });
    }
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
        due_soon: due_soon.into_iter().map(milestone_ref).collect(),
        blocked: blocked.into_iter().map(milestone_ref).collect(),
        impossible,
        cycles,
        critical_path,
        slips_by_side,
        days_since_last_update,
        stalled,
        next_up,
    }
}

/// Open milestones reachable from `from` through open dependencies (not `from` itself unless it
/// is on a cycle).
fn reachable<'a>(plan: &'a Plan, from: &'a Milestone) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    let mut stack = vec![from];
    while let Some(m) = stack.pop() {
        for dep in m.depends_on.iter().filter_map(|id| plan.milestone(id)) {
            if dep.is_open() && seen.insert(dep.id.as_str()) {
                stack.push(dep);
            }
        }
    }
    seen
}

fn open_cycles(plan: &Plan, open: &[&Milestone]) -> Vec<Vec<MilestoneRef>> {
    let reach: Vec<HashSet<&str>> = open.iter().map(|m| reachable(plan, m)).collect();
    let mut cycles: Vec<Vec<MilestoneRef>> = Vec::new();
    let mut placed: HashSet<&str> = HashSet::new();
    for (i, m) in open.iter().enumerate() {
        if !reach[i].contains(m.id.as_str()) || placed.contains(m.id.as_str()) {
            continue;
        }
        let mut members: Vec<&Milestone> = open
            .iter()
            .enumerate()
            .filter(|(j, other)| {
                reach[i].contains(other.id.as_str()) && reach[*j].contains(m.id.as_str())
            })
            .map(|(_, other)| *other)
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        placed.extend(members.iter().map(|m| m.id.as_str()));
        cycles.push(members.into_iter().map(milestone_ref).collect());
    }
    cycles.sort_by(|a, b| a[0].id.cmp(&b[0].id));
    cycles
}

/// From the open milestone due last, walk back through the dependency that binds it (the open
/// one due latest) until a milestone waits for nothing open. Cycles stop the walk.
fn critical_path(plan: &Plan, open: &[&Milestone], go_live: Option<NaiveDate>) -> CriticalPath {
    let Some(last) = open
        .iter()
        .filter(|m| m.due.is_some())
        .max_by(|a, b| (a.due, &b.id).cmp(&(b.due, &a.id)))
    else {
        return CriticalPath::default();
    };
    let mut path = vec![*last];
    let mut seen: HashSet<&str> = HashSet::from([last.id.as_str()]);
    let mut current = *last;
    while let Some(binding) = current
        .depends_on
        .iter()
        .filter_map(|id| plan.milestone(id))
        .filter(|d| d.is_open() && d.due.is_some() && !seen.contains(d.id.as_str()))
        .max_by(|a, b| (a.due, &b.id).cmp(&(b.due, &a.id)))
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
        milestones: path.into_iter().map(milestone_ref).collect(),
        slack_days,
    }
}

fn next_up(plan: &Plan, open: &[&Milestone], side: MilestoneSide) -> Option<MilestoneRef> {
    open.iter()
        .filter(|m| matches!(m.side, Some(s) if s == side || s == MilestoneSide::Joint))
        .filter(|m| m.status != Some(Status::Blocked))
        .filter(|m| {
            m.depends_on
                .iter()
                .filter_map(|id| plan.milestone(id))
                .all(|d| !d.is_open())
        })
        .min_by(|a, b| {
            (a.due.is_none(), a.due, &a.order, &a.id).cmp(&(
                b.due.is_none(),
                b.due,
                &b.order,
                &b.id,
            ))
        })
        .map(|m| milestone_ref(m))
}
