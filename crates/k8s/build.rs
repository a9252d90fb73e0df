//! Compiles each vendored Kubernetes schema (proto/v1_XX, see proto/NOTICE) into a descriptor
//! set with protox (no protoc), without source info (the comments are most of it and nothing reads
//! them), and writes them newest first into one zstd frame, `schemas.zst`, that the crate embeds:
//! the minors share almost every message, so the one frame costs little more than one set.
//! Each set is preceded by its length (u32, little-endian).

use std::path::{Path, PathBuf};

fn protos(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            protos(&path, found);
        } else if path.extension().is_some_and(|e| e == "proto") {
            found.push(path);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    let mut bundle = Vec::new();
    for minor in ["v1_36", "v1_35", "v1_34", "v1_33", "v1_32", "v1_31", "v1_30"] {
        let dir = root.join(minor);
        let mut files = Vec::new();
        protos(&dir, &mut files);
        files.sort();
        let set = protox::Compiler::new([&dir])?
            .include_source_info(false)
            .include_imports(true)
            .open_files(&files)?
            .file_descriptor_set();
        let encoded = prost::Message::encode_to_vec(&set);
        bundle.extend_from_slice(&u32::try_from(encoded.len())?.to_le_bytes());
        bundle.extend_from_slice(&encoded);
    }
    // A window as large as the bundle lets each set refer back to the previous ones.
    let mut encoder = zstd::Encoder::new(Vec::new(), 19)?;
    encoder.long_distance_matching(true)?;
    encoder.window_log(bundle.len().next_power_of_two().trailing_zeros().clamp(10, 27))?;
    encoder.set_pledged_src_size(Some(bundle.len() as u64))?;
    std::io::Write::write_all(&mut encoder, &bundle)?;
    std::fs::write(out.join("schemas.zst"), encoder.finish()?)?;
    Ok(())
}
