//! Shape plumbing reads as one chain: `x = self.key(inputs)` followed by
//! `x = x.reshape(...)` and `x = x.permute(...)` becomes
//! `x = self.key(inputs).reshape(...).permute(...)` when the intermediate names are used
//! nowhere else and the chain fits on one line.

use super::Stmt;
use crate::py::PyExpr;
use crate::py::format::LINE_WIDTH;

/// Methods that only re-view or re-type a tensor.
const PLUMBING: &[&str] =
    &["reshape", "permute", "transpose", "unsqueeze", "squeeze", "to", "flip", "long", "float"];

fn reads(s: &Stmt, var: &str) -> usize {
    s.expr.identifiers().iter().filter(|i| *i == var).count()
}

fn assigns(s: &Stmt, var: &str) -> bool {
    s.target.split(", ").any(|t| t == var)
}

/// Whether `var` is read after statement `from` (before being assigned again).
fn read_later(var: &str, stmts: &[Stmt], from: usize, returns: &[String]) -> bool {
    for s in &stmts[from..] {
        if reads(s, var) > 0 {
            return true;
        }
        if assigns(s, var) {
            return false;
        }
    }
    returns
        .iter()
        .any(|r| crate::py::expr::identifier_spans(r).iter().any(|&(a, b)| &r[a..b] == var))
}

/// Merges plumbing statements into the statement before them, in place.
pub fn chain(stmts: &mut Vec<Stmt>, indent: usize, returns: &[String]) {
    let mut k = 0;
    while k + 1 < stmts.len() {
        let var = stmts[k].target.clone();
        let next = &stmts[k + 1];
        let PyExpr::Call { func, args, kwargs } = &next.expr else {
            k += 1;
            continue;
        };
        let method = match func.as_ref() {
            PyExpr::Atom(f) => f.strip_prefix(&format!("{var}.")).map(str::to_string),
            _ => None,
        };
        let single = !var.contains(", ")
            && method.as_deref().is_some_and(|m| PLUMBING.contains(&m))
            && reads(next, &var) == 1
            && (assigns(next, &var) || !read_later(&var, stmts, k + 2, returns));
        if let (true, Some(method)) = (single, method) {
            let merged = PyExpr::Call {
                func: Box::new(stmts[k].expr.clone().attr(&method)),
                args: args.clone(),
                kwargs: kwargs.clone(),
            };
            let line = format!("{}{} = {merged}", " ".repeat(indent), next.target);
            if line.len() <= LINE_WIDTH {
                stmts[k + 1].expr = merged;
                stmts.remove(k);
                continue;
            }
        }
        k += 1;
    }
}
