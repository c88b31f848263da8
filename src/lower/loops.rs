//! A `_Loop` no recurrent-layer pattern matched becomes a method of the model: the loop
//! variables are its parameters, the condition and body are translated like `forward` (same
//! layers, buffers and naming), and `forward` calls it:
//!
//! ```python
//! def refine_loop(self, i, x, delta):
//!     """TF loop `refine/while`: runs its body while the condition holds."""
//!     while i < 5:
//!         ...
//!         i, x, delta = i_next, x_next, delta_next
//!     return i, x, delta
//! ```

use petgraph::stable_graph::NodeIndex;

use super::counted::{Bound, counter};
use super::methods::Pending;
use super::scopes::without_counter;
use super::{BodyItem, Lowerer};
use crate::ops::contract::{Layout, Lowered, OpResult, Val};
use crate::py::{Assign, Expr, FunctionDef, Lit, Stmt};

/// A loop lowered but not yet written: stub calls in its body get their keyword arguments
/// only once every stub call of the model is known.
pub(super) struct PendingLoop {
    name: String,
    source: String,
    params: Vec<String>,
    vars: usize,
    cond_items: Vec<BodyItem>,
    body_items: Vec<BodyItem>,
    cond: Expr,
    nexts: Vec<Expr>,
    /// For a counted loop (see [`super::counted`]): the counter's variable, its twin's and
    /// the counter's `range`.
    counted: Option<(usize, Option<usize>, Expr)>,
}

/// What lowering a loop body gives: parameter names, the condition's and the body's items,
/// the condition, and each variable's next value.
type LoweredBody = (Vec<String>, Vec<BodyItem>, Vec<BodyItem>, Expr, Vec<Expr>);

impl<'a> Lowerer<'a> {
    pub(super) fn lower_loop(&mut self, n: NodeIndex) -> OpResult<Lowered> {
        let node = self.graph.node(n);
        let body = node.loop_body().ok_or("a loop without a body")?;
        let outer = self.graph.inputs(n);
        if outer.len() != body.inputs.len() {
            return Err("loop inputs and body inputs disagree".into());
        }
        let vars = body.outputs.len() - 1;
        let counter = counter(self.graph, n, body, vars);
        // A bound only `range` reads is passed as a Python int (`seq_len`), not as a tensor.
        let host_bound = counter.as_ref().and_then(|c| match c.bound {
            Bound::Input(j) if j >= vars && only_tested(body, body.inputs[j]) => Some(j),
            _ => None,
        });
        let args: Vec<Expr> = outer
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let layout = if host_bound == Some(k) { Layout::Host } else { Layout::Tf };
                self.value_in(v, layout)
            })
            .collect::<Result<_, _>>()?;
        let (params, cond_items, body_items, cond, nexts) =
            self.nested(body, &node.name, |inner| {
                let twin = counter.as_ref().and_then(|c| c.twin);
                inner.lower_loop_body(&args, vars, twin, host_bound)
            })?;
        let name = self.attr_names.fresh(&format!("{}_loop", self.scope_of(n)));
        let counted = counter.as_ref().map(|c| {
            let bound = match c.bound {
                Bound::Const(b) => Expr::int(b),
                Bound::Input(j) => Expr::name(&params[j]),
            };
            let range = match c.start {
                0 => vec![bound],
                s => vec![Expr::int(s), bound],
            };
            (c.var, c.twin, Expr::call("range", range))
        });
        self.methods.push(Pending::Loop(PendingLoop {
            name: name.clone(),
            source: node.name.clone(),
            params,
            vars,
            cond_items,
            body_items,
            cond,
            nexts,
            counted,
        }));
        *self.summary.translated.entry("loop".into()).or_default() += 1;
        // A loop variable is a tensor in the body (TF's is); one starting from a literal is
        // passed as a tensor too, or `torch.stack([step, ...])` would meet a Python int. A
        // counter is not passed at all: `range` counts.
        let host_arg = host_bound.map(|j| (j, args[j].clone()));
        let mut args = self.literals_as_tensors(&outer, args);
        if let Some((j, a)) = host_arg {
            args[j] = a;
        }
        let counted_vars: Vec<usize> =
            counter.iter().flat_map(|c| std::iter::once(c.var).chain(c.twin)).collect();
        let args: Vec<Expr> = args
            .into_iter()
            .enumerate()
            .filter(|(k, _)| !counted_vars.contains(k))
            .map(|(_, a)| a)
            .collect();
        let expr = Expr::self_attr(&name).called(args, vec![]);
        let ports: Vec<usize> = (0..vars).filter(|k| !counted_vars.contains(k)).collect();
        // One variable comes back alone, not as a 1-tuple (`return x`).
        if ports == [0] {
            return Ok(Lowered::Expr { expr, layout: Layout::Tf });
        }
        if counter.is_some() {
            return Ok(Lowered::MultiPorts { expr, layout: Layout::Tf, ports });
        }
        Ok(Lowered::Multi { expr, layout: Layout::Tf })
    }

    /// Lowers the body graph: `(parameter names, condition items, body items, condition,
    /// next values)`.
    fn lower_loop_body(
        &mut self,
        args: &[Expr],
        vars: usize,
        twin: Option<usize>,
        bound: Option<usize>,
    ) -> OpResult<LoweredBody> {
        let g = self.graph;
        let order = g.topo_order().map_err(|_| "the loop body has a cycle")?;
        let order = self.demand_order(&order);
        self.count_uses(&order);
        // The running `x` is the body's own: a loop variable keeps its value until the end of
        // an iteration.
        self.locals.claim("x");
        // Parameters named like the values passed in, where those are names.
        let mut params = Vec::new();
        for (k, &input) in g.inputs.iter().enumerate() {
            let hint = match &args[k] {
                // A state that starts as zeros is not zeros in the body.
                Expr::Name(a) if k < vars && is_filled(a) => "state".to_string(),
                Expr::Name(a) if a != "x" => a.clone(),
                // Counters start from an integer constant; a twin only counts iterations.
                Expr::Lit(Lit::Int(_)) if twin == Some(k) => "iteration".to_string(),
                Expr::Lit(Lit::Int(_)) if k < vars => "step".to_string(),
                _ if k < vars => format!("state_{k}"),
                // The count `range` reads, computed where the loop is called.
                _ if bound == Some(k) => "num_steps".to_string(),
                _ => format!("invariant_{}", k - vars),
            };
            let name = self.locals.fresh(&hint);
            self.values.insert(input, Val { expr: Expr::name(&name), layout: Layout::Tf });
            params.push(name);
        }
        // The condition and what it reads.
        let mut cond_nodes = std::collections::BTreeSet::new();
        let mut stack = vec![g.outputs[0].node];
        while let Some(m) = stack.pop() {
            if cond_nodes.insert(m) {
                stack.extend(g.inputs(m).iter().map(|v| v.node));
            }
        }
        // Written first: a computation shared by scopes of the body that reads only the loop
        // variables may have been moved before the condition's (see `shared_first`).
        let (mut order, rest): (Vec<_>, Vec<_>) =
            order.into_iter().partition(|m| cond_nodes.contains(m));
        order.extend(rest);
        let mut split = None;
        for &m in &order {
            let node = g.node(m);
            if node.op == "Placeholder" || node.value.is_some() {
                continue;
            }
            if split.is_none() && !cond_nodes.contains(&m) {
                split = Some(self.body.len());
            }
            self.lower_node(m)?;
        }
        let cond = self.value_in(g.outputs[0], Layout::Tf)?;
        let nexts: Vec<Expr> = g.outputs[1..]
            .iter()
            .map(|&v| self.value_in(v, Layout::Tf))
            .collect::<Result<_, _>>()?;
        let mut cond_items = std::mem::take(&mut self.body);
        let body_items =
            cond_items.split_off(split.unwrap_or(cond_items.len()).min(cond_items.len()));
        Ok((params, cond_items, body_items, cond, nexts))
    }
}

impl PendingLoop {
    /// The method, with `stmts` turning body items into statements.
    pub(super) fn method(mut self, stmts: &dyn Fn(Vec<BodyItem>) -> Vec<Assign>) -> FunctionDef {
        if self.counted.is_some() {
            return self.counted_method(stmts);
        }
        let cond_stmts = stmts(self.cond_items);
        let mut body = stmts(self.body_items);
        let state: Vec<Expr> = self.params[..self.vars].iter().map(Expr::name).collect();
        let (cond, mut nexts) = (self.cond, self.nexts);
        // What the next iteration does not read (a slice's unused end) is not computed.
        super::dead::remove_dead(&mut body, &nexts);
        super::loop_state::update_where_computed(&mut body, &state, &mut nexts);
        // The item read at a counter named `step` is `x_t`, as in a counted loop; what the
        // condition reads keeps its name.
        if self.params.iter().any(|p| p == "step") {
            let read =
                |p: &&String| cond.reads(p) > 0 || cond_stmts.iter().any(|s| s.value.reads(p) > 0);
            let kept: Vec<String> = self.params.iter().filter(read).cloned().collect();
            let params = &mut self.params;
            super::loop_state::name_step_items(&mut body, &mut nexts, "step", params, &kept);
        }
        // `while <cond>:` when the condition is one expression of the loop variables.
        let cond_var = cond_stmts.first().and_then(|s| s.target.as_name());
        let inline_cond = cond_stmts.len() == 1
            && cond_var.is_some_and(|v| cond.as_name() == Some(v))
            && cond_var.is_some_and(|v| {
                body.iter().all(|s| s.value.reads(v) == 0) && nexts.iter().all(|e| e.reads(v) == 0)
            });
        let mut steps: Vec<Stmt> = Vec::new();
        let mut method_body = Vec::new();
        // Else `while True:` with the condition computed first and a `return` when it fails.
        let (test, exits) = if inline_cond {
            (cond_stmts[0].value.clone(), true)
        } else if cond_stmts.is_empty() {
            (cond, true)
        } else {
            steps.extend(cond_stmts.into_iter().map(Stmt::Assign));
            let ret = Stmt::return_values(state.clone());
            steps.push(Stmt::If { test: cond.logical_not(), body: vec![ret], orelse: vec![] });
            (Expr::boolean(true), false)
        };
        steps.extend(body.into_iter().map(Stmt::Assign));
        steps.extend(advance(&state, &nexts));
        method_body.push(Stmt::While { test, body: steps });
        if exits {
            method_body.push(Stmt::return_values(state));
        }
        let mut def = FunctionDef::method(self.name, &self.params, method_body);
        def.docstring = vec![docstring(&self.source, "runs its body while the condition holds")];
        def
    }

    /// A counted loop's method: `for step in range(n):` around the body, the counter neither
    /// a parameter nor returned (the condition is the `range`).
    fn counted_method(mut self, stmts: &dyn Fn(Vec<BodyItem>) -> Vec<Assign>) -> FunctionDef {
        let Some((var, twin, range)) = self.counted.take() else { unreachable!("a counted loop") };
        let counter = self.params[var].clone();
        let mut dropped: Vec<usize> = std::iter::once(var).chain(twin).collect();
        dropped.sort_unstable_by(|a, b| b.cmp(a));
        for k in dropped {
            self.params.remove(k);
            self.nexts.remove(k);
            self.vars -= 1;
        }
        let mut body = stmts(self.body_items);
        let state: Vec<Expr> = self.params[..self.vars].iter().map(Expr::name).collect();
        super::dead::remove_dead(&mut body, &self.nexts);
        super::loop_state::update_where_computed(&mut body, &state, &mut self.nexts);
        let (nexts, params) = (&mut self.nexts, &mut self.params);
        super::loop_state::name_step_items(&mut body, nexts, &counter, params, &[]);
        let mut steps: Vec<Stmt> = body.into_iter().map(Stmt::Assign).collect();
        steps.extend(advance(&state, &self.nexts));
        let for_loop = Stmt::For { target: Expr::name(counter), iter: range, body: steps };
        let method_body = vec![for_loop, Stmt::return_values(state)];
        let mut def = FunctionDef::method(self.name, &self.params, method_body);
        def.docstring = vec![docstring(&self.source, "runs its body once per step")];
        def
    }
}

/// The statement that moves the loop variables `state` on to `nexts`: `x = x_next`, or
/// `a, b = a_next, b_next`; none for variables the body already bound to their next values.
fn advance(state: &[Expr], nexts: &[Expr]) -> Option<Stmt> {
    let (state, nexts): (Vec<Expr>, Vec<Expr>) = state
        .iter()
        .zip(nexts)
        .filter(|(s, n)| s != n)
        .map(|(s, n)| (s.clone(), n.clone()))
        .unzip();
    match (&state[..], &nexts[..]) {
        ([], _) => None,
        ([s], [n]) => Some(Stmt::assign(s.clone(), n.clone())),
        _ => Some(Stmt::assign(Expr::Tuple(state), Expr::Tuple(nexts))),
    }
}

/// A loop method's docstring: the loop as the model's code named it, and what it does.
fn docstring(source: &str, what: &str) -> String {
    format!("TF loop `{}`: {what}.", doc_safe(without_calls(source)))
}

/// Whether `name` is that of a tensor made filled (`zeros`, `zeros_like_2`, `ones`): a
/// loop state's first value, not what it holds after a step.
fn is_filled(name: &str) -> bool {
    let base = without_counter(name).unwrap_or(name);
    matches!(base, "zeros" | "zeros_like" | "ones" | "ones_like" | "fill" | "full" | "empty")
}

/// Whether the loop condition's tests are all that read `v` (a bound only `range` needs).
fn only_tested(body: &crate::ir::Graph, v: crate::ir::ValueRef) -> bool {
    let cond = body.outputs[0].node;
    let tests: Vec<_> = match body.node(cond).op.as_str() {
        "LogicalAnd" => body.inputs(cond).iter().map(|t| t.node).collect(),
        _ => vec![cond],
    };
    body.consumers(v).iter().all(|(m, _)| tests.contains(m))
}

/// Loop `name` as the model's code named it: a SavedModel's function bodies are inlined
/// under the calls that ran them (`StatefulPartitionedCall/StatefulPartitionedCall/model/
/// lstm/while`), which say nothing of the loop.
fn without_calls(name: &str) -> &str {
    let mut rest = name;
    while let Some((first, tail)) = rest.split_once('/') {
        if !matches!(without_counter(first), Some("StatefulPartitionedCall" | "PartitionedCall")) {
            break;
        }
        rest = tail;
    }
    rest
}

pub(super) fn doc_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\' && *c != '`').collect()
}

#[cfg(test)]
mod tests {
    use super::without_calls;

    #[test]
    fn a_loop_is_named_without_the_calls_that_ran_it() {
        let saved = "StatefulPartitionedCall/StatefulPartitionedCall/model/lstm/while";
        assert_eq!(without_calls(saved), "model/lstm/while");
        assert_eq!(without_calls("PartitionedCall_1/map/while"), "map/while");
        assert_eq!(without_calls("model/lstm/while"), "model/lstm/while");
        assert_eq!(without_calls("StatefulPartitionedCall"), "StatefulPartitionedCall");
    }
}
