//! The integration tests of cache-server, as one test binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cache_server::proto::Json;
use serde_json::Value;

mod claims;
mod convert;
mod protocol;
mod scan;
mod transcode;

/// A message's JSON form with every sub-message that holds nothing (all fields unset)
/// written as absent: the reference turns both into the same zero value, so the protocol
/// carries no difference between them (the v0.76 client sends empty `layer`, `code` and
/// `rendered_cause` messages).
pub(crate) fn canonical<M: Json>(msg: &M) -> Value {
    fn walk(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let m: serde_json::Map<String, Value> =
                    m.into_iter().map(|(k, v)| (k, walk(v))).collect();
                let empty = m.values().all(|v| match v {
                    Value::Null => true,
                    Value::Bool(b) => !b,
                    Value::String(s) => s.is_empty() || s == "0",
                    Value::Number(n) => n.as_f64() == Some(0.0),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                });
                if empty && !m.is_empty() {
                    Value::Null
                } else {
                    Value::Object(m)
                }
            }
            Value::Array(items) => Value::Array(items.into_iter().map(walk).collect()),
            other => other,
        }
    }
    walk(msg.to_json())
}
