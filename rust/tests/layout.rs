//! The layout of `rust/`: modules are layers, and imports run one way.
//!
//! Reads every source file under `rust/` (not `rust/tests/`), extracts each
//! path that names something of this crate (`crate::…`, `super::…`,
//! `self::…`, and a child module's name, in `use` statements with their
//! `{…}` groups as well as inline, such as `crate::x::y::f()`), maps it to
//! the file it names and fails on:
//! - a cycle between files (`a.rs` names `b.rs`, which names `a.rs`, …);
//! - a cycle between top-level modules;
//! - a module naming a module of its own or a higher layer (the root files
//!   of layer 0 may name each other);
//! - a top-level module missing from [`LAYERS`];
//! - more than [`MAX_TOP_FILES`] `.rs` files at the top of `rust/`.
//!
//! A path names the file of the deepest module it reaches; an `mod.rs`
//! that re-exports (`pub use child::X`) names its children, so files of a
//! module name each other directly, never through their `mod.rs`.
//!
//! `layout/paths.rs` finds the paths and the files they name,
//! `layout/cycles.rs` the cycles; the layer table and the checks are here.

#[path = "layout/cycles.rs"]
mod cycles;
#[path = "layout/paths.rs"]
mod paths;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use cycles::{cycles, describe, others, Edges};
use paths::{inline_modules, lex, paths_of, resolve, Tokens};

/// Top-level modules by layer: a module may name only modules of lower
/// layers (layer 0, the crate root, also its own). Nothing names `py`
/// or `node` (the two bindings, each behind its feature).
const LAYERS: &[(&str, u32)] = &[
    ("lib", 0),
    ("error", 0),
    ("ids", 0),
    ("time", 0),
    ("json", 1),
    ("trace", 2),
    ("atlas", 2),
    ("carp", 3),
    ("sqlite", 3),
    ("runtime", 4),
    ("audit", 4),
    ("pg", 4),
    ("py", 5),
    ("node", 5),
];

/// Most `.rs` files allowed at the top of `rust/`.
const MAX_TOP_FILES: usize = 6;

#[test]
fn layers_hold_and_nothing_imports_in_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    assert!(
        files.len() > 10,
        "found only {} files under {root:?}",
        files.len()
    );
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "the layout of rust/ is broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn few_files_at_the_top() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust");
    let top: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        top.len() <= MAX_TOP_FILES,
        "{} .rs files at the top of rust/ (at most {MAX_TOP_FILES}): {top:?}",
        top.len()
    );
}

/// The checker itself finds what it is meant to find.
#[test]
fn the_checker_finds_cycles_and_upward_imports() {
    let ok = vec![
        src("lib.rs", "pub mod json; pub mod trace; pub mod error;"),
        src("error.rs", ""),
        src("json/mod.rs", "pub mod a; pub mod b; pub use a::A;"),
        src("json/a.rs", "use crate::json::b::B; use crate::error::E;"),
        src(
            "json/b.rs",
            "pub struct B; #[cfg(test)] mod tests { use super::*; use crate::json::b::B; }",
        ),
        src("trace/mod.rs", "pub mod t;"),
        src(
            "trace/t.rs",
            "use crate::json::A; fn f() { crate::json::a::g(); }",
        ),
    ];
    assert_eq!(check(&ok), Vec::<String>::new());

    // Two files naming each other, one of them inline and in a group.
    let mut cycle = ok.clone();
    cycle[4] = src("json/b.rs", "fn f() { crate::json::a::g(); }");
    let found = check(&cycle);
    assert!(
        found.iter().any(|p| p.contains("file cycle")
            && p.contains("rust/json/a.rs")
            && p.contains("rust/json/b.rs")),
        "{found:?}"
    );

    // A mod.rs that re-exports a child its child imports it through.
    let mut through_mod = ok.clone();
    through_mod[3] = src("json/a.rs", "use crate::json::{b::B, A as _};");
    let found = check(&through_mod);
    assert!(
        found.iter().any(|p| p.contains("file cycle")
            && p.contains("rust/json/mod.rs")
            && p.contains("rust/json/a.rs")),
        "{found:?}"
    );

    // A lower layer naming a higher one (and so a module cycle).
    let mut upward = ok.clone();
    upward[4] = src("json/b.rs", "use super::super::trace::t;");
    let found = check(&upward);
    assert!(
        found
            .iter()
            .any(|p| p.contains("rust/json/b.rs:1") && p.contains("json (layer 1) names trace")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains("module cycle")),
        "{found:?}"
    );

    // A module that is in no layer.
    let mut unknown = ok.clone();
    unknown.push(src("extra/mod.rs", ""));
    let found = check(&unknown);
    assert!(
        found.iter().any(|p| p.contains("`extra` is in no layer")),
        "{found:?}"
    );
}

#[derive(Clone)]
struct Source {
    /// Relative to `rust/`, with `/` separators.
    rel: String,
    text: String,
}

fn src(rel: &str, text: &str) -> Source {
    Source {
        rel: rel.to_string(),
        text: text.to_string(),
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap();
        if p.is_dir() {
            if rel != Path::new("tests") {
                collect(root, &p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(Source {
                rel: rel.to_string_lossy().replace('\\', "/"),
                text: fs::read_to_string(&p).unwrap(),
            });
        }
    }
}

/// The module path of a file: `lib.rs` is the crate root, `a/mod.rs` and
/// `a.rs` are `a`, `a/b.rs` is `a::b`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The top-level module a file belongs to (`lib` for `lib.rs`).
fn top_of(rel: &str) -> String {
    module_of(rel)
        .into_iter()
        .next()
        .unwrap_or_else(|| "lib".to_string())
}

fn layer_of(top: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == top).map(|&(_, l)| l)
}

/// Everything wrong with the layout of `files`.
fn check(files: &[Source]) -> Vec<String> {
    let lexed: Vec<(String, Vec<String>, Tokens)> = files
        .iter()
        .map(|f| (f.rel.clone(), module_of(&f.rel), lex(&f.text)))
        .collect();
    // Module path -> file, for files and the inline modules within them.
    let mut known: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for (rel, module, _) in &lexed {
        known.insert(module.clone(), rel.clone());
    }
    for (rel, module, toks) in &lexed {
        for m in inline_modules(module, toks) {
            known.entry(m).or_insert_with(|| rel.clone());
        }
    }

    let mut problems = Vec::new();
    let tops: BTreeSet<String> = files.iter().map(|f| top_of(&f.rel)).collect();
    for t in &tops {
        if layer_of(t).is_none() {
            problems.push(format!(
                "module `{t}` is in no layer: add it to LAYERS in rust/tests/layout.rs"
            ));
        }
    }

    // Edges between files and between top-level modules, with where each
    // was first seen.
    let mut file_edges: Edges = BTreeMap::new();
    let mut module_edges: Edges = BTreeMap::new();
    for (rel, module, toks) in &lexed {
        file_edges.entry(rel.clone()).or_default();
        for found in paths_of(module, toks, &known) {
            let Some(target) = resolve(&found, &known) else {
                continue;
            };
            if &target == rel {
                continue;
            }
            let at = format!("rust/{rel}:{} ({})", found.line, found.segments.join("::"));
            file_edges
                .entry(rel.clone())
                .or_default()
                .entry(target.clone())
                .or_insert_with(|| at.clone());
            let (from, to) = (top_of(rel), top_of(&target));
            if from == to {
                continue;
            }
            module_edges
                .entry(from.clone())
                .or_default()
                .entry(to.clone())
                .or_insert_with(|| at.clone());
            if let (Some(lf), Some(lt)) = (layer_of(&from), layer_of(&to)) {
                if lt > lf || (lt == lf && lf != 0) {
                    problems.push(format!(
                        "{at}: {from} (layer {lf}) names {to} (layer {lt}); a module names only lower layers"
                    ));
                }
            }
        }
    }
    for (cycle, group) in cycles(&file_edges) {
        problems.push(format!(
            "file cycle: {}{}",
            describe(&cycle, &file_edges, "rust/"),
            others(&cycle, &group)
        ));
    }
    for (cycle, group) in cycles(&module_edges) {
        problems.push(format!(
            "module cycle: {}{}",
            describe(&cycle, &module_edges, ""),
            others(&cycle, &group)
        ));
    }
    problems
}
