//! Recurrent layers (fused by `passes::fuse_rnn`) → `nn.LSTM` / `nn.GRU` / `nn.RNN`;
//! `ReverseV2` (Keras' `go_backwards`) → `flip`; and the `TensorList*` ops loops keep their
//! per-step values in → Python lists (a list is a value in TF, so setting an item builds a new
//! list rather than changing one another reader may hold).

use crate::ir::ValueInfo;
use crate::lower::{Ctx, Layout, Lowered};
use crate::ops::util::{OpResult, norm_axis, same_as_input};
use crate::ops::{OpDef, OpInputs, op};
use crate::passes::fuse_rnn::{GRU, LSTM, RNN};
use crate::py::{PyExpr, Weight};

pub const OPS: &[OpDef] = &[
    op(LSTM, recurrent),
    op(GRU, recurrent),
    op(RNN, recurrent),
    op("ReverseV2", reverse).infer(same_as_input),
    op("TensorListFromTensor", |c| {
        expr(PyExpr::call("list", vec![c.input_tf(0)?.method("unbind", vec![PyExpr::int(0)])]))
    }),
    op("TensorListReserve", list_reserve),
    op("TensorListGetItem", |c| {
        let (l, i) = (c.input_tf(0)?, c.input_tf(1)?);
        expr(l.index(i.to_string()))
    })
    .infer(|i| element_info(i, 2, false)),
    op("TensorListSetItem", list_set),
    op("TensorListStack", |c| expr(PyExpr::call("torch.stack", vec![c.input_tf(0)?])))
        .infer(|i| element_info(i, 1, true)),
    op("TensorListLength", |c| expr(PyExpr::call("len", vec![c.input_tf(0)?]))),
];

/// An element (or the stack of all elements) of a list whose `element_shape` is input `slot`
/// (`-1` entries unknown), of the node's `element_dtype`.
fn element_info(inp: &OpInputs, slot: usize, stacked: bool) -> Option<Vec<ValueInfo>> {
    let dims = inp.const_ints(slot)?;
    let mut shape: Vec<Option<usize>> = dims.iter().map(|&d| usize::try_from(d).ok()).collect();
    if stacked {
        shape.insert(0, None);
    }
    let dtype = inp.node.attr_type("element_dtype").ok();
    Some(vec![ValueInfo { dtype, shape: Some(shape) }])
}

fn expr(e: PyExpr) -> OpResult<Lowered> {
    Ok(Lowered::Expr { expr: e, layout: Layout::Tf })
}

fn list_reserve(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = match ctx.const_ints(1) {
        Ok(v) if v.len() == 1 && v[0] >= 0 => PyExpr::int(v[0]),
        Ok(_) => return Err("num_elements must be a non-negative count".into()),
        Err(_) => PyExpr::call("int", vec![ctx.input_tf(1)?]),
    };
    expr(PyExpr::Atom(format!("[None] * {}", n.operand_of("*", true))))
}

fn list_set(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (l, i, v) = (ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?);
    let l = l.operand_of("[]", false);
    let i = i.operand_of("+", false);
    expr(PyExpr::Atom(format!("[*{l}[:{i}], {v}, *{l}[{i} + 1 :]]")))
}

fn recurrent(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let (class, cell_state) = match node.op.as_str() {
        LSTM => ("nn.LSTM", true),
        GRU => ("nn.GRU", false),
        _ => ("nn.RNN", false),
    };
    let flag = |a: &str| node.attr_bool_or(a, false).map_err(|e| e.to_string());
    let (last_only, batch_first) = (flag("last_only")?, flag("batch_first")?);
    let w_ih = ctx.const_input(1)?.clone();
    let w_hh = ctx.const_input(2)?.clone();
    let (b_ih, b_hh) = (ctx.const_input(3)?.clone(), ctx.const_input(4)?.clone());
    let (input_size, hidden) = (w_ih.shape[1], w_hh.shape[1]);
    let mut kwargs = Vec::new();
    if node.op == RNN {
        let act = node.attr_str_or("nonlinearity", "tanh").map_err(|e| e.to_string())?;
        if act != "tanh" {
            kwargs.push(("nonlinearity", PyExpr::str_lit(&act)));
        }
    }
    if batch_first {
        kwargs.push(("batch_first", PyExpr::boolean(true)));
    }
    let ctor = PyExpr::call_kw(
        class,
        vec![PyExpr::int(input_size as i64), PyExpr::int(hidden as i64)],
        kwargs,
    );
    let params = vec![
        ("weight_ih_l0", Weight::plain(w_ih)),
        ("weight_hh_l0", Weight::plain(w_hh)),
        ("bias_ih_l0", Weight::plain(b_ih)),
        ("bias_hh_l0", Weight::plain(b_hh)),
    ];
    let mut args = vec![ctx.input_tf(0)?];
    if ctx.num_inputs() > 5 {
        // PyTorch's states carry a leading (layers × directions) axis.
        let h0 = state(ctx, 5)?;
        args.push(if cell_state {
            let c0 = state(ctx, 6)?;
            PyExpr::Atom(format!("({h0}, {c0})"))
        } else {
            h0
        });
    }
    // Output 0 is the whole sequence, or PyTorch's `h_n` ([1, B, H]) when Keras keeps the last.
    let seq_slot = usize::from(last_only);
    let states_read = (1..=1 + usize::from(cell_state)).any(|p| ctx.output_used(p));
    if !states_read {
        let post = match (last_only, cell_state) {
            (false, _) => "[0]",
            (true, false) => "[1]",
            (true, true) => "[1][0]",
        };
        return Ok(Lowered::Layer {
            ctor,
            params,
            args,
            layout: Layout::Tf,
            post: Some(post.into()),
        });
    }
    let (pattern, mut views) = if cell_state {
        ("{0}, ({1}, {2})", vec![(seq_slot, ""), (1, "[0]"), (2, "[0]")])
    } else {
        ("{0}, {1}", vec![(seq_slot, ""), (1, "[0]")])
    };
    views.truncate(ctx.node().outputs.len().max(1));
    Ok(Lowered::LayerUnpack { ctor, params, args, pattern, views })
}

/// An initial state with PyTorch's leading layers axis: `h[None]`, or the `h_n` another
/// recurrent layer returned as is (its TF value is `h_n[0]`).
fn state(ctx: &mut Ctx, slot: usize) -> OpResult<PyExpr> {
    let h = ctx.input_tf(slot)?;
    let from_rnn = ctx.producer_op(slot).is_some_and(|op| matches!(op, LSTM | GRU | RNN));
    match h.to_string().strip_suffix("[0]") {
        Some(raw) if from_rnn && crate::py::names::identifier(raw) == raw => {
            Ok(PyExpr::name(raw))
        }
        _ => Ok(h.index("None")),
    }
}

fn reverse(ctx: &mut Ctx) -> OpResult<Lowered> {
    let rank = ctx.rank(0).ok_or("input rank must be known")?;
    let axes = ctx.const_ints(1)?;
    let axes: Vec<i64> =
        axes.iter().map(|&a| norm_axis(a, rank).map(|a| a as i64)).collect::<OpResult<_>>()?;
    let x = ctx.input_tf(0)?;
    Ok(Lowered::Expr { expr: x.method("flip", vec![PyExpr::ints(&axes)]), layout: Layout::Tf })
}
