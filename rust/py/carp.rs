//! Atlases and resolve on `cra._core.Runtime`, and the prepared fast path.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString};

use crate::atlas::model::Atlas;
use crate::carp::request::{parse_request, CarpRequest, Operation};
use crate::error::CoreError;
use crate::ids::{new_v7, parse_uuid};
use crate::runtime::session::Session;
use crate::runtime::state::Runtime as CoreRuntime;

use super::errors::{to_py, IntoPyResult};
use super::request_view::parse_direct;
use super::resolution::Resolution;
use super::runtime::{durable, Detached, Runtime};
use super::utf8;
use super::value::{atlas_to_value, to_value};

fn atlas_info<'py>(py: Python<'py>, a: &Atlas) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("atlas_id", &*a.atlas_id)?;
    d.set_item("version", a.version.to_string())?;
    d.set_item("name", &a.name)?;
    d.set_item("description", &a.description)?;
    d.set_item(
        "actions",
        a.actions
            .iter()
            .map(|x| x.action_id.to_string())
            .collect::<Vec<_>>(),
    )?;
    d.set_item(
        "policies",
        a.policies
            .iter()
            .map(|x| x.policy_id.to_string())
            .collect::<Vec<_>>(),
    )?;
    d.set_item(
        "capabilities",
        a.capabilities
            .iter()
            .map(|x| x.capability_id.to_string())
            .collect::<Vec<_>>(),
    )?;
    d.set_item(
        "context_packs",
        a.packs
            .iter()
            .map(|x| x.pack_id.to_string())
            .collect::<Vec<_>>(),
    )?;
    d.set_item("default_ttl_seconds", a.default_ttl_seconds)?;
    let deps = PyDict::new(py);
    for (id, req) in &a.dependencies {
        deps.set_item(id, req.to_string())?;
    }
    d.set_item("dependencies", deps)?;
    Ok(d)
}

/// Parses and checks a CARP request given as a dict.
fn parse_dict(obj: &Bound<'_, PyAny>) -> Result<CarpRequest, CoreError> {
    if let Some(req) = parse_direct(obj) {
        return Ok(req);
    }
    let v = to_value(obj, "INVALID_REQUEST")?;
    parse_request(&v)
}

/// `request["requester"]["session_id"]` of a Python request, if it is a UUID.
pub(super) fn session_hint_py(request: &Bound<'_, PyAny>) -> Option<uuid::Uuid> {
    let requester = request
        .cast::<PyDict>()
        .ok()?
        .get_item("requester")
        .ok()??;
    let sid = requester
        .cast::<PyDict>()
        .ok()?
        .get_item("session_id")
        .ok()??;
    let text = utf8::text(sid.cast::<PyString>().ok()?).ok()?;
    uuid::Uuid::try_parse(&text).ok()
}

#[pymethods]
impl Runtime {
    /// Loads an atlas from a path (manifest or directory) or a dict.
    #[pyo3(signature = (source, replace=false, base_dir=None))]
    fn load_atlas<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'py, PyAny>,
        replace: bool,
        base_dir: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let rt = &self.0;
        let atlas = if source.is_instance_of::<PyDict>() {
            let manifest = atlas_to_value(source, &rt.atlas_limits()).py()?;
            py.detach(|| rt.load_atlas_value(manifest, base_dir.as_deref(), replace))
                .py()?
        } else {
            let path: PathBuf = source.extract()?;
            py.detach(|| rt.load_atlas_path(&path, replace)).py()?
        };
        atlas_info(py, &atlas)
    }

    /// The atlas limits, `{name: value}` in their documented order.
    fn atlas_limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, value) in self.0.atlas_limits().pairs() {
            d.set_item(name, value)?;
        }
        Ok(d)
    }

    /// Changes some atlas limits (`{name: int}`); the others keep their
    /// values. All or nothing: an unknown name (told the closest known
    /// one) or a value that is not an integer >= 1 changes none.
    fn set_atlas_limits(&self, limits: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut next = self.0.atlas_limits();
        for (k, v) in limits.iter() {
            let name: String = k.extract().map_err(|_| {
                to_py(CoreError::invalid(
                    "INVALID_OPTION",
                    "/atlas_limits",
                    "atlas limit names must be strings",
                ))
            })?;
            let value = if v.is_instance_of::<PyBool>() {
                None
            } else {
                v.extract::<u64>().ok()
            };
            let Some(value) = value else {
                return Err(to_py(CoreError::invalid(
                    "INVALID_OPTION",
                    crate::json::fields::at("/atlas_limits", &name),
                    format!("{name} must be an integer >= 1"),
                )));
            };
            next.set(&name, value).py()?;
        }
        self.0.set_atlas_limits(next);
        Ok(())
    }

    fn unload_atlas(&self, atlas_id: &str) -> PyResult<()> {
        self.0.unload_atlas(atlas_id).map(|_| ()).py()
    }

    fn atlases<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.0.atlases().iter().map(|a| atlas_info(py, a)).collect()
    }

    fn atlas_info<'py>(&self, py: Python<'py>, atlas_id: &str) -> PyResult<Bound<'py, PyDict>> {
        atlas_info(py, &*self.0.atlas(atlas_id).py()?)
    }

    /// Every loaded action as `(action_id, executor name or None)`, in
    /// load order (for executor registration checks).
    fn action_executors(&self) -> Vec<(String, Option<String>)> {
        self.0
            .atlases()
            .iter()
            .flat_map(|a| a.actions.iter())
            .map(|x| {
                (
                    x.action_id.to_string(),
                    x.executor.as_deref().map(str::to_owned),
                )
            })
            .collect()
    }

    /// The merged manifest of a loaded atlas, as JSON text.
    fn atlas_manifest(&self, atlas_id: &str) -> PyResult<String> {
        Ok(self.0.atlas(atlas_id).py()?.manifest.to_string())
    }

    /// Resolves a CARP request (a dict) into a resolution.
    pub(super) fn resolve(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
    ) -> PyResult<Resolution> {
        self.durable(py, || self.resolve_now(py, request))
    }

    /// A resolver bound to one session, for agents that resolve in a loop.
    fn prepare(&self, session_id: &str) -> PyResult<PreparedResolver> {
        let id = parse_uuid(session_id, "/session_id").py()?;
        let session = self.0.session(&id).py()?;
        Ok(PreparedResolver {
            rt: Arc::clone(&self.0),
            session,
        })
    }
}

/// The request's faults as `(path, message)` pairs; empty when valid.
#[pyfunction]
pub fn check_request(request: &Bound<'_, PyAny>) -> Vec<(String, String)> {
    match parse_dict(request) {
        Ok(_) => Vec::new(),
        Err(e) => e.fault_pairs(),
    }
}

#[pyclass(frozen, module = "cra._core", name = "PreparedResolver")]
pub struct PreparedResolver {
    rt: Arc<CoreRuntime>,
    session: Arc<Session>,
}

fn strings(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_instance_of::<PyString>() => Err(to_py(CoreError::invalid(
            "INVALID_REQUEST",
            "",
            "expected a list of strings, not a string",
        ))),
        Some(v) => Ok(Some(v.extract()?)),
    }
}

#[pymethods]
impl PreparedResolver {
    #[getter]
    fn session_id(&self) -> String {
        self.session.session_id.to_string()
    }

    /// Resolves a goal for this session's agent with the least per-call work.
    #[pyo3(signature = (goal, risk_tier=None, atlas_ids=None, required_capabilities=None, context_hints=None))]
    fn resolve(
        &self,
        py: Python<'_>,
        goal: &str,
        risk_tier: Option<&str>,
        atlas_ids: Option<&Bound<'_, PyAny>>,
        required_capabilities: Option<&Bound<'_, PyAny>>,
        context_hints: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Resolution> {
        let now = self.rt.now();
        let req = CarpRequest::for_resolve(
            new_v7(now),
            now,
            self.session.session_id,
            &self.session.agent_id,
            goal,
            risk_tier,
            strings(atlas_ids)?,
            strings(required_capabilities)?,
            strings(context_hints)?,
        )
        .py()?;
        debug_assert_eq!(req.operation, Operation::Resolve);
        durable(&self.rt, py, || {
            self.rt
                .resolve_request(&req, &Detached(py))
                .map(Resolution)
                .py()
        })
    }
}

impl Runtime {
    /// `resolve` without the durability wait.
    fn resolve_now(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Resolution> {
        let wait = Detached(py);
        if let Some(req) = parse_direct(request) {
            return self.0.resolve_parsed(&req, &wait).map(Resolution).py();
        }
        let v = match to_value(request, "INVALID_REQUEST") {
            Ok(v) => v,
            // Not JSON at all (NaN, too deep, ...): still an `error.occurred`
            // in the request's session when it names an open one.
            Err(e) => {
                return self
                    .0
                    .with_error_event(session_hint_py(request), &wait, || Err(e))
                    .map(Resolution)
                    .py()
            }
        };
        self.0.resolve_value(&v, &wait).map(Resolution).py()
    }
}
