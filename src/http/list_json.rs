//! The scripts list's entries kept as JSON. The store hands back the same shared definition
//! (`Arc`) for a script while the catalog is unchanged, so the JSON of that definition is
//! written once and reused; only each script's newest run is written per request. Half of a
//! warm list request used to go to building and serializing the same 500 definitions again.

use std::sync::{Arc, Mutex};

use crate::domain::ScriptDefinition;
use crate::store::ScriptListing;

use super::views::{LastRunView, ScriptView};

/// A definition, and its list entry's JSON without the closing brace, so that the newest run
/// can follow as the entry's last field, where `ScriptView` puts it.
type Entry = (Arc<ScriptDefinition>, Arc<[u8]>);

/// The whole list's entries, in list order, as last written.
#[derive(Default)]
pub struct ListJson(Mutex<Arc<[Entry]>>);

impl ListJson {
    /// The JSON array of these listings, exactly as `Vec<ScriptView>` serializes. Entries are
    /// kept only for `whole` (the unfiltered list): a filtered list's definitions are read
    /// afresh by the store each time, so keeping them would only push the whole list's out.
    pub fn write(&self, listings: &[ScriptListing], whole: bool) -> Vec<u8> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut entries = Vec::with_capacity(if whole { listings.len() } else { 0 });
        let mut out = Vec::with_capacity(listings.len() * 1024);
        out.push(b'[');
        for (i, l) in listings.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let open = match kept.get(i) {
                Some((script, open)) if Arc::ptr_eq(script, &l.script) => open.clone(),
                _ => open_entry(&l.script),
            };
            out.extend_from_slice(&open);
            if let Some(run) = &l.last_run {
                out.extend_from_slice(b",\"lastRun\":");
                serde_json::to_writer(&mut out, &LastRunView::from(run))
                    .expect("a run view serializes");
            }
            out.push(b'}');
            if whole {
                entries.push((l.script.clone(), open));
            }
        }
        out.push(b']');
        if whole {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = entries.into();
        }
        out
    }
}

fn open_entry(script: &ScriptDefinition) -> Arc<[u8]> {
    let mut json =
        serde_json::to_vec(&ScriptView::listed(script, None)).expect("a view serializes");
    debug_assert_eq!(json.last(), Some(&b'}'));
    json.pop();
    json.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Run, RunStatus, ScriptInput, Trigger};

    fn script(name: &str, description: &str) -> Arc<ScriptDefinition> {
        let draft = ScriptInput {
            name: Some(name.into()),
            code_identifier: Some(name.into()),
            script_type: Some("bash".into()),
            script: Some("echo \"hi\"".into()),
            description: Some(description.into()),
            ..Default::default()
        }
        .parse()
        .unwrap();
        let id = uuid::Uuid::now_v7().to_string();
        Arc::new(draft.into_definition(vec![], vec![], id, chrono::Utc::now(), None))
    }

    fn run(script: &ScriptDefinition, status: RunStatus) -> Run {
        let queued = Run::queued(&script.id, Trigger::Manual, serde_json::Value::Null, None);
        Run {
            status,
            started_at: Some(queued.queued_at),
            exit_code: Some(3),
            ..queued
        }
    }

    fn as_serde(listings: &[ScriptListing]) -> Vec<u8> {
        let views: Vec<ScriptView> = listings
            .iter()
            .map(|l| ScriptView::listed(&l.script, l.last_run.as_ref()))
            .collect();
        serde_json::to_vec(&views).unwrap()
    }

    #[test]
    fn the_list_is_written_as_its_views_serialize_whether_kept_or_not() {
        let (a, b) = (script("A \"quoted\"", "line\nbreak"), script("B", "π"));
        let mut listings = vec![
            ScriptListing {
                script: a.clone(),
                last_run: Some(run(&a, RunStatus::Failed)),
            },
            ScriptListing {
                script: b.clone(),
                last_run: None,
            },
        ];
        let json = ListJson::default();
        assert_eq!(json.write(&[], true), b"[]");
        assert_eq!(json.write(&listings, true), as_serde(&listings));
        // Kept, with the newest runs of this request.
        listings[1].last_run = Some(run(&b, RunStatus::Running));
        assert_eq!(json.write(&listings, true), as_serde(&listings));
        // A definition read again (an edit): its entry is written from it, not from the old.
        let mut renamed = (*a).clone();
        renamed.name = "A renamed".into();
        listings[0].script = Arc::new(renamed);
        let written = json.write(&listings, true);
        assert_eq!(written, as_serde(&listings));
        assert!(String::from_utf8(written).unwrap().contains("A renamed"));
        // Filtered lists neither use nor replace what the whole list keeps.
        let one = &listings[1..];
        assert_eq!(json.write(one, false), as_serde(one));
        assert_eq!(json.write(&listings, true), as_serde(&listings));
        // A deleted script leaves the list.
        listings.remove(0);
        assert_eq!(json.write(&listings, true), as_serde(&listings));
    }
}
