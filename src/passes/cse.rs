//! Computations a model repeats are computed once. Keras layers recompute what only depends
//! on the input's size: keras-hub's Llama builds its rotary angles twice per layer (for the
//! query and for the key) and its causal mask once per layer, each from that layer's own
//! `x.shape[1]`. A person computes them once, before the layers, and passes them in (Hugging
//! Face's `position_embeddings`, its 4-D mask).
//!
//! Value numbering: two nodes are the same computation when they apply the same op, with the
//! same attributes, to the same values; constants are the same by content (tables the model
//! computes only: weights never merge); and run-time sizes are the same when
//! [`SizeForest`] proves them equal, whatever value they are read from. Each repeated
//! computation keeps its first instance; the others' readers read it.
//!
//! A size the copies read from different values is then read from the latest value they all
//! equal (the embeddings' output rather than the first layer's query), and a computation
//! shared by several scopes is renamed into their common scope, so that it is no longer
//! part of the first layer: it runs before the layers, which take it as an input.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use super::pattern::int_const;
use super::sizes::{Axis, SizeForest};
use crate::error::Result;
use crate::ir::fused::Fused;
use crate::ir::target_slot;
use crate::ir::{Dim, Graph, Node, Partial, ValueInfo, ValueRef};
use crate::tensor::DType;

/// Constants compared by content up to this size (bytes); larger ones never merge.
const MAX_TABLE_BYTES: usize = 1 << 16;

/// One entry of a size, with run-time sizes by their root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SizeKey {
    Known(i64),
    /// The root's node by its class (two copies of the value it is read from are one
    /// value), its port and axis.
    Root(usize, usize, usize),
}

/// What a node computes, for comparison.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// A constant table: dtype, shape, bytes.
    Table(String, Vec<usize>, Vec<u8>),
    /// One run-time size, read at run time (`x.shape[1]`): its output dtype and the size.
    Size(String, SizeKey),
    /// An op on values: op, attributes, payload, its inputs' classes (with the port), and
    /// the size target of a reshape-like op (read from its partial, not its inputs).
    Op {
        op: String,
        attrs: String,
        fused: String,
        inputs: Vec<(usize, usize)>,
        target: Vec<SizeKey>,
    },
}

pub fn common_subexpressions(g: &mut Graph) -> Result<()> {
    let Ok(order) = g.topo_order() else { return Ok(()) };
    let forest = SizeForest::build(g);
    let mut classes: BTreeMap<Key, usize> = BTreeMap::new();
    let mut class_of: BTreeMap<NodeIndex, usize> = BTreeMap::new();
    let mut members: BTreeMap<usize, Vec<NodeIndex>> = BTreeMap::new();
    // Classes of keyed nodes are numbered past every node index: a unique node's class is
    // its index.
    let bound = order.iter().map(|n| n.index() + 1).max().unwrap_or(0);
    for &n in &order {
        let id = match key(g, &forest, &class_of, n) {
            Some(k) => {
                let next = classes.len() + bound;
                *classes.entry(k).or_insert(next)
            }
            None => n.index(),
        };
        class_of.insert(n, id);
        members.entry(id).or_default().push(n);
    }
    // Classes by their first member, in topological order (inputs merge before readers).
    let mut groups: Vec<Vec<NodeIndex>> = members.into_values().filter(|m| m.len() > 1).collect();
    let position: BTreeMap<NodeIndex, usize> =
        order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    groups.sort_by_key(|m| position[&m[0]]);
    let invariant = invariant_nodes(g, &order);
    let mut names = Names {
        taken: g.g.node_weights().map(|n| n.name.clone()).collect(),
        next: BTreeMap::new(),
    };
    let mut hoisted = BTreeSet::new();
    for group in groups {
        if g.node(group[0]).value.is_some() {
            continue; // constants stay: their readers merge
        }
        let bounds = group.iter().any(|&m| layer_slice_bounds(g, m, &invariant));
        if invariant.contains(&group[0]) && !bounds {
            merge(g, &forest, &group, &mut names, &mut hoisted);
            continue;
        }
        // The same step of the main stream in two layers (NASNet's cells each apply a ReLU to
        // the cell before last) stays in each: shared, it would tie the layers together.
        let mut by_scope: BTreeMap<&str, Vec<NodeIndex>> = BTreeMap::new();
        for &n in &group {
            by_scope.entry(scope(&g.node(n).name)).or_default().push(n);
        }
        let parts: Vec<Vec<NodeIndex>> = by_scope.into_values().filter(|p| p.len() > 1).collect();
        for part in parts {
            merge(g, &forest, &part, &mut names, &mut hoisted);
        }
    }
    Ok(())
}

/// The bounds of slices of a layer's values (`[0, d]` of `x[..., :d]`), packed from sizes:
/// part of those slices, so shared only within a scope (shared between layers, they would
/// be a tuple the layers take and index: `x[..., : bounds[1]]`). Their sizes are shared, and
/// so are bounds whose slices all cut values shared too (a table of rotary angles cut to the
/// sequence's length, computed once before the layers).
fn layer_slice_bounds(g: &Graph, n: NodeIndex, invariant: &BTreeSet<NodeIndex>) -> bool {
    if g.node(n).op != "Pack" {
        return false;
    }
    let readers = g.consumers(ValueRef { node: n, port: 0 });
    g.inputs(n).iter().all(|&v| from_sizes(g, v))
        && readers.iter().all(|&(r, slot)| {
            slot >= 1 && matches!(g.node(r).op.as_str(), "StridedSlice" | "Slice")
        })
        && readers
            .iter()
            .any(|&(r, _)| g.inputs(r).first().is_some_and(|data| !invariant.contains(&data.node)))
}

/// How many values [`from_sizes`] looks at, at most: a hostile graph can fan out widely.
const SIZE_BUDGET: usize = 64;

/// Whether `v` is a constant, a size, or integer arithmetic on those (a length less one):
/// numbers `forward` holds as Python ints, not tensors.
fn from_sizes(g: &Graph, v: ValueRef) -> bool {
    const ARITHMETIC: &[&str] =
        &["Add", "AddV2", "Sub", "Mul", "FloorDiv", "Maximum", "Minimum", "StridedSlice", "Pack"];
    let mut todo = vec![v.node];
    let mut seen = BTreeSet::new();
    while let Some(n) = todo.pop() {
        if !seen.insert(n) {
            continue;
        }
        if seen.len() > SIZE_BUDGET {
            return false;
        }
        let node = g.node(n);
        let known = node
            .partial
            .as_ref()
            .is_some_and(|p| p.values.iter().all(|d| !matches!(d, Dim::Unknown)));
        if node.value.is_some() || node.op == "Shape" || known {
            continue;
        }
        if !ARITHMETIC.contains(&node.op.as_str()) {
            return false;
        }
        todo.extend(g.inputs(n).iter().map(|u| u.node));
    }
    true
}

/// Nodes whose value does not depend on the layers' activations, only on the model's
/// inputs, tables it computes, and run-time sizes: what every layer can take from one
/// computation before them (a mask, rotary angles).
fn invariant_nodes(g: &Graph, order: &[NodeIndex]) -> BTreeSet<NodeIndex> {
    let mut invariant = BTreeSet::new();
    for &n in order {
        let node = g.node(n);
        let yes = match (&node.value, node.op.as_str()) {
            (Some(t), _) => node.generated || is_index(node, t),
            (None, "Placeholder" | "Shape" | "Size" | "Rank") => true,
            _ if node.partial.as_ref().is_some_and(|p| p.scalar) => true,
            _ => {
                let inputs = g.inputs(n);
                // A run-time target's own inputs are sizes read (see `key`).
                let own = match target_slot(&node.op) {
                    Some((at, arity))
                        if inputs.get(at).is_some_and(|t| g.node(t.node).partial.is_some()) =>
                    {
                        arity
                    }
                    _ => inputs.len(),
                };
                inputs.iter().take(own).all(|v| invariant.contains(&v.node))
            }
        };
        if yes {
            invariant.insert(n);
        }
    }
    invariant
}

/// Whether constant `t` of `node` holds indices or sizes written in the graph (a slice's
/// `[0, 0]`, an axis), not weights.
fn is_index(node: &Node, t: &crate::tensor::Tensor) -> bool {
    !node.variable && t.dtype.is_int() && t.rank() <= 1 && t.data.len() <= 512
}

/// `n`'s key, or `None` when it must stay unique (inputs, weights, random or unknown ops,
/// control flow).
fn key(
    g: &Graph,
    forest: &SizeForest,
    class_of: &BTreeMap<NodeIndex, usize>,
    n: NodeIndex,
) -> Option<Key> {
    let node = g.node(n);
    if node.assumed || node.op == "Placeholder" {
        return None;
    }
    if let Some(t) = &node.value {
        // Indices and sizes written in the graph (a slice's `[0, 0]`, an axis) are the same
        // by value too; sizes known only in part are not constants.
        let known =
            node.partial.as_ref().is_none_or(|p| p.values.iter().all(|d| d.known().is_some()));
        let table = (node.generated && node.partial.is_none() || is_index(node, t) && known)
            && t.data.len() <= MAX_TABLE_BYTES;
        return table.then(|| Key::Table(t.dtype.to_string(), t.shape.clone(), t.data.to_vec()));
    }
    let dtypes = || node.outputs.iter().map(ValueInfo::describe).collect::<Vec<_>>().join(";");
    if let Some(p) = &node.partial
        && p.scalar
        && let [Dim::Of(v, a)] = p.values[..]
    {
        return Some(Key::Size(dtypes(), size_key(forest, class_of, &Dim::Of(v, a))?));
    }
    let fused = match &node.fused {
        None if crate::ops::lookup(&node.op).is_some() && !crate::ops::is_random(&node.op) => {
            String::new()
        }
        None => return None,
        Some(f) => format!("{:?}", mergeable(f)?),
    };
    let all = g.inputs(n);
    // A constant target known in part (`[x.shape[0], 1, 32]`): compared by its sizes; the
    // values they are read from (inputs after the op's own) are named by it.
    let target = target_slot(&node.op).and_then(|(at, arity)| {
        let t = *all.get(at)?;
        let p = g.node(t.node).partial.as_ref().filter(|_| g.const_value(t).is_some())?;
        Some((at, arity, p))
    });
    let mut inputs = Vec::new();
    let mut target_key = Vec::new();
    for (slot, v) in all.iter().enumerate() {
        if let Some((at, arity, p)) = target {
            if slot == at {
                target_key = p
                    .values
                    .iter()
                    .map(|d| size_key(forest, class_of, d))
                    .collect::<Option<_>>()?;
                continue;
            }
            if slot >= arity {
                continue;
            }
        }
        inputs.push((*class_of.get(&v.node)?, v.port));
    }
    let attrs: Vec<String> = node
        .attrs
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    Some(Key::Op {
        op: format!("{}:{}", node.op, dtypes()),
        attrs: attrs.join(","),
        fused,
        inputs,
        target: target_key,
    })
}

fn size_key(
    forest: &SizeForest,
    class_of: &BTreeMap<NodeIndex, usize>,
    d: &Dim,
) -> Option<SizeKey> {
    match *d {
        Dim::Known(k) => Some(SizeKey::Known(k)),
        Dim::Of(v, a) => {
            let (root, axis) = forest.root((v, a));
            Some(SizeKey::Root(*class_of.get(&root.node)?, root.port, axis))
        }
        Dim::Unknown => None,
    }
}

/// A payload two nodes may share: one that holds no weights (those are the layer's own).
fn mergeable(f: &Fused) -> Option<&Fused> {
    match f {
        Fused::LayerNorm { affine: None, .. }
        | Fused::GroupNorm { affine: None, .. }
        | Fused::RmsNorm { weight: None, .. }
        | Fused::SiLU
        | Fused::Mish
        | Fused::LogSigmoid
        | Fused::SignBit
        | Fused::Frames { .. }
        | Fused::HardSigmoid
        | Fused::HardSwish
        | Fused::Gelu { .. }
        | Fused::RepeatInterleave { .. }
        | Fused::Attention { .. }
        | Fused::RotateHalf
        | Fused::RotateEveryTwo
        | Fused::ApplyRotary
        | Fused::ApplyRotaryEveryTwo
        | Fused::CausalMask
        | Fused::TableLookup
        | Fused::WrapNegative { .. }
        | Fused::LogSumExp { .. }
        | Fused::L2Normalize { .. }
        | Fused::QuantizeInt8 { .. } => Some(f),
        _ => None,
    }
}

/// Makes every reader of `group`'s later members read its first; reads the sizes it needs
/// from values outside the members' scopes, and names it after their common scope.
fn merge(
    g: &mut Graph,
    forest: &SizeForest,
    group: &[NodeIndex],
    names: &mut Names,
    hoisted: &mut BTreeSet<NodeIndex>,
) {
    let mut survivor = group[0];
    let common = common_scope(group.iter().map(|&n| g.node(n).name.as_str()));
    // Tables keep the layer's scope below where the copies part: a buffer named after the
    // layer that made it (`self_attention_llama_rotary_embedding_const`), not after TF's op
    // (`truediv_1_const`).
    let tables = shared_scope(group.iter().map(|&n| g.node(n).name.as_str()));
    let shared = group.iter().any(|&n| scope(&g.node(n).name) != scope(&g.node(survivor).name));
    // Where the one computation lives: the members' common scope, or their own.
    let home = if shared { common.clone() } else { scope(&g.node(survivor).name).to_string() };
    // A size shared by several scopes is read from a value outside all of them.
    let parted: Vec<String> = if shared { parting_scopes(g, group, &common) } else { Vec::new() };
    let outside = |g: &Graph, (v, _): Axis| {
        let name = &g.node(v.node).name;
        !parted.iter().any(|p| name.starts_with(p.as_str()))
    };
    if let Some(new) = resourced_size(g, forest, group, &outside, (names, &home)) {
        survivor = new;
    }
    resource_target(g, forest, group, &outside);
    // A name a pass gave one of them (`k`) names the one computation.
    for port in 0..g.node(survivor).outputs.len() {
        let role = group.iter().find_map(|&m| g.node(m).role(port));
        let kept = g.node_mut(survivor);
        let role = kept.role(port).or(role);
        kept.set_role(port, role);
    }
    for &m in group {
        if m == survivor {
            continue;
        }
        for port in 0..g.node(m).outputs.len().max(1) {
            g.replace_uses(ValueRef { node: m, port }, ValueRef { node: survivor, port });
        }
    }
    if shared && survivor == group[0] {
        rename(g, survivor, &common, names);
    }
    if shared {
        // Ordered as soon as what it reads is computed: before the scopes that share it.
        hoist(g, survivor, (&common, &tables), names, hoisted);
    }
}

/// Gives `n` the latest ordinal of its inputs' producers, so that the topological order
/// (ties broken by ordinal) places it as soon as they are computed, and before that does the
/// same for the inputs only it reads (the shape it slices, its constants).
fn hoist(
    g: &mut Graph,
    n: NodeIndex,
    (common, tables): (&str, &str),
    names: &mut Names,
    hoisted: &mut BTreeSet<NodeIndex>,
) {
    let mut stack = vec![(n, false)];
    while let Some((m, inputs_done)) = stack.pop() {
        if hoisted.contains(&m) {
            continue;
        }
        let inputs = g.inputs(m);
        if inputs_done {
            let at = inputs.iter().map(|v| g.node(v.node).ordinal).max().unwrap_or(0);
            // Only what may be a buffer needs a name; integers are written in place.
            let table = g.node(m).value.as_ref().is_some_and(|t| !t.dtype.is_int());
            let to = if table { tables } else { common };
            if m != n && scope(&g.node(m).name) != to {
                rename(g, m, to, names);
            }
            let node = g.node_mut(m);
            node.ordinal = node.ordinal.min(at);
            node.shared = true;
            hoisted.insert(m);
            continue;
        }
        stack.push((m, true));
        for v in inputs {
            let only_here =
                g.g.neighbors_directed(v.node, petgraph::Direction::Outgoing)
                    .all(|r| r == m || hoisted.contains(&r));
            let input = g.inputs.iter().any(|i| i.node == v.node);
            if only_here && !input && !hoisted.contains(&v.node) {
                stack.push((v.node, false));
            }
        }
    }
}

/// A size group read from different values: a new read from their nearest common one
/// (`None` when the first member's read is that already, or the group is not a size).
fn resourced_size(
    g: &mut Graph,
    forest: &SizeForest,
    group: &[NodeIndex],
    outside: &dyn Fn(&Graph, Axis) -> bool,
    (names, home): (&mut Names, &str),
) -> Option<NodeIndex> {
    let read = |g: &Graph, n: NodeIndex| match g.node(n).partial.as_ref()?.values[..] {
        [Dim::Of(v, a)] => Some((v, a)),
        _ => None,
    };
    let axes: Vec<Axis> = group.iter().map(|&n| read(g, n)).collect::<Option<_>>()?;
    let (source, axis) = forest.nearest_common(&axes, |a| outside(g, a))?;
    let at = i32::try_from(axis).ok()?;
    if axes[0] == (source, axis) {
        return None;
    }
    let first = g.node(group[0]);
    let base = fresh(names, home, last(&first.name));
    let (ordinal, dtype) = (first.ordinal, first.outputs.first().and_then(|o| o.dtype));
    let index_type = dtype.unwrap_or(DType::I32);
    let rank = g.info(source).shape.map_or(0, |s| s.len());
    // Ordered right after the value it reads (see [`hoist`]).
    let ordinal = ordinal.min(g.node(source.node).ordinal);
    let mut shape = Node::new(format!("{base}/shape"), "Shape", ordinal);
    shape.set_attr_type("out_type", index_type);
    shape.outputs = vec![ValueInfo { dtype: Some(index_type), shape: Some(vec![Some(rank)]) }];
    let shape = g.add_node(shape);
    g.connect(source, shape, 0);
    let whole = (0..rank)
        .map(|i| g.info(source).dim(i).map_or(Dim::Of(source, i), |d| Dim::Known(d as i64)))
        .collect();
    g.set_partial(shape, Partial { scalar: false, values: whole });
    let mut slice = Node::new(base.clone(), "StridedSlice", ordinal);
    slice.set_attr_int("shrink_axis_mask", 1);
    slice.outputs = vec![ValueInfo { dtype: Some(index_type), shape: Some(vec![]) }];
    let slice = g.add_node(slice);
    g.connect(ValueRef { node: shape, port: 0 }, slice, 0);
    for (slot, v) in [at, at.saturating_add(1), 1].into_iter().enumerate() {
        let c = int_const(g, format!("{base}/{slot}"), &[v], ordinal);
        g.connect(c, slice, slot + 1);
    }
    g.set_partial(slice, Partial { scalar: true, values: vec![Dim::Of(source, axis)] });
    Some(slice)
}

/// A reshape-like group whose run-time target reads sizes from different values: the first
/// member's target reads each from their nearest common value.
fn resource_target(
    g: &mut Graph,
    forest: &SizeForest,
    group: &[NodeIndex],
    outside: &dyn Fn(&Graph, Axis) -> bool,
) {
    let Some((at, arity)) = target_slot(&g.node(group[0]).op) else { return };
    let targets: Vec<Option<Partial>> = group
        .iter()
        .map(|&n| {
            let t = *g.inputs(n).get(at)?;
            g.const_value(t)?;
            g.node(t.node).partial.clone()
        })
        .collect();
    let Some(targets) = targets.into_iter().collect::<Option<Vec<Partial>>>() else { return };
    let mut values = Vec::new();
    for (i, d) in targets[0].values.iter().enumerate() {
        let Dim::Of(..) = d else {
            values.push(*d);
            continue;
        };
        let axes: Option<Vec<Axis>> = targets
            .iter()
            .map(|t| match t.values.get(i) {
                Some(Dim::Of(v, a)) => Some((*v, *a)),
                _ => None,
            })
            .collect();
        let common = axes.and_then(|axes| forest.nearest_common(&axes, |a| outside(g, a)));
        let Some((v, a)) = common else { return };
        values.push(Dim::Of(v, a));
    }
    if values == targets[0].values {
        return;
    }
    let first = group[0];
    let old = g.inputs(first)[at];
    let mut target = g.node(old.node).clone();
    target.partial = None;
    target.name = format!("{}/shared", target.name);
    let target = g.add_node(target);
    let mut sources: Vec<ValueRef> = Vec::new();
    for d in &values {
        if let Dim::Of(v, _) = d
            && !sources.contains(v)
        {
            sources.push(*v);
        }
    }
    g.set_partial(target, Partial { scalar: false, values });
    g.set_input(first, at, ValueRef { node: target, port: 0 });
    // The values the sizes are read from stay inputs, so `forward` holds them where it reads
    // their `.shape`.
    g.clear_inputs_from(first, arity);
    for (k, v) in sources.into_iter().enumerate() {
        g.connect(v, first, arity + k);
    }
}

/// The scopes `group`'s members part into below `common`, the scope they share
/// (`layer_0/`, `layer_1/`), each as a name prefix.
fn parting_scopes(g: &Graph, group: &[NodeIndex], common: &str) -> Vec<String> {
    let depth = common.split('/').filter(|c| !c.is_empty()).count();
    let mut parted: Vec<String> = group
        .iter()
        .filter_map(|&n| {
            let parts: Vec<&str> = scope(&g.node(n).name).split('/').collect();
            (parts.len() > depth).then(|| format!("{}/", parts[..=depth].join("/")))
        })
        .collect();
    parted.sort();
    parted.dedup();
    parted
}

/// The scope of a node name: what precedes its last `/`.
fn scope(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(s, _)| s)
}

/// The scope a computation shared by `names` moves to: the longest scope path they all lie
/// under, then the scopes below the one they part at when each name has the same ones up to
/// the numbers Keras adds to tell calls apart (each layer's
/// `self_attention/llama_rotary_embedding`), so the shared code keeps the layer's names.
fn shared_scope<'a>(names: impl Iterator<Item = &'a str> + Clone) -> String {
    let common = common_scope(names.clone());
    let depth = common.split('/').filter(|c| !c.is_empty()).count();
    let below = |name: &'a str| -> Vec<&'a str> {
        scope(name).split('/').filter(|c| !c.is_empty()).skip(depth + 1).collect()
    };
    fn unnumbered(c: &str) -> &str {
        c.trim_end_matches(|c: char| c == '_' || c.is_ascii_digit())
    }
    let mut all = names.map(below);
    let Some(first) = all.next() else { return common };
    let alike = |other: Vec<&'a str>| {
        other.len() == first.len()
            && other.iter().zip(&first).all(|(a, b)| unnumbered(a) == unnumbered(b))
    };
    let agree = first.iter().all(|c| !unnumbered(c).is_empty()) && all.all(alike);
    // Named as the first call is (Keras' call suffix included, which naming strips).
    let parts: Vec<&str> = common
        .split('/')
        .filter(|c| !c.is_empty())
        .chain(first.iter().copied().filter(|_| agree))
        .collect();
    parts.join("/")
}

/// The longest scope path every name lies under.
fn common_scope<'a>(mut names: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = names.next() else { return String::new() };
    let mut common: Vec<&str> = scope(first).split('/').filter(|c| !c.is_empty()).collect();
    for name in names {
        let parts: Vec<&str> = scope(name).split('/').collect();
        let same = common.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        common.truncate(same);
    }
    common.join("/")
}

/// The last component of a node name.
fn last(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Node names taken, and for each name asked for, the next counter to try: naming stays
/// linear however many nodes ask for one name.
struct Names {
    taken: BTreeSet<String>,
    next: BTreeMap<String, usize>,
}

/// `scope/last`, made unique among `names` (and taken).
fn fresh(names: &mut Names, scope: &str, last: &str) -> String {
    let base = if scope.is_empty() { last.to_string() } else { format!("{scope}/{last}") };
    let mut name = base.clone();
    let k = names.next.entry(base.clone()).or_insert(1);
    while names.taken.contains(&name) {
        name = format!("{base}_{k}");
        *k += 1;
    }
    names.taken.insert(name.clone());
    name
}

/// Renames `n` to its last name component under `scope`.
fn rename(g: &mut Graph, n: NodeIndex, scope: &str, names: &mut Names) {
    let name = fresh(names, scope, last(&g.node(n).name));
    g.node_mut(n).name = name;
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::passes::fold_and_infer;
    use crate::tensor::Tensor;
    use crate::testing::*;
    use insta::assert_snapshot;

    fn scalar(g: &mut TestGraph, name: &str, v: f32) -> ValueRef {
        g.constant(name, Tensor::from_f32(vec![], &[v]))
    }

    fn index(g: &mut TestGraph, name: &str, v: &[i64]) -> ValueRef {
        g.constant(name, int_tensor(&[v.len()], v))
    }

    /// One layer: a dense projection of `x` (tokens × features), plus a table of positions ×
    /// frequencies built from the projection's own length (`d.shape[0]`) and frequencies the model computes,
    /// then a second projection and the residual.
    fn layer(g: &mut TestGraph, i: usize, x: ValueRef) -> ValueRef {
        let s = format!("layer_{i}_1");
        let w = g.constant(&format!("{s}/dense/kernel"), weights(&[8, 8]));
        let d = g.op(&format!("{s}/dense/MatMul"), "MatMul", &[x, w], &[]);
        let shape = g.op(&format!("{s}/table/Shape"), "Shape", &[d], &[]);
        let (b, e, one) = (
            index(g, &format!("{s}/b"), &[0]),
            index(g, &format!("{s}/e"), &[1]),
            index(g, &format!("{s}/o"), &[1]),
        );
        let n = g.op(
            &format!("{s}/table/strided_slice"),
            "StridedSlice",
            &[shape, b, e, one],
            &[("shrink_axis_mask", int(1))],
        );
        let n = g.op(&format!("{s}/table/Cast"), "Cast", &[n], &[("DstT", dtype_attr())]);
        let (zero, step, eight) = (
            scalar(g, &format!("{s}/z"), 0.0),
            scalar(g, &format!("{s}/s"), 1.0),
            scalar(g, &format!("{s}/n"), 8.0),
        );
        let positions = g.op(&format!("{s}/table/range"), "Range", &[zero, n, step], &[]);
        let freqs = g.op(&format!("{s}/table/freqs"), "Range", &[zero, eight, step], &[]);
        let last = g.constant(&format!("{s}/table/axis"), int_tensor(&[], &[1]));
        let column = g.op(&format!("{s}/table/ExpandDims"), "ExpandDims", &[positions, last], &[]);
        let table = g.op(&format!("{s}/table/mul"), "Mul", &[column, freqs], &[]);
        let y = g.op(&format!("{s}/add"), "AddV2", &[d, table], &[]);
        let y = g.op(&format!("{s}/Relu"), "Relu", &[y], &[]);
        let w2 = g.constant(&format!("{s}/out/kernel"), weights(&[8, 8]));
        let y = g.op(&format!("{s}/out/MatMul"), "MatMul", &[y, w2], &[]);
        g.op(&format!("{s}/residual"), "AddV2", &[y, x], &[])
    }

    fn dtype_attr() -> crate::proto::AttrValue {
        crate::proto::AttrValue {
            value: Some(crate::proto::attr_value::Value::Type(crate::tensor::DType::F32.to_tf())),
        }
    }

    /// Every layer builds the same table from its own input's length: it is built once,
    /// from the first layer's input, before the layers, which are one class taking it.
    #[test]
    fn a_table_every_layer_builds_is_built_once_before_them() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let h = layer(&mut g, 0, x);
        let h = layer(&mut g, 1, h);
        assert_snapshot!(g.lower(&[h]), @"
            class Layer():
              self.dense = nn.Linear(8, 8, bias=False)
              self.out = nn.Linear(8, 8, bias=False)
              h = self.dense(x)
              h = h + mul
              h = F.relu(h, inplace=True)
              h = self.out(h)
              x = h + x
              return x (from x, mul)
            self.layers = nn.ModuleList([Layer() for _ in range(2)])
            # layers.0.dense.weight: [8, 8]
            # layers.0.out.weight: [8, 8]
            # layers.1.dense.weight: [8, 8]
            # layers.1.out.weight: [8, 8]
            ---
            h = torch.arange(float(x.shape[0])).unsqueeze(1)
            mul = h * torch.arange(8, dtype=torch.float32)
            for layer in self.layers:
                x = layer(x, mul)
            return x
            ");
    }

    /// Only what computes the same value merges: weights are a layer's own even when equal
    /// (two kernels initialised alike), random draws differ, and a step of the main stream
    /// two scopes both take (NASNet's cells each apply a ReLU to the cell before last) stays
    /// in each, where a repeat within one scope is one computation.
    #[test]
    fn weights_draws_and_other_scopes_main_stream_stay() {
        let mut g = TestGraph::new();
        let x = g.input("x", &[-1, 8]);
        let w0 = g.constant("stem/kernel", weights(&[8, 8]));
        let x = g.op("stem/MatMul", "MatMul", &[x, w0], &[]);
        let w1 = g.constant("a/kernel", weights(&[8, 8]));
        let w2 = g.constant("b/kernel", weights(&[8, 8]));
        let a = g.op("a/MatMul", "MatMul", &[x, w1], &[]);
        let b = g.op("b/MatMul", "MatMul", &[x, w2], &[]);
        let ra = g.op("a/Relu", "Relu", &[x], &[]);
        let rb = g.op("b/Relu", "Relu", &[x], &[]);
        let ra2 = g.op("a/Relu_1", "Relu", &[x], &[]);
        let shape = g.constant("shape", int_tensor(&[2], &[2, 8]));
        let u1 = g.op("u1", "RandomUniform", &[shape], &[("dtype", dtype_attr())]);
        let u2 = g.op("u2", "RandomUniform", &[shape], &[("dtype", dtype_attr())]);
        let outs = [a, b, ra, rb, ra2, u1, u2];
        assert_snapshot!(g.after_passes(&outs, &[fold_and_infer, super::common_subexpressions]), @"
            inputs: x:0
            outputs: a/MatMul:0, b/MatMul:0, a/Relu:0, b/Relu:0, a/Relu:0, u1:0, u2:0
            x = Placeholder -> float32 [?, 8]
            stem/kernel = Const -> float32 [8, 8]
            stem/MatMul = MatMul(x:0, stem/kernel:0) -> float32 [?, 8]
            a/kernel = Const -> float32 [8, 8]
            b/kernel = Const -> float32 [8, 8]
            a/MatMul = MatMul(stem/MatMul:0, a/kernel:0) -> float32 [?, 8]
            b/MatMul = MatMul(stem/MatMul:0, b/kernel:0) -> float32 [?, 8]
            a/Relu = Relu(stem/MatMul:0) -> float32 [?, 8]
            b/Relu = Relu(stem/MatMul:0) -> float32 [?, 8]
            shape = Const -> int32 [2]
            u1 = RandomUniform(shape:0) {dtype=float32} -> float32 [2, 8]
            u2 = RandomUniform(shape:0) {dtype=float32} -> float32 [2, 8]
            ");
    }

    /// A hostile chain: thousands of steps, each reading its input's run-time length. All
    /// the reads are one size; finding where to read it from is bounded, and the pass ends
    /// at once with one read.
    #[test]
    fn a_long_chain_of_size_reads_stays_cheap() {
        let mut g = TestGraph::new();
        let mut x = g.input("x", &[-1, 8]);
        let (b, e, one) =
            (index(&mut g, "b", &[0]), index(&mut g, "e", &[1]), index(&mut g, "o", &[1]));
        let mut sizes = Vec::new();
        for i in 0..3000 {
            x = g.op(&format!("s{i}/Relu"), "Relu", &[x], &[]);
            let shape = g.op(&format!("s{i}/Shape"), "Shape", &[x], &[]);
            let n = g.op(
                &format!("s{i}/n"),
                "StridedSlice",
                &[shape, b, e, one],
                &[("shrink_axis_mask", int(1))],
            );
            sizes.push(n);
        }
        let start = std::time::Instant::now();
        let dump = g.after_passes(&sizes, &[fold_and_infer, super::common_subexpressions]);
        assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
        assert_eq!(dump.matches("StridedSlice(").count(), 1, "{dump}");
    }
}
