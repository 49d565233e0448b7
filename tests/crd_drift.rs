//! `crds/` must match what the Rust types generate.

use std::path::Path;

#[test]
fn crds_directory_matches_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let docs = packit_operator::api::crd_documents().expect("CRDs serialize");
    assert_eq!(docs.len(), 2);
    for (file, generated) in docs {
        let path = dir.join(&file);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{} is out of date with the Rust types; regenerate with `cargo run -- crd --dir crds`",
            path.display()
        );
    }
    let extra: Vec<_> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !f.starts_with("packit"))
        .collect();
    assert!(extra.is_empty(), "unexpected files in crds/: {extra:?}");
}
