//! Vectors packed from scalars (`Pack` on axis 0), which the slices' bounds are when a graph
//! indexes with a loop counter or an input (see `passes::packed_bounds`).

use super::{Graph, ValueRef};

/// More entries than a tensor has axes: no bound of a slice.
const MAX_ENTRIES: usize = 256;

impl Graph {
    /// The entries `bound` packs into a vector (`Pack` on axis 0), in order: only where every
    /// entry is an integer scalar and some entry is not a constant.
    pub fn packed_entries(&self, bound: ValueRef) -> Option<Vec<ValueRef>> {
        let node = self.node(bound.node);
        if node.op != "Pack" || bound.port != 0 || node.attr_int_or("axis", 0).ok() != Some(0) {
            return None;
        }
        let entries = self.inputs(bound.node);
        if entries.len() > MAX_ENTRIES {
            return None;
        }
        let scalar_int = |v: &ValueRef| {
            let info = self.info(*v);
            info.shape.as_deref() == Some(&[]) && info.dtype.is_some_and(|d| d.is_int())
        };
        let run_time = entries.iter().any(|&v| self.const_value(v).is_none());
        (run_time && entries.iter().all(scalar_int)).then_some(entries)
    }
}
