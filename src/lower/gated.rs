//! Gated feed-forward layers (SwiGLU, GeGLU, T5's gated ReLU) read as people write them:
//! `x = F.silu(self.gate(h)) * self.up(h)` instead of four statements and two temporaries
//! (`x = self.gate(h)`, `x = F.silu(x)`, `up = self.up(h)`, `x = x * up`).

use super::chain::read_later;
use crate::py::printer::{self, LINE_WIDTH};
use crate::py::{Assign, BinOp, Expr, Stmt};

/// `self.layer(...)`: a call of one of the module's layers.
fn is_layer_call(e: &Expr) -> bool {
    match e {
        Expr::Call(c) => {
            matches!(&c.func, Expr::Attribute(recv, _) if recv.as_name() == Some("self"))
        }
        _ => false,
    }
}

/// `F.act(var, ...)`, reading `var` once: the call with its first argument replaced by `with`.
fn activation_of(e: &Expr, var: &str, with: &Expr) -> Option<Expr> {
    let Expr::Call(c) = e else { return None };
    let Expr::Attribute(module, _) = &c.func else { return None };
    if module.as_name() != Some("F") || c.args.first()?.as_name() != Some(var) || e.reads(var) != 1
    {
        return None;
    }
    let mut call = (**c).clone();
    call.args[0] = with.clone();
    Some(Expr::Call(Box::new(call)))
}

/// The two names a product `a * b` multiplies, in either order.
fn product_of(e: &Expr) -> Option<(&str, &str)> {
    match e {
        Expr::Binary(a, BinOp::Mul, b) => Some((a.as_name()?, b.as_name()?)),
        _ => None,
    }
}

/// Whether `stmt` fits on one line at `indent`.
fn fits(stmt: &Stmt, indent: usize) -> bool {
    let lines = printer::statement(stmt, indent);
    lines.len() == 1 && lines[0].len() <= LINE_WIDTH
}

/// Folds each gate in `stmts`, in place: the gate's layer call into its activation and the
/// other branch's layer call into the product, on one line when it fits and on two otherwise
/// (`x = F.silu(self.gate(h))`, `x = x * self.up(h)`). Values are pure, so moving a layer
/// call into its only reader changes nothing but the text; the branch's call reads neither
/// of the gate's names, so it may come after the gate's assignment.
pub fn fold_gates(stmts: &mut Vec<Assign>, indent: usize, returns: &[Expr]) {
    let mut k = 0;
    while k + 2 < stmts.len() {
        if k + 3 < stmts.len()
            && let Some(folded) = fold_at(stmts, k, indent, returns)
        {
            let n = folded.len();
            stmts.splice(k..k + 4, folded);
            k += n;
        } else if let Some(product) = fold_up_branch(stmts, k, returns) {
            stmts.splice(k + 1..k + 3, [product]);
            k += 2;
        } else {
            k += 1;
        }
    }
}

/// What a gate's activation may end with: `F.act(..)`, or a cast (a bfloat16 model computes
/// the activation in float32: `x = F.silu(x)`, `x = x.to(torch.bfloat16)`).
fn ends_gate(e: &Expr) -> bool {
    if e.as_dtype_cast().is_some() {
        return true;
    }
    let Expr::Call(c) = e else { return false };
    matches!(&c.func, Expr::Attribute(m, _) if m.as_name() == Some("F"))
}

/// Where a gate's activation stays a statement of its own (cast around it, or too long to
/// fold): the other branch's layer call into the product, gate first as people write it,
/// `x = x * self.up(h)`, for `stmts[k + 1..k + 3]` (`u = self.up(h)`, `x = u * x`).
fn fold_up_branch(stmts: &[Assign], k: usize, returns: &[Expr]) -> Option<Assign> {
    let [s1, s2, s3] = &stmts[k..k + 3] else { return None };
    let g = s1.target.as_name()?;
    let u = s2.target.as_name()?;
    if !ends_gate(&s1.value) || !is_layer_call(&s2.value) || g == u || s2.value.reads(g) > 0 {
        return None;
    }
    let (l, r) = product_of(&s3.value)?;
    if !((l == g && r == u) || (l == u && r == g)) {
        return None;
    }
    let target = s3.target.as_name();
    if target != Some(u) && read_later(u, stmts, k + 3, returns) {
        return None;
    }
    let product = Expr::Binary(Box::new(Expr::name(g)), BinOp::Mul, Box::new(s2.value.clone()));
    Some(Assign::new(s3.target.clone(), product))
}

/// The statements replacing `stmts[k..k + 4]` if they are a gate: one when the product fits
/// on a line, else the activation and the product.
fn fold_at(stmts: &[Assign], k: usize, indent: usize, returns: &[Expr]) -> Option<Vec<Assign>> {
    let [s0, s1, s2, s3] = &stmts[k..k + 4] else { return None };
    let a = s0.target.as_name()?;
    let g = s1.target.as_name()?;
    let u = s2.target.as_name()?;
    if !is_layer_call(&s0.value) || !is_layer_call(&s2.value) || g == u || a == u {
        return None;
    }
    let gate = activation_of(&s1.value, a, &s0.value)?;
    // `a` lives only to feed the activation; the branch reads neither gate name.
    if a != g && read_later(a, stmts, k + 2, returns) {
        return None;
    }
    if s2.value.reads(g) > 0 || s2.value.reads(a) > 0 {
        return None;
    }
    let (l, r) = product_of(&s3.value)?;
    if !((l == g && r == u) || (l == u && r == g)) || l == r {
        return None;
    }
    let target = s3.target.as_name();
    let dead_after = |v: &str| target == Some(v) || !read_later(v, stmts, k + 4, returns);
    if !dead_after(g) || !dead_after(u) {
        return None;
    }
    let product = Expr::Binary(Box::new(gate.clone()), BinOp::Mul, Box::new(s2.value.clone()));
    let whole = Assign::new(s3.target.clone(), product);
    if fits(&Stmt::assign(whole.target.clone(), whole.value.clone()), indent) {
        return Some(vec![whole]);
    }
    Some(vec![
        Assign::new(s1.target.clone(), gate),
        Assign::new(
            s3.target.clone(),
            Expr::Binary(Box::new(Expr::name(g)), BinOp::Mul, Box::new(s2.value.clone())),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use crate::tensor::{DType, Tensor, Values};
    use crate::testing::*;
    use insta::assert_snapshot;

    /// A gated ReLU feed-forward (T5's): the gate's activation wraps its layer call and the
    /// product reads the other branch's layer call; a gate read again later stays a
    /// statement of its own.
    #[test]
    fn gated_feed_forward_reads_as_one_product() {
        let mut g = TestGraph::new();
        let h = g.input("h", &[-1, 8]);
        let h = g.op("ln/Tanh", "Tanh", &[h], &[]);
        let w1 = g.constant("gate/kernel", weights(&[8, 16]));
        let w2 = g.constant("up/kernel", weights(&[8, 16]));
        let w3 = g.constant("down/kernel", weights(&[16, 8]));
        let w4 = g.constant("gate2/kernel", weights(&[8, 16]));
        let w5 = g.constant("up2/kernel", weights(&[8, 16]));
        let gate = g.op("gate/MatMul", "MatMul", &[h, w1], &[]);
        let gate = g.op("gate_act/Relu", "Relu", &[gate], &[]);
        let up = g.op("up/MatMul", "MatMul", &[h, w2], &[]);
        let y = g.op("mul/mul", "Mul", &[gate, up], &[]);
        let y = g.op("down/MatMul", "MatMul", &[y, w3], &[]);
        // The same shape, but the gate is read again: it keeps its name, and only the other
        // branch's layer call goes into the product.
        let gate2 = g.op("gate2/MatMul", "MatMul", &[y, w4], &[]);
        let gate2 = g.op("gate2_act/Relu", "Relu", &[gate2], &[]);
        let up2 = g.op("up2/MatMul", "MatMul", &[y, w5], &[]);
        let z = g.op("mul2/mul", "Mul", &[gate2, up2], &[]);
        let z = g.op("out/add", "AddV2", &[z, gate2], &[]);
        assert_snapshot!(g.lower(&[z]), @"
        self.gate = nn.Linear(8, 16, bias=False)
        self.up = nn.Linear(8, 16, bias=False)
        self.down = nn.Linear(16, 8, bias=False)
        self.gate2 = nn.Linear(8, 16, bias=False)
        self.up2 = nn.Linear(8, 16, bias=False)
        # gate.weight: [16, 8]
        # up.weight: [16, 8]
        # down.weight: [8, 16]
        # gate2.weight: [16, 8]
        # up2.weight: [16, 8]
        ---
        ln = torch.tanh(h)
        x = F.relu(self.gate(ln)) * self.up(ln)
        down = self.down(x)
        x = self.gate2(down)
        gate2_act = F.relu(x, inplace=True)
        x = gate2_act * self.up2(down)
        x = x + gate2_act
        return x
        ");
    }

    /// A bfloat16 model's gate: its activation computed in float32 between two casts stays
    /// two statements, and the other branch's layer call still goes into the product.
    #[test]
    fn a_gate_cast_around_its_activation_takes_the_up_branch() {
        let mut g = TestGraph::new();
        let h = g.typed_input("h", &[-1, 8], DType::BF16);
        let bf16 = || {
            let w = weights(&[8, 16]).to_f64().unwrap_or_default();
            Tensor::with_values_like(DType::BF16, vec![8, 16], &Values::F(w)).unwrap()
        };
        let w1 = g.constant("gate/kernel", bf16());
        let w2 = g.constant("up/kernel", bf16());
        let gate = g.op("gate/MatMul", "MatMul", &[h, w1], &[]);
        let wide = [("SrcT", dtype(DType::BF16)), ("DstT", dtype(DType::F32))];
        let gate = g.op("gate/Cast", "Cast", &[gate], &wide);
        let gate = g.op("gate_act/Relu", "Relu", &[gate], &[]);
        let narrow = [("SrcT", dtype(DType::F32)), ("DstT", dtype(DType::BF16))];
        let gate = g.op("gate_act/Cast", "Cast", &[gate], &narrow);
        let up = g.op("up/MatMul", "MatMul", &[h, w2], &[]);
        let y = g.op("mul/mul", "Mul", &[up, gate], &[]);
        let code = g.lower(&[y]);
        let body = code.split("---\n").nth(1).unwrap_or_default();
        assert_snapshot!(body, @"
        x = self.gate(h).to(torch.float32)
        x = F.relu(x).to(torch.bfloat16)
        x = x * self.up(h)
        return x
        ");
    }
}
