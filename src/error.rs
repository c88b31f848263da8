//! The library's error type. Every message names what went wrong and where (file, node, op,
//! attribute) so that the CLI can print it as one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The user's `custom_ops.py` is not valid Python.
    #[error("{path}:{line}: does not parse ({message}); fix it, or move it away for a fresh one")]
    CustomOps { path: PathBuf, line: usize, message: String },
    #[error("{path}: not a TensorFlow GraphDef ({reason})")]
    NotAGraphDef { path: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("node '{node}' ({op}): {msg}")]
    Node { node: String, op: String, msg: String },
    /// `--strict` and some op could not be translated (the CLI exits with 2).
    #[error("--strict: untranslated ops: {}", describe_untranslated(.0))]
    Untranslated(Vec<UntranslatedOp>),
    #[error("{0}")]
    Msg(String),
}

/// One op type a conversion could not translate: what the summary and `--strict` report.
#[derive(Clone, Debug)]
pub struct UntranslatedOp {
    pub op: String,
    /// Its stub in `custom_ops.py`.
    pub function: String,
    pub nodes: Vec<String>,
    pub reason: String,
}

fn describe_untranslated(ops: &[UntranslatedOp]) -> String {
    let list: Vec<String> =
        ops.iter().map(|s| format!("{} ({}: {})", s.op, s.nodes.join(", "), s.reason)).collect();
    list.join("; ")
}

impl Error {
    pub fn msg(m: impl Into<String>) -> Error {
        Error::Msg(m.into())
    }

    pub fn node(node: &str, op: &str, msg: impl Into<String>) -> Error {
        Error::Node { node: node.to_string(), op: op.to_string(), msg: msg.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
