//! Built without the `cluster` feature: a single node only. These stand in for the types of
//! `cluster.rs` so the server has one shape in both builds; none of them can be made (they
//! have no values), so every path that uses them is unreachable.

use std::sync::Arc;

use mapline_store::{DocRef, Store};
use yrs::sync::AwarenessUpdate;

use crate::App;

/// A node of a cluster: none without the `cluster` feature.
pub enum ClusterNode {}

impl ClusterNode {
    pub async fn health(&self) -> Result<(), String> {
        match *self {}
    }

    pub fn node_id(&self) -> &str {
        match *self {}
    }

    pub async fn claim(&self, _key: &str) -> Result<bool, String> {
        match *self {}
    }
}

pub(crate) enum Presence {}

impl Presence {
    pub(crate) fn new(node: &ClusterNode) -> Self {
        match *node {}
    }

    pub(crate) fn publish(&self, _doc: DocRef, _update: &AwarenessUpdate) {
        match *self {}
    }

    pub(crate) async fn follow(self: Arc<Self>, _app: Arc<App>) {
        match *self {}
    }
}

pub(crate) async fn follow_commands(_app: Arc<App>, node: Arc<ClusterNode>) {
    match *node {}
}

pub(crate) async fn check_history(_app: Arc<App>, node: Arc<ClusterNode>) {
    match *node {}
}

pub(crate) fn spawn_writer(
    node: &ClusterNode,
    _store: Arc<Store>,
    _metrics: Arc<crate::metrics::Metrics>,
    _rooms: Arc<crate::sync::rooms::Rooms>,
) -> std::io::Result<(
    crate::sync::writer::WriterHandle,
    tokio::task::JoinHandle<bool>,
)> {
    match *node {}
}
