//! The records of a state stream: how each is framed, written and read back.
//!
//! Decoding never trusts a length: a record's payload is read as it arrives (never allocated up
//! front from its announced length), is at most [`MAX_RECORD_BYTES`], and every field inside it is
//! checked against what is left. Text must be UTF-8 and JSON must parse, so what decodes can be
//! written to the tables as it is.
use std::io::{self, Read, Write};

/// The first bytes of a state stream.
pub(crate) const MAGIC: &[u8; 11] = b"SKIFF-STATE";
/// The version this release writes and the newest it reads.
pub(crate) const VERSION: u8 = 2;
/// The largest record: well above any value the state accepts (requests are at most 4 MiB, a
/// key-value value at most 256 KiB).
pub(crate) const MAX_RECORD_BYTES: usize = 16 << 20;

const END: u8 = 0;
const META: u8 = 1;
const OBJECT: u8 = 2;
const EVENT: u8 = 3;
const TOPIC: u8 = 4;
const TOPIC_EVENT: u8 = 5;
const SUBSCRIPTION: u8 = 6;
const IDEMPOTENCY: u8 = 7;
const KV: u8 = 8;

/// One row of a state table (or the counters), borrowed from where it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// The revision and the compaction point of the watch history; first, exactly once.
    Meta { revision: u64, compacted: u64 },
    /// `Kind/namespace/name` → object JSON.
    Object { key: &'a str, json: &'a [u8] },
    /// A watch event at `revision`.
    Event { revision: u64, json: &'a [u8] },
    /// A topic's counters (`namespace/topic` → JSON).
    Topic { name: &'a str, json: &'a [u8] },
    /// One stored event of a topic.
    TopicEvent {
        topic: &'a str,
        seq: u64,
        json: &'a [u8],
    },
    /// One subscription (JSON; its key is derived from its fields).
    Subscription { json: &'a [u8] },
    /// An idempotency key with the sequence number and the time it was published at.
    Idempotency { key: &'a str, seq: u64, ms: u64 },
    /// One key-value entry.
    Kv {
        store: &'a str,
        key: &'a str,
        value: &'a [u8],
    },
}

/// Writes the stream header, then records, then the end marker with their count.
pub(crate) struct Encoder<'w> {
    out: &'w mut dyn Write,
    records: u64,
}

impl<'w> Encoder<'w> {
    /// Writes the header.
    pub(crate) fn new(out: &'w mut dyn Write) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&[VERSION])?;
        Ok(Encoder { out, records: 0 })
    }

    /// Writes one record.
    pub(crate) fn put(&mut self, record: &Record<'_>) -> io::Result<()> {
        // Fixed-size fields and length-prefixed text first, then the rest as raw bytes.
        let mut head = Vec::with_capacity(64);
        let (tag, body): (u8, &[u8]) = match *record {
            Record::Meta { revision, compacted } => {
                put_u64(&mut head, revision);
                put_u64(&mut head, compacted);
                (META, &[])
            }
            Record::Object { key, json } => {
                put_str(&mut head, key);
                (OBJECT, json)
            }
            Record::Event { revision, json } => {
                put_u64(&mut head, revision);
                (EVENT, json)
            }
            Record::Topic { name, json } => {
                put_str(&mut head, name);
                (TOPIC, json)
            }
            Record::TopicEvent { topic, seq, json } => {
                put_str(&mut head, topic);
                put_u64(&mut head, seq);
                (TOPIC_EVENT, json)
            }
            Record::Subscription { json } => (SUBSCRIPTION, json),
            Record::Idempotency { key, seq, ms } => {
                put_str(&mut head, key);
                put_u64(&mut head, seq);
                put_u64(&mut head, ms);
                (IDEMPOTENCY, &[])
            }
            Record::Kv { store, key, value } => {
                put_str(&mut head, store);
                put_str(&mut head, key);
                (KV, value)
            }
        };
        let len = head.len() + body.len();
        if len > MAX_RECORD_BYTES {
            return Err(io::Error::other(format!(
                "a state record of {len} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes"
            )));
        }
        self.out.write_all(&[tag])?;
        self.out.write_all(&(len as u32).to_le_bytes())?;
        self.out.write_all(&head)?;
        self.out.write_all(body)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the end marker.
    pub(crate) fn finish(self) -> io::Result<()> {
        self.out.write_all(&[END])?;
        self.out.write_all(&8u32.to_le_bytes())?;
        self.out.write_all(&self.records.to_le_bytes())?;
        self.out.flush()
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads records from a stream whose header was consumed, one at a time, into one reused buffer.
pub(crate) struct Decoder<R> {
    input: R,
    buf: Vec<u8>,
    records: u64,
    ended: bool,
    /// The last key-value entry, to check that entries come in key order (no duplicates).
    last_kv: Option<(String, String)>,
}

impl<R: Read> Decoder<R> {
    /// A decoder for what follows the header.
    pub(crate) fn new(input: R) -> Self {
        Decoder {
            input,
            buf: Vec::new(),
            records: 0,
            ended: false,
            last_kv: None,
        }
    }

    /// The next record; `None` after the end marker (checked: it must count every record, and
    /// nothing may follow it).
    ///
    /// # Errors
    /// What is wrong with the stream, or the read error.
    pub(crate) fn next(&mut self) -> Result<Option<Record<'_>>, String> {
        if self.ended {
            return Ok(None);
        }
        let mut head = [0u8; 5];
        read_full(&mut self.input, &mut head).map_err(|e| match e {
            Short::Eof(0) => format!(
                "the state stream ends after {} records without its end marker (it was cut short)",
                self.records
            ),
            Short::Eof(_) => "the state stream ends in the middle of a record header".to_string(),
            Short::Io(e) => format!("reading the state stream failed: {e}"),
        })?;
        let tag = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_RECORD_BYTES {
            return Err(format!(
                "record {} announces {len} bytes, more than the limit of {MAX_RECORD_BYTES}",
                self.records + 1
            ));
        }
        self.buf.clear();
        let got = (&mut self.input)
            .take(len as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| format!("reading the state stream failed: {e}"))?;
        if got != len {
            return Err(format!(
                "record {} is cut short: {got} of {len} bytes",
                self.records + 1
            ));
        }
        let index = self.records + 1;
        let bad = |why: String| format!("record {index} (type {tag}) is malformed: {why}");
        if tag == END {
            let count = u64::from_le_bytes(fixed::<8>(&self.buf).map_err(bad)?);
            if count != self.records || self.buf.len() != 8 {
                return Err(format!(
                    "the end marker counts {count} records, the stream held {}",
                    self.records
                ));
            }
            let mut extra = [0u8; 1];
            match self.input.read(&mut extra) {
                Ok(0) => {}
                Ok(_) => return Err("bytes follow the end of the state stream".to_string()),
                Err(e) => return Err(format!("reading the state stream failed: {e}")),
            }
            self.ended = true;
            return Ok(None);
        }
        if (tag == META) != (self.records == 0) {
            return Err(if tag == META {
                format!("record {index} repeats the stream's meta record")
            } else {
                "the state stream does not start with its meta record".to_string()
            });
        }
        self.records += 1;
        let record = parse(tag, &self.buf).map_err(bad)?;
        if let Record::Kv { store, key, .. } = record {
            let in_order = self
                .last_kv
                .as_ref()
                .is_none_or(|(s, k)| (s.as_str(), k.as_str()) < (store, key));
            if !in_order {
                return Err(bad(format!(
                    "key-value entry {store:?}/{key:?} is out of order or repeated"
                )));
            }
            self.last_kv = Some((store.to_owned(), key.to_owned()));
        }
        Ok(Some(record))
    }
}

enum Short {
    Eof(usize),
    Io(io::Error),
}

/// Fills `buf`, or says how much arrived before the end.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<(), Short> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Err(Short::Eof(got)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Short::Io(e)),
        }
    }
    Ok(())
}

/// Reads the header; `Ok(false)` when the stream does not start with the magic (then `prefix`
/// holds the bytes read, for another decoder).
///
/// # Errors
/// A newer version than this release reads, or the read error.
pub(crate) fn read_header(input: &mut dyn Read, prefix: &mut Vec<u8>) -> Result<bool, String> {
    let mut head = [0u8; MAGIC.len() + 1];
    let got = match read_full(input, &mut head) {
        Ok(()) => head.len(),
        Err(Short::Eof(n)) => n,
        Err(Short::Io(e)) => return Err(format!("reading the state stream failed: {e}")),
    };
    prefix.extend_from_slice(&head[..got]);
    if got < head.len() || &head[..MAGIC.len()] != MAGIC {
        return Ok(false);
    }
    match head[MAGIC.len()] {
        VERSION => Ok(true),
        v => Err(format!(
            "the state stream has format version {v}; this release reads versions 1 and {VERSION}: \
             upgrade this member to the release that wrote it"
        )),
    }
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("{N} bytes expected, {} left", b.len()))
}

/// Splits a `u32`-length-prefixed UTF-8 string off the front of `b`.
fn take_str<'a>(b: &mut &'a [u8], what: &str) -> Result<&'a str, String> {
    let len = u32::from_le_bytes(fixed::<4>(b)?) as usize;
    let rest = &b[4..];
    if len > rest.len() {
        return Err(format!("its {what} runs past the record ({len} bytes)"));
    }
    let (text, tail) = rest.split_at(len);
    *b = tail;
    std::str::from_utf8(text).map_err(|e| format!("its {what} is not UTF-8: {e}"))
}

fn take_u64(b: &mut &[u8]) -> Result<u64, String> {
    let v = u64::from_le_bytes(fixed::<8>(b)?);
    *b = &b[8..];
    Ok(v)
}

/// Checks that `json` is one JSON value.
fn json(json: &[u8]) -> Result<&[u8], String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(json)
        .map(|_| json)
        .map_err(|e| format!("its JSON does not parse: {e}"))
}

fn parse(tag: u8, mut b: &[u8]) -> Result<Record<'_>, String> {
    let b = &mut b;
    let record = match tag {
        META => Record::Meta {
            revision: take_u64(b)?,
            compacted: take_u64(b)?,
        },
        OBJECT => Record::Object {
            key: take_str(b, "key")?,
            json: json(std::mem::take(b))?,
        },
        EVENT => Record::Event {
            revision: take_u64(b)?,
            json: json(std::mem::take(b))?,
        },
        TOPIC => Record::Topic {
            name: take_str(b, "name")?,
            json: json(std::mem::take(b))?,
        },
        TOPIC_EVENT => Record::TopicEvent {
            topic: take_str(b, "topic")?,
            seq: take_u64(b)?,
            json: json(std::mem::take(b))?,
        },
        SUBSCRIPTION => Record::Subscription {
            json: json(std::mem::take(b))?,
        },
        IDEMPOTENCY => Record::Idempotency {
            key: take_str(b, "key")?,
            seq: take_u64(b)?,
            ms: take_u64(b)?,
        },
        KV => Record::Kv {
            store: take_str(b, "store")?,
            key: take_str(b, "key")?,
            value: std::mem::take(b),
        },
        other => return Err(format!("unknown record type {other}")),
    };
    if !b.is_empty() {
        return Err(format!("{} bytes left over", b.len()));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record<'static>> {
        vec![
            Record::Meta {
                revision: 7,
                compacted: 2,
            },
            Record::Object {
                key: "Namespace//a",
                json: br#"{"kind":"Namespace"}"#,
            },
            Record::Event {
                revision: 3,
                json: b"{}",
            },
            Record::Topic {
                name: "a/t",
                json: br#"{"last":1,"first":1}"#,
            },
            Record::TopicEvent {
                topic: "a/t",
                seq: 1,
                json: b"[1]",
            },
            Record::Subscription { json: b"{}" },
            Record::Idempotency {
                key: "a/t\0k",
                seq: 1,
                ms: 99,
            },
            Record::Kv {
                store: "a/s",
                key: "k1",
                value: &[0, 255, 7],
            },
            Record::Kv {
                store: "a/s",
                key: "k2",
                value: &[],
            },
        ]
    }

    fn encode(records: &[Record<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out).unwrap();
        for r in records {
            enc.put(r).unwrap();
        }
        enc.finish().unwrap();
        out
    }

    fn decode(bytes: &[u8]) -> Result<usize, String> {
        let mut input = bytes;
        let mut prefix = Vec::new();
        if !read_header(&mut input, &mut prefix)? {
            return Err("no header".into());
        }
        let mut d = Decoder::new(input);
        let mut n = 0;
        while d.next()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn records_round_trip() {
        let records = sample();
        let bytes = encode(&records);
        let mut input = &bytes[MAGIC.len() + 1..];
        let mut d = Decoder::new(&mut input);
        for want in &records {
            assert_eq!(d.next().unwrap().as_ref(), Some(want));
        }
        assert_eq!(d.next().unwrap(), None);
        assert_eq!(d.next().unwrap(), None);
    }

    #[test]
    fn damage_is_named() {
        let bytes = encode(&sample());
        let err = decode(&bytes[..bytes.len() - 13]).unwrap_err();
        assert!(err.contains("without its end marker"), "{err}");
        let err = decode(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(err.contains("cut short"), "{err}");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).unwrap_err().contains("follow the end"));
        let no_meta = encode(&sample()[1..]);
        assert!(decode(&no_meta).unwrap_err().contains("meta record"));
        let mut twice = sample();
        twice.swap(7, 8);
        assert!(decode(&encode(&twice)).unwrap_err().contains("out of order"));
        let mut bad_json = sample();
        bad_json[1] = Record::Object { key: "k", json: b"{" };
        assert!(decode(&encode(&bad_json)).unwrap_err().contains("JSON"));
        let mut newer = bytes.clone();
        newer[MAGIC.len()] = VERSION + 1;
        assert!(decode(&newer).unwrap_err().contains("upgrade"));
        let mut huge = bytes[..MAGIC.len() + 1].to_vec();
        huge.push(META);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).unwrap_err().contains("limit"));
        assert_eq!(decode(&bytes), Ok(sample().len()));
    }
}
