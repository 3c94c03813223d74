//! The protocol's JSON form (proto3's JSON mapping, as Twirp servers speak it by default).
//!
//! Output: every field under its proto name (`artifact_id`), unset fields included —
//! `""`, `0`, `false`, `[]`, `{}`, and `null` for an absent message; 64-bit integers as
//! strings (`"10240"`); enums by name; timestamps as RFC 3339 in UTC.
//!
//! Input: proto names and lowerCamel names (`artifactId`) alike; unknown fields are
//! ignored; `null` is the field's default; integers as numbers or strings; enums by name
//! or number; floats as numbers, numeric strings, `"NaN"` or `"±Infinity"`. A value of
//! the wrong type is a [`JsonError`] naming the field.

use std::{collections::HashMap, fmt};

use serde_json::{Map, Number, Value};

/// A message or field value that has a JSON form.
pub trait Json: Sized {
    /// The JSON form (unset fields included).
    fn to_json(&self) -> Value;
    /// Reads the JSON form; `null` reads as the default value.
    fn from_json(value: &Value) -> Result<Self, JsonError>;
}

/// Why a JSON body does not decode: the field path and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Dotted path of the field, outermost first (empty for the body itself).
    pub path: Vec<String>,
    /// What was expected or wrong.
    pub reason: String,
}

impl JsonError {
    fn new(reason: impl Into<String>) -> Self {
        JsonError {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    /// The same error one level further out, inside `field`.
    pub fn within(mut self, field: &str) -> Self {
        self.path.insert(0, field.to_owned());
        self
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "field {}: {}", self.path.join("."), self.reason)
        }
    }
}

impl std::error::Error for JsonError {}

/// The proto name of a field from its Rust name (`r#type` → `type`).
pub fn proto_name(rust_name: &'static str) -> &'static str {
    rust_name.strip_prefix("r#").unwrap_or(rust_name)
}

/// True when `key` names the field `proto_name`: the proto name itself, or its
/// lowerCamel JSON name (underscores removed, the letter after each one upper-cased).
pub fn name_matches(key: &str, proto_name: &str) -> bool {
    if key == proto_name {
        return true;
    }
    let mut key = key.chars();
    let mut upper_next = false;
    for c in proto_name.chars() {
        if c == '_' {
            upper_next = true;
            continue;
        }
        let want = if upper_next {
            c.to_ascii_uppercase()
        } else {
            c
        };
        upper_next = false;
        if key.next() != Some(want) {
            return false;
        }
    }
    key.next().is_none()
}

/// The object a message's JSON form must be.
pub fn expect_object(value: &Value) -> Result<Option<&Map<String, Value>>, JsonError> {
    match value {
        Value::Object(map) => Ok(Some(map)),
        Value::Null => Ok(None),
        other => Err(JsonError::new(format!(
            "expected an object, got {}",
            kind(other)
        ))),
    }
}

/// A short name of a JSON value's type, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Json for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            other => Err(JsonError::new(format!(
                "expected a string, got {}",
                kind(other)
            ))),
        }
    }
}

impl Json for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            other => Err(JsonError::new(format!(
                "expected a boolean, got {}",
                kind(other)
            ))),
        }
    }
}

/// An integer from a JSON number (integral, possibly written with an exponent) or a
/// string holding one.
fn integer(value: &Value) -> Result<i128, JsonError> {
    let from_f64 = |f: f64| {
        if f.fract() == 0.0 && f.abs() < 1e19 {
            Ok(f as i128)
        } else {
            Err(JsonError::new(format!("{f} is not an integer")))
        }
    };
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Ok(i128::from(u))
            } else {
                from_f64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => match s.trim().parse::<i128>() {
            Ok(i) => Ok(i),
            Err(_) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| JsonError::new(format!("{s:?} is not an integer")))
                .and_then(from_f64),
        },
        Value::Null => Ok(0),
        other => Err(JsonError::new(format!(
            "expected an integer, got {}",
            kind(other)
        ))),
    }
}

impl Json for i32 {
    fn to_json(&self) -> Value {
        Value::Number(Number::from(*self))
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        let i = integer(value)?;
        i32::try_from(i).map_err(|_| JsonError::new(format!("{i} is out of range for int32")))
    }
}

impl Json for i64 {
    /// 64-bit integers are strings in proto3 JSON.
    fn to_json(&self) -> Value {
        Value::String(self.to_string())
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        let i = integer(value)?;
        i64::try_from(i).map_err(|_| JsonError::new(format!("{i} is out of range for int64")))
    }
}

impl Json for u64 {
    /// 64-bit integers are strings in proto3 JSON.
    fn to_json(&self) -> Value {
        Value::String(self.to_string())
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        let i = integer(value)?;
        u64::try_from(i).map_err(|_| JsonError::new(format!("{i} is out of range for uint64")))
    }
}

impl Json for Vec<u8> {
    /// `bytes` are base64 (standard alphabet, padded) in proto3 JSON; input may also use
    /// the URL-safe alphabet and leave the padding out.
    fn to_json(&self) -> Value {
        use base64::Engine as _;
        Value::String(base64::engine::general_purpose::STANDARD.encode(self))
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        use base64::Engine as _;
        let s = match value {
            Value::Null => return Ok(Vec::new()),
            Value::String(s) => s,
            other => {
                return Err(JsonError::new(format!(
                    "expected base64 bytes, got {}",
                    kind(other)
                )));
            }
        };
        let trimmed = s.trim_end_matches('=');
        let config = base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone);
        let standard = base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, config);
        let url_safe = base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
        standard
            .decode(trimmed)
            .or_else(|_| url_safe.decode(trimmed))
            .map_err(|e| JsonError::new(format!("not base64: {e}")))
    }
}

/// A float from a JSON number, a numeric string, `"NaN"` or `"±Infinity"`.
fn float(value: &Value) -> Result<f64, JsonError> {
    match value {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse::<f64>()
                .map_err(|_| JsonError::new(format!("{s:?} is not a number"))),
        },
        Value::Null => Ok(0.0),
        other => Err(JsonError::new(format!(
            "expected a number, got {}",
            kind(other)
        ))),
    }
}

/// A float's JSON form: a number, or a string for the values JSON has no number for.
fn float_json(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

impl Json for f64 {
    fn to_json(&self) -> Value {
        float_json(*self)
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        float(value)
    }
}

impl Json for f32 {
    fn to_json(&self) -> Value {
        // Through the shortest decimal of the f32, so 0.9 stays 0.9 and not 0.899999976.
        match self.to_string().parse::<f64>() {
            Ok(f) => float_json(f),
            Err(_) => float_json(f64::from(*self)),
        }
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        let f = float(value)?;
        if f.is_finite() && f.abs() > f64::from(f32::MAX) {
            return Err(JsonError::new(format!("{f} is out of range for float")));
        }
        Ok(f as f32)
    }
}

impl<T: Json> Json for Vec<T> {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(Json::to_json).collect())
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| T::from_json(v).map_err(|e| e.within(&format!("[{i}]"))))
                .collect(),
            Value::Null => Ok(Vec::new()),
            other => Err(JsonError::new(format!(
                "expected an array, got {}",
                kind(other)
            ))),
        }
    }
}

/// A singular message field: `null` when unset.
impl<T: Json> Json for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, Json::to_json)
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        match value {
            Value::Null => Ok(None),
            other => T::from_json(other).map(Some),
        }
    }
}

impl<T: Json> Json for HashMap<String, T> {
    fn to_json(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        let Some(map) = expect_object(value)? else {
            return Ok(HashMap::new());
        };
        map.iter()
            .map(|(k, v)| Ok((k.clone(), T::from_json(v).map_err(|e| e.within(k))?)))
            .collect()
    }
}

impl Json for prost_types::Timestamp {
    /// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits.
    fn to_json(&self) -> Value {
        Value::String(crate::time::format_rfc3339(
            self,
            crate::time::Fraction::Groups,
        ))
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        match value {
            Value::String(s) => crate::time::parse_rfc3339(s)
                .ok_or_else(|| JsonError::new(format!("{s:?} is not an RFC 3339 time"))),
            other => Err(JsonError::new(format!(
                "expected an RFC 3339 time string, got {}",
                kind(other)
            ))),
        }
    }
}

impl Json for prost_types::Value {
    /// `google.protobuf.Value` is any JSON value.
    fn to_json(&self) -> Value {
        value_to_json(self)
    }
    fn from_json(value: &Value) -> Result<Self, JsonError> {
        Ok(value_from_json(value))
    }
}

/// A `google.protobuf.Value` as the JSON value it stands for.
pub fn value_to_json(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => float_json(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_to_json).collect()),
    }
}

/// A JSON value as a `google.protobuf.Value` (numbers become doubles).
pub fn value_from_json(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(value_from_json).collect(),
        }),
        Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), value_from_json(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// An enum of the protocol: its values' names, for the JSON form.
pub trait ProtoEnum {
    /// `(number, NAME)` of every value.
    const VALUES: &'static [(i32, &'static str)];

    /// The name of a number, if it is a known value.
    fn name_of(number: i32) -> Option<&'static str> {
        Self::VALUES
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, name)| *name)
    }
}

/// An enum field's JSON form: its name, or the number when it is not a known value.
pub fn enum_to_json<E: ProtoEnum>(number: i32) -> Value {
    E::name_of(number).map_or_else(
        || Value::Number(Number::from(number)),
        |name| Value::String(name.to_owned()),
    )
}

/// Reads an enum field: a value's name, or any int32 number.
pub fn enum_from_json<E: ProtoEnum>(value: &Value) -> Result<i32, JsonError> {
    match value {
        Value::String(s) => E::VALUES
            .iter()
            .find(|(_, name)| name == s)
            .map(|(n, _)| *n)
            .ok_or_else(|| JsonError::new(format!("{s:?} is not a value of this enum"))),
        other => i32::from_json(other),
    }
}

/// A `map<string, Enum>` field's JSON form.
pub fn enum_map_to_json<E: ProtoEnum>(map: &HashMap<String, i32>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), enum_to_json::<E>(*v)))
            .collect(),
    )
}

/// Reads a `map<string, Enum>` field.
pub fn enum_map_from_json<E: ProtoEnum>(value: &Value) -> Result<HashMap<String, i32>, JsonError> {
    let Some(map) = expect_object(value)? else {
        return Ok(HashMap::new());
    };
    map.iter()
        .map(|(k, v)| Ok((k.clone(), enum_from_json::<E>(v).map_err(|e| e.within(k))?)))
        .collect()
}

/// Implements [`Json`] for a message from the list of its fields (their Rust names).
///
/// Reading builds the message with a struct literal of exactly these fields, so a field
/// missing from the list (or a name that is not a field) does not compile. A field of an
/// enum type is listed as `name: enum Type`, a `map<string, Enum>` as
/// `name: enum_map Type`.
macro_rules! json_message {
    ($ty:ident { $($field:ident $(: $how:ident $enum_ty:ty)?),* $(,)? }) => {
        impl $crate::proto::json::Json for $ty {
            #[allow(unused_mut)]
            fn to_json(&self) -> ::serde_json::Value {
                let mut map = ::serde_json::Map::new();
                $(
                    map.insert(
                        $crate::proto::json::proto_name(stringify!($field)).to_owned(),
                        json_message!(@out self.$field $(, $how $enum_ty)?),
                    );
                )*
                ::serde_json::Value::Object(map)
            }

            #[allow(unused_variables)]
            fn from_json(
                value: &::serde_json::Value,
            ) -> Result<Self, $crate::proto::json::JsonError> {
                $( let mut $field = Default::default(); )*
                if let Some(object) = $crate::proto::json::expect_object(value)? {
                    for (key, value) in object {
                        $(
                            let name = $crate::proto::json::proto_name(stringify!($field));
                            if $crate::proto::json::name_matches(key, name) {
                                $field = json_message!(@in value $(, $how $enum_ty)?)
                                    .map_err(|e| e.within(name))?;
                                continue;
                            }
                        )*
                    }
                }
                Ok($ty { $($field),* })
            }
        }
    };
    (@out $value:expr) => { $crate::proto::json::Json::to_json(&$value) };
    (@out $value:expr, enum $e:ty) => { $crate::proto::json::enum_to_json::<$e>($value) };
    (@out $value:expr, enum_map $e:ty) => {
        $crate::proto::json::enum_map_to_json::<$e>(&$value)
    };
    (@in $value:expr) => { $crate::proto::json::Json::from_json($value) };
    (@in $value:expr, enum $e:ty) => { $crate::proto::json::enum_from_json::<$e>($value) };
    (@in $value:expr, enum_map $e:ty) => {
        $crate::proto::json::enum_map_from_json::<$e>($value)
    };
}

pub(crate) use json_message;

/// Implements [`ProtoEnum`] for a prost enumeration from its values' names.
macro_rules! proto_enum {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $crate::proto::json::ProtoEnum for $ty {
            const VALUES: &'static [(i32, &'static str)] = &[$(($ty::$variant as i32, $name)),*];
        }
    };
}

pub(crate) use proto_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_camel_names_match() {
        for (key, name, want) in [
            ("artifact_id", "artifact_id", true),
            ("artifactId", "artifact_id", true),
            ("artifactid", "artifact_id", false),
            ("ArtifactId", "artifact_id", false),
            ("v40Score", "v40_score", true),
            ("type", "type", true),
            ("typ", "type", false),
            ("types", "type", false),
        ] {
            assert_eq!(name_matches(key, name), want, "{key} vs {name}");
        }
    }

    #[test]
    fn scalars_read_like_proto3_json() {
        assert_eq!(i64::from_json(&"10240".into()).unwrap(), 10240);
        assert_eq!(i64::from_json(&Value::from(1e3)).unwrap(), 1000);
        assert_eq!(i32::from_json(&Value::Null).unwrap(), 0);
        assert!(i32::from_json(&Value::from(1.5)).is_err());
        assert!(i32::from_json(&Value::from(1u64 << 40)).is_err());
        assert!(i32::from_json(&"x".into()).is_err());
        assert!(String::from_json(&Value::from(1)).is_err());
        assert!(bool::from_json(&"true".into()).is_err());
        assert!(f64::from_json(&"NaN".into()).unwrap().is_nan());
        assert_eq!(f32::from_json(&"0.5".into()).unwrap(), 0.5);
        assert_eq!(0.9f32.to_json(), Value::from(0.9));
        assert_eq!(7i64.to_json(), Value::from("7"));
        assert_eq!(f64::INFINITY.to_json(), Value::from("Infinity"));
    }

    #[test]
    fn bytes_and_unsigned_read_like_proto3_json() {
        let bytes = b"\xff\x00{\"a\"}".to_vec();
        let json = bytes.to_json();
        assert_eq!(json, Value::from("/wB7ImEifQ=="));
        assert_eq!(Vec::<u8>::from_json(&json).unwrap(), bytes);
        assert_eq!(Vec::<u8>::from_json(&"_wB7ImEifQ".into()).unwrap(), bytes);
        assert!(Vec::<u8>::from_json(&"!!".into()).is_err());
        assert!(Vec::<u8>::from_json(&Value::from(1)).is_err());
        assert_eq!(u64::MAX.to_json(), Value::from(u64::MAX.to_string()));
        assert_eq!(
            u64::from_json(&"18446744073709551615".into()).unwrap(),
            u64::MAX
        );
        assert!(u64::from_json(&Value::from(-1)).is_err());
    }

    #[test]
    fn google_values_round_trip() {
        let json = serde_json::json!({"a": [1.5, "x", true, null, {"b": {}}]});
        assert_eq!(value_to_json(&value_from_json(&json)), json);
    }
}
