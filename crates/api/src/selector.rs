//! Label selectors in the query-string form `app=web,tier!=db,canary,!legacy`.
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A selector that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid label selector {input:?}: {why} (expected terms like app=web, tier!=db, canary or !legacy, separated by commas)"
)]
pub struct SelectorError {
    /// The whole selector.
    pub input: String,
    /// What is wrong.
    pub why: String,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorTerm {
    /// `key=value` (or `key==value`).
    Equals(String, String),
    /// `key!=value` (also true when the key is absent).
    NotEquals(String, String),
    /// `key`: the label is present.
    Exists(String),
    /// `!key`: the label is absent.
    NotExists(String),
}

/// A conjunction of [`SelectorTerm`]s; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<SelectorTerm>);

impl LabelSelector {
    /// A selector requiring every `key=value` of `labels`.
    pub fn from_map(labels: &BTreeMap<String, String>) -> Self {
        LabelSelector(
            labels
                .iter()
                .map(|(k, v)| SelectorTerm::Equals(k.clone(), v.clone()))
                .collect(),
        )
    }

    /// Whether `labels` satisfy every term.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|t| match t {
            SelectorTerm::Equals(k, v) => labels.get(k) == Some(v),
            SelectorTerm::NotEquals(k, v) => labels.get(k) != Some(v),
            SelectorTerm::Exists(k) => labels.contains_key(k),
            SelectorTerm::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Whether every `key=value` of `selector` is in `labels` (an empty selector matches nothing, as a
/// Service or Deployment selector must never select every pod by accident).
pub fn map_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |why: String| SelectorError {
            input: input.to_owned(),
            why,
        };
        let mut terms = Vec::new();
        for raw in input.split(',') {
            let t = raw.trim();
            if t.is_empty() {
                if input.trim().is_empty() {
                    continue;
                }
                return Err(err("empty term".into()));
            }
            let term = if let Some((k, v)) = t.split_once("!=") {
                SelectorTerm::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                SelectorTerm::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = t.strip_prefix('!') {
                SelectorTerm::NotExists(k.trim().into())
            } else {
                SelectorTerm::Exists(t.into())
            };
            let key = match &term {
                SelectorTerm::Equals(k, _)
                | SelectorTerm::NotEquals(k, _)
                | SelectorTerm::Exists(k)
                | SelectorTerm::NotExists(k) => k,
            };
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "=!(),".contains(c)) {
                return Err(err(format!("bad key in term {t:?}")));
            }
            terms.push(term);
        }
        Ok(LabelSelector(terms))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|t| match t {
                SelectorTerm::Equals(k, v) => format!("{k}={v}"),
                SelectorTerm::NotEquals(k, v) => format!("{k}!={v}"),
                SelectorTerm::Exists(k) => k.clone(),
                SelectorTerm::NotExists(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let s: LabelSelector = "app=web, tier!=db,canary,!legacy".parse().unwrap();
        let mut l = BTreeMap::new();
        l.insert("app".to_string(), "web".to_string());
        l.insert("canary".to_string(), "yes".to_string());
        assert!(s.matches(&l));
        l.insert("legacy".to_string(), "1".to_string());
        assert!(!s.matches(&l));
        assert!("a=b,,c".parse::<LabelSelector>().is_err());
        assert!("".parse::<LabelSelector>().unwrap().matches(&BTreeMap::new()));
    }
}
