//! Grouped-query attention written with a group axis (keras-hub's Gemma family): the query
//! split into `[B, T, K, G, H]` (K key/value heads, G query heads per key head), scores
//! `einsum("BTKGH,BSKH->BKGTS")`, a mask `[B, 1, 1, T, S]`, the softmax, the values
//! `einsum("BKGTS,BSKH->BTKGH")`, and the heads merged again into `[B, T, K·G, H]`.
//!
//! keras-hub's Gemma 4 writes the same two products as rank-5 `matmul`s of transposed
//! operands (the key and value with a unit group axis that broadcasts, the output transposed
//! back): read as the einsums they are (see [`contraction`]), they match alike.
//!
//! The same computation over 4-D tensors: the query as it was before the split, the key and
//! value heads repeated G times (`repeat_interleave`, which [`super::fuse_attention`] makes
//! `enable_gqa=True`), the scores `[B, K·G, T, S]` and the mask without its group axis. The
//! attention fusion then finds its usual form. Each score is the same dot product of the
//! same vectors, so the values are exactly TF's. Scores widened to float32 for the softmax
//! and the probabilities narrowed back (a bfloat16 model's) are cast alike in the 4-D form.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::passes::pattern::{
    Width, const_ints, const_scalar, float_cast, inputs_of, single_consumer,
};

pub fn fuse_grouped_attention(g: &mut Graph) -> Result<()> {
    let softmaxes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Softmax").collect();
    for s in softmaxes {
        if let Some(m) = match_grouped(g, s) {
            install(g, m);
        }
    }
    Ok(())
}

/// A product of two tensors read as an einsum `x,y->o` over `inputs` (letters per axis),
/// its result being `out`'s output.
struct Contraction {
    inputs: [ValueRef; 2],
    x: Vec<char>,
    y: Vec<char>,
    o: Vec<char>,
    out: NodeIndex,
}

/// The contraction at `n`: an `Einsum` of two operands, or a rank-5 `BatchMatMul` of
/// transposed (and unit-axis-expanded) operands, maybe transposed after, as keras-hub's
/// Gemma 4 writes the same grouped product with `matmul`.
fn contraction(g: &Graph, n: NodeIndex) -> Option<Contraction> {
    let node = g.node(n);
    if node.op == "Einsum" {
        let [a, b] = g.inputs(n)[..] else { return None };
        let eq = node.attr_str("equation").ok()?;
        let (ins, out) = eq.split_once("->")?;
        let (x, y) = ins.split_once(',')?;
        let letters = |t: &str| t.trim().chars().collect::<Vec<char>>();
        return Some(Contraction {
            inputs: [a, b],
            x: letters(x),
            y: letters(y),
            o: letters(out),
            out: n,
        });
    }
    matmul_contraction(g, n)
}

/// Stands for an axis of size 1 inserted by `ExpandDims`, which broadcasts in a matmul.
const UNIT: char = '1';

/// `v` followed back through `Transpose`s and `ExpandDims` to the tensor they rearrange:
/// (source, the letter of each of `v`'s axes, the source's own axes lettered from `first`).
fn arranged(g: &Graph, mut v: ValueRef, first: char) -> Option<(ValueRef, Vec<char>, Vec<char>)> {
    // Steps from `v` back to the source, undone from the source forwards.
    let mut steps: Vec<(bool, Vec<i64>)> = Vec::new();
    loop {
        let node = g.node(v.node);
        match node.op.as_str() {
            "Transpose" | "ExpandDims" if steps.len() < 4 => {
                let [src, arg] = g.inputs(v.node)[..] else { return None };
                steps.push((node.op == "Transpose", const_ints(g, arg)?));
                v = src;
            }
            _ => break,
        }
    }
    let rank = shape_of(g, v)?.len();
    let own: Vec<char> =
        (0..rank).map(|i| char::from_u32(first as u32 + i as u32)).collect::<Option<_>>()?;
    let mut letters = own.clone();
    for (transpose, arg) in steps.into_iter().rev() {
        if transpose {
            let perm: Vec<usize> =
                arg.iter().map(|&a| usize::try_from(a).ok()).collect::<Option<_>>()?;
            if perm.len() != letters.len() || perm.iter().any(|&a| a >= letters.len()) {
                return None;
            }
            letters = perm.iter().map(|&a| letters[a]).collect();
        } else {
            let [axis] = arg[..] else { return None };
            let len = letters.len() as i64 + 1;
            let at = usize::try_from(if axis < 0 { axis + len } else { axis }).ok()?;
            if at > letters.len() {
                return None;
            }
            letters.insert(at, UNIT);
        }
    }
    Some((v, letters, own))
}

fn matmul_contraction(g: &Graph, n: NodeIndex) -> Option<Contraction> {
    let node = g.node(n);
    if !matches!(node.op.as_str(), "BatchMatMulV2" | "BatchMatMulV3") {
        return None;
    }
    let adjoint = |a: &str| node.attr_bool_or(a, false).ok();
    if adjoint("adj_x")? || adjoint("adj_y")? {
        return None;
    }
    let [a, b] = g.inputs(n)[..] else { return None };
    let (xs, xl, x) = arranged(g, a, 'a')?;
    let (ys, yl, y) = arranged(g, b, 'n')?;
    if xl.len() != 5 || yl.len() != 5 {
        return None;
    }
    // `[batch.., m, k] @ [batch.., k, n]`: the contracted axis and each batch axis both
    // operands have are one letter (x's); a unit batch axis takes the other's letter.
    let (m, k, k2, cols) = (xl[3], xl[4], yl[3], yl[4]);
    if [m, k, k2, cols].contains(&UNIT) {
        return None;
    }
    let mut same = vec![(k2, k)];
    let mut o = Vec::new();
    for (&p, &q) in xl[..3].iter().zip(&yl[..3]) {
        o.push(match (p, q) {
            (UNIT, UNIT) => return None,
            (UNIT, l) | (l, UNIT) => l,
            (p, q) => {
                same.push((q, p));
                p
            }
        });
    }
    o.extend([m, cols]);
    let rename = |l: char| same.iter().find(|(q, _)| *q == l).map_or(l, |&(_, p)| p);
    let y: Vec<char> = y.into_iter().map(rename).collect();
    let mut out = n;
    if let Some(t) = single_consumer(g, ValueRef { node: n, port: 0 })
        && g.node(t).op == "Transpose"
    {
        let perm = const_ints(g, *g.inputs(t).get(1)?)?;
        if perm.len() == 5 {
            o = perm
                .iter()
                .map(|&i| o.get(usize::try_from(i).ok()?).copied())
                .collect::<Option<_>>()?;
            out = t;
        }
    }
    Some(Contraction { inputs: [xs, ys], x, y, o, out })
}

/// Whether the scores einsum is `[B, T, K, G, H] · [B, S, K, H] -> [B, K, G, T, S]` (in
/// letters of its own).
fn is_grouped_scores(x: &[char], y: &[char], o: &[char]) -> bool {
    let ([batch, query, kv, group, dim], [b2, key, k2, d2], [b3, k3, g3, q3, s3]) = (x, y, o)
    else {
        return false;
    };
    let all = [*batch, *query, *kv, *group, *dim, *key];
    let distinct = all.iter().collect::<std::collections::BTreeSet<_>>().len() == 6;
    let same = (b2, k2, d2, b3, k3, g3, q3, s3) == (batch, kv, dim, batch, kv, group, query, key);
    distinct && same
}

/// Whether the values einsum is `[B, K, G, T, S] · [B, S, K, H] -> [B, T, K, G, H]` (in
/// letters of its own).
fn is_grouped_values(x: &[char], y: &[char], o: &[char]) -> bool {
    let ([b, k, gr, t, s], [b2, s2, k2, h], [b3, t3, k3, g3, h3]) = (x, y, o) else {
        return false;
    };
    let distinct = [b, k, gr, t, s, h].iter().collect::<std::collections::BTreeSet<_>>().len() == 6;
    distinct && (b2, s2, k2, b3, t3, k3, g3, h3) == (b, s, k, b, t, k, gr, h)
}

struct Grouped {
    /// The query before its split into groups, `[B, T, K·G, H]`.
    query: ValueRef,
    key: ValueRef,
    value: ValueRef,
    groups: i64,
    scores: NodeIndex,
    /// The mask `[B, 1, 1, T, S]` (selected before the softmax, and maybe after).
    mask: Option<ValueRef>,
    select: Option<NodeIndex>,
    softmax: NodeIndex,
    zeroing: Option<NodeIndex>,
    /// The casts of the scores to a wider float type, and of the probabilities back.
    widened: Option<NodeIndex>,
    narrowed: Option<NodeIndex>,
    values: NodeIndex,
    /// The heads merged again: its readers read the 4-D output.
    merged: NodeIndex,
}

fn shape_of(g: &Graph, v: ValueRef) -> Option<Vec<Option<usize>>> {
    g.info(v).shape
}

fn match_grouped(g: &Graph, softmax: NodeIndex) -> Option<Grouped> {
    let logits = *g.inputs(softmax).first()?;
    single_consumer(g, logits)?;
    // Before the softmax: `where(mask, scores, -big)`, or the scores themselves.
    let (scores, mask, select) = match inputs_of(g, logits, &["SelectV2"]) {
        Some(i) if const_scalar(g, *i.get(2)?)? <= -1e4 => (i[1], Some(i[0]), Some(logits.node)),
        Some(_) => return None,
        None => (logits, None, None),
    };
    single_consumer(g, scores)?;
    let (scores, widened) = match float_cast(g, scores, Width::Wider) {
        Some(x) => (x, Some(scores.node)),
        None => (scores, None),
    };
    single_consumer(g, scores)?;
    let c = contraction(g, scores.node)?;
    if c.out != scores.node || !is_grouped_scores(&c.x, &c.y, &c.o) {
        return None;
    }
    let [q5, key] = c.inputs;
    // The query as split: a reshape of `[B, T, K·G, H]`.
    let query = *inputs_of(g, q5, &["Reshape"])?.first()?;
    let (qs, q5s) = (shape_of(g, query)?, shape_of(g, q5)?);
    let [_, _, Some(heads), Some(dim)] = qs[..] else { return None };
    let [_, _, Some(kv), Some(groups), Some(d5)] = q5s[..] else { return None };
    if kv.checked_mul(groups) != Some(heads) || d5 != dim || shape_of(g, key)?.len() != 4 {
        return None;
    }
    // After it: maybe TF's zeroing of masked keys, then the values einsum.
    let probs = ValueRef { node: softmax, port: 0 };
    let mut weights = probs;
    let mut zeroing = None;
    let next = single_consumer(g, probs)?;
    if g.node(next).op == "SelectV2" {
        let [kept, p, zero] = g.inputs(next)[..] else { return None };
        if Some(kept) != mask || p != probs || const_scalar(g, zero)? != 0.0 {
            return None;
        }
        zeroing = Some(next);
        weights = ValueRef { node: next, port: 0 };
    }
    let mut values = single_consumer(g, weights)?;
    let mut narrowed = None;
    let cast = ValueRef { node: values, port: 0 };
    if widened.is_some() && float_cast(g, cast, Width::Narrower) == Some(weights) {
        (narrowed, weights) = (Some(values), cast);
        values = single_consumer(g, weights)?;
    }
    if widened.is_some() != narrowed.is_some() {
        return None;
    }
    let c = contraction(g, values)?;
    if !is_grouped_values(&c.x, &c.y, &c.o) || c.inputs[0] != weights {
        return None;
    }
    let value = c.inputs[1];
    let out = ValueRef { node: c.out, port: 0 };
    let merged = single_consumer(g, out)?;
    let merged_shape = shape_of(g, ValueRef { node: merged, port: 0 })?;
    if g.node(merged).op != "Reshape"
        || merged_shape.len() != 4
        || merged_shape[2..] != [Some(heads), Some(dim)]
    {
        return None;
    }
    // The mask broadcast over the key/value heads and groups.
    if let Some(m) = mask {
        let s = shape_of(g, m)?;
        if s.len() != 5 || s[1] != Some(1) || s[2] != Some(1) {
            return None;
        }
    }
    Some(Grouped {
        query,
        key,
        value,
        groups: i64::try_from(groups).ok()?,
        scores: scores.node,
        mask,
        select,
        softmax,
        zeroing,
        widened,
        narrowed,
        values,
        merged,
    })
}

/// A new node of `op` reading `inputs`, with one output `info`.
fn add(
    g: &mut Graph,
    name: String,
    op: &str,
    inputs: &[ValueRef],
    info: ValueInfo,
    ordinal: usize,
) -> ValueRef {
    let mut node = Node::new(name, op, ordinal);
    node.outputs = vec![info];
    let n = g.add_node(node);
    for (slot, &v) in inputs.iter().enumerate() {
        g.connect(v, n, slot);
    }
    ValueRef { node: n, port: 0 }
}

/// `v` `[B, S, K, H]` with each head repeated `groups` times.
fn repeated(g: &mut Graph, name: String, v: ValueRef, groups: i64, ordinal: usize) -> ValueRef {
    let info = g.info(v);
    let shape = info.shape.clone().map(|mut s| {
        s[2] = s[2].and_then(|k| k.checked_mul(usize::try_from(groups).ok()?));
        s
    });
    let op = Fused::RepeatInterleave { axis: 2, repeats: groups };
    let mut node = Node::fused(name, op, ordinal);
    node.outputs = vec![ValueInfo { dtype: info.dtype, shape }];
    let n = g.add_node(node);
    g.connect(v, n, 0);
    ValueRef { node: n, port: 0 }
}

/// A 5-d mask `[B, 1, 1, T, S]` without its group axis. A comparison, cast or negation of
/// one 5-d value (the rest rank 2 at most, untouched by the axis) is made again of that
/// value squeezed: the axis Keras added for the groups goes where it was added
/// (`m[:, None, None] > 0` is `m[:, None] > 0`, not `(m[:, None, None] > 0).squeeze(2)`).
fn without_group_axis(g: &mut Graph, mask: ValueRef, base: &str, ordinal: usize) -> ValueRef {
    // Without axis 2 (a shape of fewer axes, which the matcher never gives, stays unknown).
    let without_axis = |s: Option<Vec<Option<usize>>>| {
        s.filter(|s| s.len() > 2).map(|mut s| {
            s.remove(2);
            s
        })
    };
    let squeeze = |g: &mut Graph, v: ValueRef, name: String| {
        let info = g.info(v);
        let shape = without_axis(info.shape.clone());
        let mut node = Node::new(name, "Squeeze", ordinal);
        node.set_attr_ints("squeeze_dims", &[2]);
        node.outputs = vec![ValueInfo { dtype: info.dtype, shape }];
        let n = g.add_node(node);
        g.connect(v, n, 0);
        ValueRef { node: n, port: 0 }
    };
    let elementwise = ["Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual"];
    let producer = g.node(mask.node);
    let inputs = g.inputs(mask.node);
    let rank = |g: &Graph, v: ValueRef| g.info(v).shape.map(|s| s.len());
    let fits = mask.port == 0
        && (elementwise.contains(&producer.op.as_str())
            || matches!(producer.op.as_str(), "Cast" | "LogicalNot"))
        && producer.outputs.len() == 1
        && inputs.iter().all(|&v| matches!(rank(g, v), Some(0..=2 | 5)))
        && inputs.iter().filter(|&&v| rank(g, v) == Some(5)).count() == 1;
    if !fits {
        return squeeze(g, mask, format!("{base}/mask"));
    }
    let mut node = g.node(mask.node).clone();
    node.name = format!("{base}/mask");
    node.outputs[0].shape = without_axis(node.outputs[0].shape.take());
    let n = g.add_node(node);
    for (slot, &v) in inputs.iter().enumerate() {
        let v = match rank(g, v) {
            Some(5) => squeeze(g, v, format!("{base}/mask_input")),
            _ => v,
        };
        g.connect(v, n, slot);
    }
    ValueRef { node: n, port: 0 }
}

/// Cast node `cast` made again (its types and rounding) on `v`, named `name`.
fn recast(g: &mut Graph, cast: NodeIndex, name: String, v: ValueRef, info: ValueInfo) -> ValueRef {
    let mut node = g.node(cast).clone();
    node.name = name;
    node.outputs = vec![info];
    let n = g.add_node(node);
    g.connect(v, n, 0);
    ValueRef { node: n, port: 0 }
}

fn install(g: &mut Graph, m: Grouped) {
    // The new nodes take the old ones' names; the old, read by nothing once the merged
    // output's readers read the new, are left to `prune`.
    let olds = [
        Some(m.scores),
        m.widened,
        m.select,
        Some(m.softmax),
        m.zeroing,
        m.narrowed,
        Some(m.values),
    ];
    let mut names = std::collections::BTreeMap::new();
    for n in olds.into_iter().flatten() {
        names.insert(n, g.node(n).name.clone());
        g.node_mut(n).name.push_str("/grouped");
    }
    let (base, ordinal) = (names[&m.scores].clone(), g.node(m.scores).ordinal);
    let dtype = g.info(ValueRef { node: m.scores, port: 0 }).dtype;
    let key = repeated(g, format!("{base}/key_heads"), m.key, m.groups, ordinal);
    let value = repeated(g, format!("{base}/value_heads"), m.value, m.groups, ordinal);
    let (qs, ks) = (g.info(m.query).shape, g.info(key).shape);
    let scores_shape = match (&qs, &ks) {
        (Some(q), Some(k)) => Some(vec![q[0], q[2], q[1], k[1]]),
        _ => None,
    };
    let scores_info = ValueInfo { dtype, shape: scores_shape.clone() };
    let mut scores = Node::new(base.clone(), "Einsum", ordinal);
    scores.set_attr_str("equation", "BTNH,BSNH->BNTS");
    scores.outputs = vec![scores_info.clone()];
    let scores = g.add_node(scores);
    g.connect(m.query, scores, 0);
    g.connect(key, scores, 1);
    let mut logits = ValueRef { node: scores, port: 0 };
    let mut scores_info = scores_info;
    if let Some(w) = m.widened {
        scores_info.dtype = g.info(ValueRef { node: w, port: 0 }).dtype;
        logits = recast(g, w, names[&w].clone(), logits, scores_info.clone());
    }
    // The mask without its group axis: `[B, 1, T, S]`.
    let mask4 = m.mask.map(|mask| without_group_axis(g, mask, &base, ordinal));
    if let (Some(select), Some(mask)) = (m.select, mask4) {
        let big = g.inputs(select)[2];
        let name = names[&select].clone();
        logits = add(g, name, "SelectV2", &[mask, logits, big], scores_info.clone(), ordinal);
    }
    let softmax_name = names[&m.softmax].clone();
    let mut probs = add(g, softmax_name, "Softmax", &[logits], scores_info.clone(), ordinal);
    if let (Some(zeroing), Some(mask)) = (m.zeroing, mask4) {
        let zero = g.inputs(zeroing)[2];
        let name = names[&zeroing].clone();
        probs = add(g, name, "SelectV2", &[mask, probs, zero], scores_info.clone(), ordinal);
    }
    if let Some(n) = m.narrowed {
        let info = ValueInfo { dtype, shape: scores_info.shape };
        probs = recast(g, n, names[&n].clone(), probs, info);
    }
    let merged = ValueRef { node: m.merged, port: 0 };
    let out_info = g.info(merged);
    let mut out = Node::new(names[&m.values].clone(), "Einsum", ordinal);
    out.set_attr_str("equation", "BNTS,BSNH->BTNH");
    out.outputs = vec![out_info];
    let out = g.add_node(out);
    g.connect(probs, out, 0);
    g.connect(value, out, 1);
    g.replace_uses(merged, ValueRef { node: out, port: 0 });
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// keras-hub Gemma's grouped form: 4 query heads in 2 groups of the 2 key/value heads,
    /// a causal-and-padding mask `[B, 1, 1, T, S]` selected before the softmax and after.
    /// One SDPA call with `enable_gqa=True` on the query before its split.
    /// The query `[B, 5, 4, 8]` split into 2 groups of the 2 key/value heads
    /// (`[B, 5, 2, 2, 8]`), the key, the value and a mask `[B, 1, 1, 5, 5]`.
    fn grouped_operands(g: &mut TestGraph) -> [ValueRef; 4] {
        let q = g.input("q", &[-1, 5, 4, 8]);
        let k = g.input("k", &[-1, 5, 2, 8]);
        let v = g.input("v", &[-1, 5, 2, 8]);
        let mask = g.typed_input("mask", &[-1, 1, 1, 5, 5], DType::Bool);
        let shape5 = g.constant("att/shape", int_tensor(&[5], &[-1, 5, 2, 2, 8]));
        let q5 = g.op("att/Reshape", "Reshape", &[q, shape5], &[]);
        [q5, k, v, mask]
    }

    /// The heads merged again: `[B, 5, 4, 8]`.
    fn merged(g: &mut TestGraph, o: ValueRef) -> ValueRef {
        let shape4 = g.constant("att/shape_1", int_tensor(&[4], &[-1, 5, 4, 8]));
        g.op("att/Reshape_1", "Reshape", &[o, shape4], &[])
    }

    #[test]
    fn a_query_split_into_groups_is_grouped_query_attention() {
        let mut g = TestGraph::new();
        let [q5, k, v, mask] = grouped_operands(&mut g);
        let eq = |e: &str| ("equation", string(e));
        let s = g.op("att/einsum", "Einsum", &[q5, k], &[eq("abcde,afce->acdbf"), ("N", int(2))]);
        let big = g.constant("att/big", Tensor::from_f32(vec![], &[-1e9]));
        let masked = g.op("att/SelectV2", "SelectV2", &[mask, s, big], &[]);
        let p = g.op("att/Softmax", "Softmax", &[masked], &[]);
        let zero = g.constant("att/zero", Tensor::from_f32(vec![], &[0.0]));
        let pz = g.op("att/SelectV2_1", "SelectV2", &[mask, p, zero], &[]);
        let o = g.op("att/einsum_1", "Einsum", &[pz, v], &[eq("abcde,aebf->adbcf"), ("N", int(2))]);
        let y = merged(&mut g, o);
        assert_snapshot!(g.lower(&[y]), @"
            ---
            mask_2 = mask.squeeze(2)
            q_2 = q.permute(0, 2, 1, 3)
            k_2 = k.permute(0, 2, 1, 3)
            v_2 = v.permute(0, 2, 1, 3)
            x = F.scaled_dot_product_attention(
                q_2, k_2, v_2, attn_mask=mask_2, scale=1.0, enable_gqa=True
            )
            x = x.permute(0, 2, 1, 3)
            return x
            ");
    }

    /// A bfloat16 Gemma's: the scores widened to float32 for the softmax, the
    /// probabilities narrowed back for the values. The 4-D form casts alike, and is SDPA's.
    #[test]
    fn grouped_scores_widened_for_the_softmax() {
        let mut g = TestGraph::new();
        let q = g.typed_input("q", &[-1, 5, 4, 8], DType::BF16);
        let k = g.typed_input("k", &[-1, 5, 2, 8], DType::BF16);
        let v = g.typed_input("v", &[-1, 5, 2, 8], DType::BF16);
        let mask = g.typed_input("mask", &[-1, 1, 1, 5, 5], DType::Bool);
        let shape5 = g.constant("att/shape", int_tensor(&[5], &[-1, 5, 2, 2, 8]));
        let q5 = g.op("att/Reshape", "Reshape", &[q, shape5], &[]);
        let eq = |e: &str| ("equation", string(e));
        let s = g.op("att/einsum", "Einsum", &[q5, k], &[eq("abcde,afce->acdbf"), ("N", int(2))]);
        let to = |a, b| [("SrcT", dtype(a)), ("DstT", dtype(b))];
        let s = g.op("att/Cast", "Cast", &[s], &to(DType::BF16, DType::F32));
        let big = g.constant("att/big", Tensor::from_f32(vec![], &[-1e9]));
        let masked = g.op("att/SelectV2", "SelectV2", &[mask, s, big], &[]);
        let p = g.op("att/Softmax", "Softmax", &[masked], &[]);
        let zero = g.constant("att/zero", Tensor::from_f32(vec![], &[0.0]));
        let pz = g.op("att/SelectV2_1", "SelectV2", &[mask, p, zero], &[]);
        let pz = g.op("att/Cast_1", "Cast", &[pz], &to(DType::F32, DType::BF16));
        let o = g.op("att/einsum_1", "Einsum", &[pz, v], &[eq("abcde,aebf->adbcf"), ("N", int(2))]);
        let y = merged(&mut g, o);
        let code = g.lower(&[y]);
        assert!(code.contains("F.scaled_dot_product_attention("), "{code}");
        assert!(code.contains("enable_gqa=True") && !code.contains("softmax"), "{code}");
    }

    /// Gemma 4's spelling of the same: `matmul`s of rank 5, the key and value transposed
    /// with a unit group axis inserted, the output transposed back before the heads merge.
    #[test]
    fn grouped_matmuls_of_transposed_operands_are_grouped_query_attention() {
        let mut g = TestGraph::new();
        let [q5, k, v, mask] = grouped_operands(&mut g);
        let perm =
            |g: &mut TestGraph, name: &str, p: &[i64]| g.constant(name, int_tensor(&[p.len()], p));
        let pq = perm(&mut g, "att/pq", &[0, 2, 3, 1, 4]);
        let qt = g.op("att/q_t", "Transpose", &[q5, pq], &[]);
        let pk = perm(&mut g, "att/pk", &[0, 2, 3, 1]);
        let kt = g.op("att/k_t", "Transpose", &[k, pk], &[]);
        let two = g.constant("att/two", int_tensor(&[], &[2]));
        let k5 = g.op("att/k_e", "ExpandDims", &[kt, two], &[]);
        let s = g.op("att/scores", "BatchMatMulV2", &[qt, k5], &[]);
        let big = g.constant("att/big", Tensor::from_f32(vec![], &[-1e9]));
        let masked = g.op("att/SelectV2", "SelectV2", &[mask, s, big], &[]);
        let p = g.op("att/Softmax", "Softmax", &[masked], &[]);
        let pv = perm(&mut g, "att/pv", &[0, 2, 1, 3]);
        let vt = g.op("att/v_t", "Transpose", &[v, pv], &[]);
        let v5 = g.op("att/v_e", "ExpandDims", &[vt, two], &[]);
        let o = g.op("att/values", "BatchMatMulV2", &[p, v5], &[]);
        let po = perm(&mut g, "att/po", &[0, 3, 1, 2, 4]);
        let ot = g.op("att/o_t", "Transpose", &[o, po], &[]);
        let y = merged(&mut g, ot);
        assert_snapshot!(g.lower(&[y]), @"
            ---
            mask_2 = mask.squeeze(2)
            mask_3 = torch.where(mask_2, 0.0, -1000000000.0)
            q_2 = q.permute(0, 2, 1, 3)
            k_2 = k.permute(0, 2, 1, 3)
            v_2 = v.permute(0, 2, 1, 3)
            x = F.scaled_dot_product_attention(
                q_2, k_2, v_2, attn_mask=mask_3, scale=1.0, enable_gqa=True
            )
            x = x.permute(0, 2, 1, 3)
            return x
            ");
    }

    /// Gemma 3's mask, `padding[:, None, None] > 0` for the groups' axis: without that axis
    /// it is `padding[:, None] > 0`, the axis never added, rather than added and squeezed.
    #[test]
    fn a_compared_mask_is_compared_without_the_groups_axis() {
        let mut g = TestGraph::new();
        let [q5, k, v, _] = grouped_operands(&mut g);
        let padding = g.typed_input("padding", &[-1, 5, 5], DType::I32);
        let b = g.constant("att/b", int_tensor(&[3], &[0, 0, 0]));
        let e = g.constant("att/e", int_tensor(&[3], &[0, 0, 0]));
        let st = g.constant("att/st", int_tensor(&[3], &[1, 1, 1]));
        let masks = [("begin_mask", int(1)), ("end_mask", int(1)), ("new_axis_mask", int(6))];
        let wide = g.op("att/strided_slice", "StridedSlice", &[padding, b, e, st], &masks);
        let zero_i = g.constant("att/zero_i", int_tensor(&[], &[0]));
        let mask = g.op("att/Greater", "Greater", &[wide, zero_i], &[]);
        let eq = |e: &str| ("equation", string(e));
        let s = g.op("att/einsum", "Einsum", &[q5, k], &[eq("abcde,afce->acdbf"), ("N", int(2))]);
        let big = g.constant("att/big", Tensor::from_f32(vec![], &[-1e9]));
        let masked = g.op("att/SelectV2", "SelectV2", &[mask, s, big], &[]);
        let p = g.op("att/Softmax", "Softmax", &[masked], &[]);
        let o = g.op("att/einsum_1", "Einsum", &[p, v], &[eq("abcde,aebf->adbcf"), ("N", int(2))]);
        let y = merged(&mut g, o);
        assert_snapshot!(g.lower(&[y]), @"
            ---
            x = padding[:, None]
            mask_2 = x > 0
            mask_3 = torch.where(mask_2, 0.0, -1000000000.0)
            q_2 = q.permute(0, 2, 1, 3)
            k_2 = k.permute(0, 2, 1, 3)
            v_2 = v.permute(0, 2, 1, 3)
            x = F.scaled_dot_product_attention(
                q_2, k_2, v_2, attn_mask=mask_3, scale=1.0, enable_gqa=True
            )
            x = x.permute(0, 2, 1, 3)
            return x
            ");
    }
}
