//! `Cast` → `.to(torch.<dtype>)`, folded on constants and shape vectors; and the ops whose
//! outputs are their inputs (`Identity`, ...; run-time checks such as `CheckNumerics`),
//! which `passes::identity` removes, and `EnsureShape`, which only tells shapes; `Bitcast` →
//! `view(dtype)`.

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
    // Checks at run time that pass their first input on (`tf.debugging.check_numerics`,
    // which Keras' `ops.linalg.solve` adds; TF1's `tf.Print`): the value is what matters.
    passthrough("CheckNumerics").infer(same_as_input),
    passthrough("CheckNumericsV2").infer(same_as_input),
    passthrough("Print").infer(same_as_input),
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

/// Elements from which an 8- or 16-bit integer constant is taken for quantized weights, not
/// folded to floats: more than any lookup table of small codes a graph casts.
pub(crate) const QUANTIZED_TABLE_MIN: usize = 256;

fn cast_fold(inp: &OpInputs) -> Option<Folded> {
    let dst = inp.node.attr_type("DstT").ok()?;
    if let Some(t) = inp.consts.first().copied().flatten() {
        // Quantized weights (Keras' int8 kernels and embeddings, cast to float where used)
        // stay what the model stores, a quarter of their size as float32: cast in forward.
        let quantized = matches!(t.dtype, DType::I8 | DType::U8 | DType::I16 | DType::U16);
        if quantized && !dst.is_int() && t.numel() > QUANTIZED_TABLE_MIN {
            return None;
        }
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

#[cfg(test)]
mod tests {
    use crate::tensor::{DType, Tensor};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// Keras' int4 unpacking masks int8 weights with int32 constants cast to int8: folded,
    /// modulo the narrower type's range as TF casts (300 is 44 in int8), into literals.
    #[test]
    fn integer_constants_cast_to_a_narrower_type_fold() {
        let mut g = TestGraph::new();
        let x = g.typed_input("x", &[-1, 4], DType::I8);
        let mut outs = Vec::new();
        for (name, v) in [("mask", 15), ("wrapped", 300)] {
            let c = g.constant(&format!("{name}/x"), int_tensor(&[], &[v]));
            let a = [("SrcT", dtype(DType::I32)), ("DstT", dtype(DType::I8))];
            let c = g.op(name, "Cast", &[c], &a);
            outs.push(g.op(&format!("{name}/and"), "BitwiseAnd", &[x, c], &[]));
        }
        assert_snapshot!(g.lower(&outs), @"
        ---
        h = torch.bitwise_and(x, 15)
        wrapped = torch.bitwise_and(x, 44)
        return h, wrapped
        ");
    }

    /// A quantized model's int8 weights stay int8 (a quarter of their float32 size), cast to
    /// float where used, as the model does; a small table of int8 codes still folds.
    #[test]
    fn int8_weights_cast_to_float_stay_int8() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 32]);
        let codes: Vec<u8> = (0..32 * 16).map(|i| (i * 7 % 255) as u8).collect();
        let w = Tensor { dtype: DType::I8, shape: vec![32, 16], data: codes.into() };
        let w = g.variable("dense/kernel", w);
        let a = [("SrcT", dtype(DType::I8)), ("DstT", dtype(DType::F32))];
        let w = g.op("dense/Cast", "Cast", &[w], &a);
        let y = g.op("dense/MatMul", "MatMul", &[x, w], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.kernel: [32, 16] int8
        # kernel: [32, 16]
        ---
        y = self.kernel.to(torch.float32)
        x = x @ y
        return x
        ");
    }
}
