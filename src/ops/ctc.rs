//! CTC decoding (`tf.nn.ctc_greedy_decoder`: `CTCGreedyDecoder`) → `ctc_greedy_decoder`
//! (templates/ctc_greedy_decoder.py), returning TF's sparse triple and log probabilities.

use crate::ir::ValueInfo;
use crate::ops::contract::{Ctx, Layout, Lowered, OpResult};
use crate::ops::{OpDef, OpInputs, op};
use crate::py::Expr;
use crate::tensor::DType;

pub const OPS: &[OpDef] = &[op("CTCGreedyDecoder", greedy).infer(greedy_infer)];

/// `indices, values, shape, log_probability = ctc_greedy_decoder(inputs, lengths, ...)`.
fn greedy(ctx: &mut Ctx) -> OpResult<Lowered> {
    if ctx.rank(0).is_some_and(|r| r != 3) {
        return Err("inputs must be [time, batch, classes]".into());
    }
    let merge = ctx.node().attr_bool_or("merge_repeated", false)?;
    let blank = ctx.node().attr_int_or("blank_index", -1)?;
    let mut kwargs = vec![];
    if !merge {
        kwargs.push(("merge_repeated", Expr::boolean(false)));
    }
    if blank != -1 {
        kwargs.push(("blank", Expr::int(blank)));
    }
    ctx.require_class("ctc_greedy_decoder", include_str!("../../templates/ctc_greedy_decoder.py"));
    let args = vec![ctx.input_tf(0)?, ctx.input_tf(1)?];
    let expr = Expr::call_kw("ctc_greedy_decoder", args, kwargs);
    Ok(Lowered::Multi { expr, layout: Layout::Tf })
}

/// `[n, 2]`, `[n]`, `[2]` (int64) and `[batch, 1]`.
fn greedy_infer(inp: &OpInputs) -> Option<Vec<ValueInfo>> {
    let x = inp.infos.first()?;
    let batch = x.dim(1);
    let int = |shape| ValueInfo { dtype: Some(DType::I64), shape: Some(shape) };
    Some(vec![
        int(vec![None, Some(2)]),
        int(vec![None]),
        int(vec![Some(2)]),
        ValueInfo { dtype: x.dtype, shape: Some(vec![batch, Some(1)]) },
    ])
}

#[cfg(test)]
mod tests {
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    #[test]
    fn greedy_decoding_keeps_tf_outputs() {
        let mut g = TestGraph::new();
        let x = g.input("logits", &[-1, -1, 5]);
        let n = g.typed_input("lengths", &[-1], DType::I32);
        let y = g.op("ctc", "CTCGreedyDecoder", &[x, n], &[("merge_repeated", boolean(true))]);
        let outs = [y, TestGraph::port(y, 1), TestGraph::port(y, 2), TestGraph::port(y, 3)];
        assert_snapshot!(g.lower(&outs), @"
        ---
        x, ctc_1, ctc_2, ctc_3 = ctc_greedy_decoder(logits, lengths)
        return x, ctc_1, ctc_2, ctc_3
        ");
    }
}
