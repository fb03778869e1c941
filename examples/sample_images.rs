//! Builds ballast's sample images, the Go and the Rust build of one tiny HTTP service,
//! from real binaries compiled on this machine. Writes OCI layouts and/or pushes them.
//!
//! `sample_images [--layout DIR] [--push HOST:PORT]`

use std::path::PathBuf;

use testkit::samples::{self, GoBuild, RustBuild, Samples};
use testkit::BuiltImage;

fn main() -> anyhow::Result<()> {
    let mut layout: Option<PathBuf> = None;
    let mut push: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--layout" => layout = args.next().map(PathBuf::from),
            "--push" => push = args.next(),
            other => anyhow::bail!("unknown argument {other:?}; usage: sample_images [--layout DIR] [--push HOST:PORT]"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let samples = Samples::new(root.join("testdata"), target.join("ballast-samples"));
    let go = samples::service_image(&samples.go(GoBuild::Default)?, "usr/local/bin/hello", true)?
        .build()?;
    let rust = samples::service_image(
        &samples.rust(RustBuild::DebugInfo)?,
        "usr/local/bin/hello",
        true,
    )?
    .build()?;
    let images: [(&str, &BuiltImage); 2] = [("hello-go", &go), ("hello-rs", &rust)];
    if let Some(dir) = &layout {
        for (name, image) in images {
            let path = dir.join(name);
            let _ = std::fs::remove_dir_all(&path);
            testkit::write_oci_layout(&path, &[(image, Some("1.0"))])?;
            eprintln!("wrote oci:{}:1.0", path.display());
        }
    }
    if let Some(host) = &push {
        let client = ballast::registry::build_client(host, &Default::default())?;
        let runtime = tokio::runtime::Runtime::new()?;
        for (name, image) in images {
            let reference: oci_client::Reference = format!("{host}/samples/{name}:1.0").parse()?;
            runtime.block_on(testkit::push(&client, &reference, &[image]))?;
            eprintln!("pushed {}", reference.whole());
        }
    }
    Ok(())
}
