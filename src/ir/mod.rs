//! The graph IR: TensorFlow's dataflow graph on a `petgraph::StableDiGraph`, faithful to TF
//! (op names and attributes as in the file) until the passes rewrite it.
//!
//! Every node keeps its `ordinal`, its position in the source file; ties in any ordering are
//! broken by it, so everything downstream is a pure function of the input bytes.

pub mod attrs;
mod build;
mod constant_conds;
mod dump;
pub mod fused;
mod packed;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;

pub use build::build;
pub use dump::dump;

use crate::proto::AttrValue;
use crate::tensor::{DType, Tensor};

/// A static shape: `None` = unknown rank; per dim `None` = unknown size.
pub type Shape = Option<Vec<Option<usize>>>;

/// What shape inference knows about one output of a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueInfo {
    pub dtype: Option<DType>,
    pub shape: Shape,
}

impl ValueInfo {
    /// `float32 [?, 7, 7, 512]`, `? shape unknown`.
    pub fn describe(&self) -> String {
        let dtype = self.dtype.map_or("?".to_string(), |d| d.to_string());
        let shape = match &self.shape {
            None => "shape unknown".to_string(),
            Some(s) => {
                let dims: Vec<String> =
                    s.iter().map(|d| d.map_or("?".to_string(), |x| x.to_string())).collect();
                format!("[{}]", dims.join(", "))
            }
        };
        format!("{dtype} {shape}")
    }

    /// The size of `axis` when the shape and that size are known.
    pub fn dim(&self, axis: usize) -> Option<usize> {
        self.shape.as_ref().and_then(|s| s.get(axis).copied()).flatten()
    }
}

/// An integer vector (or scalar) known only in part, e.g. `Shape(x)` when the batch size is
/// dynamic: `[None, 7, 7, 512]`. Folding carries these so that `Reshape` targets with a single
/// unknown entry can still be emitted as static numbers with one `-1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Partial {
    pub scalar: bool,
    pub values: Vec<Dim>,
}

/// One entry of a [`Partial`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dim {
    Known(i64),
    /// Size of TF axis `.1` of value `.0`, known only at run time.
    Of(ValueRef, usize),
    Unknown,
}

impl Dim {
    pub fn known(self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(v),
            _ => None,
        }
    }
}

/// The names passes give values (`Node::role`): attention's query, key, value, mask and bias,
/// rotary embeddings' cos and sin, their angles and the frequencies doubled into them, a
/// classifier's logits.
pub const ROLES: [&str; 10] =
    ["q", "k", "v", "mask", "bias", "cos", "sin", "angles", "freqs", "logits"];

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: String,
    pub attrs: BTreeMap<String, AttrValue>,
    /// Position in the source file.
    pub ordinal: usize,
    /// The value of a `Const` (or of a folded node).
    pub value: Option<Tensor>,
    /// Partially known integer value (see [`Partial`]).
    pub partial: Option<Partial>,
    /// Per output port, filled by shape inference.
    pub outputs: Vec<ValueInfo>,
    /// What a synthetic op (one the passes created) computes; see [`fused`].
    pub fused: Option<fused::Fused>,
    /// Short names a pass gave the values, by output port (`q`, `mask`; `q`, `k`, `v` of a
    /// split): their local names in `forward`. Each one of [`ROLES`]. See [`Node::role`].
    pub roles: Vec<Option<&'static str>>,
    /// `outputs` is an assumption: an op without a translation taken to keep its first
    /// input's rank and dtype (`passes::fold`).
    pub assumed: bool,
    /// A constant computed from single values and integers only (`range`, `pow`, shapes): a
    /// table the model computes, such as sinusoid frequencies, not a weight it stores.
    pub generated: bool,
    /// A computation several scopes share, computed once for all (`passes::cse`): `forward`
    /// computes it before the first of them, not inside it.
    pub shared: bool,
    /// A constant the model trained: a variable, frozen or restored (see `build`). What
    /// `forward` reads of it directly is an `nn.Parameter`, never a literal, and two equal
    /// ones stay two.
    pub variable: bool,
    /// A constant folded from a trained one only laid out anew or cut into parts
    /// (`ops.expand_dims(self.latents, 0)`, a reshaped scale, one gate's quarter of a split
    /// LSTM bias), or a loop's copy of one, and that variable's node name: still a trained
    /// value, an `nn.Parameter` where `forward` reads it (a buffer if the name says it is a
    /// running statistic), but no variable of the graph's for naming scopes and layers.
    pub trained_from: Option<String>,
}

impl Node {
    pub fn new(name: impl Into<String>, op: impl Into<String>, ordinal: usize) -> Node {
        Node {
            name: name.into(),
            op: op.into(),
            attrs: BTreeMap::new(),
            ordinal,
            value: None,
            partial: None,
            outputs: Vec::new(),
            fused: None,
            roles: Vec::new(),
            assumed: false,
            generated: false,
            shared: false,
            variable: false,
            trained_from: None,
        }
    }

    /// A trained constant, or one laid out anew from it: a weight, never a literal.
    pub fn is_trained(&self) -> bool {
        self.variable || self.trained_from.is_some()
    }

    /// The name of the variable this constant is, or was folded from (see `trained_from`).
    pub fn trained_name(&self) -> Option<String> {
        if self.variable { Some(self.name.clone()) } else { self.trained_from.clone() }
    }

    /// The name a pass gave output `port` (see [`ROLES`]).
    pub fn role(&self, port: usize) -> Option<&'static str> {
        self.roles.get(port).copied().flatten()
    }

    /// Names output `port` `role`, one of [`ROLES`]; `None` forgets its name.
    pub fn set_role(&mut self, port: usize, role: Option<&'static str>) {
        debug_assert!(role.is_none_or(|r| ROLES.contains(&r)), "{role:?}");
        if self.roles.len() <= port {
            self.roles.resize(port + 1, None);
        }
        self.roles[port] = role;
    }

    pub fn constant(name: impl Into<String>, value: Tensor, ordinal: usize) -> Node {
        let mut n = Node::new(name, "Const", ordinal);
        n.outputs = vec![ValueInfo {
            dtype: Some(value.dtype),
            shape: Some(value.shape.iter().map(|&d| Some(d)).collect()),
        }];
        // A single value, or integers (shapes, axes, indices), is as much part of a table as
        // of a weight: what the constant computes from it decides.
        n.generated = value.numel() <= 1 || value.dtype.is_int();
        n.value = Some(value);
        n
    }

    /// Whether this is a constant computed from single values (see [`Node::generated`]).
    pub fn is_generated(&self) -> bool {
        self.value.is_some() && self.generated
    }
}

/// Data edge: output `port` of the source feeds input `slot` of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub port: usize,
    pub slot: usize,
}

/// One output of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueRef {
    pub node: NodeIndex,
    pub port: usize,
}

/// The ops whose size input may become a constant known in part (see
/// `passes::fold`): that input's slot and the op's own input count (the values
/// the sizes are read from follow).
pub fn target_slot(op: &str) -> Option<(usize, usize)> {
    Some(match op {
        // -1 cannot stand for a new leading axis in `expand`: run-time sizes are always named.
        "Reshape" | "BroadcastTo" => (1, 2),
        "Fill" => (0, 2),
        "Slice" => (2, 3),
        "Conv2DBackpropInput" => (0, 3),
        "ResizeBilinear" | "ResizeNearestNeighbor" => (1, 2),
        _ => return None,
    })
}

/// Whether an op `op` reading a value at `slot` takes only its size: a shape op, or an op
/// whose sizes were read at run time from values after its own inputs (see
/// [`target_slot`]: a reshape to `concat.shape[0]` reads `concat` so).
pub fn reads_only_size(op: &str, slot: usize) -> bool {
    matches!(op, "Shape" | "Size" | "Rank") || target_slot(op).is_some_and(|(_, own)| slot >= own)
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub g: StableDiGraph<Node, Edge>,
    /// Model inputs in `forward` order.
    pub inputs: Vec<ValueRef>,
    /// Model outputs in return order.
    pub outputs: Vec<ValueRef>,
    /// For each value, the nodes whose partial value reads its size (`Dim::Of`), so that
    /// replacing the value updates them without visiting every node.
    size_readers: BTreeMap<ValueRef, Vec<NodeIndex>>,
    /// What the converter may still create in constants beyond what the file holds (shared
    /// with loop bodies).
    pub budget: ExpansionBudget,
    /// Names of the variables the model keeps but does not train (a SavedModel's
    /// `trainable: false`; a frozen graph cannot tell): what `forward` reads of one, or of a
    /// constant folded from one (`Node::trained_name`), is a buffer, not an `nn.Parameter`.
    pub untrained: BTreeSet<String>,
}

/// Bytes of constants the converter may create that the file does not hold (splats
/// expanded, constants folded into larger ones). A few bytes of file can ask for gigabytes;
/// past this budget such values stay run-time ops (`Fill`, the op itself) instead.
#[derive(Clone, Debug)]
pub struct ExpansionBudget(std::sync::Arc<std::sync::atomic::AtomicUsize>);

/// [`ExpansionBudget`]'s size for one conversion.
pub const EXPANSION_BUDGET: usize = 256 << 20;

impl Default for ExpansionBudget {
    fn default() -> Self {
        ExpansionBudget(std::sync::Arc::new(EXPANSION_BUDGET.into()))
    }
}

impl ExpansionBudget {
    /// Takes `bytes` from the budget; `false` (and nothing taken) when that would overdraw it.
    pub fn take(&self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.fetch_update(Relaxed, Relaxed, |left| left.checked_sub(bytes)).is_ok()
    }
}

impl Graph {
    /// Whether `v` is a value the graph computes that no pass has named yet: what a pass
    /// may name by its role (not a model input, a constant, or a value named already).
    pub fn is_unnamed_computed(&self, v: ValueRef) -> bool {
        let p = self.node(v.node);
        p.role(v.port).is_none() && p.op != "Placeholder" && p.value.is_none()
    }

    /// Names `v` by `role` (see [`ROLES`]) where [`Self::is_unnamed_computed`].
    pub fn name_computed(&mut self, v: ValueRef, role: &'static str) {
        if self.is_unnamed_computed(v) {
            self.node_mut(v.node).set_role(v.port, Some(role));
        }
    }

    pub fn node(&self, n: NodeIndex) -> &Node {
        &self.g[n]
    }

    pub fn node_mut(&mut self, n: NodeIndex) -> &mut Node {
        &mut self.g[n]
    }

    /// Data inputs of `n`, ordered by slot.
    pub fn inputs(&self, n: NodeIndex) -> Vec<ValueRef> {
        let mut v: Vec<(usize, ValueRef)> = self
            .g
            .edges_directed(n, Direction::Incoming)
            .map(|e| (e.weight().slot, ValueRef { node: e.source(), port: e.weight().port }))
            .collect();
        v.sort();
        v.into_iter().map(|(_, r)| r).collect()
    }

    /// `(consumer, slot)` pairs reading output `port` of `n`, in a stable order.
    pub fn consumers(&self, v: ValueRef) -> Vec<(NodeIndex, usize)> {
        let mut c: Vec<(usize, NodeIndex, usize)> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().port == v.port)
            .map(|e| (self.g[e.target()].ordinal, e.target(), e.weight().slot))
            .collect();
        c.sort();
        c.into_iter().map(|(_, n, s)| (n, s)).collect()
    }

    /// How many input slots (plus graph outputs) read `v`.
    pub fn use_count(&self, v: ValueRef) -> usize {
        self.consumers(v).len() + self.outputs.iter().filter(|&&o| o == v).count()
    }

    pub fn add_node(&mut self, node: Node) -> NodeIndex {
        self.g.add_node(node)
    }

    pub fn connect(&mut self, src: ValueRef, dst: NodeIndex, slot: usize) -> EdgeIndex {
        self.g.add_edge(src.node, dst, Edge { port: src.port, slot })
    }

    /// Makes slot `slot` of `n` read `v` (replacing what it read, if anything).
    pub fn set_input(&mut self, n: NodeIndex, slot: usize, v: ValueRef) {
        let old = self.g.edges_directed(n, Direction::Incoming).find(|e| e.weight().slot == slot);
        if let Some(e) = old.map(|e| e.id()) {
            self.g.remove_edge(e);
        }
        self.connect(v, n, slot);
    }

    /// Makes every reader of `old` (edges and graph outputs) read `new` instead.
    pub fn replace_uses(&mut self, old: ValueRef, new: ValueRef) {
        let edges: Vec<(EdgeIndex, NodeIndex, usize)> = self
            .g
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().port == old.port)
            .map(|e| (e.id(), e.target(), e.weight().slot))
            .collect();
        for (e, target, slot) in edges {
            self.g.remove_edge(e);
            self.g.add_edge(new.node, target, Edge { port: new.port, slot });
        }
        for o in self.outputs.iter_mut().chain(self.inputs.iter_mut()) {
            if *o == old {
                *o = new;
            }
        }
        // Run-time sizes read from `old` (`Dim::Of`) are read from `new` now.
        for n in self.size_readers.remove(&old).unwrap_or_default() {
            if let Some(p) = self.g.node_weight_mut(n).and_then(|node| node.partial.as_mut()) {
                for d in &mut p.values {
                    if let Dim::Of(v, _) = d
                        && *v == old
                    {
                        *v = new;
                    }
                }
                self.size_readers.entry(new).or_default().push(n);
            }
        }
    }

    /// Sets node `n`'s partly known value (see [`Partial`]).
    pub fn set_partial(&mut self, n: NodeIndex, p: Partial) {
        for d in &p.values {
            if let Dim::Of(v, _) = d {
                self.size_readers.entry(*v).or_default().push(n);
            }
        }
        self.g[n].partial = Some(p);
    }

    /// Removes all incoming edges of `n` (used when a node is folded into a constant).
    pub fn clear_inputs(&mut self, n: NodeIndex) {
        self.clear_inputs_from(n, 0);
    }

    /// Removes the incoming edges of `n` into slots `from` and after.
    pub fn clear_inputs_from(&mut self, n: NodeIndex, from: usize) {
        let edges: Vec<EdgeIndex> = self
            .g
            .edges_directed(n, Direction::Incoming)
            .filter(|e| e.weight().slot >= from)
            .map(|e| e.id())
            .collect();
        for e in edges {
            self.g.remove_edge(e);
        }
    }

    /// Replaces `n` by a constant holding `value`, keeping its name and ordinal; `generated`:
    /// computed from single values only (see [`Node::generated`]).
    pub fn make_const(&mut self, n: NodeIndex, value: Tensor, generated: bool) {
        self.clear_inputs(n);
        let old = &self.g[n];
        let mut c = Node::constant(old.name.clone(), value, old.ordinal);
        c.generated |= generated;
        self.g[n] = c;
    }

    /// Whether every constant among `inputs` is computed from single values (the others, read
    /// for their shapes only, carry no stored data).
    pub fn all_generated(&self, inputs: &[ValueRef]) -> bool {
        inputs.iter().all(|v| self.const_value(*v).is_none() || self.g[v.node].generated)
    }

    /// Stable topological order: Kahn's algorithm with a min-heap on `ordinal`.
    /// Returns `Err(node)` naming a node on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeIndex>, NodeIndex> {
        let mut indeg: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for n in self.g.node_indices() {
            indeg.insert(n, self.g.edges_directed(n, Direction::Incoming).count());
        }
        let mut heap: BinaryHeap<Reverse<(usize, NodeIndex)>> = indeg
            .iter()
            .filter(|&(_, &d)| d == 0)
            .map(|(&n, _)| Reverse((self.g[n].ordinal, n)))
            .collect();
        let mut order = Vec::with_capacity(indeg.len());
        while let Some(Reverse((_, n))) = heap.pop() {
            order.push(n);
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let t = e.target();
                let d = indeg.get_mut(&t).expect("edge target is a node");
                *d -= 1;
                if *d == 0 {
                    heap.push(Reverse((self.g[t].ordinal, t)));
                }
            }
        }
        if order.len() != indeg.len() {
            let stuck = indeg
                .iter()
                .filter(|&(_, &d)| d > 0)
                .map(|(&n, _)| (self.g[n].ordinal, n))
                .min()
                .map(|(_, n)| n)
                .expect("a cycle leaves a node with positive in-degree");
            return Err(stuck);
        }
        Ok(order)
    }

    /// Output info of a value (default when shape inference has not filled it).
    pub fn info(&self, v: ValueRef) -> ValueInfo {
        self.g[v.node].outputs.get(v.port).cloned().unwrap_or_default()
    }

    /// The constant value of `v`, if it is output 0 of a constant node.
    pub fn const_value(&self, v: ValueRef) -> Option<&Tensor> {
        if v.port == 0 { self.g[v.node].value.as_ref() } else { None }
    }

    /// Looks a node up by name (linear; used by the CLI for `--inputs/--outputs`).
    pub fn find(&self, name: &str) -> Option<NodeIndex> {
        self.g.node_indices().find(|&n| self.g[n].name == name)
    }
}
