//! The layering of this crate, checked: the edges (`api/`, `console/`, `consumers/`,
//! `startup.rs`, `main.rs`) may use the domain and the store; nothing else
//! may name an edge or an HTTP type (see `docs/architecture.md`, "Layers").

use std::path::{Path, PathBuf};

/// Files and folders (relative to `src/`) that are edges.
const EDGES: [&str; 5] = ["api/", "console/", "consumers/", "startup.rs", "main.rs"];

/// What only an edge may name.
const EDGE_ONLY: [&str; 7] =
    ["crate::api", "super::api", "crate::console", "crate::consumers", "axum", "rampart_http", "StatusCode"];

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_domain_or_store_module_names_an_edge() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut leaks = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("under src/").to_string_lossy().replace('\\', "/");
        if EDGES.iter().any(|edge| relative.starts_with(edge)) || relative == "layers.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if let Some(name) = EDGE_ONLY.iter().find(|name| code.contains(*name)) {
                leaks.push(format!("src/{relative}:{}: names {name}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(leaks.is_empty(), "domain or store code names an edge:\n{}", leaks.join("\n"));
}
