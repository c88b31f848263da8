//! Stacks of blocks that carry several streams: Stable Diffusion 3's joint blocks each read
//! the image and the text stream (and the conditioning vector) and give both back, so the
//! loop carries both, as one writes it by hand:
//!
//! ```python
//! for block in self.joint_blocks:
//!     x, context = block(context, c, x)
//! ```

use std::collections::BTreeSet;

use super::super::super::chain::read_later;
use super::{progression, rename_is_safe, rename_reads, scan};
use crate::lower::module::Module;
use crate::py::{Assign, Call, Expr};

/// A call `a, b = self.<instance>(args...)` of a block class instance giving several values.
pub(super) struct StreamCall {
    pub instance: String,
    /// The instance's constructor (`JointBlock()`).
    pub ctor: Call,
    pub args: Vec<Expr>,
    pub outputs: Vec<String>,
}

pub(super) fn stream_call(
    s: &Assign,
    module: &Module,
    classes: &BTreeSet<&str>,
) -> Option<StreamCall> {
    let Expr::Tuple(targets) = &s.target else { return None };
    let outputs = targets.iter().map(|t| t.as_name().map(str::to_string)).collect::<Option<_>>()?;
    let (c, instance, ctor) = super::instance_call(&s.value, module, classes)?;
    Some(StreamCall { instance, ctor, args: c.args.clone(), outputs })
}

/// For each argument of `next`, the output of `prev` it is (`None`: the same argument as
/// `prev`'s, reading none of its outputs); every output passed on once.
fn feeds(prev: &StreamCall, next: &StreamCall) -> Option<Vec<Option<usize>>> {
    if next.args.len() != prev.args.len() || next.outputs.len() != prev.outputs.len() {
        return None;
    }
    let mut passed = vec![false; prev.outputs.len()];
    let mut wiring = Vec::with_capacity(next.args.len());
    for (arg, same) in next.args.iter().zip(&prev.args) {
        match arg.as_name().and_then(|n| prev.outputs.iter().position(|o| o == n)) {
            Some(j) if !passed[j] => {
                passed[j] = true;
                wiring.push(Some(j));
            }
            Some(_) => return None,
            None if arg == same && !prev.outputs.iter().any(|o| arg.reads(o) > 0) => {
                wiring.push(None)
            }
            None => return None,
        }
    }
    passed.iter().all(|&p| p).then_some(wiring)
}

/// The runs: (first statement, number of calls), at least two, each call fed by the one
/// before the same way, whose outputs nothing else reads.
pub(super) fn runs(module: &Module, stmts: &[Assign], returns: &[Expr]) -> Vec<(usize, usize)> {
    let classes: BTreeSet<&str> = module.classes.iter().map(|c| c.name.as_str()).collect();
    let extends = |run: &[StreamCall], next: &StreamCall, end: usize| {
        let prev = run.last().expect("a run is never empty");
        let ctors: Vec<&Call> = run.iter().chain([next]).map(|c| &c.ctor).collect();
        let Some(wiring) = feeds(prev, next) else { return false };
        // Fed as the second call was by the first.
        let same = run.len() < 2 || feeds(&run[0], &run[1]).as_ref() == Some(&wiring);
        let read_once = prev.outputs.iter().all(|o| !read_later(o, stmts, end + 1, returns));
        same && read_once && progression(&ctors).is_some()
    };
    let keep = |run: &[StreamCall], start: usize| {
        run.len() >= 2 && plan(stmts, returns, start, run).is_some()
    };
    scan(stmts, |s| stream_call(s, module, &classes), extends, keep)
}

/// The names the loop carries, in output order: the first call's arguments the streams
/// enter by, names nothing reads after it and no call of the run binds (but the last, each
/// its own stream's), to which the last call's outputs can be renamed where read after.
pub(super) fn plan(
    stmts: &[Assign],
    returns: &[Expr],
    start: usize,
    run: &[StreamCall],
) -> Option<Vec<String>> {
    let (first, last) = (run.first()?, run.last()?);
    let wiring = feeds(first, run.get(1)?)?;
    let end = start + run.len();
    let mut carried = vec![String::new(); first.outputs.len()];
    for (p, w) in wiring.iter().enumerate() {
        let Some(j) = *w else { continue };
        let name = first.args[p].as_name()?;
        let elsewhere = first.args.iter().enumerate().any(|(q, a)| q != p && a.reads(name) > 0);
        if elsewhere || read_later(name, stmts, start + 1, returns) {
            return None;
        }
        carried[j] = name.to_string();
    }
    for (j, name) in carried.iter().enumerate() {
        let bound = run.iter().flat_map(|c| c.outputs.iter().enumerate());
        let rebound = bound.filter(|&(k, o)| o == name && !(k == j && o == &last.outputs[j]));
        if rebound.count() > 0 || !rename_is_safe(stmts, end, &last.outputs[j], name, returns) {
            return None;
        }
    }
    Some(carried)
}

/// The loop's one statement (`a, b = block(...)` with the carried names), the reads of the
/// last call's outputs after the run renamed to them.
pub(super) fn loop_call(
    stmts: &mut [Assign],
    returns: &mut [Expr],
    start: usize,
    run: &[StreamCall],
    carried: &[String],
    var: &str,
) -> Assign {
    let end = start + run.len();
    let last = run.last().expect("a run is never empty");
    for (output, name) in last.outputs.iter().zip(carried) {
        for s in &mut stmts[end..] {
            s.value = rename_reads(&s.value, output, name);
            if s.target.bound_names().contains(&output.as_str()) {
                break;
            }
        }
        if !stmts[end..].iter().any(|s| s.target.bound_names().contains(&output.as_str())) {
            for r in returns.iter_mut() {
                *r = rename_reads(r, output, name);
            }
        }
    }
    let wiring = feeds(&run[0], &run[1]).expect("a run's calls feed each other");
    let args = run[0]
        .args
        .iter()
        .zip(&wiring)
        .map(|(a, w)| w.map_or_else(|| a.clone(), |j| Expr::name(&carried[j])))
        .collect();
    let target = Expr::Tuple(carried.iter().map(Expr::name).collect());
    Assign::new(target, Expr::name(var).called(args, vec![]))
}
