//! Reading an atlas from disk: one manifest file, or a directory with
//! `atlas.json` (or `atlas.yaml`/`atlas.yml`), `context/`,
//! `policies/*.json` and `actions/*.json` (or `.yaml`/`.yml`). A fault in
//! a YAML file names the file and the line as well as the JSON pointer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::atlas::limits::{too_large, AtlasLimits, JSON_DEPTH_CEILING};
use crate::atlas::model::Atlas;
use crate::atlas::text_depth::{self, Base};
use crate::atlas::yaml::{is_yaml_name, lines_of, parse_yaml, place};
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

/// A YAML file of the atlas, kept to find the line of a fault.
struct YamlFile {
    shown: String,
    text: String,
    /// For a part file: `policies` or `actions`, and the items of the
    /// merged list it holds.
    part: Option<(&'static str, std::ops::Range<usize>)>,
}

/// What was read from disk: the (merged) manifest, the directory its
/// context files are relative to, and its YAML files.
pub struct Source {
    pub manifest: Value,
    pub base: PathBuf,
    yaml: Vec<YamlFile>,
}

impl Source {
    /// Were any of the files YAML?
    pub fn has_yaml(&self) -> bool {
        !self.yaml.is_empty()
    }

    /// `e` with each fault in a YAML file named by file and line as well
    /// (`atlas.yaml, line 12, at /actions/1/risk_tier: ...`).
    pub fn locate(&self, e: CoreError) -> CoreError {
        if self.yaml.is_empty() {
            return e;
        }
        match e {
            CoreError::AtlasInvalid(mut faults) => {
                let pointers: Vec<String> = faults.iter().map(|f| f.path.clone()).collect();
                for (f, prefix) in faults.iter_mut().zip(self.places(&pointers)) {
                    if let Some(prefix) = prefix {
                        f.message = format!("{prefix}: {}", f.message);
                    }
                }
                CoreError::AtlasInvalid(faults)
            }
            CoreError::InvalidValue {
                code,
                path,
                message,
            } => {
                let message = match self.places(std::slice::from_ref(&path)).pop().flatten() {
                    Some(prefix) => format!("{prefix}: {message}"),
                    None => message,
                };
                CoreError::InvalidValue {
                    code,
                    path,
                    message,
                }
            }
            e => e,
        }
    }

    /// For each pointer of the merged manifest, its file and line if it is
    /// in a YAML file.
    fn places(&self, pointers: &[String]) -> Vec<Option<String>> {
        let mut out = vec![None; pointers.len()];
        for (k, file) in self.yaml.iter().enumerate() {
            let mine: Vec<usize> = (0..pointers.len())
                .filter(|&i| self.file_of(&pointers[i]) == Some(k))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let (pointer, first_index) = match &file.part {
                Some((part, range)) => (format!("/{part}"), range.start),
                None => (String::new(), 0),
            };
            let base = Base {
                pointer: &pointer,
                first_index,
            };
            let wanted: Vec<String> = mine.iter().map(|&i| pointers[i].clone()).collect();
            for (&i, line) in mine.iter().zip(lines_of(&file.text, &base, &wanted)) {
                out[i] = Some(place(&file.shown, line.unwrap_or(1), &pointers[i]));
            }
        }
        out
    }

    /// The YAML file (its index) that holds `pointer`, if any.
    fn file_of(&self, pointer: &str) -> Option<usize> {
        let mut segments = pointer.split('/').skip(1);
        let (part, index) = (segments.next(), segments.next());
        if let (Some(part), Some(Ok(i))) = (part, index.map(str::parse::<usize>)) {
            let inside = self.yaml.iter().position(|f| {
                f.part
                    .as_ref()
                    .is_some_and(|(p, range)| *p == part && range.contains(&i))
            });
            if inside.is_some() {
                return inside;
            }
        }
        self.yaml.iter().position(|f| f.part.is_none())
    }
}

/// Loads an atlas from a manifest file or an atlas directory.
pub fn load_path(path: &Path, limits: &AtlasLimits) -> Result<Atlas> {
    let mut source = read_source(path, limits)?;
    let manifest = Arc::new(std::mem::take(&mut source.manifest));
    Atlas::build_with(manifest, Some(&source.base), limits).map_err(|e| source.locate(e))
}

/// Reads a manifest file or an atlas directory, keeping its YAML files'
/// text to name the line of a fault ([`Source::locate`]).
pub fn read_source(path: &Path, limits: &AtlasLimits) -> Result<Source> {
    if path.is_dir() {
        read_dir(path, limits)
    } else if path.exists() {
        let shown = path.display().to_string();
        let text = read(path, limits)?;
        let mut yaml = Vec::new();
        let manifest = parse(text, &shown, &Base::ROOT, limits, &mut 0, None, &mut yaml)?;
        Ok(Source {
            manifest,
            base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            yaml,
        })
    } else {
        Err(CoreError::io(path.display(), "no such file or directory"))
    }
}

/// Parses one file, JSON or YAML by its name; a YAML file's text is kept.
fn parse(
    text: Vec<u8>,
    shown: &str,
    base: &Base<'_>,
    limits: &AtlasLimits,
    used: &mut u64,
    part: Option<&'static str>,
    yaml: &mut Vec<YamlFile>,
) -> Result<Value> {
    if !is_yaml_name(shown) {
        return parse_json(&text, shown, base, limits);
    }
    let value = parse_yaml(&text, shown, base, limits, used)?;
    let items = match &value {
        Value::Array(items) => items.len(),
        _ => 0,
    };
    yaml.push(YamlFile {
        shown: shown.to_string(),
        text: String::from_utf8(text).unwrap_or_default(),
        part: part.map(|p| (p, base.first_index..base.first_index + items)),
    });
    Ok(value)
}

/// The manifest file of an atlas directory: exactly one of `atlas.json`,
/// `atlas.yaml` and `atlas.yml`.
fn main_file(dir: &Path) -> Result<PathBuf> {
    let found: Vec<PathBuf> = ["atlas.json", "atlas.yaml", "atlas.yml"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|p| p.is_file())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(invalid(
            "",
            format!("{} has no atlas.json (nor atlas.yaml)", dir.display()),
        )),
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|p| {
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            Err(invalid(
                "",
                format!(
                    "{} has both {}: which one is the manifest is ambiguous, keep one",
                    dir.display(),
                    names.join(" and ")
                ),
            ))
        }
    }
}

fn read_dir(dir: &Path, limits: &AtlasLimits) -> Result<Source> {
    let main = main_file(dir)?;
    let main_shown = main.display().to_string();
    let text = read(&main, limits)?;
    // The files together are held to `max_manifest_bytes` as well.
    let mut total = text.len() as u64;
    // And what YAML files build, aliases expanded.
    let mut used = 0;
    let mut yaml = Vec::new();
    let mut manifest = parse(
        text,
        &main_shown,
        &Base::ROOT,
        limits,
        &mut used,
        None,
        &mut yaml,
    )?;
    for part in ["policies", "actions"] {
        for file in part_files(&dir.join(part))? {
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
            let value = parse(
                text,
                &shown,
                &base,
                limits,
                &mut used,
                Some(part),
                &mut yaml,
            )?;
            let Value::Array(items) = value else {
                let what = if is_yaml_name(&shown) {
                    "a YAML sequence (a list)"
                } else {
                    "a JSON array"
                };
                return Err(invalid(pointer, format!("{shown} must hold {what}")));
            };
            merge(&mut manifest, part, items, &main_shown)?;
        }
    }
    Ok(Source {
        manifest,
        base: dir.to_path_buf(),
        yaml,
    })
}

/// `*.json`, `*.yaml` and `*.yml` files of a directory in name order (none
/// if it does not exist).
fn part_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| CoreError::io(dir.display(), e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "json" || x == "yaml" || x == "yml")
        })
        .collect();
    files.sort();
    Ok(files)
}

fn merge(manifest: &mut Value, key: &str, items: Vec<Value>, main: &str) -> Result<()> {
    let Value::Object(m) = manifest else {
        let name = Path::new(main)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "atlas.json".into());
        return Err(invalid("", format!("{name} must hold a JSON object")));
    };
    match m.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(list) => {
            list.extend(items);
            Ok(())
        }
        _ => Err(invalid(format!("/{key}"), "must be an array")),
    }
}
