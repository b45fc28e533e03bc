//! The OpenAPI document, built from the handlers' `#[utoipa::path]` attributes and the request
//! and response types, through the same route lists the router serves (`super::routes`).

use std::sync::OnceLock;

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::events::RunChange;
use super::stream::{DoneData, LogData, StatusData};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scriptd",
        description = "Run Bash, Node.js and browser scripts by hand, on a schedule or from an \
            HTTP trigger, with live output over SSE. Times are RFC 3339 in UTC with milliseconds. \
            Every error answer is an `Error` object; a request with a query parameter the \
            operation does not name is refused with 400.",
    ),
    tags(
        (name = "scripts", description = "Script definitions and their schedules"),
        (name = "runs", description = "Starting, watching and canceling runs"),
        (name = "trigger", description = "Running a script from another program with its token"),
        (name = "versions", description = "Every definition a script has had: compare and restore"),
        (name = "transfer", description = "Scripts as files: export and import"),
        (name = "audit", description = "Who did what, when, from where"),
        (name = "ops", description = "Health, metrics and this document"),
    ),
    components(schemas(LogData, StatusData, DoneData, RunChange)),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basicAuth",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        super::admin_routes(),
        super::metrics_routes(),
        super::public_routes(),
    ] {
        doc.merge(part.into_openapi());
    }
    doc
}

/// The document as served, built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the API document serializes")
    })
}

/// A time parameter that may be left empty: an RFC 3339 time, or nothing.
pub fn blank_or_time() -> utoipa::openapi::Schema {
    blank_or_format(
        utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime),
        "An RFC 3339 time, or empty for none.",
    )
}

/// A page cursor that may be left empty: the `nextBefore` of the previous page, or nothing.
pub fn blank_or_id() -> utoipa::openapi::Schema {
    blank_or_format(
        utoipa::openapi::SchemaFormat::Custom("uuid".into()),
        "Only entries older than this one: the `nextBefore` of the previous page, or empty \
         for the first page.",
    )
}

/// A string of `format`, or an empty one.
fn blank_or_format(
    format: utoipa::openapi::SchemaFormat,
    description: &str,
) -> utoipa::openapi::Schema {
    let one_of = utoipa::openapi::schema::OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(format)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0)),
        )
        .description(Some(description))
        .build();
    utoipa::openapi::Schema::OneOf(one_of)
}

/// A query filter's values: one of `names`, or empty for no filter. (A parameter whose schema
/// is built by a function takes its description from here, not from its doc comment.)
pub fn blank_or<const N: usize>(names: [&'static str; N], description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(std::iter::once("").chain(names)))
        .description(Some(description))
        .build()
}
