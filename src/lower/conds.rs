//! A `_Cond` becomes a method of the model with a Python `if`: the predicate (or a case's
//! index) and the values the branches read are its parameters, each branch is translated like
//! `forward` (same layers, buffers and naming), and `forward` calls it:
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
//! A case (`tf.switch_case`) tests `index == 0`, `index == 1`, ... and runs the last branch
//! otherwise, as TF does for an index out of range.
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
use crate::py::{Assign, BinOp, Expr, FunctionDef, Stmt};

/// A conditional lowered but not yet written (see `methods`).
pub(super) struct PendingCond {
    name: String,
    source: String,
    params: Vec<String>,
    /// Branch `k` runs when the predicate as an integer is `k` (`[else, then]`).
    branches: Vec<(Vec<BodyItem>, Vec<Expr>)>,
    /// A bool predicate (`if pred:`), else a case index.
    boolean: bool,
}

impl<'a> Lowerer<'a> {
    pub(super) fn lower_cond(&mut self, n: NodeIndex) -> OpResult<Lowered> {
        let node = self.graph.node(n);
        let cond = node.cond().ok_or("a conditional without branches")?;
        let outer = self.graph.inputs(n);
        let first = cond.branches.first().ok_or("a conditional without branches")?;
        if outer.len() != first.inputs.len() + 1 {
            return Err("conditional inputs and branch inputs disagree".into());
        }
        let boolean = self.graph.info(outer[0]).dtype == Some(crate::tensor::DType::Bool);
        if boolean && cond.branches.len() != 2 {
            return Err("a bool predicate for other than two branches".into());
        }
        let pred = if boolean { "pred" } else { "index" };
        let args: Vec<Expr> =
            outer.iter().map(|&v| self.value_in(v, Layout::Tf)).collect::<Result<_, _>>()?;
        let mut params = vec![pred.to_string()];
        let mut branches = Vec::new();
        for b in &cond.branches {
            let (names, items, outs) =
                self.nested(b, &node.name, |inner| inner.lower_branch(&args[1..], pred))?;
            params.truncate(1);
            params.extend(names);
            branches.push((items, outs));
        }
        let scope = self.scope_of(n);
        let hint =
            if scope.split('_').any(|t| t == "cond") { scope } else { format!("{scope}_cond") };
        let name = self.attr_names.fresh(&hint);
        let outputs = first.outputs.len();
        self.methods.push(Pending::Cond(PendingCond {
            name: name.clone(),
            source: node.name.clone(),
            params,
            branches,
            boolean,
        }));
        *self.summary.translated.entry("cond".into()).or_default() += 1;
        // A branch reads its inputs as tensors (TF's are): a constant is passed as one.
        let args = self.literals_as_tensors(&outer, args);
        let expr = Expr::self_attr(&name).called(args, vec![]);
        Ok(if outputs == 1 {
            Lowered::Expr { expr, layout: Layout::Tf }
        } else {
            Lowered::Multi { expr, layout: Layout::Tf }
        })
    }

    /// Lowers one branch: `(parameter names, items, results)`.
    fn lower_branch(
        &mut self,
        args: &[Expr],
        pred: &str,
    ) -> OpResult<(Vec<String>, Vec<BodyItem>, Vec<Expr>)> {
        let g: &Graph = self.graph;
        let order = g.topo_order().map_err(|_| "a branch has a cycle")?;
        let order = self.demand_order(&order);
        self.count_uses(&order);
        self.locals.claim(pred);
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
        // A branch returning a constant returns a tensor, as TF's does (Swin's window size:
        // `return 4` would reach a `torch.stack` as an int).
        let outs = self.literals_as_tensors(&g.outputs, outs);
        Ok((params, std::mem::take(&mut self.body), outs))
    }
}

impl PendingCond {
    pub(super) fn method(self, stmts: &dyn Fn(Vec<BodyItem>) -> Vec<Assign>) -> FunctionDef {
        let count = self.branches.len();
        let pred = Expr::name(&self.params[0]);
        let mut body = Vec::new();
        let mut last = Vec::new();
        // The then branch (1) first for a bool; a case's branches in order, the last for any
        // other index.
        let order: Vec<usize> = if self.boolean { vec![1, 0] } else { (0..count).collect() };
        let mut branches: Vec<Option<(Vec<BodyItem>, Vec<Expr>)>> =
            self.branches.into_iter().map(Some).collect();
        for (pos, &k) in order.iter().enumerate() {
            let Some((items, outs)) = branches[k].take() else { continue };
            // What the branch's results do not read (a bound a slice reads entry by entry) is
            // not computed.
            let mut assigns = stmts(items);
            super::dead::remove_dead(&mut assigns, &outs);
            let mut stmts_k: Vec<Stmt> = assigns.into_iter().map(Stmt::Assign).collect();
            stmts_k.push(Stmt::return_values(outs));
            if pos + 1 == order.len() {
                last = stmts_k;
            } else {
                let test = if self.boolean {
                    pred.clone()
                } else {
                    pred.clone().binop(BinOp::Eq, Expr::int(k as i64))
                };
                body.push(Stmt::If { test, body: stmts_k, orelse: vec![] });
            }
        }
        body.extend(last);
        let mut def = FunctionDef::method(self.name, &self.params, body);
        let doc = if self.boolean {
            "the first branch runs when `pred` holds."
        } else {
            "the branch `index` names runs, the last for any other index."
        };
        def.docstring =
            vec![format!("TF conditional `{}`: {doc}", super::loops::doc_safe(&self.source))];
        def
    }
}
