//! JSON read as the reference scanner's Go decoder reads it: the first value of the
//! input (what follows is ignored), `null` for any field reading as its zero value.

use serde::de::DeserializeOwned;

use super::Skip;

/// Decodes the first JSON value of `bytes` as `T`, which must be an object (as for the
/// reference's Go structs: an array or a string is not one).
pub(crate) fn first<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Skip> {
    let start = bytes.iter().position(|c| !c.is_ascii_whitespace());
    if start.is_some_and(|i| bytes.get(i) != Some(&b'{')) {
        return Err("not a JSON object".into());
    }
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    match values.next() {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(format!("not valid JSON: {e}")),
        None => Err("empty file".into()),
    }
}

/// Deserialises `null` as the type's default.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

use serde::Deserialize as _;
