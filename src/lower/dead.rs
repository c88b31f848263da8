//! Statements whose results nothing reads are dropped from `forward`.
//!
//! Translators that only need the known part of a value (a conv-transpose's output size, a
//! resize's target) still cause the run-time part to be computed when the lowering visits the
//! producing nodes; the statements it leaves (`up = (h.shape[0], ...)`) are dead code a reader
//! would have to puzzle over. A custom-op call stays even when unread: it is the user's code
//! and the place they look for it.

use std::collections::BTreeSet;

use crate::py::{Assign, Expr};

/// Removes dead statements from `stmts` (read nowhere later and not in `returns`). Returns,
/// for each old index and one past the end, the new index of the first statement kept at or
/// after it, so that ranges over the old statements can be remapped.
pub fn remove_dead(stmts: &mut Vec<Assign>, returns: &[Expr]) -> Vec<usize> {
    // A set: module names (`F`, `torch`, `self`) are read by nearly every statement.
    let mut live: BTreeSet<&str> = returns.iter().flat_map(|r| r.names()).collect();
    let mut keep = vec![true; stmts.len()];
    for (i, s) in stmts.iter().enumerate().rev() {
        let bound = s.target.bound_names();
        let read = bound.iter().any(|b| live.contains(*b));
        if !read && !calls_user_code(&s.value) {
            keep[i] = false;
            continue;
        }
        // Names bound here are dead above this point until read again by what is above.
        for b in &bound {
            live.remove(*b);
        }
        live.extend(s.value.names());
    }
    let mut new_index = Vec::with_capacity(stmts.len() + 1);
    let mut kept = 0;
    for &k in &keep {
        new_index.push(kept);
        kept += usize::from(k);
    }
    new_index.push(kept);
    let mut k = keep.iter();
    stmts.retain(|_| *k.next().unwrap_or(&true));
    new_index
}

/// Whether `value` calls into `custom_ops`.
fn calls_user_code(value: &Expr) -> bool {
    if let Expr::Call(c) = value
        && let Expr::Attribute(m, _) = &c.func
        && m.as_name() == Some("custom_ops")
    {
        return true;
    }
    value.children().into_iter().any(calls_user_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(target: &str, value: Expr) -> Assign {
        Assign::new(Expr::name(target), value)
    }

    #[test]
    fn unread_shape_arithmetic_goes_and_indices_follow() {
        let mut stmts = vec![
            assign("h", Expr::name("x").attr("relu").called(vec![], vec![])),
            assign("up", Expr::Tuple(vec![Expr::name("h").attr("shape")])),
            assign("up_2", Expr::name("up").index(Expr::int(0))),
            assign("y", Expr::name("h").attr("sum").called(vec![], vec![])),
            assign("z", Expr::name("custom_ops").attr("foo").called(vec![Expr::name("h")], vec![])),
        ];
        let map = remove_dead(&mut stmts, &[Expr::name("y")]);
        let targets: Vec<_> = stmts.iter().map(|s| s.target.as_name().unwrap()).collect();
        assert_eq!(targets, ["h", "y", "z"]);
        assert_eq!(map, [0, 1, 1, 1, 2, 3]);
    }

    #[test]
    fn a_name_rebound_is_live_only_up_to_its_last_binding() {
        // `x = a; x = b; return x`: the first binding is never read.
        let mut stmts = vec![assign("x", Expr::name("a")), assign("x", Expr::name("b"))];
        remove_dead(&mut stmts, &[Expr::name("x")]);
        assert_eq!(stmts, [assign("x", Expr::name("b"))]);
        // `x = a; x = x + 1`: it is.
        let mut stmts = vec![
            assign("x", Expr::name("a")),
            assign("x", Expr::name("x").binop(crate::py::BinOp::Add, Expr::int(1))),
        ];
        remove_dead(&mut stmts, &[Expr::name("x")]);
        assert_eq!(stmts.len(), 2);
    }
}
