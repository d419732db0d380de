//! Names of the document schema (DESIGN.md §3): the contract between every client and the
//! server. Change a name here and every deployed client breaks, so these only ever grow.

/// Root map holding the plan's own fields directly (no entries).
pub const META: &str = "meta";
/// Root map of objectives, keyed by id.
pub const OBJECTIVES: &str = "objectives";
/// Root map of stakeholders, keyed by id.
pub const STAKEHOLDERS: &str = "stakeholders";
/// Root map of milestones, keyed by id.
pub const MILESTONES: &str = "milestones";
/// Root map of decision criteria, keyed by id.
pub const CRITERIA: &str = "criteria";
/// Root map of risks, keyed by id.
pub const RISKS: &str = "risks";
/// Root map holding the mutual success definition directly (no entries).
pub const SUCCESS: &str = "success";

/// Every root map, in the order a reader meets them in the plan.
pub const ROOTS: [&str; 7] = [
    META,
    OBJECTIVES,
    STAKEHOLDERS,
    MILESTONES,
    CRITERIA,
    RISKS,
    SUCCESS,
];

/// Fields of the `meta` root.
pub mod meta {
    pub const TITLE: &str = "title";
    pub const BUYER_ORG: &str = "buyerOrg";
    pub const SELLER_ORG: &str = "sellerOrg";
    pub const GO_LIVE: &str = "goLive";
    pub const GO_LIVE_REASON: &str = "goLiveReason";
    pub const COST_OF_INACTION: &str = "costOfInaction";
    pub const OBJECTIVE: &str = "objective";
}

/// Fields of a milestone entry.
pub mod milestone {
    pub const TITLE: &str = "title";
    pub const WORKSTREAM: &str = "workstream";
    pub const SIDE: &str = "side";
    pub const OWNER: &str = "owner";
    pub const DUE: &str = "due";
    pub const STATUS: &str = "status";
    /// A nested Y.Array of milestone ids.
    pub const DEPENDS_ON: &str = "dependsOn";
    pub const NOTES: &str = "notes";
    pub const SLIP_REASON: &str = "slipReason";
    pub const ORDER: &str = "order";
}

/// The date format of every date field: ISO `YYYY-MM-DD`.
pub const DATE_FORMAT: &str = "%Y-%m-%d";
