//! Stacks: instances of one block class called one after another, each on the previous
//! one's output (BERT's twelve `TransformerLayer`s, a ResNet stage's identical blocks),
//! become one `nn.ModuleList` and a `for` loop, as a person writes them:
//!
//! ```python
//! self.transformer_layers = nn.ModuleList([TransformerLayer() for _ in range(12)])
//! ...
//! for layer in self.transformer_layers:
//!     x = layer(x, padding_mask)
//! ```
//!
//! Blocks whose sizes grow by a constant step (DenseNet's, by its growth rate) are one list
//! too: `nn.ModuleList([ConvBlock(64 + 32 * i) for i in range(6)])`, as torchvision's
//! `_DenseBlock` builds its layers.
//!
//! The instances' weights move from `transformer_layer_3.*` to `transformer_layers.3.*`.
//! Runs on the statements after block classes are made, before chaining.

mod streams;

use std::collections::BTreeSet;

use self::streams::StreamCall;
use super::super::chain::read_later;
use crate::lower::module::{Layer, Module};
use crate::py::names::Scope;
use crate::py::printer::flat;
use crate::py::{Assign, BinOp, Call, Expr, ListComp, Ref, Stmt};

/// A call `out = self.<instance>(input, rest...)` of a block class instance.
struct BlockCall {
    instance: String,
    /// The instance's constructor (`TransformerLayer()`).
    ctor: Call,
    input: String,
    output: String,
    rest: Vec<Expr>,
}

/// `value` as a call of a block class instance with positional arguments only: the call,
/// the instance and its constructor (`TransformerLayer()`).
fn instance_call<'a>(
    value: &'a Expr,
    module: &Module,
    classes: &BTreeSet<&str>,
) -> Option<(&'a Call, String, Call)> {
    let Expr::Call(c) = value else { return None };
    let instance = c.func.as_self_attr()?.to_string();
    let layer = module.layers.iter().find(|l| l.name == instance)?;
    let Expr::Call(ctor) = &layer.ctor else { return None };
    if !ctor.func.as_name().is_some_and(|n| classes.contains(n)) || !c.kwargs.is_empty() {
        return None;
    }
    Some((c, instance, (**ctor).clone()))
}

fn block_call(s: &Assign, module: &Module, classes: &BTreeSet<&str>) -> Option<BlockCall> {
    let output = s.target.as_name()?.to_string();
    let (c, instance, ctor) = instance_call(&s.value, module, classes)?;
    let input = c.args.first()?.as_name()?.to_string();
    Some(BlockCall { instance, ctor, input, output, rest: c.args[1..].to_vec() })
}

/// Fewer blocks than this do not make a progression of sizes (two sizes are no pattern).
const MIN_PROGRESSION: usize = 3;

/// How each positional argument of `ctors` (one constructor, the same keywords) goes: the
/// same in all (`None`), or integers growing by a constant step (`Some((first, step))`),
/// as DenseNet's blocks grow by the growth rate: `ConvBlock(64)`, `ConvBlock(96)`, ...
/// `None` overall when the constructors are not one call or an argument varies otherwise.
fn progression(ctors: &[&Call]) -> Option<Vec<Option<(i64, i64)>>> {
    let first = ctors.first()?;
    let same_call = |c: &&Call| {
        flat(&c.func) == flat(&first.func)
            && c.kwargs == first.kwargs
            && c.args.len() == first.args.len()
    };
    if !ctors.iter().all(same_call) {
        return None;
    }
    (0..first.args.len())
        .map(|j| {
            if ctors.iter().all(|c| c.args[j] == first.args[j]) {
                return Some(None);
            }
            let values: Vec<i64> =
                ctors.iter().map(|c| c.args[j].as_int()).collect::<Option<_>>()?;
            // (A step `term` can write: its magnitude fits an i64.)
            let d = values[1].checked_sub(values[0]).filter(|d| d.checked_abs().is_some())?;
            let a = values[0];
            let steady = values
                .iter()
                .enumerate()
                .all(|(i, &v)| (i as i64).checked_mul(d).and_then(|x| x.checked_add(a)) == Some(v));
            steady.then_some(Some((a, d)))
        })
        .collect()
}

/// `a + d * i` (`64 + 32 * i`), as written for the `i`-th block of a progression.
fn term(a: i64, d: i64) -> Expr {
    let i = Expr::name("i");
    let step = if d.abs() == 1 { i } else { Expr::int(d.abs()).binop(BinOp::Mul, i) };
    match (a, d < 0) {
        (0, false) => step,
        (0, true) => step.negated(),
        (_, false) => Expr::int(a).binop(BinOp::Add, step),
        (_, true) => Expr::int(a).binop(BinOp::Sub, step),
    }
}

/// Runs of consecutive statements that `call` reads as calls of block instances: grown while
/// `extends(run, next, end)` (`end`: the statement after the run), kept where `keep(run)`.
/// (first statement, number of calls) each.
fn scan<C>(
    stmts: &[Assign],
    call: impl Fn(&Assign) -> Option<C>,
    extends: impl Fn(&[C], &C, usize) -> bool,
    keep: impl Fn(&[C], usize) -> bool,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < stmts.len() {
        let Some(first) = call(&stmts[k]) else {
            k += 1;
            continue;
        };
        let mut run = vec![first];
        while let Some(next) = stmts.get(k + run.len()).and_then(&call) {
            if !extends(&run, &next, k + run.len()) {
                break;
            }
            run.push(next);
        }
        if keep(&run, k) {
            out.push((k, run.len()));
            k += run.len();
        } else {
            k += 1;
        }
    }
    out
}

/// The runs: (first statement, number of calls), each at least two calls long.
fn runs(module: &Module, stmts: &[Assign], returns: &[Expr]) -> Vec<(usize, usize)> {
    // Not units: NASNet's two `SeparableConv`s of a branch are `separable_conv_1_..._left1`
    // and `separable_conv_2_..._left1`, names a list would lose.
    let classes: BTreeSet<&str> =
        module.classes.iter().filter(|c| !c.unit).map(|c| c.name.as_str()).collect();
    let extends = |run: &[BlockCall], next: &BlockCall, end: usize| {
        let prev = run.last().expect("a run is never empty");
        let ctors: Vec<&Call> = run.iter().chain([next]).map(|c| &c.ctor).collect();
        next.input == prev.output
            && progression(&ctors).is_some()
            && next.rest == prev.rest
            && !next.rest.iter().any(|r| r.reads(&prev.output) > 0)
            // (`x = block(x)` binds it again: what reads `x` after reads its own.)
            && (next.output == prev.output || !read_later(&prev.output, stmts, end + 1, returns))
    };
    let keep = |run: &[BlockCall], _: usize| {
        // The loop passes the same other arguments to every layer.
        let first = &run[0];
        let ctors: Vec<&Call> = run.iter().map(|c| &c.ctor).collect();
        let varies = progression(&ctors).is_some_and(|p| p.iter().any(Option::is_some));
        !first.rest.iter().any(|r| r.reads(&first.input) > 0)
            && run.len() >= 2
            && (!varies || run.len() >= MIN_PROGRESSION)
    };
    scan(stmts, |s| block_call(s, module, &classes), extends, keep)
}

/// What the instances' names share up to where they part, without the number that parts
/// them: `transformer_layer` of `transformer_layer_0`, `transformer_layer_1`; of
/// `decoder_layer_0_1`, `decoder_layer_1_1` too (Keras's `_1` of a second call after the
/// number); `conv2_block` of `conv2_block1`, `conv2_block2`.
fn shared_family(instances: &[&str]) -> String {
    let words: Vec<Vec<&str>> = instances.iter().map(|i| i.split('_').collect()).collect();
    let first = &words[0];
    let parts = (0..first.len())
        .find(|&k| words.iter().any(|w| w.get(k) != Some(&first[k])))
        .unwrap_or(first.len());
    let mut out: Vec<&str> = first[..parts].to_vec();
    if let Some(word) = first.get(parts) {
        // Lettered after a number (Keras' EfficientNet `block3b`, `block3c`; TF-Slim's
        // `Mixed_5b`, `Mixed_5c`): the family is the numbered stage (`block3`, `mixed_5`).
        fn lettered(w: &str) -> Option<&str> {
            let stem = w.strip_suffix(|c: char| c.is_ascii_lowercase())?;
            stem.ends_with(|c: char| c.is_ascii_digit()).then_some(stem)
        }
        if let Some(stem) = lettered(word)
            && words.iter().all(|w| {
                w.get(parts).and_then(|v| lettered(v)) == Some(stem)
                    && w[parts + 1..] == first[parts + 1..]
            })
        {
            out.push(stem);
            return out.join("_");
        }
        let stem = word.trim_end_matches(|c: char| c.is_ascii_digit());
        // They part in that number alone: what follows it is the same in each.
        let same = words.iter().all(|w| {
            w.get(parts).is_some_and(|v| v.trim_end_matches(|c: char| c.is_ascii_digit()) == stem)
                && w[parts + 1..] == first[parts + 1..]
        });
        if !same {
            return String::new();
        }
        if !stem.is_empty() {
            out.push(stem);
        }
    }
    out.join("_")
}

/// A name for the list: the instances' family in the plural (`transformer_layers`; not
/// `encoder_layerss` of `encoder_layers_0`).
fn list_name(family: &str, attrs: &mut Scope) -> String {
    let fam = family.trim_end_matches('_');
    // A numbered stage of lettered blocks (`block3` of `block3b`, `block3c`) is its name.
    if fam.ends_with(|c: char| c.is_ascii_digit()) {
        return attrs.fresh(fam);
    }
    let plural = if fam.ends_with('s') { fam.to_string() } else { format!("{fam}s") };
    let named = fam.bytes().any(|b| b.is_ascii_alphabetic());
    attrs.fresh(if named { &plural } else { "blocks" })
}

/// Whether renaming reads of `from` to `to` in `stmts[start..]` and `returns` is safe: `to`
/// is not bound again while `from` is still read.
fn rename_is_safe(stmts: &[Assign], start: usize, from: &str, to: &str, returns: &[Expr]) -> bool {
    for (k, s) in stmts.iter().enumerate().skip(start) {
        let bound = s.target.bound_names();
        if bound.contains(&from) {
            return true;
        }
        if bound.contains(&to) && read_later(from, stmts, k + 1, returns) {
            return false;
        }
    }
    true
}

fn rename_reads(e: &Expr, from: &str, to: &str) -> Expr {
    e.renamed(&|r| match r {
        Ref::Var(v) if v == from => Some(Expr::name(to)),
        _ => None,
    })
}

/// The instances as one `nn.ModuleList` named `list`, in place of the first: the others'
/// attributes go and every weight moves under it (`transformer_layer_3.*` to
/// `transformer_layers.3.*`).
fn into_list(module: &mut Module, instances: &[&str], ctors: &[&Call], list: &str) {
    let steps = progression(ctors).expect("a run's constructors are a progression");
    let varies = steps.iter().any(Option::is_some);
    let mut elt = ctors[0].clone();
    for (arg, step) in elt.args.iter_mut().zip(&steps) {
        if let Some((a, d)) = step {
            *arg = term(*a, *d);
        }
    }
    let comp = ListComp {
        elt: Expr::Call(Box::new(elt)),
        target: Expr::name(if varies { "i" } else { "_" }),
        iter: Expr::name("range").called(vec![Expr::int(instances.len() as i64)], vec![]),
    };
    let ctor = Expr::path("nn.ModuleList").called(vec![Expr::ListComp(Box::new(comp))], vec![]);
    let mut layers = Vec::with_capacity(module.layers.len());
    for l in module.layers.drain(..) {
        if l.name == instances[0] {
            layers.push(Layer { name: list.to_string(), ctor: ctor.clone() });
        } else if !instances.contains(&l.name.as_str()) {
            layers.push(l);
        }
    }
    module.layers = layers;
    module.rename_weight_heads(|head| {
        instances.iter().position(|n| *n == head).map(|i| format!("{list}.{i}"))
    });
}

/// The loop variable: what the family's last word names (`block`, `layer`), else `layer`.
fn loop_var(family: &str, locals: &BTreeSet<String>) -> &'static str {
    let word = family.rsplit('_').next().unwrap_or_default();
    ["block", "layer", "cell", "stage"]
        .into_iter()
        .filter(|n| !locals.contains(*n))
        .find(|n| word.trim_end_matches(|c: char| c.is_ascii_digit()) == *n)
        .or_else(|| ["layer", "block"].into_iter().find(|n| !locals.contains(*n)))
        .unwrap_or("layer_")
}

/// Replaces each run by a loop over a new `nn.ModuleList`; returns `forward`'s statements
/// (the remaining assignments, chained, and the loops) and the stacks made (list, length).
pub fn extract(
    module: &mut Module,
    mut stmts: Vec<Assign>,
    returns: &mut [Expr],
    chain: impl Fn(&mut Vec<Assign>, &[Expr]),
) -> (Vec<Stmt>, Vec<(String, usize)>) {
    // Runs of blocks carrying one value, and of blocks carrying several (tuple targets, so
    // never the same statements).
    let mut found: Vec<(usize, usize, bool)> =
        runs(module, &stmts, returns).into_iter().map(|(s, l)| (s, l, false)).collect();
    found.extend(streams::runs(module, &stmts, returns).into_iter().map(|(s, l)| (s, l, true)));
    found.sort();
    let classes: BTreeSet<String> = module.classes.iter().map(|c| c.name.clone()).collect();
    let classes: BTreeSet<&str> = classes.iter().map(String::as_str).collect();
    let mut attrs = Scope::for_attributes();
    for name in module.layers.iter().map(|l| &l.name).chain(module.buffers.iter().map(|b| &b.name))
    {
        attrs.claim(name);
    }
    let mut locals: BTreeSet<String> = module.params.iter().cloned().collect();
    for s in &stmts {
        locals.extend(s.target.bound_names().into_iter().map(String::from));
        locals.extend(s.value.names().into_iter().map(String::from));
    }
    // Each run: (first statement, length, the loop).
    let mut loops: Vec<(usize, usize, Vec<Assign>, Stmt)> = Vec::new();
    let mut made = Vec::new();
    // In order: renaming a run's output is seen by the runs after it, whose calls are read
    // again here.
    for (start, len, several) in found {
        if several {
            let run: Vec<StreamCall> = stmts[start..start + len]
                .iter()
                .filter_map(|s| streams::stream_call(s, module, &classes))
                .collect();
            // (A run before may have renamed what this one reads.)
            let Some(carried) = streams::plan(&stmts, returns, start, &run) else { continue };
            let instances: Vec<&str> = run.iter().map(|c| c.instance.as_str()).collect();
            let fam = shared_family(&instances);
            let list = list_name(&fam, &mut attrs);
            let var = loop_var(&fam, &locals);
            let call = streams::loop_call(&mut stmts, returns, start, &run, &carried, var);
            let for_loop = Stmt::For {
                target: Expr::name(var),
                iter: Expr::self_attr(&list),
                body: vec![Stmt::Assign(call)],
            };
            let ctors: Vec<&Call> = run.iter().map(|c| &c.ctor).collect();
            into_list(module, &instances, &ctors, &list);
            made.push((list, len));
            loops.push((start, len, Vec::new(), for_loop));
            continue;
        }
        let run: Vec<BlockCall> = stmts[start..start + len]
            .iter()
            .map(|s| block_call(s, module, &classes).expect("a run's statements are block calls"))
            .collect();
        let end = start + run.len();
        let (mut input, output) = (run[0].input.clone(), run[run.len() - 1].output.clone());
        let instances: Vec<&str> = run.iter().map(|c| c.instance.as_str()).collect();
        let fam = shared_family(&instances);
        let list = list_name(&fam, &mut attrs);
        // `for block in self.conv2_blocks`, `for layer in self.transformer_layers`.
        let var = loop_var(&fam, &locals);
        // The loop carries the first input's name when nothing else reads it and the
        // output's reads can take it; else the output's name, set from the input first.
        let mut before = Vec::new();
        let input_dies = !read_later(&input, &stmts, start + 1, returns);
        // `x` reads best, else `h`: the statement that binds the input can bind it instead
        // when its current value is dead from there on and nothing between binds it. The
        // embeddings, whose sizes the mask reads before the layers, become `h =
        // self.token_embedding(x)`, `h.shape[1]`, `h = layer(h, mask)`, rather than the
        // layers' outputs being named `token_embedding`.
        let bound_at =
            (0..start).rev().find(|&k| stmts[k].target.bound_names().contains(&input.as_str()));
        let running = ["x", "h"].into_iter().find(|&r| {
            let Some(b) = bound_at else { return false };
            input_dies
                && input != r
                && !read_later(r, &stmts, b + 1, returns)
                && !stmts[b + 1..start].iter().any(|s| s.target.bound_names().contains(&r))
                && !read_later(r, &stmts, start, returns)
                && rename_is_safe(&stmts, end, &output, r, returns)
        });
        if let (Some(running), Some(b)) = (running, bound_at) {
            // The name alone, or its place in a tuple (`x, mask = self.layer_0(...)`).
            let to_running = |r: Ref<'_>| match r {
                Ref::Var(n) if n == input => Some(Expr::name(running)),
                _ => None,
            };
            stmts[b].target = stmts[b].target.renamed(&to_running);
            for s in &mut stmts[b + 1..=start] {
                s.value = rename_reads(&s.value, &input, running);
            }
            input = running.to_string();
            locals.insert(running.to_string());
        }
        let carried = if input_dies && rename_is_safe(&stmts, end, &output, &input, returns) {
            for s in &mut stmts[end..] {
                s.value = rename_reads(&s.value, &output, &input);
                if s.target.bound_names().contains(&output.as_str()) {
                    break;
                }
            }
            if !stmts[end..].iter().any(|s| s.target.bound_names().contains(&output.as_str())) {
                for r in returns.iter_mut() {
                    *r = rename_reads(r, &output, &input);
                }
            }
            input.clone()
        } else {
            if input != output {
                before.push(Assign::new(Expr::name(&output), Expr::name(&input)));
            }
            output.clone()
        };
        let mut args = vec![Expr::name(&carried)];
        args.extend(run[0].rest.iter().cloned());
        let call = Assign::new(Expr::name(&carried), Expr::name(var).called(args, vec![]));
        let for_loop = Stmt::For {
            target: Expr::name(var),
            iter: Expr::self_attr(&list),
            body: vec![Stmt::Assign(call)],
        };
        let ctors: Vec<&Call> = run.iter().map(|c| &c.ctor).collect();
        let instances: Vec<&str> = run.iter().map(|c| c.instance.as_str()).collect();
        into_list(module, &instances, &ctors, &list);
        made.push((list, run.len()));
        loops.push((start, run.len(), before, for_loop));
    }
    // Stitch: chained segments of assignments between the loops.
    let mut out = Vec::new();
    let mut segment: Vec<Assign> = Vec::new();
    let mut k = 0;
    let mut pending = loops.into_iter().peekable();
    let live_after = |k: usize, stmts: &[Assign], returns: &[Expr]| -> Vec<Expr> {
        // What later statements and the returns read: live past a segment's end.
        let mut names: Vec<Expr> = returns.to_vec();
        for s in &stmts[k..] {
            names.extend(s.value.names().into_iter().map(Expr::name));
        }
        names
    };
    while k <= stmts.len() {
        let at_loop = pending.peek().is_some_and(|(s, ..)| *s == k);
        if at_loop || k == stmts.len() {
            let live = live_after(k, &stmts, returns);
            chain(&mut segment, &live);
            out.extend(segment.drain(..).map(Stmt::Assign));
        }
        if at_loop {
            let (_, len, before, for_loop) = pending.next().expect("peeked");
            out.extend(before.into_iter().map(Stmt::Assign));
            out.push(for_loop);
            k += len;
            continue;
        }
        if k == stmts.len() {
            break;
        }
        segment.push(stmts[k].clone());
        k += 1;
    }
    (out, made)
}

#[cfg(test)]
mod tests {
    use super::shared_family;

    /// The list is named after what its instances' names share, whatever follows the number
    /// that parts them, and a family already plural stays as it is (see `list_name`).
    #[test]
    fn a_stack_is_named_after_its_instances_shared_words() {
        assert_eq!(
            shared_family(&["transformer_layer_0", "transformer_layer_1"]),
            "transformer_layer"
        );
        assert_eq!(shared_family(&["decoder_layer_0_1", "decoder_layer_1_1"]), "decoder_layer");
        assert_eq!(shared_family(&["conv2_block1", "conv2_block2"]), "conv2_block");
        assert_eq!(shared_family(&["encoder_layers_0", "encoder_layers_1"]), "encoder_layers");
        assert_eq!(shared_family(&["a_0", "b_1"]), "");
        // Blocks lettered within a numbered stage are the stage.
        assert_eq!(shared_family(&["block3b", "block3c"]), "block3");
        assert_eq!(shared_family(&["mixed_5b", "mixed_5c", "mixed_5d"]), "mixed_5");
        assert_eq!(shared_family(&["block3b", "block4c"]), "");
        // Instances that part in more than one number are no one family.
        assert_eq!(shared_family(&["conv2_block3", "conv3_block1"]), "");
    }
}
