//! Writes the benchmark image: 6 gzip layers, about 1 GiB uncompressed, a mix of
//! incompressible (random) and compressible (log-like text) files, as an OCI layout and
//! as a `docker save` tarball. Deterministic: the same bytes on every run.
//!
//! `bench_image DIR`  →  DIR/layout (oci:DIR/layout:bench), DIR/image.tar

use std::path::PathBuf;

use testkit::{ImageSpec, Item, LayerSpec};

/// xorshift64*: fast, deterministic, and incompressible enough for gzip.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&value[..chunk.len()]);
        }
    }
}

fn text(bytes: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 128);
    let mut i = seed;
    while out.len() < bytes {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(
            format!(
                "2026-11-25T07:{:02}:{:02}Z level=info service=api request_id={:016x} path=/v1/items/{} status=200 bytes={}\n",
                (i >> 8) % 60,
                (i >> 16) % 60,
                i,
                (i >> 24) % 10_000,
                (i >> 40) % 100_000
            )
            .as_bytes(),
        );
    }
    out.truncate(bytes);
    out
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: bench_image DIR"))?,
    );
    std::fs::create_dir_all(&dir)?;
    const MB: usize = 1024 * 1024;
    // (layer MiB, share of random bytes)
    let plan: [(usize, f64); 6] = [
        (220, 0.5),
        (190, 0.7),
        (170, 0.3),
        (160, 0.6),
        (150, 0.4),
        (130, 0.5),
    ];
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut layers = Vec::new();
    let mut built = Vec::new();
    for (index, (size_mb, random_share)) in plan.iter().enumerate() {
        let mut items = vec![Item::dir(&format!("layer{index}"))];
        let random_bytes = (*size_mb as f64 * random_share) as usize * MB;
        let text_bytes = size_mb * MB - random_bytes;
        // A few big files and many small ones, as real layers have.
        let mut remaining = random_bytes;
        let mut n = 0;
        while remaining > 0 {
            let size = if n % 4 == 0 {
                remaining.min(24 * MB)
            } else {
                remaining.min(64 * 1024 + n * 37)
            };
            let mut data = vec![0u8; size];
            noise.fill(&mut data);
            items.push(Item::file(&format!("layer{index}/bin/blob{n:05}"), data));
            remaining -= size;
            n += 1;
        }
        let mut remaining = text_bytes;
        let mut n = 0;
        while remaining > 0 {
            let size = if n % 3 == 0 {
                remaining.min(16 * MB)
            } else {
                remaining.min(8 * 1024 + n * 13)
            };
            items.push(Item::file(
                &format!("layer{index}/log/file{n:05}.log"),
                text(size, n as u64 + index as u64 * 1_000_000),
            ));
            remaining -= size;
            n += 1;
        }
        let spec = LayerSpec::new(&format!("RUN generate layer {index}"), items);
        built.push(testkit::build_layer(&spec, false)?);
        layers.push(LayerSpec::new(&spec.created_by, vec![]));
        eprintln!(
            "layer {index}: {} MiB uncompressed, {} MiB gzip",
            size_mb,
            built[index].blob.len() / MB
        );
    }
    let image = ImageSpec::new(layers).assemble(built)?;
    let layout = dir.join("layout");
    let _ = std::fs::remove_dir_all(&layout);
    testkit::write_oci_layout(&layout, &[(&image, Some("bench"))])?;
    testkit::write_docker_archive(&dir.join("image.tar"), &image, "bench/image:1.0")?;
    for layer in &image.layers {
        println!(
            "{}",
            layout
                .join("blobs/sha256")
                .join(layer.digest.hex())
                .display()
        );
    }
    Ok(())
}
