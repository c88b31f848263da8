//! Shape plumbing reads as one chain: `x = self.key(inputs)` followed by
//! `x = x.reshape(...)` and `x = x.permute(...)` becomes
//! `x = self.key(inputs).reshape(...).permute(...)` when the intermediate names are used
//! nowhere else and the chain fits on one line.

use crate::py::printer::{self, LINE_WIDTH};
use crate::py::{Assign, Call, Expr, Stmt};

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
