//! Text-format protobufs (`graph.pbtxt`, `saved_model.pbtxt`), parsed by prost-reflect against
//! TensorFlow's own schemas and then decoded into our prost messages like a binary file.
//!
//! The schemas are TensorFlow's descriptors (`tensorflow.desc`, written from the tensorflow
//! package by `scripts/proto_descriptors.py`): text format names fields and enum values, so
//! parsing needs all of them, not only the fields we read.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};

/// `FileDescriptorSet` of `tensorflow/core/protobuf/saved_model.proto` and its imports (TF 2.21).
static DESCRIPTORS: &[u8] = include_bytes!("tensorflow.desc");

/// Deepest `{ }` nesting accepted: the parser recurses per level, so a hostile file could
/// otherwise overflow the stack. prost's binary decoder stops at 100 as well.
const MAX_DEPTH: usize = 100;

/// The deepest nesting of message braces (`{ }` or `< >`) outside strings and comments.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                // A string ends at its unescaped quote (or the end of the line: an error the
                // parser reports).
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '\n' => break,
                        s if s == c => break,
                        _ => {}
                    }
                }
            }
            '#' => {
                for s in chars.by_ref() {
                    if s == '\n' {
                        break;
                    }
                }
            }
            '{' | '<' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses `text` as the message `full_name` (e.g. `tensorflow.GraphDef`) into `M`.
pub fn parse<M: Message + Default>(full_name: &str, text: &str) -> Result<M, String> {
    let depth = nesting_depth(text);
    if depth > MAX_DEPTH {
        return Err(format!("messages nest {depth} deep (at most {MAX_DEPTH} are read)"));
    }
    let pool = DescriptorPool::decode(DESCRIPTORS)
        .map_err(|e| format!("tf2torch's TensorFlow schemas do not load: {e}"))?;
    let desc = pool
        .get_message_by_name(full_name)
        .ok_or_else(|| format!("tf2torch's TensorFlow schemas lack {full_name}"))?;
    let message = DynamicMessage::parse_text_format(desc, text).map_err(|e| e.to_string())?;
    M::decode(message.encode_to_vec().as_slice()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::GraphDef;

    #[test]
    fn a_graph_in_text_format() {
        let text = r#"
            node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
            node { name: "y" op: "Relu" input: "x" }  # a comment with { a brace
            versions { producer: 1 }
        "#;
        let g: GraphDef = parse("tensorflow.GraphDef", text).unwrap();
        assert_eq!(g.node.len(), 2);
        assert_eq!(g.node[1].input, vec!["x".to_string()]);
    }

    #[test]
    fn nesting_is_bounded_before_parsing() {
        let deep = "library { function { attr { key: \"k\" value { list { ".repeat(60);
        let err = parse::<GraphDef>("tensorflow.GraphDef", &deep).unwrap_err();
        assert!(err.contains("nest"), "{err}");
        assert_eq!(nesting_depth(r#"a { s: "}{{" b < c: '>' > }"#), 2);
    }

    #[test]
    fn unknown_fields_are_errors_that_say_where() {
        let err = parse::<GraphDef>("tensorflow.GraphDef", "node { nme: \"x\" }").unwrap_err();
        assert!(err.contains("nme"), "{err}");
    }
}
