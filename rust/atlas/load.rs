//! Reading an atlas from disk: one manifest file, or a directory with
//! `atlas.json`, `context/`, `policies/*.json` and `actions/*.json`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::atlas::model::Atlas;
use crate::error::{CoreError, Fault, Result};

/// Largest manifest (or merged part) read from disk.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

fn invalid(path: impl Into<String>, message: impl Into<String>) -> CoreError {
    CoreError::AtlasInvalid(vec![Fault::new(path, message)])
}

/// Parses JSON text, naming the file and position on failure.
pub fn parse_json(text: &[u8], file: &str) -> Result<Value> {
    serde_json::from_slice(text).map_err(|e| invalid("", format!("{file} is not valid JSON: {e}")))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| CoreError::io(path.display(), e))?;
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(invalid(
            "",
            format!(
                "{} is larger than {MAX_MANIFEST_BYTES} bytes",
                path.display()
            ),
        ));
    }
    std::fs::read(path).map_err(|e| CoreError::io(path.display(), e))
}

/// Loads an atlas from a manifest file or an atlas directory.
pub fn load_path(path: &Path) -> Result<Atlas> {
    let (manifest, base) = read_manifest(path)?;
    Atlas::build(std::sync::Arc::new(manifest), Some(&base))
}

/// Reads the (merged) manifest of a manifest file or an atlas directory,
/// and the directory its context files are relative to.
pub fn read_manifest(path: &Path) -> Result<(Value, PathBuf)> {
    if path.is_dir() {
        Ok((read_dir_manifest(path)?, path.to_path_buf()))
    } else if path.exists() {
        let manifest = parse_json(&read(path)?, &path.display().to_string())?;
        Ok((
            manifest,
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        ))
    } else {
        Err(CoreError::io(path.display(), "no such file or directory"))
    }
}

fn read_dir_manifest(dir: &Path) -> Result<Value> {
    let main = dir.join("atlas.json");
    if !main.is_file() {
        return Err(invalid("", format!("{} has no atlas.json", dir.display())));
    }
    let mut manifest = parse_json(&read(&main)?, &main.display().to_string())?;
    for part in ["policies", "actions"] {
        for file in json_files(&dir.join(part))? {
            let shown = format!(
                "{part}/{}",
                file.file_name().unwrap_or_default().to_string_lossy()
            );
            let Value::Array(items) = parse_json(&read(&file)?, &shown)? else {
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
