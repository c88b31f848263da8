//! Elementwise math: binary ops with numpy broadcasting, and unary functions.
//!
//! Binary ops keep an NCHW operand in NCHW: a constant operand is re-laid out at conversion
//! time (`[C]` → `[C, 1, 1]`), a rank-4 operand is converted to NCHW; anything else falls back
//! to TF layout for every operand.

mod fold;
pub mod special;

use fold::{fold_binary, fold_compare, fold_float_fn, fold_rounding, fold_select, fold_unary};

use crate::ops::contract::OpResult;
use crate::ops::contract::{Ctx, Layout, Lowered, channels_first_rank, to_channels_first};
use crate::ops::sizes::{is_host, is_host_value};
use crate::ops::util::{broadcast_infer, same_as_input};
use crate::ops::{OpDef, OpInputs, always, op};
use crate::py::{BinOp, Expr};

pub const OPS: &[OpDef] = &[
    op("Add", |c| binary(c, Bin::Add))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::Add))
        .per_row(always)
        .neutral(&[0, 1], 0.0),
    op("AddV2", |c| binary(c, Bin::Add))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::Add))
        .per_row(always)
        .neutral(&[0, 1], 0.0),
    op("Sub", |c| binary(c, Bin::Sub))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::Sub))
        .per_row(always)
        .neutral(&[1], 0.0),
    op("Mul", |c| binary(c, Bin::Mul))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::Mul))
        .per_row(always)
        .neutral(&[0, 1], 1.0),
    op("RealDiv", |c| binary(c, Bin::Div))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::Div))
        .per_row(always)
        .neutral(&[1], 1.0),
    op("Maximum", |c| binary(c, Bin::Max))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::Max))
        .per_row(always),
    op("Minimum", |c| binary(c, Bin::Min))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::Min))
        .per_row(always),
    // `tf.raw_ops.ClipByValue`, and a Minimum then a Maximum (passes::fuse_activations).
    op("ClipByValue", clip_by_value).infer(same_as_input).per_row(always),
    // Keras' Add layer on three or more inputs; TF's inputs all have the same shape.
    op("AddN", add_n).infer(same_as_input).per_row(always),
    op("SquaredDifference", |c| binary(c, Bin::SqDiff))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::SqDiff)),
    op("Pow", |c| binary(c, Bin::Pow)).infer(broadcast_infer).fold(|i| fold_binary(i, Bin::Pow)),
    op("FloorDiv", |c| binary(c, Bin::FloorDiv))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::FloorDiv)),
    op("FloorMod", |c| binary(c, Bin::FloorMod))
        .infer(broadcast_infer)
        .fold(|i| fold_binary(i, Bin::FloorMod)),
    op("Less", |c| compare(c, BinOp::Lt)).infer(bool_infer).fold(|i| fold_compare(i, BinOp::Lt)),
    op("LessEqual", |c| compare(c, BinOp::LtE))
        .infer(bool_infer)
        .fold(|i| fold_compare(i, BinOp::LtE)),
    op("Greater", |c| compare(c, BinOp::Gt)).infer(bool_infer).fold(|i| fold_compare(i, BinOp::Gt)),
    op("GreaterEqual", |c| compare(c, BinOp::GtE))
        .infer(bool_infer)
        .fold(|i| fold_compare(i, BinOp::GtE)),
    op("Equal", |c| compare(c, BinOp::Eq)).infer(bool_infer).fold(|i| fold_compare(i, BinOp::Eq)),
    op("NotEqual", |c| compare(c, BinOp::NotEq))
        .infer(bool_infer)
        .fold(|i| fold_compare(i, BinOp::NotEq)),
    op("LogicalAnd", |c| compare(c, BinOp::BitAnd))
        .infer(bool_infer)
        .fold(|i| fold_compare(i, BinOp::BitAnd)),
    op("LogicalOr", |c| compare(c, BinOp::BitOr))
        .infer(bool_infer)
        .fold(|i| fold_compare(i, BinOp::BitOr)),
    op("LogicalNot", |c| function(c, "torch.logical_not")).infer(same_as_input),
    op("Erf", |c| function(c, "torch.erf")).infer(same_as_input),
    op("Erfc", |c| function(c, "torch.erfc")).infer(same_as_input),
    op("Floor", |c| function(c, "torch.floor"))
        .infer(same_as_input)
        .fold(|i| fold_rounding(i, f64::floor)),
    op("Ceil", |c| function(c, "torch.ceil"))
        .infer(same_as_input)
        .fold(|i| fold_rounding(i, f64::ceil)),
    // TF rounds half to even, as torch.round does.
    op("Round", |c| function(c, "torch.round"))
        .infer(same_as_input)
        .fold(|i| fold_rounding(i, f64::round_ties_even)),
    op("Sign", |c| function(c, "torch.sign")).infer(same_as_input),
    op("Sin", |c| function(c, "torch.sin"))
        .infer(same_as_input)
        .fold(|i| fold_float_fn(i, f64::sin)),
    op("Cos", |c| function(c, "torch.cos"))
        .infer(same_as_input)
        .fold(|i| fold_float_fn(i, f64::cos)),
    op("Tan", |c| function(c, "torch.tan")).infer(same_as_input),
    op("Asin", |c| function(c, "torch.asin")).infer(same_as_input),
    op("Acos", |c| function(c, "torch.acos")).infer(same_as_input),
    op("Atan", |c| function(c, "torch.atan")).infer(same_as_input),
    op("Sinh", |c| function(c, "torch.sinh")).infer(same_as_input),
    op("Cosh", |c| function(c, "torch.cosh")).infer(same_as_input),
    op("Asinh", |c| function(c, "torch.asinh")).infer(same_as_input),
    op("Acosh", |c| function(c, "torch.acosh")).infer(same_as_input),
    op("Atanh", |c| function(c, "torch.atanh")).infer(same_as_input),
    op("Log1p", |c| function(c, "torch.log1p")).infer(same_as_input),
    op("Expm1", |c| function(c, "torch.expm1")).infer(same_as_input),
    // Round half to even, like torch.round.
    op("Rint", |c| function(c, "torch.round"))
        .infer(same_as_input)
        .fold(|i| fold_rounding(i, f64::round_ties_even)),
    op("Bucketize", bucketize).infer(int32_like),
    op("IsNan", |c| function(c, "torch.isnan")).infer(bool_like),
    // Produced by passes::fuse_signbit.
    op(crate::ir::fused::SIGN_BIT, |c| function(c, "torch.signbit")).infer(bool_like),
    op("IsInf", |c| function(c, "torch.isinf")).infer(bool_like),
    op("IsFinite", |c| function(c, "torch.isfinite")).infer(bool_like),
    op("Invert", |c| function(c, "torch.bitwise_not")).infer(same_as_input),
    op("PopulationCount", |c| {
        c.require_class("population_count", include_str!("../../../templates/population_count.py"));
        function(c, "population_count")
    })
    .infer(|inp| {
        let shape = inp.infos.first()?.shape.clone();
        Some(vec![crate::ir::ValueInfo { dtype: Some(crate::tensor::DType::U8), shape }])
    }),
    op("Atan2", |c| binary_function(c, "torch.atan2")).infer(broadcast_infer),
    op("BitwiseAnd", |c| binary_function(c, "torch.bitwise_and")).infer(broadcast_infer),
    op("BitwiseOr", |c| binary_function(c, "torch.bitwise_or")).infer(broadcast_infer),
    op("BitwiseXor", |c| binary_function(c, "torch.bitwise_xor")).infer(broadcast_infer),
    op("LeftShift", |c| binary_function(c, "torch.bitwise_left_shift")).infer(broadcast_infer),
    // Arithmetic shift for signed integers, as TF's.
    op("RightShift", |c| binary_function(c, "torch.bitwise_right_shift")).infer(broadcast_infer),
    op("Xlogy", |c| binary_function(c, "torch.xlogy")).infer(broadcast_infer),
    op("Xlog1py", |c| binary_function(c, "torch.special.xlog1py")).infer(broadcast_infer),
    // C's remainder (the sign of the dividend), TF's `Mod` and `TruncateMod`.
    op("Mod", |c| binary_function(c, "torch.fmod")).infer(broadcast_infer),
    op("TruncateMod", |c| binary_function(c, "torch.fmod")).infer(broadcast_infer),
    op("Div", divide).infer(broadcast_infer),
    op("TruncateDiv", divide).infer(broadcast_infer),
    op("DivNoNan", div_no_nan).infer(broadcast_infer),
    op("Xdivy", xdivy).infer(broadcast_infer),
    op("SelectV2", select).infer(select_infer).fold(fold_select),
    op("Select", select).infer(select_infer).fold(fold_select),
    op("Rsqrt", |c| unary(c, Un::Rsqrt)).infer(same_as_input).fold(|i| fold_unary(i, Un::Rsqrt)),
    op("Sqrt", |c| unary(c, Un::Sqrt)).infer(same_as_input).fold(|i| fold_unary(i, Un::Sqrt)),
    op("Square", |c| unary(c, Un::Square)).infer(same_as_input).fold(|i| fold_unary(i, Un::Square)),
    op("Exp", |c| unary(c, Un::Exp)).infer(same_as_input).fold(|i| fold_unary(i, Un::Exp)),
    op("Log", |c| unary(c, Un::Log)).infer(same_as_input).fold(|i| fold_unary(i, Un::Log)),
    op("Neg", |c| unary(c, Un::Neg)).infer(same_as_input).fold(|i| fold_unary(i, Un::Neg)),
    op("Abs", |c| unary(c, Un::Abs)).infer(same_as_input).fold(|i| fold_unary(i, Un::Abs)),
    op("Reciprocal", |c| unary(c, Un::Recip))
        .infer(same_as_input)
        .fold(|i| fold_unary(i, Un::Recip)),
];

#[derive(Clone, Copy)]
pub(super) enum Bin {
    Pow,
    FloorDiv,
    FloorMod,
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    SqDiff,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Un {
    Rsqrt,
    Sqrt,
    Square,
    Exp,
    Log,
    Neg,
    Abs,
    Recip,
}

/// Chooses the layout for a broadcasting op and fetches both operands in it.
fn operands(ctx: &mut Ctx) -> OpResult<(Expr, Expr, Layout)> {
    let (mut v, layout) = operands_n(ctx, 2)?;
    let b = v.pop().expect("two operands");
    let a = v.pop().expect("two operands");
    Ok((a, b, layout))
}

/// A tensor and a size held as a Python number (`x - seq_len`), as they are: a Python
/// number keeps the tensor's dtype in PyTorch as TF's operands share one, so it needs no
/// `torch.tensor(seq_len, dtype=torch.int32)` of its own. `None` unless one operand is
/// such a number (an integer or float scalar) and the other a tensor.
fn with_python_scalar(ctx: &mut Ctx) -> OpResult<Option<(Expr, Expr, Layout)>> {
    let number = |ctx: &mut Ctx, i: usize| -> OpResult<bool> {
        let numeric = ctx.info(i).dtype.is_some_and(|d| d.is_int() || d.is_float());
        Ok(numeric && ctx.rank(i) == Some(0) && ctx.layout(i)? == Layout::Host)
    };
    for (held, tensor) in [(1, 0), (0, 1)] {
        // (A constant is written as a literal, no tensor either: `n > 0` would be a bool.)
        if number(ctx, held)? && !ctx.is_const(tensor) && ctx.layout(tensor)? != Layout::Host {
            let n = ctx.input(held)?.expr;
            let t = ctx.input(tensor)?;
            let (a, b) = if held == 0 { (n, t.expr) } else { (t.expr, n) };
            return Ok(Some((a, b, t.layout)));
        }
    }
    Ok(None)
}

/// The first `n` inputs in one layout: channels-first when a computed input of rank 3 to 5 is
/// held so and every other input can follow (the same rank, a scalar, or a constant re-laid
/// out here), else TF's.
fn operands_n(ctx: &mut Ctx, n: usize) -> OpResult<(Vec<Expr>, Layout)> {
    let mut rank = None;
    for i in 0..n {
        if !ctx.is_const(i)
            && channels_first_rank(ctx.rank(i))
            && matches!(ctx.layout(i), Ok(Layout::ChannelsFirst))
        {
            rank = ctx.rank(i);
            break;
        }
    }
    let follows = |ctx: &Ctx, i: usize, r: usize| {
        if ctx.is_const(i) {
            ctx.const_input(i).is_ok_and(|t| t.rank() <= r)
        } else {
            ctx.rank(i) == Some(r) || ctx.rank(i) == Some(0)
        }
    };
    // A computed input of the output's full shape held only in TF's layout (Whisper's
    // position embeddings added to its convolutions' output): the sum goes on in TF's
    // layout, where the transformer after it works, rather than taking that input to
    // channels-first and every later layer norm back. (One already converted, such as a
    // residual block's input, costs nothing in channels-first.)
    let out_shape = ctx.out_info(0).shape;
    let full_tf = |ctx: &mut Ctx, i: usize| {
        !ctx.is_const(i)
            && out_shape.is_some()
            && ctx.info(i).shape == out_shape
            && matches!(ctx.layout(i), Ok(Layout::Tf))
            && !ctx.held_in(i, Layout::ChannelsFirst)
    };
    let rank = rank.filter(|_| !(0..n).any(|i| full_tf(ctx, i)));
    let Some(r) = rank.filter(|&r| (0..n).all(|i| follows(ctx, i, r))) else {
        let v = (0..n).map(|i| ctx.input_tf(i)).collect::<OpResult<Vec<_>>>()?;
        return Ok((v, Layout::Tf));
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let e = if ctx.is_const(i) {
            let t = ctx.const_input(i)?;
            if t.rank() == 0 {
                ctx.input_tf(i)?
            } else {
                // Align to rank r (leading ones), channels-last → first, drop leading ones.
                let mut shape = vec![1; r - t.rank()];
                shape.extend(&t.shape);
                let perm: Vec<usize> = to_channels_first(r).iter().map(|&a| a as usize).collect();
                let p = t.reshaped(shape).permute(&perm);
                let keep = p.shape.iter().position(|&d| d != 1).unwrap_or(r - 1).min(r - 1);
                if p.numel() == 1 && t.dtype.is_float() && !ctx.is_trained(i) {
                    crate::ops::util::float_literal(t).ok_or("unreadable constant")?
                } else {
                    let s = p.shape[keep..].to_vec();
                    ctx.constant_as(i, "const", p.reshaped(s))?
                }
            }
        } else if ctx.rank(i) == Some(r) {
            ctx.input_channels_first(i)?
        } else {
            ctx.input_tf(i)?
        };
        out.push(e);
    }
    Ok((out, Layout::ChannelsFirst))
}

/// Integer scalar arithmetic on sizes held as Python ints (`x.shape[0] * x.shape[1]`) stays
/// Python arithmetic; Python's `//` and `%` floor as TF's FloorDiv and FloorMod do.
fn host_arithmetic(ctx: &mut Ctx, op: Bin) -> OpResult<Option<Lowered>> {
    let scalar_ints = |ctx: &Ctx, i: usize| {
        ctx.rank(i) == Some(0) && ctx.info(i).dtype.is_some_and(|d| d.is_int())
    };
    if !(0..2).all(|i| scalar_ints(ctx, i) && is_host(ctx, i))
        || !(0..2).any(|i| is_host_value(ctx, i))
    {
        return Ok(None);
    }
    let a = ctx.input_in(0, Layout::Host)?;
    let b = ctx.input_in(1, Layout::Host)?;
    let expr = match op {
        Bin::Add => a.binop(BinOp::Add, b),
        Bin::Sub => a.binop(BinOp::Sub, b),
        Bin::Mul => a.binop(BinOp::Mul, b),
        Bin::FloorDiv => a.binop(BinOp::FloorDiv, b),
        Bin::FloorMod => a.binop(BinOp::Mod, b),
        Bin::Max => Expr::call("max", vec![a, b]),
        Bin::Min => Expr::call("min", vec![a, b]),
        Bin::Div | Bin::SqDiff | Bin::Pow => return Ok(None),
    };
    Ok(Some(Lowered::Expr { expr, layout: Layout::Host }))
}

fn binary(ctx: &mut Ctx, op: Bin) -> OpResult<Lowered> {
    if let Some(l) = host_arithmetic(ctx, op)? {
        return Ok(l);
    }
    // (`torch.maximum` and `torch.minimum` take tensors only.)
    let numbers_work = !matches!(op, Bin::Max | Bin::Min);
    let scalar = if numbers_work { with_python_scalar(ctx)? } else { None };
    let (a, b, layout) = match scalar {
        Some(operands) => operands,
        None => operands(ctx)?,
    };
    let expr = match op {
        Bin::Add => a.binop(BinOp::Add, b),
        Bin::Sub => a.binop(BinOp::Sub, b),
        Bin::Mul => a.binop(BinOp::Mul, b),
        Bin::Div => a.binop(BinOp::Div, b),
        Bin::SqDiff => Expr::call("torch.square", vec![a.binop(BinOp::Sub, b)]),
        Bin::Pow => Expr::call("torch.pow", vec![a, b]),
        // Both floor, as TF's FloorDiv/FloorMod do (-7 // 2 = -4, -7 % 2 = 1).
        Bin::FloorDiv => Expr::call("torch.floor_divide", vec![a, b]),
        Bin::FloorMod => Expr::call("torch.remainder", vec![a, b]),
        Bin::Max | Bin::Min => {
            let (f, kw) = if matches!(op, Bin::Max) {
                ("torch.maximum", "min")
            } else {
                ("torch.minimum", "max")
            };
            if b.is_literal() {
                a.method_kw("clamp", vec![], vec![(kw, b)])
            } else if a.is_literal() {
                b.method_kw("clamp", vec![], vec![(kw, a)])
            } else {
                Expr::call(f, vec![a, b])
            }
        }
    };
    Ok(Lowered::Expr { expr, layout })
}

/// `ClipByValue(x, lo, hi)` → `x.clamp(lo, hi)`; bounds that are tensors (of `x`'s shape or
/// broadcast to it) → `x.clamp(min=lo).clamp(max=hi)` in TF's layout.
fn clip_by_value(ctx: &mut Ctx) -> OpResult<Lowered> {
    let literal = |ctx: &mut Ctx, i: usize| -> OpResult<Option<Expr>> {
        let e = ctx.input_tf(i)?;
        Ok(e.is_literal().then_some(e))
    };
    if let (Some(lo), Some(hi)) = (literal(ctx, 1)?, literal(ctx, 2)?) {
        let x = ctx.input(0)?;
        return Ok(Lowered::Expr { expr: x.expr.method("clamp", vec![lo, hi]), layout: x.layout });
    }
    let (x, lo, hi) = (ctx.input_tf(0)?, ctx.input_tf(1)?, ctx.input_tf(2)?);
    let expr = x.method_kw("clamp", vec![], vec![("min", lo)]).method_kw(
        "clamp",
        vec![],
        vec![("max", hi)],
    );
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

/// `AddN(a, b, c)` → `a + b + c`.
fn add_n(ctx: &mut Ctx) -> OpResult<Lowered> {
    let n = ctx.num_inputs();
    let (terms, layout) = operands_n(ctx, n)?;
    let expr =
        terms.into_iter().reduce(|acc, t| acc.binop(BinOp::Add, t)).ok_or("AddN of nothing")?;
    Ok(Lowered::Expr { expr, layout })
}

/// Comparisons and logical and/or: Python operators, bool result, same broadcasting.
fn compare(ctx: &mut Ctx, op: BinOp) -> OpResult<Lowered> {
    let (a, b, layout) = match with_python_scalar(ctx)? {
        Some(operands) => operands,
        None => operands(ctx)?,
    };
    Ok(Lowered::Expr { expr: a.binop(op, b), layout })
}

/// A layout-agnostic `func(x)`.
fn function(ctx: &mut Ctx, func: &str) -> OpResult<Lowered> {
    let x = ctx.input(0)?;
    let arg = crate::ops::util::as_tensor(ctx, 0, x.expr)?;
    Ok(Lowered::Expr { expr: Expr::call(func, vec![arg]), layout: x.layout })
}

/// TF's bucket `i` holds `boundaries[i - 1] <= x < boundaries[i]` (Keras' `Discretization`):
/// `torch.bucketize(x, boundaries, right=True)`, int32 as TF's.
fn bucketize(ctx: &mut Ctx) -> OpResult<Lowered> {
    let boundaries = ctx.node().attr_floats("boundaries")?;
    // NaN boundaries are unsorted too.
    if !boundaries.windows(2).all(|w| w[0].partial_cmp(&w[1]).is_some_and(|o| o.is_le())) {
        return Err("boundaries are not sorted".into());
    }
    let x = ctx.input(0)?;
    let (x, layout) = match x.layout {
        Layout::Host => (ctx.input_tf(0)?, Layout::Tf),
        layout => (x.expr, layout),
    };
    let table = Expr::call(
        "torch.tensor",
        vec![Expr::List(boundaries.into_iter().map(Expr::f32).collect())],
    );
    let kwargs = vec![("right", Expr::boolean(true)), ("out_int32", Expr::boolean(true))];
    Ok(Lowered::Expr { expr: Expr::call_kw("torch.bucketize", vec![x, table], kwargs), layout })
}

/// A broadcasting `func(a, b)`.
fn binary_function(ctx: &mut Ctx, func: &str) -> OpResult<Lowered> {
    let (a, b, layout) = operands(ctx)?;
    Ok(Lowered::Expr { expr: Expr::call(func, vec![a, b]), layout })
}

/// TF's `Div` truncates integers toward zero (`-7 / 2 = -3`); floats divide.
fn divide(ctx: &mut Ctx) -> OpResult<Lowered> {
    let int = ctx.info(0).dtype.is_some_and(|d| d.is_int());
    if !int && ctx.node().op == "Div" {
        return binary(ctx, Bin::Div);
    }
    let (a, b, layout) = operands(ctx)?;
    let expr =
        Expr::call_kw("torch.div", vec![a, b], vec![("rounding_mode", Expr::str_lit("trunc"))]);
    Ok(Lowered::Expr { expr, layout })
}

/// `a / b`, and 0 where `b` is 0.
fn div_no_nan(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (a, b, layout) = operands(ctx)?;
    let zero = b.clone().binop(BinOp::Eq, Expr::int(0));
    let expr = Expr::call("torch.where", vec![zero, Expr::f32(0.0), a.binop(BinOp::Div, b)]);
    Ok(Lowered::Expr { expr, layout })
}

/// `Xdivy(x, y)`: `x / y`, but zero where `x` is zero (even where `y` is too).
fn xdivy(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (a, b, layout) = operands(ctx)?;
    let zero = a.clone().binop(BinOp::Eq, Expr::int(0));
    let expr = Expr::call("torch.where", vec![zero, Expr::f32(0.0), a.binop(BinOp::Div, b)]);
    Ok(Lowered::Expr { expr, layout })
}

/// `SelectV2(cond, a, b)` broadcasts like `torch.where`; `Select` with a vector condition on
/// a higher-rank tensor picks whole rows, which needs the condition reshaped.
fn select(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (rc, ra) = (ctx.rank(0), ctx.rank(1));
    if ctx.node().op == "Select" && rc == Some(1) && ra.is_some_and(|r| r > 1) {
        let r = ra.unwrap_or(1);
        let (mut v, _) = operands_n(ctx, 3)?;
        let b = v.pop().expect("three");
        let a = v.pop().expect("three");
        let c = v.pop().expect("three");
        let mut shape = vec![-1i64];
        shape.extend(std::iter::repeat_n(1, r - 1));
        let c = c.method("reshape", shape.into_iter().map(Expr::int).collect());
        return Ok(Lowered::Expr {
            expr: Expr::call("torch.where", vec![c, a, b]),
            layout: Layout::Tf,
        });
    }
    let (v, layout) = operands_n(ctx, 3)?;
    Ok(Lowered::Expr { expr: Expr::call("torch.where", v), layout })
}

fn bool_like(inp: &OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let mut v = same_as_input(inp)?;
    v[0].dtype = Some(crate::tensor::DType::Bool);
    Some(v)
}

fn int32_like(inp: &OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let mut v = same_as_input(inp)?;
    v[0].dtype = Some(crate::tensor::DType::I32);
    Some(v)
}

fn bool_infer(inp: &OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let mut v = broadcast_infer(inp)?;
    v[0].dtype = Some(crate::tensor::DType::Bool);
    Some(v)
}

fn select_infer(inp: &OpInputs) -> Option<Vec<crate::ir::ValueInfo>> {
    let (a, b) = (inp.infos.get(1)?, inp.infos.get(2)?);
    let shape = if inp.node.op == "Select" {
        a.shape.clone()
    } else {
        crate::ops::util::broadcast(
            &crate::ops::util::broadcast(&inp.infos[0].shape, &a.shape),
            &b.shape,
        )
    };
    Some(vec![crate::ir::ValueInfo { dtype: a.dtype.or(b.dtype), shape }])
}

fn unary(ctx: &mut Ctx, op: Un) -> OpResult<Lowered> {
    let x = ctx.input(0)?;
    // A scalar constant left unfolded (a bfloat16 one: TF rounds its results) is a Python
    // number, which `torch.log` does not take.
    let e = if op == Un::Neg { x.expr } else { crate::ops::util::as_tensor(ctx, 0, x.expr)? };
    let expr = match op {
        Un::Rsqrt => Expr::call("torch.rsqrt", vec![e]),
        Un::Sqrt => Expr::call("torch.sqrt", vec![e]),
        Un::Square => Expr::call("torch.square", vec![e]),
        Un::Exp => Expr::call("torch.exp", vec![e]),
        Un::Log => Expr::call("torch.log", vec![e]),
        Un::Neg => e.negated(),
        Un::Abs => Expr::call("torch.abs", vec![e]),
        Un::Recip => Expr::call("torch.reciprocal", vec![e]),
    };
    Ok(Lowered::Expr { expr, layout: x.layout })
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A convolution's output (channels-first) plus a tensor of the same shape computed in
    /// TF's layout: the sum is taken in TF's layout (one permute of the convolution's output),
    /// not by taking the other tensor to channels-first and the sum back.
    /// Keras' `Discretization`: TF's bucket `i` holds `boundaries[i - 1] <= x <
    /// boundaries[i]`, torch's `bucketize` with `right=True`; an axis chosen by a Select of
    /// constants is a constant.
    #[test]
    fn buckets_and_a_select_of_constants() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let boundaries = crate::proto::AttrValue {
            value: Some(crate::proto::attr_value::Value::List(Box::new(crate::proto::ListValue {
                f: vec![-0.5, 0.0, 0.25],
                ..Default::default()
            }))),
        };
        let b = g.op("b", "Bucketize", &[x], &[("boundaries", boundaries)]);
        let yes = g.constant("yes", Tensor::from_bool(vec![], &[true]));
        let (one, zero) =
            (g.constant("one", int_tensor(&[], &[1])), g.constant("zero", int_tensor(&[], &[0])));
        let axis = g.op("axis", "SelectV2", &[yes, one, zero], &[]);
        let c = g.op("c", "ConcatV2", &[x, x, axis], &[("N", int(2))]);
        assert_snapshot!(g.lower(&[b, c]), @"
            ---
            h = torch.bucketize(
                x, torch.tensor([-0.5, 0.0, 0.25]), right=True, out_int32=True
            )
            c = torch.cat([x, x], dim=1)
            return h, c
            ");
    }

    /// Constants that would broadcast to more values than the converter computes itself
    /// (`[n, 1] + [1, m]`, sizes from the file) stay an op: nothing that large is allocated.
    #[test]
    fn a_huge_broadcast_of_constants_is_not_folded() {
        let mut g = TestGraph::new();
        // 2^32 values: computed, 32 GiB; the machine would run out of memory.
        let n = 1 << 16;
        let a = g.constant("a", Tensor::from_f32(vec![n, 1], &vec![1.0; n]));
        let b = g.constant("b", Tensor::from_f32(vec![1, n], &vec![1.0; n]));
        let sum = g.op("sum", "AddV2", &[a, b], &[]);
        let mut graph = g.build(&[sum]);
        crate::passes::fold_and_infer(&mut graph).expect("infers");
        assert!(graph.const_value(graph.outputs[0]).is_none());
    }

    /// `tf.where(mask != 0, -100.0, mask)` of constants folds, the scalar broadcast.
    #[test]
    fn a_select_of_constants_broadcasts() {
        let mut g = TestGraph::new();
        let cond = g.constant("cond", Tensor::from_bool(vec![1, 3], &[true, false, true]));
        let low = g.constant("low", Tensor::from_f32(vec![], &[-100.0]));
        let mask = g.constant("mask", Tensor::from_f32(vec![2, 1], &[1.0, 2.0]));
        let s = g.op("s", "SelectV2", &[cond, low, mask], &[]);
        let mut graph = g.build(&[s]);
        crate::passes::fold_and_infer(&mut graph).expect("folds");
        let t = graph.const_value(graph.outputs[0]).expect("a constant");
        assert_eq!(t.shape, [2, 3]);
        assert_eq!(t.to_f64(), Some(vec![-100.0, 1.0, -100.0, -100.0, 2.0, -100.0]));
    }

    #[test]
    fn a_full_tensor_in_tf_layout_keeps_the_sum_in_tf_layout() {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 4, 4, 3]);
        let w = g.constant("w", weights(&[1, 1, 3, 3]));
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let conv = g.op("conv", "Conv2D", &[x, w], &pad);
        let other = g.op("other", "Tanh", &[x], &[]);
        let sum = g.op("sum", "AddV2", &[conv, other], &[]);
        let y = g.op("out", "Sigmoid", &[sum], &[]);
        let code = g.lower(&[y]);
        assert_snapshot!(code.split("---\n").nth(1).unwrap_or_default(), @"
        image_nchw = image.permute(0, 3, 1, 2)
        x = self.conv(image_nchw)
        other = torch.tanh(image)
        x = x.permute(0, 2, 3, 1)
        x = x + other
        x = torch.sigmoid(x)
        return x
        ");
    }

    /// `op(conv(x), c)` with `c` a constant of `shape` (or scalar when empty).
    fn binary_with_const(op: &str, shape: &[usize], swap: bool) -> String {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 4, 4, 3]);
        let w = g.constant("w", weights(&[1, 1, 3, 2]));
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let y = g.op("conv", "Conv2D", &[x, w], &pad);
        let c = g.constant("c", weights(shape));
        let ins = if swap { [c, y] } else { [y, c] };
        let z = g.op("out", op, &ins, &[]);
        g.lower(&[z])
    }

    #[test]
    fn constants_are_relaid_out_for_nchw() {
        assert_snapshot!(binary_with_const("Mul", &[2], false), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.out_const: [2, 1, 1] float32
        # conv.weight: [2, 3, 1, 1]
        # out_const: [2, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = (x * self.out_const).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(binary_with_const("Sub", &[1, 1, 1, 2], true), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.out_const: [2, 1, 1] float32
        # conv.weight: [2, 3, 1, 1]
        # out_const: [2, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = (self.out_const - x).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(binary_with_const("AddV2", &[4, 1, 2], false), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.out_const: [2, 4, 1] float32
        # conv.weight: [2, 3, 1, 1]
        # out_const: [2, 4, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = (x + self.out_const).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(binary_with_const("RealDiv", &[], false), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        # conv.weight: [2, 3, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = (x / 0.5).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn maximum_with_a_scalar_is_clamp() {
        assert_snapshot!(binary_with_const("Maximum", &[], false), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        # conv.weight: [2, 3, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.clamp(min=0.5).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(binary_with_const("Minimum", &[], true), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        # conv.weight: [2, 3, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = x.clamp(max=0.5).permute(0, 2, 3, 1)
        return x
        ");
        assert_snapshot!(binary_with_const("SquaredDifference", &[2], false), @"
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.out_const: [2, 1, 1] float32
        # conv.weight: [2, 3, 1, 1]
        # out_const: [2, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x)
        x = torch.square(x - self.out_const).permute(0, 2, 3, 1)
        return x
        ");
    }

    #[test]
    fn rank2_and_nchw_operands_fall_back_to_tf_layout() {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 4, 4, 2]);
        let w = g.constant("w", weights(&[1, 1, 2, 2]));
        let pad = [("strides", ints(&[1, 1, 1, 1])), ("padding", string("VALID"))];
        let y = g.op("conv", "Conv2D", &[x, w], &pad);
        let v = g.input("vec", &[-1, 2]);
        let z = g.op("out", "AddV2", &[y, v], &[]);
        assert_snapshot!(g.lower(&[z]), @"
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        # conv.weight: [2, 2, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.conv(x).permute(0, 2, 3, 1)
        x = x + vec
        return x
        ");
    }

    /// A size held as a Python number meets a tensor as it is (`positions - n`, GPT-2's
    /// causal mask built from the scores' size): PyTorch keeps the tensor's dtype, and
    /// `torch.tensor(n, dtype=torch.int32)` would only add a line. Not against a constant:
    /// `n > 0` of two numbers is a Python bool.
    #[test]
    fn a_size_and_a_tensor_combine_as_a_python_number() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, -1]);
        let shape = g.op("shape", "Shape", &[x], &[]);
        let idx = |g: &mut TestGraph, name: &str, v: i64| g.constant(name, int_tensor(&[1], &[v]));
        let (b, e, s) = (idx(&mut g, "b", 1), idx(&mut g, "e", 2), idx(&mut g, "s", 1));
        let n = g.op("n", "StridedSlice", &[shape, b, e, s], &[("shrink_axis_mask", int(1))]);
        let zero = g.constant("zero", int_tensor(&[], &[0]));
        let one = g.constant("one", int_tensor(&[], &[1]));
        let positions = g.op("positions", "Range", &[zero, n, one], &[]);
        let back = g.op("back", "Sub", &[positions, n], &[]);
        let past = g.op("past", "GreaterEqual", &[back, n], &[]);
        assert_snapshot!(g.lower(&[back, past]), @"
        ---
        shape = x.shape
        dim = shape[1]
        x = torch.arange(dim, dtype=torch.int32)
        back = x - dim
        x = back >= dim
        return back, x
        ");
    }

    /// A rounding of a constant folds (`ceil(20 / 512)`, a size TF computes), and so do a
    /// sine and cosine (`tf.signal`'s Hann window); a torch function not folded gets its
    /// scalar constant as a tensor (`torch.tan` takes no Python number).
    #[test]
    fn functions_of_scalar_constants() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3]);
        let c = g.constant("c", Tensor::from_f32(vec![], &[0.0390625]));
        let up = g.op("ceil", "Ceil", &[c], &[]);
        let sin = g.op("sin", "Sin", &[c], &[]);
        let tan = g.op("tan", "Tan", &[c], &[]);
        let y = g.op("mul", "Mul", &[x, up], &[]);
        let z = g.op("add", "AddV2", &[y, sin], &[]);
        let z = g.op("add_1", "AddV2", &[z, tan], &[]);
        assert_snapshot!(g.lower(&[z]), @"
        ---
        x = x + 0.03905257
        y = torch.tan(torch.tensor(0.0390625, dtype=torch.float32))
        x = x + y
        return x
        ");
    }

    /// A variable's `exp` is computed from it (a logit scale trained as a logarithm): the
    /// parameter is what trains. Its `abs` folds: such a variable is as often a setting.
    #[test]
    fn the_exp_of_a_variable_is_computed() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3]);
        let log_scale = g.variable("head/logit_scale", Tensor::from_f32(vec![], &[0.5]));
        let up = g.variable("head/up", Tensor::from_f32(vec![], &[-2.0]));
        let scale = g.op("head/Exp", "Exp", &[log_scale], &[]);
        let size = g.op("head/Abs", "Abs", &[up], &[]);
        let y = g.op("head/mul", "Mul", &[x, scale], &[]);
        let z = g.op("head/mul_1", "Mul", &[y, size], &[]);
        assert_snapshot!(g.lower(&[z]), @"
        self.logit_scale: [] float32
        # logit_scale: []
        ---
        y = torch.exp(self.logit_scale)
        x = x * y
        x = x * 2.0
        return x
        ");
    }

    /// A bfloat16 constant's logarithm and product fold as TF computes them: in float32,
    /// rounded to bfloat16 once (YaRN's `0.1 * log(factor) + 1` for its rotary tables).
    #[test]
    fn bfloat16_constants_fold_in_float32() {
        use crate::tensor::{DType, Values};
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, 3], DType::BF16);
        let c = |v| Tensor::with_values_like(DType::BF16, vec![], &Values::F(vec![v])).unwrap();
        let factor = g.constant("factor", c(3.0));
        let tenth = g.constant("tenth", c(0.1));
        let log = g.op("log", "Log", &[factor], &[]);
        let scale = g.op("scale", "Mul", &[tenth, log], &[]);
        let y = g.op("y", "Mul", &[x, scale], &[]);
        let code = g.lower(&[y]);
        // ln 3 = 1.0986 is 1.1015625 in bfloat16; times 0.10009766, 0.11035156 (0.110261...).
        assert!(code.contains("x * 0.11035156"), "{code}");
    }

    #[test]
    fn unary_ops() {
        let all: Vec<String> =
            ["Rsqrt", "Sqrt", "Square", "Exp", "Log", "Neg", "Abs", "Reciprocal"]
                .iter()
                .map(|op| {
                    let mut g = TestGraph::new();
                    let x = g.input("v", &[-1, 3]);
                    let y = g.op("u", op, &[x], &[]);
                    g.lower(&[y]).lines().nth(1).unwrap_or_default().to_string()
                })
                .collect();
        assert_snapshot!(all.join("\n"), @"
        x = torch.rsqrt(v)
        x = torch.sqrt(v)
        x = torch.square(v)
        x = torch.exp(v)
        x = torch.log(v)
        x = -v
        x = torch.abs(v)
        x = torch.reciprocal(v)
        ");
    }

    #[test]
    fn constant_arithmetic_folds_in_f32() {
        let mut g = TestGraph::new();
        let x = g.input("v", &[-1, 2]);
        let a = g.constant("a", Tensor::from_f32(vec![2], &[0.1, 4.0]));
        let eps = g.constant("eps", Tensor::from_f32(vec![], &[0.001]));
        let s = g.op("s", "AddV2", &[a, eps], &[]);
        let r = g.op("r", "Rsqrt", &[s], &[]);
        let y = g.op("y", "Mul", &[x, r], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.r_const: [2] float32
        # r_const: [2]
        ---
        x = v * self.r_const
        return x
        ");
    }

    #[test]
    fn add_n_sums_in_the_inputs_layout() {
        assert_snapshot!(after_conv(|g, y| {
            let r = g.op("relu", "Relu", &[y], &[]);
            g.op("sum", "AddN", &[y, r, y], &[("N", int(3))])
        }), @"
        x = image.permute(0, 3, 1, 2)
        conv = self.conv(x)
        x = F.relu(conv)
        x = (conv + x + conv).permute(0, 2, 3, 1)
        return x
        ");
    }
}
