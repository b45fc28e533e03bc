//! Integers as JSON Schema counts them: `600000.0` is the integer 600000, as any JSON number
//! with no fractional part is, so a client that writes every number as a float is not refused.

use serde::{Deserialize, Deserializer};
use serde_json::Number;

fn integer<E: serde::de::Error>(n: &Number) -> Result<i64, E> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // Past ±2^53 a float no longer tells integers apart, and every limit is far below.
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
        _ => Err(E::custom(format!(
            "invalid number {n}: expected an integer"
        ))),
    }
}

pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<Number>::deserialize(d)?
        .map(|n| integer(&n))
        .transpose()
}

pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    integer(&Number::deserialize(d)?)
}

pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    Vec::<Number>::deserialize(d)?.iter().map(integer).collect()
}
