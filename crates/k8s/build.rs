//! Compiles each vendored Kubernetes schema (proto/v1_XX, see proto/NOTICE) into a descriptor
//! set with protox (no protoc), embedded by the crate.

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
    for minor in ["v1_30", "v1_31", "v1_32", "v1_33", "v1_34", "v1_35", "v1_36"] {
        let dir = root.join(minor);
        let mut files = Vec::new();
        protos(&dir, &mut files);
        files.sort();
        let set = protox::compile(&files, [&dir])?;
        std::fs::write(
            out.join(format!("{minor}.fds")),
            prost::Message::encode_to_vec(&set),
        )?;
    }
    Ok(())
}
