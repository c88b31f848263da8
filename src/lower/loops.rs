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

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use super::{BodyItem, Layout, Lowered, Lowerer, Stmt, Summary, Val};
use crate::py::names::{Scope, identifier};
use crate::py::{PyExpr, format};

/// Indent of statements inside the loop of a method.
const INDENT: usize = 12;

/// A loop lowered but not yet written: stub calls in its body get their keyword arguments
/// only once every stub call of the model is known.
pub(super) struct PendingLoop {
    name: String,
    source: String,
    params: Vec<String>,
    vars: usize,
    cond_items: Vec<BodyItem>,
    body_items: Vec<BodyItem>,
    cond: PyExpr,
    nexts: Vec<PyExpr>,
}

impl<'a> Lowerer<'a> {
    pub(super) fn lower_loop(&mut self, n: NodeIndex) -> Result<Lowered, String> {
        let node = self.graph.node(n);
        let body = node.body.as_deref().ok_or("a loop without a body")?;
        let outer = self.graph.inputs(n);
        if outer.len() != body.inputs.len() {
            return Err("loop inputs and body inputs disagree".into());
        }
        let vars = body.outputs.len() - 1;
        let args: Vec<PyExpr> =
            outer.iter().map(|&v| self.value_in(v, Layout::Tf)).collect::<Result<_, _>>()?;

        // The body shares the module's layers, buffers, attribute names and stubs.
        let mut inner = Lowerer {
            graph: body,
            module: std::mem::take(&mut self.module),
            attr_names: std::mem::take(&mut self.attr_names),
            locals: Scope::for_locals(),
            values: BTreeMap::new(),
            converted: BTreeMap::new(),
            remaining: BTreeMap::new(),
            x_holder: None,
            prefix: Vec::new(),
            strip_call_suffix: self.strip_call_suffix,
            name_prefix: String::new(),
            loop_name: node.name.clone(),
            body: Vec::new(),
            spans: Vec::new(),
            stubs: std::mem::take(&mut self.stubs),
            summary: Summary::default(),
            loops: Vec::new(),
        };
        let marks =
            (inner.module.layers.len(), inner.module.buffers.len(), inner.module.weights.len());
        let result = inner.lower_loop_body(&args, vars);
        self.module = std::mem::take(&mut inner.module);
        self.attr_names = std::mem::take(&mut inner.attr_names);
        self.stubs = std::mem::take(&mut inner.stubs);
        let (params, cond_items, body_items, cond, nexts) = result.inspect_err(|_| {
            // Nothing of a body that could not be written stays in the module.
            self.module.layers.truncate(marks.0);
            self.module.buffers.truncate(marks.1);
            self.module.weights.truncate(marks.2);
        })?;
        for (op, k) in std::mem::take(&mut inner.summary.translated) {
            *self.summary.translated.entry(op).or_default() += k;
        }
        self.summary.stubs_seen += inner.summary.stubs_seen;
        // Loops inside this one come first in the file.
        self.loops.append(&mut inner.loops);
        let name = self.attr_names.fresh(&format!("{}_loop", self.scope_of(n)));
        self.loops.push(PendingLoop {
            name: name.clone(),
            source: node.name.clone(),
            params,
            vars,
            cond_items,
            body_items,
            cond,
            nexts,
        });
        *self.summary.translated.entry("loop".into()).or_default() += 1;
        Ok(Lowered::Multi { expr: PyExpr::call(&format!("self.{name}"), args), layout: Layout::Tf })
    }

    /// Lowers the body graph: `(parameter names, condition items, body items, condition,
    /// next values)`.
    #[allow(clippy::type_complexity)]
    fn lower_loop_body(
        &mut self,
        args: &[PyExpr],
        vars: usize,
    ) -> Result<(Vec<String>, Vec<BodyItem>, Vec<BodyItem>, PyExpr, Vec<PyExpr>), String> {
        let g = self.graph;
        let order = g.topo_order().map_err(|_| "the loop body has a cycle".to_string())?;
        let order = self.demand_order(&order);
        self.count_uses(&order);
        // Parameters named like the values passed in, where those are names.
        let mut params = Vec::new();
        for (k, &input) in g.inputs.iter().enumerate() {
            let hint = match &args[k] {
                PyExpr::Atom(a) if !a.starts_with("self.") && identifier(a) == *a && a != "x" => {
                    a.clone()
                }
                // Counters start from an integer constant.
                PyExpr::Atom(a) if k < vars && a.parse::<i64>().is_ok() => "step".to_string(),
                _ if k < vars => format!("state_{k}"),
                _ => format!("invariant_{}", k - vars),
            };
            let name = self.locals.fresh(&hint);
            params.push(name.clone());
            self.values.insert(input, Val { expr: PyExpr::name(name), layout: Layout::Tf });
        }
        // The condition's inputs come first in demand order (it is output 0).
        let mut cond_nodes = std::collections::BTreeSet::new();
        let mut stack = vec![g.outputs[0].node];
        while let Some(m) = stack.pop() {
            if cond_nodes.insert(m) {
                stack.extend(g.inputs(m).iter().map(|v| v.node));
            }
        }
        let mut split = None;
        for &m in &order {
            let node = g.node(m);
            if node.op == "Placeholder" || node.value.is_some() {
                continue;
            }
            if split.is_none() && !cond_nodes.contains(&m) {
                split = Some(self.body.len());
            }
            self.lower_node(m).map_err(|e| e.to_string())?;
        }
        let cond = self.value_in(g.outputs[0], Layout::Tf)?;
        let nexts: Vec<PyExpr> = g.outputs[1..]
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
    /// The method's lines, with `stmt` turning body items into statements.
    pub(super) fn render(self, stmt: &dyn Fn(BodyItem) -> Stmt) -> Vec<String> {
        let cond_stmts: Vec<Stmt> = self.cond_items.into_iter().map(stmt).collect();
        let stmts: Vec<Stmt> = self.body_items.into_iter().map(stmt).collect();
        let (cond, nexts, vars) = (self.cond, self.nexts, self.vars);
        let state = self.params[..vars].join(", ");
        let mut def_args = vec![PyExpr::name("self")];
        def_args.extend(self.params.iter().map(PyExpr::name));
        let mut lines = format::statement(4, "def ", &PyExpr::call(&self.name, def_args));
        if let Some(last) = lines.last_mut() {
            last.push(':');
        }
        lines.push(format!(
            "        \"\"\"TF loop `{}`: runs its body while the condition holds.\"\"\"",
            doc_safe(&self.source)
        ));
        // `while <cond>:` when the condition is one expression of the loop variables.
        let inline_cond = cond_stmts.len() == 1
            && cond_stmts[0].target == cond.to_string()
            && !stmts.iter().any(|s| s.expr.identifiers().contains(&cond_stmts[0].target))
            && !nexts.iter().any(|e| e.identifiers().contains(&cond_stmts[0].target));
        if inline_cond || cond_stmts.is_empty() {
            let c = if inline_cond { cond_stmts[0].expr.clone() } else { cond.clone() };
            lines.extend(format::statement(8, "while ", &c).into_iter().map(|mut l| {
                l.push(':');
                l
            }));
        } else {
            lines.push("        while True:".into());
            for s in &cond_stmts {
                lines.extend(format::assignment(INDENT, &s.target, &s.expr));
            }
            let c = match cond {
                PyExpr::BinOp { .. } => format!("({cond})"),
                _ => cond.to_string(),
            };
            lines.push(format!("            if not {c}:"));
            lines.extend(format::return_values(16, &self.params[..vars]));
        }
        for s in &stmts {
            lines.extend(format::assignment(INDENT, &s.target, &s.expr));
        }
        let next = if vars == 1 { nexts[0].clone() } else { PyExpr::Tuple(nexts) };
        lines.extend(assign_state(&state, &next, vars));
        if inline_cond || cond_stmts.is_empty() {
            lines.extend(format::return_values(8, &self.params[..vars]));
        }
        lines
    }
}

/// `a, b = x, y` as ruff writes it: on one line when it fits, else one value per line.
fn assign_state(state: &str, next: &PyExpr, vars: usize) -> Vec<String> {
    let pad = " ".repeat(INDENT);
    let PyExpr::Tuple(items) = next else {
        return format::assignment(INDENT, state, next);
    };
    let flat: Vec<String> = items.iter().map(|e| e.to_string()).collect();
    let line = format!("{pad}{state} = {}", flat.join(", "));
    if line.len() <= format::LINE_WIDTH || vars < 2 {
        return vec![line];
    }
    let head = format!("{pad}{state} = (");
    let mut lines = if head.len() <= format::LINE_WIDTH {
        vec![head]
    } else {
        // Even the targets do not fit: ruff parenthesises them one per line too.
        let mut l = vec![format!("{pad}(")];
        l.extend(state.split(", ").map(|t| format!("{pad}    {t},")));
        l.push(format!("{pad}) = ("));
        l
    };
    for e in items {
        lines.extend(format::item_lines(INDENT + 4, e));
    }
    lines.push(format!("{pad})"));
    lines
}

fn doc_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\' && *c != '`').collect()
}
