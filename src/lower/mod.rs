//! Lowering: `ir::Graph` (after the passes) → `py::Module`.
//!
//! Walks the nodes in stable topological order and asks each op's translator for a layer or an
//! expression. Tracks, per value, the Python expression that holds it and its layout: image
//! tensors run in NCHW inside the module, and a permute is emitted only where an op needs the
//! other layout (see `Layout`). Values used once flow on as `x`; others keep names from their
//! TF scope.

mod blocks;
mod chain;
mod ctx;
mod loops;
mod stubs;

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

pub use ctx::Ctx;
pub use stubs::StubReport;

use crate::error::{Error, Result};
use crate::ir::{Graph, ValueRef};
use crate::ops;
use crate::py::names::{Scope, identifier};
use crate::py::{Buffer, Layer, Module, PyExpr, Weight, format};

/// Where a value's axes are. `Nchw` is only used for rank-4 values that TF sees as NHWC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layout {
    /// Same axis order as in TensorFlow.
    Tf,
    /// TF's NHWC stored as NCHW (`permute(0, 3, 1, 2)` of the TF value).
    Nchw,
}

/// TF axis `a` of a rank-4 NHWC value → its axis in the NCHW tensor.
pub const NHWC_TO_NCHW_AXIS: [usize; 4] = [0, 2, 3, 1];

/// What a translator produces for one node.
pub enum Lowered {
    /// `self.<name> = ctor` in `__init__`; `y = self.<name>(args)` in `forward`.
    /// `params` are the module's state_dict entries relative to it (`weight`, `bias`, ...).
    /// `post` is applied to the layer's result: an index (`[:, :, :7, :7]`) or a method call
    /// (`.transpose(1, 2)`), as Python text.
    Layer {
        ctor: PyExpr,
        params: Vec<(&'static str, Weight)>,
        args: Vec<PyExpr>,
        layout: Layout,
        post: Option<String>,
    },
    /// A layer returning (nested) tuples: `pattern = self.<name>(args)`, each `{k}` in
    /// `pattern` a fresh name (or `_`); output `p` is slot `views[p].0` followed by
    /// `views[p].1` (e.g. `[0]`). Used when several outputs are read (`y, (h, c) = self.lstm(x)`).
    LayerUnpack {
        ctor: PyExpr,
        params: Vec<(&'static str, Weight)>,
        args: Vec<PyExpr>,
        pattern: &'static str,
        views: Vec<(usize, &'static str)>,
    },
    /// `y = expr`.
    Expr { expr: PyExpr, layout: Layout },
    /// `a, b, ... = expr` for ops with several outputs.
    Multi { expr: PyExpr, layout: Layout },
    /// Output 0 is input `i` unchanged.
    Alias(usize),
    /// Output 0 is input `i`'s tensor, seen by TF in another layout (a transpose that only
    /// undoes the NCHW storage order).
    Relabel(usize, Layout),
}

/// A value available in `forward`.
#[derive(Clone, Debug)]
pub struct Val {
    pub expr: PyExpr,
    pub layout: Layout,
}

/// A statement of `forward`, or a call to a stub whose keyword arguments are only known once
/// every node using that stub has been seen.
enum BodyItem {
    Line(Stmt),
    StubCall { target: String, function: String, args: Vec<PyExpr>, site: usize },
}

/// `target = expr` (target may be `a, b`); formatted only at the end, after any renaming.
#[derive(Clone, Debug)]
pub struct Stmt {
    pub target: String,
    pub expr: PyExpr,
}

/// The statements and layers one graph node produced, for finding repeated blocks.
#[derive(Clone, Debug)]
pub struct Span {
    pub scope: String,
    pub stmts: std::ops::Range<usize>,
    pub layers: std::ops::Range<usize>,
    pub buffers: std::ops::Range<usize>,
    /// No stubs: the node can move into a block class.
    pub movable: bool,
}

/// Counts for the end-of-conversion summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub translated: BTreeMap<String, usize>,
    pub stubs: Vec<StubReport>,
    /// Nodes lowered as stubs so far.
    pub stubs_seen: usize,
    /// Repeated blocks emitted as classes: (class, instances).
    pub blocks: Vec<(String, usize)>,
}

pub struct Lowerer<'a> {
    graph: &'a Graph,
    module: Module,
    attr_names: Scope,
    locals: Scope,
    values: BTreeMap<ValueRef, Val>,
    converted: BTreeMap<(ValueRef, Layout), PyExpr>,
    remaining: BTreeMap<ValueRef, usize>,
    x_holder: Option<ValueRef>,
    prefix: Vec<String>,
    strip_call_suffix: bool,
    name_prefix: String,
    /// The `_Loop` whose body this lowers (empty for `forward`): names are read past the
    /// loop's own scopes (see `scope_of`).
    loop_name: String,
    body: Vec<BodyItem>,
    spans: Vec<Span>,
    stubs: stubs::Stubs,
    summary: Summary,
    /// Loops met so far, written as methods once stub calls are complete.
    loops: Vec<loops::PendingLoop>,
}

/// Lowers the graph into a Python module named `class_name`.
pub fn lower(graph: &Graph, class_name: &str, source_name: &str) -> Result<(Module, Summary)> {
    let order = graph.topo_order().map_err(|n| {
        let node = graph.node(n);
        Error::node(&node.name, &node.op, "is part of a cycle (loops are not supported yet)")
    })?;
    let mut low = Lowerer {
        graph,
        module: Module {
            class_name: class_name.to_string(),
            source_name: source_name.to_string(),
            ..Module::default()
        },
        attr_names: Scope::for_attributes(),
        locals: Scope::for_locals(),
        values: BTreeMap::new(),
        converted: BTreeMap::new(),
        remaining: BTreeMap::new(),
        x_holder: None,
        prefix: common_prefix(graph, &order),
        strip_call_suffix: false,
        name_prefix: String::new(),
        loop_name: String::new(),
        body: Vec::new(),
        spans: Vec::new(),
        stubs: stubs::Stubs::default(),
        summary: Summary::default(),
        loops: Vec::new(),
    };
    low.strip_call_suffix = low.every_scope_has_call_suffix(&order);
    low.name_prefix = low.common_name_prefix(&order);
    let order = low.demand_order(&order);
    low.count_uses(&order);
    for &input in &graph.inputs {
        let name = low.locals.fresh(&graph.node(input.node).name);
        low.module.params.push(name.clone());
        low.values.insert(input, Val { expr: PyExpr::name(name), layout: Layout::Tf });
    }
    for &n in &order {
        let node = graph.node(n);
        if node.op == "Placeholder" || node.value.is_some() {
            continue;
        }
        let (stmts, layers, buffers) =
            (low.body.len(), low.module.layers.len(), low.module.buffers.len());
        let stubs = low.summary.stubs_seen;
        low.lower_node(n)?;
        let scope = low.scope_of(n);
        low.spans.push(Span {
            scope,
            stmts: stmts..low.body.len(),
            layers: layers..low.module.layers.len(),
            buffers: buffers..low.module.buffers.len(),
            movable: low.summary.stubs_seen == stubs,
        });
    }
    low.finish()
}

/// Scopes TF and Keras create inside a layer's implementation, which name no layer.
fn is_implementation_scope(c: &str) -> bool {
    c.starts_with(|ch: char| ch.is_ascii_uppercase())
        || matches!(
            c,
            "batchnorm"
                | "moments"
                | "convolution"
                | "depthwise"
                | "conv_transpose"
                | "resize"
                | "einsum"
                | "truediv"
                | "mul"
                | "add"
                | "sub"
        )
}

/// Name components shared by every computing node (`model/` in `model/conv1/Conv2D`), dropped
/// from layer and variable names.
fn common_prefix(graph: &Graph, order: &[NodeIndex]) -> Vec<String> {
    let mut prefix: Option<Vec<&str>> = None;
    for &n in order {
        let node = graph.node(n);
        if node.op == "Placeholder" || node.value.is_some() {
            continue;
        }
        let parts: Vec<&str> = node.name.split('/').collect();
        let scope = &parts[..parts.len() - 1];
        prefix = Some(match prefix {
            None => scope.to_vec(),
            Some(p) => p.iter().zip(scope).take_while(|(a, b)| a == b).map(|(a, _)| *a).collect(),
        });
    }
    prefix.unwrap_or_default().into_iter().map(String::from).collect()
}

impl<'a> Lowerer<'a> {
    /// The layer-ish part of a TF node name: `model/conv1_bn/batchnorm/add_1` → `conv1_bn`.
    fn scope_of(&self, n: NodeIndex) -> String {
        let mut name = self.graph.node(n).name.as_str();
        if !self.loop_name.is_empty() {
            // `model/gru/while/body/_1/model/gru/while/gru_cell/MatMul` → `gru_cell/MatMul`,
            // `model/while/body/add` → `add`, `loop/add` → `add`: what the loop's own code
            // named it.
            let cut = ["/while/", "/body/", "/cond/"]
                .iter()
                .filter_map(|m| name.rfind(m).map(|i| i + m.len()))
                .max();
            if let Some(i) = cut {
                name = &name[i..];
            } else if let Some(rest) = name.strip_prefix(&format!("{}/", self.loop_name)) {
                name = rest;
            }
        }
        let parts: Vec<&str> = name.split('/').collect();
        let rest =
            if parts.len() > self.prefix.len() { &parts[self.prefix.len()..] } else { &parts[..] };
        // Nested layer scopes name the layer (`transformer_layer_0/self_attention/query`),
        // up to where TF's own implementation scopes begin (`Tensordot`, `batchnorm`, ...).
        let strip = |c: &'a str| match c.strip_suffix("_1") {
            Some(s) if self.strip_call_suffix && !s.is_empty() => s,
            _ => c,
        };
        let mut path = vec![strip(rest[0])];
        if rest.len() > 1 {
            for c in &rest[1..rest.len() - 1] {
                if is_implementation_scope(c) {
                    break;
                }
                path.push(strip(c));
            }
        }
        let joined = path.join("_");
        let scope = if rest.len() > 1 { joined.as_str() } else { rest[0] };
        // `convnext_tiny_stem`, `convnext_tiny_stage_0_...` → `stem`, `stage_0_...`.
        match scope.strip_prefix(self.name_prefix.as_str()) {
            Some(s) if !self.name_prefix.is_empty() && !s.is_empty() && rest.len() > 1 => {
                s.to_string()
            }
            _ => scope.to_string(),
        }
    }

    /// Computing nodes whose name has a layer scope below the common prefix, with that scope's
    /// first component as written in the file.
    fn scoped_nodes<'o>(
        &'o self,
        order: &'o [NodeIndex],
    ) -> impl Iterator<Item = (NodeIndex, &'a str)> + 'o {
        order.iter().filter_map(move |&n| {
            let node = self.graph.node(n);
            if node.op == "Placeholder" || node.value.is_some() {
                return None;
            }
            let parts: Vec<&'a str> = node.name.split('/').collect();
            (parts.len() > self.prefix.len() + 1).then(|| (n, parts[self.prefix.len()]))
        })
    }

    /// The `word_` tokens every layer scope starts with (Keras models that prefix each layer
    /// with the model's name), to drop from layer names.
    fn common_name_prefix(&self, order: &[NodeIndex]) -> String {
        let mut common: Option<Vec<String>> = None;
        let mut scopes = std::collections::BTreeSet::new();
        for (n, _) in self.scoped_nodes(order) {
            let scope = self.scope_of(n);
            scopes.insert(scope.clone());
            let tokens: Vec<String> = scope.split('_').map(String::from).collect();
            // Keep at least one token of every scope.
            let tokens = tokens[..tokens.len() - 1].to_vec();
            common = Some(match common {
                None => tokens,
                Some(c) => c
                    .iter()
                    .zip(&tokens)
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a.clone())
                    .collect(),
            });
        }
        // A shared first word in a small graph (`stem_conv`, `stem_act`) is a name, not a
        // model prefix: strip only multi-word prefixes, or shared words across many layers.
        common
            .filter(|c| c.len() >= 2 || (c.len() == 1 && scopes.len() >= 10))
            .map(|c| format!("{}_", c.join("_")))
            .unwrap_or_default()
    }

    /// Each value computed just before it is first needed: a depth-first walk from the outputs,
    /// inputs in slot order, so a layer's helper computations (masks, shapes) sit inside the
    /// layer rather than at the top of `forward`, and the order follows the data, not how a
    /// producer happened to number its nodes.
    fn demand_order(&self, topo: &[NodeIndex]) -> Vec<NodeIndex> {
        let g = self.graph;
        // Deeper inputs first, so cheap side computations (a mask from the model input) are
        // emitted last, right before the node that needs them.
        let mut level: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for &n in topo {
            let l = g
                .inputs(n)
                .iter()
                .map(|v| level.get(&v.node).map_or(0, |l| l + 1))
                .max()
                .unwrap_or(0);
            level.insert(n, l);
        }
        let mut done = std::collections::BTreeSet::new();
        let mut order = Vec::with_capacity(topo.len());
        let mut roots: Vec<NodeIndex> = g.outputs.iter().map(|v| v.node).collect();
        // Nodes no output depends on (kept by the caller's pruning choices) come last.
        roots.extend(topo.iter().copied());
        for root in roots {
            // Iterative post-order: (node, inputs pushed?)
            let mut stack = vec![(root, false)];
            while let Some((n, expanded)) = stack.pop() {
                if done.contains(&n) {
                    continue;
                }
                if expanded {
                    done.insert(n);
                    order.push(n);
                    continue;
                }
                stack.push((n, true));
                let mut inputs: Vec<(usize, usize, NodeIndex)> = g
                    .inputs(n)
                    .iter()
                    .enumerate()
                    .map(|(slot, v)| {
                        (usize::MAX - level.get(&v.node).copied().unwrap_or(0), slot, v.node)
                    })
                    .collect();
                inputs.sort();
                for &(_, _, m) in inputs.iter().rev() {
                    if !done.contains(&m) {
                        stack.push((m, false));
                    }
                }
            }
        }
        order
    }

    /// Keras 3 traced inside a `tf.function` names every layer scope `<layer>_1`; when every
    /// layer scope carries that suffix it is noise, and layer names read as in Keras without it.
    fn every_scope_has_call_suffix(&self, order: &[NodeIndex]) -> bool {
        let mut any = false;
        for (_, layer) in self.scoped_nodes(order) {
            if !layer.ends_with("_1") {
                return false;
            }
            any = true;
        }
        any
    }

    /// Claims `x` and records how many readers each value has (names are freed by them).
    fn count_uses(&mut self, order: &[NodeIndex]) {
        self.locals.claim("x");
        for &n in order {
            for port in 0..self.graph.node(n).outputs.len().max(1) {
                let v = ValueRef { node: n, port };
                let uses = self.graph.use_count(v);
                if uses > 0 {
                    self.remaining.insert(v, uses);
                }
            }
        }
    }

    fn lower_node(&mut self, n: NodeIndex) -> Result<()> {
        let node = self.graph.node(n);
        let result = match ops::lookup(&node.op) {
            _ if node.op == crate::passes::loops::LOOP => self.lower_loop(n),
            Some(def) => {
                let mut ctx = Ctx::new(self, n);
                (def.lower)(&mut ctx)
            }
            None => Err("no translation for this op".to_string()),
        };
        match result {
            Ok(lowered) => {
                *self.summary.translated.entry(node.op.clone()).or_default() += 1;
                self.apply(n, lowered)
            }
            Err(reason) => self.emit_stub(n, reason),
        }
    }

    /// Consumes the node's inputs (use counts) before naming its outputs, so that `x` can be
    /// reused when this node reads its last use.
    fn consume_inputs(&mut self, n: NodeIndex) {
        for v in self.graph.inputs(n) {
            if let Some(r) = self.remaining.get_mut(&v) {
                *r = r.saturating_sub(1);
            }
        }
    }

    fn x_is_free(&self) -> bool {
        self.x_holder.is_none_or(|v| self.remaining.get(&v).copied().unwrap_or(0) == 0)
    }

    /// The Python name for output `v`: `x` when it is used once and `x` is free.
    fn target_for(&mut self, v: ValueRef) -> String {
        let uses = self.graph.use_count(v);
        if uses == 0 {
            return "_".into();
        }
        if uses == 1 && self.x_is_free() {
            self.x_holder = Some(v);
            return "x".into();
        }
        let hint = self.scope_of(v.node);
        let hint = if v.port > 0 { format!("{hint}_{}", v.port) } else { hint };
        self.locals.fresh(&hint)
    }

    fn num_outputs(&self, n: NodeIndex) -> usize {
        (0..64)
            .rev()
            .find(|&p| self.graph.use_count(ValueRef { node: n, port: p }) > 0)
            .map_or(1, |p| p + 1)
    }

    fn push_line(&mut self, target: &str, expr: &PyExpr) {
        self.body.push(BodyItem::Line(Stmt { target: target.to_string(), expr: expr.clone() }));
    }

    fn apply(&mut self, n: NodeIndex, lowered: Lowered) -> Result<()> {
        let out = ValueRef { node: n, port: 0 };
        match lowered {
            Lowered::Alias(i) | Lowered::Relabel(i, _) => {
                let src = self.graph.inputs(n)[i];
                let mut val = self.value(src).map_err(Error::msg)?;
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
                let name = self.attr_names.fresh(&self.scope_of(n));
                for (pname, w) in params {
                    self.module.weights.push((format!("{name}.{pname}"), w));
                }
                self.module.layers.push(Layer { name: name.clone(), ctor });
                let mut call = PyExpr::call(&format!("self.{name}"), args);
                if let Some(suffix) = post {
                    call = PyExpr::Atom(format!("{call}{suffix}"));
                }
                self.consume_inputs(n);
                let target = self.target_for(out);
                self.push_line(&target, &call);
                self.values.insert(out, Val { expr: PyExpr::name(target), layout });
            }
            Lowered::LayerUnpack { ctor, params, args, pattern, views } => {
                let name = self.attr_names.fresh(&self.scope_of(n));
                for (pname, w) in params {
                    self.module.weights.push((format!("{name}.{pname}"), w));
                }
                self.module.layers.push(Layer { name: name.clone(), ctor });
                self.consume_inputs(n);
                let hint = identifier(&self.scope_of(n));
                let slots = views.iter().map(|v| v.0 + 1).max().unwrap_or(0);
                let mut names = vec!["_".to_string(); slots];
                for (p, &(slot, _)) in views.iter().enumerate() {
                    if self.graph.use_count(ValueRef { node: n, port: p }) > 0 && names[slot] == "_"
                    {
                        let suffix = ["", "_h", "_c"].get(slot).copied().unwrap_or("_state");
                        names[slot] = self.locals.fresh(&format!("{hint}{suffix}"));
                    }
                }
                let mut lhs = pattern.to_string();
                for (k, name) in names.iter().enumerate() {
                    lhs = lhs.replace(&format!("{{{k}}}"), name);
                }
                let call = PyExpr::call(&format!("self.{name}"), args);
                self.push_line(&lhs, &call);
                for (p, (slot, suffix)) in views.into_iter().enumerate() {
                    let expr = PyExpr::Atom(format!("{}{suffix}", names[slot]));
                    self.values
                        .insert(ValueRef { node: n, port: p }, Val { expr, layout: Layout::Tf });
                }
            }
            Lowered::Expr { expr, layout } => {
                self.consume_inputs(n);
                let target = self.target_for(out);
                self.push_line(&target, &expr);
                self.values.insert(out, Val { expr: PyExpr::name(target), layout });
            }
            Lowered::Multi { expr, layout } => {
                self.consume_inputs(n);
                let count = self.num_outputs(n).max(self.graph.node(n).outputs.len());
                let targets: Vec<String> =
                    (0..count).map(|p| self.target_for(ValueRef { node: n, port: p })).collect();
                let lhs = if count == 1 { format!("{},", targets[0]) } else { targets.join(", ") };
                self.push_line(&lhs, &expr);
                for (p, t) in targets.into_iter().enumerate() {
                    let v = ValueRef { node: n, port: p };
                    self.values.insert(v, Val { expr: PyExpr::name(t), layout });
                }
            }
        }
        Ok(())
    }

    /// The value of `v` as it currently is in `forward` (constants become buffers/literals).
    fn value(&mut self, v: ValueRef) -> std::result::Result<Val, String> {
        if let Some(val) = self.values.get(&v) {
            return Ok(val.clone());
        }
        if let Some(t) = self.graph.const_value(v) {
            let t = t.clone();
            let expr = self.constant(v, &t)?;
            let val = Val { expr, layout: Layout::Tf };
            self.values.insert(v, val.clone());
            return Ok(val);
        }
        let node = self.graph.node(v.node);
        Err(format!("input '{}:{}' ({}) has no value in forward", node.name, v.port, node.op))
    }

    /// A constant as a Python expression: a literal for scalars, else a registered buffer.
    fn constant(
        &mut self,
        v: ValueRef,
        t: &crate::tensor::Tensor,
    ) -> std::result::Result<PyExpr, String> {
        if t.rank() == 0 {
            if t.dtype.is_float() {
                return Ok(PyExpr::f64(t.scalar_f64().ok_or("unreadable scalar")?));
            }
            if t.dtype.is_int() {
                return Ok(PyExpr::int(t.to_i64().ok_or("unreadable scalar")?[0]));
            }
        }
        self.buffer(&format!("{}_const", self.scope_of(v.node)), t.clone())
    }

    /// Registers `t` as a buffer named after `hint`; returns `self.<name>`.
    fn buffer(
        &mut self,
        hint: &str,
        t: crate::tensor::Tensor,
    ) -> std::result::Result<PyExpr, String> {
        let dtype =
            t.dtype.torch_name().ok_or_else(|| format!("constant of dtype {:?}", t.dtype))?;
        let name = self.attr_names.fresh(hint);
        self.module.buffers.push(Buffer {
            name: name.clone(),
            shape: t.shape.clone(),
            torch_dtype: dtype,
        });
        self.module.weights.push((name.clone(), Weight::plain(t)));
        Ok(PyExpr::name(format!("self.{name}")))
    }

    /// `v` in `layout`, emitting one permute the first time it is needed.
    fn value_in(&mut self, v: ValueRef, layout: Layout) -> std::result::Result<PyExpr, String> {
        let val = self.value(v)?;
        if val.layout == layout {
            return Ok(val.expr);
        }
        if let Some(e) = self.converted.get(&(v, layout)) {
            return Ok(e.clone());
        }
        if let Some(t) = self.graph.const_value(v) {
            // Constants change layout at conversion time.
            if layout == Layout::Nchw && t.rank() == 4 {
                let e = self.buffer(
                    &format!("{}_const", self.scope_of(v.node)),
                    t.permute(&[0, 3, 1, 2]),
                )?;
                self.converted.insert((v, layout), e.clone());
                return Ok(e);
            }
        }
        let perm: &[i64] = match layout {
            Layout::Nchw => &[0, 3, 1, 2],
            Layout::Tf => &[0, 2, 3, 1],
        };
        let expr =
            val.expr.clone().method("permute", perm.iter().map(|&p| PyExpr::int(p)).collect());
        let last_use = self.remaining.get(&v).copied().unwrap_or(0) <= 1;
        let target = if last_use && (self.x_holder == Some(v) || self.x_is_free()) {
            self.x_holder = Some(v);
            "x".to_string()
        } else {
            let suffix = if layout == Layout::Nchw { "nchw" } else { "nhwc" };
            self.locals.fresh(&format!("{}_{suffix}", identifier(&self.scope_of(v.node))))
        };
        self.push_line(&target, &expr);
        let e = PyExpr::name(target);
        self.converted.insert((v, layout), e.clone());
        Ok(e)
    }

    fn emit_stub(&mut self, n: NodeIndex, reason: String) -> Result<()> {
        let inputs = self.graph.inputs(n);
        let mut args = Vec::new();
        for v in &inputs {
            args.push(self.value_in(*v, Layout::Tf).map_err(|e| {
                let node = self.graph.node(n);
                Error::node(&node.name, &node.op, e)
            })?);
        }
        let (function, site) = self.stubs.register(self.graph, n, reason);
        self.summary.stubs_seen += 1;
        self.consume_inputs(n);
        let count = self.num_outputs(n);
        let targets: Vec<String> =
            (0..count).map(|p| self.target_for(ValueRef { node: n, port: p })).collect();
        let target = if count == 1 { targets[0].clone() } else { targets.join(", ") };
        self.body.push(BodyItem::StubCall { target, function, args, site });
        for (p, t) in targets.into_iter().enumerate() {
            let v = ValueRef { node: n, port: p };
            self.values.insert(v, Val { expr: PyExpr::name(t), layout: Layout::Tf });
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(Module, Summary)> {
        let mut outs = Vec::new();
        for &o in &self.graph.outputs.clone() {
            outs.push(self.value_in(o, Layout::Tf).map_err(Error::msg)?);
        }
        let stub_kwargs = self.stubs.call_kwargs();
        let stmt = |item: BodyItem| match item {
            BodyItem::Line(stmt) => stmt,
            BodyItem::StubCall { target, function, args, site } => Stmt {
                target,
                expr: PyExpr::Call {
                    func: Box::new(PyExpr::name(format!("custom_ops.{function}"))),
                    args,
                    kwargs: stub_kwargs.get(&site).cloned().unwrap_or_default(),
                },
            },
        };
        let mut stmts: Vec<Stmt> = std::mem::take(&mut self.body).into_iter().map(stmt).collect();
        for pending in std::mem::take(&mut self.loops) {
            self.module.methods.push(pending.render(&stmt));
        }
        let outs: Vec<String> = outs.iter().map(|e| e.to_string()).collect();
        self.summary.blocks = blocks::extract(&mut self.module, &mut stmts, &self.spans, &outs);
        chain::chain(&mut stmts, 8, &outs);
        for class in &mut self.module.classes {
            let returns = [class.output.clone()];
            chain::chain(&mut class.body, 8, &returns);
        }
        self.module.body =
            stmts.iter().flat_map(|s| format::assignment(8, &s.target, &s.expr)).collect();
        self.module.return_lines = format::return_values(8, &outs);
        let (stubs, reports) = self.stubs.finish();
        self.module.stubs = stubs;
        self.summary.stubs = reports;
        Ok((self.module, self.summary))
    }
}
