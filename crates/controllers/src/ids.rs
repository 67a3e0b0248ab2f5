//! Where controllers get fresh uids and name suffixes: the [`Ids`] seam (random in production,
//! counted in tests), so every controller stays a deterministic function of its inputs.
use rand::Rng;

/// Where controllers get fresh uids and name suffixes (random in production, counted in tests).
pub trait Ids {
    /// A new uid.
    fn uid(&mut self) -> String;
    /// A new 5-character name suffix.
    fn suffix(&mut self) -> String;
}

/// Random ids.
#[derive(Debug, Default)]
pub struct RandomIds;

impl Ids for RandomIds {
    fn uid(&mut self) -> String {
        random_uid()
    }
    fn suffix(&mut self) -> String {
        random_name_suffix()
    }
}

/// A random 128-bit uid, formatted like a UUID.
pub fn random_uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random suffix for generated names (no vowels, so no words).
pub fn random_name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..5)
        .map(|_| ALPHABET[r.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uids_look_like_uuids_and_differ() {
        let (a, b) = (random_uid(), random_uid());
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        let s = random_name_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|c| !b"aeiou".contains(&c)), "{s}");
    }
}
