//! A loop variable a body computes once is assigned where it is computed, as a person
//! writes a loop: `h = torch.tanh(...)`, then `outputs = [*outputs[:step], h, ...]`, not
//! `tanh = ...`, `tensor_array_v2_write = [...]` and `state, outputs = tanh,
//! tensor_array_v2_write` at the end of the step.

use crate::py::{Assign, Expr, Ref};

/// Binds each loop variable of `state` (names) whose next value `nexts` names a value the
/// body binds once, to that value where the body binds it; the value's later reads read the
/// variable, and its next value is the variable itself. Only where nothing after that
/// statement reads the variable's old value, and the body binds the variable nowhere.
pub(super) fn update_where_computed(body: &mut [Assign], state: &[Expr], nexts: &mut [Expr]) {
    for k in 0..state.len().min(nexts.len()) {
        let (Some(var), Some(next)) = (state[k].as_name(), nexts[k].as_name()) else { continue };
        let (var, next) = (var.to_string(), next.to_string());
        if var == next || nexts.iter().filter(|e| e.as_name() == Some(next.as_str())).count() != 1 {
            continue;
        }
        // The variable is another's next value too: its old value is read at the step's end.
        if nexts.iter().any(|e| e.reads(&var) > 0) {
            continue;
        }
        let binders: Vec<usize> = (0..body.len())
            .filter(|&j| body[j].target.bound_names().contains(&next.as_str()))
            .collect();
        let [j] = binders[..] else { continue };
        if body[j].target.as_name() != Some(next.as_str()) {
            continue;
        }
        let rebound = body.iter().any(|s| s.target.bound_names().contains(&var.as_str()));
        let read_later = body[j + 1..].iter().any(|s| s.value.reads(&var) > 0);
        if rebound || read_later {
            continue;
        }
        let rename = |r: Ref<'_>| match r {
            Ref::Var(n) if n == next => Some(Expr::name(&var)),
            _ => None,
        };
        body[j].target = Expr::name(&var);
        for s in &mut body[j + 1..] {
            s.value = s.value.renamed(&rename);
        }
        for e in nexts.iter_mut() {
            *e = e.renamed(&rename);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::update_where_computed;
    use crate::py::printer::flat;
    use crate::py::{Assign, BinOp, Expr};

    fn assign(target: &str, value: Expr) -> Assign {
        Assign::new(Expr::name(target), value)
    }

    /// `h`'s next value is bound where it is computed; `c`'s is not, as the body reads the
    /// old `c` after computing the new one.
    #[test]
    fn a_loop_variable_is_bound_where_it_is_computed() {
        let mut body = vec![
            assign("tanh", Expr::call("torch.tanh", vec![Expr::name("h")])),
            assign("add", Expr::name("tanh").binop(BinOp::Add, Expr::name("c"))),
            assign("mul", Expr::name("c").binop(BinOp::Mul, Expr::name("tanh"))),
        ];
        let state = [Expr::name("h"), Expr::name("c")];
        let mut nexts = vec![Expr::name("tanh"), Expr::name("add")];
        update_where_computed(&mut body, &state, &mut nexts);
        let lines: Vec<String> =
            body.iter().map(|s| format!("{} = {}", flat(&s.target), flat(&s.value))).collect();
        assert_eq!(lines, ["h = torch.tanh(h)", "add = h + c", "mul = c * h"]);
        assert_eq!(nexts.iter().map(flat).collect::<Vec<_>>(), ["h", "add"]);
    }
}
