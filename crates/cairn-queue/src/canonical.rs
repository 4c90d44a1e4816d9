//! The canonical form of `(kind, inputs)` that the dedup guard keys on.
//!
//! The canonical encoding sorts object keys itself instead of trusting `serde_json::Map`'s
//! iteration order: another crate in the build may enable serde_json's `preserve_order`
//! feature, which makes the map keep insertion order and would break a key built from it.
//! The encoding is streamed into a hasher rather than built as a string, so a lookup allocates
//! nothing but the key list of each object. Equal hashes are confirmed with
//! [`canonical_eq`], which compares objects by key lookup, so a hash collision can never
//! merge two different tasks.

use std::hash::{DefaultHasher, Hasher};

use serde_json::{Number, Value};

/// Hashes the canonical encoding of `kind` and `inputs`. Two pairs that are equal JSON values
/// up to object key order get the same hash. `DefaultHasher::new()` uses fixed keys, so the
/// hash is the same in every process (not that it is ever stored).
pub(crate) fn dedup_hash(kind: &str, inputs: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    write_str(&mut hasher, kind);
    write_value(&mut hasher, inputs);
    hasher.finish()
}

/// Whether two values are equal up to object key order, with numbers compared by
/// [`number_key`] (so the same numbers that hash alike compare alike).
pub(crate) fn canonical_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => number_key(x) == number_key(y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| canonical_eq(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| canonical_eq(x, y)))
        }
        _ => false,
    }
}

/// A number as a tag and 64 bits: unsigned, signed or floating point. Negative zero is folded
/// into zero so that the two compare and hash alike.
fn number_key(n: &Number) -> (u8, u64) {
    if let Some(u) = n.as_u64() {
        (0, u)
    } else if let Some(i) = n.as_i64() {
        (1, i as u64)
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        let f = if f == 0.0 { 0.0 } else { f };
        (2, f.to_bits())
    }
}

fn write_str(hasher: &mut DefaultHasher, s: &str) {
    // The length prefix keeps adjacent strings from running together.
    hasher.write_usize(s.len());
    hasher.write(s.as_bytes());
}

fn write_value(hasher: &mut DefaultHasher, value: &Value) {
    match value {
        Value::Null => hasher.write_u8(b'n'),
        Value::Bool(b) => hasher.write_u8(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            let (tag, bits) = number_key(n);
            hasher.write_u8(b'0' + tag);
            hasher.write_u64(bits);
        }
        Value::String(s) => {
            hasher.write_u8(b's');
            write_str(hasher, s);
        }
        Value::Array(items) => {
            hasher.write_u8(b'[');
            hasher.write_usize(items.len());
            for item in items {
                write_value(hasher, item);
            }
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // Keys within one object are unique, so an unstable sort is deterministic.
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            hasher.write_u8(b'{');
            hasher.write_usize(entries.len());
            for (key, item) in entries {
                write_str(hasher, key);
                write_value(hasher, item);
            }
        }
    }
}
