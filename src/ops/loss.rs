//! Training losses TF graphs keep as ops: `SoftmaxCrossEntropyWithLogits` and its sparse form
//! → `F.cross_entropy(logits, target, reduction="none")` (probabilities or class ids), with
//! TF's second output, the gradient with respect to the logits (`softmax - target`);
//! `L2Loss` (`tf.nn.l2_loss`, weight decay) → `x.square().sum() / 2`; `InTopKV2` (whether
//! each target's score is among the k best) → a count of better scores.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::{BinOp, Expr};

pub const OPS: &[OpDef] = &[
    op("SoftmaxCrossEntropyWithLogits", |c| cross_entropy(c, false)).infer(loss_infer),
    op("SparseSoftmaxCrossEntropyWithLogits", |c| cross_entropy(c, true)).infer(loss_infer),
    op("L2Loss", |c| {
        let x = c.input_tf(0)?;
        let sum = x.method("square", vec![]).method("sum", vec![]);
        Ok(Lowered::Expr { expr: sum.binop(BinOp::Div, Expr::int(2)), layout: Layout::Tf })
    })
    .infer(|inp| Some(vec![ValueInfo { dtype: inp.infos.first()?.dtype, shape: Some(vec![]) }])),
    op("InTopKV2", in_top_k).infer(|inp| {
        let n = inp.infos.first()?.dim(0);
        Some(vec![ValueInfo { dtype: Some(crate::tensor::DType::Bool), shape: Some(vec![n]) }])
    }),
];

/// `in_top_k(scores, targets, k)` (templates/in_top_k.py).
fn in_top_k(ctx: &mut Ctx) -> OpResult<Lowered> {
    ctx.require_class("in_top_k", include_str!("../../templates/in_top_k.py"));
    let (scores, targets) = (ctx.input_tf(0)?, ctx.input_tf(1)?);
    let k = crate::ops::sizes::scalar(ctx, 2)?.expr;
    Ok(Lowered::Expr { expr: Expr::call("in_top_k", vec![scores, targets, k]), layout: Layout::Tf })
}

/// `(loss, backprop)` for logits `[batch, classes]` and targets: probabilities of the same
/// shape, or (sparse) class ids `[batch]`.
fn cross_entropy(ctx: &mut Ctx, sparse: bool) -> OpResult<Lowered> {
    if ctx.rank(0).is_some_and(|r| r != 2) {
        return Err("logits must be [batch, classes]".into());
    }
    let logits = ctx.input_tf(0)?;
    let labels = ctx.input_tf(1)?;
    let target = if sparse { labels.clone().method("long", vec![]) } else { labels.clone() };
    let loss = Expr::call_kw(
        "F.cross_entropy",
        vec![logits.clone(), target.clone()],
        vec![("reduction", Expr::str_lit("none"))],
    );
    let probs = Expr::call_kw("F.softmax", vec![logits.clone()], vec![("dim", Expr::int(-1))]);
    let truth = if sparse {
        let classes = logits.clone().attr("shape").index(Expr::int(-1));
        Expr::call("F.one_hot", vec![target, classes]).method("to", vec![logits.attr("dtype")])
    } else {
        labels
    };
    let grad = probs.binop(BinOp::Sub, truth);
    Ok(Lowered::Multi { expr: Expr::Tuple(vec![loss, grad]), layout: Layout::Tf })
}

fn loss_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let logits = inp.infos.first()?;
    let batch = logits.shape.as_ref().and_then(|s| s.first().copied());
    let loss = ValueInfo { dtype: logits.dtype, shape: batch.map(|b| vec![b]) };
    Some(vec![loss, logits.clone()])
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn sparse_cross_entropy_and_its_gradient() {
        let mut g = TestGraph::new();
        let logits = g.input("logits", &[-1, 5]);
        let ids = g.typed_input("ids", &[-1], crate::tensor::DType::I32);
        let y = g.op("xent", "SparseSoftmaxCrossEntropyWithLogits", &[logits, ids], &[]);
        assert_snapshot!(g.lower(&[y, TestGraph::port(y, 1)]), @r#"
        ---
        x, xent_1 = (
            F.cross_entropy(logits, ids.long(), reduction="none"),
            F.softmax(logits, dim=-1)
            - F.one_hot(ids.long(), logits.shape[-1]).to(logits.dtype),
        )
        return x, xent_1
        "#);
    }
}
