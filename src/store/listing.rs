//! The scripts list as this node last read it whole. The database counts every change to a
//! script row in the same transaction (`catalog_generation`), so one number, read in the
//! same statement as each script's newest run, tells whether the definitions kept here are
//! still current: a dashboard's list then decodes eight values a script instead of forty,
//! whichever node changed what. When the number has moved, the definitions read again that
//! are unchanged keep their shared copy, so the list's JSON entry written from it is reused.

use std::collections::HashMap;
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

    /// Keeps `fresh`, read at `generation`, reusing the definitions kept before wherever one
    /// is unchanged (the same in every field): what was derived from those, such as the list's
    /// JSON entries kept by their `Arc`, stays valid across an edit of another script.
    pub fn keep(&self, generation: i64, fresh: Vec<ScriptDefinition>) -> Listed {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let before: HashMap<&str, &Arc<ScriptDefinition>> = kept
            .iter()
            .flat_map(|(_, listed)| listed.iter())
            .map(|d| (d.id.as_str(), d))
            .collect();
        let listed: Listed = fresh
            .into_iter()
            .map(|def| match before.get(def.id.as_str()) {
                Some(old) if ***old == def => Arc::clone(old),
                _ => Arc::new(def),
            })
            .collect();
        *kept = Some((generation, listed.clone()));
        listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ScriptInput;

    fn definition(name: &str) -> ScriptDefinition {
        ScriptInput {
            name: Some(name.into()),
            code_identifier: Some(name.into()),
            script_type: Some("bash".into()),
            script: Some("true".into()),
            ..Default::default()
        }
        .parse()
        .unwrap()
        .into_definition(
            vec![],
            vec![],
            uuid::Uuid::now_v7().to_string(),
            chrono::Utc::now(),
            None,
        )
    }

    #[test]
    fn a_read_again_reuses_only_the_definitions_unchanged_in_every_field() {
        let cache = ListingCache::default();
        let (a, b, c) = (definition("a"), definition("b"), definition("c"));
        let first = cache.keep(1, vec![a.clone(), b.clone(), c.clone()]);
        assert!(cache.at(1).is_some_and(|kept| Arc::ptr_eq(&kept, &first)));
        assert!(cache.at(2).is_none());

        let mut b_disabled = b.clone();
        b_disabled.enabled = false;
        let d = definition("d");
        let second = cache.keep(2, vec![a.clone(), b_disabled, d.clone()]);
        assert!(Arc::ptr_eq(&second[0], &first[0]), "a is unchanged");
        assert!(!Arc::ptr_eq(&second[1], &first[1]), "b changed one field");
        assert!(!second[1].enabled);
        assert_eq!(*second[2], d);
        assert!(cache.at(1).is_none());
        assert!(cache.at(2).is_some_and(|kept| Arc::ptr_eq(&kept, &second)));

        // c, deleted in between and read again, is a new copy: only the last list is reused.
        let third = cache.keep(3, vec![a, c]);
        assert!(Arc::ptr_eq(&third[0], &first[0]));
        assert!(!Arc::ptr_eq(&third[1], &first[2]));
    }
}
