//! Values as `forward` holds them: names, constants as literals or buffers, and the one
//! permute a value gets when an op needs it in the other layout. This is what translators
//! reach through `ops::Ctx` (the [`Host`] implementation).

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use super::Lowerer;
use super::constant_names::{self, is_inverse_frequencies};
use super::module::Buffer;
use super::scopes::without_counter;
use crate::ir::{Graph, ValueRef};
use crate::ops::contract::{Host, Layout, OpResult, Val, to_channels_first, to_channels_last};
use crate::ops::util::torch_attr;
use crate::py::Expr;
use crate::py::names::identifier;
use crate::tensor::{DType, Tensor};
use crate::weights::Weight;

impl<'a> Lowerer<'a> {
    /// The value of `v` as it currently is in `forward` (constants become buffers/literals).
    pub(super) fn value(&mut self, v: ValueRef) -> OpResult<Val> {
        if let Some(val) = self.values.get(&v) {
            return Ok(val.clone());
        }
        if let Some(t) = self.graph.const_value(v) {
            let expr = self.constant(v, &t.clone())?;
            let val = Val { expr, layout: Layout::Tf };
            self.values.insert(v, val.clone());
            return Ok(val);
        }
        // A handle that is no input (see `ir::build`): the stub reading it gets `None`.
        let node = self.graph.node(v.node);
        if node.op == "Placeholder" && node.attr_type("dtype").is_ok_and(|d| d == DType::Resource) {
            return Ok(Val { expr: Expr::none(), layout: Layout::Tf });
        }
        let node = self.graph.node(v.node);
        Err(format!("input '{}:{}' ({}) has no value in forward", node.name, v.port, node.op)
            .into())
    }

    /// A constant as a Python expression: a parameter for a variable, a literal for other
    /// scalars, else a registered buffer.
    fn constant(&mut self, v: ValueRef, t: &Tensor) -> OpResult<Expr> {
        if self.is_parameter(v, t) {
            return self.stored(v.node, t.clone(), None);
        }
        if t.rank() == 0 {
            if t.dtype.is_float() {
                return Ok(crate::ops::util::float_literal(t).ok_or("unreadable scalar")?);
            }
            if t.dtype.is_int() {
                return Ok(Expr::int(t.to_i64().ok_or("unreadable scalar")?[0]));
            }
        }
        // Read once: computed where it is read (a buffer read thrice is not three aranges).
        if let Some(arange) = arange_of(t).filter(|_| self.graph.use_count(v) == 1) {
            return Ok(arange);
        }
        // One value throughout: made where it is read (`torch.ones((1, 8, 8)).cumsum(1)`), not
        // stored as a buffer whose name (`const`) says nothing of it.
        if let Some(filled) = filled_with_one_value(t)? {
            return Ok(filled);
        }
        let hint = constant_names::hint(self.graph, v, t, &self.scope_of(v.node));
        self.buffer_named(&hint, t.clone())
    }

    /// Whether constant `v` (value `t`) is a trained value: a variable, or one laid out anew
    /// (rotary inverse frequencies Keras keeps as an untrained weight stay a buffer).
    fn is_parameter(&self, v: ValueRef, t: &Tensor) -> bool {
        let node = self.graph.node(v.node);
        node.variable || node.trained_from.is_some() && !is_inverse_frequencies(t)
    }

    /// Registers `t` as a buffer named after `hint`; returns `self.<name>`.
    pub(super) fn buffer_named(&mut self, hint: &str, t: Tensor) -> OpResult<Expr> {
        self.register(hint, t, false)
    }

    fn register(&mut self, hint: &str, t: Tensor, trainable: bool) -> OpResult<Expr> {
        let dtype =
            t.dtype.torch_name().ok_or_else(|| format!("constant of dtype {:?}", t.dtype))?;
        let name = self.attr_names.fresh(hint);
        self.module.buffers.push(Buffer {
            name: name.clone(),
            torch_dtype: dtype,
            shape: t.shape.iter().map(|&d| Expr::int(d as i64)).collect(),
            trainable,
        });
        self.module.weights.push((name.clone(), Weight::plain(t)));
        Ok(Expr::self_attr(&name))
    }

    /// Variable `n`'s value, `t` (laid out as `forward` reads it), as what a person declares
    /// for a trained weight: an `nn.Parameter` named after its layer, and after the variable
    /// too where the layer has several (`lab_scale`, `lab_bias`; ConvNeXt's one is
    /// `layer_scale`), else after `role`, what the op reading it takes it for. Running
    /// statistics stay buffers, as `nn.BatchNorm2d` keeps them.
    pub(super) fn stored(&mut self, n: NodeIndex, t: Tensor, role: Option<&str>) -> OpResult<Expr> {
        let scope = self.scope_of(n);
        let node = self.graph.node(n);
        let vector = node.value.as_ref().is_some_and(|v| v.rank() <= 1);
        let word = variable_word(node.trained_from.as_deref().unwrap_or(&node.name), vector)
            .or_else(|| super::expert_names::word(self.graph, n));
        // What the graph's wiring says it is (a class token, a quantized weight's scale),
        // beside its layer's name even where it is the layer's only weight: the layer's name
        // alone says nothing of it.
        let token = word
            .is_none()
            .then(|| super::token_names::word(self.graph, n))
            .flatten()
            .or_else(|| self.quantization_word(n, &scope).filter(|_| word.is_none()));
        let word = word.or_else(|| token.map(str::to_string));
        // A rotary embedding's cosine or sine, stored as a table (a buffer).
        let table = word.is_none().then(|| super::rotary_tables::word(self.graph, n)).flatten();
        let word = word.or_else(|| table.map(str::to_string));
        // A role names the weight beside its layer's others (`loop_body_bias`), never alone.
        let by_role = word.is_none() && role.is_some();
        let word = word.or_else(|| role.map(str::to_string));
        let statistic = word.as_deref().is_some_and(|w| {
            ["moving", "mean", "variance", "count", "running"].iter().any(|s| w.contains(s))
        });
        // A weight the model keeps but does not train (Gemma 4's layer scalar) is state,
        // as Hugging Face's `register_buffer` keeps it.
        let untrained = node.trained_name().is_some_and(|v| self.graph.untrained.contains(&v));
        if self.variable_scopes.is_none() {
            let graph = self.graph;
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for m in graph.g.node_indices().filter(|&m| graph.node(m).is_trained()) {
                *counts.entry(self.scope_of(m)).or_default() += 1;
            }
            self.variable_scopes = Some(counts);
        }
        let several = by_role
            || token.is_some()
            || table.is_some()
            || self.variable_scopes.as_ref().and_then(|c| c.get(&scope)) > Some(&1);
        // A SavedModel's variable read by an op of no layer (a model's own `add_weight`,
        // scaling by `mul`) is named as its code named it (`channel_scale`), not `mul`.
        let op_named =
            self.named_by_reader.get(&n).is_some_and(|&r| self.named_after_op(r, &scope));
        let hint = match word {
            Some(w) if op_named => w,
            Some(w) if scope.is_empty() && token.is_some() => w,
            Some(w) if several && scope != w && !scope.ends_with(&format!("_{w}")) => {
                format!("{scope}_{w}")
            }
            _ => scope,
        };
        self.register(&hint, t, !statistic && !untrained && table.is_none())
    }

    /// What trained constant `n` in `scope` is to a quantized layer: its int8 `kernel` or
    /// `zero` point (see [`constant_names::quantized_role`]), or a float weight beside a
    /// quantized one, its `scale` (Keras' `kernel_scale`, `embeddings_scale`), as a frozen
    /// graph does not say.
    fn quantization_word(&mut self, n: NodeIndex, scope: &str) -> Option<&'static str> {
        let t = self.graph.node(n).value.as_ref()?;
        let v = ValueRef { node: n, port: 0 };
        if let Some(role) = constant_names::quantized_role(self.graph, v, t) {
            return Some(role);
        }
        (t.dtype.is_float() && self.quantized_scope(scope)).then_some("scale")
    }

    /// Whether `scope` holds a quantized weight (int8 codes).
    fn quantized_scope(&mut self, scope: &str) -> bool {
        if self.quantized_scopes.is_none() {
            let graph = self.graph;
            let quantized = graph.g.node_indices().filter(|&m| {
                graph.node(m).value.as_ref().is_some_and(constant_names::is_quantized)
            });
            self.quantized_scopes = Some(quantized.map(|m| self.scope_of(m)).collect());
        }
        self.quantized_scopes.as_ref().is_some_and(|s| s.contains(scope))
    }

    /// `v` in `layout`, emitting one conversion the first time it is needed: a permute between
    /// TF's layout and NCHW, `torch.tensor(...)` from Python ints, `.tolist()` (`.item()` for a scalar) to them.
    pub(super) fn value_in(&mut self, v: ValueRef, layout: Layout) -> OpResult<Expr> {
        if let Some(e) = self.converted.get(&(v, layout)) {
            return Ok(e.clone());
        }
        // A constant wanted in another layout is registered (or written) in that one only.
        if layout != Layout::Tf
            && let Some(t) = self.graph.const_value(v)
        {
            // Constants change layout at conversion time.
            if layout == Layout::ChannelsFirst && (3..=5).contains(&t.rank()) {
                let perm: Vec<usize> =
                    to_channels_first(t.rank()).into_iter().map(|p| p as usize).collect();
                let e = self.constant_as(v.node, v, "const", t.permute(&perm))?;
                self.converted.insert((v, layout), e.clone());
                return Ok(e);
            }
            if layout == Layout::Host {
                // Python numbers: ints (sizes), or a float scalar (a float range's bound).
                let e = match (t.rank(), t.dtype.is_float()) {
                    (0, true) => Expr::f64(t.scalar_f64().ok_or("unreadable scalar")?),
                    (0, false) => Expr::int(t.to_i64().ok_or("unreadable scalar")?[0]),
                    (1, false) => Expr::ints(&t.to_i64().ok_or("sizes must be integers")?),
                    _ => return Err("only scalars and integer vectors are Python numbers".into()),
                };
                self.converted.insert((v, layout), e.clone());
                return Ok(e);
            }
        }
        // A transpose to channels-last (Hugging Face's vision models transpose their NCHW
        // pixels for TF's NHWC convolutions), channels first, is the value it transposed.
        if layout == Layout::ChannelsFirst
            && let Some(source) = self.transposed_to_channels_last(v)
        {
            let e = self.value_in(source, Layout::Tf)?;
            self.converted.insert((v, layout), e.clone());
            return Ok(e);
        }
        let val = self.value(v)?;
        if val.layout == layout {
            return Ok(val.expr);
        }
        let expr = match (val.layout, layout) {
            (Layout::Host, Layout::Tf) => {
                let dtype =
                    self.graph.info(v).dtype.and_then(|d| d.torch_name()).unwrap_or("int32");
                Expr::call_kw("torch.tensor", vec![val.expr], vec![("dtype", torch_attr(dtype))])
            }
            // A scalar is `.item()`, what a person writes (and what also reads a
            // one-element vector where a caller passes one for a scalar).
            (Layout::Tf, Layout::Host)
                if self.graph.info(v).shape.is_some_and(|s| s.is_empty()) =>
            {
                val.expr.method("item", vec![])
            }
            (Layout::Tf, Layout::Host) => val.expr.method("tolist", vec![]),
            (Layout::Tf, Layout::ChannelsFirst) => {
                val.expr.permuted(&to_channels_first(self.rank_of(v)?))
            }
            (Layout::ChannelsFirst, Layout::Tf) => {
                val.expr.permuted(&to_channels_last(self.rank_of(v)?))
            }
            (from, to) => return Err(format!("a value in {from:?} layout cannot be {to:?}").into()),
        };
        let last_use = self.remaining.get(&v).copied().unwrap_or(0) <= 1;
        let is_tensor = layout != Layout::Host;
        let target = if is_tensor && last_use && (self.x_holder == Some(v) || self.x_is_free()) {
            self.x_holder = Some(v);
            self.running.clone()
        } else {
            let suffix = match layout {
                Layout::ChannelsFirst => match self.rank_of(v) {
                    Ok(3) => "ncw",
                    Ok(5) => "ncdhw",
                    _ => "nchw",
                },
                Layout::Tf if val.layout == Layout::Host => "t",
                Layout::Tf => match self.rank_of(v) {
                    Ok(3) => "nwc",
                    Ok(5) => "ndhwc",
                    _ => "nhwc",
                },
                Layout::Host if self.graph.info(v).shape.is_some_and(|s| s.is_empty()) => "value",
                Layout::Host => "sizes",
            };
            self.locals.fresh(&format!("{}_{suffix}", identifier(&self.local_hint(v.node))))
        };
        self.push_line(Expr::name(&target), expr);
        let e = Expr::name(target);
        self.converted.insert((v, layout), e.clone());
        Ok(e)
    }
}

impl Lowerer<'_> {
    /// The rank of `v`, which a layout change needs.
    /// What `v` transposes, when `v` is a `Transpose` of a rank-3 to 5 value to channels-last.
    fn transposed_to_channels_last(&self, v: ValueRef) -> Option<ValueRef> {
        let node = self.graph.node(v.node);
        if node.op != "Transpose" || v.port != 0 {
            return None;
        }
        let [source, perm] = self.graph.inputs(v.node)[..] else { return None };
        let rank = self.graph.info(source).shape?.len();
        let perm = self.graph.const_value(perm)?.to_i64()?;
        let wanted =
            crate::ops::contract::channels_first_rank(Some(rank)) && perm == to_channels_last(rank);
        wanted.then_some(source)
    }

    fn rank_of(&self, v: ValueRef) -> OpResult<usize> {
        let rank = self.graph.info(v).shape.map(|s| s.len());
        rank.ok_or_else(|| "a layout change of a value of unknown rank".into())
    }
}

impl<'a> Host<'a> for Lowerer<'a> {
    fn graph(&self) -> &'a Graph {
        self.graph
    }

    fn value(&mut self, v: ValueRef) -> OpResult<Val> {
        Lowerer::value(self, v)
    }

    fn value_in(&mut self, v: ValueRef, layout: Layout) -> OpResult<Expr> {
        Lowerer::value_in(self, v, layout)
    }

    fn filled_list(&self, v: ValueRef) -> bool {
        self.filled_lists.contains(&v)
    }

    fn held_in(&self, v: ValueRef, layout: Layout) -> bool {
        self.values.get(&v).is_some_and(|val| val.layout == layout)
            || self.converted.contains_key(&(v, layout))
    }

    fn buffer(&mut self, owner: NodeIndex, suffix: &str, t: Tensor) -> OpResult<Expr> {
        let hint = format!("{}_{suffix}", self.scope_of(owner));
        self.buffer_named(&hint, t)
    }

    fn constant_as(
        &mut self,
        owner: NodeIndex,
        v: ValueRef,
        suffix: &str,
        t: Tensor,
    ) -> OpResult<Expr> {
        if self.is_parameter(v, &t) {
            // What the op reads it as (`bias`) names it if its variable's name does not.
            let role = (suffix != "const").then_some(suffix);
            self.stored(v.node, t, role)
        } else {
            self.buffer(owner, suffix, t)
        }
    }

    fn constant_named(&mut self, owner: NodeIndex, v: ValueRef, suffix: &str) -> OpResult<Expr> {
        if let Some(e) = self.converted.get(&(v, Layout::Tf)) {
            return Ok(e.clone());
        }
        let t = self.graph.const_value(v).ok_or("not a constant")?.clone();
        let e = self.buffer(owner, suffix, t)?;
        self.converted.insert((v, Layout::Tf), e.clone());
        Ok(e)
    }

    fn require_class(&mut self, name: &'static str, source: &'static str) {
        let support = &mut self.module.support;
        if !support.iter().any(|(n, _)| *n == name) {
            support.push((name, source));
        }
    }
}

/// `torch.arange(n, dtype=...)` where float constant `t` is `0, 1, ..., n - 1`: the
/// coordinates TF folded into a constant (ViTDet's and SAM's relative positions, from
/// `ops.arange(q_size)`), as a person computes them rather than stores them. Integer ones
/// stay buffers: they are indices, which some ops read more than once (a partition's).
fn arange_of(t: &Tensor) -> Option<Expr> {
    if t.rank() != 1 || t.numel() < 2 || !matches!(t.dtype, DType::F32 | DType::F64) {
        return None;
    }
    let counts = t.to_f64()?.iter().enumerate().all(|(i, &x)| x == i as f64);
    let n = Expr::int(i64::try_from(t.numel()).ok()?);
    let dtype = torch_attr(t.dtype.torch_name()?);
    counts.then(|| Expr::call_kw("torch.arange", vec![n], vec![("dtype", dtype)]))
}

/// The variable's own name where the constant keeps it (`gamma` of a loaded
/// `layer_norm/gamma_1`, `weights` of TF1's `conv1/weights`), or what it is to the op
/// reading it in a frozen TF2 graph, whose constants are named after that read: a scalar or
/// a `vector` read by `lab/Mul/ReadVariableOp/resource` is a scale, by `lab/add/...` a bias
/// (a table added is no bias: a position embedding).
fn variable_word(name: &str, vector: bool) -> Option<String> {
    let parts: Vec<&str> = name.split('/').collect();
    let leaf = *parts.last()?;
    let word = if leaf == "resource" {
        if !vector {
            return None;
        }
        let read = parts.iter().position(|p| p.starts_with("ReadVariableOp"))?;
        // TF numbers a second read in one scope (`mul_1`).
        let op = parts.get(read.checked_sub(1)?)?.to_ascii_lowercase();
        let op = match op.rsplit_once('_') {
            Some((base, n)) if n.bytes().all(|b| b.is_ascii_digit()) => base.to_string(),
            _ => op,
        };
        match op.as_str() {
            "mul" => "scale".to_string(),
            "add" | "addv2" | "biasadd" => "bias".to_string(),
            _ => return None,
        }
    } else {
        // A loaded variable's constant carries TF's `_1` (the object graph's counter).
        identifier(without_counter(leaf)?)
    };
    (!word.is_empty()).then_some(word)
}

/// `torch.full(shape, value)` (or `torch.ones`, `torch.zeros`) where float or bool constant
/// `t` holds one value throughout. Integer ones stay buffers, as in [`arange_of`].
fn filled_with_one_value(t: &Tensor) -> OpResult<Option<Expr>> {
    let Some(value) = t.splat_value() else { return Ok(None) };
    let literal = match t.dtype {
        DType::Bool => value.to_i64().and_then(|v| v.first().map(|&b| Expr::boolean(b != 0))),
        d if d.is_float() => crate::ops::util::float_literal(&value),
        _ => None,
    };
    let Some(literal) = literal else { return Ok(None) };
    let sizes: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    crate::ops::util::filled(Expr::ints(&sizes), literal, Some(t.dtype)).map(Some)
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;

    /// A trained value expanded to broadcast (Perceiver's latents, a class token) is still
    /// the trained value: a parameter, where a constant the graph computes is a buffer.
    #[test]
    fn a_trained_value_expanded_stays_a_parameter() {
        use crate::testing::*;
        let trainable = |trained: bool| {
            let mut g = TestGraph::new();
            let x = g.input("x", &[-1, 4, 3]);
            let t = weights(&[4, 3]);
            let w = if trained { g.variable("latents", t) } else { g.constant("latents", t) };
            let axis = g.constant("latents/axis", int_tensor(&[], &[0]));
            let e = g.op("latents/ExpandDims", "ExpandDims", &[w, axis], &[]);
            let y = g.op("add", "AddV2", &[x, e], &[]);
            let (m, _) = crate::lower::lower(&g.finish(&[y]), "M", "test").expect("lower");
            m.buffers.iter().map(|b| (b.name.clone(), b.dims(), b.trainable)).collect::<Vec<_>>()
        };
        assert_eq!(
            trainable(true),
            [("latents".to_string(), vec![Some(1), Some(4), Some(3)], true)]
        );
        let computed = trainable(false);
        assert_eq!(
            computed,
            [("latents_const".to_string(), vec![Some(1), Some(4), Some(3)], false)]
        );
    }

    /// A running statistic laid out anew (a moving mean reshaped to broadcast) stays a
    /// buffer, as the variable it was folded from would.
    #[test]
    fn a_statistic_laid_out_anew_stays_a_buffer() {
        use crate::testing::*;
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let mean = g.variable("norm/moving_mean", weights(&[4]));
        let shape = g.constant("norm/shape", int_tensor(&[2], &[1, 4]));
        let r = g.op("norm/Reshape", "Reshape", &[mean, shape], &[]);
        let y = g.op("norm/sub", "Sub", &[x, r], &[]);
        let (m, _) = crate::lower::lower(&g.finish(&[y]), "M", "test").expect("lower");
        let trainable: Vec<bool> = m.buffers.iter().map(|b| b.trainable).collect();
        assert_eq!(trainable, [false]);
    }

    /// A variable the model keeps but does not train (a SavedModel says so: Gemma 4's layer
    /// scalar) is a buffer, whether read as it is or laid out anew; a trained one of the same
    /// name a parameter.
    #[test]
    fn a_variable_the_model_does_not_train_is_a_buffer() {
        use crate::testing::*;
        let trainable = |untrained: &[&str]| {
            let mut g = TestGraph::new();
            let x = g.input("x", &[-1, 4]);
            let s = g.variable("block/layer_scalar", Tensor::from_f32(vec![], &[0.5]));
            let y = g.op("block/mul", "Mul", &[x, s], &[]);
            let m = g.variable("block/offset", weights(&[4]));
            let shape = g.constant("block/shape", int_tensor(&[2], &[1, 4]));
            let r = g.op("block/Reshape", "Reshape", &[m, shape], &[]);
            let y = g.op("block/add", "AddV2", &[y, r], &[]);
            let mut graph = g.finish(&[y]);
            graph.untrained = untrained.iter().map(|n| n.to_string()).collect();
            let (m, _) = crate::lower::lower(&graph, "M", "test").expect("lower");
            m.buffers.iter().map(|b| b.trainable).collect::<Vec<_>>()
        };
        assert_eq!(trainable(&[]), [true, true]);
        assert_eq!(trainable(&["block/layer_scalar", "block/offset"]), [false, false]);
    }

    #[test]
    fn variables_are_named_by_what_they_are() {
        use super::variable_word;
        let word = |name: &str| variable_word(name, true);
        assert_eq!(word("stage_1/lab/Mul/ReadVariableOp/resource").unwrap(), "scale");
        assert_eq!(word("stage_1/lab/add/ReadVariableOp/resource").unwrap(), "bias");
        assert_eq!(word("ls/mul_1/ReadVariableOp/resource").unwrap(), "scale");
        assert_eq!(word("layer/Tile/ReadVariableOp/resource"), None);
        assert_eq!(variable_word("embeddings/add/ReadVariableOp/resource", false), None);
        assert_eq!(word("layer_norm/gamma_1").unwrap(), "gamma");
        assert_eq!(variable_word("conv1/weights", false).unwrap(), "weights");
    }

    /// Float coordinates `0..n` are `torch.arange(n)`; anything else, and integer indices,
    /// stay stored.
    #[test]
    fn float_coordinates_are_an_arange() {
        use super::arange_of;
        use crate::py::printer::flat;
        let show = |v: &[f32]| arange_of(&Tensor::from_f32(vec![v.len()], v)).map(|e| flat(&e));
        let three = show(&[0.0, 1.0, 2.0]);
        assert_eq!(three.as_deref(), Some("torch.arange(3, dtype=torch.float32)"));
        assert_eq!(show(&[0.0, 2.0, 4.0]), None);
        assert_eq!(show(&[1.0, 2.0]), None);
        assert_eq!(show(&[0.0]), None);
        assert!(arange_of(&crate::testing::int_tensor(&[3], &[0, 1, 2])).is_none());
    }
}
