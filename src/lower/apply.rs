//! What a translator returned, written into the module: layers into `__init__`, statements
//! into `forward`, and the values the node's outputs now are.

use petgraph::stable_graph::NodeIndex;

use super::module::Layer;
use super::{Lowerer, tuple_target};
use crate::error::{Error, Result};
use crate::ir::ValueRef;
use crate::ops::contract::{Layout, Lowered, Unpack, Val, access};
use crate::py::Expr;
use crate::py::names::identifier;
use crate::weights::Weight;

impl Lowerer<'_> {
    pub(super) fn apply(&mut self, n: NodeIndex, lowered: Lowered) -> Result<()> {
        let out = ValueRef { node: n, port: 0 };
        match lowered {
            Lowered::Alias(i) | Lowered::Relabel(i, _) => {
                let src = self.graph.inputs(n)[i];
                let mut val = self.value(src).map_err(|e| Error::msg(e.to_string()))?;
                if let Lowered::Relabel(_, layout) = lowered {
                    val.layout = layout;
                }
                // The alias's uses become uses of its source.
                let extra = self.graph.use_count(out);
                *self.remaining.entry(src).or_default() += extra;
                self.consume_inputs(n);
                self.values.insert(out, val);
                self.remaining.insert(out, 0);
            }
            Lowered::Layer { ctor, params, args, layout, post } => {
                let layer = self.add_layer(n, ctor, params);
                self.consume_inputs(n);
                let target = self.target_for(out);
                self.push_line(Expr::name(&target), access(layer.called(args, vec![]), post));
                self.values.insert(out, Val { expr: Expr::name(target), layout });
            }
            Lowered::LayerWith { ctor, params, call, layout } => {
                let layer = self.add_layer(n, ctor, params);
                self.consume_inputs(n);
                let target = self.target_for(out);
                self.push_line(Expr::name(&target), call(layer));
                self.values.insert(out, Val { expr: Expr::name(target), layout });
            }
            Lowered::LayerUnpack { ctor, params, args, pattern, views } => {
                let layer = self.add_layer(n, ctor, params);
                self.consume_inputs(n);
                let names = self.slot_names(n, &views);
                self.push_line(unpack_target(&pattern, &names), layer.called(args, vec![]));
                for (p, (slot, steps)) in views.into_iter().enumerate() {
                    let expr = access(Expr::name(&names[slot]), steps);
                    self.values
                        .insert(ValueRef { node: n, port: p }, Val { expr, layout: Layout::Tf });
                }
            }
            Lowered::Expr { expr, layout } => {
                self.consume_inputs(n);
                // A size read once goes into its reader (`float(x.shape[1])`) rather than
                // taking a name: it is pure, and what it reads is never assigned again (the
                // running name aside, which it must not read).
                let inline = layout == Layout::Host
                    && self.loop_name.is_empty()
                    && self.graph.use_count(out) == 1
                    && !self.graph.outputs.contains(&out)
                    && !expr.names().contains(&self.running.as_str())
                    && crate::py::printer::flat(&expr).len() <= 40;
                if inline {
                    self.values.insert(out, Val { expr, layout });
                    return Ok(());
                }
                // Sizes (Python ints) keep names of their own: the running `x` is a tensor.
                let target = if layout == Layout::Host {
                    self.host_target_for(out)
                } else {
                    self.target_for(out)
                };
                self.push_line(Expr::name(&target), expr);
                self.values.insert(out, Val { expr: Expr::name(target), layout });
            }
            Lowered::MultiViews { expr, views } => {
                self.apply(n, Lowered::Multi { expr, layout: Layout::Tf })?;
                for (p, steps) in views.into_iter().enumerate() {
                    let v = ValueRef { node: n, port: p };
                    if let (false, Some(val)) = (steps.is_empty(), self.values.get_mut(&v)) {
                        val.expr = access(val.expr.clone(), steps);
                    }
                }
            }
            Lowered::Multi { expr, layout } => {
                self.consume_inputs(n);
                let count = self.num_outputs(n).max(self.graph.node(n).outputs.len());
                let targets: Vec<String> =
                    (0..count).map(|p| self.target_for(ValueRef { node: n, port: p })).collect();
                let lhs = if count == 1 {
                    Expr::Tuple(vec![Expr::name(&targets[0])])
                } else {
                    tuple_target(&targets)
                };
                self.push_line(lhs, expr);
                for (p, t) in targets.into_iter().enumerate() {
                    let v = ValueRef { node: n, port: p };
                    self.values.insert(v, Val { expr: Expr::name(t), layout });
                }
            }
        }
        Ok(())
    }

    /// Registers the layer node `n` becomes and its weights; returns `self.<name>`.
    fn add_layer(&mut self, n: NodeIndex, ctor: Expr, params: Vec<(&str, Weight)>) -> Expr {
        let name = self.attr_names.fresh(&self.scope_of(n));
        for (pname, w) in params {
            self.module.weights.push((format!("{name}.{pname}"), w));
        }
        self.module.layers.push(Layer { name: name.clone(), ctor });
        Expr::self_attr(&name)
    }

    /// A fresh name for each slot of a tuple result some output reads (`_` for the others):
    /// `lstm`, `lstm_h`, `lstm_c`.
    fn slot_names(
        &mut self,
        n: NodeIndex,
        views: &[(usize, Vec<crate::ops::contract::Access>)],
    ) -> Vec<String> {
        let hint = identifier(&self.local_hint(n));
        let slots = views.iter().map(|v| v.0 + 1).max().unwrap_or(0);
        let mut names = vec!["_".to_string(); slots];
        for (p, (slot, _)) in views.iter().enumerate() {
            if self.graph.use_count(ValueRef { node: n, port: p }) > 0 && names[*slot] == "_" {
                let suffix = ["", "_h", "_c"].get(*slot).copied().unwrap_or("_state");
                names[*slot] = self.locals.fresh(&format!("{hint}{suffix}"));
            }
        }
        names
    }
}

/// The assignment target `pattern` describes, slots filled with `names`.
fn unpack_target(pattern: &Unpack, names: &[String]) -> Expr {
    match pattern {
        Unpack::Slot(k) => Expr::name(names.get(*k).map_or("_", String::as_str)),
        Unpack::Tuple(items) => {
            Expr::Tuple(items.iter().map(|p| unpack_target(p, names)).collect())
        }
    }
}
