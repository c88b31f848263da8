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
//! channels-first value. `groups = C` is instance normalisation.

use petgraph::stable_graph::NodeIndex;

use super::fuse_layernorm::{Normalized, features, normalized};
use crate::error::Result;
use crate::ir::fused::{Affine, Fused};
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{inputs_of, replace_with_fused};
use crate::tensor::Tensor;

struct GroupNorm {
    x: ValueRef,
    groups: usize,
    eps: f32,
    affine: Option<Affine>,
}

/// Whether two shapes agree wherever both are known and are unknown at the same places.
fn same_sizes(a: &[Option<usize>], b: &[Option<usize>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn match_at(g: &Graph, out: ValueRef) -> Option<GroupNorm> {
    let y = *inputs_of(g, out, &["Reshape"])?.first()?;
    let Normalized { x: r, axes, eps, gamma, beta } = normalized(g, y)?;
    let x = *inputs_of(g, r, &["Reshape"])?.first()?;
    let xs = g.info(x).shape?;
    let rs = g.info(r).shape?;
    let k = xs.len();
    // r is x with its channel axis split in two: [.., C] → [.., G, C/G].
    if k < 2 || rs.len() != k + 1 || !same_sizes(&xs[..k - 1], &rs[..k - 1]) {
        return None;
    }
    let (c, groups, per_group) = (xs[k - 1]?, rs[k - 1]?, rs[k]?);
    if groups.checked_mul(per_group)? != c || !same_sizes(&g.info(out).shape?, &xs) {
        return None;
    }
    // The moments are over every axis of r but the batch (0) and the groups (k - 1).
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
    Some(GroupNorm { x, groups, eps, affine })
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
        let op = Fused::GroupNorm { groups: gn.groups, epsilon: gn.eps, affine: gn.affine };
        replace_with_fused(g, n, op, &[gn.x]);
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
}
