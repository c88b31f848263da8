//! Scaled dot-product attention, however the exporter arranged it:
//!
//! ```text
//! scores = [scale ·] BatchMatMul(q', k')       q', k': q and k, transposed and scaled at will
//! scores = where(mask, scores, -big)           or scores + additive_mask, or no mask
//! probs  = Softmax(scores)
//! probs  = where(mask, probs, 0)               (Keras 3: a fully masked row gives zeros)
//! out    = BatchMatMul(probs, v')
//! ```
//!
//! becomes one [`Fused::Attention`] node reading `q [.., Lq, E]`, `k [.., Lk, E]`,
//! `v [.., Lk, Ev]` in `F.scaled_dot_product_attention`'s layout (a transpose of each source
//! where needed), lowered to that call. The layout is worked out by following axes through
//! the transposes and matmuls (not by matching one exporter's node order), so Keras' einsum
//! spellings, `tf.matmul(q, k, transpose_b=True)` and a transposed product all match.
//!
//! Semantics kept exactly: the scale is the product of every scalar factor on the way (on
//! `q`, on `k`, on the scores); a boolean mask selects with a large negative value that
//! underflows to exactly zero weight, as SDPA's boolean mask does. A query with no key left
//! to attend to: where TF zeroes the probabilities of masked keys afterwards (Keras 3) its
//! output is zero, as SDPA's is since torch 2.5; with a boolean mask and no such zeroing TF
//! averages every value instead, so that form is left alone. A bias added to the scores
//! under a boolean mask (DeBERTa's relative positions) becomes one float mask,
//! `where(mask, bias, -inf)`. Key/value heads repeated for grouped-query attention
//! (`RepeatInterleave` on the head axis) become `enable_gqa=True`.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::fused::{AttentionMask, Fused};
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::ops::util::broadcast;
use crate::passes::pattern::{
    Width, binary, const_ints, const_scalar, float_cast, inputs_of, int_const, operands,
    replace_with_fused, single_consumer,
};
use crate::tensor::{DType, Tensor};

pub(super) const MATMULS: &[&str] = &["BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"];

/// A masking constant at or below this leaves an exactly zero weight after softmax (the
/// exponent underflows in every float type SDPA supports).
const LARGE_NEGATIVE: f64 = -1e4;

pub fn fuse_attention(g: &mut Graph) -> Result<()> {
    let softmaxes: Vec<NodeIndex> =
        g.g.node_indices().filter(|&n| g.node(n).op == "Softmax").collect();
    let mut fused = Vec::new();
    for s in softmaxes {
        if let Some(m) = match_attention(g, s) {
            fused.push(install(g, m));
        }
    }
    if !fused.is_empty() {
        // Once what the fusions replaced is gone, an operand read only by SDPA is named for
        // its role there.
        crate::passes::prune(g)?;
        for n in fused {
            if g.g.contains_node(n) {
                name_operands(g, n);
            }
        }
    }
    Ok(())
}

/// Names `q`, `k` and `v` what computes them for the attention `n` (a layer's output, a
/// reshape), where nothing else named them and no other attention reads them in another
/// role; other readers may read them as what they are (ViTDet's relative positions read
/// `q` too).
fn name_operands(g: &mut Graph, n: NodeIndex) {
    let inputs = g.inputs(n);
    for (slot, (&v, role)) in inputs.iter().zip(["q", "k", "v"]).enumerate() {
        let elsewhere = g.consumers(v).into_iter().any(|(reader, s)| {
            let attends = matches!(g.node(reader).fused, Some(Fused::Attention { .. }));
            (reader != n || s != slot) && attends
        }) || g.outputs.contains(&v);
        if !elsewhere {
            g.name_computed(v, role);
        }
    }
}

/// A value seen through transposes (and scalar factors): axis `a` of the value is axis
/// `axes[a]` of `source`, and the value is `source` times `scale` (and times `learned`).
///
/// Axes are counted in four dimensions whatever the attention's rank: a rank-3 tensor
/// (single-head attention, `[B, T, E]`) is seen as `[1, B, T, E]`, its axis `i` being axis
/// `i + 1`, so that one set of rules covers both; [`Rank::real`] turns a permutation back.
#[derive(Clone, Copy, Debug)]
struct View {
    source: ValueRef,
    axes: [usize; 4],
    scale: f64,
    /// A trained scalar factor (Keras' `Attention(use_scale=True)`): a parameter, which
    /// SDPA's `scale`, a number, cannot hold.
    learned: Option<ValueRef>,
}

/// The rank of every tensor of one attention: 4 (`[B, N, T, E]`) or 3 (`[B, T, E]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rank(pub(super) usize);

impl Rank {
    /// The axes a rank-3 tensor lacks in the four-dimensional count: 0 or 1.
    fn missing(self) -> usize {
        4 - self.0
    }

    pub(super) fn of(self, g: &Graph, v: ValueRef) -> bool {
        g.info(v).shape.is_some_and(|s| s.len() == self.0)
    }

    /// A permutation of this rank's axes, in the four-dimensional count.
    fn lifted(self, perm: &[i64]) -> Option<[usize; 4]> {
        if perm.len() != self.0 {
            return None;
        }
        let mut out = IDENTITY;
        for (i, &p) in perm.iter().enumerate() {
            let p = usize::try_from(p).ok().filter(|&p| p < self.0)?;
            out[i + self.missing()] = p + self.missing();
        }
        Some(out)
    }

    /// A four-dimensional permutation as one of this rank's axes: `None` where it moves
    /// the axis a rank-3 tensor does not have.
    fn real(self, perm: [usize; 4]) -> Option<Vec<usize>> {
        let m = self.missing();
        if perm[..m].iter().enumerate().any(|(i, &p)| p != i) {
            return None;
        }
        perm[m..].iter().map(|&p| p.checked_sub(m)).collect()
    }

    /// `v`'s static shape in the four-dimensional count (a missing axis has size 1).
    fn shape(self, g: &Graph, v: ValueRef) -> Option<Vec<Option<usize>>> {
        let s = g.info(v).shape?;
        (s.len() == self.0).then(|| std::iter::repeat_n(Some(1), self.missing()).chain(s).collect())
    }
}

fn is_float(g: &Graph, v: ValueRef) -> bool {
    matches!(g.info(v).dtype, Some(DType::F32 | DType::F64 | DType::F16 | DType::BF16))
}

/// Follows `v` back through `Transpose`s (and, with `scaled`, multiplications or divisions
/// by a scalar constant). With `uses` (the scores), only through values nothing else reads,
/// `v` itself read that many times (their size `Shape` readers may take besides, see
/// [`shape_readers`]), and through casts to a wider float type: Keras's bfloat16 layers
/// widen the scores to float32 for the softmax, as SDPA does within.
fn peel(g: &Graph, v: ValueRef, rank: Rank, scaled: bool, uses: Option<usize>) -> Option<View> {
    let mut view = View { source: v, axes: [0, 1, 2, 3], scale: 1.0, learned: None };
    loop {
        let cur = view.source;
        let others = if cur == v {
            g.use_count(v) - shape_readers(g, v).len() - size_readers(g, v).len()
        } else {
            g.use_count(cur)
        };
        let expected = if cur == v { uses } else { uses.map(|_| 1) };
        if !rank.of(g, cur) || expected.is_some_and(|n| others != n) {
            return None;
        }
        if let Some((x, perm)) = binary(g, cur, &["Transpose"]) {
            let perm = g.const_value(perm)?.to_i64()?;
            let Some(perm) = rank.lifted(&perm).filter(|_| rank.of(g, x)) else { break };
            let mut axes = view.axes;
            for a in &mut axes {
                *a = perm[*a];
            }
            view = View { source: x, axes, ..view };
            continue;
        }
        if uses.is_some()
            && let Some(x) = float_cast(g, cur, Width::Wider)
        {
            view = View { source: x, ..view };
            continue;
        }
        if scaled && let Some((x, factor)) = scalar_factor(g, cur) {
            view = View { source: x, scale: factor.apply(view.scale), ..view };
            continue;
        }
        if scaled
            && view.learned.is_none()
            && let Some((c, x)) = operands(g, cur, &["Mul"], |u| trained_scalar(g, u))
        {
            view = View { source: x, learned: Some(c), ..view };
            continue;
        }
        break;
    }
    Some(view)
}

/// A scalar constant `v` is multiplied or divided by.
#[derive(Clone, Copy)]
pub(super) enum Factor {
    Times(f64),
    Over(f64),
}

impl Factor {
    /// `scale` times the factor (divided, for a divisor: the same rounding as TF's).
    fn apply(self, scale: f64) -> f64 {
        match self {
            Factor::Times(c) => scale * c,
            Factor::Over(c) => scale / c,
        }
    }
}

/// `(x, factor)` where `v` is `x * c`, `c * x` or `x / c` for a scalar constant `c` (not 0)
/// that is no trained value: a number to fold into others.
pub(super) fn scalar_factor(g: &Graph, v: ValueRef) -> Option<(ValueRef, Factor)> {
    let number = |u: ValueRef| !g.node(u.node).is_trained() && const_scalar(g, u).is_some();
    if let Some((c, x)) = operands(g, v, &["Mul"], number) {
        return Some((x, Factor::Times(const_scalar(g, c)?)));
    }
    let (x, c) = binary(g, v, &["RealDiv"])?;
    let c = Some(c).filter(|&c| number(c)).and_then(|c| const_scalar(g, c));
    Some((x, Factor::Over(c.filter(|c| *c != 0.0)?)))
}

/// Whether `v` is a trained scalar (a variable of shape `[]` or `[1]`).
fn trained_scalar(g: &Graph, v: ValueRef) -> bool {
    g.node(v.node).is_trained() && const_scalar(g, v).is_some()
}

/// The `Shape` ops reading `v`. The scores' size is what Bloom builds its ALiBi positions
/// from: after fusion they read it from q and k instead (see [`reroute_scores_shape`]).
fn shape_readers(g: &Graph, v: ValueRef) -> Vec<NodeIndex> {
    let shapes = g.consumers(v).into_iter().map(|(n, _)| n);
    shapes.filter(|&n| g.node(n).op == "Shape").collect()
}

/// The readers of `v` that take run-time sizes from it (a `Fill` of the scores' shape whose
/// size input became a constant with `Dim::Of` entries reads the scores as an extra input):
/// `(reader, slot)`.
fn size_readers(g: &Graph, v: ValueRef) -> Vec<(NodeIndex, usize)> {
    g.consumers(v)
        .into_iter()
        .filter(|&(n, slot)| {
            crate::ir::target_slot(&g.node(n).op).is_some_and(|(_, arity)| slot >= arity)
        })
        .collect()
}

/// The axes of a matmul operand: (batch 0, batch 1, free axis, contracted axis).
fn operand_axes(adjoint: bool, is_left: bool) -> [usize; 4] {
    // Left operand [.., m, k] (adjoint: [.., k, m]); right [.., k, n] (adjoint: [.., n, k]).
    let (free, contracted) = match (is_left, adjoint) {
        (true, false) | (false, true) => (2, 3),
        (true, true) | (false, false) => (3, 2),
    };
    [0, 1, free, contracted]
}

/// `operand` (of a matmul) as `[S0, S1, free, contracted]` of its source, where `batch` says
/// which of the operand's batch axes come first: the permutation to apply to the source.
fn layout(view: &View, batch: [usize; 2], free: usize, contracted: usize) -> [usize; 4] {
    [view.axes[batch[0]], view.axes[batch[1]], view.axes[free], view.axes[contracted]]
}

struct Match {
    rank: Rank,
    /// The boolean mask is true where a key is masked (`where(masked, c, 0)` is added).
    negate_mask: bool,
    /// Each of q, k, v: its source and the permutation that gives SDPA's layout.
    q: (ValueRef, [usize; 4]),
    k: (ValueRef, [usize; 4]),
    v: (ValueRef, [usize; 4]),
    mask: Option<(ValueRef, AttentionMask)>,
    /// A bias added to the scores under a boolean mask: the two become one float mask.
    bias: Option<ValueRef>,
    /// More terms added to the scores with the bias (or the additive mask): Hugging Face's
    /// CLIP adds its causal mask, then the padding mask. Summed into it.
    more_terms: Vec<ValueRef>,
    /// The shape the additive mask's terms, summed, are reshaped to: the terms were added
    /// to the scores seen in another shape (see [`reshaped_bias`]).
    mask_shape: Option<ValueRef>,
    /// What scales the bias (or the additive mask) with the scores, after their sum (and
    /// -1 where it was subtracted from them).
    bias_factor: f64,
    /// The value a boolean mask selects for masked scores, where TF does not zero their
    /// probabilities afterwards: the mask becomes a float one of 0 and this value.
    fill: Option<f64>,
    scale: f64,
    /// Trained factors of the scores (see [`View::learned`]): q is multiplied by them.
    learned: Vec<ValueRef>,
    gqa: bool,
    /// The value matmul, whose output the fused node takes over.
    out: NodeIndex,
    /// The value product's output axis `j` is SDPA's output axis `out_axes[j]` (an einsum
    /// may write `[B, Lq, N, Ev]` directly).
    out_axes: [usize; 4],
    /// `Shape` ops reading the scores (in SDPA's layout: `[.., Lq, Lk]`).
    scores_shapes: Vec<NodeIndex>,
    /// The scores, and the readers taking run-time sizes from them (see [`size_readers`]).
    scores: ValueRef,
    scores_sizes: Vec<(NodeIndex, usize)>,
}

/// `v` without constants added to it alone: Hugging Face's `stable_softmax` adds 1e-9 to
/// every score, which changes no probability (softmax is the same for scores shifted alike).
fn unshifted(g: &Graph, mut v: ValueRef) -> ValueRef {
    let is_const = |u: ValueRef| const_scalar(g, u).is_some();
    while single_consumer(g, v).is_some() {
        match operands(g, v, &["Add", "AddV2"], is_const)
            .or_else(|| binary(g, v, &["Sub"]).filter(|&(_, c)| is_const(c)).map(|(x, c)| (c, x)))
        {
            Some((_, x)) if single_consumer(g, x).is_some() => v = x,
            _ => break,
        }
    }
    v
}

/// Whether `v` is a product of q and k (through transposes and scalar factors).
fn from_matmul(g: &Graph, v: ValueRef, rank: Rank) -> bool {
    peel(g, v, rank, true, Some(1)).is_some_and(|w| product(g, w.source.node, rank).is_some())
}

/// `(scores, bias terms, factor, sign)` when `v` is `(scores ± bias) · factor`, the scores
/// a product of q and k, the bias a float tensor (or a sum of them, `scores + b1 + b2`) and
/// the factor a product of scalar constants (1 when there are none; Falcon scales the scores
/// after adding its ALiBi bias); `sign` is -1 where the bias is subtracted
/// (`scores - 1e9 * (1 - mask)`).
fn split_bias(g: &Graph, v: ValueRef, rank: Rank) -> Option<(ValueRef, Vec<ValueRef>, f64, f64)> {
    single_consumer(g, v)?;
    let (mut sum, mut factor) = (v, 1.0);
    while let Some((x, f)) = scalar_factor(g, sum) {
        factor = f.apply(factor);
        sum = x;
        single_consumer(g, sum)?;
    }
    let (s, terms, sign) = if binary(g, sum, &["Add", "AddV2"]).is_some() {
        let (s, terms) = added_terms(g, sum, rank)?;
        (s, terms, 1.0)
    } else {
        let (a, b) = binary(g, sum, &["Sub"])?;
        if !from_matmul(g, a, rank) {
            return None;
        }
        (a, vec![b], -1.0)
    };
    // A scalar is no mask (a shift of every score, which softmax ignores).
    let mask_like =
        |m: &ValueRef| is_float(g, *m) && g.info(*m).shape.is_some_and(|s| !s.is_empty());
    (terms.iter().all(mask_like) && factor.is_finite()).then_some((s, terms, factor, sign))
}

/// `(scores, bias terms, shape)` when `logits` is `reshape(reshape(scores) + b1 + b2, shape)`
/// back to the scores' shape, the scores a product of q and k: ViTDet's and SAM's relative
/// positions, added to the scores seen as `[B, h, w, h, w]`
/// (`attn.view(B, h, w, h, w) + rel_h[..., None] + rel_w[..., None, :]`). The terms, summed,
/// must fill that shape (no axis of it left for the scores alone to give), so their sum
/// reshaped as the logits are is the additive mask.
fn reshaped_bias(
    g: &Graph,
    logits: ValueRef,
    rank: Rank,
) -> Option<(ValueRef, Vec<ValueRef>, ValueRef)> {
    let outer = inputs_of(g, logits, &["Reshape"])?;
    let (sum, shape) = (*outer.first()?, *outer.get(1)?);
    single_consumer(g, sum)?;
    let viewed = |x: ValueRef| {
        single_consumer(g, x).is_some()
            && inputs_of(g, x, &["Reshape"])
                .and_then(|i| i.first().copied())
                .is_some_and(|s| from_matmul(g, s, rank))
    };
    let (view, terms) = terms_added_to(g, sum, viewed)?;
    let scores = *g.inputs(view.node).first()?;
    // Back to the scores' own shape, and every axis of the viewed shape filled by the terms.
    let known = |v: ValueRef| g.info(v).shape;
    let (scores_shape, logits_shape) = (known(scores)?, known(logits)?);
    if scores_shape != logits_shape {
        return None;
    }
    let viewed_shape = known(view)?;
    let mut filled: Option<Vec<Option<usize>>> = None;
    for &t in &terms {
        if !is_float(g, t) {
            return None;
        }
        let s = known(t)?;
        filled = Some(match filled {
            None => s,
            Some(f) => broadcast(&Some(f), &Some(s))?,
        });
    }
    let filled = filled?;
    let fills = filled.len() == viewed_shape.len()
        && filled.iter().zip(&viewed_shape).all(|(t, v)| match (t, v) {
            (Some(t), Some(v)) => t == v,
            // A size known at run time only: the terms' (q's batch) is the scores'.
            (None, None) => true,
            _ => false,
        });
    fills.then_some((scores, terms, shape))
}

/// `mask` (the summed bias terms) reshaped by `shape` to the scores' shape.
fn reshaped(
    g: &mut Graph,
    base: &str,
    mask: ValueRef,
    shape: ValueRef,
    scores: ValueRef,
    ordinal: usize,
) -> ValueRef {
    let info = ValueInfo { dtype: g.info(mask).dtype, shape: g.info(scores).shape };
    let mut node = Node::new(format!("{base}/mask_reshaped"), "Reshape", ordinal);
    node.outputs = vec![info];
    let node = g.add_node(node);
    g.connect(mask, node, 0);
    g.connect(shape, node, 1);
    ValueRef { node, port: 0 }
}

/// The scores and the terms added to them in `sum` (`(scores + b1) + b2`, in any order),
/// each partial sum read only by the next; the terms in the order they are added.
fn added_terms(g: &Graph, sum: ValueRef, rank: Rank) -> Option<(ValueRef, Vec<ValueRef>)> {
    terms_added_to(g, sum, |s| from_matmul(g, s, rank))
}

/// [`added_terms`] with what the scores are given by `is_scores`.
fn terms_added_to(
    g: &Graph,
    mut sum: ValueRef,
    is_scores: impl Fn(ValueRef) -> bool,
) -> Option<(ValueRef, Vec<ValueRef>)> {
    let mut terms = Vec::new();
    loop {
        let (a, b) = binary(g, sum, &["Add", "AddV2"])?;
        let scores = [(a, b), (b, a)].into_iter().find(|&(s, _)| is_scores(s));
        if let Some((s, term)) = scores {
            terms.push(term);
            terms.reverse();
            return Some((s, terms));
        }
        let partial = |x: ValueRef| {
            binary(g, x, &["Add", "AddV2"]).is_some() && single_consumer(g, x).is_some()
        };
        let (rest, term) = if partial(a) {
            (a, b)
        } else if partial(b) {
            (b, a)
        } else {
            return None;
        };
        terms.push(term);
        sum = rest;
    }
}

/// A batched matmul of two 4-axis operands, written as `BatchMatMul` or as an `Einsum`
/// whose equation is one (`BTNH,BSNH->BNTS`: two batch letters, one free letter per operand,
/// one contracted): `out = po(x' @ y')` with `x'` axis `i` being `x` axis `px[i]` (`[batch,
/// batch, rows, contracted]`, or adjoint), `y'` likewise, and output axis `j` the product's
/// axis `po[j]`.
pub(super) struct Product {
    pub(super) x: ValueRef,
    pub(super) y: ValueRef,
    adj_x: bool,
    adj_y: bool,
    px: [usize; 4],
    py: [usize; 4],
    pub(super) po: [usize; 4],
}

const IDENTITY: [usize; 4] = [0, 1, 2, 3];

pub(super) fn product(g: &Graph, n: NodeIndex, rank: Rank) -> Option<Product> {
    let node = g.node(n);
    let [x, y] = g.inputs(n)[..] else { return None };
    if MATMULS.contains(&node.op.as_str()) {
        let adj_x = node.attr_bool_or("adj_x", false).ok()?;
        let adj_y = node.attr_bool_or("adj_y", false).ok()?;
        return Some(Product { x, y, adj_x, adj_y, px: IDENTITY, py: IDENTITY, po: IDENTITY });
    }
    if node.op != "Einsum" {
        return None;
    }
    let eq = node.attr_str("equation").ok()?;
    let (ins, out) = eq.split_once("->")?;
    let (a, b) = ins.split_once(',')?;
    // A rank-3 equation gets a batch letter for the missing axis (see [`View`]).
    let letters = |t: &str| -> Option<[char; 4]> {
        let v: Vec<char> = t.trim().chars().collect();
        if v.len() != rank.0 {
            return None;
        }
        let missing = std::iter::repeat_n('#', rank.missing());
        let arr: [char; 4] = missing.chain(v).collect::<Vec<_>>().try_into().ok()?;
        let distinct = arr.iter().collect::<std::collections::BTreeSet<_>>().len() == 4;
        let letter = |c: &char| c.is_ascii_alphabetic() || *c == '#';
        (distinct && arr.iter().all(letter)).then_some(arr)
    };
    let (a, b, o) = (letters(a)?, letters(b)?, letters(out)?);
    // Each letter once, in order of appearance; those in the operands and output given,
    // in the output's order (the batch axes keep the output's order).
    let only = |inx: bool, iny: bool, ino: bool| -> Vec<char> {
        let mut found: Vec<char> = Vec::new();
        for &c in a.iter().chain(&b).chain(&o) {
            if !found.contains(&c)
                && a.contains(&c) == inx
                && b.contains(&c) == iny
                && o.contains(&c) == ino
            {
                found.push(c);
            }
        }
        found.sort_by_key(|c| o.iter().position(|d| d == c));
        found
    };
    let (batch, fx, fy, k) = (
        only(true, true, true),
        only(true, false, true),
        only(false, true, true),
        only(true, true, false),
    );
    let ([b0, b1], [fx], [fy], [k]) = (&batch[..], &fx[..], &fy[..], &k[..]) else {
        return None;
    };
    let axes = |t: &[char; 4], order: [char; 4]| -> Option<[usize; 4]> {
        let mut p = [0; 4];
        for (i, c) in order.iter().enumerate() {
            p[i] = t.iter().position(|d| d == c)?;
        }
        Some(p)
    };
    Some(Product {
        x,
        y,
        adj_x: false,
        adj_y: false,
        px: axes(&a, [*b0, *b1, *fx, *k])?,
        py: axes(&b, [*b0, *b1, *k, *fy])?,
        // Output axis j is the product's axis po[j]: where o[j] sits in [b0, b1, fx, fy].
        po: axes(&[*b0, *b1, *fx, *fy], o)?,
    })
}

/// `view` (of an operand) seen as the product's operand `x'`, whose axis `i` is the
/// operand's axis `p[i]`.
fn through(view: View, p: [usize; 4]) -> View {
    View { axes: p.map(|i| view.axes[i]), ..view }
}

fn match_attention(g: &Graph, softmax: NodeIndex) -> Option<Match> {
    let probs = ValueRef { node: softmax, port: 0 };
    let logits = unshifted(g, *g.inputs(softmax).first()?);
    let rank = [Rank(4), Rank(3)].into_iter().find(|r| r.of(g, probs))?;
    if !is_float(g, probs) || single_consumer(g, logits).is_none() {
        return None;
    }
    // After the softmax: TF's zeroing of masked keys, then the value matmul.
    let mut weights = probs;
    let mut zeroed_by = None;
    let next = single_consumer(g, probs)?;
    if g.node(next).op == "SelectV2" {
        let i = g.inputs(next);
        let zero = const_scalar(g, *i.get(2)?)?;
        if i[1] != probs || zero != 0.0 {
            return None;
        }
        zeroed_by = Some(i[0]);
        weights = ValueRef { node: next, port: 0 };
    }
    let mut out = single_consumer(g, weights)?;
    // The probabilities narrowed back to the values' type (where the scores were widened).
    let narrowed = ValueRef { node: out, port: 0 };
    if float_cast(g, narrowed, Width::Narrower) == Some(weights) {
        weights = narrowed;
        out = single_consumer(g, weights)?;
    }
    let pv = product(g, out, rank)?;
    // The probabilities as they are, the left operand: `[S0, S1, Lq, Lk]`.
    if pv.x != weights || pv.adj_x || pv.px != IDENTITY {
        return None;
    }
    // Before the softmax: the mask.
    let mut fill = None;
    let mut more_terms = Vec::new();
    let mut mask_shape = None;
    let (mut scores_uses, mut negate_mask) = (1, false);
    let (scores, mask, bias, factor, sign) = if let Some(offset) = selected_offset(g, logits) {
        // `where(mask, scores, scores + c)`: the scores read twice.
        if zeroed_by.is_some() {
            return None;
        }
        (fill, scores_uses, negate_mask) = (Some(offset.c), 2, offset.negate);
        let kind = AttentionMask::Bool;
        (offset.scores, Some((offset.keep, kind)), None, 1.0, 1.0)
    } else if let Some(i) = inputs_of(g, logits, &["SelectV2"]) {
        let c = const_scalar(g, *i.get(2)?)?;
        if c > LARGE_NEGATIVE || zeroed_by.is_some_and(|z| z != i[0]) {
            return None;
        }
        if zeroed_by.is_none() {
            // No zeroing after: a query with every key masked averages all values in TF,
            // as it does with `c` added to every score. The scores are far smaller than
            // `c`'s float spacing, so adding `c` gives `c` exactly, as selecting it does.
            fill = Some(c);
        }
        // Scores with a bias added (DeBERTa's relative positions) under the mask too.
        match split_bias(g, i[1], rank) {
            Some((s, mut b, f, sign)) if !from_matmul(g, i[1], rank) => {
                more_terms = b.split_off(1);
                (s, Some((i[0], AttentionMask::Bool)), Some(b[0]), f, sign)
            }
            _ => (i[1], Some((i[0], AttentionMask::Bool)), None, 1.0, 1.0),
        }
    } else if let Some((s, mut m, f, sign)) = split_bias(g, logits, rank) {
        if zeroed_by.is_some() {
            return None;
        }
        more_terms = m.split_off(1);
        (s, Some((m[0], AttentionMask::Additive)), None, f, sign)
    } else if let Some((s, mut m, shape)) = reshaped_bias(g, logits, rank) {
        if zeroed_by.is_some() {
            return None;
        }
        more_terms = m.split_off(1);
        mask_shape = Some(shape);
        (s, Some((m[0], AttentionMask::Additive)), None, 1.0, 1.0)
    } else {
        if zeroed_by.is_some() {
            return None;
        }
        (logits, None, None, 1.0, 1.0)
    };
    // The scores: a matmul of q and k, seen through transposes and scalar factors.
    let s = peel(g, scores, rank, true, Some(scores_uses))?;
    let ps = product(g, s.source.node, rank).filter(|_| s.source.port == 0)?;
    // Scores axis a is the product's axis po[s.axes[a]].
    let s = View { axes: s.axes.map(|a| ps.po[a]), ..s };
    let (adj_x, adj_y, x, y) = (ps.adj_x, ps.adj_y, ps.x, ps.y);
    // Scores axis a is matmul axis s.axes[a]: batch axes first, then rows and columns.
    let batch = [s.axes[0], s.axes[1]];
    if !batch.iter().all(|&b| b < 2) || batch[0] == batch[1] {
        return None;
    }
    let (q_op, k_op, q_left) = match (s.axes[2], s.axes[3]) {
        (2, 3) => ((x, ps.px), (y, ps.py), true),
        (3, 2) => ((y, ps.py), (x, ps.px), false),
        _ => return None,
    };
    let (q_adj, k_adj) = if q_left { (adj_x, adj_y) } else { (adj_y, adj_x) };
    let qa = operand_axes(q_adj, q_left);
    let ka = operand_axes(k_adj, !q_left);
    let qv = through(peel(g, q_op.0, rank, true, None)?, q_op.1);
    let kv = through(peel(g, k_op.0, rank, true, None)?, k_op.1);
    let q = (qv.source, layout(&qv, batch, qa[2], qa[3]));
    let mut k = (kv.source, layout(&kv, batch, ka[2], ka[3]));
    // The values: the right operand of the output matmul; its batch axes are the scores'.
    let va = operand_axes(pv.adj_y, false);
    // Output [S0, S1, Lq, Ev] = probs [S0, S1, Lq, Lk] @ v [S0, S1, Lk, Ev]: v's free axis is
    // Ev, its contracted axis Lk.
    let vv = through(peel(g, pv.y, rank, false, None)?, pv.py);
    let mut v = (vv.source, layout(&vv, [0, 1], va[3], va[2]));
    // SDPA computes in its operands' type, which its output takes: the value product's.
    let dtype = g.info(ValueRef { node: out, port: 0 }).dtype;
    for (src, perm) in [&q, &k, &v] {
        let typed = g.info(*src).dtype == dtype;
        if !rank.of(g, *src) || !is_float(g, *src) || !typed || rank.real(*perm).is_none() {
            return None;
        }
    }
    // Grouped-query attention: key and value heads repeated alike.
    let mut gqa = false;
    if let (Some((k0, kr)), Some((v0, vr))) = (repeated_heads(g, k), repeated_heads(g, v))
        && kr == vr
        && rank == Rank(4)
    {
        (k.0, v.0, gqa) = (k0, v0, true);
    }
    if !gqa && !same_batch(g, rank, &q, &k) {
        return None;
    }
    let scale = s.scale * qv.scale * kv.scale * factor;
    let learned = [s.learned, qv.learned, kv.learned].into_iter().flatten().collect();
    let scores_shapes = shape_readers(g, scores);
    let scores_sizes = size_readers(g, scores);
    // What reads the scores' sizes reads them from q and k, in SDPA's layout: the scores
    // must be in it too.
    let sdpa_layout = if q_left { [0, 1, 2, 3] } else { [0, 1, 3, 2] };
    let reads_sizes = !scores_shapes.is_empty() || !scores_sizes.is_empty();
    if reads_sizes && (s.axes != sdpa_layout || rank != Rank(4)) {
        return None;
    }
    let out_axes = pv.po;
    rank.real(out_axes)?;
    Some(Match {
        rank,
        negate_mask,
        q,
        k,
        v,
        mask,
        bias,
        more_terms,
        mask_shape,
        bias_factor: factor * sign,
        fill,
        scale,
        learned,
        gqa,
        out,
        out_axes,
        scores_shapes,
        scores,
        scores_sizes,
    })
}

/// A boolean mask applied by adding a large negative constant to the scores it selects:
/// `where(keep, scores, scores + c)`, or `where(masked, scores + c, scores)` (Keras'
/// `Attention` layer, `scores - 1e9` where the mask is false).
struct SelectedOffset {
    scores: ValueRef,
    c: f64,
    /// True where a key is attended to, or with `negate`, where it is masked.
    keep: ValueRef,
    negate: bool,
}

fn selected_offset(g: &Graph, logits: ValueRef) -> Option<SelectedOffset> {
    let [cond, a, b] = inputs_of(g, logits, &["SelectV2"])?[..] else { return None };
    // `x + c` (or `x - c`) for a large negative `c`, read only here: `(x, c)`.
    let offset = |v: ValueRef| -> Option<(ValueRef, f64)> {
        single_consumer(g, v)?;
        let is_const = |u: ValueRef| const_scalar(g, u).is_some();
        let (x, c) = match operands(g, v, &["Add", "AddV2"], is_const) {
            Some((c, x)) => (x, const_scalar(g, c)?),
            None => {
                let (x, c) = binary(g, v, &["Sub"])?;
                (x, -const_scalar(g, c)?)
            }
        };
        (c <= LARGE_NEGATIVE).then_some((x, c))
    };
    let (scores, c, masked_when_true) = match (offset(a), offset(b)) {
        (Some((x, c)), _) if x == b => (b, c, true),
        (_, Some((x, c))) if x == a => (a, c, false),
        _ => return None,
    };
    if g.use_count(scores) != 2 || g.info(cond).dtype != Some(DType::Bool) {
        return None;
    }
    let negated = inputs_of(g, cond, &["LogicalNot"]).and_then(|i| i.first().copied());
    let (keep, negate) = match (masked_when_true, negated) {
        (true, Some(m)) => (m, false),
        (true, None) => (cond, true),
        (false, _) => (cond, false),
    };
    Some(SelectedOffset { scores, c, keep, negate })
}

/// `(source, repeats)` when `x` is its source with each head (SDPA axis 1) repeated.
fn repeated_heads(g: &Graph, (src, perm): (ValueRef, [usize; 4])) -> Option<(ValueRef, i64)> {
    let n = g.node(src.node);
    match &n.fused {
        Some(Fused::RepeatInterleave { axis, repeats }) if *axis == perm[1] && src.port == 0 => {
            Some((*g.inputs(src.node).first()?, *repeats))
        }
        _ => None,
    }
}

/// Whether q and k have the same static batch and head sizes where both are known (SDPA
/// broadcasts less than BatchMatMul does).
fn same_batch(
    g: &Graph,
    rank: Rank,
    q: &(ValueRef, [usize; 4]),
    k: &(ValueRef, [usize; 4]),
) -> bool {
    let (Some(qs), Some(ks)) = (rank.shape(g, q.0), rank.shape(g, k.0)) else { return false };
    (0..2).all(|a| match (qs[q.1[a]], ks[k.1[a]]) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    })
}

/// `source` in SDPA's layout: itself, or a transpose named after its role.
fn arranged(
    g: &mut Graph,
    rank: Rank,
    (src, perm): (ValueRef, [usize; 4]),
    base: &str,
    role: &'static str,
    ordinal: usize,
) -> ValueRef {
    // `match_attention` saw that the permutation is one of the rank's.
    let perm = rank.real(perm).unwrap_or_default();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return src;
    }
    let p: Vec<i32> = perm.iter().map(|&a| a as i32).collect();
    let pv = int_const(g, format!("{base}/{role}/perm"), &p, ordinal);
    let info = g.info(src);
    let mut node = Node::new(format!("{base}/{role}"), "Transpose", ordinal);
    node.set_role(0, Some(role));
    node.outputs = vec![ValueInfo {
        dtype: info.dtype,
        shape: info.shape.map(|s| perm.iter().map(|&a| s[a]).collect()),
    }];
    let t = g.add_node(node);
    g.connect(src, t, 0);
    g.connect(pv, t, 1);
    ValueRef { node: t, port: 0 }
}

/// `q * c` for a trained scalar `c`: the scores' learned scale, on q (`(c·q)·kᵀ = c·(q·kᵀ)`).
fn learned_scale(g: &mut Graph, base: &str, q: ValueRef, c: ValueRef, ordinal: usize) -> ValueRef {
    let mut node = Node::new(format!("{base}/scaled_q"), "Mul", ordinal);
    node.set_role(0, Some("q"));
    node.outputs = vec![g.info(q)];
    let mul = g.add_node(node);
    g.connect(q, mul, 0);
    g.connect(c, mul, 1);
    ValueRef { node: mul, port: 0 }
}

/// A boolean mask and what it lets through (a bias, or 0) as one float mask.
struct MaskSelect {
    mask: ValueRef,
    bias: Option<ValueRef>,
    /// What a masked key's score becomes (-inf, or TF's large negative constant).
    fill: f64,
    /// The mask is true where keys are masked.
    masked: bool,
}

/// `where(mask, bias, fill)` (`where(mask, fill, bias)` for a mask true where keys are
/// masked), of the scores' float type.
fn masked_bias(g: &mut Graph, base: &str, m: MaskSelect, dtype: DType, ordinal: usize) -> ValueRef {
    let MaskSelect { mask, bias, fill, masked } = m;
    let scalar = |g: &mut Graph, name: &str, x: f64| {
        let t = match dtype {
            DType::F64 => Tensor::from_f64(vec![], &[x]),
            _ => Tensor::from_f32(vec![], &[x as f32]),
        };
        let c = g.add_node(Node::constant(format!("{base}/{name}"), t, ordinal));
        let c_dtype = if dtype == DType::F64 { DType::F64 } else { DType::F32 };
        g.node_mut(c).outputs = vec![ValueInfo { dtype: Some(c_dtype), shape: Some(vec![]) }];
        ValueRef { node: c, port: 0 }
    };
    let fill = scalar(g, "masked", fill);
    let kept = match bias {
        Some(b) => b,
        None => scalar(g, "kept", 0.0),
    };
    let mut select = Node::new(format!("{base}/bias"), "SelectV2", ordinal);
    select.set_role(0, Some(if bias.is_some() { "bias" } else { "mask" }));
    let (mi, bi) = (g.info(mask), g.info(kept));
    let shape = match (mi.shape, bi.shape) {
        (Some(a), Some(b)) => crate::ops::util::broadcast(&Some(a), &Some(b)),
        _ => None,
    };
    select.outputs = vec![ValueInfo { dtype: Some(dtype), shape }];
    let select = g.add_node(select);
    let (a, b) = if masked { (fill, kept) } else { (kept, fill) };
    g.connect(mask, select, 0);
    g.connect(a, select, 1);
    g.connect(b, select, 2);
    ValueRef { node: select, port: 0 }
}

/// Points the readers of `shape` (a `Shape` of the scores, in SDPA's layout `[.., Lq, Lk]`)
/// at `q`'s and `k`'s sizes, so that nothing computes the scores but SDPA: one size taken
/// (`scores.shape[3]`) is taken from them (`k.shape[2]`); the whole shape is
/// `(*q.shape[0:3], *k.shape[2:3])`.
fn reroute_scores_shape(g: &mut Graph, base: &str, shape: NodeIndex, q: ValueRef, k: ValueRef) {
    let old = g.node(shape);
    let (attrs, ordinal) = (old.attrs.clone(), old.ordinal);
    let dtype = old.outputs.first().and_then(|o| o.dtype);
    let shape_of = |g: &mut Graph, v: ValueRef, role: &str| {
        let mut node = Node::new(format!("{base}/{role}_shape"), "Shape", ordinal);
        node.attrs = attrs.clone();
        node.outputs = vec![ValueInfo { dtype, shape: Some(vec![Some(4)]) }];
        let n = g.add_node(node);
        g.connect(v, n, 0);
        ValueRef { node: n, port: 0 }
    };
    // Scores axis `i` is q's axis `i`, but the last, which is k's keys (its axis 2).
    let source = |i: i64| if i == 3 { (k, 2, "k") } else { (q, i, "q") };
    let sizes = ValueRef { node: shape, port: 0 };
    for (reader, slot) in g.consumers(sizes) {
        let Some(i) = single_index(g, reader).filter(|_| slot == 0) else { continue };
        let (src, j, role) = source(i);
        let new_shape = shape_of(g, src, role);
        let begin = int_const(g, format!("{base}/{role}_size/begin"), &[j as i32], ordinal);
        let end = int_const(g, format!("{base}/{role}_size/end"), &[j as i32 + 1], ordinal);
        g.set_input(reader, 0, new_shape);
        g.set_input(reader, 1, begin);
        g.set_input(reader, 2, end);
    }
    if g.use_count(sizes) == 0 {
        return;
    }
    let range = |g: &mut Graph, v: ValueRef, role: &str, from: i32, to: i32| {
        let whole = shape_of(g, v, role);
        let begin = int_const(g, format!("{base}/{role}_sizes/begin"), &[from], ordinal);
        let end = int_const(g, format!("{base}/{role}_sizes/end"), &[to], ordinal);
        let strides = int_const(g, format!("{base}/{role}_sizes/strides"), &[1], ordinal);
        let mut node = Node::new(format!("{base}/{role}_sizes"), "StridedSlice", ordinal);
        let len = usize::try_from(to - from).unwrap_or(0);
        node.outputs = vec![ValueInfo { dtype, shape: Some(vec![Some(len)]) }];
        let n = g.add_node(node);
        for (slot, v) in [whole, begin, end, strides].into_iter().enumerate() {
            g.connect(v, n, slot);
        }
        ValueRef { node: n, port: 0 }
    };
    let qs = range(g, q, "q", 0, 3);
    let ks = range(g, k, "k", 2, 3);
    let t = Tensor::from_i32(vec![], &[0]);
    let mut axis = Node::constant(format!("{base}/scores_sizes/axis"), t, ordinal);
    axis.outputs = vec![ValueInfo { dtype: Some(DType::I32), shape: Some(vec![]) }];
    let axis = ValueRef { node: g.add_node(axis), port: 0 };
    let mut cat = Node::new(format!("{base}/scores_sizes"), "ConcatV2", ordinal);
    cat.outputs = vec![ValueInfo { dtype, shape: Some(vec![Some(4)]) }];
    let cat = g.add_node(cat);
    for (slot, v) in [qs, ks, axis].into_iter().enumerate() {
        g.connect(v, cat, slot);
    }
    g.replace_uses(sizes, ValueRef { node: cat, port: 0 });
}

/// Points `reader`, which takes run-time sizes of `scores` (SDPA's layout) through its size
/// constant's `Dim::Of` entries and reads them at `slot`, at `q`'s and `k`'s sizes instead.
fn reroute_scores_sizes(
    g: &mut Graph,
    reader: NodeIndex,
    slot: usize,
    scores: ValueRef,
    q: ValueRef,
    k: ValueRef,
) {
    use crate::ir::Dim;
    let Some((target_slot, _)) = crate::ir::target_slot(&g.node(reader).op) else {
        return;
    };
    let Some(&target) = g.inputs(reader).get(target_slot) else { return };
    let Some(mut partial) = g.node(target.node).partial.clone() else { return };
    let (mut reads_q, mut reads_k) = (false, false);
    for d in &mut partial.values {
        if let Dim::Of(v, a) = *d
            && v == scores
        {
            // Scores axis `a` is q's axis `a`, but the last, which is k's keys (its axis 2).
            *d = if a == 3 { Dim::Of(k, 2) } else { Dim::Of(q, a) };
            reads_q |= a != 3;
            reads_k |= a == 3;
        }
    }
    g.set_partial(target.node, partial);
    let source = if reads_q { q } else { k };
    g.set_input(reader, slot, source);
    if reads_q && reads_k {
        let next = g.inputs(reader).len();
        g.connect(k, reader, next);
    }
}

/// The axis a `StridedSlice` takes one size of (`shape[3]`, `shape[-1]`), made
/// non-negative against the scores' rank 4.
fn single_index(g: &Graph, reader: NodeIndex) -> Option<i64> {
    let node = g.node(reader);
    if node.op != "StridedSlice" {
        return None;
    }
    let mask = |k: &str| node.attr_int_or(k, 0).ok();
    if mask("shrink_axis_mask")? != 1
        || [mask("begin_mask")?, mask("end_mask")?, mask("ellipsis_mask")?, mask("new_axis_mask")?]
            != [0, 0, 0, 0]
    {
        return None;
    }
    let i = g.inputs(reader);
    let [begin] = const_ints(g, *i.get(1)?)?[..] else { return None };
    let [strides] = const_ints(g, *i.get(3)?)?[..] else { return None };
    let begin = if begin < 0 { begin + 4 } else { begin };
    ((0..4).contains(&begin) && strides == 1).then_some(begin)
}

/// `v · factor` (`v` itself for 1): a bias scaled as the scores it was added to.
/// `first` plus each of `more`, in order: the terms added to the scores, as one mask.
fn summed(
    g: &mut Graph,
    base: &str,
    first: ValueRef,
    more: &[ValueRef],
    ordinal: usize,
) -> ValueRef {
    let mut sum = first;
    for (k, &term) in more.iter().enumerate() {
        let (a, b) = (g.info(sum), g.info(term));
        let suffix = if k == 0 { String::new() } else { format!("_{k}") };
        let mut add = Node::new(format!("{base}/mask_sum{suffix}"), "AddV2", ordinal);
        add.outputs = vec![ValueInfo { dtype: a.dtype, shape: broadcast(&a.shape, &b.shape) }];
        let add = g.add_node(add);
        g.connect(sum, add, 0);
        g.connect(term, add, 1);
        sum = ValueRef { node: add, port: 0 };
    }
    sum
}

fn scaled(g: &mut Graph, base: &str, v: ValueRef, factor: f64, ordinal: usize) -> ValueRef {
    if factor == 1.0 {
        return v;
    }
    let info = g.info(v);
    if factor == -1.0 {
        let mut neg = Node::new(format!("{base}/negated_bias"), "Neg", ordinal);
        neg.outputs = vec![info];
        let neg = g.add_node(neg);
        g.connect(v, neg, 0);
        return ValueRef { node: neg, port: 0 };
    }
    let dtype = info.dtype.unwrap_or(DType::F32);
    let t = match dtype {
        DType::F64 => Tensor::from_f64(vec![], &[factor]),
        _ => Tensor::from_f32(vec![], &[factor as f32]),
    };
    let c = g.add_node(Node::constant(format!("{base}/bias_scale"), t, ordinal));
    let c_dtype = if dtype == DType::F64 { DType::F64 } else { DType::F32 };
    g.node_mut(c).outputs = vec![ValueInfo { dtype: Some(c_dtype), shape: Some(vec![]) }];
    let mut mul = Node::new(format!("{base}/scaled_bias"), "Mul", ordinal);
    mul.outputs = vec![info];
    let mul = g.add_node(mul);
    g.connect(v, mul, 0);
    g.connect(ValueRef { node: c, port: 0 }, mul, 1);
    ValueRef { node: mul, port: 0 }
}

/// `mask` without an all-true operand: Keras ands its mask with `ones_like(scores)` to give
/// it the scores' shape, which SDPA broadcasts it to anyway.
fn without_all_true(g: &Graph, mask: ValueRef) -> ValueRef {
    let Some((a, b)) = binary(g, mask, &["LogicalAnd"]) else { return mask };
    let all_true = |v: ValueRef| {
        let n = g.node(v.node);
        n.op == "Fill"
            && g.inputs(v.node)
                .get(1)
                .and_then(|&c| g.const_value(c))
                .is_some_and(|t| t.dtype == DType::Bool && t.data.iter().all(|&b| b != 0))
    };
    let fits = |v: ValueRef| g.info(v).shape.is_some_and(|s| s.len() <= 4);
    match (all_true(a), all_true(b)) {
        (true, false) if fits(b) => b,
        (false, true) if fits(a) => a,
        _ => mask,
    }
}

/// An additive `mask` without zeros added to it: T5 adds its cross-attention mask to a
/// position bias of zeros `[1, heads, T, S]`, a broadcast SDPA does itself.
fn without_zeros(g: &Graph, mask: ValueRef) -> ValueRef {
    let Some((a, b)) = binary(g, mask, &["Add", "AddV2"]) else { return mask };
    let zeros = |v: ValueRef| {
        let zero =
            |t: &crate::tensor::Tensor| t.to_f64().is_some_and(|v| v.iter().all(|&x| x == 0.0));
        match g.node(v.node).op.as_str() {
            "Fill" => g.inputs(v.node).get(1).and_then(|&c| g.const_value(c)).is_some_and(zero),
            "ZerosLike" => true,
            _ => g.const_value(v).is_some_and(zero),
        }
    };
    let fits = |v: ValueRef| {
        g.info(v).dtype == g.info(mask).dtype && g.info(v).shape.is_some_and(|s| s.len() <= 4)
    };
    match (zeros(a), zeros(b)) {
        (true, false) if fits(b) => b,
        (false, true) if fits(a) => a,
        _ => mask,
    }
}

/// Names what `mask` is, where nothing else named it (Keras' scope would call it `softmax`):
/// a learned position bias plus the padding mask (T5's relative attention bias) is the
/// `bias`, as Hugging Face's `position_bias`, and only its other operand the `mask`.
fn name_mask(g: &mut Graph, mask: ValueRef) {
    if let Some((a, b)) = binary(g, mask, &["Add", "AddV2"]) {
        let padding = if looked_up(g, a) {
            Some(b)
        } else if looked_up(g, b) {
            Some(a)
        } else {
            None
        };
        if let Some(padding) = padding {
            g.name_computed(mask, "bias");
            g.name_computed(padding, "mask");
            return;
        }
    }
    g.name_computed(mask, "mask");
}

/// Whether `v` is rows of a trained table, laid out anew: an embedding's lookup.
fn looked_up(g: &Graph, mut v: ValueRef) -> bool {
    for _ in 0..4 {
        let node = g.node(v.node);
        let Some(&first) = g.inputs(v.node).first() else { return false };
        match node.op.as_str() {
            "GatherV2" | "ResourceGather" => return g.node(first.node).variable,
            "ExpandDims" | "Transpose" | "Reshape" | "Squeeze" | "Identity" => v = first,
            _ => return false,
        }
    }
    false
}

/// Installs the fused node: what it returns.
fn install(g: &mut Graph, m: Match) -> NodeIndex {
    let (base, ordinal) = (g.node(m.out).name.clone(), g.node(m.out).ordinal);
    let mut q = arranged(g, m.rank, m.q, &base, "q", ordinal);
    for &c in &m.learned {
        q = learned_scale(g, &base, q, c, ordinal);
    }
    let k = arranged(g, m.rank, m.k, &base, "k", ordinal);
    let v = arranged(g, m.rank, m.v, &base, "v", ordinal);
    // A bias under a boolean mask: `where(mask, bias, -inf)`, added like any float mask
    // (a masked key gets no weight, a query with no key left gets zeros, as in TF).
    let dtype = g.info(v).dtype.unwrap_or(DType::F32);
    let mask = m.mask.map(|(mask, kind)| (without_all_true(g, mask), kind));
    let mask = match (mask, m.bias) {
        (Some((mask, AttentionMask::Bool)), bias) if bias.is_some() || m.fill.is_some() => {
            name_mask(g, mask);
            let bias = bias.map(|b| summed(g, &base, b, &m.more_terms, ordinal));
            let bias = bias.map(|b| scaled(g, &base, b, m.bias_factor, ordinal));
            let fill = m.fill.unwrap_or(f64::NEG_INFINITY);
            let select = MaskSelect { mask, bias, fill, masked: m.negate_mask };
            let float = masked_bias(g, &base, select, dtype, ordinal);
            Some((float, AttentionMask::Additive))
        }
        (Some((mask, AttentionMask::Additive)), None) => {
            let mask = summed(g, &base, without_zeros(g, mask), &m.more_terms, ordinal);
            let mask = match m.mask_shape {
                Some(shape) => reshaped(g, &base, mask, shape, m.scores, ordinal),
                None => mask,
            };
            Some((scaled(g, &base, mask, m.bias_factor, ordinal), AttentionMask::Additive))
        }
        (mask, _) => mask,
    };
    for &shape in &m.scores_shapes {
        reroute_scores_shape(g, &base, shape, q, k);
    }
    for &(reader, slot) in &m.scores_sizes {
        reroute_scores_sizes(g, reader, slot, m.scores, q, k);
    }
    let kind = mask.as_ref().map(|(_, kind)| *kind);
    let op = Fused::Attention { scale: m.scale as f32, mask: kind, gqa: m.gqa };
    let mut inputs = vec![q, k, v];
    if let Some((mask, _)) = mask {
        inputs.push(mask);
        name_mask(g, mask);
    }
    // What only the old matmul read is left for `prune`.
    let out_axes = m.rank.real(m.out_axes).unwrap_or_default();
    if out_axes.iter().enumerate().all(|(i, &a)| i == a) {
        return replace_with_fused(g, m.out, op, &inputs);
    }
    // An einsum that wrote another layout: SDPA's output, transposed to it.
    let info = g.info(ValueRef { node: m.out, port: 0 });
    let mut sdpa_shape = info.shape.clone();
    if let (Some(sdpa), Some(out)) = (sdpa_shape.as_mut(), info.shape.as_ref()) {
        for (j, &a) in out_axes.iter().enumerate() {
            sdpa[a] = out[j];
        }
    }
    let mut node = Node::fused(format!("{base}/attention"), op, ordinal);
    node.outputs = vec![ValueInfo { dtype: info.dtype, shape: sdpa_shape }];
    let fused = g.add_node(node);
    for (slot, &input) in inputs.iter().enumerate() {
        g.connect(input, fused, slot);
    }
    let perm: Vec<i32> = out_axes.iter().map(|&a| a as i32).collect();
    let perm = int_const(g, format!("{base}/perm"), &perm, ordinal);
    let mut t = Node::new(base, "Transpose", ordinal);
    t.outputs = vec![info];
    let t = g.add_node(t);
    g.connect(ValueRef { node: fused, port: 0 }, t, 0);
    g.connect(perm, t, 1);
    g.replace_uses(ValueRef { node: m.out, port: 0 }, ValueRef { node: t, port: 0 });
    g.g.remove_node(m.out);
    fused
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::tensor::{DType, Tensor, Values};
    use crate::testing::*;
    use insta::assert_snapshot;

    fn scalar(g: &mut TestGraph, name: &str, x: f32) -> ValueRef {
        g.constant(name, Tensor::from_f32(vec![], &[x]))
    }

    /// T5: a trained table's rows (the relative position bias) plus the padding mask. The
    /// sum is the `bias`; only the padding term is the `mask`. A sum of two computed values
    /// neither of which is looked up is the mask, as any other.
    #[test]
    fn a_looked_up_bias_plus_a_mask_is_the_bias() {
        let mut g = TestGraph::new();
        let ids = g.typed_input("buckets", &[4, 4], DType::I32);
        let padding = g.input("padding", &[-1, 1, 1, 4]);
        let table = g.variable("table", weights(&[32, 2]));
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let rows = g.op("t/Gather", "GatherV2", &[table, ids, axis], &[]);
        let perm = g.constant("perm", int_tensor(&[3], &[2, 0, 1]));
        let rows = g.op("t/transpose", "Transpose", &[rows, perm], &[]);
        let big = scalar(&mut g, "big", -1e9);
        let additive = g.op("t/mul", "Mul", &[padding, big], &[]);
        let sum = g.op("t/add", "AddV2", &[rows, additive], &[]);
        let other = g.op("t/add_1", "AddV2", &[additive, padding], &[]);
        let mut graph = g.build(&[sum, other]);
        super::name_mask(&mut graph, sum);
        super::name_mask(&mut graph, other);
        let role = |v: ValueRef| graph.node(v.node).role(v.port);
        assert_eq!((role(sum), role(additive)), (Some("bias"), Some("mask")));
        assert_eq!(role(other), Some("mask"));
    }

    /// Keras 3's masked softmax and value product: `where(mask, scores, -1e9)`, softmax,
    /// `where(mask, probs, 0)`, then `@ v`.
    fn masked_attention(g: &mut TestGraph, mask: ValueRef, s: ValueRef, v: ValueRef) -> ValueRef {
        let big = scalar(g, "att/big", -1e9);
        let masked = g.op("att/SelectV2", "SelectV2", &[mask, s, big], &[]);
        let p = g.op("att/Softmax", "Softmax", &[masked], &[]);
        let zero = scalar(g, "att/zero", 0.0);
        let pz = g.op("att/SelectV2_1", "SelectV2", &[mask, p, zero], &[]);
        g.op("att/MatMul_1", "BatchMatMulV2", &[pz, v], &[])
    }

    /// `q @ k^T` (`adj_y`): the scores most tests start from.
    fn scores(g: &mut TestGraph, q: ValueRef, k: ValueRef) -> ValueRef {
        g.op("att/MatMul", "BatchMatMulV2", &[q, k], &[("adj_y", boolean(true))])
    }

    /// `softmax(logits) @ v`.
    fn attend(g: &mut TestGraph, logits: ValueRef, v: ValueRef) -> ValueRef {
        let p = g.op("att/Softmax", "Softmax", &[logits], &[]);
        g.op("att/MatMul_1", "BatchMatMulV2", &[p, v], &[])
    }

    fn transpose(g: &mut TestGraph, name: &str, x: ValueRef, perm: &[i64]) -> ValueRef {
        let p = g.constant(&format!("{name}/perm"), int_tensor(&[4], perm));
        g.op(name, "Transpose", &[x, p], &[])
    }

    /// Keras 3's MultiHeadAttention: q scaled before its transpose, `k @ q` then transposed
    /// back, a boolean mask applied with `where` before and after the softmax.
    #[test]
    fn keras_einsum_form_with_a_boolean_mask() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 5, 2, 8]);
        let k = g.input("k", &[-1, 5, 2, 8]);
        let v = g.input("v", &[-1, 5, 2, 8]);
        let mask = g.typed_input("mask", &[-1, 1, 1, 5], DType::Bool);
        let c = scalar(&mut g, "att/scale", 0.25);
        let qs = g.op("att/Mul", "Mul", &[q, c], &[]);
        let qt = transpose(&mut g, "att/transpose_1", qs, &[0, 2, 3, 1]);
        let kt = transpose(&mut g, "att/transpose", k, &[0, 2, 1, 3]);
        let mm = g.op("att/MatMul", "BatchMatMulV2", &[kt, qt], &[]);
        let s = transpose(&mut g, "att/transpose_2", mm, &[0, 1, 3, 2]);
        let vt = transpose(&mut g, "att/transpose_3", v, &[0, 2, 1, 3]);
        let o = masked_attention(&mut g, mask, s, vt);
        let y = transpose(&mut g, "att/transpose_4", o, &[0, 2, 1, 3]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        q_2 = q.permute(0, 2, 1, 3)
        k_2 = k.permute(0, 2, 1, 3)
        v_2 = v.permute(0, 2, 1, 3)
        x = F.scaled_dot_product_attention(q_2, k_2, v_2, attn_mask=mask, scale=0.25)
        x = x.permute(0, 2, 1, 3)
        return x
        ");
    }

    /// Keras's bfloat16 layers: the scores widened to float32 for a masked softmax, the
    /// probabilities narrowed back for the value product. SDPA on the bfloat16 operands
    /// computes its softmax in float32 too; its output is bfloat16, as the product's is.
    #[test]
    fn scores_widened_for_the_softmax() {
        let mut g = TestGraph::new();
        let bf16 = |g: &mut TestGraph, name: &str| g.typed_input(name, &[-1, 2, 5, 8], DType::BF16);
        let (q, k, v) = (bf16(&mut g, "q"), bf16(&mut g, "k"), bf16(&mut g, "v"));
        let mask = g.typed_input("mask", &[-1, 1, 5, 5], DType::Bool);
        let quarter = Tensor::with_values_like(DType::BF16, vec![], &Values::F(vec![0.25]));
        let c = g.constant("att/scale", quarter.unwrap());
        let s = scores(&mut g, q, k);
        let s = g.op("att/Mul", "Mul", &[s, c], &[]);
        let to = |d| [("SrcT", dtype(DType::BF16)), ("DstT", dtype(d))];
        let s = g.op("att/Cast", "Cast", &[s], &to(DType::F32));
        let big = scalar(&mut g, "att/big", -1e9);
        let masked = g.op("att/SelectV2", "SelectV2", &[mask, s, big], &[]);
        let p = g.op("att/Softmax", "Softmax", &[masked], &[]);
        let zero = scalar(&mut g, "att/zero", 0.0);
        let p = g.op("att/SelectV2_1", "SelectV2", &[mask, p, zero], &[]);
        let narrow = [("SrcT", dtype(DType::F32)), ("DstT", dtype(DType::BF16))];
        let p = g.op("att/Cast_1", "Cast", &[p], &narrow);
        let o = g.op("att/MatMul_1", "BatchMatMulV2", &[p, v], &[]);
        assert_snapshot!(g.lower(&[o]), @"
        ---
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.25)
        return x
        ");
    }

    /// A product left in float32 after the softmax is not SDPA's on bfloat16 operands.
    #[test]
    fn probabilities_left_wide_are_no_bfloat16_attention() {
        let mut g = TestGraph::new();
        let bf16 = |g: &mut TestGraph, name: &str| g.typed_input(name, &[-1, 2, 5, 8], DType::BF16);
        let (q, k) = (bf16(&mut g, "q"), bf16(&mut g, "k"));
        let v = g.input("v", &[-1, 2, 5, 8]);
        let s = scores(&mut g, q, k);
        let to = [("SrcT", dtype(DType::BF16)), ("DstT", dtype(DType::F32))];
        let s = g.op("att/Cast", "Cast", &[s], &to);
        let o = attend(&mut g, s, v);
        let out = g.lower(&[o]);
        assert!(!out.contains("scaled_dot_product_attention"), "{out}");
    }

    /// Keras' `Attention(use_scale=True)`: the scores times a trained scalar. It stays a
    /// parameter, on q (SDPA's `scale` is a number); a constant factor still folds into
    /// `scale`.
    #[test]
    fn a_trained_scale_multiplies_q() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 5, 8]);
        let k = g.input("k", &[-1, 5, 8]);
        let v = g.input("v", &[-1, 5, 8]);
        let learned = g.variable("att/scale", Tensor::from_f32(vec![], &[0.7]));
        let c = scalar(&mut g, "att/half", 0.5);
        let mm = scores(&mut g, q, k);
        let s = g.op("att/Mul", "Mul", &[learned, mm], &[]);
        let s = g.op("att/Mul_1", "Mul", &[s, c], &[]);
        let o = attend(&mut g, s, v);
        assert_snapshot!(g.lower(&[o]), @"
        self.scale: [] float32
        # scale: []
        ---
        q_2 = q * self.scale
        x = F.scaled_dot_product_attention(q_2, k, v, scale=0.5)
        return x
        ");
    }

    /// `softmax(q @ k^T / sqrt(d) + bias) @ v` (`transpose_b`), with an additive mask: one
    /// call with the default scale.
    #[test]
    fn additive_mask_and_adjoint_keys() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, 5, 16]);
        let k = g.input("k", &[-1, 2, 5, 16]);
        let v = g.input("v", &[-1, 2, 5, 16]);
        let bias = g.input("bias", &[-1, 1, 1, 5]);
        let mm = scores(&mut g, q, k);
        let c = scalar(&mut g, "att/sqrt_d", 4.0);
        let s = g.op("att/truediv", "RealDiv", &[mm, c], &[]);
        let masked = g.op("att/add", "AddV2", &[bias, s], &[]);
        let o = attend(&mut g, masked, v);
        assert_snapshot!(g.lower(&[o]), @"
        ---
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return x
        ");
    }

    /// T5's cross-attention: the mask added to a position bias of zeros `[1, heads, T, S]`
    /// (made at run time), then to the scores. SDPA broadcasts the mask itself: the mask
    /// alone. Zeros of another dtype than the mask's stay (the sum would promote).
    #[test]
    fn a_mask_added_to_zeros_is_the_mask() {
        let lower = |zero_dtype: DType| {
            let mut g = TestGraph::new();
            let q = g.input("q", &[-1, 2, 5, 16]);
            let k = g.input("k", &[-1, 2, 7, 16]);
            let v = g.input("v", &[-1, 2, 7, 16]);
            let mask = g.input("mask", &[-1, 1, 1, 7]);
            let n = g.typed_input("n", &[], DType::I32);
            let dims = [1, 2, 5].map(|d| g.constant(&format!("d{d}"), int_tensor(&[], &[d])));
            let shape =
                g.op("zeros/shape", "Pack", &[dims[0], dims[1], dims[2], n], &[("N", int(4))]);
            let zero = match zero_dtype {
                DType::F32 => Tensor::from_f32(vec![], &[0.0]),
                _ => Tensor::from_f64(vec![], &[0.0]),
            };
            let zero = g.constant("zeros/value", zero);
            let zeros = g.op("zeros", "Fill", &[shape, zero], &[]);
            let bias = g.op("bias", "AddV2", &[zeros, mask], &[]);
            let s = scores(&mut g, q, k);
            let masked = g.op("att/add", "AddV2", &[s, bias], &[]);
            let o = attend(&mut g, masked, v);
            g.lower(&[o])
        };
        assert_snapshot!(lower(DType::F32), @"
        ---
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        return x
        ");
        assert!(lower(DType::F64).contains("torch.zeros"));
    }

    /// ViTDet and SAM: relative positions added to the scores seen as `[B, h, w, h, w]`,
    /// then back to `[B, hw, hw]`. The terms fill that shape: their sum, reshaped, is the
    /// mask. A term that leaves an axis to the scores alone is no mask.
    #[test]
    fn a_bias_added_to_the_scores_in_another_shape_is_a_reshaped_mask() {
        let reshaped_attention = |w_shape: &[i64]| {
            let mut g = TestGraph::new();
            let q = g.input("q", &[-1, 4, 16]);
            let k = g.input("k", &[-1, 4, 16]);
            let v = g.input("v", &[-1, 4, 16]);
            let rel_h = g.input("rel_h", &[-1, 2, 2, 2, 1]);
            let rel_w = g.input("rel_w", &[-1, 2, 2, 1, 2]);
            let ws = shape(&mut g, "att/ws", w_shape);
            let rel_w = g.op("att/w", "Reshape", &[rel_w, ws], &[]);
            let mm = scores(&mut g, q, k);
            let view = shape(&mut g, "att/view", &[-1, 2, 2, 2, 2]);
            let viewed = g.op("att/Reshape", "Reshape", &[mm, view], &[]);
            let s = g.op("att/add", "AddV2", &[viewed, rel_h], &[]);
            let s = g.op("att/add_1", "AddV2", &[s, rel_w], &[]);
            let back = shape(&mut g, "att/back", &[-1, 4, 4]);
            let logits = g.op("att/Reshape_1", "Reshape", &[s, back], &[]);
            let o = attend(&mut g, logits, v);
            g.lower(&[o])
        };
        assert_snapshot!(reshaped_attention(&[-1, 2, 2, 1, 2]), @"
        ---
        mask = (rel_h + rel_w).reshape(-1, 4, 4)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        return x
        ");
        let partial = reshaped_attention(&[-1, 2, 2, 1, 1]);
        assert!(!partial.contains("scaled_dot_product_attention"), "{partial}");
    }

    fn shape(g: &mut TestGraph, name: &str, dims: &[i64]) -> ValueRef {
        g.constant(name, int_tensor(&[dims.len()], dims))
    }

    /// Llama: key and value heads repeated for grouped-query attention, no mask, a scale
    /// on the scores.
    #[test]
    fn repeated_key_value_heads_are_grouped_query_attention() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 5, 4, 8]);
        let k = g.input("k", &[-1, 5, 2, 8]);
        let v = g.input("v", &[-1, 5, 2, 8]);
        let repeat = crate::ir::fused::Fused::RepeatInterleave { axis: 2, repeats: 2 };
        let kr = g.fused("att/k_rep", repeat.clone(), &[k]);
        let vr = g.fused("att/v_rep", repeat, &[v]);
        g.set_shape(kr, &[-1, 5, 4, 8]);
        g.set_shape(vr, &[-1, 5, 4, 8]);
        let qt = transpose(&mut g, "att/qt", q, &[0, 2, 1, 3]);
        let kt = transpose(&mut g, "att/kt", kr, &[0, 2, 3, 1]);
        let mm = g.op("att/MatMul", "BatchMatMulV2", &[qt, kt], &[]);
        let c = scalar(&mut g, "att/scale", 0.5);
        let s = g.op("att/mul", "Mul", &[mm, c], &[]);
        let p = g.op("att/Softmax", "Softmax", &[s], &[]);
        let vt = transpose(&mut g, "att/vt", vr, &[0, 2, 1, 3]);
        let o = g.op("att/MatMul_1", "BatchMatMulV2", &[p, vt], &[]);
        assert_snapshot!(g.lower(&[o]), @"
        ---
        q_2 = q.permute(0, 2, 1, 3)
        k_2 = k.permute(0, 2, 1, 3)
        v_2 = v.permute(0, 2, 1, 3)
        x = F.scaled_dot_product_attention(q_2, k_2, v_2, scale=0.5, enable_gqa=True)
        return x
        ");
    }

    /// DeBERTa: relative-position terms added to the scores, all under a boolean mask: one
    /// float mask, `-inf` where the boolean one is false.
    #[test]
    fn a_bias_under_a_boolean_mask_becomes_one_float_mask() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, 5, 16]);
        let k = g.input("k", &[-1, 2, 5, 16]);
        let v = g.input("v", &[-1, 2, 5, 16]);
        let rel = g.input("rel", &[-1, 2, 5, 5]);
        let mask = g.typed_input("mask", &[-1, 1, 1, 5], DType::Bool);
        let mm = scores(&mut g, q, k);
        let s = g.op("att/add", "AddV2", &[mm, rel], &[]);
        let o = masked_attention(&mut g, mask, s, v);
        assert_snapshot!(g.lower(&[o]), @r#"
        ---
        bias = torch.where(mask, rel, float("-inf"))
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        return x
        "#);
    }

    /// Falcon adds its ALiBi bias to the raw scores and scales the sum: the bias is scaled
    /// with the scores, into the one float mask.
    #[test]
    fn a_bias_added_before_the_scale_is_scaled_with_the_scores() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, 5, 16]);
        let k = g.input("k", &[-1, 2, 5, 16]);
        let v = g.input("v", &[-1, 2, 5, 16]);
        let alibi = g.input("alibi", &[-1, 2, 1, 5]);
        let mask = g.typed_input("mask", &[-1, 1, 5, 5], DType::Bool);
        let mm = scores(&mut g, q, k);
        let s = g.op("att/add", "AddV2", &[mm, alibi], &[]);
        let c = scalar(&mut g, "att/scale", 0.5);
        let s = g.op("att/mul", "Mul", &[s, c], &[]);
        let o = masked_attention(&mut g, mask, s, v);
        assert_snapshot!(g.lower(&[o]), @r#"
        ---
        x = alibi * 0.5
        bias = torch.where(mask, x, float("-inf"))
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.5)
        return x
        "#);
    }

    /// Bloom builds its ALiBi positions from the scores' size: it is read from k (and q)
    /// instead, and nothing computes the scores but SDPA.
    #[test]
    fn sizes_read_from_the_scores_come_from_q_and_k() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, 5, 16]);
        let k = g.input("k", &[-1, 2, -1, 16]);
        let v = g.input("v", &[-1, 2, -1, 16]);
        let mm = scores(&mut g, q, k);
        let c = scalar(&mut g, "att/scale", 0.25);
        let s = g.op("att/mul", "Mul", &[mm, c], &[]);
        let shape = g.op("att/Shape", "Shape", &[s], &[]);
        let (b, e, st) = (
            g.constant("att/b", int_tensor(&[1], &[-1])),
            g.constant("att/e", int_tensor(&[1], &[0])),
            g.constant("att/s", int_tensor(&[1], &[1])),
        );
        let keys =
            g.op("att/keys", "StridedSlice", &[shape, b, e, st], &[("shrink_axis_mask", int(1))]);
        let bias = g.input("bias", &[-1, 2, 5, -1]);
        let s = g.op("att/add", "AddV2", &[s, bias], &[]);
        let o = attend(&mut g, s, v);
        assert_snapshot!(g.lower(&[o, keys]), @"
        ---
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        keys = k.shape[2]
        keys_t = torch.tensor(keys, dtype=torch.int32)
        return x, keys_t
        ");
    }

    /// Keras' einsum spelling (ViT, ALBERT, ESM): `BTNH,BSNH->BNTS` scores, a mask that
    /// selects a large negative score with nothing zeroing the probabilities after, and
    /// `BNTS,BSNH->BTNH` values: one call on q, k, v transposed to SDPA's layout, its output
    /// transposed back, the mask a float one (a query with every key masked averages every
    /// value, in TF and here).
    #[test]
    fn einsum_form_with_a_selected_mask_and_no_zeroing() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 5, 2, 8]);
        let k = g.input("k", &[-1, 5, 2, 8]);
        let v = g.input("v", &[-1, 5, 2, 8]);
        let mask = g.typed_input("mask", &[-1, 1, 1, 5], DType::Bool);
        let eq = |e: &str| ("equation", string(e));
        let s = g.op("att/einsum", "Einsum", &[q, k], &[eq("BTNH,BSNH->BNTS"), ("N", int(2))]);
        let c = scalar(&mut g, "att/scale", 0.25);
        let s = g.op("att/Mul", "Mul", &[s, c], &[]);
        let big = scalar(&mut g, "att/min", -2.372671e38);
        let masked = g.op("att/SelectV2", "SelectV2", &[mask, s, big], &[]);
        let p = g.op("att/Softmax", "Softmax", &[masked], &[]);
        let o = g.op("att/einsum_1", "Einsum", &[p, v], &[eq("BNTS,BSNH->BTNH"), ("N", int(2))]);
        assert_snapshot!(g.lower(&[o]), @"
            ---
            q_2 = q.permute(0, 2, 1, 3)
            k_2 = k.permute(0, 2, 1, 3)
            v_2 = v.permute(0, 2, 1, 3)
            mask_2 = torch.where(mask, 0.0, -2.372671e38)
            x = F.scaled_dot_product_attention(q_2, k_2, v_2, attn_mask=mask_2, scale=0.25)
            x = x.permute(0, 2, 1, 3)
            return x
            ");
    }

    /// A mask subtracted from the scores (`scores - 1e9 * (1 - mask)`, as hand-written TF
    /// code has it): its negation is the additive mask.
    #[test]
    fn a_subtracted_mask_is_an_additive_one() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, 5, 16]);
        let k = g.input("k", &[-1, 2, 5, 16]);
        let v = g.input("v", &[-1, 2, 5, 16]);
        let penalty = g.input("penalty", &[-1, 1, 1, 5]);
        let mm = scores(&mut g, q, k);
        let c = scalar(&mut g, "att/scale", 0.25);
        let s = g.op("att/mul", "Mul", &[mm, c], &[]);
        let masked = g.op("att/sub", "Sub", &[s, penalty], &[]);
        let o = attend(&mut g, masked, v);
        assert_snapshot!(g.lower(&[o]), @"
            ---
            mask = -penalty
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return x
            ");
    }

    /// Single-head attention on `[B, T, E]` tensors (Keras' `Attention` layer, a
    /// hand-written `softmax(q @ transpose(k)) @ v`): SDPA takes rank 3 as it is.
    #[test]
    fn single_head_attention_of_rank_three() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 5, 16]);
        let k = g.input("k", &[-1, 7, 16]);
        let v = g.input("v", &[-1, 7, 8]);
        let penalty = g.input("penalty", &[-1, 1, 7]);
        let p = g.constant("att/kt/perm", int_tensor(&[3], &[0, 2, 1]));
        let kt = g.op("att/kt", "Transpose", &[k, p], &[]);
        let mm = g.op("att/MatMul", "BatchMatMulV2", &[q, kt], &[]);
        let c = scalar(&mut g, "att/scale", 0.5);
        let s = g.op("att/mul", "Mul", &[mm, c], &[]);
        let masked = g.op("att/sub", "Sub", &[s, penalty], &[]);
        let o = attend(&mut g, masked, v);
        assert_snapshot!(g.lower(&[o]), @"
        ---
        mask = -penalty
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.5)
        return x
        ");
    }

    /// Keras' `Attention` layer: `where(masked, scores - 1e9, scores)`, the mask true where
    /// a key is masked; and the other way round, `where(kept, scores, scores + c)`.
    #[test]
    fn a_large_negative_offset_selected_by_a_mask() {
        for kept in [false, true] {
            let mut g = TestGraph::new();
            let q = g.input("q", &[-1, 5, 16]);
            let k = g.input("k", &[-1, 7, 16]);
            let v = g.input("v", &[-1, 7, 8]);
            let m = g.typed_input("m", &[-1, 1, 7], DType::Bool);
            let s = scores(&mut g, q, k);
            let big = scalar(&mut g, "att/big", 1e9);
            let off = if kept {
                let neg = scalar(&mut g, "att/neg", -1e9);
                g.op("att/add", "AddV2", &[neg, s], &[])
            } else {
                g.op("att/sub", "Sub", &[s, big], &[])
            };
            let ins = if kept { [m, s, off] } else { [m, off, s] };
            let sel = g.op("att/select", "SelectV2", &ins, &[]);
            let o = attend(&mut g, sel, v);
            let code = g.lower(&[o]);
            let mask = if kept {
                "torch.where(m, 0.0, -1000000000.0)"
            } else {
                "torch.where(m, -1000000000.0, 0.0)"
            };
            assert!(code.contains(mask), "{code}");
            assert!(
                code.contains("F.scaled_dot_product_attention(q, k, v, attn_mask=mask"),
                "{code}"
            );
        }
    }

    /// Hugging Face's `stable_softmax` (ViT): 1e-9 added to every score, no mask.
    #[test]
    fn a_constant_added_to_every_score_is_no_mask() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, 5, 16]);
        let k = g.input("k", &[-1, 2, 5, 16]);
        let v = g.input("v", &[-1, 2, 5, 16]);
        let s = scores(&mut g, q, k);
        let c = scalar(&mut g, "att/scale", 0.25);
        let s = g.op("att/mul", "Mul", &[s, c], &[]);
        let tiny = scalar(&mut g, "att/tiny", 1e-9);
        let shifted = g.op("att/add", "AddV2", &[s, tiny], &[]);
        let o = attend(&mut g, shifted, v);
        assert_snapshot!(g.lower(&[o]), @"
        ---
        x = F.scaled_dot_product_attention(q, k, v)
        return x
        ");
    }

    /// Hugging Face's CLIP: the causal mask added to the scaled scores, then the padding
    /// mask, then `stable_softmax`'s 1e-9: the two masks are one, summed.
    #[test]
    fn masks_added_one_after_the_other_are_summed() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, 5, 16]);
        let k = g.input("k", &[-1, 2, 5, 16]);
        let v = g.input("v", &[-1, 2, 5, 16]);
        let causal = g.input("causal", &[1, 1, 5, 5]);
        let padding = g.input("padding", &[-1, 1, 1, 5]);
        let s = scores(&mut g, q, k);
        let c = scalar(&mut g, "att/scale", 0.25);
        let s = g.op("att/mul", "Mul", &[s, c], &[]);
        let s = g.op("att/add", "AddV2", &[s, causal], &[]);
        let s = g.op("att/add_1", "AddV2", &[s, padding], &[]);
        let tiny = scalar(&mut g, "att/tiny", 1e-9);
        let s = g.op("att/add_2", "AddV2", &[s, tiny], &[]);
        let o = attend(&mut g, s, v);
        assert_snapshot!(g.lower(&[o]), @"
        ---
        mask = causal + padding
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return x
        ");
    }

    /// A rank-3 einsum writing the output transposed (`bts,bse->bet`).
    #[test]
    fn single_head_einsum_with_a_transposed_output() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 5, 16]);
        let k = g.input("k", &[-1, 7, 16]);
        let v = g.input("v", &[-1, 7, 16]);
        let eq = |e: &str| [("equation", string(e))];
        let s = g.op("att/scores", "Einsum", &[q, k], &eq("bte,bse->bts"));
        let p = g.op("att/Softmax", "Softmax", &[s], &[]);
        let o = g.op("att/out", "Einsum", &[p, v], &eq("bts,bse->bet"));
        assert_snapshot!(g.lower(&[o]), @"
        ---
        x = F.scaled_dot_product_attention(q, k, v, scale=1.0).permute(0, 2, 1)
        return x
        ");
    }

    /// Scores the model also returns (Keras' `return_attention_scores`) stay as they are.
    #[test]
    fn probabilities_read_elsewhere_are_left_alone() {
        let mut g = TestGraph::new();
        let q = g.input("q", &[-1, 2, 5, 16]);
        let k = g.input("k", &[-1, 2, 5, 16]);
        let v = g.input("v", &[-1, 2, 5, 16]);
        let mm = scores(&mut g, q, k);
        let p = g.op("att/Softmax", "Softmax", &[mm], &[]);
        let o = g.op("att/MatMul_1", "BatchMatMulV2", &[p, v], &[]);
        let code = g.lower(&[o, p]);
        assert!(!code.contains("scaled_dot_product_attention"), "{code}");
    }
}
