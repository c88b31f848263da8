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
    /// `[a, b]` (items may be starred atoms: `*rest`).
    List(Vec<PyExpr>),
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

    /// Rendered as an operand of unary minus.
    fn operand(&self) -> String {
        match self {
            PyExpr::BinOp { .. } => format!("({self})"),
            _ => self.to_string(),
        }
    }

    /// Rendered as the left (`right == false`) or right operand of `parent`: parenthesised
    /// unless Python's precedence already groups it so. Comparisons never go unparenthesised
    /// inside other operators (Python would chain them).
    pub fn operand_of(&self, parent: &str, right: bool) -> String {
        let PyExpr::BinOp { op, .. } = self else { return self.to_string() };
        let (c, p) = (precedence(op), precedence(parent));
        // (left-nested chains of the same strength print bare: `a + b + c`)
        let bare = c > p || (c == p && !right && c > 0);
        if bare { self.to_string() } else { format!("({self})") }
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
                write!(f, "{} {op} {}", left.operand_of(op, false), right.operand_of(op, true))
            }
            PyExpr::Neg(e) => write!(f, "-{}", e.operand()),
            PyExpr::List(items) => {
                f.write_char('[')?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{it}")?;
                }
                f.write_char(']')
            }
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

/// Python's binding strength of the binary operators we print.
pub fn precedence(op: &str) -> u8 {
    match op {
        "<" | "<=" | ">" | ">=" | "==" | "!=" => 0,
        "|" => 1,
        "&" => 2,
        "+" | "-" => 3,
        _ => 4, // * / @ % //
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
        let n = |s: &str| PyExpr::name(s);
        assert_eq!(n("a").binop("*", n("b")).binop("+", n("c")).to_string(), "a * b + c");
        assert_eq!(n("a").binop("-", n("b").binop("-", n("c"))).to_string(), "a - (b - c)");
        assert_eq!(
            n("a").binop("<", n("b")).binop("&", n("c").binop(">", n("d"))).to_string(),
            "(a < b) & (c > d)"
        );
        assert_eq!(n("a").binop("<", n("b")).binop("==", n("c")).to_string(), "(a < b) == c");
        let m = PyExpr::name("a").binop("+", PyExpr::name("b")).method("sum", vec![]);
        assert_eq!(m.to_string(), "(a + b).sum()");
        assert_eq!(PyExpr::ints(&[3]).to_string(), "(3,)");
    }
}

/// Identifiers in Python text, outside string literals and not after a `.`, each with its
/// span; `self.name` comes as one token. Used to find and rename variables and layers in
/// expressions the generator itself printed.
pub fn identifier_spans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let after_dot = start > 0 && b[start - 1] == b'.';
            if &text[start..i] == "self" && i < b.len() && b[i] == b'.' {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
            if !after_dot {
                out.push((start, i));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// `text` with identifiers (and `self.name` tokens) replaced through `map`.
pub fn rename_text(text: &str, map: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (s, e) in identifier_spans(text) {
        if let Some(r) = map.get(&text[s..e]) {
            out.push_str(&text[last..s]);
            out.push_str(r);
            last = e;
        }
    }
    out.push_str(&text[last..]);
    out
}

impl PyExpr {
    /// Every identifier token the expression mentions (see [`identifier_spans`]).
    pub fn identifiers(&self) -> Vec<String> {
        let text = self.to_string();
        identifier_spans(&text).into_iter().map(|(s, e)| text[s..e].to_string()).collect()
    }

    /// The expression with identifiers renamed through `map`.
    pub fn renamed(&self, map: &std::collections::BTreeMap<String, String>) -> PyExpr {
        match self {
            PyExpr::Atom(a) => PyExpr::Atom(rename_text(a, map)),
            PyExpr::Call { func, args, kwargs } => PyExpr::Call {
                func: Box::new(func.renamed(map)),
                args: args.iter().map(|a| a.renamed(map)).collect(),
                kwargs: kwargs.iter().map(|(k, v)| (k.clone(), v.renamed(map))).collect(),
            },
            PyExpr::BinOp { left, op, right } => PyExpr::BinOp {
                left: Box::new(left.renamed(map)),
                op,
                right: Box::new(right.renamed(map)),
            },
            PyExpr::Neg(e) => PyExpr::Neg(Box::new(e.renamed(map))),
            PyExpr::Tuple(items) => PyExpr::Tuple(items.iter().map(|a| a.renamed(map)).collect()),
            PyExpr::List(items) => PyExpr::List(items.iter().map(|a| a.renamed(map)).collect()),
            PyExpr::Index { base, index } => {
                PyExpr::Index { base: Box::new(base.renamed(map)), index: rename_text(index, map) }
            }
        }
    }
}

#[cfg(test)]
mod rename_tests {
    use super::*;

    #[test]
    fn renames_variables_and_layers_not_attributes_or_strings() {
        let map = [("x", "y"), ("self.conv_a", "self.conv1"), ("reflect", "no")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let t = r#"self.conv_a(F.pad(x.x, (1e-5, 0)), mode="reflect") + x[:, 0]"#;
        assert_eq!(
            rename_text(t, &map),
            r#"self.conv1(F.pad(y.x, (1e-5, 0)), mode="reflect") + y[:, 0]"#
        );
    }
}
