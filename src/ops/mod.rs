//! The translation registry: one file per op family, each a `const OPS: &[OpDef]` table.
//!
//! A row names a TF op and says how to lower it to PyTorch; optionally how to infer its output
//! shapes and how to fold it when its inputs are constants. Adding an op touches one family
//! file. An op with no row, or whose `lower` returns an error, becomes a stub in
//! `custom_ops.py`: never a panic.

mod activation;
mod attention;
mod cast;
pub mod contract;
mod conv;
mod ctc;
mod dense;
mod detection;
mod elementwise;
mod fft;
mod gather;
mod image;
mod image_transform;
mod linalg;
mod loss;
mod matrix;
mod norm;
mod pad;
mod partition;
mod pool;
mod quantize;
mod ragged;
mod random;
mod recurrent;
mod reduce;
mod resize;
mod scan;
mod scatter;
mod sets;
mod shape;
mod signal;
pub mod sizes;
mod slice;
mod space_batch;
mod sparse;
mod stack;
mod table;
mod update_slice;
pub mod util;
mod window;

pub(crate) use cast::QUANTIZED_TABLE_MIN;
pub use contract::{Ctx, Layout, Lowered, OpResult, TranslateError};
pub use gather::einsum_dense_form;

use crate::ir::{Dim, Node, Partial, ValueInfo, ValueRef};
use crate::tensor::Tensor;

pub type LowerFn = fn(&mut Ctx) -> OpResult<Lowered>;
pub type InferFn = fn(&OpInputs) -> Option<Vec<ValueInfo>>;
pub type FoldFn = fn(&OpInputs) -> Option<Folded>;

/// More axes than any real tensor has (TF's own limit is 254): a size vector longer than this
/// is not taken as a shape.
pub const MAX_RANK: usize = 256;

/// What a node's inputs are known to be, for shape inference and folding.
pub struct OpInputs<'a> {
    pub node: &'a Node,
    pub refs: Vec<ValueRef>,
    pub infos: Vec<ValueInfo>,
    pub consts: Vec<Option<&'a Tensor>>,
    pub partials: Vec<Option<&'a Partial>>,
    /// Per input, whether it is a trained constant (`Node::variable`): what a fold of it would
    /// make is no longer a parameter, so value-changing folds leave such inputs alone.
    pub variables: Vec<bool>,
}

impl OpInputs<'_> {
    /// Whether any input is a trained constant (see [`OpInputs::variables`]).
    pub fn reads_variable(&self) -> bool {
        self.variables.iter().any(|&v| v)
    }

    /// Integer values of input `i`, known or partly known (`None` entries unknown).
    pub fn ints(&self, i: usize) -> Option<Vec<Option<i64>>> {
        if let Some(t) = self.consts.get(i).copied().flatten() {
            return t.to_i64().map(|v| v.into_iter().map(Some).collect());
        }
        if let Some(p) = self.partials.get(i).copied().flatten() {
            return Some(p.values.iter().map(|d| d.known()).collect());
        }
        // Computed at run time: only how many there are is known (a vector of known length,
        // or one scalar), which is still the rank of a shape built from them.
        match self.infos.get(i)?.shape.as_deref()? {
            [] => Some(vec![None]),
            [Some(n)] if *n <= MAX_RANK => Some(vec![None; *n]),
            _ => None,
        }
    }

    /// [`ints`](Self::ints) read as sizes: a negative entry is unknown (TF would fail at run
    /// time; inference must not turn it into a huge size).
    pub fn sizes(&self, i: usize) -> Option<Vec<Option<usize>>> {
        let ints = self.ints(i)?;
        Some(ints.into_iter().map(|d| d.and_then(|d| usize::try_from(d).ok())).collect())
    }

    /// Like [`ints`](Self::ints), keeping where unknown entries come from.
    pub fn dims(&self, i: usize) -> Option<Vec<Dim>> {
        if let Some(t) = self.consts.get(i).copied().flatten() {
            return t.to_i64().map(|v| v.into_iter().map(Dim::Known).collect());
        }
        self.partials.get(i).copied().flatten().map(|p| p.values.clone())
    }

    /// The first entry of input `i` (a scalar, e.g. a count) when known.
    pub fn scalar_int(&self, i: usize) -> Option<i64> {
        self.ints(i)?.first().copied().flatten()
    }

    pub fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        self.consts.get(i).copied().flatten().and_then(|t| t.to_i64())
    }
}

/// The result of folding.
pub enum Folded {
    Tensor(Tensor),
    Partial(Partial),
    /// One constant per output of a multi-output op (`Split`, `Unpack`).
    Outputs(Vec<Tensor>),
}

/// What the passes need to know about an op, declared on its row.
pub struct OpDef {
    pub name: &'static str,
    pub lower: LowerFn,
    pub infer: Option<InferFn>,
    pub fold: Option<FoldFn>,
    /// The input slot a constant per-channel bias that follows the op is fused into
    /// (`passes::fuse_bias`); the translator reads it with [`Ctx::bias`].
    pub bias_slot: Option<usize>,
    /// The op works on each row of its input independently (on the last axis only), given
    /// constant operands of rank ≤ 1, when this says so for the node's attributes: running it
    /// on a whole sequence equals running it per time step (`passes::fuse_time_distributed`).
    pub per_row: Option<fn(&Node) -> bool>,
    /// Every output is the matching input (`Identity`, ...): removed by `passes::identity`.
    pub passthrough: bool,
    /// `x op c` is `x` when the constant `c` in one of these slots is all this value
    /// (`passes::simplify`).
    pub neutral: Option<(&'static [usize], f64)>,
}

/// A registry row.
pub const fn op(name: &'static str, lower: LowerFn) -> OpDef {
    OpDef {
        name,
        lower,
        infer: None,
        fold: None,
        bias_slot: None,
        per_row: None,
        passthrough: false,
        neutral: None,
    }
}

/// A row for an op whose outputs are its inputs; `passes::identity` removes it, so its
/// translation only ever sees a single-output node.
pub const fn passthrough(name: &'static str) -> OpDef {
    let mut def = op(name, |c| {
        if c.num_inputs() == 1 {
            Ok(Lowered::Alias(0))
        } else {
            Err("removed by passes::identity".into())
        }
    });
    def.passthrough = true;
    def
}

/// For [`OpDef::per_row`]: whatever the attributes.
pub fn always(_: &Node) -> bool {
    true
}

impl OpDef {
    pub const fn bias_slot(mut self, slot: usize) -> OpDef {
        self.bias_slot = Some(slot);
        self
    }

    pub const fn per_row(mut self, when: fn(&Node) -> bool) -> OpDef {
        self.per_row = Some(when);
        self
    }

    pub const fn neutral(mut self, slots: &'static [usize], value: f64) -> OpDef {
        self.neutral = Some((slots, value));
        self
    }

    pub const fn infer(mut self, f: InferFn) -> OpDef {
        self.infer = Some(f);
        self
    }

    pub const fn fold(mut self, f: FoldFn) -> OpDef {
        self.fold = Some(f);
        self
    }
}

const FAMILIES: &[&[OpDef]] = &[
    conv::OPS,
    dense::OPS,
    norm::OPS,
    pool::OPS,
    resize::OPS,
    image::OPS,
    image_transform::OPS,
    detection::OPS,
    ctc::OPS,
    activation::OPS,
    elementwise::OPS,
    elementwise::special::OPS,
    fft::OPS,
    signal::OPS,
    reduce::OPS,
    pad::OPS,
    stack::OPS,
    shape::OPS,
    slice::OPS,
    space_batch::OPS,
    cast::OPS,
    gather::OPS,
    loss::OPS,
    matrix::OPS,
    linalg::OPS,
    scan::OPS,
    partition::OPS,
    scatter::OPS,
    sparse::OPS,
    update_slice::OPS,
    sets::OPS,
    quantize::OPS,
    ragged::OPS,
    random::OPS,
    recurrent::OPS,
    attention::OPS,
    table::OPS,
];

/// The row for a TF op, if we translate it.
pub fn lookup(op: &str) -> Option<&'static OpDef> {
    FAMILIES.iter().flat_map(|f| f.iter()).find(|d| d.name == op)
}

/// Whether `op` draws random numbers (two draws are never the same value): our random
/// family, and anything TF names as random or stateful (`RandomShuffle`,
/// `StatefulUniform`).
pub fn is_random(op: &str) -> bool {
    random::OPS.iter().any(|d| d.name == op) || op.contains("Random") || op.starts_with("Stateful")
}

/// Every supported op name, sorted (for `inspect` and docs).
pub fn supported() -> Vec<&'static str> {
    let mut v: Vec<&str> = FAMILIES.iter().flat_map(|f| f.iter()).map(|d| d.name).collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_op_is_registered_twice() {
        let v = super::supported();
        for w in v.windows(2) {
            assert_ne!(w[0], w[1], "{} is registered twice", w[0]);
        }
    }
}
