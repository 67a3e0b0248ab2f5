//! Placement and failure policy: a pod's [`DisconnectPolicy`], node [`Taint`]s and the pod
//! [`Toleration`]s that let it onto (or keep it on) a tainted node.
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::quantity::{DurationValue, QuantityError};

/// A delay that may be infinite: `5s`, `10m`, or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectDelay {
    /// After this long.
    After(Duration),
    /// Never.
    Never,
}

impl DisconnectDelay {
    /// The delay, or `None` for [`DisconnectDelay::Never`].
    pub fn duration(self) -> Option<Duration> {
        match self {
            DisconnectDelay::After(d) => Some(d),
            DisconnectDelay::Never => None,
        }
    }
}

impl FromStr for DisconnectDelay {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "never" {
            return Ok(DisconnectDelay::Never);
        }
        s.parse::<DurationValue>()
            .map(|d| DisconnectDelay::After(d.0))
            .map_err(|_| QuantityError::Duration(format!("{s} (or `never`)")))
    }
}

impl fmt::Display for DisconnectDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectDelay::After(d) => {
                let text = DurationValue(*d).to_string().replace(' ', "");
                f.write_str(&text)
            }
            DisconnectDelay::Never => f.write_str("never"),
        }
    }
}

impl Serialize for DisconnectDelay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DisconnectDelay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What happens to a pod while its node cannot be reached (`spec.disconnect`).
///
/// Two clocks run when a node and the control plane lose each other: the control plane's (the
/// node is `NotReady`; [`replace_after`](Self::replace_after) later the pod is evicted and replaced
/// elsewhere) and the agent's (no contact with the control plane; [`stop_after`](Self::stop_after)
/// later the agent stops the pod). Both default to the cluster's behaviour: replace after the
/// control plane's eviction grace, keep running on the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisconnectPolicy {
    /// How long after its node became `NotReady` the pod is evicted and replaced (default: the
    /// control plane's eviction grace). `never` keeps it bound to the node, assumed running, and
    /// in its services' endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_after: Option<DisconnectDelay>,
    /// How long the agent keeps the pod running without contact with the control plane (default:
    /// `never`, it keeps running). Started again, same uid, once contact returns if the pod is
    /// still bound to the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after: Option<DisconnectDelay>,
}

impl DisconnectPolicy {
    /// How long after `NotReady` to evict, given the cluster default (`None`: never).
    pub fn replace_after_or(&self, default: Duration) -> Option<Duration> {
        self.replace_after
            .unwrap_or(DisconnectDelay::After(default))
            .duration()
    }

    /// How long without contact the agent keeps the pod running (`None`: forever).
    pub fn stop_after(&self) -> Option<Duration> {
        self.stop_after.and_then(DisconnectDelay::duration)
    }
}

/// What a taint does to pods that do not tolerate it.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum TaintEffect {
    /// No new pods are scheduled on the node.
    #[default]
    NoSchedule,
    /// No new pods, and pods already there are evicted.
    NoExecute,
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        })
    }
}

/// A mark on a node that repels pods which do not tolerate it (`spec.taints`).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    /// A label-style key (`dedicated`, `skiff.dev/edge`).
    pub key: String,
    /// Optional value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// What it does.
    pub effect: TaintEffect,
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect)
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect)
        }
    }
}

impl FromStr for Taint {
    type Err = String;
    /// Parses `key[=value]:Effect` (`dedicated=edge:NoSchedule`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kv, effect) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("taint {s:?} must be key[=value]:NoSchedule|NoExecute"))?;
        let effect = match effect {
            "NoSchedule" => TaintEffect::NoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            other => return Err(format!("taint effect {other:?} must be NoSchedule or NoExecute")),
        };
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        Ok(Taint {
            key: key.to_owned(),
            value: value.to_owned(),
            effect,
        })
    }
}

/// How a toleration matches a taint's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TolerationOperator {
    /// Key and value must be equal (the default).
    #[default]
    Equal,
    /// Any value of the key (an empty key: every taint).
    Exists,
}

/// Lets a pod onto a node with a matching taint (`spec.tolerations`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key; empty with `Exists` matches every key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// How the value is compared.
    #[serde(default)]
    pub operator: TolerationOperator,
    /// The value for `Equal`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The effect it tolerates; absent tolerates both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether this toleration matches `taint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => self.key.is_empty() || self.key == taint.key,
            TolerationOperator::Equal => self.key == taint.key && self.value == taint.value,
        }
    }
}

/// The first of `taints` with an effect in `effects` that no toleration matches.
pub fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[TaintEffect],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect))
        .find(|t| !tolerations.iter().any(|tol| tol.tolerates(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_and_print() {
        let p: DisconnectPolicy =
            serde_json::from_str(r#"{"replaceAfter":"never","stopAfter":"10m"}"#).unwrap();
        assert_eq!(p.replace_after, Some(DisconnectDelay::Never));
        assert_eq!(p.stop_after(), Some(Duration::from_secs(600)));
        assert_eq!(p.replace_after_or(Duration::from_secs(5)), None);
        assert_eq!(
            DisconnectPolicy::default().replace_after_or(Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"replaceAfter":"never","stopAfter":"10m"}"#
        );
        let e = serde_json::from_str::<DisconnectPolicy>(r#"{"replaceAfter":"soon"}"#).unwrap_err();
        assert!(e.to_string().contains("never"), "{e}");
    }

    #[test]
    fn tolerations_match_taints() {
        let t: Taint = "dedicated=edge:NoExecute".parse().unwrap();
        assert_eq!(t.to_string(), "dedicated=edge:NoExecute");
        let equal = Toleration {
            key: "dedicated".into(),
            value: "edge".into(),
            ..Default::default()
        };
        assert!(equal.tolerates(&t));
        let other_value = Toleration {
            value: "gpu".into(),
            ..equal.clone()
        };
        assert!(!other_value.tolerates(&t));
        let exists = Toleration {
            key: "dedicated".into(),
            operator: TolerationOperator::Exists,
            effect: Some(TaintEffect::NoSchedule),
            ..Default::default()
        };
        assert!(!exists.tolerates(&t), "effect differs");
        let all = Toleration {
            operator: TolerationOperator::Exists,
            ..Default::default()
        };
        assert!(all.tolerates(&t));
        assert_eq!(
            untolerated(std::slice::from_ref(&t), &[], &[TaintEffect::NoExecute]),
            Some(&t)
        );
        assert_eq!(
            untolerated(std::slice::from_ref(&t), &[], &[TaintEffect::NoSchedule]),
            None
        );
        assert!("x:Maybe".parse::<Taint>().is_err());
    }
}
