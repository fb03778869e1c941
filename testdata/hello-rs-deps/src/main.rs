//! Hashes its arguments and prints them as JSON: code from three crates.io crates
//! (serde_json, sha2, hex) for the code attribution to find.
use sha2::{Digest, Sha256};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let digests: Vec<serde_json::Value> = args
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.as_bytes());
            serde_json::json!({ "arg": a, "sha256": hex::encode(digest) })
        })
        .collect();
    let text = serde_json::to_string_pretty(&digests).unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    println!("{parsed}");
}
