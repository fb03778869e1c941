//! One layer holding a 1 GiB file of zeros, and a layer that deletes it: the case that
//! made advise buffer whole files. For `scripts/bench.sh`.
//!
//! `zeros_image DIR` → `oci:DIR:zeros`

use testkit::{ImageSpec, Item, LayerSpec};

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: zeros_image DIR"))?,
    );
    let image = ImageSpec::new(vec![
        LayerSpec::new(
            "RUN dd if=/dev/zero of=/var/tmp/zeros bs=1M count=1024",
            vec![
                Item::file("etc/os-release", b"ID=bench\n".to_vec()),
                Item::file("var/tmp/zeros", vec![0u8; 1 << 30]),
            ],
        ),
        LayerSpec::new(
            "RUN rm /var/tmp/zeros",
            vec![Item::Whiteout {
                path: "var/tmp/zeros".into(),
            }],
        ),
    ])
    .build()?;
    let _ = std::fs::remove_dir_all(&dir);
    testkit::write_oci_layout(&dir, &[(&image, Some("zeros"))])?;
    eprintln!("wrote oci:{}:zeros", dir.display());
    Ok(())
}
