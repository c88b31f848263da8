//! Constants of one repeated value that an elementwise op broadcasts against a larger
//! operand: a scalar. Keras writes `x * ops.full((1, 1, 4), 8.0)` or adds a `[1]`-shaped
//! offset, and a frozen graph keeps the folded tensor; without this rule each is a buffer
//! named `const`, read as `h * self.const_4_const`, where a person writes `h * 8.0`.
//!
//! Only where the scalar computes the same: every axis the constant has that is not 1 must
//! be one the other operands provably have (a known size equal to it), and the constant
//! may not have more axes than they do, so broadcasting it never grows the result.

use super::sizes::BROADCASTING;
use crate::error::Result;
use crate::ir::{Graph, Node, ValueRef};

pub fn scalar_splat_operands(g: &mut Graph) -> Result<()> {
    let mut nodes: Vec<_> = g.g.node_indices().collect();
    nodes.sort_by_key(|&n| g.node(n).ordinal);
    for n in nodes {
        let op = g.node(n).op.as_str();
        // `AddN`'s operands all have the result's shape; a select's condition is a mask.
        let slots: &[usize] = match op {
            "SelectV2" => &[1, 2],
            "AddN" => continue,
            _ if BROADCASTING.contains(&op) => &[0, 1],
            _ => continue,
        };
        let inputs = g.inputs(n);
        if inputs.len() != slots.len() + usize::from(op == "SelectV2") {
            continue;
        }
        for &slot in slots {
            let c = inputs[slot];
            let others: Vec<ValueRef> =
                inputs.iter().enumerate().filter(|&(k, _)| k != slot).map(|(_, &v)| v).collect();
            if let Some(scalar) = scalar_of(g, c, &others) {
                let source = g.node(c.node);
                let mut node =
                    Node::constant(format!("{}/scalar", source.name), scalar, source.ordinal);
                node.generated = true;
                let s = g.add_node(node);
                g.set_input(n, slot, ValueRef { node: s, port: 0 });
            }
        }
    }
    Ok(())
}

/// The scalar constant `c` may be replaced by beside `others`, if it is a computed (not
/// trained) float tensor of one value whose broadcasting they make moot.
fn scalar_of(g: &Graph, c: ValueRef, others: &[ValueRef]) -> Option<crate::tensor::Tensor> {
    let node = g.node(c.node);
    if node.is_trained() {
        return None;
    }
    let t = g.const_value(c)?;
    // Integer tensors may be weights too (TF marks only float ones as variables read).
    if !t.dtype.is_float() {
        return None;
    }
    // Another constant operand is folded, not rewritten here.
    if others.iter().any(|&o| g.const_value(o).is_some()) {
        return None;
    }
    let shapes: Vec<Vec<Option<usize>>> =
        others.iter().map(|&o| g.info(o).shape).collect::<Option<_>>()?;
    if t.rank() > shapes.iter().map(Vec::len).max()? {
        return None;
    }
    let covered = t.shape.iter().rev().enumerate().all(|(k, &d)| {
        d == 1 || shapes.iter().any(|s| s.len() > k && s[s.len() - 1 - k] == Some(d))
    });
    covered.then(|| t.splat_value()).flatten()
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;
    use crate::testing::*;

    fn filled(shape: &[usize], v: f32) -> Tensor {
        Tensor::from_f32(shape.to_vec(), &vec![v; shape.iter().product()])
    }

    /// A `[1, 1, 4]` constant of eights times a value whose last axis is 4 is `x * 8.0`; a
    /// `[1]` offset is added as a number to a value of any rank.
    #[test]
    fn a_constant_of_one_value_is_a_number() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 3, 4]);
        let eights = g.constant("eights", filled(&[1, 1, 4], 8.0));
        let y = g.op("y", "Mul", &[x, eights], &[]);
        let offset = g.constant("offset", filled(&[1], 0.5));
        let z = g.op("z", "AddV2", &[offset, y], &[]);
        let code = g.lower(&[z]);
        assert!(code.contains("x = x * 8.0\nx = 0.5 + x\n"), "{code}");
        assert!(!code.contains("self."), "{code}");
    }

    /// Where the constant makes the result larger (the value's last axis is 1, or unknown,
    /// or it has fewer axes), it stays a tensor, made where it is read; a constant of more
    /// than one value stays a buffer.
    #[test]
    fn a_constant_that_broadcasts_the_result_stays_a_tensor() {
        for (shape, constant, read) in [
            (&[-1, 3, 1][..], filled(&[1, 1, 4], 8.0), "x * torch.full((1, 1, 4), 8.0)"),
            (&[-1, 3, -1], filled(&[1, 1, 4], 8.0), "x * torch.full((1, 1, 4), 8.0)"),
            (&[4], filled(&[2, 4], 1.5), "x * torch.full((2, 4), 1.5)"),
            (&[-1, 2], Tensor::from_f32(vec![2], &[1.0, 2.0]), "x * self.c"),
        ] {
            let mut g = TestGraph::new();
            let x = g.input("x", shape);
            let c = g.constant("c", constant);
            let y = g.op("y", "Mul", &[x, c], &[]);
            let code = g.lower(&[y]);
            assert!(code.contains(read), "{shape:?}: {code}");
        }
    }

    /// A trained weight of one value (a fresh model's scale of twos) stays a parameter.
    #[test]
    fn a_variable_of_one_value_stays_a_parameter() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let scale = g.variable("scale", filled(&[4], 2.0));
        let y = g.op("y", "Mul", &[x, scale], &[]);
        let code = g.lower(&[y]);
        assert!(code.contains("x * self.scale"), "{code}");
    }
}
