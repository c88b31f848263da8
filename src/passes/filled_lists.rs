//! A list reserved for `n` items, each of which is then set at a constant index before the
//! list is stacked, is the stack of those items. A loop unrolled when traced (RWKV-7's delta
//! rule runs a Python `for` over the sequence, writing each step's output to a
//! `TensorArray`) leaves one `TensorListSetItem` per step, each a new list:
//!
//! ```text
//! TensorListStack(SetItem(...SetItem(SetItem(TensorListReserve(n), 0, y0), 1, y1)..., n-1, yn))
//! ```
//!
//! which would read as `n` list rebuilds (`[*l[:3], y3, *l[4:]]`). It becomes
//! `Pack(y0, ..., yn)`: `torch.stack([y0, y1, ...])`. A list read anywhere else stays as it is,
//! for its other readers.

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{const_ints, replace_with_op};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;

pub fn stack_filled_lists(g: &mut Graph) -> Result<()> {
    let mut stacks: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "TensorListStack").collect();
    stacks.sort_by_key(|&n| g.node(n).ordinal);
    for s in stacks {
        let Some(&list) = g.inputs(s).first() else { continue };
        let Some(items) = filled_items(g, list) else { continue };
        let dtype = g.node(s).attrs.get("element_dtype").cloned();
        let pack = replace_with_op(g, s, "Pack", &items);
        let attrs = &mut g.node_mut(pack).attrs;
        let int = |i: usize| AttrValue { value: Some(Value::I(i as i64)) };
        attrs.insert("N".into(), int(items.len()));
        attrs.insert("axis".into(), int(0));
        attrs.extend(dtype.map(|d| ("T".to_string(), d)));
    }
    Ok(())
}

/// The items of `list`, in index order, when it is a `TensorListReserve` of a constant `n`
/// items with each of `0..n` then set at a constant index (the last write to an index wins).
fn filled_items(g: &Graph, mut list: ValueRef) -> Option<Vec<ValueRef>> {
    let mut items: BTreeMap<usize, ValueRef> = BTreeMap::new();
    // Each step goes one node back; a graph has no cycles, but a hostile one is not walked
    // for ever.
    for _ in 0..=g.g.node_count() {
        let inputs = g.inputs(list.node);
        match (g.node(list.node).op.as_str(), inputs.as_slice()) {
            ("TensorListSetItem", &[from, index, item]) => {
                let &[k] = const_ints(g, index)?.as_slice() else { return None };
                // Walking back from the stack, the first write met at an index is its last.
                items.entry(usize::try_from(k).ok()?).or_insert(item);
                list = from;
            }
            ("TensorListReserve", &[_, n]) => {
                let &[n] = const_ints(g, n)?.as_slice() else { return None };
                let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
                // Set indices are distinct keys: `n` of them below `n` are every index.
                let every = items.len() == n && items.keys().all(|&k| k < n);
                return every.then(|| items.into_values().collect());
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A list of `n` float items reserved, then set at `writes` (index, input) in order, then
    /// stacked.
    fn written(n: i32, writes: &[(i32, usize)]) -> String {
        let mut g = TestGraph::new();
        let xs: Vec<_> = ["a", "b", "c"].iter().map(|name| g.input(name, &[-1, 4])).collect();
        let shape = g.constant("shape", Tensor::from_i32(vec![2], &[-1, 4]));
        let count = g.constant("n", Tensor::from_i32(vec![], &[n]));
        let f32 = [("element_dtype", dtype(DType::F32))];
        let mut list = g.op("reserve", "TensorListReserve", &[shape, count], &f32);
        for (w, &(k, x)) in writes.iter().enumerate() {
            let k = g.constant(&format!("k{w}"), Tensor::from_i32(vec![], &[k]));
            list = g.op(&format!("set{w}"), "TensorListSetItem", &[list, k, xs[x]], &f32);
        }
        let attrs = [("element_dtype", dtype(DType::F32)), ("num_elements", int(-1))];
        let stack = g.op("stack", "TensorListStack", &[list, shape], &attrs);
        g.lower(&[stack])
    }

    #[test]
    fn a_list_set_at_every_index_is_the_stack_of_its_items() {
        // Set out of order, and index 0 twice: its last item is the one stacked.
        assert_snapshot!(written(3, &[(0, 0), (2, 2), (1, 1), (0, 2)]), @"
        ---
        x = torch.stack([c, b, c], dim=0)
        return x
        ");
    }

    #[test]
    fn a_list_with_an_index_never_set_stays_a_list() {
        assert_snapshot!(written(3, &[(0, 0), (2, 2)]), @"
        ---
        x = [None] * 3
        x = [a, *x[1:]]
        x = [*x[:2], c, *x[3:]]
        x = torch.stack(x)
        return x
        ");
    }
}
