//! The steps of an unrolled loop, found by structure: which node of the graph is which node
//! of the body at which step, and what the steps carry, give and share.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::Direction;
use petgraph::stable_graph::NodeIndex;

use crate::ir::fused::Fused;
use crate::ir::{Graph, ValueRef};
use crate::tensor::Tensor;

/// Fewer steps than this stay as they are.
const MIN_STEPS: usize = 3;
/// Integer constants up to this many entries may differ from step to step (slice bounds).
const MAX_INDEX_LEN: usize = 8;
/// Rounds of matching: a step's copy met before its predecessor is matched on a later round.
const MAX_ROUNDS: usize = 8;

/// An unrolled loop: `steps` copies of one body.
pub(super) struct Unrolled {
    pub steps: usize,
    /// One chain per node of the body, in topological order: the node's copy at each step,
    /// from the first. A value only the next step reads may lack its last copy.
    pub chains: Vec<Vec<NodeIndex>>,
    /// Values each step passes to the next: loop variables.
    pub carried: Vec<Carried>,
    /// Values each step gives, stacked after the steps.
    pub stacked: Vec<Stacked>,
    /// Integer constants that grow with the step (slice bounds).
    pub counted: Vec<Counted>,
    /// `Unpack`s whose outputs the steps read one each, with the rank of what they unstack
    /// (known before an earlier loop's install replaces it).
    pub unstacks: Vec<(NodeIndex, usize)>,
    /// Stacked values (index into `stacked`) also read alone after the loop, at the last step.
    pub last_of_stacked: Vec<usize>,
}

/// Output `port` of chain `chain`, a loop variable starting as `init`.
pub(super) struct Carried {
    pub chain: usize,
    pub port: usize,
    pub init: ValueRef,
}

/// Output `port` of chain `chain` at every step, stacked by `pack`.
pub(super) struct Stacked {
    pub chain: usize,
    pub port: usize,
    pub pack: NodeIndex,
}

/// Input `slot` of chain `chain`: `first + step * by`.
pub(super) struct Counted {
    pub chain: usize,
    pub slot: usize,
    pub first: Tensor,
    pub by: Vec<i64>,
}

/// Every unrolled loop of `g`, none sharing a node with another.
pub(super) fn unrolled_loops(g: &Graph) -> Vec<Unrolled> {
    let Ok(order) = g.topo_order() else { return Vec::new() };
    let mut seeds: BTreeMap<usize, (Vec<Vec<NodeIndex>>, BTreeSet<NodeIndex>)> = BTreeMap::new();
    for seq in counted_sequences(g, &order) {
        seeds.entry(seq.len()).or_default().0.push(seq);
    }
    for &n in &order {
        let node = g.node(n);
        let num = node.outputs.len();
        if node.op == "Unpack" && num >= MIN_STEPS {
            seeds.entry(num).or_default().1.insert(n);
        }
    }
    let mut found: Vec<Unrolled> = Vec::new();
    let mut taken: BTreeSet<NodeIndex> = BTreeSet::new();
    for (steps, (sequences, unstacks)) in seeds {
        let mut m = Matching::new(g, steps, unstacks);
        for seq in sequences {
            m.link_sequence(&seq);
        }
        m.run(&order);
        for l in m.loops(&order) {
            let nodes: Vec<NodeIndex> = l.chains.iter().flatten().copied().collect();
            if nodes.iter().all(|n| !taken.contains(n)) {
                taken.extend(nodes);
                found.push(l);
            }
        }
    }
    found
}

/// Nodes that apply one op to the same values but for small integer constants that grow by
/// the same amount from one to the next (`x[:, 0]`, `x[:, 1]`, ...), in that order: each
/// one step's copy of the first node of a loop body.
fn counted_sequences(g: &Graph, order: &[NodeIndex]) -> Vec<Vec<NodeIndex>> {
    let mut groups: BTreeMap<String, Vec<NodeIndex>> = BTreeMap::new();
    for &n in order {
        let node = g.node(n);
        if node.value.is_some() || node.op == "Placeholder" || !node.subgraphs().is_empty() {
            continue;
        }
        let inputs = g.inputs(n);
        let indices = inputs.iter().filter(|&&v| is_index(g, v)).count();
        if indices == 0 || indices == inputs.len() {
            continue;
        }
        // A synthetic op by its parameters (weights by shape): the links are checked exactly.
        let fused = node.fused.as_ref().map(|f| f.attrs());
        let mut key = format!("{}|{:?}|{:?}", node.op, node.attrs, fused);
        for &v in &inputs {
            match g.const_value(v) {
                Some(t) if is_index(g, v) => key.push_str(&format!("|i{:?}{:?}", t.dtype, t.shape)),
                _ => key.push_str(&format!("|v{}:{}", v.node.index(), v.port)),
            }
        }
        groups.entry(key).or_default().push(n);
    }
    let mut sequences: Vec<Vec<NodeIndex>> = groups
        .into_values()
        .filter(|members| members.len() >= MIN_STEPS)
        .filter_map(|members| counted_order(g, members))
        .collect();
    sequences.sort();
    sequences
}

/// `members` ordered by their integer constants, when those grow by one amount at each.
fn counted_order(g: &Graph, members: Vec<NodeIndex>) -> Option<Vec<NodeIndex>> {
    let mut keyed: Vec<(Vec<i64>, NodeIndex)> = members
        .into_iter()
        .map(|n| {
            let values = g.inputs(n).into_iter().filter(|&v| is_index(g, v));
            let values: Option<Vec<Vec<i64>>> =
                values.map(|v| g.const_value(v).and_then(Tensor::to_i64)).collect();
            values.map(|v| (v.concat(), n))
        })
        .collect::<Option<_>>()?;
    keyed.sort();
    let by = difference(&keyed[1].0, &keyed[0].0)?;
    if by.iter().all(|&d| d == 0) {
        return None;
    }
    for (t, (values, _)) in keyed.iter().enumerate() {
        if advanced(&keyed[0].0, &by, t)? != *values {
            return None;
        }
    }
    Some(keyed.into_iter().map(|(_, n)| n).collect())
}

/// `b - a`, entry by entry.
fn difference(b: &[i64], a: &[i64]) -> Option<Vec<i64>> {
    if a.len() != b.len() {
        return None;
    }
    a.iter().zip(b).map(|(&x, &y)| y.checked_sub(x)).collect()
}

/// `first + t * by`, entry by entry.
fn advanced(first: &[i64], by: &[i64], t: usize) -> Option<Vec<i64>> {
    let t = i64::try_from(t).ok()?;
    first.iter().zip(by).map(|(&f, &d)| d.checked_mul(t).and_then(|x| x.checked_add(f))).collect()
}

/// A small integer constant, not a trained one: what may count steps.
fn is_index(g: &Graph, v: ValueRef) -> bool {
    g.const_value(v).is_some_and(|t| {
        t.dtype.is_int()
            && t.rank() <= 1
            && t.numel() <= MAX_INDEX_LEN
            && !g.node(v.node).is_trained()
    })
}

/// Whether two synthetic ops' payloads are equal (weights included): compared in full only
/// where their parameters already agree.
fn same_fused(a: Option<&Fused>, b: Option<&Fused>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x.op_name() == y.op_name()
                && x.attrs() == y.attrs()
                && format!("{x:?}") == format!("{y:?}")
        }
        _ => false,
    }
}

/// Two constants of the same content that are not weights (two equal weights stay two).
fn same_constant(g: &Graph, a: ValueRef, b: ValueRef) -> bool {
    let trained = |v: ValueRef| g.node(v.node).is_trained();
    match (g.const_value(a), g.const_value(b)) {
        (Some(x), Some(y)) => x == y && !trained(a) && !trained(b),
        _ => false,
    }
}

/// Two small integer constants of one dtype and shape (they may count steps).
fn both_indices(g: &Graph, a: ValueRef, b: ValueRef) -> bool {
    match (g.const_value(a), g.const_value(b)) {
        (Some(x), Some(y)) => {
            is_index(g, a) && is_index(g, b) && x.dtype == y.dtype && x.shape == y.shape
        }
        _ => false,
    }
}

/// Where the first step reads `init`, from before the loop, and the second step reads
/// `carried`, a value of the first step: `carried` is a loop variable starting as `init`.
#[derive(Clone, Copy)]
struct Init {
    carried: ValueRef,
    init: ValueRef,
}

/// Which node is which node of the body at which step (`next` maps a node to its copy at the
/// step after).
struct Matching<'g> {
    g: &'g Graph,
    steps: usize,
    step: BTreeMap<NodeIndex, usize>,
    next: BTreeMap<NodeIndex, NodeIndex>,
    prev: BTreeMap<NodeIndex, NodeIndex>,
    unstacks: BTreeSet<NodeIndex>,
}

impl<'g> Matching<'g> {
    fn new(g: &'g Graph, steps: usize, unstacks: BTreeSet<NodeIndex>) -> Self {
        Matching {
            g,
            steps,
            step: BTreeMap::new(),
            next: BTreeMap::new(),
            prev: BTreeMap::new(),
            unstacks,
        }
    }

    fn link(&mut self, a: NodeIndex, b: NodeIndex, t: usize) {
        self.next.insert(a, b);
        self.prev.insert(b, a);
        self.step.insert(a, t);
        self.step.insert(b, t + 1);
    }

    fn link_sequence(&mut self, seq: &[NodeIndex]) {
        if seq.iter().any(|n| self.step.contains_key(n)) {
            return;
        }
        for (t, pair) in seq.windows(2).enumerate() {
            self.link(pair[0], pair[1], t);
        }
    }

    /// The step `v` belongs to, if it is a step's value.
    fn value_step(&self, v: ValueRef) -> Option<usize> {
        if self.unstacks.contains(&v.node) {
            return Some(v.port);
        }
        self.step.get(&v.node).copied()
    }

    /// The copy of step value `v` at the next step.
    fn value_next(&self, v: ValueRef) -> Option<ValueRef> {
        if self.unstacks.contains(&v.node) {
            return (v.port + 1 < self.steps)
                .then_some(ValueRef { node: v.node, port: v.port + 1 });
        }
        self.next.get(&v.node).map(|&n| ValueRef { node: n, port: v.port })
    }

    /// Matches each node to its copy at the next step, in rounds until no match is added.
    fn run(&mut self, order: &[NodeIndex]) {
        for _ in 0..MAX_ROUNDS {
            let mut added = false;
            for &n in order {
                added |= self.match_next(n);
            }
            if !added {
                break;
            }
        }
    }

    /// Finds `n`'s copy at the next step; whether one was found.
    fn match_next(&mut self, n: NodeIndex) -> bool {
        let g = self.g;
        let node = g.node(n);
        if self.next.contains_key(&n) || node.value.is_some() || node.op == "Placeholder" {
            return false;
        }
        let inputs = g.inputs(n);
        let t = match self.step.get(&n) {
            Some(&t) => t,
            None => match inputs.iter().filter_map(|&v| self.value_step(v)).max() {
                Some(t) => t,
                None => return false,
            },
        };
        if t + 1 >= self.steps {
            return false;
        }
        let anchor = inputs.iter().enumerate().find_map(|(slot, &v)| {
            (self.value_step(v) == Some(t)).then(|| self.value_next(v).map(|w| (slot, w)))?
        });
        let Some((slot, anchor)) = anchor else { return false };
        for (c, s) in g.consumers(anchor) {
            let stepped = self.step.get(&c).is_some_and(|&s| s != t + 1);
            if s != slot || c == n || self.prev.contains_key(&c) || stepped {
                continue;
            }
            if self.copies(n, c, t).is_some() {
                self.link(n, c, t);
                return true;
            }
        }
        false
    }

    /// Whether `b` is `a`'s copy at the step after `a`'s (`t`): the same op and attributes,
    /// reading the next step's copies of `a`'s step values and the same shared values; the
    /// initial states this says (see [`Init`]).
    fn copies(&self, a: NodeIndex, b: NodeIndex, t: usize) -> Option<Vec<Init>> {
        let g = self.g;
        let (x, y) = (g.node(a), g.node(b));
        let same = x.op == y.op
            && x.attrs == y.attrs
            && x.outputs.len() == y.outputs.len()
            && x.subgraphs().is_empty()
            && y.subgraphs().is_empty()
            && x.value.is_none()
            && y.value.is_none()
            && same_fused(x.fused.as_ref(), y.fused.as_ref());
        let (ins_a, ins_b) = (g.inputs(a), g.inputs(b));
        if !same || ins_a.len() != ins_b.len() {
            return None;
        }
        let mut inits = Vec::new();
        for (&u, &v) in ins_a.iter().zip(&ins_b) {
            if self.value_step(u).is_some() {
                if self.value_next(u) != Some(v) {
                    return None;
                }
            } else if u == v || same_constant(g, u, v) || both_indices(g, u, v) {
                continue;
            } else if t == 0
                && self.value_step(v).is_none_or(|s| s == 0)
                && g.const_value(v).is_none()
                && g.node(v.node).op != "Placeholder"
            {
                inits.push(Init { carried: v, init: u });
            } else {
                return None;
            }
        }
        Some(inits)
    }

    /// The loops the matched chains make: chains joined by the values they read of one
    /// another, each set checked to be a loop.
    fn loops(&mut self, order: &[NodeIndex]) -> Vec<Unrolled> {
        let position: BTreeMap<NodeIndex, usize> =
            order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let mut chains = self.chains(order);
        for chain in &mut chains {
            if let Some(first) = self.earlier_start(chain) {
                self.shift(chain, first);
                chain.insert(0, first);
            }
        }
        let mut chain_of: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for (k, chain) in chains.iter().enumerate() {
            chain_of.extend(chain.iter().map(|&m| (m, k)));
        }
        // Chains reading one another's values are one loop.
        let mut parent: Vec<usize> = (0..chains.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for (k, chain) in chains.iter().enumerate() {
            for &m in chain {
                for v in self.g.inputs(m) {
                    if let Some(&j) = chain_of.get(&v.node) {
                        let (a, b) = (root(&mut parent, k), root(&mut parent, j));
                        parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
        let mut components: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for k in 0..chains.len() {
            components.entry(root(&mut parent, k)).or_default().push(k);
        }
        components
            .into_values()
            .filter_map(|ks| {
                let mut members: Vec<Vec<NodeIndex>> =
                    ks.into_iter().map(|k| chains[k].clone()).collect();
                members.sort_by_key(|c| c.get(1).map(|n| position[n]));
                self.check(members)
            })
            .collect()
    }

    /// The matched nodes as chains, each from its first step to its last.
    fn chains(&self, order: &[NodeIndex]) -> Vec<Vec<NodeIndex>> {
        let mut chains: Vec<Vec<NodeIndex>> = Vec::new();
        for &n in order {
            if !self.step.contains_key(&n) || self.prev.contains_key(&n) {
                continue;
            }
            let mut chain = vec![n];
            while let Some(&m) = self.next.get(chain.last().expect("a chain has a start")) {
                if chain.len() > self.steps {
                    break;
                }
                chain.push(m);
            }
            chains.push(chain);
        }
        chains
    }

    /// Where a chain only the next step reads (`h * decay` read by the next `h`) is its
    /// step's end, its first copy was computed before the loop (from the initial `h`). It is
    /// then the next step's start instead, so that the loop carries `h` itself, as a person
    /// writes it, and gives the final `h` rather than one step less. That first copy: the
    /// value the first step's readers read where the second step's read the chain, when it
    /// applies the chain's op to the same shared values, or to what the first step reads
    /// in place of the chain's step values.
    fn earlier_start(&self, chain: &[NodeIndex]) -> Option<NodeIndex> {
        let g = self.g;
        if chain.len() + 1 != self.steps || self.step.get(&chain[0]) != Some(&0) {
            return None;
        }
        // Every reader of every copy is the next step's.
        for (t, &m) in chain.iter().enumerate() {
            for port in 0..g.node(m).outputs.len() {
                let v = ValueRef { node: m, port };
                let next_step = |&(r, _): &(NodeIndex, usize)| self.step.get(&r) == Some(&(t + 1));
                if g.outputs.contains(&v) || !g.consumers(v).iter().all(next_step) {
                    return None;
                }
            }
        }
        // What the first step reads in the second step's readers' place.
        let mut first: Option<ValueRef> = None;
        for port in 0..g.node(chain[0]).outputs.len() {
            for (r, slot) in g.consumers(ValueRef { node: chain[0], port }) {
                let r0 = *self.prev.get(&r)?;
                let z = *g.inputs(r0).get(slot)?;
                if z.port != port || first.is_some_and(|f| f.node != z.node) {
                    return None;
                }
                first = Some(z);
            }
        }
        let z = first?.node;
        let (a, b) = (g.node(z), g.node(chain[0]));
        let same_op = a.op == b.op
            && a.attrs == b.attrs
            && a.outputs.len() == b.outputs.len()
            && a.subgraphs().is_empty()
            && same_fused(a.fused.as_ref(), b.fused.as_ref());
        if !same_op || self.step.contains_key(&z) || a.value.is_some() || a.op == "Placeholder" {
            return None;
        }
        // Read by the first step alone, in the chain's place.
        for port in 0..a.outputs.len() {
            let v = ValueRef { node: z, port };
            let first_step = |&(r, _): &(NodeIndex, usize)| self.step.get(&r) == Some(&0);
            if g.outputs.contains(&v) || !g.consumers(v).iter().all(first_step) {
                return None;
            }
        }
        let (ins_z, ins_c) = (g.inputs(z), g.inputs(chain[0]));
        if ins_z.len() != ins_c.len() {
            return None;
        }
        for (&u, &v) in ins_z.iter().zip(&ins_c) {
            let fits = match self.value_step(v) {
                Some(s) => s == 0 && self.value_step(u).is_none(),
                None => u == v || same_constant(g, u, v) || both_indices(g, u, v),
            };
            if !fits {
                return None;
            }
        }
        Some(z)
    }

    /// Makes `first` the first copy of `chain`, each other copy a step later.
    fn shift(&mut self, chain: &[NodeIndex], first: NodeIndex) {
        for &m in chain {
            *self.step.entry(m).or_default() += 1;
        }
        self.next.insert(first, chain[0]);
        self.prev.insert(chain[0], first);
        self.step.insert(first, 0);
    }

    /// `chains` as a loop, if they are one (see the module's checks).
    fn check(&self, chains: Vec<Vec<NodeIndex>>) -> Option<Unrolled> {
        let (g, steps) = (self.g, self.steps);
        let mut chain_of: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        for (k, chain) in chains.iter().enumerate() {
            // Every chain from the first step, to the last or the one before.
            if self.step.get(&chain[0]) != Some(&0) || chain.len() + 1 < steps {
                return None;
            }
            chain_of.extend(chain.iter().map(|&m| (m, k)));
        }
        // Every link again, with what is known now; and the initial states it says.
        let mut inits: BTreeMap<ValueRef, ValueRef> = BTreeMap::new();
        for chain in &chains {
            for (t, pair) in chain.windows(2).enumerate() {
                for i in self.copies(pair[0], pair[1], t)? {
                    let known = chain_of.contains_key(&i.carried.node)
                        && self.value_step(i.carried) == Some(0);
                    if !known || *inits.entry(i.carried).or_insert(i.init) != i.init {
                        return None;
                    }
                }
            }
        }
        let mut carried: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut stacked: BTreeMap<(usize, usize), NodeIndex> = BTreeMap::new();
        let mut last: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (k, chain) in chains.iter().enumerate() {
            for (t, &m) in chain.iter().enumerate() {
                for port in 0..g.node(m).outputs.len() {
                    let v = ValueRef { node: m, port };
                    if g.outputs.contains(&v) {
                        if t + 1 != steps {
                            return None;
                        }
                        last.insert((k, port));
                    }
                    for (r, _) in g.consumers(v) {
                        match chain_of.get(&r) {
                            Some(_) => match self.step.get(&r) {
                                Some(&s) if s == t => {}
                                Some(&s) if s == t + 1 => {
                                    carried.insert((k, port));
                                }
                                _ => return None,
                            },
                            None if stacks(g, r, chain, port, steps) => {
                                stacked.insert((k, port), r);
                            }
                            None if t + 1 == steps => {
                                last.insert((k, port));
                            }
                            None => return None,
                        }
                    }
                }
            }
        }
        if carried.is_empty() || (stacked.is_empty() && last.is_empty()) {
            return None;
        }
        let carried: Vec<Carried> = carried
            .into_iter()
            .map(|(chain, port)| {
                let first = ValueRef { node: chains[chain][0], port };
                inits.get(&first).map(|&init| Carried { chain, port, init })
            })
            .collect::<Option<_>>()?;
        let stacked: Vec<Stacked> = stacked
            .into_iter()
            .map(|((chain, port), pack)| Stacked { chain, port, pack })
            .collect();
        // A value read after the loop is a variable's final value or the last of a stack.
        let mut last_of_stacked = Vec::new();
        for (k, port) in last {
            if carried.iter().any(|c| (c.chain, c.port) == (k, port)) {
                continue;
            }
            last_of_stacked.push(stacked.iter().position(|s| (s.chain, s.port) == (k, port))?);
        }
        let counted = counted_inputs(g, &chains)?;
        // The loop's last step computes what a chain missing its last copy would have: only
        // from values that step has, never a slice past the end (`x[:, t + 1]`).
        if counted.iter().any(|c| chains[c.chain].len() != steps) {
            return None;
        }
        let unstacks = self.unstacks_read(&chains)?;
        let looped =
            Unrolled { steps, chains, carried, stacked, counted, unstacks, last_of_stacked };
        independent(g, &looped).then_some(looped)
    }

    /// The `Unpack`s the chains read, each with the rank of what it unstacks (known).
    fn unstacks_read(&self, chains: &[Vec<NodeIndex>]) -> Option<Vec<(NodeIndex, usize)>> {
        let mut read = BTreeSet::new();
        for &m in chains.iter().flatten() {
            let inputs = self.g.inputs(m).into_iter();
            read.extend(inputs.map(|v| v.node).filter(|n| self.unstacks.contains(n)));
        }
        read.into_iter()
            .map(|u| {
                let data = *self.g.inputs(u).first()?;
                Some((u, self.g.info(data).shape.as_ref()?.len()))
            })
            .collect()
    }
}

/// Whether node `r` is the `Pack` of output `port` of every copy of `chain`, in step order.
fn stacks(g: &Graph, r: NodeIndex, chain: &[NodeIndex], port: usize, steps: usize) -> bool {
    let inputs = g.inputs(r);
    g.node(r).op == "Pack"
        && chain.len() == steps
        && inputs.len() == steps
        && inputs.iter().zip(chain).all(|(v, &m)| *v == ValueRef { node: m, port })
}

/// The inputs of the chains that are integer constants growing with the step; `None` when a
/// chain reads constants that differ other than so.
fn counted_inputs(g: &Graph, chains: &[Vec<NodeIndex>]) -> Option<Vec<Counted>> {
    let mut counted = Vec::new();
    for (k, chain) in chains.iter().enumerate() {
        let inputs: Vec<Vec<ValueRef>> = chain.iter().map(|&m| g.inputs(m)).collect();
        for slot in 0..inputs[0].len() {
            let values: Vec<ValueRef> = inputs.iter().map(|i| i[slot]).collect();
            // Step values and initial states are not constants.
            let constant = g.const_value(values[1]).is_some();
            if !constant || values.iter().all(|&v| v == values[0] || same_constant(g, v, values[0]))
            {
                continue;
            }
            let ints: Vec<Vec<i64>> = values
                .iter()
                .map(|&v| g.const_value(v).and_then(Tensor::to_i64))
                .collect::<Option<_>>()?;
            let by = difference(&ints[1], &ints[0])?;
            for (t, v) in ints.iter().enumerate() {
                if advanced(&ints[0], &by, t)? != *v {
                    return None;
                }
            }
            let first = g.const_value(values[0])?.clone();
            counted.push(Counted { chain: k, slot, first, by });
        }
    }
    Some(counted)
}

/// Whether nothing the loop reads from outside its steps is computed from them (it would
/// have to run before the loop and after it).
fn independent(g: &Graph, l: &Unrolled) -> bool {
    let members: BTreeSet<NodeIndex> = l.chains.iter().flatten().copied().collect();
    let mut outside: BTreeSet<NodeIndex> = BTreeSet::new();
    for &m in &members {
        outside.extend(g.inputs(m).into_iter().map(|v| v.node).filter(|n| !members.contains(n)));
    }
    outside.extend(l.carried.iter().map(|c| c.init.node));
    let mut seen: BTreeSet<NodeIndex> = BTreeSet::new();
    let mut stack: Vec<NodeIndex> = members.iter().copied().collect();
    while let Some(n) = stack.pop() {
        for c in g.g.neighbors_directed(n, Direction::Outgoing) {
            if !members.contains(&c) && seen.insert(c) {
                if outside.contains(&c) {
                    return false;
                }
                stack.push(c);
            }
        }
    }
    true
}
