//! The framing of a log entry: many proposals in one entry, and the entry context naming the batch.
//!
//! Entry data (all integers little-endian):
//!
//! ```text
//! [version: u8 = 1][count: u32]{ [len: u32][proposal bytes; len] } × count
//! ```
//!
//! Entry context: `[version: u8 = 1][proposer id: u64][batch id: u64]`. The proposer uses it, with
//! the entry's index and term, to find the callers waiting for the entry's outputs.

const VERSION: u8 = 1;

/// Frames proposals into one entry's data.
pub(crate) fn encode<'a>(proposals: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(VERSION);
    out.extend_from_slice(&(proposals.len() as u32).to_le_bytes());
    for p in proposals {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Splits an entry's data back into its proposals.
///
/// # Errors
///
/// A message when the framing is malformed (an unknown version or lengths past the end).
pub(crate) fn decode(data: &[u8]) -> Result<Vec<&[u8]>, String> {
    let (&version, mut rest) = data.split_first().ok_or("empty batch")?;
    if version != VERSION {
        return Err(format!("unknown batch version {version}"));
    }
    let count = take_u32(&mut rest)? as usize;
    // Every proposal costs at least its 4-byte length, which bounds `count` by the data itself.
    if count > rest.len() / 4 {
        return Err(format!("batch claims {count} proposals in {} bytes", rest.len()));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take_u32(&mut rest)? as usize;
        if len > rest.len() {
            return Err(format!("proposal of {len} bytes runs past the end of the batch"));
        }
        let (p, tail) = rest.split_at(len);
        out.push(p);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the batch", rest.len()));
    }
    Ok(out)
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, String> {
    let (head, tail) = rest.split_first_chunk::<4>().ok_or("truncated batch length")?;
    *rest = tail;
    Ok(u32::from_le_bytes(*head))
}

/// Encodes the entry context naming the proposer and its batch.
pub(crate) fn context(proposer: u64, batch: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    out.push(VERSION);
    out.extend_from_slice(&proposer.to_le_bytes());
    out.extend_from_slice(&batch.to_le_bytes());
    out
}

/// Decodes an entry context into `(proposer, batch)`; `None` for contexts this crate did not write.
pub(crate) fn parse_context(ctx: &[u8]) -> Option<(u64, u64)> {
    let (&version, rest) = ctx.split_first()?;
    if version != VERSION || rest.len() != 16 {
        return None;
    }
    let (a, b) = rest.split_at(8);
    Some((
        u64::from_le_bytes(a.try_into().ok()?),
        u64::from_le_bytes(b.try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_empty_proposals() {
        let ps: Vec<&[u8]> = vec![b"a", b"", b"hello world"];
        let data = encode(ps.iter().copied());
        assert_eq!(decode(&data).unwrap(), ps);
        assert_eq!(decode(&encode(std::iter::empty())).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn rejects_malformed_batches() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[2, 0, 0, 0, 0]).is_err());
        assert!(decode(&[1, 255, 255, 255, 255]).is_err());
        assert!(decode(&[1, 1, 0, 0, 0, 9, 0, 0, 0, b'x']).is_err());
        let mut data = encode([b"x".as_slice()].into_iter());
        data.push(0);
        assert!(decode(&data).is_err());
    }

    #[test]
    fn context_round_trips() {
        assert_eq!(parse_context(&context(3, 99)), Some((3, 99)));
        assert_eq!(parse_context(b"junk"), None);
    }
}
