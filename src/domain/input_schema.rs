//! A script's input form: a small subset of JSON Schema (an object of string, number, integer
//! and boolean fields, with enum, default, description, minimum/maximum, minLength/maxLength,
//! pattern and required) that the Run dialog renders as a form and every trigger's input is
//! checked against. The fields keep the order they were written in, which is the form's order.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::ValidationError;

const MAX_FIELDS: usize = 50;
const MAX_TEXT: usize = 500;
const MAX_PATTERN: usize = 500;
/// Compiled patterns stay small: an admin's pattern must not cost a run much.
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

/// A run input's form. Beyond this shape: `required` names listed fields, each `default` and
/// `enum` value fits its field, and `pattern` is a valid regular expression (400 naming the
/// part otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSchema {
    #[serde(rename = "type")]
    #[schema(pattern = "^object$")]
    kind: String,
    /// At most 50 fields, each named with 1 to 64 letters, digits, `-` or `_`, in form order.
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, Field>)]
    pub properties: Fields,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
}

/// The fields in the order they were written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields(pub Vec<(String, Field)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = InputFieldType)]
pub enum Kind {
    String,
    Number,
    Integer,
    Boolean,
}

/// One field of an input form. `minimum`/`maximum` are for number and integer fields,
/// `minLength`/`maxLength`/`pattern` for string fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = InputField)]
pub struct Field {
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// 1 to 100 values of the field's type.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 100)]
    pub one_of: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub minimum: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub maximum: Option<serde_json::Number>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole::option"
    )]
    #[schema(minimum = 0)]
    pub min_length: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::whole::option"
    )]
    #[schema(minimum = 0)]
    pub max_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    pub pattern: Option<String>,
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, field) in &self.0 {
            map.serialize_entry(name, field)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some((name, field)) = map.next_entry::<String, Field>()? {
                    fields.push((name, field));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(InOrder)
    }
}

fn bad(path: impl fmt::Display, message: impl Into<String>) -> ValidationError {
    ValidationError::new(format!("inputSchema{path}"), message)
}

fn pattern(p: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(p)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
}

impl InputSchema {
    /// Reads and checks a schema as sent; errors name the part that is wrong.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let schema: InputSchema = serde_json::from_str(raw)
            .map_err(|e| bad("", format!("is not a valid input form: {e}")))?;
        if schema.kind != "object" {
            return Err(bad(".type", "must be \"object\""));
        }
        if schema.properties.0.len() > MAX_FIELDS {
            return Err(bad(
                ".properties",
                format!("must have at most {MAX_FIELDS} fields"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (name, field) in &schema.properties.0 {
            let at = |what: &str| format!(".properties.{name}{what}");
            // A leading letter keeps names apart from numbers (which a browser would put
            // first in an object, out of the form's order); "__" names are the browser's own.
            let valid_name = name.len() <= 64
                && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && !name.starts_with("__")
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(bad(
                    format!(".properties.{name}"),
                    "a field name is 1 to 64 letters, digits, - or _, starting with a letter or a single _",
                ));
            }
            if !seen.insert(name) {
                return Err(bad(at(""), "is there twice"));
            }
            for (what, text) in [
                (".title", &field.title),
                (".description", &field.description),
            ] {
                if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
                    return Err(bad(
                        at(what),
                        format!("must be at most {MAX_TEXT} characters"),
                    ));
                }
            }
            let numeric = matches!(field.kind, Kind::Number | Kind::Integer);
            if !numeric && (field.minimum.is_some() || field.maximum.is_some()) {
                return Err(bad(
                    at(""),
                    "minimum and maximum are for number and integer fields",
                ));
            }
            if field.kind != Kind::String
                && (field.min_length.is_some()
                    || field.max_length.is_some()
                    || field.pattern.is_some())
            {
                return Err(bad(
                    at(""),
                    "minLength, maxLength and pattern are for string fields",
                ));
            }
            if let (Some(lo), Some(hi)) = (field.min(), field.max()) {
                if lo > hi {
                    return Err(bad(at(".minimum"), "must not be above maximum"));
                }
            }
            if [field.min_length, field.max_length]
                .iter()
                .flatten()
                .any(|n| *n < 0)
            {
                return Err(bad(at(""), "minLength and maxLength must be 0 or more"));
            }
            if let (Some(lo), Some(hi)) = (field.min_length, field.max_length) {
                if lo > hi {
                    return Err(bad(at(".minLength"), "must not be above maxLength"));
                }
            }
            if let Some(p) = &field.pattern {
                if p.len() > MAX_PATTERN {
                    return Err(bad(
                        at(".pattern"),
                        format!("must be at most {MAX_PATTERN} characters"),
                    ));
                }
                pattern(p)
                    .map_err(|e| bad(at(".pattern"), format!("is not a valid pattern: {e}")))?;
            }
            if let Some(options) = &field.one_of {
                if options.is_empty() || options.len() > 100 {
                    return Err(bad(at(".enum"), "must list 1 to 100 values"));
                }
                for v in options {
                    if let Err(why) = field.check_type(v) {
                        return Err(bad(at(".enum"), why));
                    }
                }
            }
            if let Some(d) = &field.default {
                if let Err(why) = field.check(d) {
                    return Err(bad(
                        at(".default"),
                        format!("does not fit the field: {why}"),
                    ));
                }
            }
        }
        for name in &schema.required {
            if schema.field(name).is_none() {
                return Err(bad(
                    ".required",
                    format!("names {name}, which is not a field"),
                ));
            }
        }
        Ok(schema)
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.properties
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f)
    }

    /// The schema as stored and shown: the same fields, in their order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A required field with no default, which a run with no input (a schedule tick) could
    /// not fill.
    pub fn required_without_default(&self) -> Option<&str> {
        self.required
            .iter()
            .find(|n| self.field(n).is_some_and(|f| f.default.is_none()))
            .map(String::as_str)
    }

    /// Checks a run's input and fills in defaults: the JSON the script receives. Errors name
    /// the field as `input.<name>`.
    pub fn apply(&self, input: Option<&Value>) -> Result<Value, ValidationError> {
        let empty = Map::new();
        let given = match input {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(ValidationError::new(
                    "input",
                    "must be a JSON object of the form's fields",
                ))
            }
        };
        if let Some(unknown) = given.keys().find(|k| self.field(k).is_none()) {
            return Err(ValidationError::new(
                format!("input.{unknown}"),
                "is not a field of this script's input",
            ));
        }
        let mut out = Map::new();
        for (name, field) in &self.properties.0 {
            let value = match given.get(name).filter(|v| !v.is_null()) {
                Some(v) => v.clone(),
                None => match &field.default {
                    Some(d) => d.clone(),
                    None if self.required.contains(name) => {
                        return Err(ValidationError::new(format!("input.{name}"), "is required"))
                    }
                    None => continue,
                },
            };
            field
                .check(&value)
                .map_err(|why| ValidationError::new(format!("input.{name}"), why))?;
            out.insert(name.clone(), value);
        }
        Ok(Value::Object(out))
    }
}

impl Field {
    fn min(&self) -> Option<f64> {
        self.minimum.as_ref().and_then(serde_json::Number::as_f64)
    }

    fn max(&self) -> Option<f64> {
        self.maximum.as_ref().and_then(serde_json::Number::as_f64)
    }

    fn check_type(&self, v: &Value) -> Result<(), String> {
        let fits = match self.kind {
            Kind::String => v.is_string(),
            Kind::Boolean => v.is_boolean(),
            Kind::Number => v.is_number(),
            Kind::Integer => {
                v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
        };
        if fits {
            Ok(())
        } else {
            let kind = match self.kind {
                Kind::String => "a string",
                Kind::Boolean => "true or false",
                Kind::Number => "a number",
                Kind::Integer => "a whole number",
            };
            Err(format!("must be {kind}"))
        }
    }

    /// Whether `v` is a value this field takes; why not otherwise.
    fn check(&self, v: &Value) -> Result<(), String> {
        self.check_type(v)?;
        if let Some(options) = &self.one_of {
            // Numbers compare as numbers: 2.0 is the enum's 2.
            let same = |o: &Value| o == v || (o.is_number() && o.as_f64() == v.as_f64());
            if !options.iter().any(same) {
                let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
                return Err(format!("must be one of {}", list.join(", ")));
            }
        }
        if let Some(n) = v.as_f64() {
            if let (Some(lo), Some(shown)) = (self.min(), &self.minimum) {
                if n < lo {
                    return Err(format!("must be at least {shown}"));
                }
            }
            if let (Some(hi), Some(shown)) = (self.max(), &self.maximum) {
                if n > hi {
                    return Err(format!("must be at most {shown}"));
                }
            }
        }
        if let Some(s) = v.as_str() {
            let len = s.chars().count() as i64;
            if self.min_length.is_some_and(|lo| len < lo) {
                return Err(format!(
                    "must be at least {} characters",
                    self.min_length.unwrap_or_default()
                ));
            }
            if self.max_length.is_some_and(|hi| len > hi) {
                return Err(format!(
                    "must be at most {} characters",
                    self.max_length.unwrap_or_default()
                ));
            }
            if let Some(p) = &self.pattern {
                // Checked when the schema was saved.
                if !pattern(p).is_ok_and(|re| re.is_match(s)) {
                    return Err(format!("must match the pattern {p}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FORM: &str = r#"{"type":"object","properties":{
        "project":{"type":"string","pattern":"^[a-z]+$","maxLength":10,"description":"Which one"},
        "count":{"type":"integer","minimum":1,"maximum":5,"default":1},
        "mode":{"type":"string","enum":["fast","safe"],"default":"safe"},
        "ratio":{"type":"number"},
        "dry":{"type":"boolean"}},
        "required":["project","count"]}"#;

    #[test]
    fn fields_keep_their_order_and_the_schema_reads_back_the_same() {
        let s = InputSchema::parse(FORM).unwrap();
        let names: Vec<&str> = s.properties.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["project", "count", "mode", "ratio", "dry"]);
        assert_eq!(InputSchema::parse(&s.to_json()).unwrap(), s);
        assert_eq!(s.required_without_default(), Some("project"));
    }

    #[test]
    fn input_is_checked_field_by_field_and_defaults_fill_in() {
        let s = InputSchema::parse(FORM).unwrap();
        assert_eq!(
            s.apply(Some(&json!({"project": "web", "dry": true})))
                .unwrap(),
            json!({"project": "web", "count": 1, "mode": "safe", "dry": true})
        );
        for (input, field, says) in [
            (json!({}), "input.project", "is required"),
            (json!({"project": "Web"}), "input.project", "pattern"),
            (
                json!({"project": "abcdefghijk"}),
                "input.project",
                "at most 10",
            ),
            (
                json!({"project": "a", "count": 9}),
                "input.count",
                "at most 5",
            ),
            (
                json!({"project": "a", "count": 1.5}),
                "input.count",
                "whole number",
            ),
            (
                json!({"project": "a", "mode": "slow"}),
                "input.mode",
                "one of",
            ),
            (
                json!({"project": "a", "ratio": "x"}),
                "input.ratio",
                "a number",
            ),
            (
                json!({"project": "a", "extra": 1}),
                "input.extra",
                "not a field",
            ),
            (json!(["a"]), "input", "object"),
        ] {
            let e = s.apply(Some(&input)).unwrap_err();
            assert_eq!(e.field, field, "{input}");
            assert!(e.message.contains(says), "{input}: {}", e.message);
        }
        assert_eq!(
            s.apply(Some(&json!({"project": "a", "count": 2.0})))
                .unwrap()["count"],
            json!(2.0)
        );
    }

    #[test]
    fn a_broken_form_names_what_is_wrong() {
        for (raw, field) in [
            (r#"{"type":"array"}"#, "inputSchema.type"),
            (
                r#"{"type":"object","properties":{"a b":{"type":"string"}}}"#,
                "inputSchema.properties.a b",
            ),
            (
                r#"{"type":"object","properties":{"1st":{"type":"string"}}}"#,
                "inputSchema.properties.1st",
            ),
            (
                r#"{"type":"object","properties":{"__proto__":{"type":"string"}}}"#,
                "inputSchema.properties.__proto__",
            ),
            (
                r#"{"type":"object","properties":{"n":{"type":"string","minimum":1}}}"#,
                "inputSchema.properties.n",
            ),
            (
                r#"{"type":"object","properties":{"n":{"type":"string","pattern":"("}}}"#,
                "inputSchema.properties.n.pattern",
            ),
            (
                r#"{"type":"object","properties":{"n":{"type":"integer","default":"x"}}}"#,
                "inputSchema.properties.n.default",
            ),
            (
                r#"{"type":"object","properties":{"n":{"type":"integer","enum":[1,"2"]}}}"#,
                "inputSchema.properties.n.enum",
            ),
            (
                r#"{"type":"object","properties":{},"required":["x"]}"#,
                "inputSchema.required",
            ),
            (
                r#"{"type":"object","properties":{"n":{"type":"date"}}}"#,
                "inputSchema",
            ),
        ] {
            assert_eq!(InputSchema::parse(raw).unwrap_err().field, field, "{raw}");
        }
    }
}
