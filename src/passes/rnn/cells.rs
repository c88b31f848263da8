//! One matcher per recurrent cell. Each reads the gates off the step's dataflow and returns
//! the weights in PyTorch's layout and gate order ([`Cell::param_names`] says which is which).

use petgraph::stable_graph::NodeIndex;

use std::collections::BTreeMap;

use super::dataflow::{Block, affine, block, block_of, split_of};
use crate::ir::fused::Cell;
use crate::ir::{Graph, ValueRef};
use crate::passes::pattern::{is_op, is_scalar, is_zeros, operands, producer, unary_input};
use crate::tensor::Tensor;

/// A recognised cell and its weights.
pub(super) struct CellMatch {
    pub cell: Cell,
    pub weights: [Tensor; 4],
}

/// Concatenates column blocks `[b*n, (b+1)*n)` of a `[rows, k*n]` matrix in `order`, transposed
/// to `[len(order)*n, rows]` (PyTorch's `weight_*` layout).
fn gate_rows(w: &Tensor, n: usize, order: &[usize]) -> Option<Tensor> {
    let rows = *w.shape.first()?;
    let cols = *w.shape.get(1)?;
    let v = w.to_f32()?;
    let mut out = Vec::with_capacity(order.len() * n * rows);
    for &b in order {
        for j in b * n..(b + 1) * n {
            if j >= cols {
                return None;
            }
            out.extend((0..rows).map(|r| v[r * cols + j]));
        }
    }
    Some(Tensor::from_f32(vec![order.len() * n, rows], &out))
}

fn gate_bias(b: Option<&[f32]>, n: usize, order: &[usize], width: usize) -> Tensor {
    let zeros = vec![0.0; width];
    let b = b.unwrap_or(&zeros);
    let v: Vec<f32> = order.iter().flat_map(|&k| b[k * n..(k + 1) * n].iter().copied()).collect();
    Tensor::from_f32(vec![v.len()], &v)
}

/// The weights of a `torch.nn` recurrent layer from Keras kernels `[in, k·units]` and
/// `[units, k·units]`, their gate blocks taken in PyTorch's order (`orders`), and biases (zeros
/// where Keras has none).
fn torch_layer_cell(
    cell: Cell,
    [kx, kh]: [&Tensor; 2],
    units: usize,
    [x_order, h_order]: [&[usize]; 2],
    [b_ih, b_hh]: [Option<&[f32]>; 2],
) -> Option<CellMatch> {
    let width = x_order.len() * units;
    Some(CellMatch {
        cell,
        weights: [
            gate_rows(kx, units, x_order)?,
            gate_rows(kh, units, h_order)?,
            gate_bias(b_ih, units, x_order, width),
            gate_bias(b_hh, units, h_order, width),
        ],
    })
}

/// Kernel `[in, k*units]` from input `x` and recurrent kernel `[units, k*units]` from `h`.
fn kernels(
    terms: &BTreeMap<ValueRef, Tensor>,
    x: ValueRef,
    h: ValueRef,
    k: usize,
) -> Option<(Tensor, Tensor, usize)> {
    let (kx, kh) = (terms.get(&x)?, terms.get(&h)?);
    let width = *kh.shape.get(1)?;
    let units = width / k;
    let x_width = kx.shape.get(1).copied();
    (terms.len() == 2 && width % k == 0 && kh.shape == [units, width] && x_width == Some(width))
        .then(|| (kx.clone(), kh.clone(), units))
}

/// `h' = σ(z_o)·tanh(c')`, `c' = σ(z_f)·c + σ(z_i)·tanh(z_g)`, `z = split₄(x·K + h·R + b)`.
pub(super) fn lstm_cell(
    body: &Graph,
    x: ValueRef,
    h: ValueRef,
    c: ValueRef,
    h_next: ValueRef,
    c_next: ValueRef,
) -> Option<CellMatch> {
    let gate = |v: ValueRef| unary_input(body, v, "Sigmoid");
    // A gate's pre-activation, with the constant TF1 adds to one (`forget_bias`).
    let shifted = |v: ValueRef| -> Option<(ValueRef, f32)> {
        match operands(body, v, &["AddV2", "Add"], |a| is_op(body, a, "Split")) {
            Some((split, c)) => {
                let t = body.const_value(c).filter(|t| t.numel() == 1)?;
                Some((split, t.to_f32()?[0]))
            }
            None => Some((v, 0.0)),
        }
    };
    let (o, tanh_c) = operands(body, h_next, &["Mul"], |a| gate(a).is_some())?;
    if unary_input(body, tanh_c, "Tanh")? != c_next {
        return None;
    }
    let (keep, write) = operands(body, c_next, &["AddV2", "Add"], |a| {
        operands(body, a, &["Mul"], |m| m == c).is_some()
    })?;
    let (_, f) = operands(body, keep, &["Mul"], |m| m == c)?;
    let (i, g) = operands(body, write, &["Mul"], |a| gate(a).is_some())?;
    let shifts = [
        shifted(gate(i)?)?,
        shifted(gate(f)?)?,
        (unary_input(body, g, "Tanh")?, 0.0),
        shifted(gate(o)?)?,
    ];
    let parts: Vec<ValueRef> = shifts.iter().map(|s| s.0).collect();
    let z = split_of(body, &parts, 4)?;
    let order: Vec<usize> = parts.iter().map(|p| p.port).collect();
    if (0..4).any(|k| !order.contains(&k)) {
        return None;
    }
    let (terms, bias) = affine(body, z)?;
    let width = terms.values().next()?.shape.get(1).copied()?;
    let mut bias = bias.unwrap_or_else(|| vec![0.0; width]);
    if bias.len() != width || width % 4 != 0 {
        return None;
    }
    for (&(_, shift), &k) in shifts.iter().zip(&order) {
        let n = width / 4;
        bias[k * n..(k + 1) * n].iter_mut().for_each(|b| *b += shift);
    }
    let (kx, kh, units) = kernels(&terms, x, h, 4)?;
    torch_layer_cell(Cell::Lstm, [&kx, &kh], units, [&order, &order], [Some(&bias), None])
}

/// One step of a loop under Keras masking, as the walk found it: the step's input and mask
/// elements, the recurrent states' slots and the value written to the output list.
pub(super) struct MaskedStep<'a> {
    pub g: &'a Graph,
    pub l: NodeIndex,
    pub body: &'a Graph,
    pub x_t: ValueRef,
    pub mask_t: ValueRef,
    pub states: &'a [usize],
    pub y: ValueRef,
}

impl MaskedStep<'_> {
    /// `where(mask_t, then, else)` (the mask possibly tiled to the state's width):
    /// `(then, else)`.
    fn select(&self, v: ValueRef) -> Option<(ValueRef, ValueRef)> {
        let body = self.body;
        let i = body.inputs(v.node);
        let [cond, then, other] = i.as_slice() else { return None };
        let cond =
            if is_op(body, *cond, "Tile") { *body.inputs(cond.node).first()? } else { *cond };
        (matches!(producer(body, v).op.as_str(), "Select" | "SelectV2") && cond == self.mask_t)
            .then_some((*then, *other))
    }

    /// The next value of state `slot`.
    fn next(&self, slot: usize) -> ValueRef {
        self.body.outputs[1 + slot]
    }

    /// The output the step writes, `where(mask_t, h_new, previous output | zeros)`: the
    /// previous output kept in a state of its own that starts at zeros and is read by nothing
    /// after the loop, or zeros written directly (Keras' `zero_output_for_mask`, which
    /// `Bidirectional` sets). Returns the other states' slots, `h_new`, and whether masked
    /// steps output zeros.
    fn output(&self) -> Option<(Vec<usize>, ValueRef, bool)> {
        let (g, body) = (self.g, self.body);
        let outer = g.inputs(self.l);
        let vars = body.outputs.len() - 1;
        let zeros_outside = |v: ValueRef| {
            let k = body.inputs.iter().position(|&p| p == v)?;
            (k >= vars || body.outputs[1 + k] == v).then(|| outer[k])
        };
        let zero = |v: ValueRef| {
            is_zeros(body, v) || zeros_outside(v).is_some_and(|o| g.node(o.node).op == "ZerosLike")
        };
        let Some(out) = self.states.iter().copied().find(|&s| self.next(s) == self.y) else {
            let (h_new, other) = self.select(self.y)?;
            return zero(other).then(|| (self.states.to_vec(), h_new, true));
        };
        let (h_new, previous) = self.select(self.next(out))?;
        let zero_output = if previous == body.inputs[out] {
            false
        } else if zero(previous) {
            true
        } else {
            return None;
        };
        let unread = g.use_count(ValueRef { node: self.l, port: out }) == 0;
        let rest = self.states.iter().copied().filter(|&s| s != out).collect();
        (g.node(outer[out].node).op == "ZerosLike" && unread).then_some((rest, h_new, zero_output))
    }
}

/// A Keras LSTM step under a mask: each state's next value is `where(mask_t, new, old)` and
/// the output `where(mask_t, h_new, previous output | zeros)`. Returns the cell and the
/// `[h, c]` slots.
pub(super) fn masked_lstm(step: &MaskedStep) -> Option<(CellMatch, Vec<usize>)> {
    let body = step.body;
    let (rest, h_new, zero_output) = step.output()?;
    let [a, b] = rest[..] else { return None };
    let (h, c) = match (step.select(step.next(a))?, step.select(step.next(b))?) {
        ((t, _), _) if t == h_new => (a, b),
        (_, (t, _)) if t == h_new => (b, a),
        _ => return None,
    };
    let (h_then, h_old) = step.select(step.next(h))?;
    let (c_new, c_old) = step.select(step.next(c))?;
    if h_then != h_new || h_old != body.inputs[h] || c_old != body.inputs[c] {
        return None;
    }
    let cell = lstm_cell(body, step.x_t, body.inputs[h], body.inputs[c], h_new, c_new)?;
    let cell = CellMatch { cell: Cell::MaskedLstm { zero_output }, weights: cell.weights };
    Some((cell, vec![h, c]))
}

/// A Keras GRU step (`reset_after=True`) under a mask: `h' = where(mask_t, h_new, h)` and the
/// output as [`masked_lstm`]'s. Returns the cell and the `[h]` slot.
pub(super) fn masked_gru(step: &MaskedStep) -> Option<(CellMatch, Vec<usize>)> {
    let (rest, h_new, zero_output) = step.output()?;
    let [h] = rest[..] else { return None };
    let (h_then, h_old) = step.select(step.next(h))?;
    if h_then != h_new || h_old != step.body.inputs[h] {
        return None;
    }
    let cell = gru_cell(step.body, step.x_t, step.body.inputs[h], h_new)?;
    let cell = CellMatch { cell: Cell::MaskedGru { zero_output }, weights: cell.weights };
    Some((cell, vec![h]))
}

/// Every GRU's last step, `h' = z·h + (1−z)·n`: `(z, n)`.
fn gru_update(body: &Graph, h: ValueRef, h_next: ValueRef) -> Option<(ValueRef, ValueRef)> {
    let (keep, write) = operands(body, h_next, &["AddV2", "Add"], |a| {
        operands(body, a, &["Mul"], |m| m == h).is_some()
    })?;
    let (_, z) = operands(body, keep, &["Mul"], |m| m == h)?;
    let (one_minus_z, cand) = operands(body, write, &["Mul"], |a| is_op(body, a, "Sub"))?;
    let oz = body.inputs(one_minus_z.node);
    (oz.len() == 2 && is_scalar(body, oz[0], 1.0, 0.0) && oz[1] == z).then_some((z, cand))
}

/// Keras GRU with `reset_after=True` (PyTorch's formulation):
/// `h' = z·h + (1−z)·n`, `n = tanh(x_n + r·(h·R_n + b_hn))`, `z, r = σ(x_* + h·R_* + b_h*)`.
/// Each gate's x-part and h-part is a third of `x·K + b_x` or `h·R + b_h`, taken by `Split`
/// (Keras 2) or a column slice (Keras 3).
pub(super) fn gru_cell(
    body: &Graph,
    x: ValueRef,
    h: ValueRef,
    h_next: ValueRef,
) -> Option<CellMatch> {
    let gate = |v: ValueRef| unary_input(body, v, "Sigmoid");
    let (z, cand) = gru_update(body, h, h_next)?;
    // A gate pre-activation: (x block, h block), told apart by what their sums multiply.
    let reads =
        |b: Block, v: ValueRef| affine(body, b.src).is_some_and(|(t, _)| t.contains_key(&v));
    let pre = |v: ValueRef| -> Option<(Block, Block)> {
        let i = body.inputs(v.node);
        let [a, b] = i.as_slice() else { return None };
        if !matches!(producer(body, v).op.as_str(), "AddV2" | "Add") {
            return None;
        }
        let (a, b) = (block(body, *a)?, block(body, *b)?);
        if reads(a, x) && reads(b, h) {
            Some((a, b))
        } else if reads(b, x) && reads(a, h) {
            Some((b, a))
        } else {
            None
        }
    };
    let (xz, hz) = pre(gate(z)?)?;
    let n_in = unary_input(body, cand, "Tanh")?;
    let (reset_term, xn) = operands(body, n_in, &["AddV2", "Add"], |a| is_op(body, a, "Mul"))?;
    let (r, hn) = operands(body, reset_term, &["Mul"], |a| gate(a).is_some())?;
    let (xr, hr) = pre(gate(r)?)?;
    let (xn, hn) = (block(body, xn)?, block(body, hn)?);
    let (xs, hs) = ([xr, xz, xn], [hr, hz, hn]);
    if xs.iter().any(|b| b.src != xz.src) || hs.iter().any(|b| b.src != hz.src) {
        return None;
    }
    let x_order: Vec<usize> = xs.iter().map(|b| b.index).collect();
    let h_order: Vec<usize> = hs.iter().map(|b| b.index).collect();
    for order in [&x_order, &h_order] {
        if (0..3).any(|k| !order.contains(&k)) {
            return None;
        }
    }
    let (xterms, xbias) = affine(body, xz.src)?;
    let (hterms, hbias) = affine(body, hz.src)?;
    if xterms.len() != 1 || hterms.len() != 1 {
        return None;
    }
    let mut terms = xterms;
    terms.extend(hterms);
    let (kx, kh, units) = kernels(&terms, x, h, 3)?;
    let biases = [xbias.as_deref(), hbias.as_deref()];
    torch_layer_cell(Cell::Gru, [&kx, &kh], units, [&x_order, &h_order], biases)
}

/// Keras GRU with `reset_after=False`, which `nn.GRU` cannot express:
/// `n = tanh(x_n + (r·h)·R_n)`, `z, r = σ(x_* + (h·R_zr)_*)`, `h' = z·h + (1−z)·n`.
/// Weights: input `[3u, in]` and its bias in PyTorch's gate order (r, z, n), `R_zr` as
/// `[2u, u]` (r, z), `R_n` as `[u, u]`.
pub(super) fn gru_reset_before_cell(
    body: &Graph,
    x: ValueRef,
    h: ValueRef,
    h_next: ValueRef,
) -> Option<CellMatch> {
    let gate = |v: ValueRef| unary_input(body, v, "Sigmoid");
    let (z, cand) = gru_update(body, h, h_next)?;
    // (x block of three, h block of two).
    let pre = |v: ValueRef| -> Option<(Block, Block)> {
        let (a, b) = operands(body, v, &["AddV2", "Add"], |a| block(body, a).is_some())?;
        Some((block(body, a)?, block_of(body, b, 2)?))
    };
    let (xz, hz) = pre(gate(z)?)?;
    let (xn, rh_term) = operands(body, unary_input(body, cand, "Tanh")?, &["AddV2", "Add"], |a| {
        block(body, a).is_some()
    })?;
    let xn = block(body, xn)?;
    // (r·h)·R_n: the one term of an affine expression in r·h.
    let (rh_terms, rh_bias) = affine(body, rh_term)?;
    if rh_terms.len() != 1 {
        return None;
    }
    let (rh, r_n) = rh_terms.into_iter().next()?;
    let (r, _) = operands(body, rh, &["Mul"], |a| gate(a).is_some())?;
    if operands(body, rh, &["Mul"], |m| m == h).is_none() || rh_bias.is_some() {
        return None;
    }
    let (xr, hr) = pre(gate(r)?)?;
    let xs = [xr, xz, xn];
    if xs.iter().any(|b| b.src != xz.src) || hr.src != hz.src {
        return None;
    }
    let x_order: Vec<usize> = xs.iter().map(|b| b.index).collect();
    let h_order = [hr.index, hz.index];
    if (0..3).any(|k| !x_order.contains(&k)) || h_order[0] == h_order[1] {
        return None;
    }
    let (xterms, xbias) = affine(body, xz.src)?;
    let (hterms, hbias) = affine(body, hz.src)?;
    let (kx, kzr) = (xterms.get(&x)?, hterms.get(&h)?);
    if xterms.len() != 1 || hterms.len() != 1 || hbias.is_some() {
        return None;
    }
    let units = r_n.shape[0];
    if r_n.shape != [units, units] || kzr.shape != [units, 2 * units] || kx.shape[1] != 3 * units {
        return None;
    }
    Some(CellMatch {
        cell: Cell::GruResetBefore,
        weights: [
            gate_rows(kx, units, &x_order)?,
            gate_bias(xbias.as_deref(), units, &x_order, 3 * units),
            gate_rows(kzr, units, &h_order)?,
            gate_rows(&r_n, units, &[0])?,
        ],
    })
}

/// TF1's `GRUCell`: `r, u = split₂(σ([x, h]·W_g + b_g))`,
/// `h' = u·h + (1−u)·tanh([x, r·h]·W_c + b_c)`: the reset-before GRU, as [`Cell::GruResetBefore`].
pub(super) fn tf1_gru_cell(
    body: &Graph,
    x: ValueRef,
    h: ValueRef,
    h_next: ValueRef,
) -> Option<CellMatch> {
    let (u, cand) = gru_update(body, h, h_next)?;
    let gates = unary_input(body, split_of(body, &[u], 2)?, "Sigmoid")?;
    let (c_terms, c_bias) = affine(body, unary_input(body, cand, "Tanh")?)?;
    let rh = *c_terms.keys().find(|&&k| k != x)?;
    let (r, _) = operands(body, rh, &["Mul"], |m| m != h)?;
    if operands(body, rh, &["Mul"], |m| m == h).is_none()
        || r.node != u.node
        || r.port == u.port
        || c_terms.len() != 2
    {
        return None;
    }
    let (g_terms, g_bias) = affine(body, gates)?;
    let (wg_x, wg_h) = (g_terms.get(&x)?, g_terms.get(&h)?);
    let (wc_x, wc_h) = (c_terms.get(&x)?, c_terms.get(&rh)?);
    let units = wc_h.shape[0];
    if g_terms.len() != 2 || wg_h.shape != [units, 2 * units] || wc_h.shape != [units, units] {
        return None;
    }
    let order = [r.port, u.port];
    let zeros = |n: usize| vec![0.0; n];
    let gb = g_bias.unwrap_or_else(|| zeros(2 * units));
    let cb = c_bias.unwrap_or_else(|| zeros(units));
    let input = concat_rows(&gate_rows(wg_x, units, &order)?, &gate_rows(wc_x, units, &[0])?)?;
    let mut bias: Vec<f32> =
        order.iter().flat_map(|&k| gb[k * units..(k + 1) * units].to_vec()).collect();
    bias.extend(&cb);
    Some(CellMatch {
        cell: Cell::GruResetBefore,
        weights: [
            input,
            Tensor::from_f32(vec![3 * units], &bias),
            gate_rows(wg_h, units, &order)?,
            gate_rows(wc_h, units, &[0])?,
        ],
    })
}

/// Two `[rows, cols]` float matrices stacked along rows.
fn concat_rows(a: &Tensor, b: &Tensor) -> Option<Tensor> {
    if a.rank() != 2 || b.rank() != 2 || a.shape[1] != b.shape[1] {
        return None;
    }
    let mut v = a.to_f32()?;
    v.extend(b.to_f32()?);
    Some(Tensor::from_f32(vec![a.shape[0] + b.shape[0], a.shape[1]], &v))
}

/// `h' = act(x·K + h·R + b)`, act tanh or relu.
pub(super) fn simple_cell(
    body: &Graph,
    x: ValueRef,
    h: ValueRef,
    h_next: ValueRef,
) -> Option<CellMatch> {
    let (pre, relu) = [("Tanh", false), ("Relu", true)]
        .into_iter()
        .find_map(|(op, relu)| unary_input(body, h_next, op).map(|v| (v, relu)))?;
    let (terms, bias) = affine(body, pre)?;
    let (kx, kh, units) = kernels(&terms, x, h, 1)?;
    let cell = Cell::Rnn { relu };
    torch_layer_cell(cell, [&kx, &kh], units, [&[0], &[0]], [bias.as_deref(), None])
}
