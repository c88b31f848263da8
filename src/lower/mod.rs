//! Lowering: `ir::Graph` (after the passes) → [`Module`], whose parts are Python syntax trees.
//!
//! Walks the nodes in demand order and asks each op's translator for a layer or an
//! expression. Tracks, per value, the Python expression that holds it and its layout: image
//! tensors run in NCHW inside the module, and a permute is emitted only where an op needs the
//! other layout (see `ops::Layout`). Values used once flow on as `x`; others keep names from
//! their TF scope.

mod apply;
mod blocks;
mod chain;
mod conds;
mod constant_names;
mod counted;
mod dead;
mod devices;
mod expert_names;
mod family_names;
mod gated;
mod holder_names;
mod host;
mod inplace;
mod keras_names;
mod layout_walk;
mod local_counters;
mod loop_state;
mod loops;
mod methods;
mod modulation_names;
pub mod module;
mod order;
mod role_parts;
mod roles;
mod rotary_tables;
mod scopes;
mod stubs;
mod tables;
mod token_names;
mod towers;

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

pub use module::Module;

use crate::error::{Error, Result, UntranslatedOp};
use crate::ir::attrs::CHANNELS_LAST;
use crate::ir::fused::{COND, Fused, LOOP};
use crate::ir::{Graph, ValueRef};
use crate::ops::contract::{Ctx, Layout, TranslateError, Val};
use crate::py::names::{Scope, identifier};
use crate::py::user_code::UserModule;
use crate::py::{Assign, Call, Expr};

/// A statement of `forward`, or a call to a stub whose keyword arguments are only known once
/// every node using that stub has been seen.
enum BodyItem {
    Line(Assign),
    StubCall { target: Expr, function: String, args: Vec<Expr>, site: usize },
}

/// The statements and layers one graph node produced, for finding repeated blocks.
#[derive(Clone, Debug)]
pub struct Span {
    pub scope: String,
    /// The outermost layer scope (`transformer_layer_0` of
    /// `transformer_layer_0/self_attention/query`): where it holds other layers, a composite
    /// layer, a candidate block even when it is not numbered.
    pub head: Option<String>,
    pub stmts: std::ops::Range<usize>,
    pub layers: std::ops::Range<usize>,
    pub buffers: std::ops::Range<usize>,
    /// No stubs: the node can move into a block class.
    pub movable: bool,
    /// Computed once for several scopes (`Node::shared`): part of none of them.
    pub shared: bool,
}

/// Counts for the end-of-conversion summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub translated: BTreeMap<String, usize>,
    pub stubs: Vec<UntranslatedOp>,
    /// Nodes lowered as stubs so far.
    pub stubs_seen: usize,
    /// Repeated blocks emitted as classes: (class, instances).
    pub blocks: Vec<(String, usize)>,
    /// Runs of block instances emitted as `nn.ModuleList`s: (list, length).
    pub stacks: Vec<(String, usize)>,
}

pub struct Lowerer<'a> {
    graph: &'a Graph,
    module: Module,
    attr_names: Scope,
    locals: Scope,
    values: BTreeMap<ValueRef, Val>,
    converted: BTreeMap<(ValueRef, Layout), Expr>,
    /// Lists a counted loop gave back with every item set (see `loops::appended_lists`).
    filled_lists: BTreeSet<ValueRef>,
    /// Layers registered so far, by constructor and weights (see `add_layer`).
    shared_layers: BTreeMap<String, Expr>,
    remaining: BTreeMap<ValueRef, usize>,
    /// Values that are another value under a new name in the graph (`Identity`, a layout
    /// relabel): their readers are readers of that value.
    alias_of: BTreeMap<ValueRef, ValueRef>,
    /// The name a chain of single-use values runs through (`x = conv(x); x = relu(x)`), and
    /// the value holding it now.
    running: String,
    x_holder: Option<ValueRef>,
    prefix: Vec<String>,
    /// Constants whose scopes are their first reader's (see
    /// `scopes::constants_named_by_reader`).
    named_by_reader: BTreeMap<NodeIndex, NodeIndex>,
    strip_call_suffix: bool,
    /// Scopes TF numbered `_2` for want of `_1` (see `scopes::call_collisions`).
    call_collisions: BTreeSet<String>,
    name_prefix: String,
    /// The `_Loop` whose body this lowers (empty for `forward`): names are read past the
    /// loop's own scopes (see `scope_of`).
    loop_name: String,
    body: Vec<BodyItem>,
    spans: Vec<Span>,
    stubs: stubs::Stubs,
    summary: Summary,
    /// Loops and conditionals met so far, written as methods once stub calls are complete.
    methods: Vec<methods::Pending>,
    /// Full scope → short local name hint (see `scopes::short_scope_names`).
    short_names: BTreeMap<String, String>,
    /// Capitalised scopes that name layers, as paths (see `scopes::layer_scopes_named_like_tf`).
    tf_named_layers: BTreeSet<String>,
    /// Inner layers named with their holder's number (see
    /// `scopes::inner_layers_numbered_as_holders`).
    numbered_as_holders: BTreeSet<(String, String)>,
    /// Unnamed containers names go without (see `scopes::unnamed_containers`).
    unnamed_containers: BTreeSet<String>,
    /// Holders layer names go without (see `holder_names`).
    long_holders: BTreeSet<String>,
    /// Top-level layers' leading bytes that name the model's family (see `family_names`).
    family_prefixed: BTreeMap<String, usize>,
    /// How many variables each scope holds, counted when first needed (see `stored`).
    variable_scopes: Option<BTreeMap<String, usize>>,
    /// The scopes holding a quantized weight (see [`constant_names::is_quantized`]): their
    /// float weights are its scales.
    quantized_scopes: Option<BTreeSet<String>>,
}

/// The parameter name for a model input TF calls `tf_name`: Keras 3 names an input its
/// author did not name after its symbolic tensor (`keras_tensor_247`, the count of tensors
/// made before it, which `model.export` keys the signature by), and TF a traced function's
/// positional argument `args_0`; such an input is `inputs`, as Keras' own
/// `call(self, inputs)` names it.
fn interface_name(tf_name: &str) -> &str {
    let generated = match scopes::without_counter(tf_name) {
        Some("keras_tensor") => true,
        // TF's name for a function's positional argument (a subclassed model's `call(x)`).
        Some("args") => tf_name != "args",
        _ => false,
    };
    if generated { "inputs" } else { tf_name }
}

/// Lowers the graph into a Python module named `class_name`.
pub fn lower(graph: &Graph, class_name: &str, source_name: &str) -> Result<(Module, Summary)> {
    lower_with(graph, class_name, source_name, UserModule::default())
}

/// [`lower`], next to an existing `custom_ops.py` that binds `user`: its functions keep
/// implementing the ops they implement, and new stubs take none of its names.
pub fn lower_with(
    graph: &Graph,
    class_name: &str,
    source_name: &str,
    user: UserModule,
) -> Result<(Module, Summary)> {
    let first = lower_once(graph, class_name, source_name, user.clone(), &BTreeSet::new())?;
    // An input named like a builtin the generated code calls (`list`, `int`) would shadow it:
    // lowered again with those names taken.
    let called: BTreeSet<String> = first
        .0
        .class_def()
        .body
        .iter()
        .flat_map(|s| s.all_called_names())
        .map(String::from)
        .collect();
    let clashes: BTreeSet<String> =
        first.0.params.iter().filter(|p| called.contains(*p)).cloned().collect();
    if clashes.is_empty() {
        return Ok(first);
    }
    lower_once(graph, class_name, source_name, user, &clashes)
}

fn lower_once(
    graph: &Graph,
    class_name: &str,
    source_name: &str,
    user: UserModule,
    avoid: &BTreeSet<String>,
) -> Result<(Module, Summary)> {
    let order = graph.topo_order().map_err(|n| {
        let node = graph.node(n);
        Error::node(&node.name, &node.op, "is part of a cycle that is not a loop frame")
    })?;
    let mut low =
        Lowerer::new(graph, Module::default(), Scope::for_attributes(), stubs::Stubs::new(user));
    low.module.class_name = class_name.to_string();
    low.module.source_name = source_name.to_string();
    low.module.tf_channels_first = graph.g.node_weights().any(|n| n.has_attr(CHANNELS_LAST));
    low.prefix = scopes::common_prefix(graph, &order);
    low.named_by_reader = scopes::constants_named_by_reader(graph, &low.prefix);
    low.tf_named_layers = low.layer_scopes_named_like_tf();
    low.strip_call_suffix = low.every_scope_has_call_suffix(&order);
    low.call_collisions = low.call_collisions(&order);
    low.numbered_as_holders = low.inner_layers_numbered_as_holders(&order);
    low.unnamed_containers = low.unnamed_containers(&order);
    low.name_prefix = low.common_name_prefix(&order);
    low.family_prefixed = low.family_prefixed(&order);
    low.long_holders = low.long_holders(&order);
    low.short_names = low.short_scope_names(&order);
    let order = low.demand_order(&order);
    low.count_uses(&order);
    // The inputs' names first: they are the model's interface (keyword arguments of
    // `forward`), so the code's own names yield to them.
    for &input in &graph.inputs {
        let tf_name = &graph.node(input.node).name;
        // An input cut from inside the graph (`--inputs model/lookup/LookupTableFindV2`) is
        // named as the value would be, after its layer; the file's own placeholders keep
        // their names (`ir::build` declares no `dtype` on a cut, as the file's do).
        let cut = !graph.node(input.node).attrs.contains_key("dtype");
        let hint = if cut && tf_name.contains('/') {
            low.local_hint(input.node)
        } else {
            interface_name(tf_name).to_string()
        };
        let name = low.locals.param(&hint, avoid);
        if name == "x" && graph.use_count(input) == 1 {
            // The chain starts from it.
            low.x_holder = Some(input);
        }
        if &name != tf_name {
            low.module.renamed_inputs.push((tf_name.clone(), name.clone()));
        }
        low.module.params.push(name.clone());
        low.module.input_types.push(describe(&graph.info(input)));
        low.values.insert(input, Val { expr: Expr::name(name), layout: Layout::Tf });
    }
    low.claim_running();
    for &n in &order {
        if is_source(graph, n) {
            continue;
        }
        let (stmts, layers, buffers) =
            (low.body.len(), low.module.layers.len(), low.module.buffers.len());
        let stubs = low.summary.stubs_seen;
        low.lower_node(n)?;
        let (scope, head) = low.scope_and_head(n);
        low.spans.push(Span {
            scope,
            head,
            stmts: stmts..low.body.len(),
            layers: layers..low.module.layers.len(),
            buffers: buffers..low.module.buffers.len(),
            movable: low.summary.stubs_seen == stubs,
            shared: graph.node(n).shared,
        });
    }
    low.finish()
}

/// Inputs and constants: values, not statements.
fn is_source(graph: &Graph, n: NodeIndex) -> bool {
    let node = graph.node(n);
    node.op == "Placeholder" || node.value.is_some()
}

impl Lowerer<'_> {
    /// `args`, the values `outer` passed to a loop or a conditional method, with each Python
    /// number written as a tensor of its value's dtype: the method's body reads its
    /// parameters as tensors (`.item()`, `torch.stack`), as TF's are.
    fn literals_as_tensors(&self, outer: &[ValueRef], args: Vec<Expr>) -> Vec<Expr> {
        use crate::py::Lit;
        outer
            .iter()
            .zip(args)
            .map(|(&v, a)| match a {
                Expr::Lit(Lit::Int(_) | Lit::F32(_) | Lit::F64(_) | Lit::Bool(_)) => {
                    let dtype = self.graph.info(v).dtype.and_then(|d| d.torch_name());
                    let kwargs = dtype.map(|d| vec![("dtype", crate::ops::util::torch_attr(d))]);
                    Expr::call_kw("torch.tensor", vec![a], kwargs.unwrap_or_default())
                }
                a => a,
            })
            .collect()
    }
}

impl<'a> Lowerer<'a> {
    /// A lowerer for `graph` that adds to `module` (shared with the caller for loop bodies).
    fn new(graph: &'a Graph, module: Module, attr_names: Scope, stubs: stubs::Stubs) -> Self {
        Lowerer {
            graph,
            module,
            attr_names,
            locals: Scope::for_locals(),
            values: BTreeMap::new(),
            converted: BTreeMap::new(),
            filled_lists: BTreeSet::new(),
            shared_layers: BTreeMap::new(),
            remaining: BTreeMap::new(),
            alias_of: BTreeMap::new(),
            running: "x".to_string(),
            x_holder: None,
            prefix: Vec::new(),
            named_by_reader: BTreeMap::new(),
            strip_call_suffix: false,
            call_collisions: BTreeSet::new(),
            name_prefix: String::new(),
            loop_name: String::new(),
            body: Vec::new(),
            spans: Vec::new(),
            stubs,
            summary: Summary::default(),
            methods: Vec::new(),
            short_names: BTreeMap::new(),
            tf_named_layers: BTreeSet::new(),
            numbered_as_holders: BTreeSet::new(),
            unnamed_containers: BTreeSet::new(),
            long_holders: BTreeSet::new(),
            family_prefixed: BTreeMap::new(),
            variable_scopes: None,
            quantized_scopes: None,
        }
    }

    fn lower_node(&mut self, n: NodeIndex) -> Result<()> {
        let node = self.graph.node(n);
        let result = match crate::ops::lookup(&node.op) {
            _ if node.op == LOOP => self.lower_loop(n),
            _ if node.op == COND => self.lower_cond(n),
            Some(def) => (def.lower)(&mut Ctx::new(self, n)),
            None => Err(TranslateError::NoTranslation),
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
            let v = self.alias_of.get(&v).copied().unwrap_or(v);
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
        if let Some(role) = self.graph.node(v.node).role(v.port) {
            return self.locals.fresh_for_role(role);
        }
        if let Some(name) = self.output_name(v) {
            return self.locals.fresh_for_role(name);
        }
        // A part of an attention's query, key or value held apart (unpacked beside the
        // others, or read for its shape too) says which it is (see `role_parts`).
        let part = modulation_names::SPLITS.contains(&self.graph.node(v.node).op.as_str());
        let modulation = part
            .then(|| modulation_names::modulation_parts(self.graph, v.node))
            .flatten()
            .and_then(|parts| parts.get(v.port).copied().flatten());
        if let Some(name) = modulation {
            return self.locals.fresh_for_role(name);
        }
        if let Some(role) =
            (part || uses > 1).then(|| role_parts::role_made_from(self.graph, v)).flatten()
            && let scope = self.local_hint(v.node)
            && scope.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return self.locals.fresh(&format!("{scope}_{role}"));
        }
        if uses == 1 && self.x_is_free() {
            self.x_holder = Some(v);
            return self.running.clone();
        }
        let fused = self.graph.node(v.node).fused.as_ref();
        let role = fused.and_then(|f| f.value_name(v.port));
        let hint = role.map_or_else(|| self.local_hint(v.node), str::to_string);
        let op_named = role.is_none() && self.named_after_op(v.node, &hint);
        // The lists a loop fills and reads, where TF named them after their ops
        // (`TensorArrayV2_1`, `TensorArrayUnstack`, as Keras' recurrent layers leave them):
        // `outputs` and `xs`.
        let list = match self.graph.node(v.node).op.as_str() {
            "TensorListReserve" => Some("outputs"),
            "TensorListFromTensor" => Some("xs"),
            _ => None,
        };
        if let Some(list) =
            list.filter(|_| op_named || identifier(&hint).starts_with("tensor_array"))
        {
            return self.locals.fresh(list);
        }
        // A model input only laid out anew is named after it (`padding_mask.unsqueeze(1)`
        // read by every layer: `padding_mask_2`, not `expand_dims`).
        let hint = match op_named.then(|| self.relaid_input(v)).flatten() {
            Some(input) => input,
            None => hint,
        };
        let hint = if v.port > 0 && role.is_none() { format!("{hint}_{}", v.port) } else { hint };
        if role.is_some() {
            self.locals.fresh_for_role(&hint)
        } else if op_named {
            self.locals.fresh_for_op(&hint)
        } else {
            self.locals.fresh(&hint)
        }
    }

    /// What TF calls output `v` of an op whose outputs say more by their own names than by
    /// the layer around them (`values, indices = top_k(y, 2)`, not `router, router_1`; a
    /// router's `one_hot`, written as a comparison with every class, not the MoE block's
    /// name), where the op was not named (`TopKV2`, `TopKV2_1`).
    fn output_name(&self, v: ValueRef) -> Option<&'static str> {
        let node = self.graph.node(v.node);
        let names: &[&str] = match node.op.as_str() {
            "TopKV2" | "TopK" => &["values", "indices"],
            "OneHot" => &["one_hot"],
            _ => return None,
        };
        let own = node.name.rsplit('/').next().unwrap_or(&node.name);
        self.named_after_op(v.node, own).then(|| names.get(v.port).copied()).flatten()
    }

    /// A parameter named like `hint` for `input` (the code's own names yield to it); an input
    /// named `x` read once is where the running `x` starts.
    fn claim_param(&mut self, input: ValueRef, hint: &str) -> String {
        let name = self.locals.fresh(hint);
        if name == "x" && self.graph.use_count(input) == 1 {
            self.x_holder = Some(input);
        }
        self.values.insert(input, Val { expr: Expr::name(&name), layout: Layout::Tf });
        name
    }

    /// The running name, once the parameters have theirs: `x`, unless a parameter read more
    /// than once has that name.
    fn claim_running(&mut self) {
        if self.x_holder.is_none() {
            let free = ["x", "h", "y"].into_iter().find(|n| self.locals.claim(n));
            self.running = free.map_or_else(|| self.locals.fresh("h"), str::to_string);
        }
    }

    /// A name for output `v` held as Python ints (never the running name).
    fn host_target_for(&mut self, v: ValueRef) -> String {
        if self.graph.use_count(v) == 0 {
            return "_".into();
        }
        match self.size_hint(v) {
            Some(size) => self.locals.fresh_for_role(size),
            None => self.locals.fresh(&self.local_hint(v.node)),
        }
    }

    /// The name of the model input (or `causal_mask`, for the causal mask) `v` only adds axes of size one to, drops them from, or casts, if it is one (a
    /// reshape makes something else of it).
    fn relaid_input(&self, v: ValueRef) -> Option<String> {
        let node = self.graph.node(v.node);
        let layout = ["ExpandDims", "Squeeze", "Cast"];
        if v.port != 0 || !layout.contains(&node.op.as_str()) {
            return None;
        }
        let source = *self.graph.inputs(v.node).first()?;
        if matches!(self.graph.node(source.node).fused, Some(Fused::CausalMask)) {
            return Some("causal_mask".to_string());
        }
        if !self.graph.inputs.contains(&source) {
            return None;
        }
        match &self.values.get(&source)?.expr {
            Expr::Name(name) => Some(name.clone()),
            _ => None,
        }
    }

    /// Whether `hint`, the name node `n` gives its value, is TF's default for the op alone
    /// (`ExpandDims` → `expand_dims`; `ConcatV2` → `concat`; `AddV2` → `add`), TF's
    /// uniquifying counter aside (`ExpandDims_2`).
    fn named_after_op(&self, n: NodeIndex, hint: &str) -> bool {
        let (op, hint) = (identifier(&self.graph.node(n).op), identifier(hint));
        let counted = |h: &str| h.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty();
        let hint = match hint.rsplit_once('_') {
            Some((base, n)) if counted(n) && !counted(base) => base.to_string(),
            _ => hint,
        };
        let unversioned = op
            .rsplit_once("_v")
            .filter(|(_, v)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        hint == op || unversioned.is_some_and(|(base, _)| hint == base)
    }

    /// What a person calls a size read off a value's shape: `batch_size` (axis 0), `seq_len`
    /// (axis 1 of a sequence), `num_steps` (axis 0 of a loop's stacked outputs), the axis
    /// followed back through transposes; None for other sizes (axes of rank-4 values are
    /// image rows as often as attention heads).
    fn size_hint(&self, v: ValueRef) -> Option<&'static str> {
        let p = self.graph.node(v.node).partial.as_ref().filter(|p| p.scalar && v.port == 0)?;
        let [crate::ir::Dim::Of(source, axis)] = p.values.as_slice() else { return None };
        // The value read may be gone (a pass replaced it): nothing to name it by then.
        if !self.graph.g.contains_node(source.node) {
            return None;
        }
        let rank = self.graph.info(*source).shape?.len();
        // Through transposes, to the axis it was (a time-major copy's axis 0 is the
        // sequence's length, not the batch).
        let (mut value, mut axis) = (*source, *axis);
        for _ in 0..8 {
            let node = self.graph.node(value.node);
            let inputs = self.graph.inputs(value.node);
            let perm = (node.op == "Transpose" && inputs.len() == 2)
                .then(|| self.graph.const_value(inputs[1])?.to_i64())
                .flatten();
            let Some(from) = perm.and_then(|p| p.get(axis).copied()) else { break };
            (value, axis) = (inputs[0], usize::try_from(from).ok()?);
        }
        // A loop's outputs stacked have its steps on axis 0; a pack, its parts.
        match self.graph.node(value.node).op.as_str() {
            "TensorListStack" if axis == 0 => return Some("num_steps"),
            "Pack" if axis == 0 => return None,
            _ => {}
        }
        // Axis 1 of ids or a mask (`[batch, seq]`), or of a sequence of features; a float
        // matrix's is its width, unknown where it is a table (rotary angles, `[positions,
        // dim]`).
        let ids = self.graph.info(*source).dtype.is_some_and(|d| !d.is_float());
        match (rank, axis) {
            (2.., 0) => Some("batch_size"),
            (3, 1) => Some("seq_len"),
            (2, 1) if ids => Some("seq_len"),
            (2, 1) => Some("dim"),
            _ => None,
        }
    }

    fn num_outputs(&self, n: NodeIndex) -> usize {
        (0..64)
            .rev()
            .find(|&p| self.graph.use_count(ValueRef { node: n, port: p }) > 0)
            .map_or(1, |p| p + 1)
    }

    fn push_line(&mut self, target: Expr, value: Expr) {
        self.body.push(BodyItem::Line(Assign::new(target, value)));
    }

    fn emit_stub(&mut self, n: NodeIndex, reason: TranslateError) -> Result<()> {
        let inputs = self.graph.inputs(n);
        let mut args = Vec::new();
        for v in &inputs {
            args.push(self.value_in(*v, Layout::Tf).map_err(|e| {
                let node = self.graph.node(n);
                Error::node(&node.name, &node.op, e.to_string())
            })?);
        }
        let (function, site) = self.stubs.register(self.graph, n, reason.to_string());
        self.summary.stubs_seen += 1;
        self.consume_inputs(n);
        let count = self.num_outputs(n);
        let targets: Vec<String> =
            (0..count).map(|p| self.target_for(ValueRef { node: n, port: p })).collect();
        let target = tuple_target(&targets);
        self.body.push(BodyItem::StubCall { target, function, args, site });
        for (p, t) in targets.into_iter().enumerate() {
            let v = ValueRef { node: n, port: p };
            self.values.insert(v, Val { expr: Expr::name(t), layout: Layout::Tf });
        }
        Ok(())
    }

    /// Turns body items into statements, with the stub calls' keyword arguments.
    fn statements(
        items: Vec<BodyItem>,
        stub_kwargs: &BTreeMap<usize, Vec<(String, Expr)>>,
    ) -> Vec<Assign> {
        items
            .into_iter()
            .map(|item| match item {
                BodyItem::Line(a) => a,
                BodyItem::StubCall { target, function, args, site } => {
                    let func = Expr::name("custom_ops").attr(&function);
                    let kwargs = stub_kwargs.get(&site).cloned().unwrap_or_default();
                    Assign::new(target, Expr::Call(Box::new(Call { func, args, kwargs })))
                }
            })
            .collect()
    }

    fn finish(mut self) -> Result<(Module, Summary)> {
        let mut outs = Vec::new();
        for &o in &self.graph.outputs.clone() {
            outs.push(self.value_in(o, Layout::Tf).map_err(|e| Error::msg(e.to_string()))?);
        }
        let stub_kwargs = self.stubs.call_kwargs();
        let mut stmts = Self::statements(std::mem::take(&mut self.body), &stub_kwargs);
        let new_index = dead::remove_dead(&mut stmts, &outs);
        for s in &mut self.spans {
            s.stmts = new_index[s.stmts.start]..new_index[s.stmts.end];
        }
        for pending in std::mem::take(&mut self.methods) {
            self.module
                .methods
                .push(pending.method(&|items| Self::statements(items, &stub_kwargs)));
        }
        tables::name_tables_in_holders(&mut self.module, &mut stmts);
        blocks::hoist_foreign(&mut stmts, &mut self.spans);
        blocks::inputs_as_siblings(&mut stmts, &mut self.spans);
        let heads = towers::Heads::new(&self.module, &self.spans);
        let tensors = self.tensor_names();
        self.summary.blocks = blocks::extract(
            &mut self.module,
            &mut stmts,
            &self.spans,
            &outs,
            &self.locals,
            &tensors,
        );
        let nested = blocks::nested::extract(&mut self.module);
        self.summary.blocks.extend(nested);
        blocks::hint_tensors(&mut self.module, &stmts, &tensors);
        let units = blocks::units::extract(&mut self.module, &mut stmts, &outs);
        self.summary.blocks.extend(units);
        let fresh = inplace::fresh_layers(self.module.layers.iter().map(|l| (&*l.name, &l.ctor)));
        let mut temporaries = self.locals.temporaries();
        let attrs = self.module.layers.iter().map(|l| &l.name);
        let attrs: BTreeSet<&str> =
            attrs.chain(self.module.buffers.iter().map(|b| &b.name)).map(String::as_str).collect();
        temporaries.extend(chain::named_like_other_layers(&stmts, &attrs));
        // A model written without scopes (plain TF) has its layers in `forward` itself: its
        // skip connections and normalized inputs are named for their roles there too, where
        // their names say less (`add_4`; not Keras' `conv5_block2_out`).
        let norms = roles::norm_layers(&self.module.layers);
        let (body, stacks) =
            blocks::stacks::extract(&mut self.module, stmts, &mut outs, |segment, live| {
                roles::role_names(segment, live, &norms, |n| temporaries.contains(n));
                chain::running_values(segment, live, &temporaries);
                chain::inline_temporaries(segment, 8, live, &temporaries);
                gated::fold_gates(segment, 8, live);
                chain::inline_size_tuples(segment, live);
                chain::chain(segment, 8, live);
                inplace::activations_in_place(segment, live, &fresh);
            });
        self.summary.stacks = stacks;
        for class in &mut self.module.classes {
            let attrs = class.layers.iter().map(|l| &l.name);
            let attrs: BTreeSet<&str> =
                attrs.chain(class.buffers.iter().map(|b| &b.name)).map(String::as_str).collect();
            let all = class.optional.iter().flat_map(|p| p.body.iter().chain(&p.after));
            let all: Vec<Assign> = class.body.iter().chain(all).cloned().collect();
            let misnamed = chain::named_like_other_layers(&all, &attrs);
            class.temporaries.extend(misnamed);
            let fresh = inplace::fresh_layers(class.layers.iter().map(|l| (&*l.name, &l.ctor)));
            let norms = roles::norm_layers(&class.layers);
            let returned = std::iter::once(&class.output).chain(&class.extra_outputs);
            let mut live: Vec<Expr> = returned.map(Expr::name).collect();
            let mut segments = vec![(&mut class.body, 8)];
            for part in &mut class.optional {
                segments.push((&mut part.body, 12));
                segments.push((&mut part.after, 8));
            }
            // Each segment keeps what the ones after it read: the last first.
            for (segment, indent) in segments.into_iter().rev() {
                roles::role_names(segment, &live, &norms, |_| true);
                chain::running_values(segment, &live, &class.temporaries);
                chain::inline_temporaries(segment, indent, &live, &class.temporaries);
                chain::running_own(segment, &live, &class.own_values);
                gated::fold_gates(segment, indent, &live);
                chain::inline_size_tuples(segment, &live);
                chain::chain(segment, indent, &live);
                inplace::activations_in_place(segment, &live, &fresh);
                live.extend(segment.iter().flat_map(|s| s.value.names()).map(Expr::name));
            }
        }
        self.module.body = body;
        self.module.outputs = outs;
        let tensors = self.tensor_names();
        let is_tensor = |n: &str| tensors.get(n) == Some(&true);
        let towers = towers::extract(&mut self.module, &heads, is_tensor);
        self.summary.blocks.extend(towers.into_iter().map(|t| (t, 1)));
        local_counters::drop_stale_counters(&mut self.module, &self.locals);
        self.module.output_types =
            self.graph.outputs.iter().map(|&o| describe(&self.graph.info(o))).collect();
        let (stubs, reports) = self.stubs.finish();
        self.module.stubs = stubs;
        self.summary.stubs = reports;
        Ok((self.module, self.summary))
    }
}

impl Lowerer<'_> {
    /// Names that only ever hold tensors (true), or some time a size held as a Python int.
    fn tensor_names(&self) -> BTreeMap<String, bool> {
        let mut tensor: BTreeMap<String, bool> = BTreeMap::new();
        let values = self.values.values().map(|val| (&val.expr, val.layout));
        // And the conversions made on the way (`fpn_block_1_2_nchw`).
        let converted = self.converted.iter().map(|((_, layout), e)| (e, *layout));
        for (expr, layout) in values.chain(converted) {
            if let Some(n) = expr.as_name() {
                let t = layout != Layout::Host;
                tensor.entry(n.to_string()).and_modify(|e| *e &= t).or_insert(t);
            }
        }
        tensor
    }
}

/// `a` for one name, `a, b` for several; a single output of a multi-output op is `(a,)`.
fn tuple_target(names: &[String]) -> Expr {
    match names {
        [one] => Expr::name(one),
        _ => Expr::Tuple(names.iter().map(Expr::name).collect()),
    }
}

/// TF's dtype and shape of a value, as `forward`'s docstring gives it: `float32 [None, 10]`.
fn describe(info: &crate::ir::ValueInfo) -> String {
    let dtype = info.dtype.and_then(|d| d.torch_name()).unwrap_or("tensor");
    match &info.shape {
        Some(dims) => {
            let dims: Vec<String> =
                dims.iter().map(|d| d.map_or("None".to_string(), |d| d.to_string())).collect();
            format!("{dtype} [{}]", dims.join(", "))
        }
        None => format!("{dtype} of unknown shape"),
    }
}
