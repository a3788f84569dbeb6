//! Reading an atlas from disk: one manifest file, or a directory with
//! `atlas.json`, `context/`, `policies/*.json` and `actions/*.json`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::atlas::limits::{too_large, AtlasLimits, JSON_DEPTH_CEILING};
use crate::atlas::model::Atlas;
use crate::atlas::text_depth::{self, Base};
use crate::error::{CoreError, Fault, Result};

fn invalid(path: impl Into<String>, message: impl Into<String>) -> CoreError {
    CoreError::AtlasInvalid(vec![Fault::new(path, message)])
}

/// Parses JSON text, naming the file and position on failure. Text nested
/// past what the parser reads (128 levels) is `ATLAS_TOO_LARGE`; the
/// limits are checked on the parsed value (`AtlasLimits::check_manifest`).
pub fn parse_json(text: &[u8], file: &str, base: &Base<'_>, limits: &AtlasLimits) -> Result<Value> {
    serde_json::from_slice(text).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            // Named at its place when the scan finds it (it does, unless
            // the limits are above what the parser reads).
            text_depth::too_deep_in(text, base, limits).unwrap_or_else(|| {
                too_large(
                    "",
                    &format!("{file} is nested deeper than {JSON_DEPTH_CEILING} levels ({e})"),
                    "max_json_depth",
                    JSON_DEPTH_CEILING,
                )
            })
        } else {
            invalid("", format!("{file} is not valid JSON: {e}"))
        }
    })
}

fn read(path: &Path, limits: &AtlasLimits) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| CoreError::io(path.display(), e))?;
    limits.check_file_size(&path.display().to_string(), meta.len())?;
    std::fs::read(path).map_err(|e| CoreError::io(path.display(), e))
}

/// Loads an atlas from a manifest file or an atlas directory.
pub fn load_path(path: &Path, limits: &AtlasLimits) -> Result<Atlas> {
    let (manifest, base) = read_manifest(path, limits)?;
    Atlas::build_with(std::sync::Arc::new(manifest), Some(&base), limits)
}

/// Reads the (merged) manifest of a manifest file or an atlas directory,
/// and the directory its context files are relative to. Each file is
/// checked against `max_manifest_bytes` before it is read; the merged
/// manifest is checked against every limit by `Atlas::build_with`.
pub fn read_manifest(path: &Path, limits: &AtlasLimits) -> Result<(Value, PathBuf)> {
    if path.is_dir() {
        Ok((read_dir_manifest(path, limits)?, path.to_path_buf()))
    } else if path.exists() {
        let manifest = parse_json(
            &read(path, limits)?,
            &path.display().to_string(),
            &Base::ROOT,
            limits,
        )?;
        Ok((
            manifest,
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        ))
    } else {
        Err(CoreError::io(path.display(), "no such file or directory"))
    }
}

fn read_dir_manifest(dir: &Path, limits: &AtlasLimits) -> Result<Value> {
    let main = dir.join("atlas.json");
    if !main.is_file() {
        return Err(invalid("", format!("{} has no atlas.json", dir.display())));
    }
    let text = read(&main, limits)?;
    // The files together are held to `max_manifest_bytes` as well.
    let mut total = text.len() as u64;
    let mut manifest = parse_json(&text, &main.display().to_string(), &Base::ROOT, limits)?;
    drop(text);
    for part in ["policies", "actions"] {
        for file in json_files(&dir.join(part))? {
            let shown = format!(
                "{part}/{}",
                file.file_name().unwrap_or_default().to_string_lossy()
            );
            let text = read(&file, limits)?;
            total += text.len() as u64;
            limits.check_file_size(&format!("{} with its part files", dir.display()), total)?;
            let pointer = format!("/{part}");
            let first_index = match manifest.get(part) {
                Some(Value::Array(list)) => list.len(),
                _ => 0,
            };
            let base = Base {
                pointer: &pointer,
                first_index,
            };
            let Value::Array(items) = parse_json(&text, &shown, &base, limits)? else {
                return Err(invalid(
                    format!("/{part}"),
                    format!("{shown} must hold a JSON array"),
                ));
            };
            merge(&mut manifest, part, items)?;
        }
    }
    Ok(manifest)
}

/// `*.json` files of a directory in name order (none if it does not exist).
fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| CoreError::io(dir.display(), e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

fn merge(manifest: &mut Value, key: &str, items: Vec<Value>) -> Result<()> {
    let Value::Object(m) = manifest else {
        return Err(invalid("", "atlas.json must hold a JSON object"));
    };
    match m.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(list) => {
            list.extend(items);
            Ok(())
        }
        _ => Err(invalid(format!("/{key}"), "must be an array")),
    }
}
