//! The script catalog: creating, editing, deleting and restoring scripts with their versions
//! and audit entries, and moving them in and out as files. The HTTP handlers and the command
//! line both go through here, so an import, a restore and an edit follow the same rules.

mod edit;
pub mod file;
pub mod seal;
pub mod transfer;

pub use edit::{diff, Catalog, Diff, Edit};

use crate::domain::ValidationError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An import file is not one scriptd can read; names the file.
    #[error("{file}: {message}")]
    File { file: String, message: String },
    /// A sealed secret needs a passphrase, or the one given does not open it.
    #[error("{0}")]
    Passphrase(String),
}
