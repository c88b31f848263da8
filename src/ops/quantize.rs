//! Simulated quantization, as quantization-aware training leaves it in a graph: values rounded
//! to a fixed-point grid and back to float. `FakeQuantWithMinMaxArgs/Vars` (TF's "nudged"
//! range, rounding half up) and `QuantizeAndDequantizeV2/V3/V4`. A range given per tensor has
//! its grid computed here in float32, as TF's kernels compute it, and is written as plain
//! arithmetic: `torch.floor((x.clamp(lo, hi) - lo) * inv_scale + 0.5) * scale + lo`; a range
//! from the data (`range_given=false`: the input's min and max, per tensor or per channel)
//! goes through the same rules on tensors at run time (a helper, `_quantize_dequantize`).
//! And Keras' int8 quantization of a layer's input (`passes::fuse_quantize`): a helper,
//! `quantize_int8`, giving the int8 codes and their scale.

use crate::ir::ValueInfo;
use crate::ir::fused::{self, Fused};
use crate::ops::contract::{Ctx, Lowered, OpResult};
use crate::ops::util::same_as_input;
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[
    op("FakeQuantWithMinMaxArgs", fake_quant).infer(same_as_input),
    op("FakeQuantWithMinMaxVars", fake_quant).infer(same_as_input),
    op("FakeQuantWithMinMaxVarsPerChannel", fake_quant_per_channel).infer(same_as_input),
    op("QuantizeAndDequantizeV2", quantize_dequantize).infer(same_as_input),
    op("QuantizeAndDequantizeV3", quantize_dequantize).infer(same_as_input),
    op("QuantizeAndDequantizeV4", quantize_dequantize).infer(same_as_input),
    op(fused::QUANTIZE_INT8, quantize_int8).infer(quantize_int8_infer),
];

/// Keras' default epsilon (`keras.config.epsilon()`), the helper's default.
const KERAS_EPSILON: f32 = 1e-7;

/// `codes, scale = quantize_int8(x, dim)` (templates/quantize_int8.py), with `eps=` where
/// the model's epsilon is not Keras' default.
fn quantize_int8(ctx: &mut Ctx) -> OpResult<Lowered> {
    let Some(Fused::QuantizeInt8 { epsilon }) = ctx.node().fused else {
        return Err("not a quantization".into());
    };
    let dims = quantized_axes(&ctx.const_ints(1)?, ctx.rank(0))?;
    let dim = match dims.as_slice() {
        [one] => Expr::int(*one),
        many => Expr::Tuple(many.iter().map(|&d| Expr::int(d)).collect()),
    };
    let kwargs = if epsilon == KERAS_EPSILON { vec![] } else { vec![("eps", Expr::f32(epsilon))] };
    ctx.require_class("quantize_int8", include_str!("../../templates/quantize_int8.py"));
    let expr = Expr::call_kw("quantize_int8", vec![ctx.input_tf(0)?, dim], kwargs);
    Ok(Lowered::MultiViews { expr, views: vec![vec![], vec![]] })
}

/// The axes of a quantization's maximum, from 0 where the rank is known (as TF's `Max`
/// reads them, see `reduce::axes`), else as given when all count from the end.
fn quantized_axes(raw: &[i64], rank: Option<usize>) -> OpResult<Vec<i64>> {
    let dims = match rank {
        Some(r) => super::reduce::axes(raw, r)?.into_iter().map(|a| a as i64).collect(),
        None if raw.iter().all(|&a| a < 0) => {
            let mut dims = raw.to_vec();
            dims.sort_unstable();
            dims.dedup();
            dims
        }
        None => return Err("axes of an input of unknown rank".into()),
    };
    if dims.is_empty() {
        return Err("no axes".into());
    }
    Ok(dims)
}

/// The codes (int8, the input's shape) and the scale (the input's type, the axes kept at 1).
fn quantize_int8_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let scale = x.shape.as_ref().and_then(|s| {
        let dims = quantized_axes(&inp.const_ints(1)?, Some(s.len())).ok()?;
        let dims: Vec<usize> = dims.into_iter().map(|d| d as usize).collect();
        Some(
            s.iter()
                .enumerate()
                .map(|(i, &d)| if dims.contains(&i) { Some(1) } else { d })
                .collect(),
        )
    });
    Some(vec![
        ValueInfo { dtype: Some(DType::I8), shape: x.shape.clone() },
        ValueInfo { dtype: x.dtype, shape: scale },
    ])
}

/// A float32 scalar input (a range bound), constant at conversion time.
fn scalar_input(ctx: &Ctx, i: usize, what: &str) -> OpResult<f32> {
    let t = ctx.const_input(i).map_err(|_| format!("{what} must be a constant"))?;
    match t.to_f64().as_deref() {
        Some([v]) => Ok(*v as f32),
        _ => Err(format!("{what} must be a scalar (per-channel ranges are not supported)").into()),
    }
}

/// `e + c`, written `e - |c|` for a negative `c`.
fn plus(e: Expr, c: f32) -> Expr {
    if c < 0.0 { e.binop(BinOp::Sub, Expr::f32(-c)) } else { e.binop(BinOp::Add, Expr::f32(c)) }
}

fn num_bits(ctx: &Ctx, default: i64) -> OpResult<u32> {
    let bits = ctx.node().attr_int_or("num_bits", default)?;
    u32::try_from(bits)
        .ok()
        .filter(|b| (2..=16).contains(b))
        .ok_or_else(|| format!("num_bits {bits}").into())
}

/// TF's nudged range (fake_quant_ops_functor.h): the zero point moved onto the grid.
/// Returns `(nudged_min, nudged_max, scale, inv_scale)`.
fn nudge(min: f32, max: f32, quant_min: f32, quant_max: f32) -> (f32, f32, f32, f32) {
    let scale = (max - min) / (quant_max - quant_min);
    let inv_scale = (quant_max - quant_min) / (max - min);
    let zero_from_min = quant_min - min / scale;
    let zero = if zero_from_min < quant_min {
        quant_min
    } else if zero_from_min > quant_max {
        quant_max
    } else {
        zero_from_min.round()
    };
    ((quant_min - zero) * scale, (quant_max - zero) * scale, scale, inv_scale)
}

/// A fake-quant's integer grid, `(quant_min, quant_max)`: `num_bits` wide, from 1 when
/// `narrow_range`.
fn fake_quant_grid(ctx: &Ctx) -> OpResult<(f32, f32)> {
    let narrow = ctx.node().attr_bool_or("narrow_range", false)?;
    let bits = num_bits(ctx, 8)?;
    Ok((if narrow { 1.0 } else { 0.0 }, ((1u32 << bits) - 1) as f32))
}

/// [`nudge`] of a range that is not empty (which also refuses NaN bounds).
fn nudge_range(min: f32, max: f32, (qmin, qmax): (f32, f32)) -> OpResult<(f32, f32, f32, f32)> {
    if min.partial_cmp(&max) != Some(std::cmp::Ordering::Less) {
        return Err(format!("range [{min}, {max}] is empty").into());
    }
    Ok(nudge(min, max, qmin, qmax))
}

fn fake_quant(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let (min, max) = if node.op == "FakeQuantWithMinMaxArgs" {
        (node.attr_float_or("min", -6.0)?, node.attr_float_or("max", 6.0)?)
    } else {
        (scalar_input(ctx, 1, "min")?, scalar_input(ctx, 2, "max")?)
    };
    let (lo, hi, scale, inv) = nudge_range(min, max, fake_quant_grid(ctx)?)?;
    let x = ctx.input(0)?;
    let shifted = x.expr.method_kw("clamp", vec![Expr::f32(lo), Expr::f32(hi)], vec![]);
    let steps = plus(shifted, -lo).binop(BinOp::Mul, Expr::f32(inv));
    let rounded = Expr::call("torch.floor", vec![steps.binop(BinOp::Add, Expr::f32(0.5))]);
    let expr = plus(rounded.binop(BinOp::Mul, Expr::f32(scale)), lo);
    Ok(Lowered::Expr { expr, layout: x.layout })
}

/// Per channel (the last axis), each channel's range nudged as [`fake_quant`]'s is: the
/// bounds, scales and their inverses are buffers, the arithmetic the same.
fn fake_quant_per_channel(ctx: &mut Ctx) -> OpResult<Lowered> {
    let bound = |i: usize, what: &str| -> OpResult<Vec<f32>> {
        let t = ctx.const_input(i).map_err(|_| format!("{what} must be a constant"))?;
        Ok(t.to_f64().ok_or(format!("{what} must be float"))?.iter().map(|&v| v as f32).collect())
    };
    let (min, max) = (bound(1, "min")?, bound(2, "max")?);
    if min.len() != max.len() || min.is_empty() {
        return Err(format!("{} minima for {} maxima", min.len(), max.len()).into());
    }
    let grid = fake_quant_grid(ctx)?;
    let mut grids: [Vec<f32>; 4] = Default::default();
    for (&lo, &hi) in min.iter().zip(&max) {
        let (lo, hi, scale, inv) = nudge_range(lo, hi, grid)?;
        for (grid, v) in grids.iter_mut().zip([lo, hi, scale, inv]) {
            grid.push(v);
        }
    }
    let mut vectors = Vec::new();
    for (name, values) in ["min", "max", "scale", "inv_scale"].into_iter().zip(grids) {
        let t = crate::tensor::Tensor::from_f32(vec![values.len()], &values);
        vectors.push(ctx.buffer(name, t)?);
    }
    let [lo, hi, scale, inv] = <[Expr; 4]>::try_from(vectors).map_err(|_| "four grids")?;
    let x = ctx.input_tf(0)?;
    let steps = x.method("clamp", vec![lo.clone(), hi]).binop(BinOp::Sub, lo.clone());
    let steps = steps.binop(BinOp::Mul, inv).binop(BinOp::Add, Expr::f32(0.5));
    let rounded = Expr::call("torch.floor", vec![steps]);
    let expr = rounded.binop(BinOp::Mul, scale).binop(BinOp::Add, lo);
    Ok(Lowered::Expr { expr, layout: crate::ops::contract::Layout::Tf })
}

fn quantize_dequantize(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let given = node.attr_bool_or("range_given", false)?;
    let signed = node.attr_bool_or("signed_input", true)?;
    let narrow = node.attr_bool_or("narrow_range", false)?;
    let half_up = node.attr_str_or("round_mode", "HALF_TO_EVEN")? == "HALF_UP";
    let axis = node.attr_int_or("axis", -1)?;
    let bits = if node.op == "QuantizeAndDequantizeV3" {
        match ctx.const_ints(3)?.as_slice() {
            [b] => u32::try_from(*b).ok().filter(|b| (2..=16).contains(b)).ok_or("num_bits")?,
            _ => return Err("num_bits must be a scalar".into()),
        }
    } else {
        num_bits(ctx, 8)?
    };
    let (min_q, max_q) = if signed {
        let half = (1i64 << (bits - 1)) as f32;
        (-half + if narrow { 1.0 } else { 0.0 }, half - 1.0)
    } else {
        (0.0, ((1u32 << bits) - 1) as f32)
    };
    if given {
        // TF 2.21's kernels take a given range as scalars only (per channel they refuse it).
        let (lo, hi) = (scalar_input(ctx, 1, "input_min")?, scalar_input(ctx, 2, "input_max")?);
        return given_range(ctx, lo, hi, min_q, max_q, half_up);
    }
    // A range from the data, per tensor or per channel: the same rules on tensors, at run time.
    let rank = ctx.info(0).shape.map(|s| s.len()).ok_or("input of unknown rank")?;
    let x = ctx.input_tf(0)?;
    let reduce = |m: &str| -> OpResult<Expr> {
        Ok(match axis {
            -1 => x.clone().method(m, vec![]),
            a => {
                let a = crate::ops::util::norm_axis(a, rank)?;
                let dims = (0..rank).filter(|&d| d != a).map(|d| Expr::int(d as i64)).collect();
                let kw = vec![("dim", Expr::Tuple(dims)), ("keepdim", Expr::boolean(true))];
                x.clone().method_kw(m, vec![], kw)
            }
        })
    };
    let (lo, hi) = (reduce("amin")?, reduce("amax")?);
    ctx.require_class(
        "_quantize_dequantize",
        include_str!("../../templates/quantize_dequantize.py"),
    );
    let expr = Expr::call(
        "_quantize_dequantize",
        vec![x, lo, hi, Expr::f32(min_q), Expr::f32(max_q), Expr::boolean(half_up)],
    );
    Ok(Lowered::Expr { expr, layout: crate::ops::contract::Layout::Tf })
}

/// A range known at conversion time: the grid computed here, the graph plain arithmetic.
fn given_range(
    ctx: &mut Ctx,
    mut lo: f32,
    mut hi: f32,
    min_q: f32,
    max_q: f32,
    half_up: bool,
) -> OpResult<Lowered> {
    // quantize_and_dequantize_op.h: the side whose scale is smaller fixes the scale, the
    // other bound is moved onto the grid.
    let from_min = if min_q * lo > 0.0 { min_q / lo } else { f32::MAX };
    let from_max = if max_q * hi > 0.0 { max_q / hi } else { f32::MAX };
    let (scale, inv) = if from_min < from_max {
        let inv = lo / min_q;
        hi = max_q * inv;
        (from_min, inv)
    } else {
        let inv = hi / max_q;
        lo = min_q * inv;
        (from_max, inv)
    };
    let x = ctx.input(0)?;
    let scaled = x
        .expr
        .method_kw("clamp", vec![Expr::f32(lo), Expr::f32(hi)], vec![])
        .binop(BinOp::Mul, Expr::f32(scale));
    let rounded = if half_up {
        Expr::call("torch.floor", vec![scaled.binop(BinOp::Add, Expr::f32(0.5))])
    } else {
        Expr::call("torch.round", vec![scaled])
    };
    Ok(Lowered::Expr { expr: rounded.binop(BinOp::Mul, Expr::f32(inv)), layout: x.layout })
}
