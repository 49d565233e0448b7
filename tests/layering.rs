//! The rooms of the crate stay layered (see ARCHITECTURE.md): every
//! `crate::room` path in `src/` points to the same layer or one below, and
//! no rooms use each other in a circle. Inside the controller, the stages
//! of a reconcile only use earlier stages and the shared parts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. A room may use its own layer (without circles) and the
/// layers below.
const LAYERS: &[(&str, &[&str])] = &[
    ("base", &["api", "labels", "redact"]),
    ("pure", &["plan", "schedule", "changelog"]),
    (
        "I/O",
        &[
            "git", "build", "deploy", "health", "notify", "http", "client", "metrics", "server",
            "leader", "remote",
        ],
    ),
    ("top", &["controller", "cli"]),
];

/// The controller's modules, in reconcile order; each stage may use the
/// shared modules and the stages before it, never one after it.
const CONTROLLER_SHARED: &[&str] = &["context", "events", "targets", "conditions"];
const CONTROLLER_STAGES: &[&str] = &["observe", "decide", "act", "report"];

fn layer_of(room: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, rooms)| rooms.contains(&room))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src/").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments and doc comments), so paths
/// named in prose do not count.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment after every `crate::` (and after `crate::{`,
/// one per item of the group).
fn crate_uses(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        // `packit_operator::crate` does not exist; skip `$crate` and
        // identifiers that merely end in "crate".
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

/// The room of a file: the first component under `src/` (`src/lib.rs`,
/// `src/main.rs` and `src/bin/` are the crate root and binaries, above
/// every room).
fn room_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let room = first.trim_end_matches(".rs").to_owned();
    (!matches!(room.as_str(), "lib" | "main" | "bin")).then_some(room)
}

fn edges() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for file in files {
        let Some(room) = room_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let shown = file
            .strip_prefix(&src)
            .unwrap_or(&file)
            .display()
            .to_string();
        for used in crate_uses(&code(&text)) {
            if used != room {
                edges
                    .entry(room.clone())
                    .or_default()
                    .insert((used, shown.clone()));
            }
        }
    }
    edges
}

#[test]
fn every_room_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs");
    let rooms: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(rooms.len() > 10, "modules of src/lib.rs: {rooms:?}");
    let missing: Vec<&&str> = rooms.iter().filter(|r| layer_of(r).is_none()).collect();
    assert!(
        missing.is_empty(),
        "give these rooms a layer in tests/layering.rs and ARCHITECTURE.md: {missing:?}"
    );
}

#[test]
fn no_room_uses_a_room_above_it() {
    let mut upward = Vec::new();
    for (room, used) in edges() {
        let Some(from) = layer_of(&room) else {
            continue;
        };
        for (target, file) in used {
            if layer_of(&target).is_some_and(|to| to > from) {
                upward.push(format!(
                    "{file}: {room} ({}) uses {target} ({})",
                    LAYERS[from].0,
                    LAYERS[layer_of(&target).unwrap_or(0)].0
                ));
            }
        }
    }
    assert!(upward.is_empty(), "upward uses:\n{}", upward.join("\n"));
}

#[test]
fn rooms_use_each_other_without_circles() {
    let graph: BTreeMap<String, BTreeSet<String>> = edges()
        .into_iter()
        .map(|(room, used)| (room, used.into_iter().map(|(t, _)| t).collect()))
        .collect();
    if let Some(circle) = find_circle(&graph) {
        panic!("rooms in a circle: {}", circle.join(" -> "));
    }
}

#[test]
fn controller_stages_only_use_earlier_stages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/controller");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let mut backwards = Vec::new();
    for file in files {
        let Some(stage) = room_of(&dir, &file) else {
            continue;
        };
        let Some(at) = CONTROLLER_STAGES.iter().position(|s| *s == stage) else {
            assert!(
                CONTROLLER_SHARED.contains(&stage.as_str())
                    || ["mod", "reconcile", "run"].contains(&stage.as_str()),
                "{}: a controller module that is neither a stage nor shared; add it to tests/layering.rs and ARCHITECTURE.md",
                file.display()
            );
            if CONTROLLER_SHARED.contains(&stage.as_str()) {
                let text = code(&std::fs::read_to_string(&file).expect("source"));
                for s in CONTROLLER_STAGES {
                    if text.contains(&format!("controller::{s}"))
                        || text.contains(&format!("super::{s}"))
                    {
                        backwards.push(format!(
                            "{}: shared {stage} uses the stage {s}",
                            file.display()
                        ));
                    }
                }
            }
            continue;
        };
        let text = code(&std::fs::read_to_string(&file).expect("source"));
        for later in &CONTROLLER_STAGES[at + 1..] {
            let uses = [
                format!("controller::{later}"),
                format!("super::{later}"),
                format!("super::super::{later}"),
            ];
            if uses.iter().any(|u| text.contains(u.as_str())) {
                backwards.push(format!(
                    "{}: the stage {stage} uses the later stage {later}",
                    file.display()
                ));
            }
        }
    }
    assert!(backwards.is_empty(), "{}", backwards.join("\n"));
}

/// A circle in `graph`, as the rooms along it.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut circle = path[i..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_checks_see_what_they_should() {
    // The parser finds grouped and nested paths and ignores comments...
    let uses = crate_uses(&code(
        "use crate::{api::X, plan};\n// crate::cli in prose\nlet x = crate::git::redact(y);",
    ));
    assert_eq!(uses.into_iter().collect::<Vec<_>>(), ["api", "git", "plan"]);
    // ...and a circle is found.
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert_eq!(
        find_circle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
