//! Building the context packs of an atlas: their blocks (inline content
//! or files read from the atlas directory) and their conditions.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use memchr::memmem::Finder;
use serde_json::Value;

use crate::atlas::id_grammar::is_plain_id;
use crate::atlas::keys::{check_keys, Place, PACK_CONDITION_KEYS, PACK_KEYS};
use crate::atlas::limits::too_large;
use crate::atlas::model::{Block, ContextPack};
use crate::atlas::parts::{check_id, items, tiers};
use crate::error::CoreError;
use crate::json::fields::{at, at_index, Faults};

/// The context text an atlas may still take (`max_context_bytes`); the
/// first pack past it is the error the build returns.
pub struct ContextBudget {
    max: u64,
    used: u64,
    pub over: Option<CoreError>,
}

impl ContextBudget {
    pub fn new(max: u64) -> Self {
        ContextBudget {
            max,
            used: 0,
            over: None,
        }
    }

    /// Takes `len` bytes for the text at `path`; false (and the error
    /// kept) if that is past the limit.
    fn take(&mut self, len: u64, path: &str) -> bool {
        if self.over.is_some() {
            return false;
        }
        self.used = self.used.saturating_add(len);
        if self.used > self.max {
            self.over = Some(too_large(
                path,
                &format!("the context of this atlas is more than {} bytes", self.max),
                "max_context_bytes",
                self.max,
            ));
            return false;
        }
        true
    }
}

pub fn build_packs(
    v: Option<&Value>,
    base_dir: Option<&Path>,
    budget: &mut ContextBudget,
    f: &mut Faults,
) -> Vec<ContextPack> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (path, m) in items(v, "/context_packs", f) {
        check_keys(m, PACK_KEYS, Place::Pack, &path, f);
        let id = f.req_str(m, "pack_id", &path).unwrap_or_default();
        check_id(
            id,
            &at(&path, "pack_id"),
            &mut seen,
            is_plain_id,
            "context pack",
            f,
        );
        let name = f.opt_str(m, "name", &path).unwrap_or(id);
        let priority = f.opt_int(m, "priority", &path, 0, 1000).unwrap_or(0);
        let content_type = f.opt_str(m, "content_type", &path);
        let files = f.opt_str_list(m, "files", &path);
        let content = f.opt_str(m, "content", &path);
        let mut blocks = Vec::new();
        match (files, content) {
            (Some(_), Some(_)) => f.add(
                path.clone(),
                "a context pack has files or content, not both",
            ),
            (None, None) => f.add(path.clone(), "a context pack needs files or content"),
            (None, Some(text)) => {
                if budget.take(text.len() as u64, &at(&path, "content")) {
                    blocks.push(block(
                        id.to_string(),
                        content_type.unwrap_or("text/markdown"),
                        text,
                    ));
                }
            }
            (Some(list), None) => {
                let base = at(&path, "files");
                for (i, file) in list.iter().enumerate() {
                    let at_file = at_index(&base, i);
                    if let Some(text) = read_context_file(file, base_dir, &at_file, budget, f) {
                        let ct = content_type.unwrap_or_else(|| content_type_of(file));
                        blocks.push(block(format!("{id}/{file}"), ct, &text));
                    }
                }
            }
        }
        let (keywords, risk_tiers, capabilities) =
            pack_conditions(m.get("conditions"), &at(&path, "conditions"), f);
        out.push(ContextPack {
            pack_id: Arc::from(id),
            name: Arc::from(name),
            priority,
            blocks,
            keywords,
            risk_tiers,
            capabilities,
        });
    }
    out
}

fn block(block_id: String, content_type: &str, content: &str) -> Block {
    Block {
        block_id: Arc::from(block_id),
        content_type: Arc::from(content_type),
        token_estimate: content.len().div_ceil(4) as u64,
        content: Arc::from(content),
    }
}

fn content_type_of(file: &str) -> &'static str {
    if file.ends_with(".json") {
        "application/json"
    } else if file.ends_with(".md") || file.ends_with(".markdown") {
        "text/markdown"
    } else {
        "text/plain"
    }
}

/// Reads a context file that must exist inside the atlas directory.
fn read_context_file(
    file: &str,
    base_dir: Option<&Path>,
    path: &str,
    budget: &mut ContextBudget,
    f: &mut Faults,
) -> Option<String> {
    let Some(base) = base_dir else {
        f.add(
            path,
            format!(
                "context file {file:?} cannot be read: this atlas was loaded without a directory"
            ),
        );
        return None;
    };
    let rel = Path::new(file);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        f.add(
            path,
            format!("context file {file:?} escapes the atlas directory"),
        );
        return None;
    }
    let full = base.join(rel);
    let (Ok(real), Ok(root)) = (full.canonicalize(), base.canonicalize()) else {
        f.add(path, format!("context file {file:?} is missing"));
        return None;
    };
    if !real.starts_with(&root) {
        f.add(
            path,
            format!("context file {file:?} escapes the atlas directory"),
        );
        return None;
    }
    // The size on disk is taken before the file is read.
    let len = std::fs::metadata(&real).map(|m| m.len()).unwrap_or(0);
    if !budget.take(len, path) {
        return None;
    }
    match std::fs::read_to_string(&real) {
        Ok(text) => Some(text),
        Err(e) => {
            f.add(path, format!("context file {file:?} cannot be read: {e}"));
            None
        }
    }
}

type PackConditions = (Option<Vec<Finder<'static>>>, u8, Option<Vec<String>>);

fn pack_conditions(v: Option<&Value>, path: &str, f: &mut Faults) -> PackConditions {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return (None, 0, None);
    };
    let Some(m) = f.object(v, path) else {
        return (None, 0, None);
    };
    check_keys(m, PACK_CONDITION_KEYS, Place::PackConditions, path, f);
    let keywords = f.opt_str_list(m, "keywords", path).map(|l| {
        l.into_iter()
            .map(|w| Finder::new(&w.to_lowercase()).into_owned())
            .collect()
    });
    let risk = tiers(
        f.opt_str_list(m, "risk_tiers", path),
        &at(path, "risk_tiers"),
        f,
    );
    let caps = f
        .opt_str_list(m, "capabilities", path)
        .map(|l| l.into_iter().map(str::to_string).collect());
    (keywords, risk, caps)
}
