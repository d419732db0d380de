//! Built-in plan templates, worked back from go-live: each milestone is an offset in days before
//! the buyer's go-live date, owned by a side, and waits for real predecessors. A plan created
//! from a template gets its due dates by subtracting the offsets from go-live.

use chrono::{Datelike, Days, NaiveDate};
use serde::Serialize;

use crate::model::MilestoneSide::{self, Buyer, Joint, Seller};

/// One milestone of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMilestone {
    /// Unique within the template; the milestone's id in the plan is `ms-{key}`.
    pub key: &'static str,
    pub title: &'static str,
    pub workstream: &'static str,
    pub side: MilestoneSide,
    /// Days before go-live the milestone is due (0 = on go-live).
    pub days_before_go_live: u32,
    /// Keys of the milestones it waits for.
    pub depends_on: &'static [&'static str],
}

/// A template: a named set of milestones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub milestones: &'static [TemplateMilestone],
}

impl Template {
    /// The plan id of a template milestone.
    pub fn milestone_id(key: &str) -> String {
        format!("ms-{key}")
    }

    /// The due date of a template milestone for a go-live date (`None` when it would fall
    /// before year 0, which the schema's `YYYY-MM-DD` cannot hold).
    pub fn due(milestone: &TemplateMilestone, go_live: NaiveDate) -> Option<NaiveDate> {
        go_live
            .checked_sub_days(Days::new(milestone.days_before_go_live.into()))
            .filter(|due| due.year() >= 0)
    }
}

const fn m(
    key: &'static str,
    title: &'static str,
    workstream: &'static str,
    side: MilestoneSide,
    days_before_go_live: u32,
    depends_on: &'static [&'static str],
) -> TemplateMilestone {
    TemplateMilestone {
        key,
        title,
        workstream,
        side,
        days_before_go_live,
        depends_on,
    }
}

const TECH: &str = "technical_validation";
const SECURITY: &str = "security_compliance";
const BUSINESS: &str = "business_case";
const LEGAL: &str = "legal_procurement";
const IMPLEMENTATION: &str = "implementation";

/// Every built-in template.
#[rustfmt::skip]
pub const TEMPLATES: &[Template] = &[
    Template {
        id: "enterprise",
        name: "Enterprise",
        description: "A four-month enterprise purchase: proof of value, security review, business case, legal and procurement, then implementation.",
        milestones: &[
            m("kickoff", "Confirm goals, success metrics and the go-live date", BUSINESS, Joint, 120, &[]),
            m("pov-scope", "Agree proof-of-value scope and exit criteria", TECH, Joint, 110, &["kickoff"]),
            m("security-questionnaire", "Send the security questionnaire and data-flow questions", SECURITY, Buyer, 105, &["kickoff"]),
            m("security-answers", "Return the questionnaire, SOC 2 report and pen-test summary", SECURITY, Seller, 90, &["security-questionnaire"]),
            m("pov-run", "Run the proof of value with pilot users", TECH, Seller, 85, &["pov-scope"]),
            m("pov-readout", "Proof-of-value readout against the exit criteria", TECH, Joint, 75, &["pov-run"]),
            m("security-review", "Security and privacy review signed off", SECURITY, Buyer, 65, &["security-answers"]),
            m("business-case", "Business case with ROI agreed by the champion", BUSINESS, Joint, 60, &["pov-readout"]),
            m("contract-sent", "Send the MSA, DPA and order form for legal review", LEGAL, Seller, 55, &["pov-readout"]),
            m("budget-approval", "Economic buyer approves the business case and budget", BUSINESS, Buyer, 50, &["business-case"]),
            m("legal-agreed", "Legal redlines resolved", LEGAL, Joint, 40, &["contract-sent", "security-review"]),
            m("procurement", "Vendor onboarding and procurement approval", LEGAL, Buyer, 35, &["legal-agreed"]),
            m("signature", "Contract signed", LEGAL, Joint, 30, &["budget-approval", "legal-agreed", "procurement"]),
            m("implementation-plan", "Implementation plan agreed and project team named", IMPLEMENTATION, Joint, 25, &["signature"]),
            m("integrations", "SSO, provisioning and integrations configured", IMPLEMENTATION, Joint, 14, &["implementation-plan"]),
            m("training", "Admin and end-user training delivered", IMPLEMENTATION, Seller, 7, &["integrations"]),
            m("go-live", "Go live", IMPLEMENTATION, Joint, 0, &["training"]),
        ],
    },
    Template {
        id: "mid-market",
        name: "Mid-market",
        description: "A six-week purchase: a hands-on trial, a light security check and an order form.",
        milestones: &[
            m("kickoff", "Confirm goals and the go-live date", BUSINESS, Joint, 45, &[]),
            m("trial", "Hands-on trial with the team", TECH, Seller, 35, &["kickoff"]),
            m("security-check", "Security questionnaire answered", SECURITY, Seller, 30, &["kickoff"]),
            m("business-case", "Business case shared with the budget holder", BUSINESS, Buyer, 25, &["trial"]),
            m("order-form", "Order form sent", LEGAL, Seller, 21, &["business-case"]),
            m("signature", "Order form signed", LEGAL, Buyer, 14, &["order-form", "security-check"]),
            m("onboarding", "Onboarding and setup", IMPLEMENTATION, Joint, 7, &["signature"]),
            m("go-live", "Go live", IMPLEMENTATION, Joint, 0, &["onboarding"]),
        ],
    },
    Template {
        id: "renewal-expansion",
        name: "Renewal / expansion",
        description: "A renewal with expansion to new teams, worked back from the renewal date.",
        milestones: &[
            m("value-review", "Value review: outcomes against last year's goals", BUSINESS, Joint, 90, &[]),
            m("expansion-scope", "Agree the expansion scope (teams, seats, modules)", BUSINESS, Joint, 75, &["value-review"]),
            m("security-refresh", "Annual security re-review", SECURITY, Buyer, 60, &["value-review"]),
            m("adoption-plan", "Adoption plan for the new teams", IMPLEMENTATION, Seller, 55, &["expansion-scope"]),
            m("budget", "Budget confirmed for renewal and expansion", BUSINESS, Buyer, 50, &["expansion-scope"]),
            m("proposal", "Renewal proposal and order form sent", LEGAL, Seller, 40, &["budget"]),
            m("legal", "Amendment reviewed by legal and procurement", LEGAL, Buyer, 25, &["proposal", "security-refresh"]),
            m("signature", "Renewal signed", LEGAL, Joint, 14, &["legal"]),
            m("rollout", "Roll out to the new teams", IMPLEMENTATION, Joint, 0, &["signature", "adoption-plan"]),
        ],
    },
];

/// A built-in template by id.
pub fn template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewPlan, new_plan_update, project_doc};

    #[test]
    fn every_template_ends_on_go_live_and_respects_its_dependencies() {
        for template in TEMPLATES {
            let plan = NewPlan::parse("Rollout", "Buyer", "Seller", "2027-04-01")
                .unwrap()
                .with_template(template.id)
                .unwrap();
            let doc = crate::tests::apply(&new_plan_update(&plan, 3));
            let projected = project_doc(&doc);
            assert_eq!(projected.issues, [], "{}", template.id);
            assert_eq!(projected.milestones.len(), template.milestones.len());
            let last = projected.milestones.iter().filter_map(|m| m.due).max();
            assert_eq!(last, Some(plan.go_live), "{} ends on go-live", template.id);
            for m in &projected.milestones {
                for dep in &m.depends_on {
                    let dep = projected.milestone(dep).unwrap();
                    assert!(
                        dep.due <= m.due,
                        "{}: {} waits for {}",
                        template.id,
                        m.id,
                        dep.id
                    );
                }
            }
            let health = crate::health(
                &projected,
                plan.go_live - chrono::Days::new(200),
                &Default::default(),
            );
            assert_eq!(health.impossible, [], "{}", template.id);
            assert_eq!(health.critical_path.slack_days, Some(0));
        }
    }

    #[test]
    fn template_keys_are_unique() {
        for template in TEMPLATES {
            let mut keys: Vec<_> = template.milestones.iter().map(|m| m.key).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), template.milestones.len(), "{}", template.id);
        }
    }

    #[test]
    fn unknown_templates_and_impossible_go_live_dates_are_refused() {
        let plan = NewPlan::parse("Rollout", "Buyer", "Seller", "2027-04-01").unwrap();
        assert_eq!(
            plan.clone().with_template("smb").unwrap_err(),
            crate::NewPlanError::UnknownTemplate { got: "smb".into() }
        );
        let early = NewPlan::parse("Rollout", "Buyer", "Seller", "0000-01-01").unwrap();
        assert!(matches!(
            early.with_template("enterprise"),
            Err(crate::NewPlanError::TemplateOutOfRange { .. })
        ));
    }
}
