//! The `_Loop` an [`Unrolled`] loop becomes, in the form `passes::loops` gives TF's own
//! loops, so that the lowering writes it as any counted loop:
//!
//! - body inputs: the counter `step`, each carried value, each stacked value's list, then
//!   each value from outside the steps the body reads;
//! - body outputs: `step < steps`, `step + 1`, each carried value's next value, each list
//!   with item `step` set;
//! - after the loop: a carried value read after the steps is the loop's output; a stack is
//!   the list stacked on the `Pack`'s axis (a `_StackList`: every item is set), and a
//!   stacked value read alone at the last step is the stack's last item.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::stable_graph::NodeIndex;

use super::steps::Unrolled;
use crate::ir::fused::Fused;
use crate::ir::{Graph, Node, ValueInfo, ValueRef};
use crate::tensor::{DType, Tensor};

/// Replaces the steps of `l` by one loop (the steps themselves are left for `prune`).
/// Nothing changes when a stacked value's dtype or rank, or an unstacked value's rank, is
/// unknown.
pub(super) fn install(g: &mut Graph, l: &Unrolled) {
    let stacks: Option<Vec<StackInfo>> =
        l.stacked.iter().map(|s| stack_info(g, l, s.chain, s.port, s.pack)).collect();
    let Some(stacks) = stacks else { return };
    let name = loop_name(g, l);
    let ordinal = g.node(l.chains[0][0]).ordinal;
    let Some((body, invariants)) = Builder::new(g, l, &name, &stacks).build() else { return };
    let vars = body.outputs.len() - 1;

    let mut outer = Outer { g, name: &name, ordinal };
    let mut inputs = vec![outer.int_scalar("start", 0)];
    inputs.extend(l.carried.iter().map(|c| c.init));
    for (k, info) in stacks.iter().enumerate() {
        let shape = outer.element_shape(&format!("element_shape_{k}"), &info.element);
        let n = outer.int_scalar(&format!("num_steps_{k}"), l.steps as i64);
        let reserve = outer.op(&format!("outputs_{k}"), "TensorListReserve", &[shape, n]);
        outer.set_type(reserve, "element_dtype", info.dtype);
        outer.set_type(reserve, "shape_type", DType::I32);
        inputs.push(reserve);
    }
    inputs.extend(invariants);
    let mut node = Node::fused(name.clone(), Fused::Loop(Box::new(body)), ordinal);
    node.outputs = vec![ValueInfo::default(); vars];
    let lp = outer.g.add_node(node);
    for (slot, v) in inputs.into_iter().enumerate() {
        outer.g.connect(v, lp, slot);
    }

    let last = l.steps - 1;
    for (k, c) in l.carried.iter().enumerate() {
        if let Some(&m) = l.chains[c.chain].get(last) {
            let out = ValueRef { node: lp, port: 1 + k };
            outer.g.replace_uses(ValueRef { node: m, port: c.port }, out);
        }
    }
    for (k, (s, info)) in l.stacked.iter().zip(&stacks).enumerate() {
        let list = ValueRef { node: lp, port: 1 + l.carried.len() + k };
        // Named and placed as the `Pack` it replaces.
        let pack = outer.g.node(s.pack);
        let (pack_name, pack_ordinal) = (pack.name.clone(), pack.ordinal);
        let stack_node = Node::fused(pack_name, Fused::StackList { axis: info.axis }, pack_ordinal);
        let stack = ValueRef { node: outer.g.add_node(stack_node), port: 0 };
        outer.g.connect(list, stack.node, 0);
        outer.g.replace_uses(ValueRef { node: s.pack, port: 0 }, stack);
        if l.last_of_stacked.contains(&k) {
            let index = outer.int_scalar(&format!("last_{k}"), last as i64);
            let axis = outer.int_scalar(&format!("axis_{k}"), info.axis as i64);
            // Named and placed as the last step's value it replaces.
            let m = l.chains[s.chain][last];
            let (m_name, m_ordinal) = (outer.g.node(m).name.clone(), outer.g.node(m).ordinal);
            let gather = outer.g.add_node(Node::new(m_name, "GatherV2", m_ordinal));
            for (slot, v) in [stack, index, axis].into_iter().enumerate() {
                outer.g.connect(v, gather, slot);
            }
            outer.g.replace_uses(
                ValueRef { node: m, port: s.port },
                ValueRef { node: gather, port: 0 },
            );
        }
    }
}

/// What the loop's list of a stacked value is: the value's dtype and info, and the `Pack`'s
/// axis.
struct StackInfo {
    dtype: DType,
    element: ValueInfo,
    axis: usize,
}

fn stack_info(
    g: &Graph,
    l: &Unrolled,
    chain: usize,
    port: usize,
    pack: NodeIndex,
) -> Option<StackInfo> {
    let element = g.info(ValueRef { node: l.chains[chain][0], port });
    let rank = element.shape.as_ref()?.len() + 1;
    let axis = g.node(pack).attr_int_or("axis", 0).ok()?;
    let axis = usize::try_from(if axis < 0 { axis + rank as i64 } else { axis }).ok()?;
    (axis < rank).then_some(())?;
    Some(StackInfo { dtype: element.dtype?, element, axis })
}

/// New nodes of the outer graph, named in the loop's scope.
struct Outer<'a> {
    g: &'a mut Graph,
    name: &'a str,
    ordinal: usize,
}

impl Outer<'_> {
    fn constant(&mut self, label: &str, t: Tensor) -> ValueRef {
        let node = Node::constant(format!("{}/{label}", self.name), t, self.ordinal);
        ValueRef { node: self.g.add_node(node), port: 0 }
    }

    fn int_scalar(&mut self, label: &str, v: i64) -> ValueRef {
        self.constant(label, Tensor::from_i32(vec![], &[v as i32]))
    }

    fn int_vector(&mut self, label: &str, v: &[i64]) -> ValueRef {
        let v: Vec<i32> = v.iter().map(|&x| x as i32).collect();
        self.constant(label, Tensor::from_i32(vec![v.len()], &v))
    }

    /// A list's `element_shape`: the element's shape, `-1` where a size is unknown.
    fn element_shape(&mut self, label: &str, info: &ValueInfo) -> ValueRef {
        let dims: Vec<i64> = match &info.shape {
            Some(dims) => dims.iter().map(|d| d.map_or(-1, |d| d as i64)).collect(),
            None => return self.constant(label, Tensor::from_i32(vec![], &[-1])),
        };
        self.int_vector(label, &dims)
    }

    fn op(&mut self, label: &str, op: &str, inputs: &[ValueRef]) -> ValueRef {
        let n = self.g.add_node(Node::new(format!("{}/{label}", self.name), op, self.ordinal));
        for (slot, &v) in inputs.iter().enumerate() {
            self.g.connect(v, n, slot);
        }
        ValueRef { node: n, port: 0 }
    }

    fn set_type(&mut self, v: ValueRef, attr: &str, t: DType) {
        self.g.node_mut(v.node).set_attr_type(attr, t);
    }
}

/// The body graph, built from the second step's copy of each node.
struct Builder<'a> {
    g: &'a Graph,
    l: &'a Unrolled,
    name: &'a str,
    stacks: &'a [StackInfo],
    body: Graph,
    ordinal: usize,
    step: ValueRef,
    /// Each chain's node in the body.
    copies: Vec<NodeIndex>,
    /// Each node of the steps: its chain and step.
    place: BTreeMap<NodeIndex, (usize, usize)>,
    /// Outer values the body reads, and their placeholders (in first-read order).
    invariants: Vec<(ValueRef, ValueRef)>,
    /// An unstacked value's slice at `step`, by `Unpack`.
    slices: BTreeMap<NodeIndex, ValueRef>,
}

impl<'a> Builder<'a> {
    fn new(g: &'a Graph, l: &'a Unrolled, name: &'a str, stacks: &'a [StackInfo]) -> Self {
        let mut body = Graph::default();
        body.budget = g.budget.clone();
        body.untrained.clone_from(&g.untrained);
        let mut place = BTreeMap::new();
        for (k, chain) in l.chains.iter().enumerate() {
            place.extend(chain.iter().enumerate().map(|(t, &m)| (m, (k, t))));
        }
        let step = ValueRef { node: NodeIndex::end(), port: 0 };
        Builder {
            g,
            l,
            name,
            stacks,
            body,
            ordinal: 0,
            step,
            copies: Vec::new(),
            place,
            invariants: Vec::new(),
            slices: BTreeMap::new(),
        }
    }

    /// The body, and the outer values its inputs after the variables read.
    fn build(mut self) -> Option<(Graph, Vec<ValueRef>)> {
        self.step = self.placeholder("step");
        let carried: Vec<ValueRef> =
            (0..self.l.carried.len()).map(|k| self.placeholder(&format!("state_{k}"))).collect();
        let lists: Vec<ValueRef> =
            (0..self.l.stacked.len()).map(|k| self.placeholder(&format!("outputs_{k}"))).collect();
        let base = self.ordinal;
        for chain in &self.l.chains {
            let mut node = self.g.node(chain[1]).clone();
            node.partial = None;
            // Named in the loop's scope, as TF names a loop body's nodes (`while/MatMul`).
            let scope = self.name.rsplit_once('/').map_or("", |(scope, _)| scope);
            let own = node.name.strip_prefix(scope).unwrap_or(&node.name);
            node.name = format!("{}/{}", self.name, own.trim_start_matches('/'));
            node.ordinal += base;
            self.copies.push(self.body.add_node(node));
        }
        for k in 0..self.l.chains.len() {
            let template = self.l.chains[k][1];
            for (slot, v) in self.g.inputs(template).into_iter().enumerate() {
                let src = self.source(k, slot, v, &carried)?;
                self.body.connect(src, self.copies[k], slot);
            }
        }
        let steps = self.int_scalar("steps", self.l.steps as i64);
        let cond = self.op("less", "Less", &[self.step, steps], DType::I32);
        let one = self.int_scalar("one", 1);
        let next_step = self.op("next_step", "AddV2", &[self.step, one], DType::I32);
        let mut outputs = vec![cond, next_step];
        for c in &self.l.carried {
            outputs.push(ValueRef { node: self.copies[c.chain], port: c.port });
        }
        for (k, s) in self.l.stacked.iter().enumerate() {
            let item = ValueRef { node: self.copies[s.chain], port: s.port };
            let set = self.op(
                &format!("set_{k}"),
                "TensorListSetItem",
                &[lists[k], self.step, item],
                DType::I32,
            );
            self.body.node_mut(set.node).attrs.remove("T");
            self.body.node_mut(set.node).set_attr_type("element_dtype", self.stacks[k].dtype);
            outputs.push(set);
        }
        let mut inputs = vec![self.step];
        inputs.extend(carried);
        inputs.extend(lists);
        inputs.extend(self.invariants.iter().map(|&(_, p)| p));
        self.body.inputs = inputs;
        self.body.outputs = outputs;
        let outer = self.invariants.iter().map(|&(o, _)| o).collect();
        Some((self.body, outer))
    }

    /// What input `slot` of chain `k`'s body node reads, where its second copy reads `v`.
    fn source(
        &mut self,
        k: usize,
        slot: usize,
        v: ValueRef,
        carried: &[ValueRef],
    ) -> Option<ValueRef> {
        if let Some(c) = self.l.counted.iter().find(|c| c.chain == k && c.slot == slot) {
            let (first, by) = (c.first.clone(), c.by.clone());
            return self.counted(&first, &by);
        }
        if let Some(&(j, t)) = self.place.get(&v.node) {
            return match t {
                1 => Some(ValueRef { node: self.copies[j], port: v.port }),
                0 => {
                    let c = self.l.carried.iter().position(|c| (c.chain, c.port) == (j, v.port))?;
                    Some(carried[c])
                }
                _ => None,
            };
        }
        if let Some(&(u, rank)) = self.l.unstacks.iter().find(|(u, _)| *u == v.node) {
            return self.slice(u, rank);
        }
        Some(self.invariant(v))
    }

    /// `first + step * by` (a vector packed from scalars, as TF's own loops bound slices).
    fn counted(&mut self, first: &Tensor, by: &[i64]) -> Option<ValueRef> {
        let values = first.to_i64()?;
        let dtype = first.dtype;
        let scalars: Vec<ValueRef> = values
            .iter()
            .zip(by)
            .map(|(&f, &d)| self.affine(f, d, dtype))
            .collect::<Option<_>>()?;
        if first.rank() == 0 {
            return scalars.first().copied();
        }
        let pack = self.op("bounds", "Pack", &scalars, dtype);
        self.body.node_mut(pack.node).set_attr_int("N", scalars.len() as i64);
        self.body.node_mut(pack.node).set_attr_int("axis", 0);
        Some(pack)
    }

    /// `first + step * by`, a scalar of `dtype`.
    fn affine(&mut self, first: i64, by: i64, dtype: DType) -> Option<ValueRef> {
        let constant = |b: &mut Self, v: i64| b.constant("index", int_tensor(dtype, vec![], &[v]));
        if by == 0 {
            return constant(self, first);
        }
        let mut x = self.step;
        if dtype != DType::I32 {
            x = self.op("step", "Cast", &[x], DType::I32);
            let node = self.body.node_mut(x.node);
            node.attrs.remove("T");
            node.set_attr_type("SrcT", DType::I32);
            node.set_attr_type("DstT", dtype);
        }
        if by != 1 {
            let d = constant(self, by)?;
            x = self.op("scaled", "Mul", &[x, d], dtype);
        }
        if first != 0 {
            let f = constant(self, first)?;
            x = self.op("offset", "AddV2", &[x, f], dtype);
        }
        Some(x)
    }

    /// `x[:, step]` of the value `Unpack` node `u` unstacks, along its axis.
    fn slice(&mut self, u: NodeIndex, rank: usize) -> Option<ValueRef> {
        if let Some(&s) = self.slices.get(&u) {
            return Some(s);
        }
        let g = self.g;
        let data = *g.inputs(u).first()?;
        let axis = g.node(u).attr_int_or("axis", 0).ok()?;
        let axis = usize::try_from(if axis < 0 { axis + rank as i64 } else { axis }).ok()?;
        if axis >= rank {
            return None;
        }
        let x = self.invariant(data);
        let zero = self.int_scalar("zero", 0);
        let one = self.int_scalar("one", 1);
        let end = self.op("end", "AddV2", &[self.step, one], DType::I32);
        let bound = |b: &mut Self, at: ValueRef, label: &str| {
            let entries: Vec<ValueRef> =
                (0..rank).map(|i| if i == axis { at } else { zero }).collect();
            let pack = b.op(label, "Pack", &entries, DType::I32);
            b.body.node_mut(pack.node).set_attr_int("N", rank as i64);
            b.body.node_mut(pack.node).set_attr_int("axis", 0);
            pack
        };
        let begin = bound(self, self.step, "begin");
        let end = bound(self, end, "end");
        let strides =
            self.constant("strides", Some(Tensor::from_i32(vec![rank], &vec![1; rank])))?;
        let slice = self.op("x_t", "StridedSlice", &[x, begin, end, strides], DType::I32);
        let others = ((1i64 << rank) - 1) & !(1i64 << axis);
        let node = self.body.node_mut(slice.node);
        node.attrs.remove("T");
        node.set_attr_type("Index", DType::I32);
        node.set_attr_int("begin_mask", others);
        node.set_attr_int("end_mask", others);
        node.set_attr_int("shrink_axis_mask", 1 << axis);
        node.set_attr_int("ellipsis_mask", 0);
        node.set_attr_int("new_axis_mask", 0);
        if let Some(t) = g.node(u).attr_type("T").ok().or(g.info(data).dtype) {
            self.body.node_mut(slice.node).set_attr_type("T", t);
        }
        self.slices.insert(u, slice);
        Some(slice)
    }

    /// The placeholder of outer value `v`.
    fn invariant(&mut self, v: ValueRef) -> ValueRef {
        if let Some(&(_, p)) = self.invariants.iter().find(|(o, _)| *o == v) {
            return p;
        }
        let p = self.placeholder(&format!("invariant_{}", self.invariants.len()));
        self.invariants.push((v, p));
        p
    }

    fn placeholder(&mut self, label: &str) -> ValueRef {
        let mut node = Node::new(format!("{}/{label}", self.name), "Placeholder", self.ordinal);
        node.outputs = vec![ValueInfo::default()];
        self.ordinal += 1;
        ValueRef { node: self.body.add_node(node), port: 0 }
    }

    fn constant(&mut self, label: &str, t: Option<Tensor>) -> Option<ValueRef> {
        let node = Node::constant(format!("{}/{label}", self.name), t?, self.ordinal);
        Some(ValueRef { node: self.body.add_node(node), port: 0 })
    }

    fn int_scalar(&mut self, label: &str, v: i64) -> ValueRef {
        let t = Tensor::from_i32(vec![], &[v as i32]);
        let node = Node::constant(format!("{}/{label}", self.name), t, self.ordinal);
        ValueRef { node: self.body.add_node(node), port: 0 }
    }

    /// A node of op `op` of element type `t` (attribute `T`).
    fn op(&mut self, label: &str, op: &str, inputs: &[ValueRef], t: DType) -> ValueRef {
        let mut node = Node::new(format!("{}/{label}", self.name), op, self.ordinal);
        node.set_attr_type("T", t);
        let n = self.body.add_node(node);
        for (slot, &v) in inputs.iter().enumerate() {
            self.body.connect(v, n, slot);
        }
        ValueRef { node: n, port: 0 }
    }
}

/// An integer tensor of `dtype` (int32 or int64).
fn int_tensor(dtype: DType, shape: Vec<usize>, v: &[i64]) -> Option<Tensor> {
    match dtype {
        DType::I32 => {
            let v: Option<Vec<i32>> = v.iter().map(|&x| i32::try_from(x).ok()).collect();
            Some(Tensor::from_i32(shape, &v?))
        }
        DType::I64 => Some(Tensor::from_i64(shape, v)),
        _ => None,
    }
}

/// `<scope the body's nodes share>/loop`, unique in `g`.
fn loop_name(g: &Graph, l: &Unrolled) -> String {
    let mut common: Vec<&str> = g.node(l.chains[0][1]).name.split('/').collect();
    common.pop();
    for chain in &l.chains[1..] {
        let parts: Vec<&str> = g.node(chain[1]).name.split('/').collect();
        let same = common.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        common.truncate(same.min(parts.len().saturating_sub(1)));
    }
    // A loop at the top of the graph (or of a SavedModel's function calls) is the model's
    // recurrence (`recurrence_loop`).
    let call = |c: &&str| {
        c.trim_end_matches(|d: char| d.is_ascii_digit() || d == '_').ends_with("PartitionedCall")
    };
    let leaf = if common.iter().all(call) { "recurrence" } else { "loop" };
    let base = common.iter().chain([&leaf]).copied().collect::<Vec<&str>>().join("/");
    let taken: BTreeSet<&str> = g.g.node_weights().map(|n| n.name.as_str()).collect();
    let mut name = base.clone();
    let mut k = 1;
    while taken.contains(name.as_str()) {
        name = format!("{base}_{k}");
        k += 1;
    }
    name
}
