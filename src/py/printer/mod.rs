//! The one printer: syntax trees → Python text laid out as `ruff format` would (Black style,
//! 88 columns, 4-space indents), so that generated files are formatted as written.
//!
//! Expressions print flat when they fit. A statement that does not fit is broken the way ruff
//! breaks it: the last call's arguments on one indented line, else one per line with a
//! trailing comma; collection literals (lists, tuples) one item per line; an operator chain
//! parenthesised with one operand per line, operators leading.

mod expr;
mod fluent;

pub use expr::{escape, flat, string_literal, target_text};
use expr::{write_operand, write_primary};

use super::ast::{BinOp, Call, ClassDef, Expr, FunctionDef, ListComp, Param, Stmt};

pub const LINE_WIDTH: usize = 88;

const INDENT: usize = 4;

fn pad(indent: usize) -> String {
    " ".repeat(indent)
}

fn fits(line: &str) -> bool {
    line.len() <= LINE_WIDTH
}

/// Lays out `<head><value><tail>` at `indent` (head such as `x = `, `return `, `while `;
/// tail `:` for compound statements).
fn layout(indent: usize, head: &str, value: &Expr, tail: &str) -> Vec<String> {
    let p = pad(indent);
    let one = format!("{p}{head}{}{tail}", flat(value));
    if fits(&one) {
        return vec![one];
    }
    if matches!(value, Expr::Binary(..))
        && !head.is_empty()
        && let Some(lines) = hugged_operands(indent, head, value, tail)
            .or_else(|| hugged_chain(indent, head, value, tail))
    {
        return lines;
    }
    let fluent = match (head, tail) {
        ("", "") => fluent::chain(indent, value),
        _ => fluent::parenthesized(indent, head, value, tail),
    };
    if let Some(lines) = fluent {
        return lines;
    }
    match value {
        Expr::Binary(..) => operator_chain(indent, head, value, tail),
        Expr::List(items) => collection(indent, head, ("[", "]"), items, tail),
        Expr::ListComp(c) => comprehension(indent, head, c, tail),
        Expr::Tuple(items) if !items.is_empty() => {
            collection(indent, head, ("(", ")"), items, tail)
        }
        // When `target = func(` (or `target = value[`) overflows, ruff parenthesises the
        // value if everything then fits; else it breaks inside the value's own brackets.
        Expr::Call(c) if !fits(&format!("{p}{head}{}(", flat_primary(&c.func))) => {
            method_on_parenthesized(indent, head, value, tail)
                .or_else(|| method_on_call(indent, head, value, tail))
                .or_else(|| parenthesized_if_fits(indent, head, value, tail))
                .unwrap_or_else(|| call(indent, head, value, tail).unwrap_or(vec![one]))
        }
        // `f(args)[index]`: the call's arguments break, the index stays on the closing line
        // (ruff splits at the last bracket whose first line fits).
        // ... unless the whole call fits before the index's bracket: then the index breaks.
        Expr::Subscript(v, i)
            if matches!(**v, Expr::Call(_)) && fits(&format!("{p}{head}{}[", flat(v))) =>
        {
            subscript(indent, head, v, i, tail)
        }
        Expr::Subscript(v, i)
            if matches!(**v, Expr::Call(_))
                && fits(&format!("{p}{head}{}(", call_func_text(v))) =>
        {
            call_then_index(indent, head, v, i, tail).unwrap_or(vec![one])
        }
        // `a.f(x).g()[i]`: ruff omits the trailing `.g()[i]` and breaks inside `f(`, as for
        // a method on a call (the index stays on the closing line).
        Expr::Subscript(v, _)
            if matches!(**v, Expr::Call(_))
                && let Some(lines) = method_on_call(
                    indent,
                    head,
                    v,
                    &format!("{}{tail}", &flat(value)[flat(v).len()..]),
                ) =>
        {
            lines
        }
        Expr::Subscript(v, i) if !fits(&format!("{p}{head}{}[", flat_primary(v))) => {
            parenthesized_if_fits(indent, head, value, tail)
                .unwrap_or_else(|| subscript(indent, head, v, i, tail))
        }
        // An attribute or a negation, when parenthesising makes it fit.
        Expr::Attribute(..) | Expr::Unary(..) => {
            parenthesized_if_fits(indent, head, value, tail).unwrap_or(vec![one])
        }
        // `self.stage_2 = LongClassName()`: nothing inside `()` to break, so ruff
        // parenthesises the value where that makes it fit.
        Expr::Call(_) => call(indent, head, value, tail)
            .or_else(|| parenthesized_if_fits(indent, head, value, tail))
            .unwrap_or(vec![one]),
        Expr::Subscript(v, i) => subscript(indent, head, v, i, tail),
        Expr::Slice(sl) => slice(indent, head, sl, tail).unwrap_or(vec![one]),
        Expr::IfElse(_) if !head.is_empty() => parenthesized(indent, head, value, tail),
        // Inside brackets already: ruff breaks before `if` and `else`.
        Expr::IfElse(c) => {
            let mut lines = layout(indent, "", &c.body, "");
            lines.extend(layout(indent, "if ", &c.test, ""));
            lines.extend(layout(indent, "else ", &c.orelse, tail));
            lines
        }
        _ => vec![one],
    }
}

/// `<head>(` + the value one level in + `)<tail>`, if every line of that fits.
fn parenthesized_if_fits(
    indent: usize,
    head: &str,
    value: &Expr,
    tail: &str,
) -> Option<Vec<String>> {
    if head.is_empty() {
        return None;
    }
    let lines = parenthesized(indent, head, value, tail);
    lines.iter().all(|l| fits(l)).then_some(lines)
}

/// `<head>(` + the value laid out one level in + `)<tail>`.
fn parenthesized(indent: usize, head: &str, value: &Expr, tail: &str) -> Vec<String> {
    let p = pad(indent);
    let mut lines = vec![format!("{p}{head}(")];
    lines.extend(layout(indent + INDENT, "", value, ""));
    lines.push(format!("{p}){tail}"));
    lines
}

/// A subscript that does not fit: its index on an indented line, a tuple index one item per
/// line with a trailing comma (a single index gets none: `x[a,]` would be a tuple).
fn subscript(indent: usize, head: &str, v: &Expr, index: &Expr, tail: &str) -> Vec<String> {
    let p = pad(indent);
    let open = format!("{p}{head}{}[", flat_primary(v));
    let mut lines = vec![open];
    match index {
        Expr::Tuple(items) if items.len() > 1 => {
            let inner = format!(
                "{}{}",
                pad(indent + INDENT),
                items.iter().map(flat).collect::<Vec<_>>().join(", ")
            );
            if fits(&inner) {
                lines.push(inner);
            } else {
                for it in items {
                    lines.extend(item(indent + INDENT, "", it));
                }
            }
        }
        other => lines.extend(layout(indent + INDENT, "", other, "")),
    }
    lines.push(format!("{p}]{tail}"));
    lines
}

/// `v[index]` that does not fit: when `v` is a call that does not fit before the index's
/// bracket either, the call's arguments break and the index follows its `)` (ruff's split at
/// the last bracket whose first line fits); else the index breaks.
fn subscript_of_call(indent: usize, head: &str, v: &Expr, index: &Expr, tail: &str) -> Vec<String> {
    let p = pad(indent);
    if matches!(v, Expr::Call(_))
        && !fits(&format!("{p}{head}{}[", flat(v)))
        && fits(&format!("{p}{head}{}(", call_func_text(v)))
    {
        let whole = flat(&Expr::Subscript(Box::new(v.clone()), Box::new(index.clone())));
        let rest = format!("{}{tail}", &whole[flat(v).len()..]);
        if let Some(lines) = call(indent, head, v, &rest) {
            return lines;
        }
    }
    subscript(indent, head, v, index, tail)
}

/// `f(args)[index]` with the call's arguments broken: the index on the closing line, or,
/// too long there, broken after `)[` one entry per line.
fn call_then_index(
    indent: usize,
    head: &str,
    v: &Expr,
    index: &Expr,
    tail: &str,
) -> Option<Vec<String>> {
    let whole = flat(&Expr::Subscript(Box::new(v.clone()), Box::new(index.clone())));
    let index_text = &whole[flat(v).len()..];
    let mut lines = call(indent, head, v, &format!("{index_text}{tail}"))?;
    if lines.last().is_some_and(|l| !fits(l)) {
        lines.pop();
        let entries: Vec<(String, &Expr)> = match index {
            Expr::Tuple(items) if items.len() > 1 => {
                items.iter().map(|e| (String::new(), e)).collect()
            }
            other => vec![(String::new(), other)],
        };
        let mut broken = bracketed(indent, "", "]", &entries, tail);
        broken[0] = format!("{})[", pad(indent));
        lines.extend(broken);
    }
    Some(lines)
}

/// A slice whose bound is a parenthesised conditional: `lower : (` + the conditional on its
/// own line + `)`.
fn slice(indent: usize, head: &str, sl: &super::ast::Slice, tail: &str) -> Option<Vec<String>> {
    let upper @ Expr::IfElse(_) = sl.upper.as_ref()? else { return None };
    if sl.step.is_some() {
        return None;
    }
    let p = pad(indent);
    let lower = sl.lower.as_ref().map(flat).map_or(String::new(), |l| format!("{l} "));
    let mut lines = vec![format!("{p}{head}{lower}: (")];
    lines.extend(layout(indent + INDENT, "", upper, ""));
    lines.push(format!("{p}){tail}"));
    Some(lines)
}

/// A slice item whose upper bound is an operation too long for its line: broken before that
/// bound's operators, as the item is in brackets already (`lower : a * 2` then `- b,`).
fn slice_of_long_bound(
    indent: usize,
    key: &str,
    v: &Expr,
    sl: &super::ast::Slice,
) -> Option<Vec<String>> {
    let upper @ Expr::Binary(..) = sl.upper.as_ref()? else { return None };
    if sl.step.is_some() {
        return None;
    }
    let text = flat(v);
    let before = text.strip_suffix(flat(upper).as_str())?;
    Some(chain_lines_before(indent, &format!("{key}{before}"), upper, ","))
}

/// The text of a call's function (`F.conv2d` in `F.conv2d(x, w)`).
fn call_func_text(e: &Expr) -> String {
    match e {
        Expr::Call(c) => flat_primary(&c.func),
        other => flat_primary(other),
    }
}

fn flat_primary(e: &Expr) -> String {
    let mut s = String::new();
    write_primary(&mut s, e, false);
    s
}

/// A call whose arguments can go on lines of their own, and nothing else: an operand ruff
/// breaks inside its own brackets rather than parenthesise the operation around it.
fn breaks_in_own_brackets(e: &Expr) -> bool {
    // Not a chain of calls (`x.unfold(2, 2, 2).sum(-1)`), which ruff breaks its own way.
    matches!(e, Expr::Call(c)
        if !(flat(&c.func).contains(['(', '[']) || c.args.is_empty() && c.kwargs.is_empty()))
}

/// One operator between two operands, the last a call (`y * self.proj(...)`,
/// `F.avg_pool2d(...) / F.avg_pool2d(...)`): ruff omits the parentheses it would put around
/// the operation and breaks the calls' own brackets instead, left to right, each only where
/// the rest of the line overflows.
fn hugged_operands(indent: usize, head: &str, value: &Expr, tail: &str) -> Option<Vec<String>> {
    let Expr::Binary(left, op, right) = value else { return None };
    let primary = |e: &Expr| !matches!(e, Expr::Binary(..) | Expr::Unary(..) | Expr::IfElse(_));
    if !primary(left) || !primary(right) {
        return None;
    }
    if !breaks_in_own_brackets(right) {
        return None;
    }
    let p = pad(indent);
    let sep = format!(" {} ", op.symbol());
    let (l, r) = (flat(left), flat(right));
    let mut lines: Vec<String> = Vec::new();
    // The line so far, past the indent.
    let mut current = head.to_string();
    // The first operand stays whole if the line fits up to where the last can break.
    let Expr::Call(last) = &**right else { return None };
    let right_open = format!("{sep}{}(", flat_primary(&last.func));
    for (k, (operand, text, rest)) in
        [(left, &l, right_open), (right, &r, tail.to_string())].into_iter().enumerate()
    {
        let lead = if k == 0 { String::new() } else { sep.clone() };
        if fits(&format!("{p}{current}{lead}{text}{rest}")) || !breaks_in_own_brackets(operand) {
            current = format!("{current}{lead}{text}");
            continue;
        }
        let mut broken = call(indent, &format!("{current}{lead}"), operand, "")?;
        let last = broken.pop()?;
        lines.extend(broken);
        current = last.strip_prefix(&p)?.to_string();
    }
    lines.push(format!("{p}{current}{tail}"));
    lines.iter().all(|l| fits(l) || !l.contains('(')).then_some(lines)
}

/// One operator between an operand and a call chain too long for its line (`a / b.f().g()`):
/// ruff parenthesises the chain, broken a link per line, after the operator on the first
/// line when that fits, rather than the whole operation.
fn hugged_chain(indent: usize, head: &str, value: &Expr, tail: &str) -> Option<Vec<String>> {
    let Expr::Binary(left, op, right) = value else { return None };
    let primary = |e: &Expr| !matches!(e, Expr::Binary(..) | Expr::Unary(..) | Expr::IfElse(_));
    if !primary(left) || !primary(right) {
        return None;
    }
    let lead = format!("{head}{} {} ", flat(left), op.symbol());
    if !fits(&format!("{}{lead}(", pad(indent))) {
        return None;
    }
    let lines = fluent::parenthesized(indent, &lead, right, tail)?;
    lines.iter().all(|l| fits(l)).then_some(lines)
}

/// An operator chain that does not fit: parenthesised on one indented line if it fits there,
/// else broken before its operators (see [`chain_lines`]).
fn operator_chain(indent: usize, head: &str, value: &Expr, tail: &str) -> Vec<String> {
    let p = pad(indent);
    let mut lines = vec![format!("{p}{head}(")];
    lines.extend(chain_lines(indent + INDENT, "", value));
    lines.push(format!("{p}){tail}"));
    lines
}

/// `<lead><value>` inside parentheses at `indent`: on one line if it fits, else one operand of
/// the top-level chain per line, operators leading; an operand still too long breaks the same
/// way at its own (stronger) operators, or inside its own brackets (Black's delimiter split).
fn chain_lines(indent: usize, lead: &str, value: &Expr) -> Vec<String> {
    chain_lines_before(indent, lead, value, "")
}

/// [`chain_lines`] with `tail` (an item's comma) after the last line, counted where the
/// lines must fit.
fn chain_lines_before(indent: usize, lead: &str, value: &Expr, tail: &str) -> Vec<String> {
    let line = format!("{}{lead}{}{tail}", pad(indent), flat(value));
    if fits(&line) {
        return vec![line];
    }
    let mut lines = chain_parts(indent, lead, value, tail);
    if let Some(last) = lines.last_mut() {
        last.push_str(tail);
    }
    lines
}

/// [`chain_lines_before`] past its check for one line; the tail is not written.
fn chain_parts(indent: usize, lead: &str, value: &Expr, tail: &str) -> Vec<String> {
    let line = format!("{}{lead}{}", pad(indent), flat(value));
    let op = match value {
        Expr::Binary(_, op, _) => *op,
        Expr::Call(_) | Expr::Subscript(..) => return layout(indent, lead, value, ""),
        _ => return vec![line],
    };
    let mut parts: Vec<(Option<BinOp>, &Expr, String)> = Vec::new();
    let mut cur = value;
    while let Expr::Binary(left, o, right) = cur {
        if o.precedence() != op.precedence() {
            break;
        }
        let mut text = String::new();
        write_operand(&mut text, right, *o, true);
        parts.push((Some(*o), right, text));
        cur = left;
    }
    let mut first = String::new();
    write_operand(&mut first, cur, op, false);
    parts.push((None, cur, first));
    parts.reverse();
    let mut lines = Vec::new();
    let count = parts.len();
    for (k, (o, operand, text)) in parts.into_iter().enumerate() {
        let lead = match o {
            Some(o) => format!("{} ", o.symbol()),
            None => lead.to_string(),
        };
        let last = k + 1 == count;
        if text == flat(operand) && last && !fits(&format!("{}{lead}{text}{tail}", pad(indent))) {
            // The last operand, too long with the tail after it.
            lines.extend(chain_parts(indent, &lead, operand, tail));
        } else if text == flat(operand) {
            lines.extend(chain_lines(indent, &lead, operand));
        } else if !fits(&format!("{}{lead}{text}", pad(indent)))
            && matches!(operand, Expr::Binary(..))
        {
            // Parenthesised here and too long: its own chain inside its parentheses.
            lines.push(format!("{}{lead}(", pad(indent)));
            lines.extend(chain_lines(indent + INDENT, "", operand));
            lines.push(format!("{})", pad(indent)));
        } else {
            // Parenthesised here: kept whole.
            lines.push(format!("{}{lead}{text}", pad(indent)));
        }
    }
    lines
}

/// A call that does not fit: its arguments on one indented line if they fit there, else one
/// per line with a trailing comma, each broken the same way in turn.
fn call(indent: usize, head: &str, value: &Expr, tail: &str) -> Option<Vec<String>> {
    let Expr::Call(c) = value else { return None };
    if c.args.is_empty() && c.kwargs.is_empty() {
        // `x[i].long()`: nothing to break in `()`, so the brackets before it break.
        let Expr::Attribute(receiver, _) = &c.func else { return None };
        let rest = format!("{}{tail}", &flat(value)[flat(receiver).len()..]);
        return match &**receiver {
            Expr::Subscript(v, i) => Some(subscript_of_call(indent, head, v, i, &rest)),
            inner @ Expr::Call(_) => call(indent, head, inner, &rest),
            _ => None,
        };
    }
    let open = format!("{}(", flat_primary(&c.func));
    Some(bracketed(indent, &format!("{head}{open}"), ")", &call_items(c), tail))
}

/// A call's arguments as `(key=, value)` items.
pub(super) fn call_items(c: &Call) -> Vec<(String, &Expr)> {
    c.args
        .iter()
        .map(|a| (String::new(), a))
        .chain(c.kwargs.iter().map(|(k, v)| (format!("{k}="), v)))
        .collect()
}

/// A method called on a parenthesised operation, `(a > 0).to(t)`, that does not fit: broken
/// inside those parentheses, the method after the closing one (as ruff does).
fn method_on_parenthesized(
    indent: usize,
    head: &str,
    value: &Expr,
    tail: &str,
) -> Option<Vec<String>> {
    let p = pad(indent);
    let Expr::Call(c) = value else { return None };
    let Expr::Attribute(receiver, _) = &c.func else { return None };
    if !matches!(**receiver, Expr::Binary(..)) || !fits(&format!("{p}{head}(")) {
        return None;
    }
    // `(` + receiver + `)` is how the receiver prints here; what follows is the rest.
    let rest = &flat(value)[flat(receiver).len() + 2..];
    let closing = format!("{p}){rest}{tail}");
    if !fits(&closing) {
        return None;
    }
    let mut lines = vec![format!("{p}{head}(")];
    lines.extend(chain_lines(indent + INDENT, "", receiver));
    lines.push(closing);
    Some(lines)
}

/// A method called on a call's result, `a.f(x).g(y)`, whose `target = a.f(x).g(` does not
/// fit: broken inside the inner call when `target = a.f(` fits (Black's right-hand split,
/// trailing calls omitted), the outer call's arguments then broken after `).g(` if needed.
fn method_on_call(indent: usize, head: &str, value: &Expr, tail: &str) -> Option<Vec<String>> {
    let p = pad(indent);
    let Expr::Call(outer) = value else { return None };
    let Expr::Attribute(receiver, method) = &outer.func else { return None };
    let Expr::Call(inner) = &**receiver else { return None };
    // Nothing to break inside `x.long()` (an empty line would be all it held).
    if inner.args.is_empty() && inner.kwargs.is_empty() {
        return None;
    }
    let open = format!("{head}{}(", flat_primary(&inner.func));
    if !fits(&format!("{p}{open}")) {
        return None;
    }
    let rest = format!(").{method}(");
    let closing = format!("{p}){}", &flat(value)[flat(receiver).len()..]);
    let mut lines = bracketed(indent, &open, "", &call_items(inner), "");
    lines.pop();
    if fits(&format!("{closing}{tail}")) {
        lines.push(format!("{closing}{tail}"));
    } else {
        lines.extend(bracketed(indent, &rest, ")", &call_items(outer), tail));
    }
    Some(lines)
}

/// `head` + items + `close`: items on one indented line if they fit, else one per line.
fn bracketed(
    indent: usize,
    head: &str,
    close: &str,
    items: &[(String, &Expr)],
    tail: &str,
) -> Vec<String> {
    let (p, inner) = (pad(indent), pad(indent + INDENT));
    let joined: Vec<String> = items.iter().map(|(k, v)| format!("{k}{}", flat(v))).collect();
    let one_line = format!("{inner}{}", joined.join(", "));
    let mut lines = vec![format!("{p}{head}")];
    if fits(&one_line) {
        lines.push(one_line);
    } else {
        for (k, v) in items {
            lines.extend(item(indent + INDENT, k, v));
        }
    }
    lines.push(format!("{p}{close}{tail}"));
    lines
}

/// One item of an exploded call or collection, a comma after its last line.
fn item(indent: usize, key: &str, v: &Expr) -> Vec<String> {
    let one = format!("{}{key}{},", pad(indent), flat(v));
    if fits(&one) {
        return vec![one];
    }
    let fluent = match key {
        "" => fluent::chain(indent, v).map(|mut lines| {
            if let Some(last) = lines.last_mut() {
                last.push(',');
            }
            lines
        }),
        _ => fluent::parenthesized(indent, key, v, ","),
    };
    if let Some(lines) = fluent {
        return lines;
    }
    match v {
        Expr::List(items) => collection(indent, key, ("[", "]"), items, ","),
        Expr::ListComp(c) => comprehension(indent, key, c, ","),
        Expr::Tuple(items) if !items.is_empty() => collection(indent, key, ("(", ")"), items, ","),
        Expr::Call(_) => method_on_call(indent, key, v, ",")
            .or_else(|| call(indent, key, v, ","))
            .unwrap_or(vec![one]),
        Expr::Slice(sl) => slice(indent, key, sl, ",")
            .or_else(|| slice_of_long_bound(indent, key, v, sl))
            .unwrap_or(vec![one]),
        // Inside brackets an operator chain needs no parentheses of its own.
        Expr::Binary(..) => {
            let mut lines = chain_lines(indent, key, v);
            if let Some(last) = lines.last_mut() {
                last.push(',');
            }
            lines
        }
        _ => {
            let mut lines = layout(indent, key, v, "");
            if let Some(last) = lines.last_mut() {
                last.push(',');
            }
            lines
        }
    }
}

/// A collection literal that does not fit: one item per line with a trailing comma (ruff
/// explodes collections rather than packing their items).
fn collection(
    indent: usize,
    head: &str,
    (open, close): (&str, &str),
    items: &[Expr],
    tail: &str,
) -> Vec<String> {
    let p = pad(indent);
    let mut lines = vec![format!("{p}{head}{open}")];
    for v in items {
        lines.extend(item(indent + INDENT, "", v));
    }
    lines.push(format!("{p}{close}{tail}"));
    lines
}

/// A comprehension too long for its line, as ruff breaks it: the element, then the `for`
/// clause, each on its own line inside the brackets.
fn comprehension(indent: usize, head: &str, c: &ListComp, tail: &str) -> Vec<String> {
    let (p, inner) = (pad(indent), pad(indent + INDENT));
    let mut lines = vec![format!("{p}{head}[")];
    // The element breaks as a value of its own where it is still too long.
    lines.extend(layout(indent + INDENT, "", &c.elt, ""));
    lines.push(format!("{inner}for {} in {}", flat(&c.target), flat(&c.iter)));
    lines.push(format!("{p}]{tail}"));
    lines
}

/// `a, b = x, y`: on one line when it fits; else the values one per line, and the targets
/// too when even `a, b = (` does not fit.
fn tuple_assignment(indent: usize, targets: &[Expr], values: &[Expr]) -> Vec<String> {
    let p = pad(indent);
    let names: Vec<String> = targets.iter().map(flat).collect();
    let vals: Vec<String> = values.iter().map(flat).collect();
    let one = format!("{p}{} = {}", names.join(", "), vals.join(", "));
    if fits(&one) {
        return vec![one];
    }
    let head = format!("{p}{} = (", names.join(", "));
    let mut lines = if fits(&head) {
        vec![head]
    } else {
        let mut l = vec![format!("{p}(")];
        l.extend(names.iter().map(|t| format!("{p}    {t},")));
        l.push(format!("{p}) = ("));
        l
    };
    for v in values {
        lines.extend(item(indent + INDENT, "", v));
    }
    lines.push(format!("{p})"));
    lines
}

/// The statements at `indent`, one blank line between a function or class and its neighbours
/// (two at the top level).
pub fn block(stmts: &[Stmt], indent: usize) -> Vec<String> {
    let blank = if indent == 0 { 2 } else { 1 };
    let mut lines = Vec::new();
    for (i, s) in stmts.iter().enumerate() {
        let is_def = |s: &Stmt| matches!(s, Stmt::FunctionDef(_) | Stmt::ClassDef(_));
        if i > 0 && (is_def(s) || is_def(&stmts[i - 1])) {
            lines.extend(std::iter::repeat_n(String::new(), blank));
        }
        lines.extend(statement(s, indent));
    }
    lines
}

/// The lines of one statement at `indent`.
pub fn statement(s: &Stmt, indent: usize) -> Vec<String> {
    let p = pad(indent);
    match s {
        Stmt::Assign(a) => match (&a.target, &a.value) {
            (Expr::Tuple(t), Expr::Tuple(v)) if t.len() > 1 && t.len() == v.len() => {
                tuple_assignment(indent, t, v)
            }
            (Expr::Tuple(t), v) if t.len() > 1 => {
                let lines = layout(indent, &format!("{} = ", target_text(&a.target)), v, "");
                if lines.iter().all(|l| fits(l)) {
                    return lines;
                }
                // Even the targets' line does not fit: ruff splits them instead.
                let mut split = vec![format!("{p}(")];
                split.extend(t.iter().map(|x| format!("{p}    {},", flat(x))));
                split.extend(layout(indent, ") = ", v, ""));
                split
            }
            (t, v) => layout(indent, &format!("{} = ", target_text(t)), v, ""),
        },
        Stmt::Expr(e) => layout(indent, "", e, ""),
        Stmt::Return(None) => vec![format!("{p}return")],
        Stmt::Return(Some(Expr::Tuple(items))) if items.len() > 1 => {
            let one =
                format!("{p}return {}", items.iter().map(flat).collect::<Vec<_>>().join(", "));
            if fits(&one) {
                vec![one]
            } else {
                collection(indent, "return ", ("(", ")"), items, "")
            }
        }
        Stmt::Return(Some(e)) => layout(indent, "return ", e, ""),
        Stmt::Raise(e) => layout(indent, "raise ", e, ""),
        Stmt::If { test, body, orelse } => {
            let mut lines = layout(indent, "if ", test, ":");
            lines.extend(suite(body, indent));
            if !orelse.is_empty() {
                lines.push(format!("{p}else:"));
                lines.extend(suite(orelse, indent));
            }
            lines
        }
        Stmt::While { test, body } => {
            let mut lines = layout(indent, "while ", test, ":");
            lines.extend(suite(body, indent));
            lines
        }
        Stmt::For { target, iter, body } => {
            let mut lines = layout(indent, &format!("for {} in ", target_text(target)), iter, ":");
            lines.extend(suite(body, indent));
            lines
        }
        Stmt::FunctionDef(f) => function(f, indent),
        Stmt::ClassDef(c) => class(c, indent),
        Stmt::Comment(text) => vec![format!("{p}# {}", text.replace(['\n', '\r'], " "))],
        Stmt::Pass => vec![format!("{p}pass")],
    }
}

fn suite(body: &[Stmt], indent: usize) -> Vec<String> {
    if body.is_empty() {
        return vec![format!("{}pass", pad(indent + INDENT))];
    }
    block(body, indent + INDENT)
}

fn param_text(p: &Param) -> String {
    match (&p.annotation, &p.default) {
        (None, Some(d)) => format!("{}={}", p.name, flat(d)),
        (None, None) => p.name.clone(),
        // PEP 8: spaces around `=` once there is a hint.
        (Some(a), Some(d)) => format!("{}: {} = {}", p.name, flat(a), flat(d)),
        (Some(a), None) => format!("{}: {}", p.name, flat(a)),
    }
}

fn function(f: &FunctionDef, indent: usize) -> Vec<String> {
    let mut params: Vec<String> = f.params.iter().map(param_text).collect();
    if !f.keyword_only.is_empty() {
        params.push("*".into());
        params.extend(f.keyword_only.iter().map(param_text));
    }
    let (p, inner) = (pad(indent), pad(indent + INDENT));
    let returns = f.returns.as_ref().map_or(String::new(), |r| format!(" -> {}", flat(r)));
    let one = format!("{p}def {}({}){returns}:", f.name, params.join(", "));
    let on_their_line = format!("{inner}{}", params.join(", "));
    let mut lines = if fits(&one) {
        vec![one]
    } else if fits(&on_their_line) {
        vec![format!("{p}def {}(", f.name), on_their_line, format!("{p}){returns}:")]
    } else {
        let mut l = vec![format!("{p}def {}(", f.name)];
        l.extend(params.iter().map(|t| format!("{inner}{t},")));
        l.push(format!("{p}){returns}:"));
        l
    };
    let mut body = docstring(&f.docstring, indent + INDENT);
    body.extend(if f.body.is_empty() && !f.docstring.is_empty() {
        Vec::new()
    } else {
        suite(&f.body, indent)
    });
    lines.extend(body);
    lines
}

fn class(c: &ClassDef, indent: usize) -> Vec<String> {
    let bases: Vec<String> = c.bases.iter().map(flat).collect();
    let head = if bases.is_empty() {
        format!("{}class {}:", pad(indent), c.name)
    } else {
        format!("{}class {}({}):", pad(indent), c.name, bases.join(", "))
    };
    let mut lines = vec![head];
    lines.extend(docstring(&c.docstring, indent + INDENT));
    if !c.body.is_empty() || c.docstring.is_empty() {
        lines.extend(suite(&c.body, indent));
    }
    lines
}

/// `"""first line` ... `"""`, each line escaped for a docstring.
fn docstring(lines: &[String], indent: usize) -> Vec<String> {
    let p = pad(indent);
    match lines {
        [] => Vec::new(),
        [one] => vec![format!("{p}\"\"\"{}\"\"\"", escape(one))],
        [first, rest @ ..] => {
            let mut out = vec![format!("{p}\"\"\"{}", escape(first))];
            out.extend(
                rest.iter().map(|l| {
                    if l.is_empty() { String::new() } else { format!("{p}{}", escape(l)) }
                }),
            );
            out.push(format!("{p}\"\"\""));
            out
        }
    }
}

/// Statements as text at `indent`, one line each, newline-terminated.
pub fn print(stmts: &[Stmt], indent: usize) -> String {
    let mut s = block(stmts, indent).join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Expr {
        Expr::name(s)
    }

    #[test]
    fn long_calls_break_like_ruff() {
        let args = (0..8).map(|i| n(&format!("argument_{i}"))).collect();
        let s = Stmt::assign(n("x"), Expr::call("torch.cat", args));
        let lines = statement(&s, 8);
        assert_eq!(lines[0], "        x = torch.cat(");
        assert_eq!(lines.last().unwrap(), "        )");
    }

    /// A comprehension's element too long for its line breaks as a call of its own
    /// (`nn.ModuleList([Block(...) for _ in range(2)])`, checked against `ruff format`).
    #[test]
    fn a_long_comprehension_element_breaks_like_ruff() {
        let kwargs =
            vec![("activation", Expr::path("F.hardswish")), ("residual", Expr::boolean(true))];
        let elt =
            Expr::call_kw("ExpandedConv", [40, 240, 5, 64, 40, 2].map(Expr::int).to_vec(), kwargs);
        let comp = Expr::ListComp(Box::new(ListComp {
            elt,
            target: n("_"),
            iter: Expr::call("range", vec![Expr::int(2)]),
        }));
        let value = Expr::call("nn.ModuleList", vec![comp]);
        let text = print(&[Stmt::assign(Expr::self_attr("expanded_convs"), value)], 8);
        assert_eq!(
            text,
            "        self.expanded_convs = nn.ModuleList(\n            [\n                \
             ExpandedConv(\n                    40, 240, 5, 64, 40, 2, activation=F.hardswish, \
             residual=True\n                )\n                for _ in range(2)\n            \
             ],\n        )\n"
        );
    }

    /// A long subscript breaks inside its brackets, a conditional slice bound inside its
    /// parentheses (checked against `ruff format` by the op-level suite's generated files).
    #[test]
    fn long_subscripts_break_like_ruff() {
        let bound = |k: i64| {
            let (b, s) =
                (n("begin_sizes").index(Expr::int(k)), n("size_sizes").index(Expr::int(k)));
            let end = b.clone().binop(BinOp::Add, s.clone());
            Expr::slice(
                Some(b),
                Some(end.if_else(s.binop(BinOp::GtE, Expr::int(0)), Expr::none())),
                None,
            )
        };
        let index = Expr::Tuple(vec![bound(0), bound(1)]);
        let text = print(&[Stmt::assign(n("x"), n("values").index(index))], 8);
        assert_eq!(
            text,
            "        x = values[\n            begin_sizes[0] : (\n                begin_sizes[0] + \
             size_sizes[0] if size_sizes[0] >= 0 else None\n            ),\n            \
             begin_sizes[1] : (\n                begin_sizes[1] + size_sizes[1] if size_sizes[1] \
             >= 0 else None\n            ),\n        ]\n"
        );
    }

    /// `f(long)[i].m()` as a call's argument: `f(`'s arguments break, not the index, when
    /// `f(long)[` does not fit (ruff; its output keeps the trailing comma written here).
    #[test]
    fn a_long_call_before_an_index_breaks_its_arguments() {
        let offset =
            Expr::call("torch.arange", vec![n("values").attr("shape").index(Expr::int(0))]);
        let offset = offset
            .method("unsqueeze", vec![Expr::int(1)])
            .binop(BinOp::Mul, n("bins_in_every_single_row"));
        let keep = n("values").binop(BinOp::GtE, Expr::int(0));
        let picked = n("values").method("add", vec![offset]).index(keep).method("long", vec![]);
        let value = Expr::call("torch.bincount", vec![picked]);
        let text = print(&[Stmt::assign(n("counts_of_each_row"), value)], 8);
        assert_eq!(
            text,
            "        counts_of_each_row = torch.bincount(\n            values.add(\n                \
             torch.arange(values.shape[0]).unsqueeze(1) * bins_in_every_single_row\n            \
             )[values >= 0].long(),\n        )\n"
        );
    }

    /// When even `a, b, c, d = (` does not fit, ruff splits the targets.
    #[test]
    fn long_tuple_targets_split_before_the_value() {
        let targets = (0..4).map(|i| n(&format!("basic_lstm_cell_{i}_part"))).collect();
        let value = Expr::call("torch.split", vec![n("gates"), Expr::int(4)]);
        let text = print(&[Stmt::assign(Expr::Tuple(targets), value)], 12);
        assert_eq!(
            text,
            "            (\n                basic_lstm_cell_0_part,\n                \
             basic_lstm_cell_1_part,\n                basic_lstm_cell_2_part,\n                \
             basic_lstm_cell_3_part,\n            ) = torch.split(gates, 4)\n"
        );
    }

    #[test]
    fn long_lists_explode_one_item_per_line() {
        let items: Vec<Expr> = (0..8).map(|i| n(&format!("per_step_{i}"))).collect();
        let call =
            Expr::call_kw("torch.stack", vec![Expr::List(items)], vec![("dim", Expr::int(0))]);
        let lines = statement(&Stmt::assign(n("x"), call), 8);
        assert_eq!(
            lines[..3],
            ["        x = torch.stack(", "            [", "                per_step_0,"]
        );
        assert_eq!(lines[lines.len() - 3..], ["            ],", "            dim=0,", "        )"]);
    }

    /// An operand parenthesised for precedence that does not fit breaks inside its own
    /// parentheses, as ruff does (a per-channel fake-quant's `(x.clamp(lo, hi) - lo) * inv`).
    #[test]
    fn a_long_parenthesised_operand_breaks_inside_its_parentheses() {
        let long = |s: &str| n(&s.repeat(40));
        let diff =
            n("x").method("clamp", vec![long("lo"), long("hi")]).binop(BinOp::Sub, long("lo"));
        let e = diff.binop(BinOp::Mul, long("inv"));
        let lines = statement(&Stmt::assign(n("y"), e), 8);
        let text: Vec<&str> = lines.iter().map(|l| l.trim_start()).collect();
        assert_eq!(
            text[..4],
            [
                "y = (",
                "(",
                "x.clamp(",
                "lolololololololololololololololololololololololololololololololololololololololo,"
            ]
        );
        assert!(lines.iter().all(|l| l.len() <= 88 || !l.contains('(')), "{lines:#?}");
        assert!(text.contains(&")") && text.iter().any(|l| l.starts_with("* inv")), "{lines:#?}");
    }

    /// One operator whose last operand is a call: ruff leaves the operation bare and breaks
    /// the calls' own brackets, left to right (checked against `ruff format`).
    #[test]
    fn an_operation_ending_in_a_call_breaks_inside_the_calls() {
        let pool = |x: Expr| {
            let padded = Expr::call("pad_same", vec![x, n("(3, 3)"), n("(2, 2)")]);
            let args = vec![padded, Expr::int(3), Expr::int(2)];
            Expr::call_kw("F.avg_pool2d", args, vec![("divisor_override", Expr::int(1))])
        };
        let ones = Expr::call("torch.ones_like", vec![n("x_nchw[:1, :1]")]);
        let value = pool(n("x_nchw")).binop(BinOp::Div, pool(ones));
        assert_eq!(
            print(&[Stmt::assign(n("h"), value)], 8),
            "        h = F.avg_pool2d(\n            pad_same(x_nchw, (3, 3), (2, 2)), 3, 2, \
             divisor_override=1\n        ) / F.avg_pool2d(\n            \
             pad_same(torch.ones_like(x_nchw[:1, :1]), (3, 3), (2, 2)),\n            3,\n            \
             2,\n            divisor_override=1,\n        )\n"
        );
        let args = vec![n("argument_one"), n("argu")];
        let value =
            n("yyyyyyyyyy").binop(BinOp::Mul, Expr::call("self.some_long_function_name", args));
        assert_eq!(
            print(&[Stmt::assign(n("xxxxxxxxxxxxxxxxxxxxxx"), value)], 8),
            "        xxxxxxxxxxxxxxxxxxxxxx = yyyyyyyyyy * self.some_long_function_name(\n            \
             argument_one, argu\n        )\n"
        );
        // An empty call cannot break: the value is parenthesised.
        let value = Expr::call("ResidualNeckFusionStageResidualLayer", vec![]);
        let target = Expr::self_attr("neck_fusion_stage_1_residual_layer2");
        assert_eq!(
            print(&[Stmt::assign(target, value)], 8),
            "        self.neck_fusion_stage_1_residual_layer2 = (\n            \
             ResidualNeckFusionStageResidualLayer()\n        )\n"
        );
    }

    #[test]
    fn long_operator_chains_break_per_operand() {
        let long = |s: &str| n(&s.repeat(30));
        let e = long("a").binop(BinOp::Add, long("b")).binop(BinOp::Sub, long("c"));
        let lines = statement(&Stmt::assign(n("x"), e), 8);
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[2].trim_start().starts_with("+ b"));
        assert!(lines[3].trim_start().starts_with("- c"));
    }

    /// A method on an argument-less call (`ids.long().unbind(-1)`) that does not fit breaks
    /// elsewhere: `()` holds nothing to put on a line of its own.
    #[test]
    fn an_empty_call_is_never_broken_open() {
        let ids = n("then_24_tf_swin_model_swin_encoder_layers_0_blocks_0_25");
        let unbound = ids.attr("long").called(vec![], vec![]).attr("unbind");
        let unbound = unbound.called(vec![Expr::int(-1)], vec![]);
        let index = Expr::call("tuple", vec![unbound]);
        let value = n("x").attr("index_put").called(vec![index, n("ones")], vec![]);
        let text = print(&[Stmt::assign(n("x"), value)], 12);
        assert!(text.lines().all(|l| !l.trim().is_empty()), "{text}");
        // Checked against `ruff format`.
        assert_eq!(
            text,
            "            x = x.index_put(\n                tuple(\n                    \
             then_24_tf_swin_model_swin_encoder_layers_0_blocks_0_25.long().unbind(\n                        \
             -1\n                    ),\n                ),\n                ones,\n            )\n"
        );
    }

    /// `a / b.f().g()` too long: the chain in parentheses after the operator, not the whole
    /// operation (ruff keeps the first line when it fits).
    #[test]
    fn a_chain_after_one_operator_hugs_it() {
        let chain = |x: &str| {
            n("pad_same")
                .called(vec![n(x), n("kernel_size"), n("strides")], vec![])
                .attr("unfold")
                .called(vec![Expr::int(2), Expr::int(3), Expr::int(2)], vec![])
                .attr("sum")
                .called(vec![Expr::int(-1)], vec![])
        };
        let value = chain("a").binop(BinOp::Div, chain("torch_ones_like_strided_slice_ncw"));
        let text = print(&[Stmt::assign(n("avg_pool1d"), value)], 8);
        let want = [
            "        avg_pool1d = pad_same(a, kernel_size, strides).unfold(2, 3, 2).sum(-1) / (",
            "            pad_same(torch_ones_like_strided_slice_ncw, kernel_size, strides)",
            "            .unfold(2, 3, 2)",
            "            .sum(-1)",
            "        )",
        ];
        assert_eq!(text, want.join("\n") + "\n");
    }

    /// A causal mask given two new axes, `torch.ones(..).tril()[None, None]`, too long for its
    /// line: ruff breaks inside `ones(`, the method and the index on the closing line.
    #[test]
    fn an_index_after_a_method_on_a_long_call_closes_its_line() {
        let size = || n("x").attr("shape").index(Expr::int(1));
        let kwargs = vec![("dtype", n("torch").attr("bool")), ("device", n("x").attr("device"))];
        let ones = n("torch").attr("ones").called(vec![size(), size()], kwargs);
        let mask = ones.attr("tril").called(vec![], vec![]);
        let both = Expr::Tuple(vec![Expr::none(), Expr::none()]);
        let text = print(&[Stmt::assign(n("mask"), mask.index(both))], 8);
        let want = [
            "        mask = torch.ones(",
            "            x.shape[1], x.shape[1], dtype=torch.bool, device=x.device",
            "        ).tril()[None, None]",
        ];
        assert_eq!(text, want.join("\n") + "\n");
    }

    /// An index after a call too long for its line, in a chain or not: the call's arguments
    /// break, then the entries after `)[`, a slice's long bound before its operator.
    #[test]
    fn a_long_call_and_index_break_like_ruff() {
        let size = |k: i64| n("depthwise_conv2d_nhwc").attr("shape").index(Expr::int(k));
        let twice = |k: i64| size(k).binop(BinOp::Mul, Expr::int(2));
        let pads = |k: i64| n("depthwise_conv2d_sizes_2").index(Expr::int(k));
        let bound = |k: i64| {
            let end = twice(k + 1).binop(BinOp::Sub, pads(k).index(Expr::int(1)));
            Expr::slice(Some(pads(k).index(Expr::int(0))), Some(end), None)
        };
        let index = Expr::Tuple(vec![Expr::slice(None, None, None), bound(0), bound(1)]);
        let reshape = |x: Expr| {
            x.attr("reshape").called(vec![Expr::int(-1), twice(1), twice(2), Expr::int(3)], vec![])
        };
        let entries = [
            "            :,",
            "            depthwise_conv2d_sizes_2[0][0] : depthwise_conv2d_nhwc.shape[1] * 2",
            "            - depthwise_conv2d_sizes_2[0][1],",
            "            depthwise_conv2d_sizes_2[1][0] : depthwise_conv2d_nhwc.shape[2] * 2",
            "            - depthwise_conv2d_sizes_2[1][1],",
        ];
        let text = print(&[Stmt::assign(n("y"), reshape(n("x")).index(index.clone()))], 8);
        let mut want = vec![
            "        y = x.reshape(",
            "            -1,",
            "            depthwise_conv2d_nhwc.shape[1] * 2,",
            "            depthwise_conv2d_nhwc.shape[2] * 2,",
            "            3,",
            "        )[",
        ];
        want.extend(entries);
        want.push("        ]");
        assert_eq!(text, want.join("\n") + "\n");
        // In a chain broken per link.
        let permuted = n("x").attr("permute").called((0..6).map(Expr::int).collect(), vec![]);
        let chain = reshape(reshape(permuted).attr("permute").called(vec![], vec![]));
        let text = print(&[Stmt::assign(n("y"), chain.index(index))], 8);
        let want = [
            "        y = (",
            "            x.permute(0, 1, 2, 3, 4, 5)",
            "            .reshape(",
            "                -1,",
            "                depthwise_conv2d_nhwc.shape[1] * 2,",
            "                depthwise_conv2d_nhwc.shape[2] * 2,",
            "                3,",
            "            )",
            "            .permute()",
            "            .reshape(",
            "                -1,",
            "                depthwise_conv2d_nhwc.shape[1] * 2,",
            "                depthwise_conv2d_nhwc.shape[2] * 2,",
            "                3,",
            "            )[",
            "                :,",
            "                depthwise_conv2d_sizes_2[0][0] : depthwise_conv2d_nhwc.shape[1] * 2",
            "                - depthwise_conv2d_sizes_2[0][1],",
            "                depthwise_conv2d_sizes_2[1][0] : depthwise_conv2d_nhwc.shape[2] * 2",
            "                - depthwise_conv2d_sizes_2[1][1],",
            "            ]",
            "        )",
        ];
        assert_eq!(text, want.join("\n") + "\n");
    }

    /// Two or more calls after dots break one link per line, as ruff's fluent style does
    /// (checked against `ruff format`).
    #[test]
    fn long_call_chains_break_per_link() {
        let chain = n("space_to_batch")
            .attr("reshape")
            .called((0..6).map(Expr::int).collect(), vec![])
            .attr("permute")
            .called((0..6).map(Expr::int).collect(), vec![])
            .attr("reshape")
            .called(vec![Expr::int(-1), Expr::int(10), Expr::int(14), Expr::int(3)], vec![]);
        let text = print(&[Stmt::assign(n("batch_to_space"), chain)], 8);
        assert_eq!(
            text,
            "        batch_to_space = (\n            space_to_batch.reshape(0, 1, 2, 3, 4, 5)\n            \
             .permute(0, 1, 2, 3, 4, 5)\n            .reshape(-1, 10, 14, 3)\n        )\n"
        );
    }

    /// A chain that fits inside the parentheses stays on one line there; one starting with an
    /// operation keeps its parentheses when broken (both checked against `ruff format`).
    #[test]
    fn chains_fit_in_parentheses_before_breaking_per_link() {
        let hot = n("ids").binop(BinOp::Eq, Expr::call("torch.arange", vec![Expr::int(7)]));
        let chain = |len: usize| {
            hot.clone()
                .attr("to")
                .called(vec![n(&"f".repeat(len))], vec![])
                .attr("movedim")
                .called(vec![Expr::int(-1), Expr::int(0)], vec![])
        };
        let text = print(&[Stmt::assign(n(&"o".repeat(30)), chain(20))], 8);
        assert_eq!(
            text,
            format!(
                "        {} = (\n            (ids == torch.arange(7)).to({}).movedim(-1, 0)\n        )\n",
                "o".repeat(30),
                "f".repeat(20)
            )
        );
        let text = print(&[Stmt::assign(n("o"), chain(60))], 8);
        assert_eq!(
            text,
            format!(
                "        o = (\n            (ids == torch.arange(7))\n            .to({})\n            \
                 .movedim(-1, 0)\n        )\n",
                "f".repeat(60)
            )
        );
    }

    /// A long target: the value is parenthesised when all of it then fits, else broken inside
    /// its own brackets even though the first line overflows (ruff's choices).
    #[test]
    fn long_targets_parenthesise_only_what_then_fits() {
        let target = n(&"t".repeat(70));
        let short = n("value").attr("reshape").called(vec![Expr::int(-1), Expr::int(16)], vec![]);
        let text = print(&[Stmt::assign(target.clone(), short)], 8);
        assert_eq!(
            text,
            format!(
                "        {} = (\n            value.reshape(-1, 16)\n        )\n",
                "t".repeat(70)
            )
        );
        let long_args = (0..3).map(|i| n(&format!("{}_{i}", "a".repeat(70)))).collect();
        let text = print(&[Stmt::assign(target, Expr::call("torch.einsum", long_args))], 8);
        assert!(
            text.starts_with(&format!("        {} = torch.einsum(\n", "t".repeat(70))),
            "{text}"
        );
    }

    #[test]
    fn compound_statements_and_definitions() {
        let body = vec![
            Stmt::If {
                test: n("i").binop(BinOp::Lt, Expr::int(3)).logical_not(),
                body: vec![Stmt::return_values(vec![n("i"), n("x")])],
                orelse: vec![],
            },
            Stmt::For {
                target: n("layer"),
                iter: Expr::self_attr("layers"),
                body: vec![Stmt::assign(n("x"), n("layer").called(vec![n("x")], vec![]))],
            },
            Stmt::While { test: Expr::boolean(true), body: vec![Stmt::Pass] },
        ];
        let mut f = FunctionDef::method("run", &["i".into(), "x".into()], body);
        f.docstring = vec!["Runs \"it\".".into()];
        let c = ClassDef {
            name: "Block".into(),
            bases: vec![Expr::path("nn.Module")],
            docstring: vec![],
            body: vec![Stmt::FunctionDef(f.clone()), Stmt::FunctionDef(f)],
        };
        let text = print(&[Stmt::ClassDef(c)], 0);
        let want = r#"class Block(nn.Module):
    def run(self, i, x):
        """Runs \"it\"."""
        if not (i < 3):
            return i, x
        for layer in self.layers:
            x = layer(x)
        while True:
            pass

    def run(self, i, x):
        """Runs \"it\"."""
        if not (i < 3):
            return i, x
        for layer in self.layers:
            x = layer(x)
        while True:
            pass
"#;
        assert_eq!(text, want);
    }

    #[test]
    fn long_signatures_break_like_calls() {
        let params: Vec<String> = (0..9).map(|i| format!("parameter_{i}")).collect();
        let f = FunctionDef::method("forward", &params, vec![Stmt::Pass]);
        let lines = statement(&Stmt::FunctionDef(f), 4);
        assert_eq!(lines[0], "    def forward(");
        assert_eq!(lines[lines.len() - 2], "    ):");
    }
}
