//! Python as data: the syntax tree lowering builds ([`ast`]), the one printer that turns it
//! into text laid out as `ruff format` would ([`printer`]), and the identifier policy every
//! generated name goes through ([`names`]). Nothing outside this module writes Python syntax.
//! The user's own Python (`custom_ops.py`) is read with Ruff's parser ([`user_code`]).

pub mod ast;
pub mod names;
pub mod printer;
pub mod user_code;

pub use ast::{
    Assign, BinOp, Call, ClassDef, Expr, FunctionDef, ListComp, Lit, Param, Ref, Stmt, UnaryOp,
};
