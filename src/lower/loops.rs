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

use std::collections::BTreeSet;

use petgraph::stable_graph::NodeIndex;

use super::counted::{Bound, counter};
use super::methods::Pending;
use super::scopes::without_counter;
use super::{BodyItem, Lowerer};
use crate::ir::ValueRef;
use crate::ops::contract::{Layout, Lowered, OpResult, Val};
use crate::py::{Assign, Expr, FunctionDef, Lit, Ref, Stmt};

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
    /// The body's locals that say less than a running `x` would (see
    /// `py::names::Scope::temporaries`).
    temporaries: BTreeSet<String>,
    /// Lists the loop sets item `step` of at every step (see [`appended_lists`]), by
    /// parameter name: built in the method by `append`, not passed in.
    appended: Vec<String>,
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
        let hints = var_hints(self.graph, &outer, body, vars);
        let ((params, cond_items, body_items, cond, nexts), temporaries) =
            self.nested(body, &node.name, |inner| {
                let twin = counter.as_ref().and_then(|c| c.twin);
                let lowered = inner.lower_loop_body(&args, &hints, twin, host_bound)?;
                Ok((lowered, inner.locals.temporaries()))
            })?;
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
        let appended = match &counter {
            Some(c) => appended_lists(self.graph, &outer, body, vars, c),
            None => Vec::new(),
        };
        let invariants: Vec<String> =
            (vars..outer.len()).map(|k| leaf_name(&self.graph.node(outer[k].node).name)).collect();
        let appended_names: Vec<String> = appended.iter().map(|&k| params[k].clone()).collect();
        let mut pending = PendingLoop {
            name: String::new(),
            source: node.name.clone(),
            params,
            vars,
            cond_items,
            body_items,
            cond,
            nexts,
            counted,
            temporaries,
            appended: appended_names,
        };
        // A loop that reads none of the model's layers is a function of its inputs, written
        // once for every loop that computes the same (each layer's time loop).
        let callee = if pending.is_pure() {
            let base = loop_base(&node.name);
            Expr::name(self.shared_function(pending, &base, &invariants, host_bound))
        } else {
            let name = self.attr_names.fresh(&format!("{}_loop", self.scope_of(n)));
            pending.name = name.clone();
            self.methods.push(Pending::Loop(pending));
            Expr::self_attr(&name)
        };
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
        // A list the loop fills by `append` is made in it, not passed in.
        let args: Vec<Expr> = args
            .into_iter()
            .enumerate()
            .filter(|(k, _)| !counted_vars.contains(k) && !appended.contains(k))
            .map(|(_, a)| a)
            .collect();
        for &k in &appended {
            self.filled_lists.insert(ValueRef { node: n, port: k });
        }
        let expr = callee.called(args, vec![]);
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
        hints: &[Option<&str>],
        twin: Option<usize>,
        bound: Option<usize>,
    ) -> OpResult<LoweredBody> {
        let vars = hints.len();
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
                _ if k < vars && twin != Some(k) && hints[k].is_some() => {
                    hints[k].unwrap_or_default().to_string()
                }
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

impl Lowerer<'_> {
    /// The module-level function loop `pending` is, its invariant parameters named after
    /// the values passed (`invariants`, their TF names, the same in every layer): an equal
    /// one written before (another layer's), else a new one named `<base>_loop`.
    fn shared_function(
        &mut self,
        pending: PendingLoop,
        base: &str,
        invariants: &[String],
        host_bound: Option<usize>,
    ) -> String {
        let vars = pending.vars;
        let old: Vec<String> = pending.params[vars..].to_vec();
        let lines = |items: Vec<BodyItem>| -> Vec<Assign> {
            items
                .into_iter()
                .filter_map(|i| match i {
                    BodyItem::Line(a) => Some(a),
                    BodyItem::StubCall { .. } => None,
                })
                .collect()
        };
        let mut def = pending.method(&lines);
        def.params.retain(|p| p.name != "self");
        // Parameters read by the caller's names say what the first layer called them: the
        // values' own names instead, free in the function.
        let mut taken: BTreeSet<String> =
            def.body.iter().flat_map(Stmt::all_names).map(String::from).collect();
        taken.extend(def.params.iter().map(|p| p.name.clone()));
        let mut renames: Vec<(String, String)> = Vec::new();
        for (k, (from, raw)) in old.iter().zip(invariants).enumerate() {
            if !def.params.iter().any(|p| &p.name == from) {
                continue;
            }
            // The count `range` reads is `num_steps` wherever it comes from.
            let base = match host_bound == Some(vars + k) {
                true => "num_steps".to_string(),
                false => crate::py::names::identifier(raw),
            };
            let mut to = base.clone();
            let mut k = 2;
            while taken.contains(&to) && to != *from {
                to = format!("{base}_{k}");
                k += 1;
            }
            taken.insert(to.clone());
            renames.push((from.clone(), to));
        }
        let rename = |r: Ref<'_>| match r {
            Ref::Var(v) => renames.iter().find(|(f, _)| f == v).map(|(_, t)| Expr::name(t)),
            _ => None,
        };
        for stmt in &mut def.body {
            stmt.rename_all(&rename);
        }
        for p in &mut def.params {
            if let Some((_, t)) = renames.iter().find(|(f, _)| *f == p.name) {
                p.name = t.clone();
            }
        }
        // Equal but for the names of its locals (TF numbers a layer's nodes on from the one
        // before: `add_12` in one layer is `add_14` in the next).
        let key = alpha_normal(&def);
        if let Some(f) = self.module.functions.iter().find(|f| alpha_normal(f) == key) {
            return f.name.clone();
        }
        let mut name = format!("{base}_loop");
        let mut k = 2;
        // Free among the functions, `forward`'s locals and the model's methods (another
        // loop's `self.<name>` would read as this one).
        while self.module.functions.iter().any(|f| f.name == name)
            || !self.locals.claim(&name)
            || !self.attr_names.claim(&name)
        {
            name = format!("{base}_loop_{k}");
            k += 1;
        }
        def.name = name.clone();
        self.module.functions.push(def);
        name
    }
}

impl PendingLoop {
    /// Whether the loop reads none of the model's layers or weights, nor untranslated ops:
    /// a function of its inputs alone.
    fn is_pure(&self) -> bool {
        let items = self.cond_items.iter().chain(&self.body_items);
        let lines_pure = items.into_iter().all(|i| match i {
            BodyItem::Line(a) => a.value.self_attrs().is_empty(),
            BodyItem::StubCall { .. } => false,
        });
        lines_pure
            && self.cond.self_attrs().is_empty()
            && self.nexts.iter().all(|e| e.self_attrs().is_empty())
    }

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
        let bound_by_cond = cond_stmts.iter().flat_map(|s| s.target.bound_names());
        if !bound_by_cond.into_iter().any(|n| n == "x" || n == "y") {
            let mut live: Vec<Expr> = nexts.clone();
            live.extend(state.iter().cloned());
            live.push(cond.clone());
            tidy(&mut body, &live, &self.temporaries);
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
        let mut live: Vec<Expr> = self.nexts.clone();
        live.extend(state.iter().cloned());
        tidy(&mut body, &live, &self.temporaries);
        let mut steps: Vec<Stmt> = body.into_iter().map(Stmt::Assign).collect();
        steps.extend(advance(&state, &self.nexts));
        // Lists set at every step: `outputs = []` and `outputs.append(y)` where the body
        // sets item `step` as the lowering writes it, else the list TF reserved.
        let mut method_body = Vec::new();
        let bound = match &range {
            Expr::Call(c) => c.args.last().cloned(),
            _ => None,
        };
        for list in &self.appended {
            let init = match (as_append(&mut steps, list, &counter), &bound) {
                (true, _) => Expr::List(Vec::new()),
                (false, Some(n)) => {
                    Expr::List(vec![Expr::none()]).binop(crate::py::BinOp::Mul, n.clone())
                }
                (false, None) => continue,
            };
            method_body.push(Stmt::assign(Expr::name(list), init));
        }
        self.params.retain(|p| !self.appended.contains(p));
        let for_loop = Stmt::For { target: Expr::name(counter), iter: range, body: steps };
        method_body.extend([for_loop, Stmt::return_values(state)]);
        let mut def = FunctionDef::method(self.name, &self.params, method_body);
        def.docstring = vec![docstring(&self.source, "runs its body once per step")];
        def
    }
}

/// Rewrites `list = [*list[:step], y, *list[step + 1 :]]`, the only statement of `steps`
/// reading `list`, as `list.append(y)`; whether it did.
fn as_append(steps: &mut [Stmt], list: &str, step: &str) -> bool {
    let reads: usize =
        steps.iter().map(|s| s.all_names().iter().filter(|n| **n == list).count()).sum();
    for stmt in steps.iter_mut() {
        let Stmt::Assign(a) = stmt else { continue };
        if a.target.as_name() != Some(list) {
            continue;
        }
        let Expr::List(items) = &a.value else { return false };
        let [Expr::Starred(before), item, Expr::Starred(after)] = &items[..] else { return false };
        let (head, tail) = (
            Expr::name(list).index(Expr::slice(None, Some(Expr::name(step)), None)),
            Expr::name(list).index(Expr::slice(
                Some(Expr::name(step).binop(crate::py::BinOp::Add, Expr::int(1))),
                None,
                None,
            )),
        );
        // The target and the two slices are its only mentions.
        if **before != head || **after != tail || item.reads(list) > 0 || reads != 3 {
            return false;
        }
        *stmt = Stmt::Expr(Expr::name(list).method("append", vec![item.clone()]));
        return true;
    }
    false
}

/// The list variables of a counted loop from 0 (counter `c`) that its body sets item
/// `step` of, reads nowhere else, and that start as a list reserved for as many items as
/// the loop runs: every item is set, in order, so the list is built by `append`.
fn appended_lists(
    g: &crate::ir::Graph,
    outer: &[ValueRef],
    body: &crate::ir::Graph,
    vars: usize,
    c: &super::counted::Counter,
) -> Vec<usize> {
    if c.start != 0 {
        return Vec::new();
    }
    let Some(&step) = body.inputs.get(c.var) else { return Vec::new() };
    let scalar = super::counted::scalar_int;
    (0..vars)
        .filter(|&k| {
            let (Some(&var), Some(&next), Some(&init)) =
                (body.inputs.get(k), body.outputs.get(1 + k), outer.get(k))
            else {
                return false;
            };
            let set = body.inputs(next.node);
            let sets = body.node(next.node).op == "TensorListSetItem"
                && next.port == 0
                && set.len() == 3
                && set[0] == var
                && set[1] == step
                && body.use_count(var) == 1;
            if !sets
                || k == c.var
                || c.twin == Some(k)
                || g.node(init.node).op != "TensorListReserve"
            {
                return false;
            }
            let Some(&n) = g.inputs(init.node).get(1) else { return false };
            match c.bound {
                super::counted::Bound::Const(b) => scalar(g, n) == Some(b),
                super::counted::Bound::Input(j) => {
                    outer.get(j) == Some(&n)
                        || scalar(g, n)
                            .is_some_and(|x| outer.get(j).and_then(|&v| scalar(g, v)) == Some(x))
                }
            }
        })
        .collect()
}

/// A loop body written as `forward` is: a temporary the next statement alone reads is the
/// running `x` (or `y`), one read once a few statements on is written where it is read,
/// and shape plumbing is one chain. `live`: what the next iteration, the condition and the
/// loop's return read.
fn tidy(body: &mut Vec<crate::py::Assign>, live: &[Expr], temporaries: &BTreeSet<String>) {
    /// A loop body's statements are indented three levels (`def`, `for`/`while`).
    const INDENT: usize = 12;
    super::chain::running_values(body, live, temporaries);
    super::chain::inline_temporaries(body, INDENT, live, temporaries);
    super::chain::chain(body, INDENT, live);
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

/// What each loop variable is called in the body where its start or its next value says
/// it: `state` for one starting as a tensor filled with one value (its start is not what it
/// holds after a step), `outputs` for a list the body sets an item of.
fn var_hints(
    outer: &crate::ir::Graph,
    inputs: &[crate::ir::ValueRef],
    body: &crate::ir::Graph,
    vars: usize,
) -> Vec<Option<&'static str>> {
    (0..vars)
        .map(|k| {
            let next = body.outputs.get(1 + k).map(|v| body.node(v.node).op.as_str());
            let start = inputs.get(k).map(|v| outer.node(v.node).op.as_str());
            if next == Some("TensorListSetItem") {
                Some("outputs")
            } else if matches!(start, Some("Fill" | "ZerosLike" | "OnesLike")) {
                Some("state")
            } else {
                None
            }
        })
        .collect()
}

/// Function `def` with its parameters and locals renamed in the order they are first bound
/// (`_0`, `_1`, ...) and no name or docstring: two functions with the same normal form
/// compute the same.
fn alpha_normal(def: &FunctionDef) -> FunctionDef {
    let mut order: Vec<String> = def.params.iter().map(|p| p.name.clone()).collect();
    for stmt in &def.body {
        for n in stmt.all_bound_names() {
            if !order.iter().any(|o| o == n) {
                order.push(n.to_string());
            }
        }
    }
    let rename = |r: Ref<'_>| match r {
        Ref::Var(v) => order.iter().position(|o| o == v).map(|k| Expr::name(format!("_{k}"))),
        _ => None,
    };
    let mut out = def.clone();
    out.name.clear();
    out.docstring.clear();
    for p in &mut out.params {
        if let Some(k) = order.iter().position(|o| *o == p.name) {
            p.name = format!("_{k}");
        }
    }
    for stmt in &mut out.body {
        stmt.rename_all(&rename);
    }
    out
}

/// The last part of TF name `name` (`Reshape_6` of `layer_0/time_mix/Reshape_6`).
fn leaf_name(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_string()
}

/// What a loop function is named after: the scope holding the loop, without the call's
/// counter (`time_mix` of `model/layer_0/time_mix_1/loop`); the loop's own name at the top.
fn loop_base(name: &str) -> String {
    let name = without_calls(name);
    let scope = name.rsplit_once('/').map_or(name, |(scope, _)| scope);
    let last = scope.rsplit('/').next().unwrap_or(scope);
    let last = without_counter(last).unwrap_or(last);
    crate::py::names::identifier(last)
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
