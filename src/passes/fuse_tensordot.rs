//! A Dense layer on a rank > 2 tensor, as `tf.tensordot` writes it:
//! `Reshape(x, [-1, C]) → MatMul(kernel) → Reshape(·, [..., units])` (possibly with an
//! identity Transpose first), becomes one MatMul on `x`, which `nn.Linear` applies to the
//! last axis directly.

use crate::error::Result;
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::passes::pattern::const_ints;

/// `x` when `v` is `Transpose(x, identity)`, else `v` itself.
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

pub fn fuse_tensordot(g: &mut Graph) -> Result<()> {
    let matmuls: Vec<_> = g.g.node_indices().filter(|&n| g.node(n).op == "MatMul").collect();
    for mm in matmuls {
        let node = g.node(mm);
        if node.attr_bool_or("transpose_a", false).unwrap_or(true)
            || node.attr_bool_or("transpose_b", false).unwrap_or(true)
        {
            continue;
        }
        let inputs = g.inputs(mm);
        let (Some(&r1), Some(&w)) = (inputs.first(), inputs.get(1)) else { continue };
        let Some(units) = g.const_value(w).filter(|t| t.rank() == 2).map(|t| t.shape[1]) else {
            continue;
        };
        if g.node(r1.node).op != "Reshape" || r1.port != 0 || g.use_count(r1) != 1 {
            continue;
        }
        let x = through_identity_transpose(g, g.inputs(r1.node)[0]);
        let Some(xs) = g.info(x).shape else { continue };
        let out = ValueRef { node: mm, port: 0 };
        let consumers = g.consumers(out);
        if consumers.len() != 1 || g.outputs.contains(&out) || xs.len() < 3 {
            continue;
        }
        let r2 = consumers[0].0;
        if g.node(r2).op != "Reshape" {
            continue;
        }
        let r2_out = ValueRef { node: r2, port: 0 };
        let Some(ys) = g.info(r2_out).shape else { continue };
        // Same leading axes, last axis `units`: the reshapes only flatten and restore.
        let same_lead = ys.len() == xs.len()
            && ys[..ys.len() - 1]
                .iter()
                .zip(&xs[..xs.len() - 1])
                .all(|(a, b)| a == b || a.is_none() || b.is_none());
        if !same_lead || ys.last() != Some(&Some(units)) {
            continue;
        }
        let (name, ordinal) = (g.node(mm).name.clone(), g.node(mm).ordinal);
        let mut dense = Node::new(name, "MatMul", ordinal);
        dense.outputs = vec![ValueInfo { dtype: g.info(out).dtype, shape: Some(ys) }];
        let new = g.add_node(dense);
        g.connect(x, new, 0);
        g.connect(w, new, 1);
        g.replace_uses(r2_out, ValueRef { node: new, port: 0 });
        g.g.remove_node(r2);
        g.g.remove_node(mm);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::passes::{fold_and_infer, fuse_tensordot};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// `tf.tensordot(x, W, 1)` on `[B, T, 8]`: one MatMul on `x`.
    #[test]
    fn flatten_matmul_restore_is_one_matmul() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[2, 5, 8]);
        let flat = g.constant("dense/flat", int_tensor(&[2], &[-1, 8]));
        let back = g.constant("dense/back", int_tensor(&[3], &[2, 5, 4]));
        let w = g.constant("dense/kernel", weights(&[8, 4]));
        let r1 = g.op("dense/Reshape", "Reshape", &[x, flat], &[]);
        let m = g.op("dense/MatMul", "MatMul", &[r1, w], &[]);
        let y = g.op("dense/Reshape_1", "Reshape", &[m, back], &[]);
        assert_snapshot!(g.after_passes(&[y], &[fold_and_infer, fuse_tensordot]), @"
        inputs: x:0
        outputs: dense/MatMul:0
        x = Placeholder -> float32 [2, 5, 8]
        dense/kernel = Const -> float32 [8, 4]
        dense/MatMul = MatMul(x:0, dense/kernel:0) -> float32 [2, 5, 4]
        ");
    }
}
