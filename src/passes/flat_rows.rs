//! Ops on each row of a value flattened to a matrix run on the value itself. Hand-written TF
//! flattens before a dense layer and restores the leading axes after it (GPT-2's `conv1d`,
//! BERT's `reshape_to_matrix`, because `tf.matmul` wants matrices):
//!
//! ```text
//! f = Reshape(a [B, T, C], [-1, C])        // or a [B, T, H, D] with H·D = C
//! y = per-row ops on f (MatMul by a kernel, bias, activation)  [B·T, F]
//! out = Reshape(y, [B, T, F])              // or [B, T, H', D'] with H'·D' = F
//! ```
//!
//! `nn.Linear` multiplies the last axis of any rank, as a person writes it: the ops run on
//! `a` (its trailing axes merged first where it had more), and `out` reshapes only what it
//! still splits. The leading sizes must provably be `a`'s own: equal numbers, or run-time
//! sizes [`SizeForest`] proves equal.

use petgraph::stable_graph::NodeIndex;

use super::pattern::{add_op, const_ints, read_sizes, row_slot, rows_on};
use super::simplify::target_dims;
use super::sizes::SizeForest;
use crate::error::Result;
use crate::ir::{Dim, Graph, Node, Partial, ValueInfo, ValueRef};
use crate::tensor::Tensor;

/// The per-row ops from `v` back to the reshape that flattened their input, last first:
/// `(node, slot the row value enters by)`, and that reshape. Each value read only by the
/// next op, so that rebuilding the ops leaves nothing computed twice.
fn rows(g: &Graph, mut v: ValueRef) -> Option<(Vec<(NodeIndex, usize)>, NodeIndex)> {
    let mut ops = Vec::new();
    loop {
        let node = g.node(v.node);
        // The flattening reshape may have other readers (the query's, key's and value's
        // projections of one matrix).
        if node.op == "Reshape" && v.port == 0 && !ops.is_empty() {
            return Some((ops, v.node));
        }
        if v.port != 0 || g.use_count(v) != 1 || ops.len() >= 16 {
            return None;
        }
        let slot = row_slot(g, v.node)?;
        ops.push((v.node, slot));
        v = g.inputs(v.node)[slot];
    }
}

/// `x` when `v` is `Transpose(x, identity)` (as `tf.tensordot` writes it), else `v` itself.
fn through_identity_transpose(g: &Graph, v: ValueRef) -> ValueRef {
    let n = g.node(v.node);
    if v.port == 0 && n.op == "Transpose" {
        let i = g.inputs(v.node);
        if let Some(perm) = i.get(1).and_then(|&p| const_ints(g, p))
            && perm.iter().enumerate().all(|(k, &p)| p == k as i64)
        {
            return i[0];
        }
    }
    v
}

fn product(dims: &[Option<usize>]) -> Option<usize> {
    dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d?))
}

/// A plan for the reshape `out`: run the rows on `a` with its first `lead` axes kept.
struct Plan {
    a: ValueRef,
    flat: NodeIndex,
    /// The row length.
    c: usize,
    lead: usize,
    ops: Vec<(NodeIndex, usize)>,
}

fn plan(g: &Graph, forest: &SizeForest, out: NodeIndex) -> Option<Plan> {
    let inputs = g.inputs(out);
    let (ops, flat) = rows(g, *inputs.first()?)?;
    let a = through_identity_transpose(g, *g.inputs(flat).first()?);
    let a_shape = g.info(a).shape?;
    // The row length: the flattened matrix's, or (its target computed at run time) the
    // length the first op's kernel takes.
    let (first, _) = *ops.last()?;
    let kernel = || {
        let w = g.inputs(first).get(1).and_then(|&w| g.const_value(w))?;
        (g.node(first).op == "MatMul" && w.rank() == 2).then(|| w.shape[0])
    };
    let f = g.info(ValueRef { node: flat, port: 0 }).shape;
    if f.as_ref().is_some_and(|f| f.len() != 2) || a_shape.len() < 2 {
        return None;
    }
    let c = f.and_then(|f| f[1]).or_else(kernel)?;
    let fout = g.info(*inputs.first()?).dim(1)?;
    let target = target_dims(g, *inputs.get(1)?)?;
    // Leading axes of `out` that are `a`'s: at most one left to -1 (the count fixes it).
    let same = |k: usize, d: Dim| match d {
        Dim::Known(v) => a_shape[k].is_some_and(|s| s as i64 == v),
        Dim::Of(u, axis) => forest.root((u, axis)) == forest.root((a, k)),
        Dim::Unknown => false,
    };
    let mut free = 0;
    let mut lead = 0;
    let mut best = None;
    while lead + 1 < a_shape.len().min(target.len()) {
        let d = target[lead];
        if d == Dim::Known(-1) {
            free += 1;
        } else if !same(lead, d) {
            break;
        }
        lead += 1;
        // The rest of `a` is the row (C) and the rest of `out` is a known split of F.
        let rest: Option<Vec<Option<usize>>> = target[lead..]
            .iter()
            .map(|d| d.known().and_then(|v| usize::try_from(v).ok()).map(Some))
            .collect();
        let splits = rest.is_some_and(|r| product(&r) == Some(fout));
        // With `out`'s leading sizes provably `a`'s, counting elements shows that the rest of
        // `a` holds `c` even where its sizes are unknown (`a` is `[B, T, ?]`). So it does
        // where one is left to -1 if the rest is one axis a kernel multiplies: `nn.Linear`
        // checks that it is `c` long (Keras' tensordot, its axis unknown to shape inference,
        // restored to `[-1, 20, 16]`).
        let row = match product(&a_shape[lead..]) {
            Some(n) => n == c,
            None => free == 0 || (a_shape.len() == lead + 1 && kernel().is_some()),
        };
        if free <= 1 && row && splits {
            best = Some(lead);
        }
    }
    Some(Plan { a, flat, c, lead: best?, ops })
}

/// A reshape of `x` to `dims` (with at most one unknown size, written -1, or sizes read at
/// run time from `x` itself), named `name`.
fn reshape(
    g: &mut Graph,
    x: ValueRef,
    dims: Vec<Dim>,
    info: ValueInfo,
    name: String,
    ordinal: usize,
) -> ValueRef {
    let unknown = dims.iter().filter(|d| !matches!(d, Dim::Known(v) if *v >= 0)).count();
    let values: Vec<i64> = dims.iter().map(|d| d.known().unwrap_or(-1)).collect();
    let t = Tensor::from_i64(vec![values.len()], &values);
    let target = g.add_node(Node::constant(format!("{name}/shape"), t, ordinal));
    if unknown > 1 {
        g.set_partial(target, Partial { scalar: false, values: dims.clone() });
    }
    let target_of = ValueRef { node: target, port: 0 };
    let n = add_op(g, Node::new(name, "Reshape", ordinal), &[x, target_of], info);
    if unknown > 1 {
        read_sizes(g, n.node, &dims, 2);
    }
    n
}

fn apply(g: &mut Graph, out: NodeIndex, p: Plan) {
    let a_info = g.info(p.a);
    let Some(a_shape) = a_info.shape.clone() else { return };
    let lead = &a_shape[..p.lead];
    let mut v = p.a;
    if a_shape.len() != p.lead + 1 {
        // `a`'s trailing axes merged into the row: `[B, T, H, D]` → `[B, T, H·D]`.
        let mut dims: Vec<Dim> = lead
            .iter()
            .enumerate()
            .map(|(k, d)| d.map_or(Dim::Of(p.a, k), |d| Dim::Known(d as i64)))
            .collect();
        dims.push(Dim::Known(p.c as i64));
        if dims.iter().filter(|d| matches!(d, Dim::Of(..))).count() == 1 {
            // One run-time size: -1 says it.
            dims.iter_mut().filter(|d| matches!(d, Dim::Of(..))).for_each(|d| *d = Dim::Known(-1));
        }
        let mut shape = lead.to_vec();
        shape.push(Some(p.c));
        let info = ValueInfo { dtype: a_info.dtype, shape: Some(shape) };
        let first = g.node(p.ops.last().map_or(out, |o| o.0));
        let (name, ordinal) = (format!("{}/rows", first.name), first.ordinal);
        v = reshape(g, p.a, dims, info, name, ordinal);
    }
    // The ops again on `v`, keeping their names (the layer's).
    let v = rows_on(g, &p.ops, v, lead);
    let restored = ValueRef { node: out, port: 0 };
    let mut dead: Vec<NodeIndex> = p.ops.iter().map(|o| o.0).collect();
    if g.info(restored).shape.is_some_and(|s| s.len() == p.lead + 1) {
        g.replace_uses(restored, v);
        dead.insert(0, out);
    } else {
        g.set_input(out, 0, v);
    }
    // What the rows replaced goes now, so that the passes after this one count the readers
    // the graph really has (a single-reader check would miss the old chain's).
    for n in dead {
        g.g.remove_node(n);
    }
    if g.use_count(ValueRef { node: p.flat, port: 0 }) == 0 {
        g.g.remove_node(p.flat);
    }
}

pub fn unflatten_rows(g: &mut Graph) -> Result<()> {
    let forest = SizeForest::build(g);
    let mut reshapes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Reshape").collect();
    reshapes.sort_by_key(|&n| g.node(n).ordinal);
    for n in reshapes {
        if !g.g.contains_node(n) {
            continue;
        }
        if let Some(p) = plan(g, &forest, n) {
            apply(g, n, p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::passes::fold_and_infer;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// GPT-2's `conv1d`: `[B, T, C]` flattened to `[B·T, C]`, a kernel and a bias, an
    /// activation, and the leading sizes restored from the input's own: one `nn.Linear` on
    /// the sequence.
    #[test]
    fn a_dense_layer_between_flatten_and_restore_runs_on_the_sequence() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 8]);
        let flat = g.constant("fc/flat", int_tensor(&[2], &[-1, 8]));
        let f = g.op("fc/Reshape", "Reshape", &[x, flat], &[]);
        let w = g.variable("fc/w", weights(&[8, 6]));
        let m = g.op("fc/MatMul", "MatMul", &[f, w], &[]);
        let b = g.variable("fc/b", weights(&[6]));
        let y = g.op("fc/add", "AddV2", &[m, b], &[]);
        let y = g.op("fc/Relu", "Relu", &[y], &[]);
        let (batch, time) = (g.size_of("b", x, 0), g.size_of("t", x, 1));
        let six = g.constant("fc/six", int_tensor(&[], &[6]));
        let target = g.op("fc/stack", "Pack", &[batch, time, six], &[("N", int(3))]);
        let out = g.op("fc/Reshape_1", "Reshape", &[y, target], &[]);
        assert_snapshot!(g.lower(&[out]), @"
        self.fc = nn.Linear(8, 6)
        # fc.weight: [6, 8]
        # fc.bias: [6]
        ---
        x = self.fc(x)
        x = F.relu(x, inplace=True)
        return x
        ");
    }

    /// The heads merged (`[B, T, H, D]` → `[B·T, H·D]`) before the projection and split
    /// again after it (`[B, T, H, D']`): the projection reads `x.flatten(2)` and its output is
    /// unflattened.
    #[test]
    fn merged_heads_are_flattened_and_split_again() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 2, 4]);
        let flat = g.constant("proj/flat", int_tensor(&[2], &[-1, 8]));
        let f = g.op("proj/Reshape", "Reshape", &[x, flat], &[]);
        let w = g.variable("proj/w", weights(&[8, 6]));
        let m = g.op("proj/MatMul", "MatMul", &[f, w], &[]);
        let (batch, time) = (g.size_of("b", x, 0), g.size_of("t", x, 1));
        let (two, three) = (
            g.constant("proj/two", int_tensor(&[], &[2])),
            g.constant("proj/three", int_tensor(&[], &[3])),
        );
        let target = g.op("proj/stack", "Pack", &[batch, time, two, three], &[("N", int(4))]);
        let out = g.op("proj/Reshape_1", "Reshape", &[m, target], &[]);
        assert_snapshot!(g.lower(&[out]), @"
        self.fc = nn.Linear(8, 6, bias=False)
        # fc.weight: [6, 8]
        ---
        h = x.flatten(2)
        h = self.fc(h).unflatten(2, (2, 3))
        return h
        ");
    }

    /// `tf.tensordot(x, W, 1)` on `[B, T, 8]` as Keras' Dense writes it (an identity
    /// transpose first): one MatMul on `x`.
    #[test]
    fn a_tensordot_is_one_matmul() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 5, 8]);
        let perm = g.constant("dense/perm", int_tensor(&[3], &[0, 1, 2]));
        let t = g.op("dense/transpose", "Transpose", &[x, perm], &[]);
        let flat = g.constant("dense/flat", int_tensor(&[2], &[-1, 8]));
        let back = g.constant("dense/back", int_tensor(&[3], &[2, 5, 4]));
        let w = g.constant("dense/kernel", weights(&[8, 4]));
        let r1 = g.op("dense/Reshape", "Reshape", &[t, flat], &[]);
        let m = g.op("dense/MatMul", "MatMul", &[r1, w], &[]);
        let y = g.op("dense/Reshape_1", "Reshape", &[m, back], &[]);
        let passes: [fn(&mut crate::ir::Graph) -> crate::error::Result<()>; 2] =
            [fold_and_infer, super::unflatten_rows];
        assert_snapshot!(g.after_passes(&[y], &passes), @"
        inputs: x:0
        outputs: dense/MatMul:0
        x = Placeholder -> float32 [2, 5, 8]
        dense/kernel = Const -> float32 [8, 4]
        dense/MatMul = MatMul(x:0, dense/kernel:0) -> float32 [2, 5, 4]
        ");
    }

    /// Keras' tensordot on `[?, 20, ?]` (the contracted axis unknown to shape inference, its
    /// flattening computed at run time) restored to `[-1, 20, 16]`: the kernel fixes the
    /// axis at 20, so the -1 is the batch: one `nn.Linear`.
    #[test]
    fn a_kernel_fixes_an_unknown_row_length() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 20, -1]);
        let (m, c) = (g.size_of("m", x, 0), g.size_of("c", x, 2));
        let twenty = g.constant("d/twenty", int_tensor(&[], &[20]));
        let rows = g.op("d/rows", "Mul", &[m, twenty], &[]);
        let flat = g.op("d/flat", "Pack", &[rows, c], &[("N", int(2))]);
        let f = g.op("d/Reshape", "Reshape", &[x, flat], &[]);
        let w = g.variable("d/w", weights(&[20, 16]));
        let y = g.op("d/MatMul", "MatMul", &[f, w], &[]);
        let back = g.constant("d/back", int_tensor(&[3], &[-1, 20, 16]));
        let out = g.op("d/Reshape_1", "Reshape", &[y, back], &[]);
        assert_snapshot!(g.lower(&[out]), @"
        self.fc = nn.Linear(20, 16, bias=False)
        # fc.weight: [16, 20]
        ---
        x = self.fc(x)
        return x
        ");
    }

    /// Restored to other leading sizes (`[T, B, F]` from a `[B, T, C]`): left as it is.
    #[test]
    fn other_leading_sizes_are_not_the_rows() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1, 8]);
        let flat = g.constant("fc/flat", int_tensor(&[2], &[-1, 8]));
        let f = g.op("fc/Reshape", "Reshape", &[x, flat], &[]);
        let w = g.variable("fc/w", weights(&[8, 6]));
        let m = g.op("fc/MatMul", "MatMul", &[f, w], &[]);
        let (batch, time) = (g.size_of("b", x, 0), g.size_of("t", x, 1));
        let six = g.constant("fc/six", int_tensor(&[], &[6]));
        let target = g.op("fc/stack", "Pack", &[time, batch, six], &[("N", int(3))]);
        let out = g.op("fc/Reshape_1", "Reshape", &[m, target], &[]);
        assert_snapshot!(g.lower(&[out]), @"
        self.fc = nn.Linear(8, 6, bias=False)
        # fc.weight: [6, 8]
        ---
        h = x.reshape(-1, 8)
        h = self.fc(h).reshape(x.shape[1], x.shape[0], 6)
        return h
        ");
    }
}
