//! Pushes the image an OCI layout holds to a registry: `push_layout DIR[:TAG] HOST/REPO:TAG`.
//! (Used by the calibration check to put the benchmark image into a local registry.)

use std::path::PathBuf;

use ballast::digest::Digest;
use testkit::{BuiltImage, BuiltLayer};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(layout), Some(target)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: push_layout DIR[:TAG] HOST/REPO:TAG");
    };
    let image = ballast::reference::ImageRef::parse(&format!("oci:{layout}"))?;
    let ballast::reference::ImageRef::OciLayout { dir, .. } = &image else {
        anyhow::bail!("not a layout: {layout}");
    };
    let dir: PathBuf = dir.clone();
    let runtime = tokio::runtime::Runtime::new()?;
    let resolved = runtime.block_on(async {
        let source = ballast::source::Source::open(&image, &Default::default()).await?;
        source.resolve(&Default::default(), false).await
    })?;
    let blob = |digest: &Digest| std::fs::read(dir.join("blobs/sha256").join(digest.hex()));
    let manifest = blob(&resolved.manifest_digest)?;
    let layers = resolved
        .layers
        .iter()
        .zip(&resolved.config.diff_ids)
        .map(|(layer, diff_id)| {
            Ok(BuiltLayer {
                blob: blob(&layer.digest)?,
                digest: layer.digest.clone(),
                diff_id: diff_id.clone(),
                media_type: layer.media_type.clone(),
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let built = BuiltImage {
        platform: resolved.platform.clone(),
        manifest,
        manifest_digest: resolved.manifest_digest.clone(),
        manifest_media_type: resolved.manifest_media_type.clone(),
        config: blob(&resolved.config_digest)?,
        config_digest: resolved.config_digest.clone(),
        layers,
    };
    let reference: oci_client::Reference = target.parse()?;
    let client = ballast::registry::build_client(reference.registry(), &Default::default())?;
    runtime.block_on(testkit::push(&client, &reference, &[&built]))?;
    eprintln!("pushed {}", reference.whole());
    Ok(())
}
