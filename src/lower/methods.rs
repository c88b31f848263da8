//! Graphs nested in a node (a loop's body, a conditional's branches) become methods of the
//! model. They are lowered by a lowerer of their own that shares the module's layers, buffers,
//! attribute names and stubs, and written once every stub call of the model is known.

use super::conds::PendingCond;
use super::loops::PendingLoop;
use super::{BodyItem, Lowerer};
use crate::ir::Graph;
use crate::ops::contract::OpResult;
use crate::py::{Assign, FunctionDef};

/// A method lowered but not yet written.
pub(super) enum Pending {
    Loop(PendingLoop),
    Cond(PendingCond),
}

impl Pending {
    /// The method, with `stmts` turning items into statements.
    pub(super) fn method(self, stmts: &dyn Fn(Vec<BodyItem>) -> Vec<Assign>) -> FunctionDef {
        match self {
            Pending::Loop(l) => l.method(stmts),
            Pending::Cond(c) => c.method(stmts),
        }
    }
}

impl<'a> Lowerer<'a> {
    /// Runs `lower` on a lowerer of `graph` (named `source` in TF) that shares this one's module;
    /// on failure nothing of it stays in the module.
    pub(super) fn nested<T>(
        &mut self,
        graph: &'a Graph,
        source: &str,
        lower: impl FnOnce(&mut Lowerer<'a>) -> OpResult<T>,
    ) -> OpResult<T> {
        let mut inner = Lowerer::new(
            graph,
            std::mem::take(&mut self.module),
            std::mem::take(&mut self.attr_names),
            std::mem::take(&mut self.stubs),
        );
        inner.loop_name = source.to_string();
        inner.tf_named_layers = inner.layer_scopes_named_like_tf();
        // Values in a loop's body are named as `forward`'s are: by the shortest tail of their
        // scope that tells them apart (`lstm_cell`, not `stacked_rnn_cells_lstm_cell`).
        let nodes: Vec<_> = graph.g.node_indices().collect();
        inner.strip_call_suffix =
            self.strip_call_suffix || inner.every_scope_has_call_suffix(&nodes);
        inner.call_collisions = inner.call_collisions(&nodes);
        inner.numbered_as_holders = inner.inner_layers_numbered_as_holders(&nodes);
        inner.unnamed_containers = inner.unnamed_containers(&nodes);
        inner.short_names = inner.short_scope_names(&nodes);
        let marks =
            (inner.module.layers.len(), inner.module.buffers.len(), inner.module.weights.len());
        let result = lower(&mut inner);
        self.module = std::mem::take(&mut inner.module);
        self.attr_names = std::mem::take(&mut inner.attr_names);
        self.stubs = std::mem::take(&mut inner.stubs);
        let value = result.inspect_err(|_| {
            self.module.layers.truncate(marks.0);
            self.module.buffers.truncate(marks.1);
            self.module.weights.truncate(marks.2);
        })?;
        for (op, k) in std::mem::take(&mut inner.summary.translated) {
            *self.summary.translated.entry(op).or_default() += k;
        }
        self.summary.stubs_seen += inner.summary.stubs_seen;
        // Methods nested in this one come first in the file.
        self.methods.append(&mut inner.methods);
        Ok(value)
    }
}
