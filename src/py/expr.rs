//! Python expressions. This is the only place that prints Python syntax for values; every
//! identifier that reaches it has been through `names`, every string through `str_lit`.

use std::fmt::{self, Display, Write};

#[derive(Clone, Debug, PartialEq)]
pub enum PyExpr {
    /// An identifier, attribute path or literal already in Python syntax.
    Atom(String),
    /// `func(args, kw=value)`.
    Call { func: Box<PyExpr>, args: Vec<PyExpr>, kwargs: Vec<(String, PyExpr)> },
    /// `left op right`.
    BinOp { left: Box<PyExpr>, op: &'static str, right: Box<PyExpr> },
    /// `-operand`.
    Neg(Box<PyExpr>),
    /// `(a, b)`; a one-element tuple prints as `(a,)`.
    Tuple(Vec<PyExpr>),
    /// `base[index]`, index already in Python syntax.
    Index { base: Box<PyExpr>, index: String },
}

impl PyExpr {
    pub fn name(s: impl Into<String>) -> PyExpr {
        PyExpr::Atom(s.into())
    }

    pub fn int(i: i64) -> PyExpr {
        PyExpr::Atom(i.to_string())
    }

    pub fn ints(v: &[i64]) -> PyExpr {
        PyExpr::Tuple(v.iter().map(|&i| PyExpr::int(i)).collect())
    }

    /// A Python float literal that reads back to the same f32 (Rust prints the shortest
    /// round-tripping form, e.g. `0.001`).
    pub fn f32(x: f32) -> PyExpr {
        PyExpr::Atom(float_literal(
            format!("{x:?}"),
            x.is_finite(),
            x.is_sign_negative(),
            x.is_nan(),
        ))
    }

    pub fn f64(x: f64) -> PyExpr {
        PyExpr::Atom(float_literal(
            format!("{x:?}"),
            x.is_finite(),
            x.is_sign_negative(),
            x.is_nan(),
        ))
    }

    pub fn boolean(b: bool) -> PyExpr {
        PyExpr::Atom(if b { "True" } else { "False" }.into())
    }

    /// A double-quoted Python string literal; every non-printable or non-ASCII character is
    /// escaped, so no input can end the literal early.
    pub fn str_lit(s: &str) -> PyExpr {
        PyExpr::Atom(str_literal(s))
    }

    pub fn call(func: &str, args: Vec<PyExpr>) -> PyExpr {
        PyExpr::Call { func: Box::new(PyExpr::name(func)), args, kwargs: Vec::new() }
    }

    pub fn call_kw(func: &str, args: Vec<PyExpr>, kwargs: Vec<(&str, PyExpr)>) -> PyExpr {
        PyExpr::Call {
            func: Box::new(PyExpr::name(func)),
            args,
            kwargs: kwargs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// `self.method(args)` on an expression.
    pub fn method(self, name: &str, args: Vec<PyExpr>) -> PyExpr {
        PyExpr::Call { func: Box::new(self.attr(name)), args, kwargs: Vec::new() }
    }

    pub fn method_kw(self, name: &str, args: Vec<PyExpr>, kwargs: Vec<(&str, PyExpr)>) -> PyExpr {
        PyExpr::Call {
            func: Box::new(self.attr(name)),
            args,
            kwargs: kwargs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// `expr.attr`; the receiver is parenthesised when needed.
    pub fn attr(self, name: &str) -> PyExpr {
        PyExpr::Atom(format!("{}.{name}", self.primary()))
    }

    pub fn binop(self, op: &'static str, right: PyExpr) -> PyExpr {
        PyExpr::BinOp { left: Box::new(self), op, right: Box::new(right) }
    }

    pub fn negated(self) -> PyExpr {
        PyExpr::Neg(Box::new(self))
    }

    pub fn index(self, index: impl Into<String>) -> PyExpr {
        PyExpr::Index { base: Box::new(self), index: index.into() }
    }

    /// Rendered so that it can be followed by `.x`, `(..)` or `[..]`.
    fn primary(&self) -> String {
        match self {
            PyExpr::BinOp { .. } | PyExpr::Neg(_) => format!("({self})"),
            PyExpr::Atom(a) if a.starts_with('-') => format!("({a})"),
            _ => self.to_string(),
        }
    }

    /// Rendered as an operand of a binary operator.
    fn operand(&self) -> String {
        match self {
            PyExpr::BinOp { .. } => format!("({self})"),
            _ => self.to_string(),
        }
    }
}

impl Display for PyExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyExpr::Atom(a) => f.write_str(a),
            PyExpr::Call { func, args, kwargs } => {
                write!(f, "{}(", func.primary())?;
                let mut first = true;
                for a in args {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "{a}")?;
                }
                for (k, v) in kwargs {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "{k}={v}")?;
                }
                f.write_char(')')
            }
            PyExpr::BinOp { left, op, right } => {
                write!(f, "{} {op} {}", left.operand(), right.operand())
            }
            PyExpr::Neg(e) => write!(f, "-{}", e.operand()),
            PyExpr::Tuple(items) => {
                f.write_char('(')?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{it}")?;
                }
                if items.len() == 1 {
                    f.write_char(',')?;
                }
                f.write_char(')')
            }
            PyExpr::Index { base, index } => write!(f, "{}[{index}]", base.primary()),
        }
    }
}

fn float_literal(debug: String, finite: bool, negative: bool, nan: bool) -> String {
    if nan {
        return "float(\"nan\")".into();
    }
    if !finite {
        return if negative { "-float(\"inf\")".into() } else { "float(\"inf\")".into() };
    }
    // Rust's `{:?}` gives `1.0`, `0.001`, `1e-5`: all valid Python float literals.
    debug
}

/// Escapes `s` as a double-quoted Python string literal.
pub fn str_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
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
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cannot_escape_their_literal() {
        assert_eq!(str_literal("a\"b\\c\n\u{2028}"), "\"a\\\"b\\\\c\\x0a\\u2028\"");
    }

    #[test]
    fn floats_round_trip_as_f32() {
        assert_eq!(PyExpr::f32(0.001).to_string(), "0.001");
        assert_eq!(PyExpr::f32(1.0).to_string(), "1.0");
        assert_eq!(PyExpr::f32(1e-5).to_string(), "1e-5");
        assert_eq!(PyExpr::f32(f32::NEG_INFINITY).to_string(), "-float(\"inf\")");
    }

    #[test]
    fn precedence_is_explicit() {
        let e = PyExpr::name("a").binop("+", PyExpr::name("b")).binop("*", PyExpr::name("c"));
        assert_eq!(e.to_string(), "(a + b) * c");
        let m = PyExpr::name("a").binop("+", PyExpr::name("b")).method("sum", vec![]);
        assert_eq!(m.to_string(), "(a + b).sum()");
        assert_eq!(PyExpr::ints(&[3]).to_string(), "(3,)");
    }
}
