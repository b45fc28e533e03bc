//! Export and import: scripts out as files, files in as scripts. An import reads and checks
//! every file before it changes anything, then applies the whole plan in one transaction;
//! a script whose file matches it is left alone, so importing twice changes nothing.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::edit::Catalog;
use super::seal::{Opener, Sealer};
use super::{file, CatalogError};
use crate::domain::audit::script_target;
use crate::domain::{
    secrets_changed, Action, AuditEntry, Author, NewVersion, ScriptDefinition, ScriptDocument,
    ValidationError,
};
use crate::store::{ScriptChange, ScriptFilter};

/// A file to export or import: its name and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptFile {
    pub name: String,
    pub text: String,
}

/// The scripts as files, by codeIdentifier; only `codes` when given (each must exist).
/// With a passphrase, secret values are sealed with it; without, only named.
pub async fn export(
    catalog: &Catalog,
    codes: &[String],
    passphrase: Option<&str>,
) -> Result<Vec<ScriptFile>, CatalogError> {
    let sealer = passphrase.map(Sealer::new).transpose()?;
    let listed = catalog.store.list_scripts(&ScriptFilter::default()).await?;
    let wanted: HashSet<&str> = codes.iter().map(String::as_str).collect();
    // An unknown code is a script that is not there (404), as for any other lookup.
    if codes.iter().any(|c| {
        !listed
            .iter()
            .any(|l| l.script.code_identifier.as_str() == c.as_str())
    }) {
        return Err(crate::store::StoreError::NotFound("script").into());
    }
    let mut files = Vec::new();
    for listing in listed {
        let code = listing.script.code_identifier.as_str();
        if !wanted.is_empty() && !wanted.contains(code) {
            continue;
        }
        let script = catalog.store.get_script(&listing.script.id).await?;
        let mut document = ScriptDocument::of(&script);
        if let Some(sealer) = &sealer {
            seal_secrets(&mut document, &script, sealer);
        }
        files.push(ScriptFile {
            name: file::file_name(code),
            text: file::write(&document)?,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn seal_secrets(document: &mut ScriptDocument, script: &ScriptDefinition, sealer: &Sealer) {
    let code = &document.code_identifier;
    let mut any = false;
    for (doc, env) in document.env.iter_mut().zip(&script.env) {
        if env.secret {
            doc.sealed = Some(sealer.seal(&format!("{code}/env:{}", env.key), &env.value));
            any = true;
        }
    }
    for (doc, hook) in document.notifications.iter_mut().zip(&script.notifications) {
        if let Some(secret) = &hook.secret {
            doc.sealed = Some(sealer.seal(&format!("{code}/webhook:{}", hook.url), secret));
            any = true;
        }
    }
    if any {
        document.sealed_with = Some(sealer.sealed_with().to_string());
    }
}

/// What an import does, script by script.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportPlan {
    /// codeIdentifiers of scripts the files add.
    pub create: Vec<String>,
    /// Scripts the files change, with the fields that change.
    pub update: Vec<PlannedUpdate>,
    pub unchanged: Vec<String>,
    /// Scripts no file names, deleted when `prune` is asked for (else listed nowhere).
    pub delete: Vec<String>,
    /// False for a dry run: nothing was changed.
    pub applied: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedUpdate {
    pub code: String,
    /// The fields that change (the body as `script`), secrets by name (`env:KEY`).
    pub fields: Vec<String>,
}

pub struct ImportOptions {
    pub dry_run: bool,
    pub prune: bool,
    pub passphrase: Option<String>,
}

enum Step {
    Create(ScriptDefinition, String),
    Update(ScriptDefinition, Changed),
}

/// What an update changes, worked out while planning.
struct Changed {
    file: String,
    /// The version number before it.
    version: i64,
    fields: Vec<String>,
    secrets: Vec<String>,
}

/// Names a rule broken by a file's content.
fn in_file(name: &str) -> impl Fn(ValidationError) -> CatalogError + '_ {
    move |e| CatalogError::File {
        file: name.to_string(),
        message: format!("{}: {}", e.field, e.message),
    }
}

/// Plans the import of `files` and, unless a dry run, applies it. Any invalid file stops it
/// before anything changes.
pub async fn import(
    catalog: &Catalog,
    files: &[ScriptFile],
    options: ImportOptions,
    author: &Author,
) -> Result<ImportPlan, CatalogError> {
    let mut opener = Opener::new(options.passphrase);
    let existing: BTreeMap<String, String> = catalog
        .store
        .list_scripts(&ScriptFilter::default())
        .await?
        .into_iter()
        .map(|l| {
            (
                l.script.code_identifier.as_str().to_string(),
                l.script.id.clone(),
            )
        })
        .collect();
    let mut seen = HashSet::new();
    let mut steps = Vec::new();
    let mut plan = ImportPlan::default();
    for f in files {
        let mut document = file::read(&f.name, &f.text)?;
        if !seen.insert(document.code_identifier.clone()) {
            return Err(CatalogError::File {
                file: f.name.clone(),
                message: "another file has the same codeIdentifier".into(),
            });
        }
        let sealed = take_sealed(&mut document);
        let mut draft = document
            .to_input()
            .map_err(in_file(&f.name))?
            .parse()
            .map_err(in_file(&f.name))?;
        if draft.code_identifier.as_str() != document.code_identifier {
            return Err(CatalogError::File {
                file: f.name.clone(),
                message: format!(
                    "codeIdentifier: {:?} is not in its normal form ({:?})",
                    document.code_identifier,
                    draft.code_identifier.as_str()
                ),
            });
        }
        let code = document.code_identifier.clone();
        for (index, context) in sealed.env {
            let value = opener.open(
                &f.name,
                document.sealed_with.as_deref(),
                &format!("{code}/{context}"),
                &index.1,
            )?;
            draft.env[index.0].1 = Some(value);
        }
        for (index, context, sealed_value) in sealed.hooks {
            let value = opener.open(
                &f.name,
                document.sealed_with.as_deref(),
                &format!("{code}/{context}"),
                &sealed_value,
            )?;
            draft.notifications[index].secret = Some(value);
        }
        match existing.get(&code) {
            Some(id) => {
                let current = catalog.store.get_script(id).await?;
                let next = catalog
                    .changed_script(&current, draft)
                    .map_err(in_file(&f.name))?;
                let (fields, secrets) = super::edit::change_summary(&current, &next);
                if fields.is_empty() && secrets.is_empty() {
                    plan.unchanged.push(code);
                } else {
                    plan.update.push(PlannedUpdate {
                        code,
                        fields: fields.iter().chain(&secrets).cloned().collect(),
                    });
                    steps.push(Step::Update(
                        next,
                        Changed {
                            file: f.name.clone(),
                            version: current.version,
                            fields,
                            secrets,
                        },
                    ));
                }
            }
            None => {
                let script = catalog.new_script(draft).map_err(|e| {
                    if e.field.starts_with("env[") || e.field.starts_with("notifications[") {
                        CatalogError::File {
                            file: f.name.clone(),
                            message: format!(
                                "{}: a new script's secret needs its value: export with a \
                                 passphrase (--with-secrets), or create the script first",
                                e.field
                            ),
                        }
                    } else {
                        in_file(&f.name)(e)
                    }
                })?;
                plan.create.push(code);
                steps.push(Step::Create(script, f.name.clone()));
            }
        }
    }
    let mut doomed = Vec::new();
    if options.prune {
        for (code, id) in &existing {
            if !seen.contains(code) {
                plan.delete.push(code.clone());
                doomed.push(catalog.store.get_script(id).await?);
            }
        }
    }
    if options.dry_run {
        return Ok(plan);
    }
    for script in &doomed {
        if catalog.store.active_runs(&script.id).await? > 0 {
            return Err(ValidationError::new(
                "prune",
                format!(
                    "{} has runs queued or running; cancel them first",
                    script.code_identifier
                ),
            )
            .into());
        }
    }
    apply(catalog, steps, &doomed, &plan, author).await?;
    plan.applied = true;
    Ok(plan)
}

/// Sealed values taken out of a document, with where they go.
struct Sealed {
    /// ((env index, sealed value), "env:KEY")
    env: Vec<((usize, String), String)>,
    /// (webhook index, "webhook:URL", sealed value)
    hooks: Vec<(usize, String, String)>,
}

fn take_sealed(document: &mut ScriptDocument) -> Sealed {
    let env = document
        .env
        .iter_mut()
        .enumerate()
        .filter_map(|(i, e)| e.sealed.take().map(|s| ((i, s), format!("env:{}", e.key))))
        .collect();
    let hooks = document
        .notifications
        .iter_mut()
        .enumerate()
        .filter_map(|(i, w)| {
            w.sealed
                .take()
                .map(|s| (i, format!("webhook:{}", w.url), s))
        })
        .collect();
    Sealed { env, hooks }
}

async fn apply(
    catalog: &Catalog,
    steps: Vec<Step>,
    doomed: &[ScriptDefinition],
    plan: &ImportPlan,
    author: &Author,
) -> Result<(), CatalogError> {
    let mut versions = Vec::new();
    let mut audit: Vec<AuditEntry> = Vec::new();
    for step in &steps {
        match step {
            Step::Create(script, name) => {
                versions.push(NewVersion {
                    author: author.actor.clone(),
                    message: format!("imported from {name}"),
                    document: ScriptDocument::of(script),
                    secrets_changed: secrets_changed(None, script),
                    at: script.updated_at,
                });
                audit.push(author.entry(
                    Action::ScriptCreate,
                    script_target(script.code_identifier.as_str()),
                    json!({ "name": script.name, "version": 1, "via": "import" }),
                ));
            }
            Step::Update(script, changed) => {
                versions.push(NewVersion {
                    author: author.actor.clone(),
                    message: format!("imported from {}", changed.file),
                    document: ScriptDocument::of(script),
                    secrets_changed: changed.secrets.clone(),
                    at: script.updated_at,
                });
                audit.push(author.entry(
                    Action::ScriptUpdate,
                    script_target(script.code_identifier.as_str()),
                    json!({
                        "fields": changed.fields,
                        "secretsChanged": changed.secrets,
                        "version": changed.version + 1,
                        "via": "import",
                    }),
                ));
            }
        }
    }
    for script in doomed {
        audit.push(author.entry(
            Action::ScriptDelete,
            script_target(script.code_identifier.as_str()),
            json!({ "name": script.name, "version": script.version, "via": "import" }),
        ));
    }
    audit.push(author.entry(
        Action::Import,
        "import",
        json!({
            "created": plan.create,
            "updated": plan.update.iter().map(|u| &u.code).collect::<Vec<_>>(),
            "deleted": plan.delete,
            "unchanged": plan.unchanged.len(),
        }),
    ));
    let mut changes: Vec<ScriptChange<'_>> = Vec::new();
    for (step, version) in steps.iter().zip(versions) {
        changes.push(match step {
            Step::Create(script, _) => ScriptChange::Create { script, version },
            Step::Update(script, _) => ScriptChange::Update {
                script,
                version: Some(version),
            },
        });
    }
    for script in doomed {
        changes.push(ScriptChange::Delete { id: &script.id });
    }
    catalog
        .store
        .write_scripts(&changes, &audit, catalog.keep_versions)
        .await?;
    Ok(())
}
