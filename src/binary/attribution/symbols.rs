//! Function symbols of `.symtab` (else `.dynsym`), and the crate a Rust symbol
//! belongs to.
//!
//! Names are read straight from the string section, at most `MAX_NAME` bytes each,
//! and the demangling over all symbols works within a budget proportional to that
//! section, so a table whose entries all name one huge string costs what a real
//! table does.

use object::elf;
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::Endianness;

/// Longest symbol name read; longer ones are cut (and then not demangled).
pub(crate) const MAX_NAME: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FuncSymbol<'a> {
    pub addr: u64,
    pub size: u64,
    pub name: &'a [u8],
    /// The `STT_FILE` before it, for local symbols (globals come after every file's
    /// locals, so the table does not say which file they came from).
    pub file: Option<&'a [u8]>,
}

/// `STT_FUNC` symbols defined inside `[text_start, text_end)` with a nonzero size,
/// from `.symtab` (`dynamic` false) or `.dynsym`.
pub(crate) fn function_symbols(
    data: &[u8],
    dynamic: bool,
    text_start: u64,
    text_end: u64,
) -> Vec<FuncSymbol<'_>> {
    if data.len() < 16 {
        return Vec::new();
    }
    match data[4] {
        1 => read::<elf::FileHeader32<Endianness>>(data, dynamic, text_start, text_end),
        2 => read::<elf::FileHeader64<Endianness>>(data, dynamic, text_start, text_end),
        _ => Vec::new(),
    }
}

fn read<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
    dynamic: bool,
    text_start: u64,
    text_end: u64,
) -> Vec<FuncSymbol<'_>> {
    let Ok(header) = Elf::parse(data) else {
        return Vec::new();
    };
    let Ok(endian) = header.endian() else {
        return Vec::new();
    };
    let Ok(table) = header.sections(endian, data) else {
        return Vec::new();
    };
    let kind = if dynamic {
        elf::SHT_DYNSYM
    } else {
        elf::SHT_SYMTAB
    };
    let Ok(symbols) = table.symbols(endian, data, kind) else {
        return Vec::new();
    };
    let strings = table
        .section(symbols.string_section())
        .ok()
        .and_then(|s| s.data(endian, data).ok())
        .unwrap_or(&[]);
    let name_at = |offset: u32| -> &[u8] {
        let Some(rest) = usize::try_from(offset).ok().and_then(|o| strings.get(o..)) else {
            return &[];
        };
        let window = &rest[..rest.len().min(MAX_NAME)];
        let len = window.iter().position(|&b| b == 0).unwrap_or(window.len());
        &window[..len]
    };
    let mut out = Vec::new();
    let mut file = None;
    for symbol in symbols.iter() {
        let st_type = symbol.st_type();
        if st_type == elf::STT_FILE {
            file = Some(name_at(symbol.st_name(endian))).filter(|n| !n.is_empty());
            continue;
        }
        if st_type != elf::STT_FUNC || symbol.is_undefined(endian) {
            continue;
        }
        let addr: u64 = symbol.st_value(endian).into();
        let size: u64 = symbol.st_size(endian).into();
        if size == 0 || addr < text_start || addr >= text_end {
            continue;
        }
        let local = symbol.st_bind() == elf::STB_LOCAL;
        out.push(FuncSymbol {
            addr,
            size,
            name: name_at(symbol.st_name(endian)),
            file: if local { file } else { None },
        });
    }
    out
}

/// Sorts by address and keeps one symbol per address (the largest; among equals the
/// first name in byte order), each cut where the next one starts or the text ends,
/// so no byte is counted twice. Returns the kept symbols with their counted sizes.
pub(crate) fn dedupe(mut symbols: Vec<FuncSymbol<'_>>, text_end: u64) -> Vec<FuncSymbol<'_>> {
    symbols.sort_unstable_by(|a, b| {
        a.addr
            .cmp(&b.addr)
            .then(b.size.cmp(&a.size))
            .then(a.name.cmp(b.name))
    });
    symbols.dedup_by_key(|s| s.addr);
    let mut out = Vec::with_capacity(symbols.len());
    for i in 0..symbols.len() {
        let mut symbol = symbols[i];
        let limit = symbols.get(i + 1).map_or(text_end, |next| next.addr);
        let end = symbol.addr.saturating_add(symbol.size).min(limit);
        symbol.size = end - symbol.addr;
        out.push(symbol);
    }
    out
}

/// Rust's legacy (`_ZN…17h<16 hex>E`) or v0 (`_R…`) mangling, an LLVM `.llvm.N`
/// style suffix allowed.
pub fn is_rust_symbol(name: &[u8]) -> bool {
    if name.len() > 3 && name.starts_with(b"_R") && name[2].is_ascii_uppercase() {
        return true;
    }
    if !name.starts_with(b"_ZN") {
        return false;
    }
    // The hash, then the end or a `.suffix` (the path itself may hold dots:
    // `hex..ToHex` is legacy for `hex::ToHex`).
    (3..name.len().saturating_sub(19)).any(|i| {
        name[i..].starts_with(b"17h")
            && name[i + 3..i + 19].iter().all(u8::is_ascii_hexdigit)
            && name[i + 19] == b'E'
            && name.get(i + 20).is_none_or(|&b| b == b'.')
    })
}

/// Where a demangled Rust path says its code belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrateOf<'a> {
    Crate(&'a str),
    /// An inherent method of a primitive type (`<[T]>::sort`, `<str>::trim`): only
    /// core, alloc and std may write those, and the demangled name does not say which.
    PrimitiveImpl,
    Unknown,
}

/// The crate of a demangled Rust path (`rustc-demangle`'s `{:#}` form, without hashes).
///
/// The rule: the first path segment; for a qualified path `<A as B>::f` (a trait
/// method) or `<A>::f` (an inherent one) the crate of the self type `A`, and only when
/// `A` names no crate (a type parameter, a primitive, a slice or tuple of them) the
/// crate of the trait `B`. So `<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop`
/// is `alloc`'s and `<T as core::fmt::Display>::fmt` is `core`'s, and a generic
/// instantiated for another crate's types stays with the crate that wrote the
/// generic (`core::ptr::drop_in_place::<serde_json::Value>` is `core`'s).
///
/// This is cargo-bloat's heuristic, except where cargo-bloat finds the self type's
/// crate and the trait's crate differ: it then looks the symbol up in the `.rlib`s
/// of the build and may pick the trait's crate; an image has no `.rlib`s, so this
/// always takes the self type's.
pub fn crate_of(path: &str) -> CrateOf<'_> {
    let path = path.trim_start();
    if let Some(rest) = path.strip_prefix('<') {
        let Some(close) = matching_close(rest) else {
            return CrateOf::Unknown;
        };
        let inner = &rest[..close];
        let (self_type, trait_path) = match split_as(inner) {
            Some((a, b)) => (a, Some(b)),
            None => (inner, None),
        };
        if let found @ CrateOf::Crate(_) = crate_of_type(self_type) {
            return found;
        }
        return match trait_path {
            Some(trait_path) => crate_of(trait_path),
            None if is_primitive_type(self_type) => CrateOf::PrimitiveImpl,
            None => CrateOf::Unknown,
        };
    }
    first_segment(path)
}

fn crate_of_type(ty: &str) -> CrateOf<'_> {
    let mut ty = ty.trim();
    loop {
        let before = ty;
        for prefix in ["&", "mut ", "*const ", "*mut ", "dyn ", "impl ", "unsafe "] {
            ty = ty.strip_prefix(prefix).unwrap_or(ty).trim_start();
        }
        if ty == before {
            break;
        }
    }
    if ty.starts_with('<') {
        return crate_of(ty);
    }
    if ty.starts_with('[') || ty.starts_with('(') || ty.starts_with("fn(") {
        return CrateOf::Unknown;
    }
    first_segment(ty)
}

fn is_primitive_type(ty: &str) -> bool {
    let ty = ty.trim().trim_start_matches('&').trim_start_matches("mut ");
    ty.starts_with('[')
        || ty.starts_with('(')
        || ty.starts_with('*')
        || ty.starts_with("fn(")
        || matches!(
            ty,
            "str"
                | "bool"
                | "char"
                | "u8"
                | "u16"
                | "u32"
                | "u64"
                | "u128"
                | "usize"
                | "i8"
                | "i16"
                | "i32"
                | "i64"
                | "i128"
                | "isize"
                | "f16"
                | "f32"
                | "f64"
                | "f128"
        )
}

/// `crate::…`: the identifier before the first `::`, if any comes before a `<`.
fn first_segment(path: &str) -> CrateOf<'_> {
    let Some(sep) = path.find("::") else {
        return CrateOf::Unknown;
    };
    let head = &path[..sep];
    if !head.is_empty() && head.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        CrateOf::Crate(head)
    } else {
        CrateOf::Unknown
    }
}

/// Index of the `>` closing a qualified path whose `<` was just consumed.
fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'<' | b'(' | b'[' => depth += 1,
            // `->` in a fn type is not a closing bracket.
            b'>' if i > 0 && s.as_bytes()[i - 1] == b'-' => {}
            b'>' if depth == 0 => return Some(i),
            b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// `A as B` split at the top-level ` as `.
fn split_as(s: &str) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            b' ' if depth == 0 && s[i..].starts_with(" as ") => {
                return Some((&s[..i], &s[i + 4..]));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_of_paths() {
        let c = |p: &str| match crate_of(p) {
            CrateOf::Crate(c) => c.to_string(),
            CrateOf::PrimitiveImpl => "<primitive>".into(),
            CrateOf::Unknown => "?".into(),
        };
        assert_eq!(c("core::fmt::write"), "core");
        assert_eq!(c("hello::main"), "hello");
        assert_eq!(
            c("<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"),
            "alloc"
        );
        assert_eq!(c("<T as core::fmt::Display>::fmt"), "core");
        assert_eq!(c("<&T as core::fmt::Debug>::fmt"), "core");
        assert_eq!(
            c("<&mut serde_json::ser::Serializer<W> as serde::ser::Serializer>::serialize_str"),
            "serde_json"
        );
        assert_eq!(
            c("core::ptr::drop_in_place::<serde_json::value::Value>"),
            "core"
        );
        assert_eq!(
            c("<core::cell::once::OnceCell<T>>::try_init::<F, E>"),
            "core"
        );
        assert_eq!(c("<[T]>::sort_by::<F>"), "<primitive>");
        assert_eq!(c("<str>::trim"), "<primitive>");
        assert_eq!(c("<[u8] as core::fmt::Debug>::fmt"), "core");
        assert_eq!(
            c("<<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop::DropGuard<T> as core::ops::drop::Drop>::drop"),
            "alloc"
        );
        assert_eq!(
            c("<fn(&u8) -> bool as core::ops::function::FnOnce<(&u8,)>>::call_once"),
            "core"
        );
        assert_eq!(c("main"), "?");
        assert_eq!(c("<unclosed"), "?");
    }

    #[test]
    fn recognises_rust_symbols() {
        assert!(is_rust_symbol(b"_ZN4core3fmt5write17h0123456789abcdefE"));
        assert!(is_rust_symbol(
            b"_ZN4core3fmt5write17h0123456789abcdefE.llvm.123"
        ));
        assert!(!is_rust_symbol(b"_ZN3foo3barE"));
        assert!(is_rust_symbol(
            b"_ZN50_$LT$T$u20$as$u20$hex..ToHex$GT$10encode_hex17h0123456789abcdefE"
        ));
        assert!(!is_rust_symbol(b"_ZN4core3fmt5write17h0123456789abcdefEx"));
        assert!(is_rust_symbol(b"_RNvCs1234_7mycrate4main"));
        assert!(!is_rust_symbol(b"main"));
    }

    #[test]
    fn dedupe_keeps_one_per_address_and_cuts_overlaps() {
        let s = |addr, size, name: &'static str| FuncSymbol {
            addr,
            size,
            name: name.as_bytes(),
            file: None,
        };
        let kept = dedupe(
            vec![
                s(0x20, 0x100, "b"),
                s(0x10, 0x8, "z"),
                s(0x10, 0x8, "a"),
                s(0x10, 0x4, "alias"),
            ],
            0x40,
        );
        assert_eq!(kept, vec![s(0x10, 0x8, "a"), s(0x20, 0x20, "b")]);
    }
}
