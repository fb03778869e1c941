//! A layer `apply` rewrites keeps every entry it does not remove as it was, byte for
//! byte: the header (mode, uid/gid and names, mtime, device numbers, link targets),
//! the PAX and GNU long-name records before it, and the data. The layer here holds
//! what a base image's rootfs holds and a Dockerfile's COPY rarely does.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

use ballast::digest::Digest;
use serde_json::Value;
use testkit::{BuiltLayer, ImageSpec, Item, LayerSpec};

use crate::apply::text;
use crate::common::*;

const LONG_KEPT: &str = "usr/lib/x86_64-linux-gnu/a-library-directory-with-a-long-name/and-a-file-in-it-whose-path-passes-the-hundred-bytes.so.1";
const LONG_DOC: &str = "usr/share/doc/a-package-with-a-long-name/examples/and-an-example-whose-path-passes-the-hundred-bytes-too.txt";

fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_path(path).expect("path");
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(1_700_000_000);
    header
}

fn push_entry(tar: &mut Vec<u8>, mut header: tar::Header, data: &[u8]) {
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

/// A PAX extended header (`x`) with these records.
fn push_pax(tar: &mut Vec<u8>, name: &str, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (key, value) in records {
        let rest = format!(" {key}=").len() + value.len() + 1;
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let header = header(name, tar::EntryType::XHeader, data.len() as u64, 0o644);
    push_entry(tar, header, &data);
}

/// A GNU long-name record (`././@LongLink`, type `L`) for the entry after it.
fn push_long_name(tar: &mut Vec<u8>, path: &str) {
    let mut name = path.as_bytes().to_vec();
    name.push(0);
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().expect("gnu").name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(name.len() as u64);
    header.set_mode(0o644);
    push_entry(tar, header, &name);
}

fn push_long(tar: &mut Vec<u8>, path: &str, data: &[u8]) {
    push_long_name(tar, path);
    let mut header = header(
        &path[..90],
        tar::EntryType::Regular,
        data.len() as u64,
        0o644,
    );
    header.set_path(&path[..90]).expect("short path");
    push_entry(tar, header, data);
}

/// The rootfs layer: directories, devices, a fifo, symlinks, a hard link, a
/// capability xattr, owners by id and by name, long names both ways, and the files
/// the suggestions remove (docs, an apt cache, a file a later layer deletes).
fn rootfs_tar() -> Vec<u8> {
    let mut tar = Vec::new();
    for dir in ["dev/", "etc/", "run/", "tmp/", "usr/", "usr/bin/", "var/"] {
        let mode = if dir == "tmp/" { 0o1777 } else { 0o755 };
        push_entry(
            &mut tar,
            header(dir, tar::EntryType::Directory, 0, mode),
            b"",
        );
    }
    let mut null = header("dev/null", tar::EntryType::Char, 0, 0o666);
    null.set_device_major(1).expect("major");
    null.set_device_minor(3).expect("minor");
    push_entry(&mut tar, null, b"");
    let mut disk = header("dev/sda", tar::EntryType::Block, 0, 0o660);
    disk.set_device_major(8).expect("major");
    disk.set_device_minor(0).expect("minor");
    disk.set_gid(6);
    disk.set_groupname("disk").expect("gname");
    push_entry(&mut tar, disk, b"");
    push_entry(
        &mut tar,
        header("run/initctl", tar::EntryType::Fifo, 0, 0o600),
        b"",
    );
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nsvc:x:1000:1000::/home/svc:/bin/sh\n";
    push_entry(
        &mut tar,
        header(
            "etc/passwd",
            tar::EntryType::Regular,
            passwd.len() as u64,
            0o644,
        ),
        passwd,
    );
    let shadow = b"root:*:19000:0:99999:7:::\n";
    let mut secret = header(
        "etc/shadow",
        tar::EntryType::Regular,
        shadow.len() as u64,
        0o640,
    );
    secret.set_gid(42);
    secret.set_groupname("shadow").expect("gname");
    push_entry(&mut tar, secret, shadow);
    let ping = std::fs::read("/bin/ls").unwrap_or_else(|_| text(3_000, 21));
    push_pax(
        &mut tar,
        "usr/bin/PaxHeaders.1/ping",
        &[
            (
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00",
            ),
            ("mtime", b"1700000000.123456789"),
        ],
    );
    push_entry(
        &mut tar,
        header(
            "usr/bin/ping",
            tar::EntryType::Regular,
            ping.len() as u64,
            0o4755,
        ),
        &ping,
    );
    let mut hard = header("usr/bin/ping6", tar::EntryType::Link, 0, 0o4755);
    hard.set_link_name("usr/bin/ping").expect("link");
    push_entry(&mut tar, hard, b"");
    let mut sh = header("usr/bin/sh", tar::EntryType::Symlink, 0, 0o777);
    sh.set_link_name("ping").expect("link");
    push_entry(&mut tar, sh, b"");
    let tool = text(2_000, 22);
    let mut owned = header(
        "usr/bin/svc-tool",
        tar::EntryType::Regular,
        tool.len() as u64,
        0o750,
    );
    owned.set_uid(1000);
    owned.set_gid(1000);
    owned.set_username("svc").expect("uname");
    owned.set_groupname("svc").expect("gname");
    push_entry(&mut tar, owned, &tool);
    push_long(&mut tar, LONG_KEPT, &text(1_500, 23));
    let changelog = text(12_000, 24);
    push_entry(
        &mut tar,
        header(
            "usr/share/doc/libc6/changelog",
            tar::EntryType::Regular,
            changelog.len() as u64,
            0o644,
        ),
        &changelog,
    );
    push_long(&mut tar, LONG_DOC, &text(2_500, 25));
    let manual = text(6_000, 26);
    push_pax(
        &mut tar,
        "usr/share/man/man8/PaxHeaders.1/ping.8",
        &[("mtime", b"1700000000.5")],
    );
    push_entry(
        &mut tar,
        header(
            "usr/share/man/man8/ping.8",
            tar::EntryType::Regular,
            manual.len() as u64,
            0o644,
        ),
        &manual,
    );
    let lists = text(30_000, 27);
    push_entry(
        &mut tar,
        header(
            "var/lib/apt/lists/deb.debian.org_Packages",
            tar::EntryType::Regular,
            lists.len() as u64,
            0o644,
        ),
        &lists,
    );
    let log = text(20_000, 28);
    push_entry(
        &mut tar,
        header(
            "tmp/build.log",
            tar::EntryType::Regular,
            log.len() as u64,
            0o644,
        ),
        &log,
    );
    // Docs are left out only where a package manager put them.
    let status = text(3_000, 29);
    push_entry(
        &mut tar,
        header(
            "var/lib/dpkg/status",
            tar::EntryType::Regular,
            status.len() as u64,
            0o644,
        ),
        &status,
    );
    let motd = b"kept after the removed files\n";
    push_entry(
        &mut tar,
        header(
            "etc/motd",
            tar::EntryType::Regular,
            motd.len() as u64,
            0o644,
        ),
        motd,
    );
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// Each entry's bytes (its PAX and long-name records, header, data and padding),
/// with its path.
fn entries(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut spans = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let mut start = 0u64;
    let mut raw = archive.entries().expect("entries").raw(true);
    while let Some(entry) = raw.next() {
        let mut entry = entry.expect("raw entry");
        let kind = entry.header().entry_type();
        if kind.is_pax_local_extensions() {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("pax");
            let size = tar::PaxExtensions::new(&data)
                .filter_map(Result::ok)
                .find(|r| r.key_bytes() == b"size")
                .and_then(|r| r.value().ok()?.parse().ok());
            if let Some(size) = size {
                raw.set_raw_next_size(size);
            }
        }
        let end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        // An extension record belongs to the entry after it.
        if !(kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink()) {
            spans.push(tar[start as usize..end as usize].to_vec());
            start = end;
        }
    }
    let mut archive = tar::Archive::new(tar);
    let paths: Vec<String> = archive
        .entries()
        .expect("entries")
        .map(|e| {
            String::from_utf8_lossy(&e.expect("entry").path_bytes())
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    assert_eq!(paths.len(), spans.len(), "one span per entry");
    paths.into_iter().zip(spans).collect()
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(blob)
        .read_to_end(&mut tar)
        .expect("gunzip");
    tar
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    std::fs::read(dir.join("blobs/sha256").join(hex)).expect("blob")
}

#[test]
fn a_rewritten_layer_keeps_every_other_entry_byte_for_byte() {
    let home = tempfile::tempdir().expect("home");
    let rootfs = rootfs_tar();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(&rootfs).expect("gzip");
    let blob_bytes = encoder.finish().expect("gzip");
    let base = BuiltLayer {
        digest: Digest::of_bytes(&blob_bytes),
        diff_id: Digest::of_bytes(&rootfs),
        blob: blob_bytes,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    };
    let later = LayerSpec::new(
        "RUN rm /tmp/build.log",
        vec![Item::Whiteout {
            path: "tmp/build.log".into(),
        }],
    );
    let later_built = testkit::build_layer(&later, false).expect("layer");
    let spec = ImageSpec::new(vec![LayerSpec::new("ADD rootfs.tar /", vec![]), later]);
    let image = spec.assemble(vec![base, later_built]).expect("assemble");
    let source = tempfile::tempdir().expect("source");
    testkit::write_oci_layout(source.path(), &[(&image, Some("t"))]).expect("layout");
    let out = tempfile::tempdir().expect("out");
    let target = out.path().join("slim");
    let report = json_of(
        home.path(),
        &[
            "apply",
            &format!("oci:{}:t", source.path().display()),
            "--to",
            &format!("oci:{}:t", target.display()),
        ],
    );
    let applied: BTreeSet<&str> = report["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    for id in ["drop-deleted-files", "drop-docs", "drop-package-caches"] {
        assert!(applied.contains(id), "{id} applied: {applied:?}");
    }

    let index: Value =
        serde_json::from_slice(&std::fs::read(target.join("index.json")).expect("index"))
            .expect("index json");
    let manifest: Value = serde_json::from_slice(&blob(
        &target,
        index["manifests"][0]["digest"].as_str().expect("manifest"),
    ))
    .expect("manifest json");
    let layers = manifest["layers"].as_array().expect("layers");
    let written = gunzip(&blob(&target, layers[0]["digest"].as_str().expect("layer")));
    let removed: BTreeSet<&str> = [
        "usr/share/doc/libc6/changelog",
        LONG_DOC,
        "usr/share/man/man8/ping.8",
        "var/lib/apt/lists/deb.debian.org_Packages",
        "tmp/build.log",
    ]
    .into();
    let expected: Vec<(String, Vec<u8>)> = entries(&rootfs)
        .into_iter()
        .filter(|(path, _)| !removed.contains(path.as_str()))
        .collect();
    let actual = entries(&written);
    let names =
        |list: &[(String, Vec<u8>)]| list.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&actual),
        names(&expected),
        "the entries kept, in order"
    );
    for ((path, after), (_, before)) in actual.iter().zip(&expected) {
        assert!(after == before, "/{path} is byte for byte the source's");
    }
    assert_eq!(
        written.len() as u64,
        u(&report["layers"][0]["after"]["uncompressed_bytes"]),
        "the report's size for the rewritten layer is the tar written"
    );
    // The whiteout has nothing left to hide: the layer is kept (its history entry
    // with it), as an empty tar.
    assert_eq!(layers.len(), 2);
    let emptied = gunzip(&blob(&target, layers[1]["digest"].as_str().expect("layer")));
    assert!(entries(&emptied).is_empty(), "the whiteout is gone");
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn an_entry_sized_by_its_pax_record_is_walked_by_that_size() {
    // Writers put a file over 8 GiB's size in a PAX `size` record and leave the
    // header's field short; readers (Go, GNU tar, containerd, inspect) take the
    // record. Here the header says 0 and the record 200,000 bytes.
    let home = tempfile::tempdir().expect("home");
    let big = text(5_000, 31);
    let mut tar = Vec::new();
    push_entry(
        &mut tar,
        header("opt/", tar::EntryType::Directory, 0, 0o755),
        b"",
    );
    let size = big.len().to_string();
    push_pax(
        &mut tar,
        "opt/PaxHeaders.1/big.dat",
        &[("size", size.as_bytes()), ("mtime", b"1700000000.5")],
    );
    push_entry(
        &mut tar,
        header("opt/big.dat", tar::EntryType::Regular, 0, 0o644),
        &big,
    );
    let status = text(3_000, 32);
    push_entry(
        &mut tar,
        header(
            "var/lib/dpkg/status",
            tar::EntryType::Regular,
            status.len() as u64,
            0o644,
        ),
        &status,
    );
    let changelog = text(30_000, 33);
    push_entry(
        &mut tar,
        header(
            "usr/share/doc/pkg/changelog",
            tar::EntryType::Regular,
            changelog.len() as u64,
            0o644,
        ),
        &changelog,
    );
    tar.extend_from_slice(&[0u8; 1024]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(&tar).expect("gzip");
    let blob_bytes = encoder.finish().expect("gzip");
    let layer = BuiltLayer {
        digest: Digest::of_bytes(&blob_bytes),
        diff_id: Digest::of_bytes(&tar),
        blob: blob_bytes,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    };
    let spec = ImageSpec::new(vec![LayerSpec::new("ADD rootfs.tar /", vec![])]);
    let image = spec.assemble(vec![layer]).expect("assemble");
    let source = tempfile::tempdir().expect("source");
    testkit::write_oci_layout(source.path(), &[(&image, Some("t"))]).expect("layout");
    let reference = format!("oci:{}:t", source.path().display());
    let seen = inspect_json(home.path(), &[&reference]);
    assert!(
        seen.to_string().contains("/opt/big.dat") || seen.to_string().contains("opt/big.dat"),
        "inspect lists the PAX-sized file"
    );
    let out = tempfile::tempdir().expect("out");
    let target = out.path().join("slim");
    let report = json_of(
        home.path(),
        &[
            "apply",
            &reference,
            "--to",
            &format!("oci:{}:t", target.display()),
        ],
    );
    assert_eq!(report["applied"][0]["id"], "drop-docs", "{report:#}");
    let index: Value =
        serde_json::from_slice(&std::fs::read(target.join("index.json")).expect("index"))
            .expect("index json");
    let manifest: Value = serde_json::from_slice(&blob(
        &target,
        index["manifests"][0]["digest"].as_str().expect("manifest"),
    ))
    .expect("manifest json");
    let written = gunzip(&blob(
        &target,
        manifest["layers"][0]["digest"].as_str().expect("layer"),
    ));
    let kept: Vec<(String, Vec<u8>)> = entries(&tar)
        .into_iter()
        .filter(|(path, _)| path != "usr/share/doc/pkg/changelog")
        .collect();
    assert_eq!(entries(&written), kept, "the PAX-sized entry is kept whole");
    let mut archive = tar::Archive::new(written.as_slice());
    let mut found = None;
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path_bytes().as_ref() == b"opt/big.dat" {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read");
            found = Some(data);
        }
    }
    assert_eq!(found.as_deref(), Some(big.as_slice()));
    assert_eq!(
        report["after"]["uncompressed_bytes"],
        report["projected"]["uncompressed_bytes"]
    );
}
