//! A `_Cond` becomes a method of the model with a Python `if`: the predicate and the values the
//! branches read are its parameters, each branch is translated like `forward` (same layers,
//! buffers and naming), and `forward` calls it:
//!
//! ```python
//! def gate_cond(self, pred, x):
//!     """TF conditional `gate/cond`: the first branch when the predicate holds."""
//!     if pred:
//!         ...
//!         return a
//!     ...
//!     return b
//! ```
//!
//! A method rather than an `if` inside `forward`: `forward` stays one straight sequence of
//! layers (which is what block detection and a reader follow), and the branches read as the two
//! functions they were in TF. Both branches are never run (no `torch.where` of the two): TF runs
//! one, and a branch may be costly or fail on the other branch's inputs.

use petgraph::stable_graph::NodeIndex;

use super::methods::Pending;
use super::{BodyItem, Lowerer};
use crate::ir::Graph;
use crate::ops::contract::{Layout, Lowered, OpResult};
use crate::py::{Assign, Expr, FunctionDef, Stmt};

/// A conditional lowered but not yet written (see `methods`).
pub(super) struct PendingCond {
    name: String,
    source: String,
    params: Vec<String>,
    branches: [(Vec<BodyItem>, Vec<Expr>); 2],
}

impl<'a> Lowerer<'a> {
    pub(super) fn lower_cond(&mut self, n: NodeIndex) -> OpResult<Lowered> {
        let node = self.graph.node(n);
        let cond = node.cond().ok_or("a conditional without branches")?;
        let outer = self.graph.inputs(n);
        if outer.len() != cond.then_branch.inputs.len() + 1 {
            return Err("conditional inputs and branch inputs disagree".into());
        }
        let args: Vec<Expr> =
            outer.iter().map(|&v| self.value_in(v, Layout::Tf)).collect::<Result<_, _>>()?;
        let mut params = vec!["pred".to_string()];
        let mut branches = Vec::new();
        for b in [&cond.then_branch, &cond.else_branch] {
            let (names, items, outs) =
                self.nested(b, &node.name, |inner| inner.lower_branch(&args[1..]))?;
            params.truncate(1);
            params.extend(names);
            branches.push((items, outs));
        }
        let [then_branch, else_branch]: [(Vec<BodyItem>, Vec<Expr>); 2] =
            branches.try_into().map_err(|_| "two branches")?;
        let scope = self.scope_of(n);
        let hint = if scope.ends_with("cond") { scope } else { format!("{scope}_cond") };
        let name = self.attr_names.fresh(&hint);
        let outputs = cond.then_branch.outputs.len();
        self.methods.push(Pending::Cond(PendingCond {
            name: name.clone(),
            source: node.name.clone(),
            params,
            branches: [then_branch, else_branch],
        }));
        *self.summary.translated.entry("cond".into()).or_default() += 1;
        let expr = Expr::self_attr(&name).called(args, vec![]);
        Ok(if outputs == 1 {
            Lowered::Expr { expr, layout: Layout::Tf }
        } else {
            Lowered::Multi { expr, layout: Layout::Tf }
        })
    }

    /// Lowers one branch: `(parameter names, items, results)`.
    fn lower_branch(&mut self, args: &[Expr]) -> OpResult<(Vec<String>, Vec<BodyItem>, Vec<Expr>)> {
        let g: &Graph = self.graph;
        let order = g.topo_order().map_err(|_| "a branch has a cycle")?;
        let order = self.demand_order(&order);
        self.count_uses(&order);
        self.locals.claim("pred");
        let mut params = Vec::new();
        for (k, &input) in g.inputs.iter().enumerate() {
            let hint = match &args[k] {
                Expr::Name(a) => a.clone(),
                _ => format!("input_{k}"),
            };
            params.push(self.claim_param(input, &hint));
        }
        self.claim_running();
        for &m in &order {
            let node = g.node(m);
            if node.op == "Placeholder" || node.value.is_some() {
                continue;
            }
            self.lower_node(m)?;
        }
        let outs =
            g.outputs.iter().map(|&v| self.value_in(v, Layout::Tf)).collect::<Result<_, _>>()?;
        Ok((params, std::mem::take(&mut self.body), outs))
    }
}

impl PendingCond {
    pub(super) fn method(self, stmts: &dyn Fn(Vec<BodyItem>) -> Vec<Assign>) -> FunctionDef {
        let [(then_items, then_outs), (else_items, else_outs)] = self.branches;
        let mut then_body: Vec<Stmt> = stmts(then_items).into_iter().map(Stmt::Assign).collect();
        then_body.push(Stmt::return_values(then_outs));
        let mut body = vec![Stmt::If { test: Expr::name("pred"), body: then_body, orelse: vec![] }];
        body.extend(stmts(else_items).into_iter().map(Stmt::Assign));
        body.push(Stmt::return_values(else_outs));
        let mut def = FunctionDef::method(self.name, &self.params, body);
        def.docstring = vec![format!(
            "TF conditional `{}`: the first branch runs when `pred` holds.",
            super::loops::doc_safe(&self.source)
        )];
        def
    }
}
