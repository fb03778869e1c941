//! Assembles the image the top-level Dockerfile describes, without a Docker engine:
//! a static ballast binary on a distroless/static-like base (CA certificates, tzdata,
//! a nonroot passwd entry), written as an OCI layout, so `ballast advise` can judge
//! ballast's own recipe.
//!
//! `dogfood_image BINARY DIR`

use std::path::PathBuf;

use testkit::{ImageSpec, Item, LayerSpec};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(binary), Some(dir)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: dogfood_image BINARY DIR");
    };
    let mut base = vec![
        Item::file(
            "etc/passwd",
            "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
        ),
        Item::file("etc/group", "root:x:0:\nnonroot:x:65532:\n"),
        Item::dir("tmp"),
    ];
    // distroless/static carries these from Debian's ca-certificates and tzdata.
    for path in [
        "etc/ssl/certs/ca-certificates.crt",
        "usr/share/zoneinfo/UTC",
        "usr/share/zoneinfo/Etc/UTC",
    ] {
        if let Ok(data) = std::fs::read(PathBuf::from("/").join(path)) {
            base.push(Item::file(path, data));
        }
    }
    let mut spec = ImageSpec::new(vec![
        LayerSpec::new(
            "FROM gcr.io/distroless/static-debian12:nonroot (assembled)",
            base,
        ),
        LayerSpec::new(
            "COPY --from=build /src/target/release/ballast /usr/local/bin/ballast",
            vec![Item::executable(
                "usr/local/bin/ballast",
                std::fs::read(&binary)?,
            )],
        ),
    ]);
    spec.entrypoint = vec!["/usr/local/bin/ballast".into()];
    spec.user = Some("65532:65532".into());
    let image = spec.build()?;
    let dir = PathBuf::from(dir);
    let _ = std::fs::remove_dir_all(&dir);
    testkit::write_oci_layout(&dir, &[(&image, Some("dogfood"))])?;
    eprintln!("wrote oci:{}:dogfood", dir.display());
    Ok(())
}
