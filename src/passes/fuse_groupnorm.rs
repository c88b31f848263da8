//! Group normalisation as TF writes it (Keras 3's GroupNormalization; `tf.nn.moments` over a
//! reshaped tensor in hand-written code):
//!
//! ```text
//! r = Reshape(x [N, ..., C], [N, ..., G, C/G])
//! y = normalised(r) over every axis but the batch and G, scaled and shifted per channel
//! out = Reshape(y, [N, ..., C])
//! ```
//!
//! becomes one [`Fused::GroupNorm`] node, lowered to `nn.GroupNorm(G, C)` on the
//! channels-first value. `groups = C` is instance normalisation. Where the first reshape also
//! merged axes (`x.reshape(-1, C)` folded into the split) or the last one goes on to another
//! shape, the norm reads and writes `[.., C]` between two reshapes of its own.

use petgraph::stable_graph::NodeIndex;

use super::fuse_layernorm::{Normalized, features, normalized};
use crate::error::Result;
use crate::ir::fused::{Affine, Fused};
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::passes::pattern::{add_op, inputs_of, int_const, replace_with_fused};
use crate::tensor::Tensor;

struct GroupNorm {
    /// What the normalisation reads: `x` itself, or `x` to be flattened to `[.., C]` first.
    input: Input,
    /// `[.., C]`: the shape the normalisation reads and writes.
    shape: Vec<Option<usize>>,
    /// Whether the reshape after the moments gives back `shape` (else it reshapes on).
    restores: bool,
    /// The split `[.., G, C/G]` the moments are taken over.
    split: ValueRef,
    groups: usize,
    eps: f32,
    affine: Option<Affine>,
}

enum Input {
    /// `[.., C]` already: the reshape before the moments only split the channels.
    Channels(ValueRef),
    /// Any other shape, merged into the split by an earlier reshape (keras-hub's RWKV norms
    /// `x.reshape(-1, C)` of a `[B, T, H, D]` value, and the two reshapes fold into one).
    Flattened(ValueRef),
}

/// Whether two shapes agree wherever both are known and are unknown at the same places.
fn same_sizes(a: &[Option<usize>], b: &[Option<usize>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn match_at(g: &Graph, out: ValueRef) -> Option<GroupNorm> {
    let y = *inputs_of(g, out, &["Reshape"])?.first()?;
    let Normalized { x: split, axes, eps, gamma, beta } = normalized(g, y)?;
    let source = *inputs_of(g, split, &["Reshape"])?.first()?;
    let rs = g.info(split).shape?;
    // The split is `[.., G, C/G]`; the value normalised is `[.., C]`, of rank k.
    let k = rs.len().checked_sub(1)?;
    if k < 2 {
        return None;
    }
    let (groups, per_group) = (rs[k - 1]?, rs[k]?);
    let c = groups.checked_mul(per_group)?;
    let mut shape = rs[..k - 1].to_vec();
    shape.push(Some(c));
    let input = match g.info(source).shape {
        Some(xs) if same_sizes(&xs, &shape) => Input::Channels(source),
        // A new reshape can write at most one unknown size (as -1).
        _ if shape.iter().filter(|d| d.is_none()).count() <= 1 => Input::Flattened(source),
        _ => return None,
    };
    // The moments are over every axis of the split but the batch (0) and the groups (k - 1).
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| usize::try_from(if a < 0 { a + k as i64 + 1 } else { a }).ok())
        .collect::<Option<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    let want: Vec<usize> = (1..=k).filter(|&a| a != k - 1).collect();
    if axes != want {
        return None;
    }
    let param = |v: Option<ValueRef>| match v {
        None => Some(None),
        Some(v) => features(g, v, 2).filter(|t| t.numel() == c).map(Some),
    };
    let (gamma, beta) = (param(gamma)?, param(beta)?);
    let affine = (gamma.is_some() || beta.is_some()).then(|| Affine {
        gamma: gamma.unwrap_or_else(|| Tensor::from_f32(vec![c], &vec![1.0; c])),
        beta,
    });
    let restores = g.info(out).shape.is_some_and(|s| same_sizes(&s, &shape));
    Some(GroupNorm { input, shape, restores, split, groups, eps, affine })
}

/// Installs `gn` for the reshape `n` after the moments.
fn install(g: &mut Graph, n: NodeIndex, gn: GroupNorm) -> Option<()> {
    let op = Fused::GroupNorm { groups: gn.groups, epsilon: gn.eps, affine: gn.affine };
    let x = match gn.input {
        Input::Channels(x) => x,
        Input::Flattened(source) => {
            let split = g.node(gn.split.node);
            let (name, ordinal) = (format!("{}/channels", split.name), split.ordinal);
            let target: Vec<i32> = gn
                .shape
                .iter()
                .map(|d| d.map_or(Some(-1), |d| i32::try_from(d).ok()))
                .collect::<Option<_>>()?;
            let target = int_const(g, format!("{name}/shape"), &target, ordinal);
            let info = ValueInfo { dtype: g.info(source).dtype, shape: Some(gn.shape.clone()) };
            add_op(g, Node::new(name, "Reshape", ordinal), &[source, target], info)
        }
    };
    if gn.restores {
        replace_with_fused(g, n, op, &[x]);
    } else {
        // The reshape after the moments stays, reading the normalised `[.., C]`.
        let (name, ordinal) = (g.node(gn.split.node).name.clone(), g.node(n).ordinal);
        let name = format!("{}/group_norm", name.rsplit_once('/').map_or("", |(scope, _)| scope));
        let info = ValueInfo { dtype: g.info(x).dtype, shape: Some(gn.shape) };
        let y = add_op(g, Node::fused(name, op, ordinal), &[x], info);
        g.set_input(n, 0, y);
    }
    Some(())
}

pub fn fuse_groupnorm(g: &mut Graph) -> Result<()> {
    let mut reshapes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Reshape").collect();
    reshapes.sort_by_key(|&n| g.node(n).ordinal);
    for n in reshapes {
        if !g.g.contains_node(n) {
            continue;
        }
        let out = ValueRef { node: n, port: 0 };
        let Some(gn) = match_at(g, out) else { continue };
        install(g, n, gn);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras 3's GroupNormalization(groups=2) on `[N, W, 8]`: reshape to `[N, W, 2, 4]`,
    /// moments over W and the 4 channels of a group, per-channel gamma and beta.
    #[test]
    fn moments_of_reshaped_channels_are_one_group_norm() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 8]);
        let split = g.constant("gn/split", int_tensor(&[4], &[-1, 5, 2, 4]));
        let r = g.op("gn/Reshape", "Reshape", &[x, split], &[]);
        let axes = g.constant("gn/axes", int_tensor(&[2], &[1, 3]));
        let keep = [("keep_dims", boolean(true))];
        let mean = g.op("gn/Mean", "Mean", &[r, axes], &keep);
        let d = g.op("gn/Sub", "Sub", &[r, mean], &[]);
        let sq = g.op("gn/Square", "Square", &[d], &[]);
        let var = g.op("gn/Mean_1", "Mean", &[sq, axes], &keep);
        let eps = g.constant("gn/eps", Tensor::from_f32(vec![], &[1e-3]));
        let add = g.op("gn/add", "AddV2", &[var, eps], &[]);
        let rsqrt = g.op("gn/Rsqrt", "Rsqrt", &[add], &[]);
        let gamma = g.constant("gn/gamma", weights(&[1, 1, 2, 4]));
        let inv = g.op("gn/mul", "Mul", &[rsqrt, gamma], &[]);
        let neg = g.op("gn/Neg", "Neg", &[mean], &[]);
        let shift = g.op("gn/mul_1", "Mul", &[neg, inv], &[]);
        let beta = g.constant("gn/beta", weights(&[1, 1, 2, 4]));
        let shift = g.op("gn/add_1", "AddV2", &[shift, beta], &[]);
        let scaled = g.op("gn/mul_2", "Mul", &[r, inv], &[]);
        let y = g.op("gn/add_2", "AddV2", &[scaled, shift], &[]);
        let back = g.constant("gn/back", int_tensor(&[3], &[-1, 5, 8]));
        let out = g.op("gn/Reshape_1", "Reshape", &[y, back], &[]);
        assert_snapshot!(g.lower(&[out]), @"
        self.reshape_1 = nn.GroupNorm(2, 8, eps=0.001)
        # reshape_1.weight: [8]
        # reshape_1.bias: [8]
        ---
        x = x.permute(0, 2, 1)
        x = self.reshape_1(x).permute(0, 2, 1)
        return x
        ");
    }

    /// keras-hub's RWKV: `GroupNormalization(groups=2)` on `x.reshape(-1, 8)` of a `[N, 5, 2,
    /// 4]` value, the two reshapes folded into one, and the result reshaped on to `[N, 5, 8]`:
    /// the norm reads `[N·5, 8]` between reshapes of its own.
    #[test]
    fn a_split_folded_into_another_reshape_is_still_one_group_norm() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5, 2, 4]);
        let split = g.constant("gn/split", int_tensor(&[3], &[-1, 2, 4]));
        let r = g.op("gn/Reshape", "Reshape", &[x, split], &[]);
        let axes = g.constant("gn/axes", int_tensor(&[1], &[2]));
        let keep = [("keep_dims", boolean(true))];
        let mean = g.op("gn/Mean", "Mean", &[r, axes], &keep);
        let d = g.op("gn/SquaredDifference", "SquaredDifference", &[r, mean], &[]);
        let var = g.op("gn/Mean_1", "Mean", &[d, axes], &keep);
        let eps = g.constant("gn/eps", Tensor::from_f32(vec![], &[1e-3]));
        let add = g.op("gn/add", "AddV2", &[var, eps], &[]);
        let rsqrt = g.op("gn/Rsqrt", "Rsqrt", &[add], &[]);
        let gamma = g.constant("gn/gamma", weights(&[1, 2, 4]));
        let inv = g.op("gn/mul", "Mul", &[rsqrt, gamma], &[]);
        let neg = g.op("gn/Neg", "Neg", &[mean], &[]);
        let shift = g.op("gn/mul_1", "Mul", &[neg, inv], &[]);
        let beta = g.constant("gn/beta", weights(&[1, 2, 4]));
        let shift = g.op("gn/add_1", "AddV2", &[shift, beta], &[]);
        let scaled = g.op("gn/mul_2", "Mul", &[r, inv], &[]);
        let y = g.op("gn/add_2", "AddV2", &[scaled, shift], &[]);
        let back = g.constant("gn/back", int_tensor(&[3], &[-1, 5, 8]));
        let out = g.op("Reshape_1", "Reshape", &[y, back], &[]);
        assert_snapshot!(g.lower(&[out]), @"
        self.gn = nn.GroupNorm(2, 8, eps=0.001)
        # gn.weight: [8]
        # gn.bias: [8]
        ---
        x = x.reshape(-1, 8)
        x = self.gn(x).reshape(-1, 5, 8)
        return x
        ");
    }
}
