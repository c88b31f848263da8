//! Line layout for generated statements, matching `ruff format` (Black style, 88 columns)
//! so that the generated file is already formatted.

use super::PyExpr;

pub const LINE_WIDTH: usize = 88;

/// Formats `target = value` at `indent` spaces, breaking the outermost call like ruff does:
/// all arguments on one indented line if they fit, else one per line with a trailing comma.
pub fn assignment(indent: usize, target: &str, value: &PyExpr) -> Vec<String> {
    let prefix = if target.is_empty() {
        String::new()
    } else {
        format!("{target} = ")
    };
    statement(indent, &prefix, value)
}

/// Formats `<prefix><value>` (prefix such as `return ` or `x = `).
pub fn statement(indent: usize, prefix: &str, value: &PyExpr) -> Vec<String> {
    let pad = " ".repeat(indent);
    let flat = format!("{pad}{prefix}{value}");
    if flat.len() <= LINE_WIDTH {
        return vec![flat];
    }
    let Some((head, args)) = value.call_parts() else {
        return vec![flat];
    };
    let inner = " ".repeat(indent + 4);
    let joined = args.join(", ");
    if format!("{inner}{joined}").len() <= LINE_WIDTH {
        return vec![
            format!("{pad}{prefix}{head}("),
            format!("{inner}{joined}"),
            format!("{pad})"),
        ];
    }
    let mut lines = vec![format!("{pad}{prefix}{head}(")];
    lines.extend(args.iter().map(|a| format!("{inner}{a},")));
    lines.push(format!("{pad})"));
    lines
}
