//! The library's error type. Every message names what went wrong and where (file, node, op,
//! attribute) so that the CLI can print it as one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a TensorFlow GraphDef ({reason})")]
    NotAGraphDef { path: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("node '{node}' ({op}): {msg}")]
    Node { node: String, op: String, msg: String },
    #[error("{0}")]
    Msg(String),
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
