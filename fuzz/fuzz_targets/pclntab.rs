//! `ballast::binary::attribution::Pclntab` over arbitrary bytes: the header, the
//! function table, names and `pcsp` programs of every layout since Go 1.2, then
//! Go's package rule on each name. Any panic is a finding, and so is a function
//! measured past the next one's entry.
#![no_main]

use ballast::binary::attribution::{owner, Pclntab};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = Pclntab::parse(data, 0x40_1000) else {
        return;
    };
    let mut functions = 0usize;
    table.for_each(|func| {
        functions += 1;
        assert!(func.size <= func.next.saturating_sub(func.entry));
        assert!(func.name.len() <= 1024);
        let _ = owner(func.name);
    });
    assert_eq!(functions, table.len());
});
