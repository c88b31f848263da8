//! Names `q`, `k` and `v` in attention that stays a softmax (terms added to the scores at
//! another rank that leave an axis to the scores alone, which no mask of SDPA's shape can
//! be; scores clamped by `tanh`):
//! the code a person writes, `q, k, v = torch.unbind(qkv, dim=0)`, not three outputs named
//! after the layer's scope.
//!
//! The scores are a product of two operands reached from the softmax back through
//! elementwise terms, scalar factors, selections and reshapes; the probabilities reach a
//! product with the values forward through selections and reshapes. Which operand is the
//! query and which the key is read off the product's axes (Keras' einsum reads the key
//! first), not off their order.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{Graph, ValueRef};
use crate::passes::fuse_attention::{MATMULS, Product, Rank, product, scalar_factor};
use crate::passes::pattern::{binary, single_consumer};

/// How far back from the softmax the scores' product may be (terms added, reshapes).
const MAX_DEPTH: usize = 12;

pub fn name_attention_operands(g: &mut Graph) -> Result<()> {
    let softmaxes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Softmax").collect();
    for s in softmaxes {
        let Some(named) = roles_of(g, s) else { continue };
        for (v, role) in named {
            g.node_mut(v.node).set_role(v.port, Some(role));
        }
    }
    Ok(())
}

/// The values to name `q`, `k` and `v` for softmax `s`, where it is attention's.
fn roles_of(g: &Graph, s: NodeIndex) -> Option<Vec<(ValueRef, &'static str)>> {
    let logits = *g.inputs(s).first()?;
    let scores = scores_product(g, logits, MAX_DEPTH)?;
    let (scores, rank) = as_product(g, scores)?;
    // The softmax runs over the keys: the operand whose free axis is the scores' last.
    let (q, k) = match scores.po[3] {
        3 => (scores.x, scores.y),
        2 => (scores.y, scores.x),
        _ => return None,
    };
    let probs = ValueRef { node: s, port: 0 };
    let v = value_operand(g, probs)?;
    // Named as the products read them, but for scalar factors (`q * 0.25` scales `q`) and
    // the key's transpose for the product (`q @ k.transpose(-2, -1)`); the transposes that
    // put the heads first are part of making them.
    let k = unscaled_only(g, k);
    let k = transposed_last_two(g, k, rank).map_or(k, |source| unscaled_only(g, source));
    let sources = vec![unscaled_only(g, q), k, unscaled_only(g, v)];
    // One value in two roles (attention without projections) is neither.
    let distinct = sources[0] != sources[1] && sources[1] != sources[2] && sources[0] != sources[2];
    if !distinct {
        return None;
    }
    let named = sources.into_iter().zip(["q", "k", "v"]);
    Some(named.filter(|(v, _)| g.is_unnamed_computed(*v)).collect())
}

/// `v` without the scalar factors it was made with.
fn unscaled_only(g: &Graph, mut v: ValueRef) -> ValueRef {
    while let Some((x, _)) = scalar_factor(g, v) {
        v = x;
    }
    v
}

/// What `v` transposes, where it swaps only the last two axes.
fn transposed_last_two(g: &Graph, v: ValueRef, rank: Rank) -> Option<ValueRef> {
    let (x, perm) = binary(g, v, &["Transpose"])?;
    let perm = g.const_value(perm)?.to_i64()?;
    let n = rank.0 as i64;
    let swap: Vec<i64> = (0..n - 2).chain([n - 1, n - 2]).collect();
    (perm == swap).then_some(x)
}

/// `n` as a product of two rank-3 or rank-4 operands, with the rank.
fn as_product(g: &Graph, n: NodeIndex) -> Option<(Product, Rank)> {
    let out = ValueRef { node: n, port: 0 };
    [Rank(4), Rank(3)]
        .into_iter()
        .find(|r| r.of(g, out))
        .and_then(|r| product(g, n, r).map(|p| (p, r)))
}

fn is_product(g: &Graph, n: NodeIndex) -> bool {
    let op = g.node(n).op.as_str();
    (MATMULS.contains(&op) || op == "Einsum") && as_product(g, n).is_some()
}

/// The product computing the scores `v` is made from: `v` itself, or one reached back
/// through terms added or subtracted, scalar factors, selections, reshapes and `tanh`.
fn scores_product(g: &Graph, v: ValueRef, depth: usize) -> Option<NodeIndex> {
    let node = g.node(v.node);
    if node.value.is_some() {
        return None;
    }
    if is_product(g, v.node) {
        return Some(v.node);
    }
    if depth == 0 {
        return None;
    }
    let inputs = g.inputs(v.node);
    let candidates: &[ValueRef] = match node.op.as_str() {
        "Add" | "AddV2" | "Sub" | "Mul" | "RealDiv" => &inputs,
        // The condition is no candidate.
        "SelectV2" | "Select" => inputs.get(1..)?,
        "Reshape" | "Tanh" | "Identity" | "Cast" | "ExpandDims" | "Squeeze" => inputs.get(..1)?,
        _ => return None,
    };
    candidates.iter().find_map(|&c| scores_product(g, c, depth - 1))
}

/// What the probabilities `probs` weigh: the other operand of the product they reach,
/// forward through selections (masked keys zeroed) and reshapes.
fn value_operand(g: &Graph, mut probs: ValueRef) -> Option<ValueRef> {
    for _ in 0..MAX_DEPTH {
        let next = single_consumer(g, probs)?;
        if is_product(g, next) {
            let [x, y] = g.inputs(next)[..] else { return None };
            return if x == probs { Some(y) } else { Some(x) };
        }
        match g.node(next).op.as_str() {
            "SelectV2" | "Select" | "Reshape" | "Identity" | "Cast" => {}
            _ => return None,
        }
        probs = ValueRef { node: next, port: 0 };
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    /// SAM's windowed attention: q, k and v unstacked from one projection, a position term
    /// added to the scores at another rank that leaves an axis to them alone (SAM's own
    /// terms fill every axis and are SDPA's mask), so no SDPA: the three are named for their
    /// roles all the same, the key before its transpose for the product.
    #[test]
    fn attention_left_a_softmax_names_q_k_v() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 3, 16]);
        let bias = g.input("rel", &[-1, 2, 1, 4]);
        let perm = g.constant("attn/perm", int_tensor(&[4], &[2, 0, 1, 3]));
        let qkv = g.op("attn/transpose", "Transpose", &[x, perm], &[]);
        let qkv = g.op("attn/unstack", "Unpack", &[qkv], &[("axis", int(0)), ("num", int(3))]);
        let (q, k, v) = (TestGraph::port(qkv, 0), TestGraph::port(qkv, 1), TestGraph::port(qkv, 2));
        let scale = g.constant("attn/scale", crate::tensor::Tensor::from_f32(vec![], &[0.25]));
        let q = g.op("attn/mul", "Mul", &[q, scale], &[]);
        let perm_k = g.constant("attn/perm_k", int_tensor(&[3], &[0, 2, 1]));
        let kt = g.op("attn/transpose_1", "Transpose", &[k, perm_k], &[]);
        let s = g.op("attn/MatMul", "BatchMatMulV2", &[q, kt], &[]);
        let shape = g.constant("attn/shape", int_tensor(&[4], &[-1, 2, 2, 4]));
        let s = g.op("attn/Reshape", "Reshape", &[s, shape], &[]);
        let s = g.op("attn/add", "AddV2", &[s, bias], &[]);
        let back = g.constant("attn/back", int_tensor(&[3], &[-1, 4, 4]));
        let s = g.op("attn/Reshape_1", "Reshape", &[s, back], &[]);
        let p = g.op("attn/Softmax", "Softmax", &[s], &[]);
        let y = g.op("attn/MatMul_1", "BatchMatMulV2", &[p, v], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = x.permute(2, 0, 1, 3)
        q, k, v = torch.unbind(x, dim=0)
        x = q * 0.25
        y = k.permute(0, 2, 1)
        x = (x @ y).reshape(-1, 2, 2, 4)
        x = (x + rel).reshape(-1, 4, 4)
        x = F.softmax(x, dim=-1)
        x = x @ v
        return x
        ");
    }
}
