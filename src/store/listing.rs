//! The scripts list as this node last read it whole. The database counts every change to a
//! script row in the same transaction (`catalog_generation`), so one number, read in the
//! same statement as each script's newest run, tells whether the definitions kept here are
//! still current: a dashboard's list then decodes eight values a script instead of forty,
//! whichever node changed what.

use std::sync::{Arc, Mutex};

use crate::domain::ScriptDefinition;

/// The list's definitions in list order (no body, env or webhooks), as of a generation.
pub type Listed = Arc<[Arc<ScriptDefinition>]>;

#[derive(Default)]
pub struct ListingCache(Mutex<Option<(i64, Listed)>>);

impl ListingCache {
    /// The definitions kept, if they were read at `generation`.
    pub fn at(&self, generation: i64) -> Option<Listed> {
        match &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((kept, listed)) if *kept == generation => Some(listed.clone()),
            _ => None,
        }
    }

    pub fn keep(&self, generation: i64, listed: Listed) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, listed));
    }
}
