//! Expressions on one line: Python's precedence, Black's slice spacing, literals that read
//! back exactly, strings escaped so that no input can end them early.

use std::fmt::Write;

use super::super::ast::{BinOp, Expr, Lit, Slice, UnaryOp};

/// The expression on one line.
pub fn flat(e: &Expr) -> String {
    let mut s = String::new();
    write_expr(&mut s, e);
    s
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Name(n) => out.push_str(n),
        Expr::Attribute(v, a) => {
            write_primary(out, v, true);
            out.push('.');
            out.push_str(a);
        }
        Expr::Call(c) => {
            write_primary(out, &c.func, false);
            out.push('(');
            write_items(out, c.args.iter().map(|a| (None, a)).chain(kw_items(&c.kwargs)));
            out.push(')');
        }
        Expr::Subscript(v, i) => {
            write_primary(out, v, false);
            out.push('[');
            match i.as_ref() {
                Expr::Tuple(items) if !items.is_empty() => {
                    write_items(out, items.iter().map(|a| (None, a)));
                    if items.len() == 1 {
                        out.push(',');
                    }
                }
                other => write_expr(out, other),
            }
            out.push(']');
        }
        Expr::Slice(s) => write_slice(out, s),
        Expr::Binary(l, op, r) => {
            write_operand(out, l, *op, false);
            let _ = write!(out, " {} ", op.symbol());
            write_operand(out, r, *op, true);
        }
        Expr::Unary(op, v) => {
            out.push_str(match op {
                UnaryOp::Neg => "-",
                UnaryOp::Not => "not ",
            });
            let paren = matches!(v.as_ref(), Expr::Binary(..) | Expr::IfElse(_))
                || (*op == UnaryOp::Neg && matches!(v.as_ref(), Expr::Unary(UnaryOp::Not, _)));
            write_maybe_parenthesized(out, v, paren);
        }
        Expr::Tuple(items) => {
            out.push('(');
            write_items(out, items.iter().map(|a| (None, a)));
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Expr::List(items) => {
            out.push('[');
            write_items(out, items.iter().map(|a| (None, a)));
            out.push(']');
        }
        Expr::ListComp(c) => {
            out.push('[');
            write_expr(out, &c.elt);
            out.push_str(" for ");
            write_expr(out, &c.target);
            out.push_str(" in ");
            write_expr(out, &c.iter);
            out.push(']');
        }
        Expr::Starred(v) => {
            out.push('*');
            write_primary(out, v, false);
        }
        Expr::Lit(l) => write_literal(out, l),
        Expr::IfElse(c) => {
            // The loosest expression but lambda: its parts need parentheses only when they
            // are conditionals themselves.
            let nested = |e: &Expr| matches!(e, Expr::IfElse(_));
            write_maybe_parenthesized(out, &c.body, nested(&c.body));
            out.push_str(" if ");
            write_maybe_parenthesized(out, &c.test, nested(&c.test));
            out.push_str(" else ");
            write_expr(out, &c.orelse);
        }
    }
}

fn kw_items(kwargs: &[(String, Expr)]) -> impl Iterator<Item = (Option<&str>, &Expr)> {
    kwargs.iter().map(|(k, v)| (Some(k.as_str()), v))
}

fn write_items<'e>(out: &mut String, items: impl Iterator<Item = (Option<&'e str>, &'e Expr)>) {
    for (i, (key, value)) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if let Some(k) = key {
            out.push_str(k);
            out.push('=');
        }
        write_expr(out, value);
    }
}

fn write_maybe_parenthesized(out: &mut String, e: &Expr, paren: bool) {
    if paren {
        out.push('(');
        write_expr(out, e);
        out.push(')');
    } else {
        write_expr(out, e);
    }
}

/// Whether `e` needs parentheses to be followed by `.attr`, `(...)` or `[...]`.
fn needs_parens_as_primary(e: &Expr, before_dot: bool) -> bool {
    match e {
        Expr::Binary(..) | Expr::Unary(..) | Expr::Starred(_) | Expr::IfElse(_) => true,
        Expr::Lit(l) => starts_with_minus(l) || (before_dot && matches!(l, Lit::Int(_))),
        _ => false,
    }
}

pub(super) fn write_primary(out: &mut String, e: &Expr, before_dot: bool) {
    write_maybe_parenthesized(out, e, needs_parens_as_primary(e, before_dot));
}

/// An operand of `parent`: parenthesised unless Python's precedence already groups it so.
/// Comparisons never go unparenthesised inside other comparisons (Python would chain them).
pub(super) fn write_operand(out: &mut String, e: &Expr, parent: BinOp, right: bool) {
    let paren = match e {
        Expr::Binary(_, op, _) => {
            let (c, p) = (op.precedence(), parent.precedence());
            // Left-nested chains of the same strength print bare: `a + b + c`.
            !(c > p || (c == p && !right && c > 0))
        }
        Expr::Unary(UnaryOp::Not, _) | Expr::IfElse(_) => true,
        _ => false,
    };
    write_maybe_parenthesized(out, e, paren);
}

/// Black's slice spacing: `x[a:b]` with simple bounds, `x[a + 1 : b]` when any bound is more
/// than a name or a number.
fn write_slice(out: &mut String, s: &Slice) {
    let parts = [&s.lower, &s.upper, &s.step];
    let simple = parts.iter().all(|p| p.as_ref().is_none_or(is_simple_bound));
    let space = |out: &mut String, present: bool| {
        if !simple && present {
            out.push(' ');
        }
    };
    // A conditional bound reads better in parentheses (`x[b : (b + n if n >= 0 else None)]`).
    let bound = |out: &mut String, e: &Expr| {
        write_maybe_parenthesized(out, e, matches!(e, Expr::IfElse(_)))
    };
    if let Some(l) = &s.lower {
        bound(out, l);
    }
    space(out, s.lower.is_some());
    out.push(':');
    space(out, s.upper.is_some());
    if let Some(u) = &s.upper {
        bound(out, u);
    }
    if let Some(st) = &s.step {
        space(out, s.upper.is_some());
        out.push(':');
        space(out, true);
        bound(out, st);
    }
}

fn is_simple_bound(e: &Expr) -> bool {
    match e {
        Expr::Name(_) | Expr::Lit(_) => true,
        Expr::Unary(UnaryOp::Neg, v) => is_simple_bound(v),
        _ => false,
    }
}

fn starts_with_minus(l: &Lit) -> bool {
    match l {
        Lit::Int(i) => *i < 0,
        Lit::F32(x) => x.is_sign_negative() && x.is_finite(),
        Lit::F64(x) => x.is_sign_negative() && x.is_finite(),
        _ => false,
    }
}

fn write_literal(out: &mut String, l: &Lit) {
    match l {
        Lit::Int(i) => {
            let _ = write!(out, "{i}");
        }
        // Rust's `{:?}` gives the shortest text that reads back to the same value in that
        // precision (`0.001`, `1e-5`, `1.0`): all valid Python float literals.
        // Except that the shortest text of float32's largest values reads back (as Python's
        // double) past float32's range, which torch refuses to convert (`3.4028235e38`, TF's
        // `nan_to_num` bound): those print exactly.
        Lit::F32(x) => {
            let shortest = format!("{x:?}");
            let exact = shortest.parse::<f64>().is_ok_and(|d| d.abs() > f64::from(f32::MAX));
            let text = if exact { format!("{:?}", f64::from(*x)) } else { shortest };
            write_float(out, f64::from(*x), &text)
        }
        Lit::F64(x) => write_float(out, *x, &format!("{x:?}")),
        Lit::Str(s) => out.push_str(&string_literal(s)),
        Lit::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Lit::None => out.push_str("None"),
        Lit::Ellipsis => out.push_str("..."),
    }
}

fn write_float(out: &mut String, x: f64, shortest: &str) {
    if x.is_nan() {
        out.push_str("float(\"nan\")");
    } else if x.is_infinite() {
        out.push_str(if x < 0.0 { "float(\"-inf\")" } else { "float(\"inf\")" });
    } else {
        out.push_str(shortest);
    }
}

/// `s` as a double-quoted Python string literal: every non-printable or non-ASCII character
/// is escaped, so no input can end the literal early or hide in the text.
pub fn string_literal(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// The escaped body of a string literal, also safe inside a `"""` docstring.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out
}

/// An assignment target: a top-level tuple without parentheses (`y, (h, c)`).
pub fn target_text(t: &Expr) -> String {
    match t {
        Expr::Tuple(items) if items.len() > 1 => {
            items.iter().map(flat).collect::<Vec<_>>().join(", ")
        }
        other => flat(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Expr {
        Expr::name(s)
    }

    #[test]
    fn precedence_is_explicit() {
        let e = n("a").binop(BinOp::Add, n("b")).binop(BinOp::Mul, n("c"));
        assert_eq!(flat(&e), "(a + b) * c");
        assert_eq!(flat(&n("a").binop(BinOp::Mul, n("b")).binop(BinOp::Add, n("c"))), "a * b + c");
        let e = n("a").binop(BinOp::Sub, n("b").binop(BinOp::Sub, n("c")));
        assert_eq!(flat(&e), "a - (b - c)");
        let e =
            n("a").binop(BinOp::Lt, n("b")).binop(BinOp::BitAnd, n("c").binop(BinOp::Gt, n("d")));
        assert_eq!(flat(&e), "(a < b) & (c > d)");
        let e = n("a").binop(BinOp::Lt, n("b")).binop(BinOp::Eq, n("c"));
        assert_eq!(flat(&e), "(a < b) == c");
        let e = n("a").binop(BinOp::Add, n("b")).method("sum", vec![]);
        assert_eq!(flat(&e), "(a + b).sum()");
        assert_eq!(flat(&Expr::int(-1).method("abs", vec![])), "(-1).abs()");
        assert_eq!(flat(&Expr::ints(&[3])), "(3,)");
        assert_eq!(flat(&n("a").binop(BinOp::Lt, n("b")).logical_not()), "not (a < b)");
    }

    #[test]
    fn floats_round_trip_in_their_precision() {
        assert_eq!(flat(&Expr::f32(0.001)), "0.001");
        assert_eq!(flat(&Expr::f32(1.0)), "1.0");
        assert_eq!(flat(&Expr::f32(1e-5)), "1e-5");
        assert_eq!(flat(&Expr::f64(f64::from(0.001f32))), "0.0010000000474974513");
        assert_eq!(flat(&Expr::f32(f32::NEG_INFINITY)), "float(\"-inf\")");
        assert_eq!(flat(&Expr::f64(f64::NAN)), "float(\"nan\")");
        // Within float32's range when read as a double, so torch takes it.
        assert_eq!(flat(&Expr::f32(f32::MAX)), "3.4028234663852886e38");
        assert_eq!(flat(&Expr::f32(f32::MIN)), "-3.4028234663852886e38");
        assert_eq!(flat(&Expr::f32(3.4e38)), "3.4e38");
    }

    #[test]
    fn strings_cannot_escape_their_literal() {
        assert_eq!(string_literal("a\"b\\c\n\u{2028}"), "\"a\\\"b\\\\c\\x0a\\u2028\"");
    }

    #[test]
    fn slices_space_like_black() {
        let x = n("x");
        let s = |l: Option<Expr>, u: Option<Expr>, st: Option<Expr>| Expr::slice(l, u, st);
        let idx = Expr::Tuple(vec![
            Expr::full_slice(),
            s(Some(Expr::int(1)), None, None),
            s(None, None, Some(Expr::int(2))),
            Expr::int(0),
        ]);
        assert_eq!(flat(&x.clone().index(idx)), "x[:, 1:, ::2, 0]");
        let i = n("i").binop(BinOp::Add, Expr::int(1));
        assert_eq!(flat(&x.clone().index(s(Some(i), None, None))), "x[i + 1 :]");
        let up = n("y").attr("shape").index(Expr::int(1));
        assert_eq!(flat(&x.clone().index(s(None, Some(up), None))), "x[: y.shape[1]]");
        assert_eq!(flat(&x.index(s(Some(Expr::int(-2)), None, None))), "x[-2:]");
    }
}
