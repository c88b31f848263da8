//! What a translator returned, written into the module: layers into `__init__`, statements
//! into `forward`, and the values the node's outputs now are.

use petgraph::stable_graph::NodeIndex;

use super::module::Layer;
use super::{Lowerer, tuple_target};
use crate::error::{Error, Result};
use crate::ir::ValueRef;
use crate::ops::contract::{Layout, Lowered, Unpack, Val, access};
use crate::py::Expr;
use crate::py::names::identifier;
use crate::weights::Weight;

impl Lowerer<'_> {
    pub(super) fn apply(&mut self, n: NodeIndex, lowered: Lowered) -> Result<()> {
        let out = ValueRef { node: n, port: 0 };
        match lowered {
            Lowered::Alias(i) | Lowered::Relabel(i, _) => {
                // A malformed node (an op given no inputs) aliases nothing: an error, not a panic.
                let src = *self.graph.inputs(n).get(i).ok_or_else(|| {
                    let node = self.graph.node(n);
                    Error::node(&node.name, &node.op, format!("has no input {i}"))
                })?;
                let mut val = self.value(src).map_err(|e| Error::msg(e.to_string()))?;
                if let Lowered::Relabel(_, layout) = lowered {
                    val.layout = layout;
                }
                // The alias's uses become uses of its source (of the source's source, for an
                // alias of an alias): reading the alias frees the source's name.
                let root = self.alias_of.get(&src).copied().unwrap_or(src);
                let extra = self.graph.use_count(out);
                *self.remaining.entry(root).or_default() += extra;
                self.consume_inputs(n);
                self.values.insert(out, val);
                self.remaining.insert(out, 0);
                self.alias_of.insert(out, root);
            }
            Lowered::Layer { ctor, params, mut args, layout, post } => {
                let layer = self.add_layer(n, ctor, params);
                self.consume_inputs(n);
                let target = self.target_for(out);
                // TF's SAME padding the layer cannot do itself is a statement of its own, as
                // Keras' `ZeroPadding2D` is: blocks then differ from their unstrided siblings
                // by that statement only (chaining puts it back in the call where it can).
                if let Some(first) = args.first_mut()
                    && let Expr::Call(c) = first
                    && crate::py::printer::flat(&c.func) == "F.pad"
                {
                    let pad = std::mem::replace(first, Expr::name(&target));
                    self.push_line(Expr::name(&target), pad);
                }
                self.push_line(Expr::name(&target), access(layer.called(args, vec![]), post));
                self.values.insert(out, Val { expr: Expr::name(target), layout });
            }
            Lowered::LayerWith { ctor, params, call, layout } => {
                let layer = self.add_layer(n, ctor, params);
                self.consume_inputs(n);
                let target = self.target_for(out);
                self.push_line(Expr::name(&target), call(layer));
                self.values.insert(out, Val { expr: Expr::name(target), layout });
            }
            Lowered::LayerUnpack { ctor, params, args, pattern, views } => {
                let layer = self.add_layer(n, ctor, params);
                self.consume_inputs(n);
                let names = self.slot_names(n, &views);
                self.push_line(unpack_target(&pattern, &names), layer.called(args, vec![]));
                for (p, (slot, steps)) in views.into_iter().enumerate() {
                    let expr = access(Expr::name(&names[slot]), steps);
                    self.values
                        .insert(ValueRef { node: n, port: p }, Val { expr, layout: Layout::Tf });
                }
            }
            Lowered::Expr { expr, layout } => {
                self.consume_inputs(n);
                // A size read once goes into its reader (`float(x.shape[1])`) rather than
                // taking a name: it is pure, and what it reads is never assigned again (the
                // running name aside, which it must not read).
                let inline = layout == Layout::Host
                    && self.loop_name.is_empty()
                    && self.graph.use_count(out) == 1
                    && !self.graph.outputs.contains(&out)
                    && !expr.names().contains(&self.running.as_str())
                    && crate::py::printer::flat(&expr).len() <= 40;
                if inline {
                    self.values.insert(out, Val { expr, layout });
                    return Ok(());
                }
                // Sizes (Python ints) keep names of their own: the running `x` is a tensor.
                let target = if layout == Layout::Host {
                    self.host_target_for(out)
                } else {
                    self.target_for(out)
                };
                self.push_line(Expr::name(&target), expr);
                self.values.insert(out, Val { expr: Expr::name(target), layout });
            }
            Lowered::MultiViews { expr, views } => {
                self.apply(n, Lowered::Multi { expr, layout: Layout::Tf })?;
                for (p, steps) in views.into_iter().enumerate() {
                    let v = ValueRef { node: n, port: p };
                    if let (false, Some(val)) = (steps.is_empty(), self.values.get_mut(&v)) {
                        val.expr = access(val.expr.clone(), steps);
                    }
                }
            }
            Lowered::MultiPorts { expr, layout, ports } => {
                self.consume_inputs(n);
                let targets: Vec<String> =
                    ports.iter().map(|&p| self.target_for(ValueRef { node: n, port: p })).collect();
                let lhs = match &targets[..] {
                    [one] => Expr::name(one),
                    _ => tuple_target(&targets),
                };
                self.push_line(lhs, expr);
                for (&p, t) in ports.iter().zip(targets) {
                    let v = ValueRef { node: n, port: p };
                    self.values.insert(v, Val { expr: Expr::name(t), layout });
                }
            }
            Lowered::Multi { expr, layout } => {
                self.consume_inputs(n);
                let count = self.num_outputs(n).max(self.graph.node(n).outputs.len());
                let targets: Vec<String> =
                    (0..count).map(|p| self.target_for(ValueRef { node: n, port: p })).collect();
                let lhs = if count == 1 {
                    Expr::Tuple(vec![Expr::name(&targets[0])])
                } else {
                    tuple_target(&targets)
                };
                self.push_line(lhs, expr);
                for (p, t) in targets.into_iter().enumerate() {
                    let v = ValueRef { node: n, port: p };
                    self.values.insert(v, Val { expr: Expr::name(t), layout });
                }
            }
        }
        Ok(())
    }

    /// Registers the layer node `n` becomes and its weights; returns `self.<name>`. A layer
    /// built like one before it from the very same weights (one TF variable read twice:
    /// T5's token embedding for the encoder and the decoder) is that layer again, so the
    /// weights stay tied in training, and stored once.
    fn add_layer(&mut self, n: NodeIndex, mut ctor: Expr, params: Vec<(&str, Weight)>) -> Expr {
        with_weights_dtype(&mut ctor, &params);
        let key = shared_weights_key(&ctor, &params);
        if let Some(layer) = key.as_ref().and_then(|k| self.shared_layers.get(k)) {
            return layer.clone();
        }
        // Only weights that are one variable's make a layer called twice (equal constants of
        // ones, merged, are two layers' norms).
        let scope = if key.is_some() { self.first_call_scope(n) } else { self.scope_of(n) };
        let scope = crate::py::names::identifier(&scope);
        let name = self.attr_names.fresh(conventional_name(&scope, &ctor));
        for (pname, w) in params {
            self.module.weights.push((format!("{name}.{pname}"), w));
        }
        self.module.layers.push(Layer { name: name.clone(), ctor });
        if let Some(k) = key {
            self.shared_layers.insert(k, Expr::self_attr(&name));
        }
        Expr::self_attr(&name)
    }

    /// The scope of node `n`'s layer, as its first call names it: a layer whose weights
    /// other nodes of its op read too, in scopes that differ from `n`'s only by the number
    /// Keras gives each call (`token_embedding_3`, `token_embedding`), is named after the
    /// lowest, whichever call `forward` makes first (PARSeq embeds its last tokens first).
    fn first_call_scope(&self, n: NodeIndex) -> String {
        let own = self.scope_of(n);
        let op = &self.graph.node(n).op;
        let mut best = own.clone();
        // Weights, not the scalars (an axis) every gather may read; and a bounded look, as a
        // hostile graph may read one constant from a million nodes.
        let weights = self.graph.inputs(n).into_iter().filter(|&v| {
            let node = self.graph.node(v.node);
            node.value.as_ref().is_some_and(|t| !t.shape.is_empty())
                && self.graph.use_count(v) <= MAX_CALLS_LOOKED_AT
        });
        for v in weights {
            for (m, _) in self.graph.consumers(v) {
                if m == n || &self.graph.node(m).op != op {
                    continue;
                }
                let other = self.scope_of(m);
                if call_base(&other) == call_base(&own) && call_number(&other) < call_number(&best)
                {
                    best = other;
                }
            }
        }
        best
    }

    /// A fresh name for each slot of a tuple result some output reads (`_` for the others):
    /// `lstm`, `lstm_h`, `lstm_c`.
    fn slot_names(
        &mut self,
        n: NodeIndex,
        views: &[(usize, Vec<crate::ops::contract::Access>)],
    ) -> Vec<String> {
        let hint = identifier(&self.local_hint(n));
        let slots = views.iter().map(|v| v.0 + 1).max().unwrap_or(0);
        let mut names = vec!["_".to_string(); slots];
        for (p, (slot, _)) in views.iter().enumerate() {
            if self.graph.use_count(ValueRef { node: n, port: p }) > 0 && names[*slot] == "_" {
                let suffix = ["", "_h", "_c"].get(*slot).copied().unwrap_or("_state");
                names[*slot] = self.locals.fresh(&format!("{hint}{suffix}"));
            }
        }
        names
    }
}

/// A layer whose weights are not float32 (a bfloat16 or float16 model) is made in their
/// dtype: `nn.Linear(32, 64, dtype=torch.bfloat16)`, as torch spells it.
fn with_weights_dtype(ctor: &mut Expr, params: &[(&str, Weight)]) {
    let Some((_, first)) = params.first() else { return };
    let dtype = first.tensor.dtype;
    if dtype == crate::tensor::DType::F32 || !dtype.is_float() {
        return;
    }
    if let (Expr::Call(call), Some(name)) = (ctor, dtype.torch_name()) {
        call.kwargs.push(("dtype".to_string(), crate::ops::util::torch_attr(name)));
    }
}

/// Tensors of at least this many elements are taken for shared weights without a look at
/// their values.
const SHARED_MIN_ELEMENTS: usize = 1024;

/// What makes two layers one: the same constructor and the same weight buffers (the same
/// bytes in memory, so the same graph constant, laid out to the same values). `None` for layers
/// whose weights could be equal constants merged by a graph optimizer rather than one
/// variable: small ones holding a single value (a fresh model's layer-norm scales of ones).
fn shared_weights_key(ctor: &Expr, params: &[(&str, Weight)]) -> Option<String> {
    let distinctive = params.iter().any(|(_, w)| {
        let t = &w.tensor;
        let size = t.dtype.size().unwrap_or(0);
        let n = crate::tensor::checked_numel(&t.shape).unwrap_or(0);
        n >= SHARED_MIN_ELEMENTS
            || (size > 0 && t.data.chunks_exact(size).any(|e| e != &t.data[..size]))
    });
    if !distinctive {
        return None;
    }
    let mut key = crate::py::printer::flat(ctor);
    for (name, w) in params {
        let t = &w.tensor;
        // The layout in its simplest form: DeBERTa's query projection reads its kernel
        // `[d, heads, head_dim]` as an einsum for the tokens and reshaped to `[d, d]` for the
        // relative positions, one layer either way.
        let (sizes, order) = w.simplest_layout();
        key.push_str(&format!(
            "|{name}:{:p}:{}:{}:{sizes:?}:{order:?}:{:?}",
            t.data.as_ptr(),
            t.data.len(),
            t.dtype,
            w.shape(),
        ));
    }
    Some(key)
}

/// The assignment target `pattern` describes, slots filled with `names`.
fn unpack_target(pattern: &Unpack, names: &[String]) -> Expr {
    match pattern {
        Unpack::Slot(k) => Expr::name(names.get(*k).map_or("_", String::as_str)),
        Unpack::Tuple(items) => {
            Expr::Tuple(items.iter().map(|p| unpack_target(p, names)).collect())
        }
    }
}

/// A layer named by TF after its op, in a graph whose author named no scope (`MatMul_1`,
/// `FusedBatchNormV3`, a hand-written layer norm's last `add_1`), as PyTorch code names such
/// layers: `fc`, `bn`, `layer_norm`.
fn conventional_name<'s>(scope: &'s str, ctor: &Expr) -> &'s str {
    let base = super::blocks::kind_and_counter(scope).unwrap_or(scope);
    match base {
        "fused_batch_norm" | "fused_batch_norm_v2" | "fused_batch_norm_v3" => "bn",
        // Outside any scope a node has the name TF gives its op (`matmul`, and the last
        // `add_1` of a layer norm written out by hand): the layer's kind says more.
        "mat_mul" | "matmul" | "einsum" | "add" | "add_v2" | "mul" | "sub" | "truediv"
        | "real_div" | "bias_add" | "tensordot" | "gather" | "gather_v2" | "resource_gather"
        | "embedding_lookup" => kind_name(ctor).unwrap_or(scope),
        _ => scope,
    }
}

/// What a person calls a layer of `ctor`'s class (`fc` for `nn.Linear`).
fn kind_name(ctor: &Expr) -> Option<&'static str> {
    let Expr::Call(call) = ctor else { return None };
    let Expr::Attribute(_, class) = &call.func else { return None };
    Some(match class.as_str() {
        "Linear" => "fc",
        "LayerNorm" => "layer_norm",
        "RMSNorm" => "rms_norm",
        "GroupNorm" => "group_norm",
        "BatchNorm1d" | "BatchNorm2d" | "BatchNorm3d" => "bn",
        "Conv1d" | "Conv2d" | "Conv3d" => "conv",
        "Embedding" => "embedding",
        _ => return None,
    })
}

/// The most readers of one weight searched for the first call of its layer.
const MAX_CALLS_LOOKED_AT: usize = 256;

/// A scope without its trailing call number (`token_embedding` of `token_embedding_3`).
fn call_base(scope: &str) -> &str {
    super::blocks::kind_and_counter(scope).unwrap_or(scope)
}

/// A scope's trailing call number; none (a first call, its `_1` dropped) is 0. A number too
/// long for `u64` is as late as any.
fn call_number(scope: &str) -> u64 {
    match super::blocks::kind_and_counter(scope) {
        Some(base) => scope[base.len() + 1..].parse().unwrap_or(u64::MAX),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use crate::tensor::DType;
    use crate::testing::*;
    use insta::assert_snapshot;

    /// One weight read by two matmuls in the same layout is one layer called twice; read
    /// transposed, it is a layer of its own.
    #[test]
    fn one_weight_read_twice_is_one_layer() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let w = g.constant("w", weights(&[4, 4]));
        let a = g.op("a/MatMul", "MatMul", &[x, w], &[]);
        let a = g.op("a/Tanh", "Tanh", &[a], &[]);
        let b = g.op("b/MatMul", "MatMul", &[a, w], &[]);
        let c = g.op("c/MatMul", "MatMul", &[b, w], &[("transpose_b", boolean(true))]);
        assert_snapshot!(g.lower(&[c]), @"
        self.a = nn.Linear(4, 4, bias=False)
        self.c = nn.Linear(4, 4, bias=False)
        # a.weight: [4, 4]
        # c.weight: [4, 4]
        ---
        x = self.a(x)
        x = torch.tanh(x)
        x = self.a(x)
        x = self.c(x)
        return x
        ");
    }

    /// A layer Keras calls twice is named after its first call (`emb`, the call numbered
    /// `_1`), though `forward` makes its second call (`emb_3`) first.
    #[test]
    fn a_shared_layer_is_named_after_its_first_call() {
        let mut g = TestGraph::new();
        let ids = g.typed_input("ids", &[-1, 4], DType::I32);
        let table = g.constant("m/emb_1/ReadVariableOp/resource", weights(&[10, 8]));
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let late = g.op("m/emb_3/GatherV2", "GatherV2", &[table, ids, axis], &[]);
        let w = g.constant("m/dense_1/kernel", weights(&[8, 8]));
        let late = g.op("m/dense_1/MatMul", "BatchMatMulV2", &[late, w], &[]);
        let early = g.op("m/emb_1/GatherV2", "GatherV2", &[table, ids, axis], &[]);
        let y = g.op("m/add_1/add", "AddV2", &[late, early], &[]);
        let code = g.lower(&[y]);
        assert!(code.contains("self.emb = nn.Embedding(10, 8)"), "{code}");
        assert!(!code.contains("emb_3"), "{code}");
    }

    /// Layers in a graph whose author named no scope take the names PyTorch code gives
    /// such layers, not TF's op names: `fc`, `fc_2`, not `mat_mul`, `mat_mul_1`.
    #[test]
    fn unscoped_layers_are_named_as_pytorch_names_them() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4]);
        let w = g.constant("w", weights(&[4, 4]));
        let v = g.constant("v", weights(&[4, 4]));
        let a = g.op("MatMul", "MatMul", &[x, w], &[]);
        let a = g.op("Tanh", "Tanh", &[a], &[]);
        let b = g.op("MatMul_1", "MatMul", &[a, v], &[]);
        assert_snapshot!(g.lower(&[b]), @"
        self.fc = nn.Linear(4, 4, bias=False)
        self.fc_2 = nn.Linear(4, 4, bias=False)
        # fc.weight: [4, 4]
        # fc_2.weight: [4, 4]
        ---
        x = self.fc(x)
        x = torch.tanh(x)
        x = self.fc_2(x)
        return x
        ");
    }

    /// So does a table looked up by an unscoped gather (`tf.gather(table, ids)` in a
    /// hand-written decoder): `embedding`, not `gather_v2`.
    #[test]
    fn an_unscoped_lookup_table_is_an_embedding() {
        let mut g = TestGraph::new();
        let ids = g.typed_input("ids", &[-1], DType::I32);
        let table = g.constant("Const", weights(&[10, 8]));
        let axis = g.constant("axis", int_tensor(&[], &[0]));
        let y = g.op("GatherV2", "GatherV2", &[table, ids, axis], &[]);
        let code = g.lower(&[y]);
        assert!(code.contains("self.embedding = nn.Embedding(10, 8)"), "{code}");
        assert!(!code.contains("gather"), "{code}");
    }

    /// A value read through an alias (a transpose that only relabels the layout) by two
    /// readers: once both have read it, the running name is free again.
    #[test]
    fn reading_an_alias_frees_its_source() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 4, 4]);
        let a = g.op("a/Tanh", "Tanh", &[x], &[]);
        let perm = g.constant("perm", int_tensor(&[3], &[0, 1, 2]));
        let b = g.op("b/Transpose", "Transpose", &[a, perm], &[]);
        let c = g.op("c/Neg", "Neg", &[b], &[]);
        let d = g.op("d/Abs", "Abs", &[b], &[]);
        let e = g.op("e/Add", "AddV2", &[c, d], &[]);
        let f = g.op("f/Sigmoid", "Sigmoid", &[e], &[]);
        let f = g.op("f/Exp", "Exp", &[f], &[]);
        assert_snapshot!(g.lower(&[f]), @"
        ---
        x = torch.tanh(x)
        c = -x
        x = torch.abs(x)
        x = c + x
        x = torch.sigmoid(x)
        x = torch.exp(x)
        return x
        ");
    }
}
