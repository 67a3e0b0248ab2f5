//! The labels an agent registers its node with: the operator's, plus what the machine is
//! ([`ARCH_LABEL`], [`OS_LABEL`], [`HOSTNAME_LABEL`]), which win over user labels of the same key.
use std::collections::BTreeMap;

use skiff_api::{ARCH_LABEL, HOSTNAME_LABEL, OS_LABEL};

/// The CPU architecture in the names the ecosystem uses (`amd64`, `arm64`).
pub(crate) fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `raw` made a valid label value (lowercase letters, digits, `-`, `_`, `.`; at most 63; starts and
/// ends alphanumeric), or `None` when nothing is left.
fn label_value(raw: &str) -> Option<String> {
    let kept: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    let trimmed = kept.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The machine's host name: `/etc/hostname`, else the kernel's, else `$HOSTNAME`.
pub(crate) fn hostname() -> Option<String> {
    ["/etc/hostname", "/proc/sys/kernel/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .find_map(|h| label_value(&h))
}

/// `user` labels plus [`ARCH_LABEL`], [`OS_LABEL`] and [`HOSTNAME_LABEL`] (the node name when the
/// host name cannot be read).
pub(crate) fn node_labels(user: &BTreeMap<String, String>, node_name: &str) -> BTreeMap<String, String> {
    let mut labels = user.clone();
    labels.insert(ARCH_LABEL.into(), arch().into());
    labels.insert(OS_LABEL.into(), std::env::consts::OS.into());
    labels.insert(
        HOSTNAME_LABEL.into(),
        hostname().unwrap_or_else(|| node_name.to_owned()),
    );
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_labels_are_added_and_win() {
        let user = BTreeMap::from([
            ("zone".to_owned(), "eu".to_owned()),
            (OS_LABEL.to_owned(), "plan9".to_owned()),
        ]);
        let l = node_labels(&user, "n1");
        assert_eq!(l["zone"], "eu");
        assert_eq!(l[OS_LABEL], std::env::consts::OS);
        assert!(!l[ARCH_LABEL].is_empty());
        assert!(label_value(&l[HOSTNAME_LABEL]).as_deref() == Some(l[HOSTNAME_LABEL].as_str()));
    }

    #[test]
    fn host_names_become_valid_label_values() {
        assert_eq!(label_value("Worker-7.Local\n").as_deref(), Some("worker-7.local"));
        assert_eq!(label_value("-x-").as_deref(), Some("x"));
        assert_eq!(label_value("  \n"), None);
        assert_eq!(label_value(&"a".repeat(80)).map(|s| s.len()), Some(63));
    }
}
