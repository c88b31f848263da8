//! `Cast` → `.to(torch.<dtype>)`, folded on constants and shape vectors; and the ops whose
//! outputs are their inputs (`Identity`, ...), which `passes::identity` removes, and
//! `EnsureShape`, which only tells shapes; `Bitcast` → `view(dtype)`.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::util::{same_as_input, torch_attr};
use crate::ops::{Folded, OpDef, OpInputs, op, passthrough};
use crate::py::Expr;
use crate::tensor::{DType, Tensor, Values};

pub const OPS: &[OpDef] = &[
    op("Cast", cast).infer(cast_infer).fold(cast_fold),
    passthrough("Identity").infer(same_as_input),
    passthrough("IdentityN"),
    passthrough("StopGradient").infer(same_as_input),
    passthrough("Snapshot").infer(same_as_input),
    passthrough("PreventGradient").infer(same_as_input),
    // An input with a default (Keras' learning phase): its default unless named with
    // `--inputs`, which makes it a Placeholder.
    passthrough("PlaceholderWithDefault").infer(same_as_input),
    op("Bitcast", bitcast).infer(bitcast_infer),
    // `tf.ensure_shape`: a check at run time in TF, here what it says about the shape.
    op("EnsureShape", |c| {
        if c.num_inputs() != 1 {
            return Err("takes one input".into());
        }
        Ok(Lowered::Alias(0))
    })
    .infer(ensure_shape_infer),
];

/// The element sizes of `Bitcast`'s input and output types (`T`, `type`).
fn bitcast_sizes(node: &crate::ir::Node) -> Option<(DType, usize, usize)> {
    let (from, to) = (node.attr_type("T").ok()?, node.attr_type("type").ok()?);
    Some((to, from.size()?, to.size()?))
}

/// The same bits read as another type (`x.view(dtype)`): to a narrower type TF adds an axis
/// of the ratio's size; to a wider one it drops the last axis, of that size.
fn bitcast(ctx: &mut Ctx) -> OpResult<Lowered> {
    let (to, from_size, to_size) = bitcast_sizes(ctx.node()).ok_or("types of unknown size")?;
    let dtype = torch_attr(to.torch_name().ok_or_else(|| format!("bitcast to {to:?}"))?);
    let x = ctx.input_tf(0)?;
    let expr = match from_size.cmp(&to_size) {
        std::cmp::Ordering::Equal => x.method("view", vec![dtype]),
        std::cmp::Ordering::Greater => {
            x.method("unsqueeze", vec![Expr::int(-1)]).method("view", vec![dtype])
        }
        std::cmp::Ordering::Less => {
            x.method("view", vec![dtype]).method("squeeze", vec![Expr::int(-1)])
        }
    };
    Ok(Lowered::Expr { expr, layout: Layout::Tf })
}

fn bitcast_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let (to, from_size, to_size) = bitcast_sizes(inp.node)?;
    let shape = inp.infos.first()?.shape.clone().map(|mut s| {
        match from_size.cmp(&to_size) {
            std::cmp::Ordering::Greater => s.push(Some(from_size / to_size)),
            std::cmp::Ordering::Less => {
                s.pop();
            }
            std::cmp::Ordering::Equal => {}
        }
        s
    });
    Some(vec![ValueInfo { dtype: Some(to), shape }])
}

/// The input's shape, each size it leaves unknown taken from the `shape` attribute.
fn ensure_shape_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let declared = inp.node.attr_shape("shape").ok().flatten();
    let shape = match (&x.shape, declared) {
        (Some(s), Some(d)) if s.len() == d.len() => {
            Some(s.iter().zip(d).map(|(&a, b)| a.or(b)).collect())
        }
        (None, Some(d)) => Some(d),
        (s, _) => s.clone(),
    };
    Some(vec![ValueInfo { dtype: x.dtype, shape }])
}

fn cast(ctx: &mut Ctx) -> OpResult<Lowered> {
    let dst = ctx.node().attr_type("DstT")?;
    let name = dst.torch_name().ok_or_else(|| format!("cast to {dst:?}"))?;
    let x = ctx.input(0)?;
    if x.layout == Layout::Host {
        // Python ints stay Python ints as integers; as anything else they become a tensor.
        if dst.is_int() {
            return Ok(Lowered::Alias(0));
        }
        // A size as a float (`tf.range(tf.cast(n, tf.float32))`): still a Python number.
        if dst.is_float() && ctx.rank(0) == Some(0) {
            let expr = Expr::call("float", vec![x.expr]);
            return Ok(Lowered::Expr { expr, layout: Layout::Host });
        }
        let expr = Expr::call_kw("torch.tensor", vec![x.expr], vec![("dtype", torch_attr(name))]);
        return Ok(Lowered::Expr { expr, layout: Layout::Tf });
    }
    let expr = x.expr.method("to", vec![torch_attr(name)]);
    Ok(Lowered::Expr { expr, layout: x.layout })
}

fn cast_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    Some(vec![ValueInfo { dtype: inp.node.attr_type("DstT").ok(), shape: x.shape.clone() }])
}

fn cast_fold(inp: &OpInputs) -> Option<Folded> {
    let dst = inp.node.attr_type("DstT").ok()?;
    if let Some(t) = inp.consts.first().copied().flatten() {
        // Weights a mixed-precision model casts to 16 bits where used (Keras keeps float32
        // ones) are rounded once, as TF rounds them each time: its layers are then layers in
        // that dtype (`nn.Conv2d(..., dtype=torch.float16)`), its constants literals.
        // Widening a 16-bit float is exact (a bfloat16 model's norm weights, which Keras
        // applies in float32): folded, though no arithmetic is folded in 16 bits.
        let widened =
            matches!(t.dtype, DType::F16 | DType::BF16) && matches!(dst, DType::F32 | DType::F64);
        let values = if widened { Values::F(t.to_f64()?) } else { t.values()? };
        let v = match (values, dst.is_float()) {
            (Values::F(f), false) => Values::I(f.into_iter().map(|x| x.trunc() as i64).collect()),
            (Values::I(i), true) => Values::F(i.into_iter().map(|x| x as f64).collect()),
            (v, _) => v,
        };
        return Tensor::with_values_like(dst, t.shape.clone(), &v).map(Folded::Tensor);
    }
    let p = inp.partials.first().copied().flatten()?;
    dst.is_int().then(|| Folded::Partial(p.clone()))
}
