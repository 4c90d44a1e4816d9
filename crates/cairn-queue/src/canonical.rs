//! The canonical encoding of `(kind, inputs)` that the dedup guard keys on.
//!
//! The encoding sorts object keys itself instead of trusting `serde_json::Map`'s iteration
//! order: another crate in the build may enable serde_json's `preserve_order` feature, which
//! would make the map keep insertion order and break a key built from it.

use std::fmt::Write as _;

use serde_json::Value;

/// Encodes `kind` and `inputs` so that two pairs get the same key exactly when they are equal
/// JSON values up to object key order. Every string is length-prefixed, so no two different
/// values can run together into the same text.
pub(crate) fn dedup_key(kind: &str, inputs: &Value) -> String {
    let mut out = String::with_capacity(kind.len() + 16);
    write_str(&mut out, kind);
    write_value(&mut out, inputs);
    out
}

fn write_str(out: &mut String, s: &str) {
    // Writing into a String cannot fail.
    let _ = write!(out, "{}:", s.len());
    out.push_str(s);
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push('n'),
        Value::Bool(true) => out.push('t'),
        Value::Bool(false) => out.push('f'),
        Value::Number(n) => {
            // Writing into a String cannot fail.
            let _ = write!(out, "#{n};");
        }
        Value::String(s) => {
            out.push('s');
            write_str(out, s);
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // Keys within one object are unique, so an unstable sort is deterministic.
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (key, item) in entries {
                write_str(out, key);
                write_value(out, item);
            }
            out.push('}');
        }
    }
}
