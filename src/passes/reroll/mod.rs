//! Loops unrolled when traced become loops again. A Python `for` over a sequence inside a
//! traced function leaves one copy of its body per step: keras-hub's RWKV-7 runs its delta
//! rule so, and a frozen graph of it holds twelve copies of
//!
//! ```text
//! state = state * w[:, t] + (state @ a[:, t]) @ b[:, t] + v[:, t] @ k[:, t]
//! y_t = state @ r[:, t]
//! ```
//!
//! followed by `torch.stack([y_0, ..., y_11], dim=1)`. Recurrent layers of known cells are
//! fused before this (`passes::rnn`); what is left is found by structure, not by names:
//!
//! - **steps** ([`steps`]): slices of one value at indices that grow by a constant step
//!   (`x[:, 0]`, `x[:, 1]`, ...; or the outputs of an `Unpack`) start one chain each. A node
//!   whose copy at the next step applies the same op, with the same attributes, to the next
//!   step's copies of its inputs (or to the same values, where it reads something the steps
//!   share) extends the chains. Where the first step reads a value from before the loop and
//!   the second reads the first step's result, that value is the initial state.
//! - **checks**: every chain runs from the first step to the last (a value only the next
//!   step reads may be missing from the last); the steps' values are read after them only
//!   as the last step's (a final state) or all in order by one `Pack` (the outputs); nothing
//!   the steps share depends on them.
//! - **the loop** ([`body`]): one `_Loop` whose body is the second step's copy, counting
//!   `step` from 0: what the steps slice is sliced at `step`, their states are loop
//!   variables, and each stacked output is a list the body sets item `step` of. The lowering
//!   writes it as any counted TF loop (`for step in range(12):`).

mod body;
mod steps;

use crate::error::Result;
use crate::ir::Graph;

pub fn reroll_loops(g: &mut Graph) -> Result<()> {
    let found = steps::unrolled_loops(g);
    if found.is_empty() {
        return Ok(());
    }
    for l in &found {
        body::install(g, l);
    }
    super::prune(g)?;
    super::fold_and_infer(g)
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// How a test's steps read the sequence, and what is read after them.
    #[derive(Clone, Copy, PartialEq)]
    enum Form {
        /// `x[:, t]` by `StridedSlice` (a Python loop over `range(T)`), the outputs stacked
        /// along axis 1 and the final state read.
        Sliced,
        /// The outputs of an `Unpack` along axis 1.
        Unstacked,
        /// As `Sliced`, and the second step's state read alone.
        OneStepRead,
        /// As `Sliced`, the last step reading another constant.
        OtherConstant,
        /// As `Sliced`, stacking `-h` rather than `h`, and the last `-h` read alone.
        LastRead,
    }

    /// A decaying sum over `[B, 4, 3]`, which no recurrent layer computes: each step
    /// `h' = h * 0.5 + tanh(x_t·K)`, from the model's input `h0`.
    fn unrolled(form: Form) -> String {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 3]);
        let mut h = g.input("h0", &[-1, 2]);
        let k = g.constant("mix/kernel", weights(&[3, 2]));
        let xs = g.op("mix/unstack", "Unpack", &[x], &[("axis", int(1)), ("num", int(4))]);
        let (mut hs, mut negated) = (Vec::new(), Vec::new());
        for t in 0..4 {
            let s = format!("mix/step_{t}");
            let x_t = match form {
                Form::Unstacked => TestGraph::port(xs, t),
                _ => {
                    let t = t as i64;
                    let b = g.constant(&format!("{s}/begin"), int_tensor(&[3], &[0, t, 0]));
                    let e = g.constant(&format!("{s}/end"), int_tensor(&[3], &[0, t + 1, 0]));
                    let one = g.constant(&format!("{s}/strides"), int_tensor(&[3], &[1, 1, 1]));
                    let attrs = [
                        ("begin_mask", int(5)),
                        ("end_mask", int(5)),
                        ("shrink_axis_mask", int(2)),
                    ];
                    g.op(&format!("{s}/x_t"), "StridedSlice", &[x, b, e, one], &attrs)
                }
            };
            let decay = if form == Form::OtherConstant && t == 3 { 0.25 } else { 0.5 };
            let decay = g.constant(&format!("{s}/decay"), Tensor::from_f32(vec![], &[decay]));
            let kept = g.op(&format!("{s}/kept"), "Mul", &[h, decay], &[]);
            let xk = g.op(&format!("{s}/MatMul"), "MatMul", &[x_t, k], &[]);
            let new = g.op(&format!("{s}/Tanh"), "Tanh", &[xk], &[]);
            h = g.op(&format!("{s}/h"), "AddV2", &[kept, new], &[]);
            hs.push(h);
            negated.push(g.op(&format!("{s}/neg"), "Neg", &[h], &[]));
        }
        let stacked = if form == Form::LastRead { &negated } else { &hs };
        let stack = g.op("mix/stack", "Pack", stacked, &[("axis", int(1)), ("N", int(4))]);
        let mut outputs = vec![stack, h];
        if form == Form::LastRead {
            outputs.push(negated[3]);
        }
        if form == Form::OneStepRead {
            outputs.push(hs[1]);
        }
        g.lower(&outputs)
    }

    #[test]
    fn steps_over_slices_are_a_loop() {
        assert_snapshot!(unrolled(Form::Sliced), @r#"
        self.fc = nn.Linear(3, 2, bias=False)
        # fc.weight: [2, 3]
        ---
        x, step_2 = self.step_loop(h0, x)
        stack = torch.stack(step_2, dim=1)
        return stack, x
        def step_loop(self, h0, invariant_0):
            """TF loop `mix/step_1/loop`: runs its body once per step."""
            outputs = []
            for step in range(4):
                x_t = invariant_0[:, step]
                x = self.fc(x_t)
                kept = h0 * 0.5
                h0 = kept + torch.tanh(x)
                outputs.append(h0)
            return h0, outputs
        "#);
    }

    /// The outputs of an `Unpack` are read at the step as slices are.
    #[test]
    fn steps_over_an_unstacked_sequence_are_a_loop() {
        assert_eq!(unrolled(Form::Unstacked), unrolled(Form::Sliced));
    }

    /// The last step's value is the stack's last item.
    #[test]
    fn a_stacked_value_read_at_the_last_step_is_the_last_item() {
        assert_snapshot!(unrolled(Form::LastRead), @r#"
        self.fc = nn.Linear(3, 2, bias=False)
        # fc.weight: [2, 3]
        ---
        x, step_2 = self.step_loop(h0, x)
        stack = torch.stack(step_2, dim=1)
        step_3 = stack[:, 3]
        return stack, x, step_3
        def step_loop(self, h0, invariant_0):
            """TF loop `mix/step_1/loop`: runs its body once per step."""
            outputs = []
            for step in range(4):
                x_t = invariant_0[:, step]
                x = self.fc(x_t)
                kept = h0 * 0.5
                h0 = kept + torch.tanh(x)
                x = -h0
                outputs.append(x)
            return h0, outputs
        "#);
    }

    /// The loop would have to give the second step's state too.
    #[test]
    fn a_step_read_alone_keeps_the_steps() {
        assert!(!unrolled(Form::OneStepRead).contains("for step"));
    }

    #[test]
    fn steps_reading_other_constants_stay_steps() {
        assert!(!unrolled(Form::OtherConstant).contains("for step"));
    }
}
