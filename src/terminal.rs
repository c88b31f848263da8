//! Text for a terminal: names from a model file reach stdout and stderr (node and op names in
//! the summary, `inspect`, errors), and a hostile one could hold escape sequences that move the
//! cursor, rewrite earlier lines or ring the bell. Everything printed goes through
//! [`printable`].

use std::fmt::Write;

/// `s` with control characters and bidirectional overrides escaped (`\x1b`, `\n`, `\u{202e}`).
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that reorder how text displays (the "Trojan Source" ones).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(printable("conv\u{1b}[2J\u{7}\r\nx"), "conv\\x1b[2J\\x07\\r\\nx");
        assert_eq!(printable("a\u{202e}b\u{9b}c"), "a\\u{202e}b\\u{009b}c");
        assert_eq!(printable("model/conv_1/Conv2D:0 é"), "model/conv_1/Conv2D:0 é");
    }
}
