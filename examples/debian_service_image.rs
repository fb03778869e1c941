//! The Go and the Rust build of the sample service on a real Debian base, the way
//! teams ship them: `FROM debian:bookworm` (a root filesystem tarball made by
//! `mmdebstrap`, gzipped by GNU gzip like a registry's blob would be by another
//! compressor), an apt layer that keeps its package lists, the binary with a build log
//! that a later layer deletes. For `scripts/bench.sh`.
//!
//! `debian_service_image ROOTFS.tar DIR` → `oci:DIR/debian-go:1.0`, `oci:DIR/debian-rs:1.0`

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ballast::digest::Digest;
use testkit::samples::{self, GoBuild, RustBuild, Samples};
use testkit::{BuiltLayer, ImageSpec, LayerSpec};

fn gnu_gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("gzip")
        .args(["-6", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("gzip stdin"))?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
    anyhow::ensure!(output.status.success(), "gzip failed");
    Ok(output.stdout)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(rootfs), Some(dir)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: debian_service_image ROOTFS.tar DIR");
    };
    let tar = std::fs::read(&rootfs)?;
    let base_blob = gnu_gzip(&tar)?;
    let base = BuiltLayer {
        digest: Digest::of_bytes(&base_blob),
        diff_id: Digest::of_bytes(&tar),
        blob: base_blob,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let samples = Samples::new(root.join("testdata"), target.join("ballast-samples"));
    let dir = PathBuf::from(dir);
    for (name, binary) in [
        ("debian-go", samples.go(GoBuild::Default)?),
        ("debian-rs", samples.rust(RustBuild::DebugInfo)?),
    ] {
        let service = samples::service_image(&binary, "usr/local/bin/hello", true)?;
        // The sample's own base layer gives way to the real one.
        let mut layers = vec![LayerSpec::new(
            "ADD rootfs.tar.xz / # debian:bookworm (mmdebstrap --variant=minbase)",
            vec![],
        )];
        layers.extend(service.layers.iter().skip(1).cloned());
        let mut spec = ImageSpec::new(layers);
        spec.entrypoint = service.entrypoint.clone();
        spec.empty_history = service.empty_history.clone();
        let mut built = vec![base.clone()];
        for layer in &spec.layers[1..] {
            let mut layer = layer.clone();
            layer.compressor = Some(vec!["gzip".into(), "-6".into(), "-n".into(), "-c".into()]);
            built.push(testkit::build_layer(&layer, false)?);
        }
        let image = spec.assemble(built)?;
        let path = dir.join(name);
        let _ = std::fs::remove_dir_all(&path);
        testkit::write_oci_layout(&path, &[(&image, Some("1.0"))])?;
        eprintln!(
            "wrote oci:{}:1.0 ({} B compressed)",
            path.display(),
            image.compressed_bytes()
        );
    }
    Ok(())
}
