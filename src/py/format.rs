//! Line layout for generated statements, matching `ruff format` (Black style, 88 columns)
//! so that the generated file is already formatted.

use super::PyExpr;
use super::expr;

pub const LINE_WIDTH: usize = 88;

/// Formats `target = value` at `indent` spaces, breaking the outermost call like ruff does:
/// all arguments on one indented line if they fit, else one per line with a trailing comma.
pub fn assignment(indent: usize, target: &str, value: &PyExpr) -> Vec<String> {
    let prefix = if target.is_empty() { String::new() } else { format!("{target} = ") };
    statement(indent, &prefix, value)
}

/// Formats `<prefix><value>` (prefix such as `return ` or `x = `).
pub fn statement(indent: usize, prefix: &str, value: &PyExpr) -> Vec<String> {
    let pad = " ".repeat(indent);
    let flat = format!("{pad}{prefix}{value}");
    if flat.len() <= LINE_WIDTH {
        return vec![flat];
    }
    if let PyExpr::BinOp { op, .. } = value {
        // ruff: parenthesise; if the expression still does not fit on one line inside the
        // parentheses, one operand of the top-level operator chain per line, operators leading.
        let inner = " ".repeat(indent + 4);
        let one = format!("{inner}{value}");
        if one.len() <= LINE_WIDTH {
            return vec![format!("{pad}{prefix}("), one, format!("{pad})")];
        }
        let mut parts: Vec<(Option<&str>, String)> = Vec::new();
        let mut cur = value;
        while let PyExpr::BinOp { left, op: o, right } = cur {
            if expr::precedence(o) != expr::precedence(op) {
                break;
            }
            parts.push((Some(*o), right.operand_of(o, true)));
            cur = left;
        }
        parts.push((None, cur.operand_of(op, false)));
        parts.reverse();
        let mut lines = vec![format!("{pad}{prefix}(")];
        for (o, text) in parts {
            lines.push(match o {
                Some(o) => format!("{inner}{o} {text}"),
                None => format!("{inner}{text}"),
            });
        }
        lines.push(format!("{pad})"));
        return lines;
    }
    if let PyExpr::List(items) = value {
        return split_list(indent, prefix, items, "");
    }
    // When even `target = func(` does not fit, ruff wraps the right-hand side in parentheses.
    if let PyExpr::Call { func, .. } = value
        && !prefix.is_empty()
        && format!("{pad}{prefix}{func}(").len() > LINE_WIDTH
    {
        let mut lines = vec![format!("{pad}{prefix}(")];
        lines.extend(statement(indent + 4, "", value));
        lines.push(format!("{pad})"));
        return lines;
    }
    split_call(indent, prefix, value, "").unwrap_or(vec![flat])
}

/// Breaks a call that does not fit, as ruff does: the arguments on one indented line if they
/// fit there, else one per line with a trailing comma, each broken the same way in turn.
fn split_call(indent: usize, prefix: &str, value: &PyExpr, suffix: &str) -> Option<Vec<String>> {
    let PyExpr::Call { func, args, kwargs } = value else {
        return None;
    };
    let pad = " ".repeat(indent);
    let inner = " ".repeat(indent + 4);
    let head = format!("{pad}{prefix}{}(", func_text(func));
    let items: Vec<(String, &PyExpr)> = args
        .iter()
        .map(|a| (String::new(), a))
        .chain(kwargs.iter().map(|(k, v)| (format!("{k}="), v)))
        .collect();
    let joined: Vec<String> = items.iter().map(|(k, v)| format!("{k}{v}")).collect();
    let one_line = format!("{inner}{}", joined.join(", "));
    if one_line.len() <= LINE_WIDTH {
        return Some(vec![head, one_line, format!("{pad}){suffix}")]);
    }
    let mut lines = vec![head];
    for (k, v) in &items {
        let flat = format!("{inner}{k}{v},");
        if flat.len() <= LINE_WIDTH {
            lines.push(flat);
        } else if let PyExpr::List(list) = v {
            lines.extend(split_list(indent + 4, k, list, ","));
        } else {
            lines.extend(split_call(indent + 4, k, v, ",").unwrap_or(vec![flat]));
        }
    }
    lines.push(format!("{pad}){suffix}"));
    Some(lines)
}

/// A list literal that does not fit: one item per line with a trailing comma (ruff explodes
/// collection literals rather than packing their items).
fn split_list(indent: usize, prefix: &str, items: &[PyExpr], suffix: &str) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut lines = vec![format!("{pad}{prefix}[")];
    for item in items {
        let flat = format!("{pad}    {item},");
        if flat.len() <= LINE_WIDTH {
            lines.push(flat);
        } else {
            lines.extend(item_lines(indent + 4, item));
        }
    }
    lines.push(format!("{pad}]{suffix}"));
    lines
}

/// One item of an exploded collection: formatted, a comma after its last line.
pub fn item_lines(indent: usize, item: &PyExpr) -> Vec<String> {
    let mut lines = statement(indent, "", item);
    if let Some(last) = lines.last_mut() {
        last.push(',');
    }
    lines
}

fn func_text(func: &PyExpr) -> String {
    match func {
        PyExpr::Atom(a) => a.clone(),
        other => format!("({other})"),
    }
}

/// `return a, b, ...`; parenthesised one per line when too long (as ruff does).
pub fn return_values(indent: usize, values: &[String]) -> Vec<String> {
    let pad = " ".repeat(indent);
    let flat = format!("{pad}return {}", values.join(", "));
    if flat.len() <= LINE_WIDTH || values.len() < 2 {
        return vec![flat];
    }
    let mut lines = vec![format!("{pad}return (")];
    lines.extend(values.iter().map(|v| format!("{pad}    {v},")));
    lines.push(format!("{pad})"));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_calls_break_like_ruff() {
        let args = (0..8).map(|i| PyExpr::name(format!("argument_{i}"))).collect();
        let lines = assignment(8, "x", &PyExpr::call("torch.cat", args));
        assert_eq!(lines[0], "        x = torch.cat(");
        assert_eq!(lines.last().unwrap(), "        )");
    }
}

#[cfg(test)]
mod list_tests {
    use super::*;

    #[test]
    fn long_lists_explode_one_item_per_line() {
        let items: Vec<PyExpr> = (0..8).map(|i| PyExpr::name(format!("per_step_{i}"))).collect();
        let call = PyExpr::call_kw(
            "torch.stack",
            vec![PyExpr::List(items)],
            vec![("dim", PyExpr::int(0))],
        );
        let lines = assignment(8, "x", &call);
        assert_eq!(
            lines[..3],
            ["        x = torch.stack(", "            [", "                per_step_0,"]
        );
        assert_eq!(lines[lines.len() - 3..], ["            ],", "            dim=0,", "        )"]);
    }
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    #[test]
    fn long_operator_chains_break_per_operand() {
        let n = |s: &str| PyExpr::name(s.repeat(30));
        let e = n("a").binop("+", n("b")).binop("-", n("c"));
        let lines = assignment(8, "x", &e);
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(
            lines[2].trim_start().starts_with("+ b") && lines[3].trim_start().starts_with("- c")
        );
    }
}
