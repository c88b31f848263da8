//! Shape plumbing reads as one chain: `x = self.key(inputs)` followed by
//! `x = x.reshape(...)` and `x = x.permute(...)` becomes
//! `x = self.key(inputs).reshape(...).permute(...)` when the intermediate names are used
//! nowhere else and the chain fits on one line.

use crate::py::printer::{self, LINE_WIDTH};
use std::collections::{BTreeMap, BTreeSet};

use crate::lower::devices::pending_device_width;
use crate::lower::keras_names::keras_kind;
use crate::py::{Assign, BinOp, Call, Expr, Ref, Stmt};

/// Methods that only re-view or re-type a tensor.
const PLUMBING: &[&str] = &[
    "reshape",
    "flatten",
    "unflatten",
    "permute",
    "transpose",
    "unsqueeze",
    "squeeze",
    "to",
    "flip",
    "long",
    "float",
];

/// Whether `var` is read after statement `from` (before being assigned again), or returned.
pub(super) fn read_later(var: &str, stmts: &[Assign], from: usize, returns: &[Expr]) -> bool {
    for s in &stmts[from..] {
        if s.value.reads(var) > 0 {
            return true;
        }
        if s.target.bound_names().contains(&var) {
            return false;
        }
    }
    returns.iter().any(|r| r.reads(var) > 0)
}

/// `var.method(...)` with a plumbing method: the method's name.
fn plumbing_on<'e>(value: &'e Expr, var: &str) -> Option<&'e str> {
    let Expr::Call(c) = value else { return None };
    match &c.func {
        Expr::Attribute(recv, m)
            if recv.as_name() == Some(var) && PLUMBING.contains(&m.as_str()) =>
        {
            Some(m)
        }
        _ => None,
    }
}

/// An index of whole axes and new ones only (`[:, :, None]`): a view with axes added.
fn is_view_index(index: &Expr) -> bool {
    let view = |e: &Expr| match e {
        Expr::Lit(crate::py::Lit::None) => true,
        Expr::Slice(s) => s.lower.is_none() && s.upper.is_none() && s.step.is_none(),
        _ => false,
    };
    match index {
        Expr::Tuple(items) => {
            items.iter().all(view) && items.iter().any(|e| !matches!(e, Expr::Slice(_)))
        }
        single => matches!(single, Expr::Lit(crate::py::Lit::None)),
    }
}

/// Merges plumbing statements into the statement before them, in place.
pub fn chain(stmts: &mut Vec<Assign>, indent: usize, returns: &[Expr]) {
    let mut k = 0;
    while k + 1 < stmts.len() {
        let Some(var) = stmts[k].target.as_name().map(str::to_string) else {
            k += 1;
            continue;
        };
        let next = &stmts[k + 1];
        let merge = match (&next.value, plumbing_on(&next.value, &var)) {
            (Expr::Call(c), Some(method))
                if next.value.reads(&var) == 1
                    && (next.target.bound_names().contains(&var.as_str())
                        || !read_later(&var, stmts, k + 2, returns)) =>
            {
                // Two permutes in a row are one (`.permute(0, 1, 3, 2).permute(2, 3, 0, 1)`);
                // an axis indexed in and squeezed out is not added (`[:, None, None]`
                // squeezed at 2 is `[:, None]`).
                let ints: Option<Vec<i64>> = c
                    .kwargs
                    .is_empty()
                    .then(|| c.args.iter().map(Expr::as_int).collect())
                    .flatten();
                let value = stmts[k].value.clone();
                let composed = match (method, ints.as_deref()) {
                    ("permute", Some(p)) => Some(value.permuted(p)),
                    ("squeeze", Some(&[d])) => Some(value.squeezed(d)),
                    _ => None,
                };
                match composed {
                    // Not when they cancel out on a name: `y = x` would only rename it.
                    Some(Expr::Name(_)) => None,
                    Some(composed) => Some(composed),
                    None => {
                        let func = stmts[k].value.clone().attr(method);
                        Some(Expr::Call(Box::new(Call { func, ..(**c).clone() })))
                    }
                }
            }
            // A new axis indexed in (`mask[:, :, None]`) re-views the value too.
            (Expr::Subscript(recv, index), _)
                if recv.as_name() == Some(var.as_str())
                    && is_view_index(index)
                    && (next.target.bound_names().contains(&var.as_str())
                        || !read_later(&var, stmts, k + 2, returns)) =>
            {
                Some(stmts[k].value.clone().index((**index).clone()))
            }
            _ => None,
        };
        if let Some(merged) = merge {
            let lines =
                printer::statement(&Stmt::assign(next.target.clone(), merged.clone()), indent);
            if lines.len() == 1 && lines[0].len() <= LINE_WIDTH {
                stmts[k + 1].value = merged;
                stmts.remove(k);
                continue;
            }
        }
        k += 1;
    }
}

/// A list of slots a loop fills (TF's TensorArray): `[None] * n`.
fn is_list_buffer(e: &Expr) -> bool {
    matches!(e, Expr::Binary(l, BinOp::Mul, _) if matches!(**l, Expr::List(_)))
}

/// Whether every read of `var` in `e` is `var[i]` with a literal `i` below `n`.
fn only_indexed(e: &Expr, var: &str, n: usize) -> bool {
    match e {
        Expr::Subscript(v, i) if v.as_name() == Some(var) => {
            i.as_int().is_some_and(|i| usize::try_from(i).is_ok_and(|i| i < n))
        }
        Expr::Name(x) => x != var,
        _ => e.children().into_iter().all(|c| only_indexed(c, var, n)),
    }
}

/// A tuple of sizes bound to a name that is only ever indexed by a number
/// (`s = (x.shape[0], x.shape[2], x.shape[3], x.shape[1])`, then `s[0]`: TF's `tf.shape` of
/// an NHWC value whose other entries went unread) is its entries where they are read:
/// `x.shape[0]`, and the tuple goes. Only while nothing rebinds what the entries read.
pub fn inline_size_tuples(stmts: &mut Vec<Assign>, returns: &[Expr]) {
    let mut k = 0;
    while k < stmts.len() {
        let (Some(var), Expr::Tuple(items)) = (stmts[k].target.as_name(), &stmts[k].value) else {
            k += 1;
            continue;
        };
        let sizes = items.iter().all(|i| i.is_literal() || is_size(i));
        // Its reads, up to where it is bound again.
        let mut end = stmts.len();
        for (j, s) in stmts.iter().enumerate().skip(k + 1) {
            if s.target.bound_names().contains(&var) {
                end = j + 1;
                break;
            }
        }
        let reads: BTreeSet<&str> = items.iter().flat_map(|i| i.names()).collect();
        let rebinds = stmts[k + 1..end]
            .iter()
            .any(|s| s.target.bound_names().iter().any(|n| reads.contains(n)));
        let indexed = stmts[k + 1..end].iter().all(|s| only_indexed(&s.value, var, items.len()));
        let read_after = end == stmts.len() && returns.iter().any(|r| r.reads(var) > 0);
        if !sizes || rebinds || !indexed || read_after {
            k += 1;
            continue;
        }
        let (var, tuple) = (var.to_string(), stmts[k].value.clone());
        let to_tuple = |n: Ref<'_>| matches!(n, Ref::Var(v) if v == var).then(|| tuple.clone());
        for s in &mut stmts[k + 1..end] {
            s.value = s.value.renamed(&to_tuple);
        }
        stmts.remove(k);
    }
}

/// `x.shape[i]` with a literal `i`.
pub(super) fn is_size(e: &Expr) -> bool {
    matches!(e, Expr::Subscript(v, i)
        if i.as_int().is_some()
            && matches!(&**v, Expr::Attribute(x, a) if a == "shape" && x.as_name().is_some()))
}

/// Methods whose result is a Python number or list, not a tensor.
const TO_PYTHON: &[&str] = &["tolist", "item", "numel", "size", "dim"];

/// Builtins over Python numbers.
const NUMBER_BUILTINS: &[&str] = &["min", "max", "int", "len"];

/// Whether `e` is sizes, not a tensor: a tuple or list (`(n, 4, 4, -1)` for a reshape), a
/// shape, a number worked out from shapes (`x.shape[0] // 16`, `min(seq_len, 7)`) or read
/// off a tensor (`.tolist()`), or one of `sizes` (names bound to such before). The running
/// `x` and `y` name tensors.
fn is_sizes(e: &Expr, sizes: &BTreeSet<String>) -> bool {
    match e {
        Expr::Tuple(_) | Expr::List(_) | Expr::Lit(crate::py::Lit::Int(_)) => true,
        Expr::Binary(..) if is_list_buffer(e) => false,
        Expr::Binary(a, _, b) => is_sizes(a, sizes) && is_sizes(b, sizes),
        Expr::Name(n) => sizes.contains(n),
        Expr::Attribute(_, a) => a == "shape",
        Expr::Call(c) => match &c.func {
            Expr::Attribute(_, m) => TO_PYTHON.contains(&m.as_str()),
            Expr::Name(f) => NUMBER_BUILTINS.contains(&f.as_str()),
            _ => false,
        },
        _ => is_size(e),
    }
}

/// For each statement, whether it binds sizes (see [`is_sizes`]); the names it binds count
/// as sizes from there on.
fn binds_sizes(stmts: &[Assign]) -> Vec<bool> {
    let mut sizes = BTreeSet::new();
    let mut out = Vec::with_capacity(stmts.len());
    for s in stmts {
        let is = is_sizes(&s.value, &sizes);
        for n in s.target.bound_names() {
            if is {
                sizes.insert(n.to_string());
            } else {
                sizes.remove(n);
            }
        }
        out.push(is);
    }
    out
}

/// The most statements a temporary read once is carried on to where it is read: further,
/// the reader would have to look back past more than a few lines anyway.
const MAX_CARRY: usize = 4;

/// A temporary (see [`running_values`]) bound once and read once, a few statements on, is
/// written where it is read when that statement still fits on one line:
/// `y = (1.0 + modulation_2) * y`, not `double_stream_block = 1.0 + modulation_2` two lines
/// before it (a value the block computed itself, named after the block). Only while nothing
/// in between rebinds what it reads; a name the next statement reads stays for
/// [`running_values`] to make `x` or `y`.
pub fn inline_temporaries(
    stmts: &mut Vec<Assign>,
    indent: usize,
    returns: &[Expr],
    temporaries: &BTreeSet<String>,
) {
    let (reads, binds) = counts(stmts);
    let mut k = 0;
    while k < stmts.len() {
        let Some(var) = stmts[k].target.as_name().map(str::to_string) else {
            k += 1;
            continue;
        };
        let once = temporaries.contains(&var)
            && reads.get(&var) == Some(&1)
            && binds.get(&var) == Some(&1)
            && !returns.iter().any(|r| r.reads(&var) > 0);
        let end = stmts.len().min(k + 1 + MAX_CARRY);
        let reader = (k + 1..end).find(|&j| stmts[j].value.reads(&var) > 0);
        let Some(j) = reader.filter(|_| once) else {
            k += 1;
            continue;
        };
        let value = stmts[k].value.clone();
        // A layer's output is a step of its own, named after the layer; so is a list a loop
        // fills (TF's TensorArray, `[None] * n`), which read inline would be sliced as
        // `([None] * n)[1:]`.
        let layer_call = matches!(&value, Expr::Call(c) if c.func.as_self_attr().is_some())
            || is_list_buffer(&value);
        let needs: BTreeSet<&str> = value.names().into_iter().collect();
        let rebound = stmts[k + 1..j]
            .iter()
            .any(|s| s.target.bound_names().iter().any(|n| needs.contains(n)));
        let to_value = |n: Ref<'_>| matches!(n, Ref::Var(v) if v == var).then(|| value.clone());
        let inlined = stmts[j].value.renamed(&to_value);
        let lines =
            printer::statement(&Stmt::assign(stmts[j].target.clone(), inlined.clone()), indent);
        let width = lines[0].len() + pending_device_width(&inlined);
        if layer_call || rebound || lines.len() != 1 || width > LINE_WIDTH {
            k += 1;
            continue;
        }
        stmts[j].value = inlined;
        stmts.remove(k);
    }
}

/// Locals named like a layer whose output they are not: the value a layer's scope computed
/// before the layer (`self_attn_attention_output = y.reshape(..)`, then
/// `self.self_attn_attention_output(self_attn_attention_output)`) reads as that layer's
/// output; such a local is a temporary (see [`running_values`]).
pub fn named_like_other_layers(stmts: &[Assign], attrs: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in stmts {
        let layers = s.value.self_attrs();
        for n in s.target.bound_names() {
            if attrs.contains(n) && !layers.contains(&n) {
                out.insert(n.to_string());
            }
        }
    }
    out
}

/// Names longer than this are temporaries a person would not write
/// (`separable_conv_1_reduction_right1_stem_1_pointwise`).
const LONG_NAME: usize = 30;

/// Values that read as a running value. After block classes replace their layers,
/// `block2a_project_bn = self.block2a(x)` (named because `block2b`'s add read it too) is read
/// by the next call alone, and becomes `x = self.block2a(x)` where `x` is not read again. And
/// a long or counted temporary read by the next statement alone is `x` or else `y` (NASNet's
/// right branches run beside the left one's `x`); so is one of the `temporaries`, whose name
/// was cut down or numbered (see `py::names::Scope::temporaries`).
pub fn running_values(stmts: &mut [Assign], returns: &[Expr], temporaries: &BTreeSet<String>) {
    // Counted once (a chain may be 100k statements long): reads and bindings of each name,
    // and from each statement, whether a running name is next read (true) or bound; renaming
    // only adds reads and bindings before the statements asked about.
    let (reads, binds) = counts(stmts);
    let sizes = binds_sizes(stmts);
    let running = [("x", read_next(stmts, returns, "x")), ("y", read_next(stmts, returns, "y"))];
    for k in 0..stmts.len().saturating_sub(1) {
        let Some(var) = stmts[k].target.as_name().map(str::to_string) else { continue };
        let next = &stmts[k + 1];
        let once = read_only_by_next(stmts, k, &var, (&reads, &binds), returns);
        let layer_call =
            matches!(&stmts[k].value, Expr::Call(c) if c.func.as_self_attr().is_some());
        let first_arg = matches!(&next.value,
            Expr::Call(c) if c.args.first().and_then(Expr::as_name) == Some(var.as_str()));
        let block_output = layer_call && first_arg;
        // Long names, and Keras' kinds and counters (`activation_4`), which say nothing the
        // code does not.
        let temporary =
            var.len() > LONG_NAME || temporaries.contains(&var) || keras_kind(&var).is_some();
        if sizes[k] {
            continue;
        }
        let names: &[(&str, Vec<bool>)] = if temporary {
            &running
        } else if block_output {
            &running[..1]
        } else {
            continue;
        };
        if !once || running.iter().any(|(r, _)| *r == var) {
            continue;
        }
        let Some((r, _)) = names.iter().find(|(_, read)| !read[k + 1]) else { continue };
        rename_to_next(stmts, k, &var, r);
    }
}

/// Whether `var`, bound by statement `k` and nowhere else, is read by the next statement
/// alone, and not after (`counts`: each name's reads and bindings). The next statement may
/// read it more than once: the heads merged, `x = y.reshape(y.shape[0], y.shape[1], 32)`.
fn read_only_by_next(
    stmts: &[Assign],
    k: usize,
    var: &str,
    (reads, binds): (&BTreeMap<String, usize>, &BTreeMap<String, usize>),
    returns: &[Expr],
) -> bool {
    let next = stmts[k + 1].value.reads(var);
    next > 0
        && reads.get(var) == Some(&next)
        && binds.get(var) == Some(&1)
        && !returns.iter().any(|r| r.reads(var) > 0)
}

/// Renames `var` to `to` where statement `k` binds it and the next reads it.
fn rename_to_next(stmts: &mut [Assign], k: usize, var: &str, to: &str) {
    let rename = |n: Ref<'_>| match n {
        Ref::Var(n) if n == var => Some(Expr::name(to)),
        _ => None,
    };
    stmts[k].target = stmts[k].target.renamed(&rename);
    stmts[k + 1].value = stmts[k + 1].value.renamed(&rename);
}

/// How many times each name is read, and bound, in `stmts`.
fn counts(stmts: &[Assign]) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut reads: BTreeMap<String, usize> = BTreeMap::new();
    let mut binds: BTreeMap<String, usize> = BTreeMap::new();
    for s in stmts {
        for n in s.value.names() {
            *reads.entry(n.to_string()).or_default() += 1;
        }
        for n in s.target.bound_names() {
            *binds.entry(n.to_string()).or_default() += 1;
        }
    }
    (reads, binds)
}

/// From each statement on, whether `r` is next read (true) or bound (false); at the end,
/// whether `returns` read it.
fn read_next(stmts: &[Assign], returns: &[Expr], r: &str) -> Vec<bool> {
    let mut next = vec![returns.iter().any(|e| e.reads(r) > 0); stmts.len() + 1];
    for k in (0..stmts.len()).rev() {
        next[k] = if stmts[k].value.reads(r) > 0 {
            true
        } else if stmts[k].target.bound_names().contains(&r) {
            false
        } else {
            next[k + 1]
        };
    }
    next
}

/// The most statements a running name holds one value over (see [`running_own`]).
const MAX_HELD: usize = 64;

/// A value named after the block that computes it (`own`: `mixtral_sparse_moe_block =
/// h.reshape(-1, 32)`, read by each expert and the router), bound once, takes a running
/// name, `x` or else `y`, where that name holds nothing live from its binding to its last
/// read. So does a part a tuple unpacks (`y, v1, v2 = torch.split(y, ...)`, then
/// `y = y.squeeze(0)`); the other parts (`modulation_1`, `split_1`) say which part each is
/// and stay. A value given back keeps its name, which the block returns.
pub fn running_own(stmts: &mut [Assign], returns: &[Expr], own: &BTreeSet<String>) {
    let (_, binds) = counts(stmts);
    let sizes = binds_sizes(stmts);
    // Where each running name is next read, anew after each rename.
    let next = |stmts: &[Assign]| ["x", "y"].map(|r| (r, read_next(stmts, returns, r)));
    let mut running = next(stmts);
    for k in 0..stmts.len() {
        if sizes[k] {
            continue;
        }
        let bound: Vec<String> =
            stmts[k].target.bound_names().into_iter().map(String::from).collect();
        for var in bound.iter().filter(|v| own.contains(*v) && binds.get(*v) == Some(&1)) {
            if returns.iter().any(|r| r.reads(var) > 0) {
                continue;
            }
            let Some(last) = (k + 1..stmts.len()).rev().find(|&j| stmts[j].value.reads(var) > 0)
            else {
                continue;
            };
            // A value held longer than a branch is no running value.
            if last - k > MAX_HELD {
                continue;
            }
            let free = |(r, read): &&(&str, Vec<bool>)| {
                let rebound = stmts[k + 1..last].iter().any(|s| s.target.bound_names().contains(r));
                !read[k + 1] && !rebound && !stmts[k].target.bound_names().contains(r)
            };
            let Some(&(r, _)) = running.iter().find(free) else { continue };
            let rename = |n: Ref<'_>| match n {
                Ref::Var(n) if n == var => Some(Expr::name(r)),
                _ => None,
            };
            stmts[k].target = stmts[k].target.renamed(&rename);
            for s in &mut stmts[k + 1..=last] {
                s.value = s.value.renamed(&rename);
            }
            running = next(stmts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{chain, inline_size_tuples, inline_temporaries, running_own, running_values};
    use crate::py::printer::flat;
    use crate::py::{Assign, BinOp, Expr};
    use std::collections::BTreeSet;

    fn layer(attr: &str, arg: &str) -> Expr {
        Expr::self_attr(attr).called(vec![Expr::name(arg)], vec![])
    }

    fn lines(stmts: &[Assign]) -> Vec<String> {
        stmts.iter().map(|s| format!("{} = {}", flat(&s.target), flat(&s.value))).collect()
    }

    /// Two permutes chained are one; two that cancel out on a name stay apart (a statement
    /// `y = x` would only rename `x`).
    #[test]
    fn permutes_in_a_row_compose() {
        let permute = |recv: Expr, p: [i64; 4]| recv.method("permute", p.map(Expr::int).to_vec());
        let mut stmts = vec![
            Assign::new(Expr::name("s"), layer("scores", "x")),
            Assign::new(Expr::name("t"), permute(Expr::name("s"), [0, 1, 3, 2])),
            Assign::new(Expr::name("u"), permute(Expr::name("t"), [2, 3, 0, 1])),
        ];
        chain(&mut stmts, 8, &[Expr::name("u")]);
        assert_eq!(lines(&stmts), ["u = self.scores(x).permute(3, 2, 0, 1)"]);
        let mut stmts = vec![
            Assign::new(Expr::name("t"), permute(Expr::name("x"), [0, 2, 3, 1])),
            Assign::new(Expr::name("u"), permute(Expr::name("t"), [0, 3, 1, 2])),
        ];
        chain(&mut stmts, 8, &[Expr::name("u")]);
        assert_eq!(lines(&stmts), ["t = x.permute(0, 2, 3, 1)", "u = t.permute(0, 3, 1, 2)"]);
    }

    /// SigLIP's attention output: the heads merged in the output layer's scope took that
    /// layer's name. It is no layer's output, so it runs as `y`; a layer's own output, even
    /// taken apart (`self.head(x)[:, 0]`), keeps the layer's name.
    #[test]
    fn values_named_like_a_layer_they_are_not_run_as_y() {
        let out = "self_attn_attention_output";
        let mut stmts = vec![
            Assign::new(Expr::name("x"), layer("norm", "inputs")),
            Assign::new(Expr::name(out), Expr::name("y").method("reshape", vec![Expr::int(-1)])),
            Assign::new(Expr::name("y"), layer(out, out)),
            Assign::new(Expr::name("head"), layer("head", "y").index(Expr::int(0))),
            Assign::new(Expr::name("z"), Expr::name("x").binop(BinOp::Add, Expr::name("head"))),
        ];
        let attrs: BTreeSet<&str> = ["norm", out, "head"].into_iter().collect();
        let misnamed = super::named_like_other_layers(&stmts, &attrs);
        assert_eq!(misnamed, BTreeSet::from([out.to_string()]));
        running_values(&mut stmts, &[Expr::name("z")], &misnamed);
        assert_eq!(
            lines(&stmts)[1..3],
            ["y = y.reshape(-1)".to_string(), format!("y = self.{out}(y)")]
        );
    }

    /// NASNet's right branch beside the left one's `x`: long and counted temporaries, each
    /// read once by the next statement, are `y`; what is read twice keeps its name, and so
    /// does what is returned.
    #[test]
    fn temporaries_beside_x_run_as_y() {
        let long = "separable_conv_1_reduction_right1_stem_1_depthwise";
        let mut stmts = vec![
            Assign::new(Expr::name("x"), layer("left", "stem_bn1")),
            Assign::new(
                Expr::name("activation_3"),
                Expr::call("F.relu", vec![Expr::name("stem_bn1")]),
            ),
            Assign::new(Expr::name(long), layer(long, "activation_3")),
            Assign::new(Expr::name("right"), layer("pointwise", long)),
            Assign::new(
                Expr::name("total"),
                Expr::name("x").binop(BinOp::Add, Expr::name("right")),
            ),
        ];
        running_values(&mut stmts, &[Expr::name("total")], &BTreeSet::new());
        assert_eq!(
            lines(&stmts),
            [
                "x = self.left(stem_bn1)",
                "y = F.relu(stem_bn1)",
                &format!("y = self.{long}(y)"),
                "right = self.pointwise(y)",
                "total = x + right",
            ]
        );
    }

    /// A name cut down from a layer's long one runs as `y` as the long one did; a name as
    /// short that the layer gave keeps it.
    #[test]
    fn shortened_temporaries_run_as_y() {
        let stmts = |name: &str| {
            vec![
                Assign::new(Expr::name("x"), layer("left", "h")),
                Assign::new(Expr::name(name), Expr::call("F.gelu", vec![Expr::name("h")])),
                Assign::new(
                    Expr::name("total"),
                    Expr::name("x").binop(BinOp::Add, Expr::name(name)),
                ),
            ]
        };
        let shortened = BTreeSet::from(["intermediate_dense_2".to_string()]);
        let mut cut = stmts("intermediate_dense_2");
        running_values(&mut cut, &[Expr::name("total")], &shortened);
        assert_eq!(lines(&cut)[1..], ["y = F.gelu(h)", "total = x + y"]);
        let mut kept = stmts("intermediate");
        running_values(&mut kept, &[Expr::name("total")], &shortened);
        assert_eq!(lines(&kept)[1..], ["intermediate = F.gelu(h)", "total = x + intermediate"]);
    }

    /// A block's output read once by the next block is the running `x`; not where `x` is
    /// still read after (the model's other output).
    #[test]
    fn block_outputs_run_as_x_where_x_is_dead() {
        let mut stmts = vec![
            Assign::new(Expr::name("pool"), layer("pool", "x")),
            Assign::new(Expr::name("x"), layer("block1", "pool")),
        ];
        running_values(&mut stmts, &[Expr::name("x")], &BTreeSet::new());
        assert_eq!(lines(&stmts), ["x = self.pool(x)", "x = self.block1(x)"]);
        let mut stmts = vec![
            Assign::new(Expr::name("pool"), layer("pool", "x")),
            Assign::new(Expr::name("out"), layer("block1", "pool")),
        ];
        running_values(&mut stmts, &[Expr::name("out"), Expr::name("x")], &BTreeSet::new());
        assert_eq!(lines(&stmts), ["pool = self.pool(x)", "out = self.block1(pool)"]);
    }

    /// TF's `tf.shape` of an NHWC value, only its batch read: the entry where it is read.
    /// Read whole, or after what it reads is rebound, the tuple stays.
    #[test]
    fn a_size_tuple_read_by_index_is_its_entries() {
        let size = |axis: i64| Expr::name("p").attr("shape").index(Expr::int(axis));
        let tuple = Expr::Tuple(vec![size(0), size(2), size(3), size(1)]);
        let repeat = |arg: Expr| Expr::name("token").method("repeat", vec![arg, Expr::int(1)]);
        let mut stmts = vec![
            Assign::new(Expr::name("s"), tuple.clone()),
            Assign::new(Expr::name("x"), repeat(Expr::name("s").index(Expr::int(0)))),
        ];
        inline_size_tuples(&mut stmts, &[Expr::name("x")]);
        assert_eq!(lines(&stmts), ["x = token.repeat(p.shape[0], 1)"]);
        let mut whole = vec![
            Assign::new(Expr::name("s"), tuple.clone()),
            Assign::new(Expr::name("x"), repeat(Expr::name("s"))),
        ];
        inline_size_tuples(&mut whole, &[Expr::name("x")]);
        assert_eq!(whole.len(), 2);
        let mut rebound = vec![
            Assign::new(Expr::name("s"), tuple),
            Assign::new(Expr::name("p"), Expr::name("q")),
            Assign::new(Expr::name("x"), repeat(Expr::name("s").index(Expr::int(0)))),
        ];
        inline_size_tuples(&mut rebound, &[Expr::name("x")]);
        assert_eq!(rebound.len(), 3);
    }

    /// Flux's modulation: `1.0 + scale`, named after the block that computed it, is read two
    /// statements on, past the norm that makes the other factor: it is written where it is
    /// read. Not a layer's output (a step of its own), nor past a statement rebinding what
    /// it reads, nor where the line would grow too long once a factory gets its device.
    #[test]
    fn a_temporary_read_once_a_little_later_is_written_where_it_is_read() {
        let scale = Expr::f32(1.0).binop(BinOp::Add, Expr::name("shift"));
        let stmts = |first: Expr, second: Assign| {
            vec![
                Assign::new(Expr::name("block"), first),
                second,
                Assign::new(
                    Expr::name("y"),
                    Expr::name("block").binop(BinOp::Mul, Expr::name("y")),
                ),
            ]
        };
        let norm = Assign::new(Expr::name("y"), layer("norm", "inputs"));
        let temporaries = BTreeSet::from(["block".to_string()]);
        let mut inlined = stmts(scale.clone(), norm.clone());
        inline_temporaries(&mut inlined, 8, &[Expr::name("y")], &temporaries);
        assert_eq!(lines(&inlined), ["y = self.norm(inputs)", "y = (1.0 + shift) * y"]);
        // What it reads is bound anew in between.
        let shift = Assign::new(Expr::name("shift"), layer("norm", "inputs"));
        let mut rebound = stmts(scale.clone(), shift);
        inline_temporaries(&mut rebound, 8, &[Expr::name("y")], &temporaries);
        assert_eq!(rebound.len(), 3);
        // A layer's output.
        let mut called = stmts(layer("scale", "shift"), norm.clone());
        inline_temporaries(&mut called, 8, &[Expr::name("y")], &temporaries);
        assert_eq!(called.len(), 3);
        // Not a temporary.
        let mut named = stmts(scale.clone(), norm.clone());
        inline_temporaries(&mut named, 8, &[Expr::name("y")], &BTreeSet::new());
        assert_eq!(named.len(), 3);
        // 70 characters, and a device to come: more than a line.
        let n = Expr::name("a_rather_long_name_for_the_number_of_experts_in_this_layer");
        let arange = Expr::call("torch.arange", vec![n]);
        let mut long = stmts(arange, norm);
        inline_temporaries(&mut long, 8, &[Expr::name("y")], &temporaries);
        assert_eq!(long.len(), 3);
    }

    /// A split's part named after the block, read by the next statement, runs as `y` beside
    /// a live `x`; a value named so and read twice is `x` where `x` holds nothing live; with
    /// both running names busy it keeps its name, and so it does where it is given back.
    #[test]
    fn values_named_after_their_block_run_as_x_or_y() {
        let split = Expr::call("torch.split", vec![Expr::name("y"), Expr::int(2)]);
        let target = |a: &str| Expr::Tuple(vec![Expr::name(a), Expr::name("v1"), Expr::name("v2")]);
        let squeeze = |a: &str| Expr::name(a).method("squeeze", vec![Expr::int(0)]);
        let add = |a: &str, b: &str| Expr::name(a).binop(BinOp::Add, Expr::name(b));
        let own = BTreeSet::from(["block_8".to_string()]);
        let returns = [Expr::name("x"), Expr::name("v2")];
        let mut unpacked = vec![
            Assign::new(target("block_8"), split.clone()),
            Assign::new(Expr::name("y"), squeeze("block_8")),
            Assign::new(Expr::name("x"), add("x", "y")),
        ];
        running_own(&mut unpacked, &returns, &own);
        assert_eq!(lines(&unpacked)[..2], ["(y, v1, v2) = torch.split(y, 2)", "y = y.squeeze(0)"]);
        let flat_tokens = Expr::name("h").method("reshape", vec![Expr::int(-1), Expr::int(32)]);
        let mut held = vec![
            Assign::new(Expr::name("block_8"), flat_tokens.clone()),
            Assign::new(Expr::name("y"), layer("gate", "block_8")),
            Assign::new(Expr::name("y"), layer("up", "block_8")),
            Assign::new(Expr::name("x"), add("block_8", "y")),
        ];
        running_own(&mut held, &[Expr::name("x")], &own);
        assert_eq!(lines(&held)[0], "x = h.reshape(-1, 32)");
        assert_eq!(lines(&held)[3], "x = x + y");
        let mut busy = vec![
            Assign::new(Expr::name("block_8"), flat_tokens.clone()),
            Assign::new(Expr::name("y"), layer("gate", "x")),
            Assign::new(Expr::name("x"), add("block_8", "y")),
        ];
        running_own(&mut busy, &[Expr::name("x")], &own);
        assert_eq!(lines(&busy)[0], "block_8 = h.reshape(-1, 32)");
        let mut returned = vec![
            Assign::new(Expr::name("block_8"), add("x", "y")),
            Assign::new(Expr::name("x"), squeeze("block_8")),
        ];
        running_own(&mut returned, &[Expr::name("block_8"), Expr::name("x")], &own);
        assert_eq!(lines(&returned)[0], "block_8 = x + y");
    }

    /// Sizes are no running value: a reshape's tuple of sizes (SAM's windows) is not `x`,
    /// which names tensors; written where the reshape reads it, it needs no name.
    #[test]
    fn sizes_do_not_run_as_x() {
        let sizes = Expr::Tuple(vec![Expr::name("windows"), Expr::int(4), Expr::int(-1)]);
        let reshape = Expr::name("dense").method("reshape", vec![Expr::name("block_3")]);
        let mut stmts =
            vec![Assign::new(Expr::name("block_3"), sizes), Assign::new(Expr::name("x"), reshape)];
        let temporaries = BTreeSet::from(["block_3".to_string()]);
        running_values(&mut stmts, &[Expr::name("x")], &temporaries);
        assert_eq!(flat(&stmts[0].target), "block_3");
        inline_temporaries(&mut stmts, 8, &[Expr::name("x")], &temporaries);
        assert_eq!(lines(&stmts), ["x = dense.reshape((windows, 4, -1))"]);
    }

    /// Sizes read off a tensor, or worked out from sizes bound before (`n = x.shape[1]`,
    /// then `n - 1`), are no running value either; a list of slots a loop fills is not
    /// sizes, and stays a step of its own rather than be sliced inline.
    #[test]
    fn sizes_read_off_tensors_do_not_run_as_x() {
        let temporaries = BTreeSet::from(["sizes_2".to_string(), "n_2".to_string()]);
        let tolist = Expr::name("shape_t").method("tolist", vec![]);
        let reshape = Expr::name("dense").method("reshape", vec![Expr::name("sizes_2")]);
        let mut stmts =
            vec![Assign::new(Expr::name("sizes_2"), tolist), Assign::new(Expr::name("x"), reshape)];
        running_values(&mut stmts, &[Expr::name("x")], &temporaries);
        assert_eq!(flat(&stmts[0].target), "sizes_2");
        let first = Expr::name("x").attr("shape").index(Expr::int(1));
        let less = Expr::name("n").binop(BinOp::Sub, Expr::int(1));
        let slice = Expr::name("x").index(Expr::name("n_2"));
        let mut derived = vec![
            Assign::new(Expr::name("n"), first),
            Assign::new(Expr::name("n_2"), less),
            Assign::new(Expr::name("y"), slice),
        ];
        running_values(&mut derived, &[Expr::name("y")], &temporaries);
        assert_eq!(flat(&derived[1].target), "n_2");
        let slots = Expr::List(vec![Expr::none()]).binop(BinOp::Mul, Expr::name("n"));
        let rest = Expr::name("buf_2").index(Expr::slice(Some(Expr::int(1)), None, None));
        let mut buffer = vec![
            Assign::new(Expr::name("buf_2"), slots),
            Assign::new(
                Expr::name("y"),
                Expr::List(vec![Expr::name("x"), Expr::Starred(Box::new(rest))]),
            ),
        ];
        let buffers = BTreeSet::from(["buf_2".to_string()]);
        inline_temporaries(&mut buffer, 8, &[Expr::name("y")], &buffers);
        assert_eq!(buffer.len(), 2);
        running_values(&mut buffer, &[Expr::name("y")], &buffers);
        assert_eq!(lines(&buffer)[0], "y = [None] * n");
    }

    /// The heads merged read the value they reshape three times, all in one statement: it
    /// runs as `x` all the same (`x = x.reshape(x.shape[0], x.shape[1], 32)`).
    #[test]
    fn a_temporary_read_only_by_the_next_statement_runs_as_x() {
        let permute = Expr::name("x").method("permute", [0, 2, 1, 3].map(Expr::int).to_vec());
        let dim = |i: i64| Expr::name("attention_8").attr("shape").index(Expr::int(i));
        let merge =
            Expr::name("attention_8").method("reshape", vec![dim(0), dim(1), Expr::int(32)]);
        let mut stmts = vec![
            Assign::new(Expr::name("attention_8"), permute),
            Assign::new(Expr::name("x"), merge),
        ];
        let temporaries = BTreeSet::from(["attention_8".to_string()]);
        running_values(&mut stmts, &[Expr::name("x")], &temporaries);
        assert_eq!(
            lines(&stmts),
            ["x = x.permute(0, 2, 1, 3)", "x = x.reshape(x.shape[0], x.shape[1], 32)"]
        );
    }
}
