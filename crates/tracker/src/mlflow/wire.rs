//! Wire shapes every MLflow endpoint family shares: `{key, value}` tags and `{alias, version}`
//! aliases (MLflow sends tags as lists, versions as strings), and string literals in search
//! filters.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

/// One tag as MLflow sends it.
#[derive(Deserialize)]
pub(super) struct WireTag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// One registered-model alias as MLflow sends it.
#[derive(Deserialize)]
pub(super) struct WireAlias {
    pub alias: String,
    pub version: String,
}

/// The aliases among `aliases` that point at `version` (a registered model lists every alias;
/// a version's own answer lists none).
pub(super) fn aliases_of(aliases: &[WireAlias], version: u32) -> Vec<String> {
    let version = version.to_string();
    aliases
        .iter()
        .filter(|a| a.version == version)
        .map(|a| a.alias.clone())
        .collect()
}

/// Tags as a map.
pub(super) fn tag_map(tags: Vec<WireTag>) -> BTreeMap<String, String> {
    tags.into_iter().map(|t| (t.key, t.value)).collect()
}

/// Tags as MLflow takes them: a list of `{key, value}`.
pub(super) fn tag_list<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<Value> {
    pairs
        .into_iter()
        .map(|(key, value)| json!({ "key": key.as_ref(), "value": value.as_ref() }))
        .collect()
}

/// `value` as a string literal of an MLflow search filter (`'value'`), or `None` when it holds a
/// `'`: MLflow's filter parser has no escape for one, so such a value cannot be searched for.
pub(super) fn filter_literal(value: &str) -> Option<String> {
    (!value.contains('\'')).then(|| format!("'{value}'"))
}
