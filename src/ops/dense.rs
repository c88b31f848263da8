//! Dense layers: `MatMul` with a constant kernel → `nn.Linear` (`[in, out]` → `[out, in]` at
//! conversion time, a fused bias its bias), else `@`; `BiasAdd` on its own → `x + b`.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult, TranslateError};
use crate::ops::util::{float_weight, linear_layer, same_as_input};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::BinOp;

pub const OPS: &[OpDef] = &[
    op("MatMul", matmul).infer(matmul_infer).bias_slot(2).per_row(matmul_per_row),
    op("BiasAdd", bias_add).infer(same_as_input).per_row(bias_add_per_row),
];

/// A MatMul without transposes multiplies each row of its input.
fn matmul_per_row(node: &crate::ir::Node) -> bool {
    !node.attr_bool_or("transpose_a", false).unwrap_or(true)
        && !node.attr_bool_or("transpose_b", false).unwrap_or(true)
}

/// A BiasAdd in NHWC adds to the last axis.
fn bias_add_per_row(node: &crate::ir::Node) -> bool {
    node.attr_str_or("data_format", "NHWC").is_ok_and(|f| f == "NHWC")
}

fn bias_add(ctx: &mut Ctx) -> OpResult<Lowered> {
    let df = ctx.node().attr_str_or("data_format", "NHWC")?;
    if !ctx.is_const(1) && df == "NHWC" {
        // A bias computed at run time (a loop invariant) broadcasts over the last axis.
        let (x, b) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
        return Ok(Lowered::Expr { expr: x.binop(BinOp::Add, b), layout: Layout::Tf });
    }
    let b = ctx.const_input(1)?.clone();
    let c = b.numel();
    let Some(rank) = ctx.rank(0) else {
        // NHWC at any rank: the bias broadcasts over the last axis.
        if df != "NHWC" {
            return Err(TranslateError::UnknownRank);
        }
        let (x, bias) = (ctx.input_tf(0)?, ctx.constant_as(1, "bias", b)?);
        return Ok(Lowered::Expr { expr: x.binop(BinOp::Add, bias), layout: Layout::Tf });
    };
    let layout = if rank == 4 && df == "NHWC" { ctx.layout(0)? } else { Layout::Tf };
    let channels_first = df == "NCHW" || layout == Layout::ChannelsFirst;
    let b = if channels_first && rank >= 3 {
        let mut s = vec![c];
        s.extend(std::iter::repeat_n(1, rank - 2));
        b.reshaped(s)
    } else {
        b
    };
    let x = ctx.input_in(0, layout)?;
    let bias = ctx.constant_as(1, "bias", b)?;
    Ok(Lowered::Expr { expr: x.binop(BinOp::Add, bias), layout })
}

fn matmul(ctx: &mut Ctx) -> OpResult<Lowered> {
    let node = ctx.node();
    let ta = node.attr_bool_or("transpose_a", false)?;
    let tb = node.attr_bool_or("transpose_b", false)?;
    // A table the model computes (`positions @ inv_freq`) is multiplied, not a layer.
    if ctx.is_const(1) && !ta && (ctx.is_weight(1) || ctx.has_bias()) {
        let w = float_weight(ctx, 1, 2)?;
        return linear_layer(ctx, w, tb);
    }
    if ctx.has_bias() {
        return Err("fused bias on a non-constant MatMul".into());
    }
    let mut a = ctx.input_tf(0)?;
    let mut b = ctx.input_tf(1)?;
    if ta {
        a = a.attr("T");
    }
    if tb {
        b = b.attr("T");
    }
    Ok(Lowered::Expr { expr: a.binop(BinOp::MatMul, b), layout: Layout::Tf })
}

fn matmul_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let a = inp.infos.first()?.shape.clone()?;
    let b = inp.infos.get(1)?.shape.clone()?;
    if a.len() != 2 || b.len() != 2 {
        return None;
    }
    let ta = inp.node.attr_bool_or("transpose_a", false).ok()?;
    let tb = inp.node.attr_bool_or("transpose_b", false).ok()?;
    let m = if ta { a[1] } else { a[0] };
    let n = if tb { b[0] } else { b[1] };
    Some(vec![ValueInfo { dtype: inp.infos[0].dtype, shape: Some(vec![m, n]) }])
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn matmul_on_constant_is_linear() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 5]);
        let w = g.constant("dense/kernel", weights(&[3, 5]));
        let b = g.constant("dense/bias", weights(&[3]));
        let y = g.op("dense/MatMul", "MatMul", &[x, w], &[("transpose_b", boolean(true))]);
        let y = g.op("dense/add", "AddV2", &[y, b], &[]);
        assert_snapshot!(g.lower(&[y]), @"
        self.fc = nn.Linear(5, 3)
        # fc.weight: [3, 5]
        # fc.bias: [3]
        ---
        x = self.fc(x)
        return x
        ");
    }

    #[test]
    fn matmul_of_two_tensors() {
        let mut g = TestGraph::new();
        let a = g.input("a", &[4, 5]);
        let b = g.input("b", &[4, 3]);
        let y = g.op("mm", "MatMul", &[a, b], &[("transpose_a", boolean(true))]);
        assert_snapshot!(g.lower(&[y]), @"
        ---
        x = a.T @ b
        return x
        ");
    }
}
