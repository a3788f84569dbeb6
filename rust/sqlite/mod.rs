//! The SQLite store: its schema and connection settings, the events it
//! indexes, the `sessions` rows a batch updates, the owners written with
//! their sessions, the writer, the flush
//! thread's native sink and the statements callers run on its connection.

pub mod error;
pub mod event;
pub mod owners;
pub mod query;
pub mod rows;
pub mod schema;
pub mod sink;
pub mod store;

pub use error::{SqliteError, SqliteFault, SqliteResult};
pub use event::StoreEvent;
pub use sink::SqliteSinkFactory;
pub use store::SqliteDb;
