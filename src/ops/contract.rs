//! The contract between translators and lowering: what a translator sees ([`Ctx`]), what it
//! returns ([`Lowered`]), and how it fails ([`TranslateError`]). Lowering implements [`Host`];
//! translators never see the lowerer itself, so `ops` does not depend on `lower`.

use petgraph::stable_graph::NodeIndex;

use crate::ir::fused::Fused;
use crate::ir::{Graph, Node, Partial, ValueInfo, ValueRef};
use crate::py::Expr;
use crate::tensor::Tensor;
use crate::weights::Weight;

/// Why a node could not be translated; the message becomes the stub's "Reason".
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("no translation for this op")]
    NoTranslation,
    #[error("expected an input #{0}")]
    MissingInput(usize),
    #[error("input #{0} must be a constant")]
    NotConstant(usize),
    #[error("input #{0} must hold integers")]
    NotIntegers(usize),
    #[error("input rank must be known")]
    UnknownRank,
    #[error("input #{0} must have rank 3 to 5 to be used channels-first")]
    NotChannelsFirstRank(usize),
    /// A malformed or missing attribute (the message names it).
    #[error(transparent)]
    Attr(#[from] crate::error::Error),
    #[error("{0}")]
    Unsupported(String),
}

impl From<String> for TranslateError {
    fn from(s: String) -> Self {
        TranslateError::Unsupported(s)
    }
}

impl From<&str> for TranslateError {
    fn from(s: &str) -> Self {
        TranslateError::Unsupported(s.to_string())
    }
}

pub type OpResult<T> = std::result::Result<T, TranslateError>;

/// Where a value's axes are. `ChannelsFirst` is used for values of rank 3 to 5 that TF sees
/// channels-last (NWC, NHWC, NDHWC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layout {
    /// Same axis order as in TensorFlow.
    Tf,
    /// TF's channels-last value stored channels-first: NCW, NCHW or NCDHW (`permute(0, 3, 1,
    /// 2)` of a TF NHWC value), as torch's layers want them.
    ChannelsFirst,
    /// A TF integer scalar or vector held as a Python int or a tuple of them (`x.shape`,
    /// `x.shape[0] * 2`): sizes, as a person writes them. Converted to a tensor
    /// (`torch.tensor(...)`) where an op needs one.
    Host,
}

/// TF axis `a` of a channels-last value of `rank` → its axis in the channels-first tensor.
pub fn channels_first_axis(a: usize, rank: usize) -> usize {
    match a {
        0 => 0,
        a if a + 1 == rank => 1,
        a => a + 1,
    }
}

/// The permutation from TF's channels-last order to channels-first (`[0, 3, 1, 2]` at rank 4),
/// and back (`[0, 2, 3, 1]`).
pub fn to_channels_first(rank: usize) -> Vec<i64> {
    let r = rank as i64;
    [0, r - 1].into_iter().chain(1..r - 1).collect()
}

pub fn to_channels_last(rank: usize) -> Vec<i64> {
    let r = rank as i64;
    std::iter::once(0).chain(2..r).chain([1]).collect()
}

/// Whether a value of this rank can be held channels-first.
pub fn channels_first_rank(rank: Option<usize>) -> bool {
    matches!(rank, Some(3..=5))
}

/// A value available in `forward`: the expression that holds it and its layout.
#[derive(Clone, Debug)]
pub struct Val {
    pub expr: Expr,
    pub layout: Layout,
}

/// A step applied to a layer's result: `[index]` or `.method(args)`.
#[derive(Clone, Debug)]
pub enum Access {
    Item(Expr),
    Method(&'static str, Vec<Expr>),
}

/// `expr` followed by each access in turn.
pub fn access(expr: Expr, steps: Vec<Access>) -> Expr {
    steps.into_iter().fold(expr, |e, a| match a {
        Access::Item(i) => e.index(i),
        Access::Method(m, args) => e.method(m, args),
    })
}

/// The shape of a tuple assignment target: `y, (h, c)` is
/// `Tuple([Slot(0), Tuple([Slot(1), Slot(2)])])`.
#[derive(Clone, Debug)]
pub enum Unpack {
    Slot(usize),
    Tuple(Vec<Unpack>),
}

/// How [`Lowered::LayerWith`] builds its forward expression from the layer (`self.<name>`).
pub type LayerUse = Box<dyn FnOnce(Expr) -> Expr>;

/// What a translator produces for one node.
pub enum Lowered {
    /// `self.<name> = ctor` in `__init__`; `y = self.<name>(args)` then `post` in `forward`.
    /// `params` are the module's state_dict entries relative to it (`weight`, `bias`, ...).
    Layer {
        ctor: Expr,
        params: Vec<(&'static str, Weight)>,
        args: Vec<Expr>,
        layout: Layout,
        post: Vec<Access>,
    },
    /// A layer returning (nested) tuples, unpacked into fresh names: `y, (h, c) = self.lstm(x)`.
    /// Output `p` of the node is slot `views[p].0` followed by `views[p].1`.
    LayerUnpack {
        ctor: Expr,
        params: Vec<(&'static str, Weight)>,
        args: Vec<Expr>,
        pattern: Unpack,
        views: Vec<(usize, Vec<Access>)>,
    },
    /// A layer used through an expression of its own rather than by a call: `self.<name> =
    /// ctor` in `__init__`, `y = call(self.<name>)` in `forward` (its weights passed to a
    /// helper function).
    LayerWith { ctor: Expr, params: Vec<(&'static str, Weight)>, call: LayerUse, layout: Layout },
    /// `y = expr`.
    Expr { expr: Expr, layout: Layout },
    /// `a, b, ... = expr` for ops with several outputs.
    Multi { expr: Expr, layout: Layout },
    /// [`Lowered::Multi`] giving only outputs `ports`, in that order (a loop's counter, which
    /// nothing reads after it, is not returned); one port is `y = expr`.
    MultiPorts { expr: Expr, layout: Layout, ports: Vec<usize> },
    /// [`Lowered::Multi`], output `p` read through `views[p]` (`indices.int()`: TF's dtype).
    MultiViews { expr: Expr, views: Vec<Vec<Access>> },
    /// Output 0 is input `i` unchanged.
    Alias(usize),
    /// Output 0 is input `i`'s tensor, seen by TF in another layout (a transpose that only
    /// undoes the NCHW storage order).
    Relabel(usize, Layout),
}

/// What lowering offers translators.
pub trait Host<'g> {
    fn graph(&self) -> &'g Graph;
    /// The value of `v` as `forward` holds it (constants become buffers or literals).
    fn value(&mut self, v: ValueRef) -> OpResult<Val>;
    /// `v` in `layout`, emitting one permute the first time it is needed.
    fn value_in(&mut self, v: ValueRef, layout: Layout) -> OpResult<Expr>;
    /// Whether `v` is already held in `layout` (as it is, or converted before).
    fn held_in(&self, v: ValueRef, layout: Layout) -> bool;
    /// Whether `v` is a list a loop set every item of (no item is missing from its stack).
    fn filled_list(&self, v: ValueRef) -> bool;
    /// Registers `t` as a buffer named after node `owner`'s scope and `suffix`: `self.<name>`.
    fn buffer(&mut self, owner: NodeIndex, suffix: &str, t: Tensor) -> OpResult<Expr>;
    /// Constant `v` held as `t` (its values laid out as an op reads them): an
    /// `nn.Parameter` where the model trained it (see `ir::Node::variable`), else a buffer
    /// named after node `owner`'s scope and `suffix`.
    fn constant_as(
        &mut self,
        owner: NodeIndex,
        v: ValueRef,
        suffix: &str,
        t: Tensor,
    ) -> OpResult<Expr>;
    /// Constant `v` as it is, registered the first time as a buffer named after node
    /// `owner`'s scope and `suffix` (`self.id_lookup_keys`), the same buffer after.
    fn constant_named(&mut self, owner: NodeIndex, v: ValueRef, suffix: &str) -> OpResult<Expr>;
    /// Makes `model.py` define the fixed helper class `name` (once).
    fn require_class(&mut self, name: &'static str, source: &'static str);
}

/// What a translator sees: its node, its inputs (as constants, static info, or Python
/// expressions in the layout it asks for) and helpers to name things.
pub struct Ctx<'h, 'g> {
    host: &'h mut dyn Host<'g>,
    pub id: NodeIndex,
    inputs: Vec<ValueRef>,
}

impl<'h, 'g> Ctx<'h, 'g> {
    pub fn new(host: &'h mut dyn Host<'g>, id: NodeIndex) -> Self {
        let inputs = host.graph().inputs(id);
        Ctx { host, id, inputs }
    }

    fn graph(&self) -> &'g Graph {
        self.host.graph()
    }

    pub fn node(&self) -> &'g Node {
        self.graph().node(self.id)
    }

    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    pub(crate) fn input_ref(&self, i: usize) -> OpResult<ValueRef> {
        self.inputs.get(i).copied().ok_or(TranslateError::MissingInput(i))
    }

    /// Input `i` as a constant, or an error saying it must be one.
    pub fn const_input(&self, i: usize) -> OpResult<&'g Tensor> {
        let v = self.input_ref(i)?;
        self.graph().const_value(v).ok_or(TranslateError::NotConstant(i))
    }

    /// What reads this node's first output: each reader's op and the input slot it reads.
    pub fn readers(&self) -> Vec<(&'g str, usize)> {
        let g = self.graph();
        let out = crate::ir::ValueRef { node: self.id, port: 0 };
        g.consumers(out).into_iter().map(|(n, slot)| (g.node(n).op.as_str(), slot)).collect()
    }

    pub fn is_const(&self, i: usize) -> bool {
        self.inputs.get(i).is_some_and(|&v| self.graph().const_value(v).is_some())
    }

    /// Whether input `i` is a constant the model stores, a weight: not one it computes from
    /// single values (sinusoid frequencies from `range` and `pow`), which a layer would make
    /// trainable.
    pub fn is_weight(&self, i: usize) -> bool {
        self.inputs.get(i).is_some_and(|&v| {
            self.graph().const_value(v).is_some() && !self.graph().node(v.node).generated
        })
    }

    /// Integer values of constant input `i`.
    pub fn const_ints(&self, i: usize) -> OpResult<Vec<i64>> {
        self.const_input(i)?.to_i64().ok_or(TranslateError::NotIntegers(i))
    }

    /// The partly known value of input `i` (see `ir::Partial`).
    pub fn partial(&self, i: usize) -> Option<&'g Partial> {
        let v = self.inputs.get(i)?;
        if v.port == 0 { self.graph().node(v.node).partial.as_ref() } else { None }
    }

    /// Which input slot reads `v`, if any.
    pub fn slot_of(&self, v: ValueRef) -> Option<usize> {
        self.inputs.iter().position(|&x| x == v)
    }

    pub fn info(&self, i: usize) -> ValueInfo {
        self.inputs.get(i).map(|&v| self.graph().info(v)).unwrap_or_default()
    }

    pub fn rank(&self, i: usize) -> Option<usize> {
        self.info(i).shape.map(|s| s.len())
    }

    pub fn out_info(&self, port: usize) -> ValueInfo {
        self.graph().info(ValueRef { node: self.id, port })
    }

    /// Whether input `i` is at hand in `layout` without a new conversion.
    /// Whether input `i` is a list a loop set every item of.
    pub fn filled_list(&self, i: usize) -> bool {
        self.inputs.get(i).is_some_and(|&v| self.host.filled_list(v))
    }

    pub fn held_in(&self, i: usize, layout: Layout) -> bool {
        self.inputs.get(i).is_some_and(|&v| self.host.held_in(v, layout))
    }

    /// The layout input `i` currently has (constants are in TF layout).
    pub fn layout(&mut self, i: usize) -> OpResult<Layout> {
        let v = self.input_ref(i)?;
        Ok(self.host.value(v)?.layout)
    }

    /// Input `i` in whatever layout it has.
    pub fn input(&mut self, i: usize) -> OpResult<Val> {
        let v = self.input_ref(i)?;
        self.host.value(v)
    }

    /// Input `i` in `layout` (a permute is emitted once if needed).
    pub fn input_in(&mut self, i: usize, layout: Layout) -> OpResult<Expr> {
        let v = self.input_ref(i)?;
        if layout == Layout::ChannelsFirst && !channels_first_rank(self.rank(i)) {
            return Err(TranslateError::NotChannelsFirstRank(i));
        }
        self.host.value_in(v, layout)
    }

    pub fn input_tf(&mut self, i: usize) -> OpResult<Expr> {
        self.input_in(i, Layout::Tf)
    }

    pub fn input_channels_first(&mut self, i: usize) -> OpResult<Expr> {
        self.input_in(i, Layout::ChannelsFirst)
    }

    /// The scalars input `i` packs (see `passes::packed_bounds`), in order.
    pub fn packed_entries(&self, i: usize) -> Option<Vec<ValueRef>> {
        self.graph().packed_entries(*self.inputs.get(i)?)
    }

    /// The node producing input `i`.
    pub fn producer(&self, i: usize) -> Option<&'g Node> {
        let v = self.inputs.get(i)?;
        Some(self.graph().node(v.node))
    }

    /// The constant bias `passes::fuse_bias` fused into this node, if any (in the input slot
    /// the op's registry row declares), as a vector of `channels` values.
    pub fn bias(&self, channels: usize) -> OpResult<Option<Tensor>> {
        let Some(slot) = self.bias_slot() else { return Ok(None) };
        let b = self.const_input(slot)?;
        // A file may put anything in the slot `passes::fuse_bias` fills.
        if b.numel() != channels || !b.dtype.is_float() {
            let (shape, dtype) = (&b.shape, b.dtype);
            return Err(
                format!("a {dtype:?} bias of shape {shape:?} for {channels} channels").into()
            );
        }
        Ok(Some(b.reshaped(vec![channels])))
    }

    /// The fused bias of a functional op (one whose weights are no layer's): a parameter if
    /// the model trained it (see [`Ctx::constant_as`]).
    pub fn bias_expr(&mut self, channels: usize) -> OpResult<Option<Expr>> {
        let Some(b) = self.bias(channels)? else { return Ok(None) };
        let slot = self.bias_slot().ok_or("no bias slot")?;
        self.constant_as(slot, "bias", b).map(Some)
    }

    /// Whether the node has an input in its op's bias slot.
    pub fn has_bias(&self) -> bool {
        self.bias_slot().is_some()
    }

    fn bias_slot(&self) -> Option<usize> {
        let slot = crate::ops::lookup(&self.node().op).and_then(|d| d.bias_slot)?;
        (slot < self.num_inputs()).then_some(slot)
    }

    /// The payload of a synthetic op (one the passes created).
    pub fn fused(&self) -> OpResult<&'g Fused> {
        self.node().fused.as_ref().ok_or_else(|| "a synthetic op without its parameters".into())
    }

    /// Makes `model.py` define the fixed helper class `name` (once).
    pub fn require_class(&mut self, name: &'static str, source: &'static str) {
        self.host.require_class(name, source);
    }

    /// Whether anything reads output `port` of this node.
    pub fn output_used(&self, port: usize) -> bool {
        self.graph().use_count(ValueRef { node: self.id, port }) > 0
    }

    /// Registers a constant tensor as a buffer named after this node's scope.
    pub fn buffer(&mut self, suffix: &str, t: Tensor) -> OpResult<Expr> {
        self.host.buffer(self.id, suffix, t)
    }

    /// Constant input `i` held as `t`, its values laid out as this op reads them: a parameter
    /// if the model trained it, else a buffer named after this node's scope and `suffix` (see
    /// [`Host::constant_as`]).
    pub fn constant_as(&mut self, i: usize, suffix: &str, t: Tensor) -> OpResult<Expr> {
        let v = self.input_ref(i)?;
        self.host.constant_as(self.id, v, suffix, t)
    }

    /// Constant input `i` as a buffer named after this node's scope and `suffix` (see
    /// [`Host::constant_named`]).
    pub fn constant_named(&mut self, i: usize, suffix: &str) -> OpResult<Expr> {
        let v = self.input_ref(i)?;
        self.host.constant_named(self.id, v, suffix)
    }

    /// Whether input `i` is a constant the model trained (see `ir::Node::is_trained`).
    pub fn is_trained(&self, i: usize) -> bool {
        self.inputs.get(i).is_some_and(|&v| self.graph().node(v.node).is_trained())
    }
}
