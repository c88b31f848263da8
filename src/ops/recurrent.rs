//! Recurrent layers (fused by `passes::fuse_rnn`) → `nn.LSTM` / `nn.GRU` / `nn.RNN`;
//! `ReverseV2` (Keras' `go_backwards`) → `flip`, `ReverseSequence` (TF 1's bidirectional
//! RNNs) → a gather; and the `TensorList*` ops loops keep their per-step values in → Python
//! lists (a list is a value in TF, so setting an item builds a new list rather than changing
//! one another reader may hold).

use crate::ir::ValueInfo;
use crate::ir::fused::{self, Cell, Fused, Recurrent};
use crate::ops::contract::{Access, Ctx, Layout, Lowered, Unpack};
use crate::ops::contract::{OpResult, TranslateError};
use crate::ops::util::{norm_axis, same_as_input};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::weights::Weight;

pub const OPS: &[OpDef] = &[
    op(fused::LSTM, recurrent),
    op(fused::GRU, recurrent),
    op(fused::RNN, recurrent),
    op(fused::GRU_RESET_BEFORE, recurrent),
    op(fused::MASKED_LSTM, recurrent),
    op(fused::MASKED_GRU, recurrent),
    op("ReverseV2", reverse).infer(same_as_input),
    op("ReverseSequence", reverse_sequence).infer(same_as_input),
    op("TensorListFromTensor", |c| {
        expr(Expr::call("list", vec![c.input_tf(0)?.method("unbind", vec![Expr::int(0)])]))
    }),
    op("TensorListReserve", list_reserve),
    op("TensorListGetItem", |c| {
        let (l, i) = (c.input_tf(0)?, c.input_tf(1)?);
        expr(l.index(i))
    })
    .infer(|i| element_info(i, 2, false)),
    // A list's own info is that of its stack, `[n, *element]`: what a loop learns of the
    // elements it sets (pfor's lists declare no element rank) reaches the stack after it.
    op("TensorListSetItem", list_set).infer(|i| {
        let dtype = i.node.attr_type("element_dtype").ok();
        let item = i.infos.get(2)?.shape.as_ref()?;
        Some(vec![ValueInfo {
            dtype,
            shape: Some([None].into_iter().chain(item.clone()).collect()),
        }])
    }),
    op("TensorListStack", list_stack).infer(|i| {
        let declared = element_info(i, 1, true)?;
        match (&declared[0].shape, i.infos.first()) {
            (None, Some(list)) if list.shape.is_some() => {
                Some(vec![ValueInfo { dtype: declared[0].dtype, shape: list.shape.clone() }])
            }
            _ => Some(declared),
        }
    }),
    op(fused::STACK_LIST, stack_list).infer(|i| {
        let Some(Fused::StackList { axis }) = i.node.fused else { return None };
        let mut shape = i.infos.first()?.shape.clone()?;
        if axis >= shape.len() {
            return None;
        }
        let steps = shape.remove(0);
        shape.insert(axis, steps);
        Some(vec![ValueInfo { dtype: i.infos[0].dtype, shape: Some(shape) }])
    }),
    op("TensorListLength", |c| {
        Ok(Lowered::Expr { expr: Expr::call("len", vec![c.input_tf(0)?]), layout: Layout::Host })
    }),
];

/// An element (or the stack of all elements) of a list whose `element_shape` is input `slot`
/// (`-1` entries unknown), of the node's `element_dtype`.
fn element_info(inp: &OpInputs, slot: usize, stacked: bool) -> Option<Vec<ValueInfo>> {
    let dtype = inp.node.attr_type("element_dtype").ok();
    // A scalar `-1` is an element of unknown rank (pfor's lists), not a vector.
    let element = inp.consts.get(slot).copied().flatten()?;
    if element.shape.is_empty() {
        return Some(vec![ValueInfo { dtype, shape: None }]);
    }
    let dims = element.to_i64()?;
    let mut shape: Vec<Option<usize>> = dims.iter().map(|&d| usize::try_from(d).ok()).collect();
    if stacked {
        shape.insert(0, None);
    }
    Some(vec![ValueInfo { dtype, shape: Some(shape) }])
}

/// `[k]` on a layer's (tuple) result.
fn item(k: usize) -> Access {
    Access::Item(Expr::int(k as i64))
}

fn expr(e: Expr) -> OpResult<Lowered> {
    Ok(Lowered::Expr { expr: e, layout: Layout::Tf })
}

/// `torch.stack(items)`; of a list a loop filled, `stack_written(items)`: a loop may end
/// before the last item (a TF 1 `dynamic_rnn` stops after the longest sequence), and TF
/// stacks the items never written as zeros.
fn list_stack(ctx: &mut Ctx) -> OpResult<Lowered> {
    let items = ctx.input_tf(0)?;
    let from_loop = ctx.producer(0).is_some_and(|p| p.op == crate::ir::fused::LOOP);
    if from_loop && !ctx.filled_list(0) {
        ctx.require_class("stack_written", include_str!("../../templates/stack_written.py"));
        return expr(Expr::call("stack_written", vec![items]));
    }
    expr(Expr::call("torch.stack", vec![items]))
}

/// `torch.stack(items, dim=axis)`: every item was set (see [`Fused::StackList`]).
fn stack_list(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Fused::StackList { axis } = *ctx.fused()? else { return Err("not a list stack".into()) };
    let items = ctx.input_tf(0)?;
    if axis == 0 {
        return expr(Expr::call("torch.stack", vec![items]));
    }
    let dim = vec![("dim", Expr::int(axis as i64))];
    expr(Expr::call_kw("torch.stack", vec![items], dim))
}

fn list_reserve(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = match ctx.const_ints(1) {
        Ok(v) if v.len() == 1 && v[0] >= 0 => Expr::int(v[0]),
        Ok(_) => return Err("num_elements must be a non-negative count".into()),
        Err(_) => crate::ops::sizes::scalar(ctx, 1)?.expr,
    };
    expr(Expr::List(vec![Expr::none()]).binop(BinOp::Mul, n))
}

fn list_set(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (l, v) = (ctx.input_tf(0)?, ctx.input_tf(2)?);
    // A constant index is written out: `[v, *l[1:]]`, not `[*l[:0], v, *l[0 + 1 :]]`.
    let known = match ctx.const_ints(1).as_deref() {
        Ok(&[k]) if k >= 0 => Some(k),
        _ => None,
    };
    let (before, after) = match known {
        Some(k) => (Expr::int(k), Expr::int(k.saturating_add(1))),
        None => {
            let i = ctx.input_tf(1)?;
            (i.clone(), i.binop(BinOp::Add, Expr::int(1)))
        }
    };
    let mut items = Vec::new();
    if known != Some(0) {
        items.push(l.clone().index(Expr::slice(None, Some(before), None)).starred());
    }
    items.push(v);
    items.push(l.index(Expr::slice(Some(after), None, None)).starred());
    expr(Expr::List(items))
}

/// PyTorch's names for the reverse direction's weights.
const REVERSE: [&str; 4] =
    ["weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse"];

fn layer<'g>(ctx: &Ctx<'_, 'g>) -> OpResult<&'g Recurrent> {
    match ctx.fused()? {
        Fused::Recurrent(r) => Ok(r),
        _ => Err("not a recurrent layer".into()),
    }
}

/// `nn.LSTM` / `nn.GRU` / `nn.RNN`, or `MaskedLSTM` / `MaskedGRU` (templates/masked_*.py,
/// called like nn.LSTM / nn.GRU with the mask after the input).
fn recurrent(ctx: &mut Ctx) -> OpResult<Lowered> {
    let r = layer(ctx)?;
    let class = match r.cell {
        Cell::Lstm => "nn.LSTM",
        Cell::MaskedLstm { .. } => "MaskedLSTM",
        Cell::MaskedGru { .. } => "MaskedGRU",
        Cell::Gru => "nn.GRU",
        Cell::Rnn { .. } => "nn.RNN",
        Cell::GruResetBefore => return gru_reset_before(ctx, r),
    };
    let (last_only, bidirectional, cell_state) =
        (r.last_only, r.bidirectional(), r.cell.has_cell_state());
    let [w_ih, w_hh, ..] = &r.weights[0];
    let (input_size, hidden) = (w_ih.shape[1], w_hh.shape[1]);
    let mut kwargs = Vec::new();
    if let Cell::Rnn { relu: true } = r.cell {
        kwargs.push(("nonlinearity", Expr::str_lit("relu")));
    }
    match r.cell {
        Cell::MaskedLstm { zero_output: true } | Cell::MaskedGru { zero_output: true } => {
            kwargs.push(("zero_output", Expr::boolean(true)));
        }
        Cell::MaskedLstm { .. } | Cell::MaskedGru { .. } => {}
        _ if r.batch_first => kwargs.push(("batch_first", Expr::boolean(true))),
        _ => {}
    }
    if bidirectional {
        kwargs.push(("bidirectional", Expr::boolean(true)));
    }
    let ctor =
        Expr::call_kw(class, vec![Expr::int(input_size as i64), Expr::int(hidden as i64)], kwargs);
    let mut params: Vec<(&'static str, Weight)> = Vec::new();
    for (names, weights) in [r.cell.param_names(), REVERSE].into_iter().zip(&r.weights) {
        params.extend(names.into_iter().zip(weights.iter().cloned().map(Weight::plain)));
    }
    match r.cell {
        Cell::MaskedLstm { .. } => {
            ctx.require_class("MaskedLSTM", include_str!("../../templates/masked_lstm.py"));
        }
        Cell::MaskedGru { .. } => {
            ctx.require_class("MaskedGRU", include_str!("../../templates/masked_gru.py"));
        }
        _ => {}
    }
    let mut args = vec![ctx.input_tf(0)?];
    if let Some(m) = r.mask_input() {
        args.push(ctx.input_tf(m)?);
    }
    let states = r.state_inputs();
    if !bidirectional && !states.is_empty() {
        // PyTorch's states carry a leading (layers × directions) axis.
        let h0 = state(ctx, states.start)?;
        args.push(if cell_state {
            let c0 = state(ctx, states.start + 1)?;
            Expr::Tuple(vec![h0, c0])
        } else {
            h0
        });
    }
    // Output 0 is the whole sequence, or PyTorch's `h_n` ([1, B, H]) when Keras keeps the last.
    let seq_slot = usize::from(last_only);
    let states_read = (1..=1 + usize::from(cell_state)).any(|p| ctx.output_used(p));
    if bidirectional || !states_read {
        // Bidirectional: both directions side by side, as PyTorch returns the sequence, or
        // (Keras keeping the last outputs) the two final states, batch first.
        let mut post = vec![item(usize::from(last_only))];
        if last_only && cell_state {
            post.push(item(0));
        }
        if last_only && bidirectional {
            post.push(Access::Method("transpose", vec![Expr::int(0), Expr::int(1)]));
            post.push(Access::Method("flatten", vec![Expr::int(1)]));
        }
        return Ok(Lowered::Layer { ctor, params, args, layout: Layout::Tf, post });
    }
    let (pattern, views) = if cell_state {
        let states = Unpack::Tuple(vec![Unpack::Slot(1), Unpack::Slot(2)]);
        let views = vec![(seq_slot, vec![]), (1, vec![item(0)]), (2, vec![item(0)])];
        (Unpack::Tuple(vec![Unpack::Slot(0), states]), views)
    } else {
        (
            Unpack::Tuple(vec![Unpack::Slot(0), Unpack::Slot(1)]),
            vec![(seq_slot, vec![]), (1, vec![item(0)])],
        )
    };
    Ok(Lowered::LayerUnpack { ctor, params, args, pattern, views })
}

/// `GRUResetBefore` (templates/gru_reset_before.py), batch first: `(outputs, last state)`.
fn gru_reset_before(ctx: &mut Ctx, r: &Recurrent) -> OpResult<Lowered> {
    let (last_only, batch_first) = (r.last_only, r.batch_first);
    if r.bidirectional() {
        return Err("a bidirectional GRUResetBefore".into());
    }
    let [w_in, _, _, w_cand] = &r.weights[0];
    let (input_size, hidden) = (w_in.shape[1], w_cand.shape[0]);
    ctx.require_class("GRUResetBefore", include_str!("../../templates/gru_reset_before.py"));
    let ctor =
        Expr::call("GRUResetBefore", vec![Expr::int(input_size as i64), Expr::int(hidden as i64)]);
    let weights = r.weights[0].iter().cloned().map(Weight::plain);
    let params = r.cell.param_names().into_iter().zip(weights).collect();
    let x = ctx.input_tf(0)?;
    let mut args =
        vec![if batch_first { x } else { x.method("transpose", vec![Expr::int(0), Expr::int(1)]) }];
    if let Some(h0) = r.state_inputs().next() {
        args.push(ctx.input_tf(h0)?);
    }
    // Output 0: the sequence (time-major again unless batch first), or `[1, B, H]` (Keras
    // keeping the last output); output 1: the last state.
    let seq = match (last_only, batch_first) {
        (true, _) => vec![Access::Item(Expr::none())],
        (false, true) => vec![],
        (false, false) => vec![Access::Method("transpose", vec![Expr::int(0), Expr::int(1)])],
    };
    if !ctx.output_used(1) {
        let mut post = vec![item(usize::from(last_only))];
        post.extend(seq);
        return Ok(Lowered::Layer { ctor, params, args, layout: Layout::Tf, post });
    }
    let views = vec![(usize::from(last_only), seq), (1, vec![])];
    let pattern = Unpack::Tuple(vec![Unpack::Slot(0), Unpack::Slot(1)]);
    Ok(Lowered::LayerUnpack { ctor, params, args, pattern, views })
}

/// An initial state with PyTorch's leading layers axis: `h[None]`, or the `h_n` another
/// recurrent layer returned as is (its TF value is `h_n[0]`).
fn state(ctx: &mut Ctx, slot: usize) -> OpResult<Expr> {
    let h = ctx.input_tf(slot)?;
    // (`GRUResetBefore` returns its state without that axis.)
    let from_rnn = ctx
        .producer(slot)
        .and_then(|n| n.recurrent())
        .is_some_and(|r| r.cell != Cell::GruResetBefore);
    match &h {
        Expr::Subscript(raw, i) if from_rnn && raw.as_name().is_some() && i.as_int() == Some(0) => {
            Ok(raw.as_ref().clone())
        }
        _ => Ok(h.index(Expr::none())),
    }
}

fn reverse(ctx: &mut Ctx) -> OpResult<Lowered> {
    let axes = ctx.const_ints(1)?;
    let rank = ctx.rank(0);
    let axes: Vec<i64> = axes
        .into_iter()
        .map(|a| crate::ops::util::tf_layout_axis(a, rank))
        .collect::<OpResult<_>>()?;
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.method("flip", vec![Expr::ints(&axes)]), layout: Layout::Tf })
}

/// `ReverseSequence(x, lengths)` (TF 1's bidirectional RNNs over padded batches): along
/// `seq_dim`, each batch entry's first `lengths[b]` steps reversed, the padding after them
/// left in place. A gather along `seq_dim` with index `l - 1 - t` for `t < l`, else `t`.
fn reverse_sequence(ctx: &mut Ctx) -> OpResult<Lowered> {
    let rank = ctx.rank(0).ok_or(TranslateError::UnknownRank)?;
    let node = ctx.node();
    let seq = norm_axis(node.attr_int_or("seq_dim", 1)?, rank)?;
    let batch = norm_axis(node.attr_int_or("batch_dim", 0)?, rank)?;
    if seq == batch {
        return Err("seq_dim and batch_dim are the same axis".into());
    }
    // Each index shaped to broadcast along its own axis.
    let along = |axis: usize| -> Vec<Expr> {
        (0..rank).map(|a| Expr::int(if a == axis { -1 } else { 1 })).collect()
    };
    let x = ctx.input_tf(0)?;
    let steps_known = ctx.info(0).shape.and_then(|s| s[seq]);
    let lengths = ctx
        .const_ints(1)
        .ok()
        .filter(|l| crate::tensor::computed_fits(&[l.len(), steps_known.unwrap_or(0)]));
    if let (Some(lengths), Some(t)) = (lengths, steps_known) {
        // Constant lengths: the index itself is a constant.
        let index = reversal_index(&lengths, t, batch < seq)?;
        let mut shape = vec![1; rank];
        shape[batch] = lengths.len();
        shape[seq] = t;
        let index = ctx.buffer("index", crate::tensor::Tensor::from_i64(shape, &index))?;
        let gathered = index.method("expand_as", vec![x.clone()]);
        let expr = x.method("gather", vec![Expr::int(seq as i64), gathered]);
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    let steps =
        Expr::call("torch.arange", vec![x.clone().attr("shape").index(Expr::int(seq as i64))])
            .method("reshape", along(seq));
    let lengths = ctx.input_tf(1)?.method("long", vec![]).method("reshape", along(batch));
    let reversed = lengths.clone().binop(BinOp::Sub, Expr::int(1)).binop(BinOp::Sub, steps.clone());
    let index =
        Expr::call("torch.where", vec![steps.clone().binop(BinOp::Lt, lengths), reversed, steps]);
    let expr =
        x.clone().method("gather", vec![Expr::int(seq as i64), index.method("expand_as", vec![x])]);
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// The gather index of a reversal by `lengths` over `t` steps, batch-major or step-major.
fn reversal_index(lengths: &[i64], t: usize, batch_major: bool) -> OpResult<Vec<i64>> {
    let t_i = i64::try_from(t).map_err(|_| "too many steps")?;
    if lengths.iter().any(|&l| !(0..=t_i).contains(&l)) {
        return Err(format!("lengths {lengths:?} do not fit {t} steps").into());
    }
    let at = |b: usize, s: i64| if s < lengths[b] { lengths[b] - 1 - s } else { s };
    let (nb, mut out) = (lengths.len(), Vec::with_capacity(lengths.len() * t));
    if batch_major {
        for b in 0..nb {
            out.extend((0..t_i).map(|s| at(b, s)));
        }
    } else {
        for s in 0..t_i {
            out.extend((0..nb).map(|b| at(b, s)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::ir::fused::{Cell, Fused, Recurrent};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A recurrent layer as `passes::rnn` leaves it, weights of these shapes.
    fn layer(cell: Cell, shapes: [&[usize]; 4], batch_first: bool, last_only: bool) -> Fused {
        let weights = shapes.map(weights);
        Fused::Recurrent(Recurrent {
            cell,
            last_only,
            batch_first,
            weights: vec![weights],
            initial_state: false,
        })
    }

    fn after_weights(s: String) -> String {
        s.split("---\n").nth(1).unwrap_or_default().to_string()
    }

    /// An LSTM over a `[B, 5, 3]` sequence, 2 units.
    fn lstm(outputs: &[usize], batch_first: bool, last_only: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("seq", &[-1, 5, 3]);
        let shapes: [&[usize]; 4] = [&[8, 3], &[8, 2], &[8], &[8]];
        let op = layer(Cell::Lstm, shapes, batch_first, last_only);
        let y = g.fused("model/lstm/lstm", op, &[x]);
        let outs: Vec<_> = outputs.iter().map(|&p| TestGraph::port(y, p)).collect();
        g.lower(&outs)
    }

    #[test]
    fn lstm_sequence_only() {
        assert_snapshot!(lstm(&[0], true, false), @"
        self.lstm = nn.LSTM(3, 2, batch_first=True)
        # lstm.weight_ih_l0: [8, 3]
        # lstm.weight_hh_l0: [8, 2]
        # lstm.bias_ih_l0: [8]
        # lstm.bias_hh_l0: [8]
        ---
        x = self.lstm(seq)[0]
        return x
        ");
    }

    #[test]
    fn lstm_states_unpack() {
        assert_snapshot!(after_weights(lstm(&[0, 1, 2], false, false)), @"
        lstm, (lstm_h, lstm_c) = self.lstm(seq)
        return lstm, lstm_h[0], lstm_c[0]
        ");
        // Keras keeps only the last output: PyTorch's h_n is it, with its layers axis.
        assert_snapshot!(after_weights(lstm(&[0], true, true)), @"
        x = self.lstm(seq)[1][0]
        return x
        ");
    }

    #[test]
    fn gru_reset_before_is_a_helper_class() {
        let mut g = TestGraph::new();
        let x = g.input("seq", &[-1, 5, 3]);
        let shapes: [&[usize]; 4] = [&[6, 3], &[6], &[4, 2], &[2, 2]];
        let y = g.fused("m/gru/gru", layer(Cell::GruResetBefore, shapes, true, false), &[x]);
        assert_snapshot!(g.lower(&[y]), @"
        self.gru = GRUResetBefore(3, 2)
        # gru.input.weight: [6, 3]
        # gru.input.bias: [6]
        # gru.gates.weight: [4, 2]
        # gru.candidate.weight: [2, 2]
        ---
        x = self.gru(seq)[0]
        return x
        ");
    }

    #[test]
    fn masked_lstm_takes_the_mask() {
        let mut g = TestGraph::new();
        let x = g.input("seq", &[-1, 5, 3]);
        let mask = g.typed_input("mask", &[-1, 5, 1], crate::tensor::DType::Bool);
        let shapes: [&[usize]; 4] = [&[8, 3], &[8, 2], &[8], &[8]];
        let cell = Cell::MaskedLstm { zero_output: true };
        let y = g.fused("m/lstm/lstm", layer(cell, shapes, true, false), &[x, mask]);
        assert_snapshot!(g.lower(&[y]), @"
        self.lstm = MaskedLSTM(3, 2, zero_output=True)
        # lstm.cell.weight_ih: [8, 3]
        # lstm.cell.weight_hh: [8, 2]
        # lstm.cell.bias_ih: [8]
        # lstm.cell.bias_hh: [8]
        ---
        x = self.lstm(seq, mask)[0]
        return x
        ");
    }

    #[test]
    fn reverse_is_flip() {
        let mut g = TestGraph::new();
        let x = g.input("seq", &[-1, 5, 3]);
        let a = g.constant("axis", int_tensor(&[1], &[-2]));
        let y = g.op("r", "ReverseV2", &[x, a], &[]);
        assert_snapshot!(after_weights(g.lower(&[y])), @"
        x = seq.flip((1,))
        return x
        ");
    }

    /// A TF1 frame by hand: `i, x = 0, x; while i < 3: i, x = i + 1, f(x)`.
    fn frame(step_op: &str) -> String {
        let (g, out) = tf1_frame(step_op);
        after_weights(g.lower(&[out]))
    }

    #[test]
    fn frame_becomes_python_loop() {
        assert_snapshot!(frame("Mul"), @r#"
        x = loop_loop(x)
        return x
        def loop_loop(state_1):
            """TF loop `loop`: runs its body once per step."""
            for step in range(3):
                state_1 = state_1 * 2.0
            return state_1
        "#);
    }

    /// A counter the body computes with as a tensor stays one: `range` would hand it an int.
    #[test]
    fn a_counter_read_as_a_tensor_keeps_the_while() {
        let (g, out) = crate::testing::tf1_frame_counting("loop", |g, x, i| {
            let f32 = dtype(crate::tensor::DType::F32);
            let f = g.op("loop/cast", "Cast", &[i], &[("DstT", f32)]);
            g.op("loop/mul", "Mul", &[x, f], &[])
        });
        assert_snapshot!(after_weights(g.lower(&[out])), @r#"
        _, x = loop_loop(torch.tensor(0, dtype=torch.int32), x)
        return x
        def loop_loop(step, state_1):
            """TF loop `loop`: runs its body while the condition holds."""
            while step < 3:
                add = step + 1
                step_2 = step.to(torch.float32)
                state_1 = state_1 * step_2
                step = add
            return step, state_1
        "#);
    }

    /// An op without translation inside a loop is a stub call inside the loop.
    #[test]
    fn stub_inside_loop() {
        assert_snapshot!(frame("MyScale"), @r#"
        x = self.loop_loop(x)
        return x
        def loop_loop(self, state_1):
            """TF loop `loop`: runs its body once per step."""
            for step in range(3):
                state_1 = custom_ops.my_scale(state_1)
            return state_1
        stub my_scale
        "#);
    }
}
