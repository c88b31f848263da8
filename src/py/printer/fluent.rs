//! Call chains in ruff's "fluent" layout: a chain with two or more `.method` accesses on a
//! call or subscript (`x.reshape(..).permute(..).reshape(..)`) that does not fit on its line
//! is broken before each such access, one link per line.

use super::expr::flat;
use super::{INDENT, bracketed, call_items, fits, layout, pad};
use crate::py::ast::Expr;

/// The chain's links, ends first-to-last: each is the expression up to and including that
/// link. `None` unless the chain has at least two break points (ruff's threshold).
fn links(e: &Expr) -> Option<Vec<&Expr>> {
    let mut ends = vec![e];
    let mut cur = e;
    loop {
        cur = match cur {
            Expr::Attribute(value, _) => {
                if breaks_before(value) {
                    // Everything up to `value` is the previous link.
                    ends.push(value);
                }
                value
            }
            Expr::Call(c) => &c.func,
            Expr::Subscript(v, _) => v,
            _ => break,
        };
    }
    // `ends` holds the whole chain plus one entry per break point.
    if ends.len() < 3 {
        return None;
    }
    ends.reverse();
    Some(ends)
}

/// Whether ruff breaks before `.attr` on `value`: after a call, a subscript or a
/// parenthesised expression.
fn breaks_before(value: &Expr) -> bool {
    matches!(
        value,
        Expr::Call(_) | Expr::Subscript(..) | Expr::Binary(..) | Expr::Unary(..) | Expr::IfElse(_)
    )
}

/// The chain's lines at `indent` (no enclosing brackets: the caller's), or `None` when `e` is
/// not a fluent chain.
pub(super) fn chain(indent: usize, e: &Expr) -> Option<Vec<String>> {
    let ends = links(e)?;
    let inner = pad(indent);
    // A first link that is an operation (`a == b`) keeps the parentheses the chain needs.
    let first = flat(ends[0]);
    let wrapped = flat(ends[1]).starts_with('(') && !first.starts_with('(');
    let (open, close) = if wrapped { ("(", ")") } else { ("", "") };
    let mut lines = layout(indent, open, ends[0], close);
    let mut before = first.len() + open.len() + close.len();
    for end in &ends[1..] {
        let text = flat(end);
        let link = &text[before..];
        let prev = before;
        before = text.len();
        let one = format!("{inner}{link}");
        if fits(&one) {
            lines.push(one);
            continue;
        }
        // A long index at the end of a link breaks inside its brackets, one entry per line.
        if let Expr::Subscript(v, index) = end {
            let head = format!("{}[", &flat(v)[prev..]);
            let entries: Vec<&Expr> = match &**index {
                Expr::Tuple(items) if items.len() > 1 => items.iter().collect(),
                other => vec![other],
            };
            let items: Vec<(String, &Expr)> =
                entries.into_iter().map(|e| (String::new(), e)).collect();
            // A call before the index too long for its line breaks first, the index after
            // its `)`: `.reshape(` + arguments + `)[` + entries + `]`.
            if let Expr::Call(c) = &**v
                && !fits(&format!("{inner}{head}"))
            {
                let func = flat(&c.func);
                let call_head = format!("{}(", &func[prev.min(func.len())..]);
                let mut broken = bracketed(indent, &call_head, ")[", &call_items(c), "");
                let opened = broken.pop().unwrap_or_default();
                lines.extend(broken);
                let mut index_lines = bracketed(indent, "", "]", &items, "");
                index_lines[0] = opened;
                lines.extend(index_lines);
                continue;
            }
            lines.extend(bracketed(indent, &head, "]", &items, ""));
            continue;
        }
        // A long link is broken like a call: its arguments on their own lines.
        let Expr::Call(c) = end else {
            lines.push(one);
            continue;
        };
        let func = flat(&c.func);
        let head = format!("{}(", &func[text.len() - link.len()..]);
        lines.extend(bracketed(indent, &head, ")", &call_items(c), ""));
    }
    Some(lines)
}

/// `<head>(` + the chain one link per line + `)<tail>`, or `None` when `e` is not a fluent
/// chain.
pub(super) fn parenthesized(
    indent: usize,
    head: &str,
    e: &Expr,
    tail: &str,
) -> Option<Vec<String>> {
    let inner = format!("{}{}", pad(indent + INDENT), flat(e));
    // On one line inside the parentheses when it fits there (ruff tries that first).
    let body =
        if fits(&inner) && links(e).is_some() { vec![inner] } else { chain(indent + INDENT, e)? };
    let p = pad(indent);
    let mut lines = vec![format!("{p}{head}(")];
    lines.extend(body);
    lines.push(format!("{p}){tail}"));
    Some(lines)
}
