//! A script as a file: TOML, one per script, named `<codeIdentifier>.toml`, fields in a fixed
//! order and the body as a multi-line string, so that a review in git reads like the script.

use super::CatalogError;
use crate::domain::ScriptDocument;

pub const EXTENSION: &str = ".toml";

const HEADER: &str =
    "# A scriptd script. Import it with `scriptd import` or the dashboard's Import button;\n\
    # secrets are only named here (or sealed, in an export made with a passphrase).\n\n";

pub fn file_name(code: &str) -> String {
    format!("{code}{EXTENSION}")
}

/// The file's text. The same document always gives the same bytes.
pub fn write(document: &ScriptDocument) -> Result<String, CatalogError> {
    let body = toml::to_string_pretty(document).map_err(|e| CatalogError::File {
        file: file_name(&document.code_identifier),
        message: format!("cannot be written as TOML: {e}"),
    })?;
    Ok(format!("{HEADER}{body}"))
}

/// Reads a file named `name`, which must be its script's `<codeIdentifier>.toml`.
pub fn read(name: &str, text: &str) -> Result<ScriptDocument, CatalogError> {
    let bad = |message: String| CatalogError::File {
        file: name.to_string(),
        message,
    };
    let document: ScriptDocument =
        toml::from_str(text).map_err(|e| bad(e.message().to_string() + &location(text, &e)))?;
    let expected = file_name(&document.code_identifier);
    if name != expected {
        return Err(bad(format!(
            "codeIdentifier is {:?}, so the file must be named {expected}",
            document.code_identifier
        )));
    }
    Ok(document)
}

/// " (line N)" for a parse error that has a place.
fn location(text: &str, e: &toml::de::Error) -> String {
    e.span()
        .map(|span| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        })
        .unwrap_or_default()
}
