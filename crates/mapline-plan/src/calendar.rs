//! The plan as an iCalendar feed (RFC 5545) that buyers and sellers subscribe to: one all-day
//! event per dated milestone and one for go-live. Each event's UID is stable (milestone id and
//! plan id) and its SEQUENCE is how often its date has moved, so a subscribed calendar moves a
//! slipped milestone instead of adding a second one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::model::{Milestone, Plan, Status};

/// What the feed is built from, besides the plan itself.
#[derive(Debug, Clone)]
pub struct CalendarInput<'a> {
    /// The plan's id, part of every UID.
    pub plan_id: &'a str,
    /// How often each milestone's date moved (from the slip history), by milestone id.
    pub moves: &'a BTreeMap<String, u32>,
    /// How often go-live moved.
    pub go_live_moves: u32,
    /// When the feed is generated (`DTSTAMP`).
    pub now: DateTime<Utc>,
    /// Only this person's milestones: a stakeholder id or a name (case-insensitive), matched
    /// through the stakeholder list either way.
    pub owner: Option<&'a str>,
}

/// The whole feed, lines ending in CRLF and folded at 75 octets as RFC 5545 requires.
pub fn calendar(plan: &Plan, input: &CalendarInput<'_>) -> String {
    let mut out = Vec::new();
    let title = plan.meta.title.as_deref().unwrap_or("Mutual action plan");
    out.push("BEGIN:VCALENDAR".to_owned());
    out.push("VERSION:2.0".to_owned());
    out.push("PRODID:-//Mapline//Mutual action plan//EN".to_owned());
    out.push("CALSCALE:GREGORIAN".to_owned());
    out.push("METHOD:PUBLISH".to_owned());
    out.push(format!("X-WR-CALNAME:{}", escape(title)));
    let stamp = input.now.format("%Y%m%dT%H%M%SZ").to_string();
    let person = input
        .owner
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|wanted| Person::find(plan, wanted));
    for milestone in plan
        .milestones
        .iter()
        .filter(|m| person.as_ref().is_none_or(|p| p.owns(m)))
    {
        let Some(due) = milestone.due else { continue };
        let moves = input.moves.get(&milestone.id).copied().unwrap_or(0);
        let event = Event {
            uid: format!("{}.{}@mapline", milestone.id, input.plan_id),
            sequence: moves,
            date: due,
            summary: milestone
                .title
                .clone()
                .unwrap_or_else(|| "Untitled step".to_owned()),
            description: describe(plan, milestone),
            category: milestone.workstream.clone(),
            cancelled: milestone.status == Some(Status::Cancelled),
        };
        event.write(&stamp, &mut out);
    }
    if let Some(go_live) = plan.meta.go_live {
        let event = Event {
            uid: format!("go-live.{}@mapline", input.plan_id),
            sequence: input.go_live_moves,
            date: go_live,
            summary: format!("Go-live: {title}"),
            description: plan.meta.go_live_reason.clone().unwrap_or_default(),
            category: Some("Go-live".to_owned()),
            cancelled: false,
        };
        event.write(&stamp, &mut out);
    }
    out.push("END:VCALENDAR".to_owned());
    let mut text = String::new();
    for line in out {
        text.push_str(&fold(&line));
    }
    text
}

struct Event {
    uid: String,
    sequence: u32,
    date: NaiveDate,
    summary: String,
    description: String,
    category: Option<String>,
    cancelled: bool,
}

impl Event {
    fn write(&self, stamp: &str, out: &mut Vec<String>) {
        out.push("BEGIN:VEVENT".to_owned());
        out.push(format!("UID:{}", escape(&self.uid)));
        out.push(format!("DTSTAMP:{stamp}"));
        out.push(format!("SEQUENCE:{}", self.sequence));
        out.push(format!("DTSTART;VALUE=DATE:{}", self.date.format("%Y%m%d")));
        // All-day events end (exclusively) on the next day.
        let end = self
            .date
            .checked_add_days(Days::new(1))
            .unwrap_or(self.date);
        out.push(format!("DTEND;VALUE=DATE:{}", end.format("%Y%m%d")));
        out.push(format!("SUMMARY:{}", escape(&self.summary)));
        if !self.description.is_empty() {
            out.push(format!("DESCRIPTION:{}", escape(&self.description)));
        }
        if let Some(category) = &self.category {
            out.push(format!("CATEGORIES:{}", escape(category)));
        }
        out.push("TRANSP:TRANSPARENT".to_owned());
        let status = if self.cancelled {
            "CANCELLED"
        } else {
            "CONFIRMED"
        };
        out.push(format!("STATUS:{status}"));
        out.push("END:VEVENT".to_owned());
    }
}

/// The person `?owner=` names: a stakeholder id or a name, and whichever of the two the
/// stakeholder list adds, so a milestone owned by id and one owned by the same name both count.
struct Person {
    ids: Vec<String>,
    names: Vec<String>,
}

impl Person {
    fn find(plan: &Plan, wanted: &str) -> Self {
        let mut person = Person {
            ids: vec![wanted.to_owned()],
            names: vec![wanted.to_lowercase()],
        };
        for stakeholder in &plan.stakeholders {
            let name = stakeholder.name.as_deref().unwrap_or_default();
            if stakeholder.id == wanted || name.eq_ignore_ascii_case(wanted) {
                person.ids.push(stakeholder.id.clone());
                person.names.push(name.to_lowercase());
            }
        }
        person
    }

    fn owns(&self, milestone: &Milestone) -> bool {
        milestone.owner.as_ref().is_some_and(|owner| {
            owner
                .stakeholder_id
                .as_ref()
                .is_some_and(|id| self.ids.contains(id))
                || self.names.contains(&owner.name.to_lowercase())
        })
    }
}

fn describe(plan: &Plan, milestone: &Milestone) -> String {
    let mut text = String::new();
    if let Some(owner) = &milestone.owner {
        let _ = writeln!(text, "Owner: {}", owner.name);
    }
    if let Some(side) = milestone.side {
        let _ = writeln!(text, "Side: {}", side.as_str());
    }
    let status = milestone.status.map_or("unknown", Status::as_str);
    let _ = writeln!(text, "Status: {}", status.replace('_', " "));
    let waits: Vec<_> = milestone
        .depends_on
        .iter()
        .map(|id| {
            plan.milestone(id)
                .and_then(|m| m.title.as_deref())
                .unwrap_or(id)
        })
        .collect();
    if !waits.is_empty() {
        let _ = writeln!(text, "Waits for: {}", waits.join("; "));
    }
    if let Some(reason) = &milestone.slip_reason {
        let _ = writeln!(text, "Last date change: {reason}");
    }
    if let Some(notes) = &milestone.notes {
        let _ = writeln!(text, "{notes}");
    }
    text.trim_end().to_owned()
}

/// TEXT value escaping (RFC 5545 §3.3.11).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line into pieces of at most 75 octets (never inside a character), each
/// continuation starting with a space, every line ending in CRLF (RFC 5545 §3.1).
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_long_lines_fold_without_splitting_characters() {
        assert_eq!(escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let folded = fold(&long);
        for line in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= 75, "{} octets", line.len());
        }
        let unfolded = folded.replace("\r\n ", "");
        assert_eq!(unfolded.trim_end(), long);
    }

    #[test]
    fn a_title_with_line_breaks_separators_and_length_stays_one_folded_property() {
        let title = format!(
            "Sign\r\nEND:VEVENT\r\nBEGIN:VEVENT\nSUMMARY:evil; a, b\\{}",
            "x".repeat(100)
        );
        let mut plan = Plan::default();
        plan.milestones.push(Milestone {
            id: "m1".into(),
            title: Some(title),
            workstream: None,
            side: None,
            owner: None,
            due: NaiveDate::from_ymd_opt(2027, 4, 1),
            status: None,
            depends_on: Vec::new(),
            notes: None,
            slip_reason: None,
            order: None,
        });
        let moves = BTreeMap::new();
        let feed = calendar(
            &plan,
            &CalendarInput {
                plan_id: "p",
                moves: &moves,
                go_live_moves: 0,
                now: DateTime::<Utc>::UNIX_EPOCH,
                owner: None,
            },
        );
        assert!(feed.ends_with("\r\n"));
        let lines: Vec<_> = feed.split("\r\n").filter(|l| !l.is_empty()).collect();
        for line in &lines {
            assert!(line.len() <= 75, "{line:?}");
            assert!(!line.contains(['\r', '\n']), "{line:?}");
        }
        assert_eq!(lines.iter().filter(|l| **l == "BEGIN:VEVENT").count(), 1);
        let unfolded = feed.replace("\r\n ", "");
        let summary = unfolded
            .split("\r\n")
            .find(|l| l.starts_with("SUMMARY:"))
            .unwrap();
        assert_eq!(
            summary,
            format!(
                "SUMMARY:Sign\\nEND:VEVENT\\nBEGIN:VEVENT\\nSUMMARY:evil\\; a\\, b\\\\{}",
                "x".repeat(100)
            )
        );
    }
}
