//! PyO3 glue: the private extension module `cra._core`. Only conversion and
//! GIL handling live here; every rule lives in the plain-Rust core.

mod analysis;
mod approve;
mod cache;
mod carp;
mod commits;
mod convert;
mod errors;
mod event;
mod execute;
mod front;
mod governed;
mod keys;
mod native;
mod options;
mod patterns;
#[cfg(feature = "postgres")]
mod postgres;
mod proofs;
mod request_view;
mod resolution;
mod rows;
mod runtime;
#[cfg(feature = "postgres")]
mod shared;
mod sink;
mod sqlite;
mod started;
mod timing;
mod utf8;
mod validate;
mod value;
mod verify;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<event::Event>()?;
    m.add_class::<runtime::Runtime>()?;
    m.add_class::<verify::ChainReport>()?;
    m.add_class::<verify::FileReport>()?;
    m.add_class::<resolution::Resolution>()?;
    m.add_class::<carp::PreparedResolver>()?;
    m.add_class::<front::Front>()?;
    m.add_class::<governed::Governed>()?;
    m.add_class::<started::Started>()?;
    m.add_class::<execute::ExecuteResponse>()?;
    m.add_class::<timing::ManualClock>()?;
    m.add_class::<sqlite::SQLiteDatabase>()?;
    m.add_class::<sqlite::SQLiteSink>()?;
    m.add_class::<sink::SinkGate>()?;
    #[cfg(feature = "postgres")]
    {
        m.add_class::<postgres::PostgresDatabase>()?;
        m.add_class::<postgres::PostgresSink>()?;
    }
    m.add("SQLITE_SESSION_COLUMNS", sqlite::session_columns(m.py())?)?;
    m.add_class::<timing::SlidingWindowRateLimiter>()?;
    rows::register(m)?;
    m.add_function(wrap_pyfunction!(carp::check_request, m)?)?;
    m.add_function(wrap_pyfunction!(analysis::diff_traces, m)?)?;
    m.add_function(wrap_pyfunction!(analysis::reconstruct_trace, m)?)?;
    m.add_function(wrap_pyfunction!(convert::canonical_json, m)?)?;
    m.add_function(wrap_pyfunction!(convert::canonical_json_text, m)?)?;
    m.add_function(wrap_pyfunction!(verify::verify_jsonl, m)?)?;
    m.add_function(wrap_pyfunction!(verify::check_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(keys::generate_signing_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::key_id_of, m)?)?;
    m.add_function(wrap_pyfunction!(proofs::prove_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(proofs::prove_consistency, m)?)?;
    m.add_function(wrap_pyfunction!(proofs::verify_proof, m)?)?;
    m.add_function(wrap_pyfunction!(verify::verify_events, m)?)?;
    m.add_function(wrap_pyfunction!(verify::verify_chain_json, m)?)?;
    m.add_function(wrap_pyfunction!(event::event_hash, m)?)?;
    m.add_function(wrap_pyfunction!(event::new_id, m)?)?;
    m.add_function(wrap_pyfunction!(event::now_timestamp, m)?)?;
    m.add_function(wrap_pyfunction!(patterns::action_pattern_matches, m)?)?;
    m.add_function(wrap_pyfunction!(patterns::agent_pattern_matches, m)?)?;
    Ok(())
}
