//! Activations that overwrite the tensor they read, as torchvision writes
//! `nn.ReLU(inplace=True)`: `x = F.relu(x, inplace=True)` after a conv, a norm or an add saves
//! a pass of allocation over the largest tensors of a CNN (MobileNetV2 runs measurably faster,
//! most of all with its batch norms folded at load time).
//!
//! Overwriting is only safe when nothing else sees the old value: the activation is its only
//! reader, and the value is a tensor its producer made fresh (not a view of another, not an
//! input) whose gradient does not need it. The producer must be the statement right before,
//! so that no read in between can have kept an alias.

use std::collections::BTreeSet;

use crate::py::{Assign, BinOp, Expr};

use super::chain::read_later;

/// `F.<name>` activations whose in-place form PyTorch differentiates correctly (checked
/// against the out-of-place gradient; `selu`'s in-place gradient is not).
const IN_PLACE: &[&str] =
    &["relu", "relu6", "leaky_relu", "hardtanh", "hardswish", "hardsigmoid", "silu", "elu", "celu"];

/// Layer kinds whose output is a new tensor and whose backward reads their input, not their
/// output.
const FRESH_LAYERS: &[&str] = &[
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Linear",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
];

/// The names of `layers` (name, constructor) whose output an activation may overwrite.
pub fn fresh_layers<'a>(layers: impl IntoIterator<Item = (&'a str, &'a Expr)>) -> BTreeSet<String> {
    layers
        .into_iter()
        .filter(|(_, ctor)| {
            let Expr::Call(c) = ctor else { return false };
            matches!(&c.func, Expr::Attribute(m, kind)
                if m.as_name() == Some("nn") && FRESH_LAYERS.contains(&kind.as_str()))
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Adds `inplace=True` to the activations of `stmts` that may overwrite their input.
/// `returns` are what is read after `stmts`.
pub fn activations_in_place(stmts: &mut [Assign], returns: &[Expr], fresh: &BTreeSet<String>) {
    for k in 1..stmts.len() {
        let Some(var) = activation_input(&stmts[k].value) else { continue };
        let var = var.to_string();
        let produced = stmts[k - 1].target.as_name() == Some(var.as_str())
            && makes_fresh(&stmts[k - 1].value, fresh);
        let rebinds = stmts[k].target.bound_names().contains(&var.as_str());
        if produced
            && (rebinds || !read_later(&var, stmts, k + 1, returns))
            && let Expr::Call(c) = &mut stmts[k].value
        {
            c.kwargs.push(("inplace".to_string(), Expr::boolean(true)));
        }
    }
}

/// `F.relu(x)` (and other arguments, not `inplace`): `x`, read nowhere else in the call.
fn activation_input(value: &Expr) -> Option<&str> {
    let Expr::Call(c) = value else { return None };
    let Expr::Attribute(module, name) = &c.func else { return None };
    if module.as_name() != Some("F") || !IN_PLACE.contains(&name.as_str()) {
        return None;
    }
    if c.kwargs.iter().any(|(k, _)| k == "inplace") {
        return None;
    }
    let var = c.args.first()?.as_name()?;
    (value.reads(var) == 1).then_some(var)
}

/// Whether `value` is a new tensor that its backward does not read: a fresh layer's call, or
/// arithmetic (whose operands, not result, are what its gradient reads).
fn makes_fresh(value: &Expr, fresh: &BTreeSet<String>) -> bool {
    match value {
        Expr::Call(c) => c.func.as_self_attr().is_some_and(|l| fresh.contains(l)),
        Expr::Binary(_, op, _) => matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::py::Stmt;
    use crate::py::printer;

    fn conv() -> Expr {
        Expr::call("nn.Conv2d", vec![Expr::int(3), Expr::int(8), Expr::int(3)])
    }

    fn run(stmts: Vec<(&str, Expr)>, returns: &[Expr]) -> String {
        let mut stmts: Vec<Assign> =
            stmts.into_iter().map(|(t, v)| Assign::new(Expr::name(t), v)).collect();
        let (c, p, b) = (conv(), Expr::call("nn.MaxPool2d", vec![Expr::int(2)]), conv());
        let fresh = fresh_layers([("conv", &c), ("pool", &p), ("other", &b)]);
        activations_in_place(&mut stmts, returns, &fresh);
        stmts
            .into_iter()
            .flat_map(|a| printer::statement(&Stmt::Assign(a), 0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn layer(name: &str, arg: &str) -> Expr {
        Expr::self_attr(name).called(vec![Expr::name(arg)], vec![])
    }

    fn relu(arg: &str) -> Expr {
        Expr::call("F.relu", vec![Expr::name(arg)])
    }

    #[test]
    fn an_activation_after_a_conv_or_an_add_overwrites_its_input() {
        let code = run(
            vec![
                ("x", layer("conv", "inputs")),
                ("x", relu("x")),
                ("x", Expr::name("inputs").binop(BinOp::Add, Expr::name("x"))),
                ("out", relu("x")),
            ],
            &[Expr::name("out")],
        );
        insta::assert_snapshot!(code, @r"
        x = self.conv(inputs)
        x = F.relu(x, inplace=True)
        x = inputs + x
        out = F.relu(x, inplace=True)
        ");
    }

    #[test]
    fn views_inputs_and_values_read_again_are_not_overwritten() {
        let code = run(
            vec![
                // a view of the input: overwriting would change the caller's tensor
                ("x", Expr::name("inputs").method("permute", [0, 3, 1, 2].map(Expr::int).to_vec())),
                ("x", relu("x")),
                // a pooling layer is not known to make its output fresh
                ("x", layer("pool", "x")),
                ("x", relu("x")),
                // read again after the activation
                ("y", layer("conv", "x")),
                ("z", relu("y")),
                ("w", Expr::name("y").binop(BinOp::Add, Expr::name("z"))),
                // the producer is not the statement before
                ("a", layer("other", "w")),
                ("b", layer("conv", "w")),
                ("a", relu("a")),
            ],
            &[Expr::name("a"), Expr::name("b")],
        );
        insta::assert_snapshot!(code, @r"
        x = inputs.permute(0, 3, 1, 2)
        x = F.relu(x)
        x = self.pool(x)
        x = F.relu(x)
        y = self.conv(x)
        z = F.relu(y)
        w = y + z
        a = self.other(w)
        b = self.conv(w)
        a = F.relu(a)
        ");
    }

    #[test]
    fn an_activation_whose_gradient_needs_its_input_stays_out_of_place() {
        let code = run(
            vec![
                ("x", layer("conv", "inputs")),
                ("x", Expr::call("F.selu", vec![Expr::name("x")])),
            ],
            &[Expr::name("x")],
        );
        assert_eq!(code, "x = self.conv(inputs)\nx = F.selu(x)");
    }
}
