//! Blocks repeated inside repeated blocks, made classes first: D-FINE's encoder blocks each
//! hold two CSP layers of two RepVGG bottlenecks. With one level of classes, the encoder
//! block spelled out its four bottlenecks under their whole scopes
//! (`self.csp_rep1_bottleneck_0_conv1_convolution`, thirty-odd statements); with the inner
//! ones first, it holds `self.csp_rep1 = CspRep(32)`, which holds `self.bottleneck_0 =
//! CspRepBottleneck()`, as Hugging Face's `RTDetrCSPRepLayer` holds its `RTDetrRepVggBlock`s.
//! Each round makes the innermost level's classes; the next finds the level around them.
//!
//! The inner groups are chosen as the outer ones are, among the blocks inside a chosen one;
//! a group goes only where every instance of each outer class holds as many of its members,
//! so the outer blocks stay alike once their inner ones are calls. Then the spans are made
//! anew (each inner block one span, named by its scope, calling its instance) for the
//! search of the outer blocks. A composite layer that occurs once but holds blocks of a
//! class the model uses elsewhere (HGNetV2's first block, around one of its stem's
//! `EmbedderStem`s) is an outer block too: a class holding an instance, where before the
//! instance kept it spelled out under the model.

use std::collections::BTreeSet;

use super::{Group, Member, Tag, choose};
use crate::lower::Span;
use crate::lower::module::Module;

/// The groups of blocks repeated inside the `chosen` ones and inside no other repeated
/// block there: those to make classes of first.
pub(super) fn innermost(
    members: &mut [Member],
    chosen: &[Group],
    holders: &[usize],
    module: &Module,
) -> Vec<Group> {
    let lone =
        |i: &usize| Group { members: vec![*i], parts: Vec::new(), variants: Default::default() };
    let mut outer: Vec<Group> = chosen.iter().cloned().chain(holders.iter().map(lone)).collect();
    let grouped: BTreeSet<usize> = chosen.iter().flat_map(|g| g.members.iter().copied()).collect();
    let mut level = inner_groups(members, &outer, Some(&grouped), module);
    // Each level's blocks lie strictly inside the last's: this ends.
    loop {
        let deeper = inner_groups(members, &level, None, module);
        if deeper.is_empty() {
            break;
        }
        outer = std::mem::replace(&mut level, deeper);
    }
    // Named as the outer block names them: D-FINE's `csp_rep1` of `hybrid_encoder_fpn_
    // block_1` is a `CspRep`, Xception's `block5_sepconv1` a `Sepconv`.
    for g in &level {
        for &i in &g.members {
            let mut holders = outer.iter().flat_map(|o| &o.members);
            let Some(&o) = holders.find(|&&o| within(members, i, o)) else { continue };
            let words = members[o].instance.split('_').count();
            let title: Vec<&str> = members[i].title.split('_').collect();
            if title.len() > words {
                members[i].title = title[words..].join("_");
            }
        }
    }
    level
}

/// Whether member `i` lies inside member `o`, under a scope of its own (not the same block
/// with or without its residual add).
pub(super) fn within(members: &[Member], i: usize, o: usize) -> bool {
    let (inner, outer) = (&members[i], &members[o]);
    let nested = match (&inner.tag, &outer.tag) {
        (Tag::Prefix(i), Tag::Prefix(o)) => {
            i.strip_prefix(o.as_str()).is_some_and(|rest| rest.starts_with('_'))
        }
        (i, o) => i != o,
    };
    nested
        && outer.spans.start <= inner.spans.start
        && inner.spans.end <= outer.spans.end
        && outer.stmts.start <= inner.stmts.start
        && inner.stmts.end <= outer.stmts.end
}

/// The groups of blocks repeated inside the `chosen` ones, of which every outer block of one
/// class holds as many, more than one. With `grouped` (the blocks of the model's repeated
/// blocks), a group takes the blocks of its structure outside every chosen one too
/// (Xception's `block2_sepconv2` beside the `sepconv`s of its middle blocks), which share
/// its class, and an outer block may hold one block only where that is one of `grouped`.
fn inner_groups(
    members: &[Member],
    chosen: &[Group],
    grouped: Option<&BTreeSet<usize>>,
    module: &Module,
) -> Vec<Group> {
    let within = |i: usize, o: usize| within(members, i, o);
    let outer: Vec<usize> = chosen.iter().flat_map(|g| g.members.iter().copied()).collect();
    let candidate =
        |i: usize| matches!(members[i].tag, Tag::Prefix(_)) && members[i].extra_outputs.is_empty();
    let mut eligible: Vec<bool> =
        (0..members.len()).map(|i| candidate(i) && outer.iter().any(|&o| within(i, o))).collect();
    if !eligible.contains(&true) {
        return Vec::new();
    }
    if grouped.is_some() {
        let inside: BTreeSet<&str> = (0..members.len())
            .filter(|&i| eligible[i])
            .map(|i| members[i].signature.as_str())
            .collect();
        // Not part of an outer block (but it may be one: the model's other `EmbedderStem`s
        // beside the one HGNetV2's first block holds).
        let overlaps = |i: usize, o: usize| {
            let (a, b) = (&members[i].spans, &members[o].spans);
            i != o && a.start < b.end && b.start < a.end
        };
        for i in 0..members.len() {
            if candidate(i)
                && inside.contains(members[i].signature.as_str())
                && !outer.iter().any(|&o| overlaps(i, o))
            {
                eligible[i] = true;
            }
        }
    }
    let (mut inner, _) = choose(members, &eligible, module);
    // A block repeated inside its outer block (D-FINE's two bottlenecks in each CSP layer),
    // as many times in each: one that occurs once in each (an Inception block's branch, a
    // transformer layer's attention) reads better spelled out there, as torchvision and
    // Hugging Face write them, unless it is an instance of a class anyway (HGNetV2's first
    // block holds one of the model's `EmbedderStem`s).
    let instance = |i: usize| grouped.is_some_and(|g| g.contains(&i));
    inner.retain(|g| {
        g.members.iter().any(|&i| outer.iter().any(|&o| within(i, o)))
            && chosen.iter().all(|o| {
                let held: Vec<Vec<usize>> = o
                    .members
                    .iter()
                    .map(|&m| g.members.iter().copied().filter(|&i| within(i, m)).collect())
                    .collect();
                let n = held[0].len();
                held.iter().all(|h| h.len() == n)
                    && (n != 1 || held.iter().flatten().all(|&i| instance(i)))
            })
    });
    inner
}

/// The spans once the `moved` blocks are calls of their instances: each block one span of
/// one statement and one layer, the others where their statements, layers and buffers now
/// are. `sizes` are the numbers of statements, layers and buffers before.
pub(super) fn respan(
    spans: &[Span],
    moved: &[&Member],
    (statements, layers, buffers): (usize, usize, usize),
) -> Vec<Span> {
    let mut gone_stmts = vec![false; statements];
    let mut gone_layers = vec![false; layers];
    let mut gone_buffers = vec![false; buffers];
    // Each block keeps its first statement (now the call) and first layer (the instance).
    let mark = |gone: &mut Vec<bool>, k: usize| {
        if let Some(g) = gone.get_mut(k) {
            *g = true;
        }
    };
    for m in moved {
        m.stmts.clone().skip(1).for_each(|k| mark(&mut gone_stmts, k));
        m.layers.iter().skip(1).for_each(|&l| mark(&mut gone_layers, l));
        m.buffers.iter().for_each(|&b| mark(&mut gone_buffers, b));
    }
    let (si, li, bi) =
        (new_places(&gone_stmts), new_places(&gone_layers), new_places(&gone_buffers));
    let mut out = Vec::with_capacity(spans.len());
    let mut i = 0;
    while i < spans.len() {
        let span = &spans[i];
        let Some(m) = moved.iter().find(|m| m.spans.start == i) else {
            out.push(Span {
                stmts: si.at(span.stmts.start)..si.at(span.stmts.end),
                layers: li.at(span.layers.start)..li.at(span.layers.end),
                buffers: bi.at(span.buffers.start)..bi.at(span.buffers.end),
                ..span.clone()
            });
            i += 1;
            continue;
        };
        let (no_layers, no_buffers) = (li.at(span.layers.start), bi.at(span.buffers.start));
        // The layout conversions a block leaves before it stay, under their own scope.
        if span.stmts.start < m.stmts.start {
            out.push(Span {
                stmts: si.at(span.stmts.start)..si.at(m.stmts.start),
                layers: no_layers..no_layers,
                buffers: no_buffers..no_buffers,
                ..span.clone()
            });
        }
        let scope = match &m.tag {
            Tag::Prefix(p) => p.clone(),
            _ => m.instance.clone(),
        };
        let first_layer = m.layers.first().copied().unwrap_or(span.layers.start);
        let (call, instance) = (si.at(m.stmts.start), li.at(first_layer));
        out.push(Span {
            scope,
            head: spans.get(m.spans.end.saturating_sub(1)).unwrap_or(span).head.clone(),
            stmts: call..call + 1,
            layers: instance..instance + 1,
            buffers: no_buffers..no_buffers,
            movable: true,
            shared: false,
        });
        i = m.spans.end.max(i + 1);
    }
    out
}

/// Where each item is once those `gone` are removed.
struct Places(Vec<usize>);

impl Places {
    fn at(&self, i: usize) -> usize {
        // One entry past the last, for range ends; a span out of range (none is) at the end.
        self.0.get(i).or(self.0.last()).copied().unwrap_or(0)
    }
}

fn new_places(gone: &[bool]) -> Places {
    let mut places = Vec::with_capacity(gone.len() + 1);
    let mut kept = 0;
    for &g in gone {
        places.push(kept);
        kept += usize::from(!g);
    }
    places.push(kept);
    Places(places)
}

#[cfg(test)]
mod tests {
    use crate::ir::ValueRef;
    use crate::testing::*;
    use insta::assert_snapshot;

    fn conv_relu(g: &mut TestGraph, scope: &str, x: ValueRef) -> ValueRef {
        let y = g.conv4(scope, x, 1);
        g.op(&format!("m/{scope}/Relu"), "Relu", &[y], &[])
    }

    /// D-FINE's encoder blocks, each a projection and two RepVGG bottlenecks (a 3x3 and a
    /// 1x1 convolution of one input, added): the bottlenecks are a class of their own, which
    /// the block class holds, their weights under both instances.
    #[test]
    fn blocks_repeated_inside_repeated_blocks_are_classes_they_hold() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        for b in 1..=2 {
            x = g.conv4(&format!("block_{b}_proj"), x, 1);
            for r in 1..=2 {
                let scope = format!("block_{b}_rep_{r}");
                let wide = g.conv4(&format!("{scope}_conv1"), x, 3);
                let narrow = g.conv4(&format!("{scope}_conv2"), x, 1);
                let sum = g.op(&format!("m/{scope}_add/add"), "AddV2", &[wide, narrow], &[]);
                x = g.op(&format!("m/{scope}_act/Relu"), "Relu", &[sum], &[]);
            }
        }
        assert_snapshot!(g.lower(&[x]), @"
        class Rep():
          self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
          self.conv2 = nn.Conv2d(4, 4, 1, bias=False)
          x = self.conv1(inputs)
          conv2 = self.conv2(inputs)
          x = x + conv2
          x = F.relu(x, inplace=True)
          return x (from inputs)
        class Block():
          self.proj = nn.Conv2d(4, 4, 1, bias=False)
          self.rep_1 = Rep()
          self.rep_2 = Rep()
          x = self.proj(x)
          x = self.rep_1(x)
          x = self.rep_2(x)
          return x (from x)
        self.blocks = nn.ModuleList([Block() for _ in range(2)])
        # blocks.0.proj.weight: [4, 4, 1, 1]
        # blocks.0.rep_1.conv1.weight: [4, 4, 3, 3]
        # blocks.0.rep_1.conv2.weight: [4, 4, 1, 1]
        # blocks.0.rep_2.conv1.weight: [4, 4, 3, 3]
        # blocks.0.rep_2.conv2.weight: [4, 4, 1, 1]
        # blocks.1.proj.weight: [4, 4, 1, 1]
        # blocks.1.rep_1.conv1.weight: [4, 4, 3, 3]
        # blocks.1.rep_1.conv2.weight: [4, 4, 1, 1]
        # blocks.1.rep_2.conv1.weight: [4, 4, 3, 3]
        # blocks.1.rep_2.conv2.weight: [4, 4, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 2, 3, 1)
        return x
        ");
    }

    /// HGNetV2's first block: one conv block like the stem's, then its own layers. It occurs
    /// once, and is a class holding an instance of the stem's class.
    #[test]
    fn a_layer_that_occurs_once_may_hold_an_instance_of_a_class() {
        let mut g = TestGraph::new();
        let mut x = g.input("image", &[-1, 8, 8, 4]);
        for s in 1..=2 {
            x = conv_relu(&mut g, &format!("stem_{s}_conv1"), x);
            x = conv_relu(&mut g, &format!("stem_{s}_conv2"), x);
        }
        let block = "encoder_first_stage";
        let y = conv_relu(&mut g, &format!("{block}/conv_block_0/conv1"), x);
        let y = conv_relu(&mut g, &format!("{block}/conv_block_0/conv2"), y);
        let y = g.op(&format!("m/{block}/add/add"), "AddV2", &[x, y], &[]);
        let y = conv_relu(&mut g, &format!("{block}/aggregation_squeeze"), y);
        let y = conv_relu(&mut g, &format!("{block}/aggregation_excite"), y);
        assert_snapshot!(g.lower(&[y]), @"
        class Stem():
          self.conv1 = nn.Conv2d(4, 4, 1, bias=False)
          self.conv2 = nn.Conv2d(4, 4, 1, bias=False)
          x = self.conv1(x)
          x = F.relu(x, inplace=True)
          x = self.conv2(x)
          x = F.relu(x, inplace=True)
          return x (from x)
        class EncoderFirstStage():
          self.conv_block = Stem()
          self.aggregation_squeeze = nn.Conv2d(4, 4, 1, bias=False)
          self.aggregation_excite = nn.Conv2d(4, 4, 1, bias=False)
          x = self.conv_block(inputs)
          x = inputs + x
          x = self.aggregation_squeeze(x)
          x = F.relu(x, inplace=True)
          x = self.aggregation_excite(x)
          x = F.relu(x, inplace=True)
          return x (from inputs)
        self.stems = nn.ModuleList([Stem() for _ in range(2)])
        self.encoder_first_stage = EncoderFirstStage()
        # stems.0.conv1.weight: [4, 4, 1, 1]
        # stems.0.conv2.weight: [4, 4, 1, 1]
        # stems.1.conv1.weight: [4, 4, 1, 1]
        # stems.1.conv2.weight: [4, 4, 1, 1]
        # encoder_first_stage.conv_block.conv1.weight: [4, 4, 1, 1]
        # encoder_first_stage.conv_block.conv2.weight: [4, 4, 1, 1]
        # encoder_first_stage.aggregation_squeeze.weight: [4, 4, 1, 1]
        # encoder_first_stage.aggregation_excite.weight: [4, 4, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        stem_2_conv2 = x
        for layer in self.stems:
            stem_2_conv2 = layer(stem_2_conv2)
        x = self.encoder_first_stage(stem_2_conv2).permute(0, 2, 3, 1)
        return x
        ");
    }

    /// MobileNetV5's inverted residual blocks hold blocks Keras numbered with its counters
    /// over the whole model (`conv_norm_act_4`, `conv_norm_act_5`): not a model of numbered
    /// layers, whose layers are the classes to read, but a block holding two.
    #[test]
    fn a_layer_holding_blocks_keras_counted_is_a_class() {
        let mut g = TestGraph::new();
        let x = g.input("image", &[-1, 8, 8, 4]);
        let x = conv_relu(&mut g, "stem", x);
        let block = "universal_inverted_residual";
        let mut y = x;
        for k in 4..=5 {
            y = conv_relu(&mut g, &format!("{block}/conv_norm_act_{k}/expand"), y);
            y = conv_relu(&mut g, &format!("{block}/conv_norm_act_{k}/reduce"), y);
        }
        let y = g.op(&format!("m/{block}/add/add"), "AddV2", &[x, y], &[]);
        let y = conv_relu(&mut g, &format!("{block}/projection_convolution"), y);
        assert_snapshot!(g.lower(&[y]), @"
        class ConvNormAct():
          self.expand = nn.Conv2d(4, 4, 1, bias=False)
          self.reduce = nn.Conv2d(4, 4, 1, bias=False)
          x = self.expand(inputs)
          x = F.relu(x, inplace=True)
          x = self.reduce(x)
          x = F.relu(x, inplace=True)
          return x (from inputs)
        class UniversalInvertedResidual():
          self.conv_norm_act_1 = ConvNormAct()
          self.conv_norm_act_2 = ConvNormAct()
          self.projection_convolution = nn.Conv2d(4, 4, 1, bias=False)
          x = self.conv_norm_act_1(inputs)
          x = self.conv_norm_act_2(x)
          x = inputs + x
          x = self.projection_convolution(x)
          x = F.relu(x, inplace=True)
          return x (from inputs)
        self.stem = nn.Conv2d(4, 4, 1, bias=False)
        self.universal_inverted_residual = UniversalInvertedResidual()
        # stem.weight: [4, 4, 1, 1]
        # universal_inverted_residual.conv_norm_act_1.expand.weight: [4, 4, 1, 1]
        # universal_inverted_residual.conv_norm_act_1.reduce.weight: [4, 4, 1, 1]
        # universal_inverted_residual.conv_norm_act_2.expand.weight: [4, 4, 1, 1]
        # universal_inverted_residual.conv_norm_act_2.reduce.weight: [4, 4, 1, 1]
        # universal_inverted_residual.projection_convolution.weight: [4, 4, 1, 1]
        ---
        x = image.permute(0, 3, 1, 2)
        x = self.stem(x)
        x = F.relu(x, inplace=True)
        x = self.universal_inverted_residual(x).permute(0, 2, 3, 1)
        return x
        ");
    }
}
