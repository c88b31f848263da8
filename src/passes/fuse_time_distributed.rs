//! `TimeDistributed(layer)` as Keras traces it with a static time axis: `Unpack` the sequence,
//! run the same ops with the same weights on every step, `Pack` the results. When every step's
//! ops act on the last axis only (a Dense layer, an activation, a per-feature scale), running
//! them once on the whole sequence is the same computation: one `nn.Linear` instead of one
//! per time step.

use petgraph::stable_graph::NodeIndex;

use super::pattern::{row_slot, rows_on};
use crate::error::Result;
use crate::ir::{Graph, ValueRef};

/// One step's ops, last first: `(node, slot the step's value enters by)`.
type Chain = Vec<(NodeIndex, usize)>;

/// A step of a sequence: `Unpack(x, axis)` output `i`, or `x[i]` as a `StridedSlice` that
/// shrinks axis 0: `(x, axis, i)`.
fn step_of(g: &Graph, v: ValueRef) -> Option<(ValueRef, i64, usize)> {
    let node = g.node(v.node);
    let inputs = g.inputs(v.node);
    match node.op.as_str() {
        "Unpack" => Some((*inputs.first()?, node.attr_int_or("axis", 0).ok()?, v.port)),
        "StridedSlice" if v.port == 0 => {
            for (m, want) in [("shrink_axis_mask", 1), ("begin_mask", 0), ("end_mask", 0)] {
                if node.attr_int_or(m, 0).ok()? != want {
                    return None;
                }
            }
            for m in ["ellipsis_mask", "new_axis_mask"] {
                if node.attr_int_or(m, 0).ok()? != 0 {
                    return None;
                }
            }
            let ints = |k: usize| g.const_value(*inputs.get(k)?)?.to_i64();
            match (ints(1)?.as_slice(), ints(2)?.as_slice(), ints(3)?.as_slice()) {
                ([b], [e], [1]) if *b >= 0 && *e == b + 1 => Some((inputs[0], 0, *b as usize)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// One step's ops from the `Unpack` output back up: `(node, slot of the step value)`, last op
/// first, and the `Unpack` output it starts from.
fn chain(g: &Graph, mut v: ValueRef) -> Option<(Chain, ValueRef)> {
    let mut ops = Vec::new();
    while step_of(g, v).is_none() {
        if v.port != 0 || ops.len() >= 16 || g.use_count(v) != 1 {
            return None;
        }
        let slot = row_slot(g, v.node)?;
        ops.push((v.node, slot));
        v = g.inputs(v.node)[slot];
    }
    Some((ops, v))
}

fn same_op(g: &Graph, a: (NodeIndex, usize), b: (NodeIndex, usize)) -> bool {
    let (na, nb) = (g.node(a.0), g.node(b.0));
    let (ia, ib) = (g.inputs(a.0), g.inputs(b.0));
    a.1 == b.1
        && na.op == nb.op
        && na.attrs == nb.attrs
        && ia.len() == ib.len()
        && ia.iter().zip(&ib).enumerate().all(|(slot, (x, y))| {
            slot == a.1 || (g.const_value(*x).is_some() && g.const_value(*x) == g.const_value(*y))
        })
}

pub fn fuse_time_distributed(g: &mut Graph) -> Result<()> {
    let packs: Vec<NodeIndex> = g.g.node_indices().filter(|&n| g.node(n).op == "Pack").collect();
    for p in packs {
        let Some((chains, source)) = match_pack(g, p) else { continue };
        let x_info = g.info(source);
        let Some(x_shape) = x_info.shape.clone() else { continue };
        // Rebuild step 0's ops on the whole sequence, keeping their names (the layer's).
        let v = rows_on(g, &chains[0], source, &x_shape[..x_shape.len().saturating_sub(1)]);
        g.replace_uses(ValueRef { node: p, port: 0 }, v);
    }
    Ok(())
}

/// `Pack(axis=a)` of the same per-row ops applied to each output of one `Unpack(x, axis=a)`,
/// in order, `a` not the last axis of `x`: the per-step chains and `x`.
fn match_pack(g: &Graph, p: NodeIndex) -> Option<(Vec<Chain>, ValueRef)> {
    let inputs = g.inputs(p);
    let axis = g.node(p).attr_int_or("axis", 0).ok()?;
    let mut chains = Vec::new();
    let mut seq: Option<(ValueRef, i64)> = None;
    for (i, &v) in inputs.iter().enumerate() {
        let (c, s) = chain(g, v)?;
        let (x, a, index) = step_of(g, s)?;
        if index != i || seq.is_some_and(|s| s != (x, a)) || c.is_empty() {
            return None;
        }
        seq = Some((x, a));
        chains.push(c);
    }
    let (source, u_axis) = seq?;
    let shape = g.info(source).shape?;
    let rank = shape.len();
    let norm = |a: i64, r: usize| if a < 0 { a + r as i64 } else { a };
    let a = norm(u_axis, rank);
    if a != norm(axis, rank) || a < 0 || a >= rank as i64 - 1 {
        return None;
    }
    // Every step is taken.
    if shape[a as usize] != Some(inputs.len()) {
        return None;
    }
    let first = &chains[0];
    let same = chains
        .iter()
        .all(|c| c.len() == first.len() && c.iter().zip(first).all(|(&a, &b)| same_op(g, a, b)));
    same.then_some((chains, source))
}

#[cfg(test)]
mod tests {
    use crate::passes::fold_and_infer;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `TimeDistributed(Dense)` over 3 steps: one MatMul on the whole sequence.
    #[test]
    fn the_same_dense_on_every_step_runs_once() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let w = g.constant("td/kernel", weights(&[4, 2]));
        let steps = g.op("td/unstack", "Unpack", &[x], &[("axis", int(1)), ("num", int(3))]);
        let outs: Vec<_> = (0..3)
            .map(|k| {
                let s = TestGraph::port(steps, k);
                let m = g.op(&format!("td/MatMul_{k}"), "MatMul", &[s, w], &[]);
                g.op(&format!("td/Relu_{k}"), "Relu", &[m], &[])
            })
            .collect();
        let y = g.op("td/stack", "Pack", &outs, &[("axis", int(1)), ("N", int(3))]);
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 2] =
            [fold_and_infer, super::fuse_time_distributed];
        assert_snapshot!(g.after_passes(&[y], &passes), @"
        inputs: x:0
        outputs: td/Relu_0:0
        x = Placeholder -> float32 [?, 3, 4]
        td/kernel = Const -> float32 [4, 2]
        td/MatMul_0 = MatMul(x:0, td/kernel:0) -> float32 [?, 3, 2]
        td/Relu_0 = Relu(td/MatMul_0:0) -> float32 [?, 3, 2]
        ");
    }
}
