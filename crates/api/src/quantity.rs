//! Quantities written the Kubernetes way: `64Mi`, `512Ki`, `2Gi`; durations as `30s`, `250ms`.
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A quantity or duration that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a byte quantity.
    #[error(
        "invalid byte quantity {0:?}: use a whole number of bytes or a number with Ki, Mi, Gi, K, M or G (e.g. 64Mi)"
    )]
    Bytes(String),
    /// Not a duration.
    #[error("invalid duration {0:?}: use a number with a unit, e.g. 500ms, 30s, 2m")]
    Duration(String),
    /// A duration longer than any Skiff field takes.
    #[error("duration {0:?} is too long: durations are at most 366d")]
    DurationTooLong(String),
    /// Not a CPU quantity.
    #[error("invalid CPU quantity {0:?}: use cores (1, 0.5, 2) or millicores (250m)")]
    Cpu(String),
}

/// CPU in thousandths of a core (`250m` = a quarter core, `2` = two cores).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millicores(pub u64);

impl FromStr for Millicores {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || QuantityError::Cpu(s.to_owned());
        let t = s.trim();
        if let Some(m) = t.strip_suffix('m') {
            return m.parse::<u64>().map(Millicores).map_err(|_| bad());
        }
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() && frac.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<3}").parse().map_err(|_| bad())?
        };
        whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(frac))
            .map(Millicores)
            .ok_or_else(bad)
    }
}

impl fmt::Display for Millicores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

impl Serialize for Millicores {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Millicores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Millicores;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CPU quantity such as 250m or 2")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Millicores, E> {
                v.checked_mul(1000)
                    .map(Millicores)
                    .ok_or_else(|| E::custom(QuantityError::Cpu(v.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Millicores, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(QuantityError::Cpu(v.to_string())))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Millicores, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Millicores, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A number of bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| QuantityError::Bytes(s.to_owned()))?;
        let mul: u64 = match unit {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "K" | "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            _ => return Err(QuantityError::Bytes(s.to_owned())),
        };
        n.checked_mul(mul)
            .map(ByteSize)
            .ok_or_else(|| QuantityError::Bytes(s.to_owned()))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        for (unit, m) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if v >= m && v.is_multiple_of(m) {
                return write!(f, "{}{unit}", v / m);
            }
        }
        write!(f, "{v}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte quantity such as 64Mi")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(QuantityError::Bytes(v.to_string())))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written with a unit (`30s`, `250ms`, `2m`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationValue(pub Duration);

impl FromStr for DurationValue {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() || t.starts_with('-') {
            return Err(QuantityError::Duration(s.to_owned()));
        }
        let d = humantime::parse_duration(t).map_err(|_| QuantityError::Duration(s.to_owned()))?;
        if d > DurationValue::MAX {
            return Err(QuantityError::DurationTooLong(s.to_owned()));
        }
        Ok(DurationValue(d))
    }
}

impl DurationValue {
    /// The longest duration any field takes (366 days): a bound that keeps every deadline and
    /// back-off computed from a duration far from overflow.
    pub const MAX: Duration = Duration::from_secs(366 * 24 * 3600);
}

impl fmt::Display for DurationValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0)).map(|_| ())
    }
}

impl Serialize for DurationValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.to_string().replace(' ', ""))
    }
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_and_print() {
        assert_eq!("64Mi".parse::<ByteSize>().unwrap(), ByteSize(64 << 20));
        assert_eq!("1000".parse::<ByteSize>().unwrap(), ByteSize(1000));
        assert_eq!("2K".parse::<ByteSize>().unwrap(), ByteSize(2000));
        assert!("64MB".parse::<ByteSize>().is_err());
        assert!("-1".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(64 << 20).to_string(), "64Mi");
        assert_eq!(ByteSize(1500).to_string(), "1500");
    }

    #[test]
    fn durations_round_trip() {
        let d: DurationValue = "1m30s".parse().unwrap();
        assert_eq!(d.0, Duration::from_secs(90));
        let json = serde_json::to_string(&d).unwrap();
        let back: DurationValue = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!("-5s".parse::<DurationValue>().is_err());
        assert!("soon".parse::<DurationValue>().is_err());
        assert_eq!(
            "366d".parse::<DurationValue>().unwrap(),
            DurationValue(DurationValue::MAX)
        );
        let long = "367d".parse::<DurationValue>().unwrap_err();
        assert_eq!(long, QuantityError::DurationTooLong("367d".into()));
        assert!(long.to_string().contains("at most 366d"), "{long}");
        assert!("100000000000h".parse::<DurationValue>().is_err());
    }
}

#[cfg(test)]
mod cpu_tests {
    use super::Millicores;

    #[test]
    fn cpu_quantities() {
        for (s, m) in [
            ("250m", 250),
            ("1", 1000),
            ("0.5", 500),
            ("2.25", 2250),
            (".1", 100),
            ("0", 0),
        ] {
            assert_eq!(s.parse::<Millicores>().unwrap(), Millicores(m), "{s}");
        }
        for s in ["", "m", "1.2345", "-1", "1x", "abc", "."] {
            assert!(s.parse::<Millicores>().is_err(), "{s} accepted");
        }
        assert_eq!(Millicores(2000).to_string(), "2");
        assert_eq!(Millicores(250).to_string(), "250m");
        let v: Millicores = serde_json::from_str("2").unwrap();
        assert_eq!(v, Millicores(2000));
        let v: Millicores = serde_json::from_str("\"500m\"").unwrap();
        assert_eq!(v, Millicores(500));
    }
}
