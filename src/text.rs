//! Names from images, kept exactly and shown safely.
//!
//! Tar names are bytes, not UTF-8. `name_from_bytes` maps them to a `String`
//! losslessly and one to one: valid UTF-8 stays as it is, and each byte that is not
//! part of valid UTF-8 becomes one code point of a private-use block (U+10FF00 +
//! byte); a name that really holds a code point of that block has its bytes escaped
//! the same way. So `\xffa` and `\xfea` stay two names, paths still split on `/`,
//! and `name_to_bytes` gives the original bytes back.
//!
//! Everything a person reads (tables, Markdown, error lines) passes `for_terminal`,
//! which shows those bytes as `\xNN` and escapes control characters (ESC, BEL, CR,
//! …) that would otherwise reach the terminal; JSON passes `for_json`.

use std::borrow::Cow;

/// The first of the 256 code points that stand for raw bytes.
const BYTE_BLOCK: u32 = 0x10_FF00;

fn is_byte_char(c: char) -> bool {
    c as u32 >= BYTE_BLOCK
}

fn byte_char(byte: u8) -> char {
    char::from_u32(BYTE_BLOCK + u32::from(byte)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// A tar name as a `String`, losslessly (see the module docs).
pub fn name_from_bytes(raw: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(raw) {
        if !text.chars().any(is_byte_char) {
            return text.to_string();
        }
    }
    let mut out = String::with_capacity(raw.len() + 8);
    let mut rest = raw;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(text) => (text, 0),
            Err(error) => {
                let valid = std::str::from_utf8(&rest[..error.valid_up_to()]).unwrap_or("");
                let bad = error
                    .error_len()
                    .unwrap_or(rest.len() - error.valid_up_to());
                (valid, bad)
            }
        };
        for c in valid.chars() {
            if is_byte_char(c) {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    out.push(byte_char(byte));
                }
            } else {
                out.push(c);
            }
        }
        let start = valid.len();
        for &byte in &rest[start..start + bad] {
            out.push(byte_char(byte));
        }
        rest = &rest[start + bad..];
    }
    out
}

/// The bytes `name_from_bytes` was given.
pub fn name_to_bytes(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        if is_byte_char(c) {
            out.push((c as u32 - BYTE_BLOCK) as u8);
        } else {
            let mut buffer = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
        }
    }
    out
}

fn needs_escape(c: char, keep_newlines: bool) -> bool {
    (c.is_control() && !(keep_newlines && c == '\n')) || is_byte_char(c)
}

fn push_escaped(out: &mut String, c: char) {
    if is_byte_char(c) {
        out.push_str(&format!("\\x{:02x}", c as u32 - BYTE_BLOCK));
    } else if (c as u32) < 0x100 {
        out.push_str(&format!("\\x{:02x}", c as u32));
    } else {
        out.push_str(&format!("\\u{{{:x}}}", c as u32));
    }
}

/// One piece of text for a person: control characters (newlines too) and raw bytes
/// shown as escapes.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Whole rendered output (a table, a Markdown document): as `escape_control`, but
/// its own line breaks kept.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| needs_escape(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c, keep_newlines) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Rendered JSON: serde already escapes control characters; raw bytes of names
/// (which only occur inside strings) become the text `\xNN`.
pub fn for_json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_byte_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_byte_char(c) {
            out.push_str(&format!("\\\\x{:02x}", c as u32 - BYTE_BLOCK));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_stay_distinct() {
        let cases: &[&[u8]] = &[
            b"usr/bin/app",
            b"\xffa",
            b"\xfea",
            "caf\u{e9}".as_bytes(),
            "\u{10ff41}".as_bytes(),
            b"a\xc3",
            b"",
        ];
        let mut seen = std::collections::HashSet::new();
        for raw in cases {
            let name = name_from_bytes(raw);
            assert_eq!(name_to_bytes(&name), raw.to_vec(), "{raw:?}");
            assert!(seen.insert(name), "{raw:?} collided");
        }
        assert_eq!(name_from_bytes(b"usr/bin/app"), "usr/bin/app");
    }

    #[test]
    fn escapes_for_people() {
        assert_eq!(
            escape_control("a\x1b[31mred\x07\r"),
            "a\\x1b[31mred\\x07\\x0d"
        );
        assert_eq!(for_terminal("line\nnext\x1b"), "line\nnext\\x1b");
        assert_eq!(for_terminal(&name_from_bytes(b"\xffa")), "\\xffa");
        assert_eq!(escape_control("plain"), Cow::Borrowed("plain"));
        let json = serde_json::to_string(&name_from_bytes(b"\xffa")).expect("json");
        let shown: String = serde_json::from_str(&for_json(&json)).expect("valid JSON");
        assert_eq!(shown, "\\xffa");
    }
}
