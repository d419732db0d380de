//! Names of the document schema (`docs/schema.md`): the contract between every client and the
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

/// The schema version new plans are written in (`meta.schemaVersion`). A document without the
/// field is version 1.
pub const SCHEMA_VERSION: u32 = 2;

/// Fields of the `meta` root.
pub mod meta {
    pub const TITLE: &str = "title";
    pub const BUYER_ORG: &str = "buyerOrg";
    pub const SELLER_ORG: &str = "sellerOrg";
    pub const GO_LIVE: &str = "goLive";
    /// Why this date matters to the buyer (prose; never touched by a move).
    pub const GO_LIVE_REASON: &str = "goLiveReason";
    /// Why go-live last moved: written with `goLive` in one transaction (v2).
    pub const GO_LIVE_SLIP_REASON: &str = "goLiveSlipReason";
    pub const COST_OF_INACTION: &str = "costOfInaction";
    pub const OBJECTIVE: &str = "objective";
    /// `2` from schema v2 on; absent in v1 documents.
    pub const SCHEMA_VERSION: &str = "schemaVersion";
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

/// Fields of a stakeholder entry.
pub mod stakeholder {
    pub const NAME: &str = "name";
    pub const TITLE: &str = "title";
    pub const SIDE: &str = "side";
    pub const ROLE: &str = "role";
    pub const NOTES: &str = "notes";
    /// The seller's judgment of the person's say in the decision. In the internal document
    /// from schema v2 on; a v1 plan document held it in the shared stakeholder.
    pub const POWER: &str = "power";
    /// The seller's judgment of how engaged the person is (internal from v2 on, as `power`).
    pub const ENGAGEMENT: &str = "engagement";
    /// The seller's private notes on the person (internal document only).
    pub const PRIVATE_NOTES: &str = "notes";
}

/// Stakeholder fields that are the seller's judgments: they live only in the internal document
/// from schema v2 on, and nothing a buyer can read may carry them.
pub const SELLER_JUDGMENTS: [&str; 2] = [stakeholder::POWER, stakeholder::ENGAGEMENT];

/// Root of the internal document holding the seller's view of each stakeholder, keyed by the
/// same ids as the plan's `stakeholders`: `power`, `engagement`, `notes` (private).
pub const INTERNAL_STAKEHOLDERS: &str = "stakeholders";

/// Fields people write prose into: `Y.Text` from schema v2 on (concurrent edits merge
/// character by character). `(root, field)`; a collection's root names its entries' fields.
/// Everything else (dates, enumerations, ids, owners, `order`, slip reasons) stays a plain
/// value. Readers accept both shapes, since v1 strings remain in old logs.
pub const PROSE: [(&str, &str); 16] = [
    (META, meta::TITLE),
    (META, meta::GO_LIVE_REASON),
    (META, meta::COST_OF_INACTION),
    (META, meta::OBJECTIVE),
    (OBJECTIVES, "text"),
    (OBJECTIVES, "metric"),
    (STAKEHOLDERS, stakeholder::TITLE),
    (STAKEHOLDERS, stakeholder::NOTES),
    (MILESTONES, milestone::TITLE),
    (MILESTONES, milestone::NOTES),
    (CRITERIA, "text"),
    (CRITERIA, "quote"),
    (RISKS, "text"),
    (RISKS, "mitigation"),
    (SUCCESS, "definition"),
    (SUCCESS, "metrics"),
];

/// The prose fields of a root (or of an entry of a collection root). Writers create each as an
/// empty `Y.Text` with its map: a text created by two people at once competes for its key,
/// and what was typed into the losing one would be lost.
pub fn prose_fields(root: &str) -> impl Iterator<Item = &'static str> + '_ {
    PROSE
        .iter()
        .filter(move |(r, _)| *r == root)
        .map(|(_, field)| *field)
}

/// Whether a field of a root (or of an entry of a collection root) is prose (`Y.Text` in v2).
pub fn is_prose(root: &str, field: &str) -> bool {
    PROSE.iter().any(|&(r, f)| r == root && f == field)
}

/// The date format of every date field: ISO `YYYY-MM-DD`.
pub const DATE_FORMAT: &str = "%Y-%m-%d";
