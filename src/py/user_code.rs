//! What the user's `custom_ops.py` binds, read with Ruff's Python parser: which function
//! implements which TF op, and every module-level name a new stub must not take.
//!
//! The file is the user's, so nothing here assumes it looks like what tf2torch wrote: a stub may
//! have been replaced by an assignment (`strange_op = _double`), an import or a class, and a
//! name may be bound inside `if`/`try` at module level.

use std::collections::{BTreeMap, BTreeSet};

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{ExceptHandler, Expr, ExprContext, Pattern, Stmt};

/// The docstring's first words in every stub tf2torch writes: ``TensorFlow op `X` ``.
const OP_MARKER: &str = "TensorFlow op `";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserModule {
    /// Every name bound at module level.
    pub names: BTreeSet<String>,
    /// TF op → the function whose docstring says it implements it.
    pub ops: BTreeMap<String, String>,
}

/// `custom_ops.py` does not parse: the model could not import it either.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

pub fn read(source: &str) -> Result<UserModule, SyntaxError> {
    let parsed = ruff_python_parser::parse_module(source).map_err(|e| {
        let offset = usize::from(e.location.start()).min(source.len());
        let line = source.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        SyntaxError { line, message: e.error.to_string() }
    })?;
    let mut found = UserModule::default();
    found.visit_body(&parsed.syntax().body);
    Ok(found)
}

impl UserModule {
    /// The function implementing `op`: the one whose docstring names it, else a function
    /// named `default` when no docstring claims that name for another op (a stub whose
    /// docstring the user rewrote).
    pub fn function_for(&self, op: &str, default: &str) -> Option<String> {
        if let Some(f) = self.ops.get(op) {
            return Some(f.clone());
        }
        let claimed = self.ops.values().any(|f| f == default);
        (self.names.contains(default) && !claimed).then(|| default.to_string())
    }
}

/// The TF op a function's docstring names, if it starts like a stub's.
fn documented_op(body: &[Stmt]) -> Option<String> {
    let Some(Stmt::Expr(e)) = body.first() else { return None };
    let Expr::StringLiteral(s) = e.value.as_ref() else { return None };
    let rest = s.value.to_str().trim_start().strip_prefix(OP_MARKER)?;
    Some(rest.split_once('`')?.0.to_string())
}

impl<'a> Visitor<'a> for UserModule {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            // Their bodies are scopes of their own.
            Stmt::FunctionDef(f) => {
                self.names.insert(f.name.to_string());
                if let Some(op) = documented_op(&f.body) {
                    self.ops.entry(op).or_insert_with(|| f.name.to_string());
                }
            }
            Stmt::ClassDef(c) => {
                self.names.insert(c.name.to_string());
            }
            Stmt::Import(i) => {
                for alias in &i.names {
                    let bound = alias.asname.as_ref().unwrap_or(&alias.name).as_str();
                    // `import a.b` binds `a`.
                    self.names.insert(bound.split('.').next().unwrap_or(bound).to_string());
                }
            }
            Stmt::ImportFrom(i) => {
                for alias in &i.names {
                    self.names.insert(alias.asname.as_ref().unwrap_or(&alias.name).to_string());
                }
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(n) if n.ctx == ExprContext::Store => {
                self.names.insert(n.id.to_string());
            }
            // Scopes of their own.
            Expr::Lambda(_)
            | Expr::ListComp(_)
            | Expr::SetComp(_)
            | Expr::DictComp(_)
            | Expr::Generator(_) => {}
            _ => visitor::walk_expr(self, expr),
        }
    }

    fn visit_except_handler(&mut self, handler: &'a ExceptHandler) {
        let ExceptHandler::ExceptHandler(h) = handler;
        if let Some(name) = &h.name {
            self.names.insert(name.to_string());
        }
        visitor::walk_except_handler(self, handler);
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        let bound = match pattern {
            Pattern::MatchAs(p) => p.name.as_ref(),
            Pattern::MatchStar(p) => p.name.as_ref(),
            Pattern::MatchMapping(p) => p.rest.as_ref(),
            _ => None,
        };
        if let Some(name) = bound {
            self.names.insert(name.to_string());
        }
        visitor::walk_pattern(self, pattern);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(m: &UserModule) -> Vec<&str> {
        m.names.iter().map(String::as_str).collect()
    }

    #[test]
    fn module_level_bindings_of_every_kind() {
        let m = read(
            "import torch  # noqa\nimport os.path\nfrom math import (pi as PI,\n    tau)\n\n\
             def _double(x):\n    inner = 2\n    return x * inner\n\n\
             strange_op = _double\nlimit: int = 3\na, (b, *c) = 1, (2, 3)\n\
             class Helper:\n    attr = 1\n\
             if torch:\n    def fallback(x):\n        return x\n\
             try:\n    import numpy as np\nexcept ImportError as missing:\n    np = None\n\
             for k in range(2):\n    pass\n\
             squares = [s * s for s in range(3)]\nf = lambda y: y\n\
             with open(__file__) as handle:\n    pass\n",
        )
        .unwrap();
        assert_eq!(
            names(&m),
            [
                "Helper",
                "PI",
                "_double",
                "a",
                "b",
                "c",
                "f",
                "fallback",
                "handle",
                "k",
                "limit",
                "missing",
                "np",
                "os",
                "squares",
                "strange_op",
                "tau",
                "torch"
            ]
        );
        assert!(m.ops.is_empty());
    }

    #[test]
    fn docstrings_say_which_function_implements_which_op() {
        let m = read(
            "def my_op(x):\n    \"\"\"TensorFlow op `MyOp`, which tf2torch did not translate.\"\"\"\n\
             \n\ndef my_op_2(x):\n    '''TensorFlow op `My_Op`.'''\n    return x\n\n\
             def helper(x):\n    \"\"\"Not a stub.\"\"\"\n",
        )
        .unwrap();
        let ops: Vec<(&str, &str)> = m.ops.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(ops, [("MyOp", "my_op"), ("My_Op", "my_op_2")]);
        assert_eq!(m.function_for("My_Op", "my_op").as_deref(), Some("my_op_2"));
        // `my_op` is claimed by MyOp's docstring: not taken by name for another op.
        assert_eq!(m.function_for("MY_OP", "my_op"), None);
        assert_eq!(m.function_for("Helper", "helper").as_deref(), Some("helper"));
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let e = read("import torch\n\ndef broken(x:\n    return x\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
    }
}
