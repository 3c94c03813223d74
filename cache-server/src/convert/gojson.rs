//! Writing and reading JSON objects shaped like Go's `encoding/json` output of the
//! reference's types: PascalCase keys, fields with `omitempty` left out when zero, the
//! others always written (`null` for an empty list).

use serde_json::{Map, Value};

use super::ConvertError;

/// Builds one object, field by field.
#[derive(Default)]
pub(crate) struct GoObj(Map<String, Value>);

impl GoObj {
    pub(crate) fn new() -> Self {
        GoObj::default()
    }

    /// A string field without `omitempty`.
    pub(crate) fn str(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.into(), Value::String(value.into()));
        self
    }

    /// A string field with `omitempty`.
    pub(crate) fn str_nz(self, key: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.str(key, value)
        }
    }

    /// An integer field without `omitempty`.
    pub(crate) fn int(mut self, key: &str, value: i64) -> Self {
        self.0.insert(key.into(), Value::Number(value.into()));
        self
    }

    /// An integer field with `omitempty`.
    pub(crate) fn int_nz(self, key: &str, value: i64) -> Self {
        if value == 0 {
            self
        } else {
            self.int(key, value)
        }
    }

    /// A boolean field without `omitempty`.
    pub(crate) fn bool(mut self, key: &str, value: bool) -> Self {
        self.0.insert(key.into(), Value::Bool(value));
        self
    }

    /// A boolean field with `omitempty`.
    pub(crate) fn bool_nz(self, key: &str, value: bool) -> Self {
        if value { self.bool(key, true) } else { self }
    }

    /// A string list without `omitempty`: `null` when empty (a nil slice).
    pub(crate) fn strs(mut self, key: &str, value: &[String]) -> Self {
        let v = if value.is_empty() {
            Value::Null
        } else {
            Value::Array(value.iter().cloned().map(Value::String).collect())
        };
        self.0.insert(key.into(), v);
        self
    }

    /// A string list with `omitempty`.
    pub(crate) fn strs_nz(self, key: &str, value: &[String]) -> Self {
        if value.is_empty() {
            self
        } else {
            self.strs(key, value)
        }
    }

    /// A list of objects without `omitempty`: `null` when empty.
    pub(crate) fn list(mut self, key: &str, items: Vec<Value>) -> Self {
        let v = if items.is_empty() {
            Value::Null
        } else {
            Value::Array(items)
        };
        self.0.insert(key.into(), v);
        self
    }

    /// A list of objects with `omitempty`.
    pub(crate) fn list_nz(self, key: &str, items: Vec<Value>) -> Self {
        if items.is_empty() {
            self
        } else {
            self.list(key, items)
        }
    }

    /// Any value, always written.
    pub(crate) fn value(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.into(), value);
        self
    }

    /// A nested object with `omitzero`/`omitempty`: left out when it has no fields.
    pub(crate) fn obj_nz(self, key: &str, value: Value) -> Self {
        match &value {
            Value::Object(m) if m.is_empty() => self,
            Value::Null => self,
            _ => self.value(key, value),
        }
    }

    /// Copies every field of another object in (an embedded Go struct).
    pub(crate) fn inline(mut self, other: Value) -> Self {
        if let Value::Object(m) = other {
            self.0.extend(m);
        }
        self
    }

    pub(crate) fn build(self) -> Value {
        Value::Object(self.0)
    }

    pub(crate) fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// Reads one object the way Go's `encoding/json` would: keys match exactly or, failing
/// that, ignoring case; `null` and absent fields read as zero values.
#[derive(Clone, Copy)]
pub(crate) struct GoRead<'a>(&'a Map<String, Value>);

impl<'a> GoRead<'a> {
    /// The object `value` must be; `None` for `null`.
    pub(crate) fn of(value: &'a Value) -> Result<Option<GoRead<'a>>, ConvertError> {
        match value {
            Value::Object(m) => Ok(Some(GoRead(m))),
            Value::Null => Ok(None),
            other => Err(ConvertError::new(format!(
                "expected an object, got {}",
                short(other)
            ))),
        }
    }

    /// Reads a map that is already known to be an object.
    pub(crate) fn map(map: &'a Map<String, Value>) -> GoRead<'a> {
        GoRead(map)
    }

    /// The whole object.
    pub(crate) fn raw(&self) -> &'a Map<String, Value> {
        self.0
    }

    /// The value of a field; `None` when absent or `null`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        let v = self.0.get(key).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        });
        v.filter(|v| !v.is_null())
    }

    pub(crate) fn str(&self, key: &str) -> Result<String, ConvertError> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(ConvertError::field(key, "a string", other)),
        }
    }

    pub(crate) fn i64(&self, key: &str) -> Result<i64, ConvertError> {
        match self.get(key) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| ConvertError::field(key, "an integer", &Value::Number(n.clone()))),
            Some(other) => Err(ConvertError::field(key, "an integer", other)),
        }
    }

    pub(crate) fn i32(&self, key: &str) -> Result<i32, ConvertError> {
        let n = self.i64(key)?;
        i32::try_from(n).map_err(|_| ConvertError::new(format!("{key}: {n} is out of range")))
    }

    pub(crate) fn bool(&self, key: &str) -> Result<bool, ConvertError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(ConvertError::field(key, "a boolean", other)),
        }
    }

    pub(crate) fn strs(&self, key: &str) -> Result<Vec<String>, ConvertError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Null => Ok(String::new()),
                    other => Err(ConvertError::field(key, "a list of strings", other)),
                })
                .collect(),
            Some(other) => Err(ConvertError::field(key, "a list of strings", other)),
        }
    }

    /// A nested object; `None` when absent or `null`.
    pub(crate) fn obj(&self, key: &str) -> Result<Option<GoRead<'a>>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => GoRead::of(v).map_err(|e| e.within(key)),
        }
    }

    /// A list of objects, each converted by `f`.
    pub(crate) fn list<T>(
        &self,
        key: &str,
        f: impl Fn(GoRead<'a>) -> Result<T, ConvertError>,
    ) -> Result<Vec<T>, ConvertError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => list_of(v, f).map_err(|e| e.within(key)),
        }
    }
}

/// Converts each object of a JSON array (`null` is empty).
pub(crate) fn list_of<'a, T>(
    value: &'a Value,
    f: impl Fn(GoRead<'a>) -> Result<T, ConvertError>,
) -> Result<Vec<T>, ConvertError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match GoRead::of(v) {
                Ok(Some(r)) => Some(f(r).map_err(|e| e.within(&format!("[{i}]")))),
                Ok(None) => None,
                Err(e) => Some(Err(e.within(&format!("[{i}]")))),
            })
            .collect(),
        other => Err(ConvertError::new(format!(
            "expected a list, got {}",
            short(other)
        ))),
    }
}

/// A short description of a value for messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s,
    }
}

impl ConvertError {
    fn field(key: &str, expected: &str, got: &Value) -> Self {
        ConvertError::new(format!("expected {expected}, got {}", short(got))).within(key)
    }
}
