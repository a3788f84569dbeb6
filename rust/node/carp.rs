//! Atlases, resolve and approvals on `NativeRuntime`. Requests and
//! manifests come as JSON text; answers go back as JSON text.

use std::path::{Path, PathBuf};

use napi_derive::napi;
use serde_json::Value;

use crate::carp::approvals::GrantScope;
use crate::runtime::state::Direct;

use super::errors::{invalid, IntoJsResult};
use super::reports;
use super::resolution::{NativePrepared, NativeResolution};
use super::runtime::{durable, uuid, NativeRuntime};

/// A JSON document given by the JS side.
pub(super) fn parse(text: &str, code: &'static str) -> napi::Result<Value> {
    serde_json::from_str(text).map_err(|e| invalid(code, "", format!("not JSON: {e}")))
}

#[napi]
impl NativeRuntime {
    /// Loads an atlas from a path (manifest file or directory); its summary as JSON text.
    #[napi]
    pub fn load_atlas_path(&self, path: String, replace: Option<bool>) -> napi::Result<String> {
        let atlas = self
            .rt
            .load_atlas_path(Path::new(&path), replace.unwrap_or(false))
            .js()?;
        Ok(reports::atlas(&atlas).to_string())
    }

    /// Loads an atlas from its manifest as JSON text; files it names are
    /// read below `base_dir`.
    #[napi]
    pub fn load_atlas_manifest(
        &self,
        manifest: String,
        replace: Option<bool>,
        base_dir: Option<String>,
    ) -> napi::Result<String> {
        let v = parse(&manifest, "ATLAS_INVALID")?;
        let base = base_dir.map(PathBuf::from);
        let atlas = self
            .rt
            .load_atlas_value(v, base.as_deref(), replace.unwrap_or(false))
            .js()?;
        Ok(reports::atlas(&atlas).to_string())
    }

    #[napi]
    pub fn unload_atlas(&self, atlas_id: String) -> napi::Result<()> {
        self.rt.unload_atlas(&atlas_id).map(|_| ()).js()
    }

    /// The loaded atlases' summaries as a JSON array text.
    #[napi]
    pub fn atlases(&self) -> String {
        let list: Vec<Value> = self
            .rt
            .atlases()
            .iter()
            .map(|a| reports::atlas(a))
            .collect();
        Value::Array(list).to_string()
    }

    /// Resolves a CARP request (JSON text) into a resolution handle.
    #[napi]
    pub fn resolve(&self, request: String) -> napi::Result<NativeResolution> {
        durable(&self.rt, || {
            let v = match serde_json::from_str::<Value>(&request) {
                Ok(v) => v,
                Err(e) => {
                    let e = crate::error::CoreError::invalid(
                        "INVALID_REQUEST",
                        "",
                        format!("not JSON: {e}"),
                    );
                    return Err(e).js();
                }
            };
            self.rt
                .resolve_value(&v, &Direct)
                .map(NativeResolution)
                .js()
        })
    }

    /// Validates a request (CARP §6, JSON text): `{valid, errors: [{path, message}]}` as JSON text.
    #[napi]
    pub fn validate(&self, request: String) -> napi::Result<String> {
        let report = match serde_json::from_str::<Value>(&request) {
            Ok(v) => durable(&self.rt, || Ok(self.rt.validate_value(&v, &Direct)))?,
            Err(e) => crate::runtime::validate::ValidationReport {
                valid: false,
                errors: vec![crate::error::Fault::new("", format!("not JSON: {e}"))],
            },
        };
        let errors: Vec<Value> = report
            .errors
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "message": f.message}))
            .collect();
        Ok(serde_json::json!({"valid": report.valid, "errors": errors}).to_string())
    }

    /// A resolver bound to one session (see `NativePrepared`).
    #[napi]
    pub fn prepare(&self, session_id: String) -> napi::Result<NativePrepared> {
        let id = uuid(&session_id, "/session_id")?;
        Ok(NativePrepared {
            rt: std::sync::Arc::clone(&self.rt),
            session: self.rt.session(&id).js()?,
        })
    }

    /// Grants an approval; the decision as JSON text.
    #[napi]
    pub fn approve(
        &self,
        approval_id: String,
        approver: String,
        note: Option<String>,
        action_id: Option<String>,
        parameters_hash: Option<String>,
        scope: Option<String>,
    ) -> napi::Result<String> {
        let id = uuid(&approval_id, "/approval_id")?;
        let scope = GrantScope::parse(scope.as_deref().unwrap_or("once")).js()?;
        let d = durable(&self.rt, || {
            self.rt
                .approve(
                    &id,
                    &approver,
                    note.as_deref(),
                    action_id.as_deref(),
                    parameters_hash.as_deref(),
                    scope,
                    &Direct,
                )
                .js()
        })?;
        Ok(reports::decision(&d).to_string())
    }

    /// Rejects an approval; the decision as JSON text.
    #[napi]
    pub fn reject(
        &self,
        approval_id: String,
        approver: String,
        note: Option<String>,
    ) -> napi::Result<String> {
        let id = uuid(&approval_id, "/approval_id")?;
        let d = durable(&self.rt, || {
            self.rt
                .reject(&id, &approver, note.as_deref(), &Direct)
                .js()
        })?;
        Ok(reports::decision(&d).to_string())
    }

    /// Executions waiting for a human, oldest first, as a JSON array text.
    #[napi]
    pub fn pending_approvals(&self, session_id: Option<String>) -> napi::Result<String> {
        let id = session_id.map(|s| uuid(&s, "/session_id")).transpose()?;
        let list: Vec<Value> = self
            .rt
            .pending_approvals(id.as_ref())
            .js()?
            .iter()
            .map(reports::pending)
            .collect();
        Ok(Value::Array(list).to_string())
    }
}
