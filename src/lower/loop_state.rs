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
        rename_from(body, j, nexts, &[(next, var)]);
    }
}

/// Renames, by `renames` (old, new), what statements `from..` bind and read, and what the
/// next values read.
fn rename_from(body: &mut [Assign], from: usize, nexts: &mut [Expr], renames: &[(String, String)]) {
    let to = |n: &str| renames.iter().find(|(old, _)| old == n).map(|(_, new)| Expr::name(new));
    let rename = |r: Ref<'_>| match r {
        Ref::Var(n) => to(n),
        _ => None,
    };
    for s in &mut body[from..] {
        if let Some(new) = s.target.as_name().and_then(to) {
            s.target = new;
        }
        s.value = s.value.renamed(&rename);
    }
    for e in nexts.iter_mut() {
        *e = e.renamed(&rename);
    }
}

/// Names TF gives the item a loop reads from a list at its step (`TensorArrayV2Read`).
const ITEM_READS: &[&str] =
    &["tensor_array_v2_read", "tensor_array_read_v3", "tensor_list_get_item"];

/// Renames the items the body reads from a list at step `counter` under TF's op names
/// (`tensor_array_v2_read = xs[step]`) to what a person calls the input at a step: `x_t`
/// (`x_t_2` for a second list), where no name of the method (its `params`) is that already;
/// a list passed in under no name of its own (`invariant_0`) becomes `xs` (`xs_2`), unless
/// a while loop's condition reads it (`kept`).
pub(super) fn name_step_items(
    body: &mut [Assign],
    nexts: &mut [Expr],
    counter: &str,
    params: &mut [String],
    kept: &[String],
) {
    let mut used: std::collections::BTreeSet<String> = params.iter().cloned().collect();
    used.insert(counter.to_string());
    for s in body.iter() {
        used.extend(s.target.bound_names().into_iter().map(String::from));
        used.extend(s.value.names().into_iter().map(String::from));
    }
    for j in 0..body.len() {
        let Some(old) = body[j].target.as_name().map(String::from) else { continue };
        let base = crate::lower::scopes::without_counter(&old).unwrap_or(&old);
        let at_step = matches!(&body[j].value, Expr::Subscript(list, i)
            if list.as_name().is_some() && i.as_name() == Some(counter));
        let once =
            body.iter().filter(|s| s.target.bound_names().contains(&old.as_str())).count() == 1;
        if !ITEM_READS.contains(&base) || !at_step || !once {
            continue;
        }
        let Some(new) = (1..)
            .map(|k| if k == 1 { "x_t".to_string() } else { format!("x_t_{k}") })
            .find(|n| !used.contains(n))
        else {
            continue;
        };
        // Names made from it follow it (`tensor_array_v2_read_nchw`: `x_t_nchw`).
        let mut renames = vec![(old.clone(), new.clone())];
        for s in &body[j + 1..] {
            let Some(t) = s.target.as_name() else { continue };
            let Some(rest) = t.strip_prefix(old.as_str()).and_then(|r| r.strip_prefix('_')) else {
                continue;
            };
            let derived = format!("{new}_{rest}");
            if !rest.bytes().all(|b| b.is_ascii_digit()) && !used.contains(&derived) {
                renames.push((t.to_string(), derived));
            }
        }
        rename_from(body, j, nexts, &renames);
        used.extend(renames.into_iter().map(|(_, to)| to));
        // The list itself, where its name says nothing.
        let list = match &body[j].value {
            Expr::Subscript(list, _) => list.as_name().map(String::from),
            _ => None,
        };
        let Some(list) = list.filter(|l| l.starts_with("invariant_") && !kept.contains(l)) else {
            continue;
        };
        let Some(k) = params.iter().position(|p| *p == list) else { continue };
        let plural = new.replacen("x_t", "xs", 1);
        if !used.contains(&plural) {
            rename_from(body, 0, nexts, &[(list, plural.clone())]);
            params[k].clone_from(&plural);
            used.insert(plural);
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

    /// TF's name for the item read at the step is `x_t`, and a name made from it follows;
    /// an item read at another index keeps its name.
    #[test]
    fn the_item_read_at_the_step_is_x_t() {
        let at = |list: &str, i: &str| Expr::name(list).index(Expr::name(i));
        let mut body = vec![
            assign("tensor_array_v2_read", at("xs", "step")),
            assign(
                "tensor_array_v2_read_nchw",
                Expr::name("tensor_array_v2_read").method("relu", vec![]),
            ),
            assign("tensor_array_v2_read_2", at("ys", "k")),
            assign("tensor_array_v2_read_3", at("invariant_1", "step")),
            assign(
                "h",
                Expr::name("tensor_array_v2_read_nchw")
                    .binop(BinOp::Add, Expr::name("tensor_array_v2_read_2"))
                    .binop(BinOp::Add, Expr::name("tensor_array_v2_read_3")),
            ),
        ];
        let mut nexts = vec![Expr::name("h")];
        let mut params = ["h".to_string(), "xs".to_string(), "invariant_1".to_string()];
        super::name_step_items(&mut body, &mut nexts, "step", &mut params, &[]);
        let lines: Vec<String> =
            body.iter().map(|s| format!("{} = {}", flat(&s.target), flat(&s.value))).collect();
        assert_eq!(
            lines,
            [
                "x_t = xs[step]",
                "x_t_nchw = x_t.relu()",
                "tensor_array_v2_read_2 = ys[k]",
                "x_t_2 = xs_2[step]",
                "h = x_t_nchw + tensor_array_v2_read_2 + x_t_2"
            ]
        );
        assert_eq!(params, ["h", "xs", "xs_2"]);
    }
}
