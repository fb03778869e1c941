//! What a hostile layer costs: decompression is bounded by the decompressed bytes
//! (`--max-layer-size`, checked while streaming), not by a ratio, so a layer of zeros
//! (a preallocated disk image, a sparse file), which compresses a thousandfold, is
//! read like any other, and a 4 GiB bomb costs bounded memory with a clear outcome.

use std::io::Write;
use std::path::Path;

use ballast::digest::Digest;
use ballast::layer::Compression;
use sha2::Digest as _;
use testkit::{BuiltLayer, ImageSpec, Item};

use crate::common::*;

fn layout(dir: &Path, blob: Vec<u8>, diff_id: Digest) {
    let layer = BuiltLayer {
        digest: Digest::of_bytes(&blob),
        diff_id,
        blob,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
    };
    let image = ImageSpec::new(vec![])
        .assemble(vec![layer])
        .expect("assemble");
    testkit::write_oci_layout(dir, &[(&image, Some("t"))]).expect("layout");
}

#[test]
fn a_zero_filled_layer_is_not_a_bomb() {
    let home = tempfile::tempdir().expect("home");
    // 150 MB of zeros gzip to about 150 kB: over 1000:1, and a perfectly ordinary
    // layer (a preallocated disk image).
    let tar =
        testkit::tar_bytes(&[Item::file("var/lib/disk.img", vec![0u8; 150_000_000])]).expect("tar");
    let gzip = testkit::compress(&tar, Compression::Gzip, Some(9)).expect("gzip");
    assert!(
        tar.len() / gzip.len() > 1000,
        "ratio {}",
        tar.len() / gzip.len()
    );
    let dir = tempfile::tempdir().expect("dir");
    layout(dir.path(), gzip, Digest::of_bytes(&tar));
    let report = inspect_json(home.path(), &[&format!("oci:{}:t", dir.path().display())]);
    assert_eq!(report["largest_files"][0]["path"], "/var/lib/disk.img");
    assert_eq!(report["largest_files"][0]["size"], 150_000_000);
    assert_eq!(report["totals"]["uncompressed_bytes"], tar.len());
}

/// A layer holding one 4 GiB file of zeros, about 4 MB gzipped: gzip members of
/// 64 MiB each (one compressed, then repeated), which gunzip reads as one stream.
/// Returns the blob and the tar's digest (its diff_id).
fn four_gib_of_zeros() -> (Vec<u8>, Digest) {
    const SIZE: u64 = 4 * 1024 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024 * 1024;
    let mut header = tar::Header::new_ustar();
    header.set_path("zeros").expect("path");
    header.set_size(SIZE);
    header.set_mode(0o644);
    header.set_cksum();
    let zeros = vec![0u8; CHUNK];
    let member = testkit::compress(&zeros, Compression::Gzip, Some(9)).expect("gzip");
    let mut blob = testkit::compress(header.as_bytes(), Compression::Gzip, Some(9)).expect("gzip");
    let mut diff_id = sha2::Sha256::new();
    diff_id.update(header.as_bytes());
    for _ in 0..SIZE / CHUNK as u64 {
        blob.extend_from_slice(&member);
        diff_id.update(&zeros);
    }
    // The end-of-archive marker: two zero blocks (the data needs no padding).
    let trailer = [0u8; 1024];
    blob.write_all(&testkit::compress(&trailer, Compression::Gzip, Some(9)).expect("gzip"))
        .expect("append");
    diff_id.update(trailer);
    let hex = hex::encode(diff_id.finalize());
    (
        blob,
        Digest::parse(&format!("sha256:{hex}")).expect("digest"),
    )
}

#[test]
fn a_four_gib_bomb_costs_bounded_memory_and_says_what_happened() {
    let home = tempfile::tempdir().expect("home");
    let (blob, diff_id) = four_gib_of_zeros();
    assert!(blob.len() < 8 * 1024 * 1024, "{} bytes", blob.len());
    let dir = tempfile::tempdir().expect("dir");
    layout(dir.path(), blob, diff_id);
    let image = format!("oci:{}:t", dir.path().display());

    // Within the default 64 GiB: a valid, if silly, layer, read in full (its diff_id
    // needs every byte) in flat memory.
    let started = std::time::Instant::now();
    let (output, peak) = ballast_peak_rss(home.path(), &["inspect", &image, "--format", "json"]);
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["largest_files"][0]["size"], 4u64 << 30);
    assert!(peak < 64 << 20, "peak RSS {peak} B");
    eprintln!(
        "4 GiB of zeros: read in {elapsed:?}, peak RSS {} MiB",
        peak >> 20
    );

    // A lower limit stops it as soon as the limit is passed.
    let started = std::time::Instant::now();
    let (output, peak) = ballast_peak_rss(
        home.path(),
        &["inspect", &image, "--max-layer-size", "1GiB"],
    );
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--max-layer-size"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(peak < 64 << 20, "peak RSS {peak} B");
    eprintln!(
        "refused at 1 GiB in {elapsed:?}, peak RSS {} MiB",
        peak >> 20
    );
}
