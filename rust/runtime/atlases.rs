//! Atlases on the runtime: loading one (from a path or a parsed
//! manifest, with every fault reported at once), unloading, and reading
//! the loaded set.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::atlas::load::read_manifest;
use crate::atlas::model::Atlas;
use crate::atlas::registry::{Claims, Snapshot};
use crate::error::{CoreError, Result};
use crate::runtime::state::Runtime;

impl Runtime {
    /// Loads an atlas from a manifest file or directory.
    pub fn load_atlas_path(&self, path: &Path, replace: bool) -> Result<Arc<Atlas>> {
        let (manifest, base) = read_manifest(path)?;
        self.build_and_load(manifest, Some(&base), replace)
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
        match Atlas::build(Arc::clone(&manifest), base_dir) {
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
