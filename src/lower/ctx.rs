//! What a translator sees: its node, its inputs (as constants, static info, or Python
//! expressions in the layout it asks for) and helpers to name things.

use petgraph::stable_graph::NodeIndex;

use crate::ir::{Node, ValueInfo, ValueRef};
use crate::py::PyExpr;
use crate::tensor::Tensor;

use super::{Layout, Lowerer, Val};

pub type OpResult<T> = std::result::Result<T, String>;

pub struct Ctx<'l, 'a> {
    low: &'l mut Lowerer<'a>,
    pub id: NodeIndex,
    inputs: Vec<ValueRef>,
}

impl<'l, 'a> Ctx<'l, 'a> {
    pub(super) fn new(low: &'l mut Lowerer<'a>, id: NodeIndex) -> Self {
        let inputs = low.graph.inputs(id);
        Ctx { low, id, inputs }
    }

    pub fn node(&self) -> &'a Node {
        self.low.graph.node(self.id)
    }

    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    fn input_ref(&self, i: usize) -> OpResult<ValueRef> {
        self.inputs.get(i).copied().ok_or_else(|| format!("expected an input #{i}"))
    }

    /// Input `i` as a constant, or an error saying it must be one.
    pub fn const_input(&self, i: usize) -> OpResult<&'a Tensor> {
        let v = self.input_ref(i)?;
        self.low.graph.const_value(v).ok_or_else(|| format!("input #{i} must be a constant"))
    }

    pub fn is_const(&self, i: usize) -> bool {
        self.inputs.get(i).is_some_and(|&v| self.low.graph.const_value(v).is_some())
    }

    /// Integer values of constant input `i`.
    pub fn const_ints(&self, i: usize) -> OpResult<Vec<i64>> {
        self.const_input(i)?.to_i64().ok_or_else(|| format!("input #{i} must hold integers"))
    }

    /// The partly known value of input `i` (see `ir::Partial`).
    pub fn partial(&self, i: usize) -> Option<&'a crate::ir::Partial> {
        let v = self.inputs.get(i)?;
        let graph: &'a crate::ir::Graph = self.low.graph;
        if v.port == 0 { graph.node(v.node).partial.as_ref() } else { None }
    }

    /// Which input slot reads `v`, if any.
    pub fn slot_of(&self, v: ValueRef) -> Option<usize> {
        self.inputs.iter().position(|&x| x == v)
    }

    pub fn info(&self, i: usize) -> ValueInfo {
        self.inputs.get(i).map(|&v| self.low.graph.info(v)).unwrap_or_default()
    }

    pub fn rank(&self, i: usize) -> Option<usize> {
        self.info(i).shape.map(|s| s.len())
    }

    pub fn out_info(&self, port: usize) -> ValueInfo {
        self.low.graph.info(ValueRef { node: self.id, port })
    }

    /// The layout input `i` currently has (constants are in TF layout).
    pub fn layout(&mut self, i: usize) -> OpResult<Layout> {
        let v = self.input_ref(i)?;
        Ok(self.low.value(v)?.layout)
    }

    /// Input `i` in whatever layout it has.
    pub fn input(&mut self, i: usize) -> OpResult<Val> {
        let v = self.input_ref(i)?;
        self.low.value(v)
    }

    /// Input `i` in `layout` (a permute is emitted once if needed).
    pub fn input_in(&mut self, i: usize, layout: Layout) -> OpResult<PyExpr> {
        let v = self.input_ref(i)?;
        if layout == Layout::Nchw && self.rank(i) != Some(4) {
            return Err(format!("input #{i} must have rank 4 to be used as NCHW"));
        }
        self.low.value_in(v, layout)
    }

    pub fn input_tf(&mut self, i: usize) -> OpResult<PyExpr> {
        self.input_in(i, Layout::Tf)
    }

    pub fn input_nchw(&mut self, i: usize) -> OpResult<PyExpr> {
        self.input_in(i, Layout::Nchw)
    }

    /// The op of the node producing input `i`.
    pub fn producer_op(&self, i: usize) -> Option<&'a str> {
        let v = self.inputs.get(i)?;
        Some(self.low.graph.node(v.node).op.as_str())
    }

    /// Makes `model.py` define the helper class `name` (once).
    pub fn require_class(&mut self, name: &str, source: &str) {
        let support = &mut self.low.module.support;
        if !support.iter().any(|(n, _)| n == name) {
            support.push((name.to_string(), source.to_string()));
        }
    }

    /// Whether anything reads output `port` of this node.
    pub fn output_used(&self, port: usize) -> bool {
        self.low.graph.use_count(ValueRef { node: self.id, port }) > 0
    }

    /// Registers a constant tensor as a buffer named after this node's scope.
    pub fn buffer(&mut self, suffix: &str, t: Tensor) -> OpResult<PyExpr> {
        let hint = format!("{}_{suffix}", self.low.scope_of(self.id));
        self.low.buffer(&hint, t)
    }
}
