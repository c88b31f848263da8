//! Ops tf2torch's own passes create (TF marks internal ops with a leading underscore, so no
//! model op can be named like these). Each is declared here once: the pass that builds one
//! and the translator that lowers it share the payload type carried on [`Node::fused`], so
//! parameters travel as typed fields, never as attribute strings or input positions that
//! two files must agree on.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Graph, Node};
use crate::proto::AttrValue;
use crate::proto::attr_value::Value;
use crate::tensor::Tensor;

pub const CONV_1D: &str = "_Conv1D";
pub const DEPTHWISE_1D: &str = "_DepthwiseConv1D";
pub const CONV_TRANSPOSE_1D: &str = "_Conv1DBackpropInput";
pub const MAX_POOL_1D: &str = "_MaxPool1D";
pub const AVG_POOL_1D: &str = "_AvgPool1D";
pub const BATCH_NORM_STATISTICS: &str = "_BatchNormStatistics";
pub const LAYER_NORM: &str = "_LayerNorm";
pub const GROUP_NORM: &str = "_GroupNorm";
pub const RMS_NORM: &str = "_RMSNorm";
pub const SILU: &str = "_SiLU";
pub const HARD_SIGMOID: &str = "_HardSigmoid";
pub const HARD_SWISH: &str = "_HardSwish";
pub const GELU: &str = "_Gelu";
pub const LSTM: &str = "_LSTM";
pub const GRU: &str = "_GRU";
pub const RNN: &str = "_RNN";
pub const MASKED_LSTM: &str = "_MaskedLSTM";
pub const MASKED_GRU: &str = "_MaskedGRU";
pub const GRU_RESET_BEFORE: &str = "_GRUResetBefore";
pub const REPEAT_INTERLEAVE: &str = "_RepeatInterleave";
pub const STACK_LIST: &str = "_StackList";
pub const LOOP: &str = "_Loop";
pub const COND: &str = "_Cond";
pub const ATTENTION: &str = "_Attention";
pub const ROTATE_HALF: &str = "_RotateHalf";
pub const ROTATE_EVERY_TWO: &str = "_RotateEveryTwo";
pub const ROTATE_PAIRS: &str = "_RotatePairs";
pub const APPLY_ROTARY: &str = "_ApplyRotary";
pub const APPLY_ROTARY_EVERY_TWO: &str = "_ApplyRotaryEveryTwo";
pub const CAUSAL_MASK: &str = "_CausalMask";
pub const WRAP_NEGATIVE: &str = "_WrapNegative";
pub const LOG_SUM_EXP: &str = "_LogSumExp";
pub const L2_NORMALIZE: &str = "_L2Normalize";
pub const MISH: &str = "_Mish";
pub const LOG_SIGMOID: &str = "_LogSigmoid";
pub const PRELU: &str = "_PReLU";
pub const FRAMES: &str = "_Frames";
pub const SIGN_BIT: &str = "_SignBit";
pub const TABLE_LOOKUP: &str = "_TableLookup";
pub const QUANTIZE_INT8: &str = "_QuantizeInt8";

/// Where the channels a per-channel weight runs along are in TF's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelAxis {
    /// One value for every channel.
    All,
    /// The last axis (a channels-last map, a dense layer's features).
    Last,
    /// Axis 1 of a map of rank 3 or more (channels first).
    First,
}

impl ChannelAxis {
    fn word(self) -> &'static str {
        match self {
            ChannelAxis::All => "all",
            ChannelAxis::Last => "last",
            ChannelAxis::First => "first",
        }
    }
}

/// A synthetic op and its parameters.
#[derive(Clone, Debug)]
pub enum Fused {
    /// A TF 2-D window op on a unit axis (`ExpandDims → op → Squeeze`), i.e. the op in 1-D.
    /// The node's attributes are the op's with the unit axis dropped (`strides=[1, s, 1]`);
    /// inputs as the op's, `x [N, W, C]` and filters without the unit axis (`[K, I, O]`).
    Window1D(Window1D),
    /// Batch normalisation by the moving statistics alone, with no learned scale or offset
    /// (Keras' `BatchNormalization(center=False, scale=False)`): `nn.BatchNorm2d(c,
    /// affine=False)` (1-D to 3-D by rank), channels last. Inputs: `x`, `mean`, `variance`.
    BatchNormStatistics { epsilon: f32 },
    /// Normalisation over the last axis, `nn.LayerNorm`. Input: `x`.
    LayerNorm { epsilon: f32, affine: Option<Affine> },
    /// Normalisation over groups of channels (the last TF axis, split into `groups`) and all
    /// spatial axes, `nn.GroupNorm`. Input: `x`.
    GroupNorm { groups: usize, epsilon: f32, affine: Option<Affine> },
    /// Root-mean-square normalisation over the last axis, `nn.RMSNorm`. Input: `x`.
    RmsNorm { epsilon: f32, weight: Option<Tensor> },
    /// `x · sigmoid(x)`. Input: `x`.
    SiLU,
    /// `x · tanh(softplus(x))` (YOLOv4's, Keras' mish). Input: `x`.
    Mish,
    /// `−softplus(−x)`, the log of the sigmoid (Keras' log_sigmoid). Input: `x`.
    LogSigmoid,
    /// `relu(x) − alpha · relu(−x)` with a trained `alpha` (`[C]`, or `[1]` for all), one per
    /// channel on `axis` (see `passes::fuse_prelu`): `nn.PReLU(C)`. Input: `x`.
    PReLU { alpha: Tensor, axis: ChannelAxis },
    /// Overlapping frames of the last axis, `length` samples every `step` (`tf.signal.frame`;
    /// see `passes::fuse_frames`): `[.., len]` → `[.., frames, length]`. Input: `x`.
    Frames { length: i64, step: i64 },
    /// Whether a float32's sign bit is set, `-0.0` included (Keras' `signbit`; see
    /// `passes::fuse_signbit`). Input: `x`.
    SignBit,
    /// `relu6(x + 3) / 6` (MobileNetV3's and Keras' hard sigmoid). Input: `x`.
    HardSigmoid,
    /// `x · relu6(x + 3) / 6` (MobileNetV3's hard swish). Input: `x`.
    HardSwish,
    /// GELU, exact or with the tanh approximation. Input: `x`.
    Gelu { approximate: bool },
    /// Each element repeated `repeats` times along TF axis `axis` (`[a, b]` → `[a, a, b, b]`),
    /// what TF spells `ExpandDims → Tile → Reshape` (`tf.repeat`, Keras' `UpSampling1D`,
    /// grouped-query attention's key/value heads). Input: `x`.
    RepeatInterleave { axis: usize, repeats: i64 },
    /// The items of a list a counted loop set one per step, every one of them, stacked on a
    /// new axis `axis` (see `passes::reroll`): `torch.stack(outputs, dim=axis)`. Input: the
    /// list. Unlike `TensorListStack` after a loop, no item is missing.
    StackList { axis: usize },
    /// `F.scaled_dot_product_attention` (see `passes::fuse_attention`). Inputs: `q`, `k`, `v`
    /// in its layout (`[.., L, E]`, heads on axis 1), then the mask if any.
    Attention { scale: f32, mask: Option<AttentionMask>, gqa: bool },
    /// Rotary embeddings' `[x1, x2]` → `[-x2, x1]` over the last axis (see
    /// `passes::fuse_rotary`). Input: `x`.
    RotateHalf,
    /// Interleaved rotary embeddings' `[x0, x1, x2, x3, ..]` → `[-x1, x0, -x3, x2, ..]` over
    /// the last axis (RoFormer's pairs of neighbours; see `passes::fuse_rotary`). Input: `x`.
    RotateEveryTwo,
    /// Each pair of neighbouring features `(x0, x1)` of the last axis turned by the angle
    /// whose cosine and sine are `cos` and `sin` (one per pair): `(x0 * cos - x1 * sin,
    /// x0 * sin + x1 * cos)` (Flux's rotary embeddings). Inputs: `x`, `cos`, `sin`.
    RotatePairs,
    /// `x * cos(angles) + rotate_half(x) * sin(angles)`. Inputs: `x`, `angles`.
    ApplyRotary,
    /// `x * cos(angles) + rotate_every_two(x) * sin(angles)`: the rotation in the interleaved
    /// layout (RoFormer's, Moonshine's). Inputs: `x`, `angles`.
    ApplyRotaryEveryTwo,
    /// `[n, n]` booleans, true on and below the diagonal (see `passes::fuse_causal`); with
    /// `m`, `[n, m]` true on and below diagonal `m - n` (the last `n` of `m` keys are the
    /// queries'). Inputs: `n` (and `m`), integer scalars.
    CausalMask,
    /// Indices counted from the end when negative, made non-negative: `where(i < 0, i + size,
    /// i)` (Keras' `take` before a gather; see `passes::fuse_wrap`). Input: the indices.
    WrapNegative { size: i64 },
    /// A static hash table's lookup: where a key equals `x`, its value, else `default` (see
    /// `passes::tables`). Inputs: `keys` (1-D, sorted ascending, distinct), `values` (1-D, in
    /// the keys' order), `x`, `default` (a scalar).
    TableLookup,
    /// `log(sum(exp(x)))` over constant axes, computed stably (see `passes::fuse_logsumexp`).
    /// Inputs: `x`, the axes (TF's, as `Sum` reads them).
    LogSumExp { keep_dims: bool },
    /// `x / max(‖x‖₂, epsilon)` along one axis (see `passes::fuse_l2norm`). Inputs: `x`, the
    /// axis (TF's, a one-element vector).
    L2Normalize { epsilon: f32 },
    /// Keras' int8 quantization of a layer's input (see `passes::fuse_quantize`): `x` scaled
    /// so that its largest magnitude along the axes is 127, rounded and clipped to
    /// `[-127, 127]`, as int8; and the scale, `127 / (max |x| + epsilon)` (kept axes). Inputs:
    /// `x`, the axes (TF's). Outputs: the codes, the scale.
    QuantizeInt8 { epsilon: f32 },
    /// A recurrent layer over a whole sequence; inputs as [`Recurrent`] describes.
    Recurrent(Recurrent),
    /// A loop (see `passes::loops`): its body is a graph whose inputs are the loop variables
    /// then the invariants, and whose outputs are the condition then each variable's next
    /// value. Inputs: the variables' initial values, then the invariants. Outputs: each
    /// variable's final value.
    Loop(Box<Graph>),
    /// `tf.cond` and `tf.switch_case` (see `passes::conds`). Inputs: the predicate (a bool) or
    /// branch index (an integer), then the values the branches read. Outputs: the results.
    Cond(Box<Cond>),
}

/// The branches of a `_Cond`, graphs with the same inputs (the node's inputs after the
/// predicate) and the same number of outputs (the node's outputs). Branch `k` runs when the
/// predicate, as an integer, is `k` (`[else, then]` for a bool); the last one also for an
/// index out of range, as TF's `Case` does.
#[derive(Clone, Debug, Default)]
pub struct Cond {
    pub branches: Vec<Graph>,
}

/// How attention scores are masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionMask {
    /// A boolean mask, true where a query may attend to a key.
    Bool,
    /// Added to the scores before the softmax.
    Additive,
}

/// Which 2-D op a [`Fused::Window1D`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window1D {
    Conv,
    Depthwise,
    ConvTranspose,
    MaxPool,
    AvgPool,
}

impl Window1D {
    /// The 2-D op it comes from.
    pub fn of(op: &str) -> Option<Window1D> {
        Some(match op {
            "Conv2D" => Window1D::Conv,
            "DepthwiseConv2dNative" => Window1D::Depthwise,
            "Conv2DBackpropInput" => Window1D::ConvTranspose,
            "MaxPool" => Window1D::MaxPool,
            "AvgPool" => Window1D::AvgPool,
            _ => return None,
        })
    }
}

/// `nn.LayerNorm`'s weight and bias (TF's gamma and beta). A norm without beta (Keras'
/// `center=False`) has no bias to train: `nn.LayerNorm(d, bias=False)`.
#[derive(Clone, Debug)]
pub struct Affine {
    pub gamma: Tensor,
    pub beta: Option<Tensor>,
}

/// A recurrent layer. Inputs: the sequence; Keras' mask sequence for a masked cell; then the
/// initial states (`h`, and `c` for LSTM cells) when they are not zeros. Outputs: the stacked
/// outputs (`[T, B, H]`, batch-major if `batch_first`, or `[1, B, H]` when Keras keeps only the
/// last), then the final `h` (and `c`).
#[derive(Clone, Debug)]
pub struct Recurrent {
    pub cell: Cell,
    /// Keras keeps only the last output (`return_sequences=False`).
    pub last_only: bool,
    /// The sequence is `[B, T, I]` rather than time-major `[T, B, I]`.
    pub batch_first: bool,
    /// Weights in PyTorch's layout and gate order, named by [`Cell::param_names`]: one set,
    /// or two (forward, reverse) for a bidirectional layer.
    pub weights: Vec<[Tensor; 4]>,
    /// The initial states are inputs (else they are zeros).
    pub initial_state: bool,
}

/// Which recurrent cell a [`Recurrent`] layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// `nn.LSTM`.
    Lstm,
    /// `nn.GRU` (Keras `reset_after=True`).
    Gru,
    /// `nn.RNN` with `tanh` or `relu`.
    Rnn { relu: bool },
    /// Keras' masked LSTM: the `MaskedLSTM` helper module.
    MaskedLstm { zero_output: bool },
    /// Keras' masked GRU (`reset_after=True`): the `MaskedGRU` helper module.
    MaskedGru { zero_output: bool },
    /// Keras `GRU(reset_after=False)` and TF1's `GRUCell`: the `GRUResetBefore` helper module.
    GruResetBefore,
}

impl Cell {
    pub fn op_name(self) -> &'static str {
        match self {
            Cell::Lstm => LSTM,
            Cell::Gru => GRU,
            Cell::Rnn { .. } => RNN,
            Cell::MaskedLstm { .. } => MASKED_LSTM,
            Cell::MaskedGru { .. } => MASKED_GRU,
            Cell::GruResetBefore => GRU_RESET_BEFORE,
        }
    }

    /// Whether the cell carries a cell state `c` besides `h`.
    pub fn has_cell_state(self) -> bool {
        matches!(self, Cell::Lstm | Cell::MaskedLstm { .. })
    }

    /// What the layer is called in names: `lstm`, `gru`, `rnn`.
    pub fn kind(self) -> &'static str {
        match self {
            Cell::Lstm | Cell::MaskedLstm { .. } => "lstm",
            Cell::Gru | Cell::MaskedGru { .. } | Cell::GruResetBefore => "gru",
            Cell::Rnn { .. } => "rnn",
        }
    }

    /// The four weights' roles (their state_dict names in the PyTorch module).
    pub fn param_names(self) -> [&'static str; 4] {
        match self {
            Cell::MaskedLstm { .. } | Cell::MaskedGru { .. } => {
                ["cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh"]
            }
            Cell::GruResetBefore => {
                ["input.weight", "input.bias", "gates.weight", "candidate.weight"]
            }
            _ => ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"],
        }
    }
}

impl Recurrent {
    /// The input holding Keras' mask sequence.
    pub fn mask_input(&self) -> Option<usize> {
        matches!(self.cell, Cell::MaskedLstm { .. } | Cell::MaskedGru { .. }).then_some(1)
    }

    /// The inputs holding the initial states (empty when they are zeros).
    pub fn state_inputs(&self) -> Range<usize> {
        let start = 1 + usize::from(self.mask_input().is_some());
        let states =
            if self.initial_state { 1 + usize::from(self.cell.has_cell_state()) } else { 0 };
        start..start + states
    }

    pub fn bidirectional(&self) -> bool {
        self.weights.len() == 2
    }

    /// The hidden size.
    pub fn units(&self) -> usize {
        match self.cell {
            Cell::GruResetBefore => self.weights[0][3].shape[0],
            _ => self.weights[0][1].shape[1],
        }
    }
}

impl Fused {
    /// The op name nodes of this kind carry (the registry's key).
    /// Whether it holds trained weights of its own (a norm's scale and offset).
    pub fn holds_weights(&self) -> bool {
        match self {
            Fused::LayerNorm { affine, .. } | Fused::GroupNorm { affine, .. } => affine.is_some(),
            Fused::RmsNorm { weight, .. } => weight.is_some(),
            Fused::PReLU { .. } => true,
            _ => false,
        }
    }

    pub fn op_name(&self) -> &'static str {
        match self {
            Fused::Window1D(w) => match w {
                Window1D::Conv => CONV_1D,
                Window1D::Depthwise => DEPTHWISE_1D,
                Window1D::ConvTranspose => CONV_TRANSPOSE_1D,
                Window1D::MaxPool => MAX_POOL_1D,
                Window1D::AvgPool => AVG_POOL_1D,
            },
            Fused::BatchNormStatistics { .. } => BATCH_NORM_STATISTICS,
            Fused::LayerNorm { .. } => LAYER_NORM,
            Fused::GroupNorm { .. } => GROUP_NORM,
            Fused::RmsNorm { .. } => RMS_NORM,
            Fused::SiLU => SILU,
            Fused::Mish => MISH,
            Fused::LogSigmoid => LOG_SIGMOID,
            Fused::PReLU { .. } => PRELU,
            Fused::SignBit => SIGN_BIT,
            Fused::Frames { .. } => FRAMES,
            Fused::HardSigmoid => HARD_SIGMOID,
            Fused::HardSwish => HARD_SWISH,
            Fused::Gelu { .. } => GELU,
            Fused::RepeatInterleave { .. } => REPEAT_INTERLEAVE,
            Fused::StackList { .. } => STACK_LIST,
            Fused::Attention { .. } => ATTENTION,
            Fused::RotateHalf => ROTATE_HALF,
            Fused::RotateEveryTwo => ROTATE_EVERY_TWO,
            Fused::RotatePairs => ROTATE_PAIRS,
            Fused::ApplyRotary => APPLY_ROTARY,
            Fused::ApplyRotaryEveryTwo => APPLY_ROTARY_EVERY_TWO,
            Fused::CausalMask => CAUSAL_MASK,
            Fused::TableLookup => TABLE_LOOKUP,
            Fused::WrapNegative { .. } => WRAP_NEGATIVE,
            Fused::LogSumExp { .. } => LOG_SUM_EXP,
            Fused::L2Normalize { .. } => L2_NORMALIZE,
            Fused::QuantizeInt8 { .. } => QUANTIZE_INT8,
            Fused::Recurrent(r) => r.cell.op_name(),
            Fused::Loop(_) => LOOP,
            Fused::Cond(_) => COND,
        }
    }

    /// The parameters as TF-style attributes, for people reading a stub's docstring or the
    /// IR dump (weights by shape).
    pub fn attrs(&self) -> BTreeMap<String, AttrValue> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: Value| {
            out.insert(k.to_string(), AttrValue { value: Some(v) });
        };
        match self {
            Fused::LayerNorm { epsilon, .. } => put("epsilon", Value::F(*epsilon)),
            Fused::BatchNormStatistics { epsilon } => put("epsilon", Value::F(*epsilon)),
            Fused::RmsNorm { epsilon, .. } => put("epsilon", Value::F(*epsilon)),
            Fused::GroupNorm { groups, epsilon, .. } => {
                put("groups", Value::I(*groups as i64));
                put("epsilon", Value::F(*epsilon));
            }
            Fused::Gelu { approximate } => {
                put("approximate", Value::S(if *approximate { "tanh" } else { "none" }.into()))
            }
            Fused::Attention { scale, mask, gqa } => {
                put("scale", Value::F(*scale));
                if let Some(m) = mask {
                    put("mask", Value::S(format!("{m:?}").to_lowercase().into()));
                }
                put("gqa", Value::B(*gqa));
            }
            Fused::WrapNegative { size } => put("size", Value::I(*size)),
            Fused::LogSumExp { keep_dims } => put("keep_dims", Value::B(*keep_dims)),
            Fused::L2Normalize { epsilon } => put("epsilon", Value::F(*epsilon)),
            Fused::QuantizeInt8 { epsilon } => put("epsilon", Value::F(*epsilon)),
            Fused::Frames { length, step } => {
                put("frame_length", Value::I(*length));
                put("frame_step", Value::I(*step));
            }
            Fused::RepeatInterleave { axis, repeats } => {
                put("axis", Value::I(*axis as i64));
                put("repeats", Value::I(*repeats));
            }
            Fused::StackList { axis } => put("axis", Value::I(*axis as i64)),
            Fused::Recurrent(r) => {
                put("last_only", Value::B(r.last_only));
                put("batch_first", Value::B(r.batch_first));
                if r.bidirectional() {
                    put("bidirectional", Value::B(true));
                }
                match r.cell {
                    Cell::Rnn { relu: true } => put("nonlinearity", Value::S("relu".into())),
                    Cell::MaskedLstm { zero_output } | Cell::MaskedGru { zero_output } => {
                        put("zero_output", Value::B(zero_output))
                    }
                    _ => {}
                }
            }
            Fused::PReLU { axis, .. } => put("channels", Value::S(axis.word().into())),
            Fused::SiLU
            | Fused::Mish
            | Fused::LogSigmoid
            | Fused::SignBit
            | Fused::HardSigmoid
            | Fused::HardSwish
            | Fused::RotateHalf
            | Fused::RotateEveryTwo
            | Fused::RotatePairs
            | Fused::ApplyRotary
            | Fused::ApplyRotaryEveryTwo
            | Fused::CausalMask
            | Fused::TableLookup
            | Fused::Loop(_)
            | Fused::Cond(_)
            | Fused::Window1D(_) => {}
        }
        out
    }
}

impl Fused {
    /// What its output `port` is called where the running `x` is taken, if its role is
    /// clearer than its scope's name: wrapped indices are `ids`
    /// (`segment_embedding(ids.long())`), not the embedding's own name a second time; a
    /// quantization's outputs are `quantized` and `scale`.
    pub fn value_name(&self, port: usize) -> Option<&'static str> {
        match (self, port) {
            (Fused::WrapNegative { .. }, 0) => Some("ids"),
            (Fused::QuantizeInt8 { .. }, 0) => Some("quantized"),
            (Fused::QuantizeInt8 { .. }, 1) => Some("scale"),
            _ => None,
        }
    }
}

impl Node {
    /// A node of a synthetic op, named and ordered like the node(s) it replaces.
    pub fn fused(name: impl Into<String>, op: Fused, ordinal: usize) -> Node {
        let mut n = Node::new(name, op.op_name(), ordinal);
        n.fused = Some(op);
        n
    }

    /// The body of a loop node.
    pub fn loop_body(&self) -> Option<&Graph> {
        match &self.fused {
            Some(Fused::Loop(body)) => Some(body),
            _ => None,
        }
    }

    pub fn loop_body_mut(&mut self) -> Option<&mut Graph> {
        match &mut self.fused {
            Some(Fused::Loop(body)) => Some(body),
            _ => None,
        }
    }

    /// Takes a loop's body out, to work on it while the outer graph is borrowed; put it back
    /// with [`Node::set_loop_body`].
    pub fn take_loop_body(&mut self) -> Option<Graph> {
        self.loop_body_mut().map(std::mem::take)
    }

    pub fn set_loop_body(&mut self, body: Graph) {
        if let Some(b) = self.loop_body_mut() {
            *b = body;
        }
    }

    /// The branches of a `_Cond` node.
    pub fn cond(&self) -> Option<&Cond> {
        match &self.fused {
            Some(Fused::Cond(c)) => Some(c),
            _ => None,
        }
    }

    pub fn cond_mut(&mut self) -> Option<&mut Cond> {
        match &mut self.fused {
            Some(Fused::Cond(c)) => Some(c),
            _ => None,
        }
    }

    /// The graphs nested in this node: a loop's body, a cond's branches.
    pub fn subgraphs(&self) -> Vec<&Graph> {
        match &self.fused {
            Some(Fused::Loop(body)) => vec![body],
            Some(Fused::Cond(c)) => c.branches.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The recurrent layer this node is, if it is one.
    pub fn recurrent(&self) -> Option<&Recurrent> {
        match &self.fused {
            Some(Fused::Recurrent(r)) => Some(r),
            _ => None,
        }
    }

    /// The attributes to show a person: TF's, or a synthetic op's parameters.
    pub fn shown_attrs(&self) -> BTreeMap<String, AttrValue> {
        match &self.fused {
            // Its attributes are TF's, the unit axis dropped.
            Some(Fused::Window1D(_)) | None => self.attrs.clone(),
            Some(f) => f.attrs(),
        }
    }
}
