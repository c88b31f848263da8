//! Shape plumbing reads as one chain: `x = self.key(inputs)` followed by
//! `x = x.reshape(...)` and `x = x.permute(...)` becomes
//! `x = self.key(inputs).reshape(...).permute(...)` when the intermediate names are used
//! nowhere else and the chain fits on one line.

use crate::py::printer::{self, LINE_WIDTH};
use std::collections::BTreeMap;

use crate::py::{Assign, Call, Expr, Ref, Stmt};

/// Methods that only re-view or re-type a tensor.
const PLUMBING: &[&str] =
    &["reshape", "permute", "transpose", "unsqueeze", "squeeze", "to", "flip", "long", "float"];

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
                let func = stmts[k].value.clone().attr(method);
                Some(Expr::Call(Box::new(Call { func, ..(**c).clone() })))
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

/// Block outputs that read as the running value: after block classes replace their layers,
/// `block2a_project_bn = self.block2a(x)` (named because `block2b`'s add read it too) is read
/// once, by the next call, and becomes `x = self.block2a(x)` where `x` is not read again.
pub fn running_block_outputs(stmts: &mut [Assign], returns: &[Expr]) {
    // Counted once (a chain may be 100k statements long): reads and bindings of each name,
    // and from each statement, whether `x` is next read or bound (renaming only adds reads
    // and bindings of `x` before the statements asked about).
    let mut reads: BTreeMap<String, usize> = BTreeMap::new();
    let mut binds: BTreeMap<String, usize> = BTreeMap::new();
    for s in stmts.iter() {
        for n in s.value.names() {
            *reads.entry(n.to_string()).or_default() += 1;
        }
        for n in s.target.bound_names() {
            *binds.entry(n.to_string()).or_default() += 1;
        }
    }
    let x_returned = returns.iter().any(|r| r.reads("x") > 0);
    let mut x_read_next = vec![x_returned; stmts.len() + 1];
    for k in (0..stmts.len()).rev() {
        x_read_next[k] = if stmts[k].value.reads("x") > 0 {
            true
        } else if stmts[k].target.bound_names().contains(&"x") {
            false
        } else {
            x_read_next[k + 1]
        };
    }
    for k in 0..stmts.len().saturating_sub(1) {
        let Some(var) = stmts[k].target.as_name().map(str::to_string) else { continue };
        let layer_call =
            matches!(&stmts[k].value, Expr::Call(c) if c.func.as_self_attr().is_some());
        let next = &stmts[k + 1];
        let first_arg = matches!(&next.value,
            Expr::Call(c) if c.args.first().and_then(Expr::as_name) == Some(var.as_str()));
        if var == "x"
            || !layer_call
            || !first_arg
            || reads.get(&var) != Some(&1)
            || binds.get(&var) != Some(&1)
            || returns.iter().any(|r| r.reads(&var) > 0)
            || x_read_next[k + 1]
        {
            continue;
        }
        let to_x = |r: Ref<'_>| match r {
            Ref::Var(n) if n == var => Some(Expr::name("x")),
            _ => None,
        };
        stmts[k].target = Expr::name("x");
        stmts[k + 1].value = stmts[k + 1].value.renamed(&to_x);
    }
}
