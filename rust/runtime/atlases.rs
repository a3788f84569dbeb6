//! Atlases on the runtime: loading one (from a path or a parsed
//! manifest, with every fault reported at once), unloading, and reading
//! the loaded set.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::atlas::limits::AtlasLimits;
use crate::atlas::load::read_source;
use crate::atlas::model::Atlas;
use crate::atlas::registry::{Claims, Snapshot};
use crate::error::{CoreError, Result};
use crate::runtime::state::Runtime;

impl Runtime {
    /// Loads an atlas from a manifest file or directory (JSON or YAML;
    /// a fault in a YAML file names its file and line as well).
    pub fn load_atlas_path(&self, path: &Path, replace: bool) -> Result<Arc<Atlas>> {
        let mut source = read_source(path, &self.registry.limits())?;
        let manifest = std::mem::take(&mut source.manifest);
        self.build_and_load(manifest, Some(&source.base), replace)
            .map_err(|e| source.locate(e))
    }

    /// The limits atlases are loaded and resolves made under.
    pub fn atlas_limits(&self) -> AtlasLimits {
        self.registry.limits()
    }

    /// Changes the atlas limits (atlases loaded already stay loaded).
    pub fn set_atlas_limits(&self, limits: AtlasLimits) {
        self.registry.set_limits(limits);
    }

    /// Builds an atlas; if its manifest has faults, adds those it has
    /// against the loaded atlases too, so every fault is reported at once.
    fn build_and_load(
        &self,
        manifest: Value,
        base_dir: Option<&Path>,
        replace: bool,
    ) -> Result<Arc<Atlas>> {
        let manifest = Arc::new(manifest);
        let limits = self.registry.limits();
        match Atlas::build_with(Arc::clone(&manifest), base_dir, &limits) {
            Ok(atlas) => self.registry.load(atlas, replace),
            Err(CoreError::AtlasInvalid(mut faults)) => {
                for f in self.registry.claim_faults(&Claims::of(&manifest)) {
                    if !faults.contains(&f) {
                        faults.push(f);
                    }
                }
                Err(CoreError::AtlasInvalid(faults))
            }
            Err(e) => Err(e),
        }
    }

    /// Loads an atlas given as a parsed manifest (files relative to `base_dir`).
    pub fn load_atlas_value(
        &self,
        manifest: Value,
        base_dir: Option<&Path>,
        replace: bool,
    ) -> Result<Arc<Atlas>> {
        self.build_and_load(manifest, base_dir, replace)
    }

    pub fn unload_atlas(&self, atlas_id: &str) -> Result<Arc<Atlas>> {
        self.registry.unload(atlas_id)
    }

    /// The loaded atlases as one compiled snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.registry.snapshot()
    }

    pub fn atlases(&self) -> Vec<Arc<Atlas>> {
        self.registry.snapshot().atlases.clone()
    }

    pub fn atlas(&self, atlas_id: &str) -> Result<Arc<Atlas>> {
        self.registry
            .snapshot()
            .get(atlas_id)
            .cloned()
            .ok_or_else(|| CoreError::AtlasNotFound(atlas_id.to_string(), None))
    }
}
