//! Edits of scripts: each one a new version and an audit entry, in one transaction.

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::CatalogError;
use crate::domain::audit::script_target;
use crate::domain::{
    secrets_changed, Action, Author, FieldChange, NewVersion, Runner, ScriptDefinition,
    ScriptDocument, ScriptDraft, ValidationError,
};
use crate::store::{DynStore, ScriptChange};

/// Where edits are stored, and the rules the server adds to a script's own.
#[derive(Clone)]
pub struct Catalog {
    pub store: DynStore,
    pub keep_versions: i64,
    pub allowed_runners: Vec<Runner>,
}

/// One edit a caller asks for.
pub struct Edit<'a> {
    pub author: &'a Author,
    /// Kept with the version it makes (trimmed; at most 500 characters).
    pub message: Option<String>,
}

/// What two versions of a script differ in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    pub from: i64,
    pub to: i64,
    /// Every differing field but the body, with both values.
    pub fields: Vec<FieldChange>,
    /// Secrets (`env:KEY`, `webhook:URL`) set, changed or removed in between; values are never
    /// kept, so this is all that is known of them.
    pub secrets_changed: Vec<String>,
    /// A unified diff of the script body; empty when it is the same.
    pub script: String,
}

/// Compares two documents: the fields, and the body as a unified text diff.
pub fn diff(
    from: (i64, &ScriptDocument),
    to: (i64, &ScriptDocument),
    secrets_changed: Vec<String>,
) -> Diff {
    let script = if from.1.script == to.1.script {
        String::new()
    } else {
        similar::TextDiff::from_lines(&from.1.script, &to.1.script)
            .unified_diff()
            .context_radius(3)
            .header(&format!("version {}", from.0), &format!("version {}", to.0))
            .to_string()
    };
    Diff {
        from: from.0,
        to: to.0,
        fields: from.1.changes_to(to.1),
        secrets_changed,
        script,
    }
}

fn message(
    given: Option<String>,
    default: impl FnOnce() -> String,
) -> Result<String, ValidationError> {
    let text = given.map(|m| m.trim().to_string()).unwrap_or_default();
    if text.chars().count() > crate::domain::MAX_MESSAGE_CHARS {
        return Err(ValidationError::new(
            "versionMessage",
            "must be at most 500 characters",
        ));
    }
    if text.contains('\0') {
        return Err(ValidationError::new(
            "versionMessage",
            "must not contain NUL",
        ));
    }
    Ok(if text.is_empty() { default() } else { text })
}

/// What a change from `before` to `after` changes: the fields (the body as `script`), and the
/// secrets by name. Both empty: nothing to record.
pub(super) fn change_summary(
    before: &ScriptDefinition,
    after: &ScriptDefinition,
) -> (Vec<String>, Vec<String>) {
    let (a, b) = (ScriptDocument::of(before), ScriptDocument::of(after));
    let mut fields: Vec<String> = a.changes_to(&b).into_iter().map(|c| c.field).collect();
    if a.script != b.script {
        fields.push("script".into());
    }
    (fields, secrets_changed(Some(before), after))
}

impl Catalog {
    fn runner_allowed(&self, runner: Runner) -> Result<(), ValidationError> {
        if self.allowed_runners.contains(&runner) {
            return Ok(());
        }
        let names: Vec<&str> = self.allowed_runners.iter().map(|r| r.as_str()).collect();
        Err(ValidationError::new(
            "runner",
            format!(
                "the {} runner is not allowed on this server (allowed: {})",
                runner.as_str(),
                names.join(", ")
            ),
        ))
    }

    /// A new script as the draft says, with secrets given in full.
    pub fn new_script(&self, draft: ScriptDraft) -> Result<ScriptDefinition, ValidationError> {
        self.runner_allowed(draft.runner)?;
        let env = draft.resolve_env(&[])?;
        let hooks = draft.resolve_webhooks(&[])?;
        let now = Utc::now();
        Ok(draft.into_definition(env, hooks, uuid::Uuid::now_v7().to_string(), now, None))
    }

    /// `existing` as the draft says; secrets sent without a value keep the stored one.
    pub fn changed_script(
        &self,
        existing: &ScriptDefinition,
        draft: ScriptDraft,
    ) -> Result<ScriptDefinition, ValidationError> {
        self.runner_allowed(draft.runner)?;
        let env = draft.resolve_env(&existing.env)?;
        let hooks = draft.resolve_webhooks(&existing.notifications)?;
        let mut script = draft.into_definition(
            env,
            hooks,
            existing.id.clone(),
            existing.created_at,
            existing.token_created_at,
        );
        script.version = existing.version;
        Ok(script)
    }

    pub fn new_version(
        &self,
        script: &ScriptDefinition,
        before: Option<&ScriptDefinition>,
        edit: &Edit<'_>,
        default_message: impl FnOnce() -> String,
    ) -> Result<NewVersion, ValidationError> {
        Ok(NewVersion {
            author: edit.author.actor.clone(),
            message: message(edit.message.clone(), default_message)?,
            document: ScriptDocument::of(script),
            secrets_changed: secrets_changed(before, script),
            at: script.updated_at,
        })
    }

    pub async fn create(
        &self,
        draft: ScriptDraft,
        edit: Edit<'_>,
    ) -> Result<ScriptDefinition, CatalogError> {
        let mut script = self.new_script(draft)?;
        let version = self.new_version(&script, None, &edit, || "created".into())?;
        let audit = edit.author.entry(
            Action::ScriptCreate,
            script_target(script.code_identifier.as_str()),
            json!({ "name": script.name, "version": 1 }),
        );
        self.store
            .write_scripts(
                &[ScriptChange::Create {
                    script: &script,
                    version,
                }],
                &[audit],
                self.keep_versions,
            )
            .await?;
        script.version = 1;
        Ok(script)
    }

    /// Replaces a script's definition. Nothing is written when nothing changed.
    pub async fn update(
        &self,
        id: &str,
        draft: ScriptDraft,
        edit: Edit<'_>,
    ) -> Result<ScriptDefinition, CatalogError> {
        let existing = self.store.get_script(id).await?;
        let script = self.changed_script(&existing, draft)?;
        self.store_update(&existing, script, &edit, None).await
    }

    /// Makes a new version equal to version `number` (its secrets keep their current values;
    /// one the script no longer has cannot be restored and is refused, naming it).
    pub async fn restore(
        &self,
        id: &str,
        number: i64,
        edit: Edit<'_>,
    ) -> Result<ScriptDefinition, CatalogError> {
        let existing = self.store.get_script(id).await?;
        let version = self.store.get_version(id, number).await?;
        let document = version
            .document
            .ok_or(crate::store::StoreError::NotFound("version"))?;
        let draft = document.to_input()?.parse()?;
        let script = self.changed_script(&existing, draft).map_err(|e| {
            if e.field.starts_with("env[") {
                ValidationError::new(
                    e.field,
                    format!(
                        "version {number} has a secret this script no longer holds a value for; \
                         add it to the script first, then restore"
                    ),
                )
            } else {
                e
            }
        })?;
        self.store_update(&existing, script, &edit, Some(number))
            .await
    }

    async fn store_update(
        &self,
        existing: &ScriptDefinition,
        mut script: ScriptDefinition,
        edit: &Edit<'_>,
        restored_from: Option<i64>,
    ) -> Result<ScriptDefinition, CatalogError> {
        let (fields, secrets) = change_summary(existing, &script);
        if fields.is_empty() && secrets.is_empty() {
            return Ok(existing.clone());
        }
        let action = match (restored_from, fields.as_slice()) {
            (Some(_), _) => Action::ScriptRestore,
            (None, [only]) if only == "enabled" && secrets.is_empty() => {
                if script.enabled {
                    Action::ScriptEnable
                } else {
                    Action::ScriptDisable
                }
            }
            _ => Action::ScriptUpdate,
        };
        let version = self.new_version(&script, Some(existing), edit, || match restored_from {
            Some(n) => format!("restored version {n}"),
            None => "edited".into(),
        })?;
        let target = script_target(script.code_identifier.as_str());
        let mut summary = json!({
            "fields": fields,
            "secretsChanged": secrets,
            "version": existing.version + 1,
        });
        if let Some(n) = restored_from {
            summary["restoredFrom"] = n.into();
        }
        if existing.code_identifier != script.code_identifier {
            summary["renamedFrom"] = existing.code_identifier.as_str().into();
        }
        let audit = edit.author.entry(action, target, summary);
        let numbers = self
            .store
            .write_scripts(
                &[ScriptChange::Update {
                    script: &script,
                    version: Some(version),
                }],
                &[audit],
                self.keep_versions,
            )
            .await?;
        script.version = numbers.first().copied().unwrap_or(existing.version + 1);
        Ok(script)
    }

    pub async fn delete(
        &self,
        script: &ScriptDefinition,
        author: &Author,
    ) -> Result<(), CatalogError> {
        let audit = author.entry(
            Action::ScriptDelete,
            script_target(script.code_identifier.as_str()),
            json!({ "name": script.name, "version": script.version }),
        );
        self.store
            .write_scripts(
                &[ScriptChange::Delete { id: &script.id }],
                &[audit],
                self.keep_versions,
            )
            .await?;
        Ok(())
    }
}
