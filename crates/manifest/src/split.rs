//! Splitting an input into documents: YAML streams at `---` / `...` marker lines, JSON as one
//! object or an array of objects. Each document keeps its 1-based index and, for YAML, the line it
//! starts on, so syntax errors point at the right line of the file.
use serde_json::Value;

/// One document of an input, parsed to a generic value (or the syntax error that stopped it).
#[derive(Debug)]
pub(crate) struct RawDocument {
    /// 1-based index within the input.
    pub(crate) index: usize,
    /// The parsed value; `Ok(None)` for an empty document (skipped, but counted).
    pub(crate) value: Result<Option<Value>, String>,
}

/// Whether `line` is a document marker (`---` or `...` followed by nothing or whitespace).
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether a chunk holds nothing but blank lines, comments and directives.
fn is_blank(chunk: &str) -> bool {
    chunk.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || l.starts_with('%')
    })
}

/// A YAML document's text and the 1-based file line its first line is on.
struct Chunk<'a> {
    first_line: usize,
    text: &'a str,
}

/// Cuts a YAML stream into documents. A document marker line at column 0 always ends the previous
/// document (YAML forbids such lines inside scalars), so this agrees with a full parser while
/// letting one broken document not hide the errors of the others.
fn split_yaml<'a>(text: &'a str) -> Vec<Chunk<'a>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut explicit = false;
    let mut offset = 0usize;
    let push = |chunks: &mut Vec<Chunk<'a>>, from: usize, to: usize, line: usize, explicit| {
        let t = &text[from..to];
        if explicit || !is_blank(t) {
            chunks.push(Chunk {
                first_line: line,
                text: t,
            });
        }
    };
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let end = offset + line.len();
        if is_marker(line, "---") {
            push(&mut chunks, start, offset, start_line, explicit);
            start = offset;
            start_line = line_no;
            explicit = true;
        } else if is_marker(line, "...") {
            push(&mut chunks, start, end, start_line, explicit);
            start = end;
            start_line = line_no + 1;
            explicit = false;
        }
        offset = end;
    }
    push(&mut chunks, start, text.len(), start_line, explicit);
    chunks
}

/// Parses every YAML document of `text`.
pub(crate) fn yaml_documents(text: &str) -> Vec<RawDocument> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    split_yaml(text)
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| RawDocument {
            index: i + 1,
            value: parse_yaml_chunk(&chunk),
        })
        .collect()
}

fn parse_yaml_chunk(chunk: &Chunk<'_>) -> Result<Option<Value>, String> {
    match serde_saphyr::from_multiple::<Value>(chunk.text) {
        Ok(mut values) => match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            n => Err(format!(
                "holds {n} YAML documents where one was expected: separate documents with a line of ---"
            )),
        },
        Err(e) => {
            let plain = e.without_snippet().to_string();
            Err(match e.location() {
                Some(loc) if loc.line() > 0 => {
                    let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
                    let what = plain.strip_suffix(&suffix).unwrap_or(&plain);
                    // serde-saphyr's hint names its own options, which mean nothing to a user.
                    let what = match what.split_once(", set DuplicateKeyPolicy") {
                        Some((head, _)) => format!("{head}: each key may appear only once in a mapping"),
                        None => what.to_owned(),
                    };
                    let what = match what.strip_prefix("budget breached: ") {
                        Some(limit) => format!(
                            "the document exceeds the parser's limits ({limit}): avoid huge documents and aliases that expand exponentially"
                        ),
                        None => what,
                    };
                    let line = chunk.first_line + loc.line() as usize - 1;
                    format!("invalid YAML at line {line}, column {}: {what}", loc.column())
                }
                _ => format!("invalid YAML: {plain}"),
            })
        }
    }
}

/// Parses a JSON input: one object (one document) or an array of objects (one document each).
///
/// # Errors
/// A message for the file as a whole: a syntax error with its line and column, or a top-level
/// value that is neither an object nor an array.
pub(crate) fn json_documents(text: &str) -> Result<Vec<RawDocument>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let plain = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let what = plain.strip_suffix(&suffix).unwrap_or(&plain);
        format!("invalid JSON at line {}, column {}: {what}", e.line(), e.column())
    })?;
    match value {
        Value::Array(items) => Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| RawDocument {
                index: i + 1,
                value: Ok(Some(v)),
            })
            .collect()),
        Value::Object(_) => Ok(vec![RawDocument {
            index: 1,
            value: Ok(Some(value)),
        }]),
        other => Err(format!(
            "the JSON is {}: expected an object with apiVersion, kind and metadata, or an array of such objects",
            crate::decode::describe_value(&other)
        )),
    }
}

/// Whether an input without a telling file extension looks like JSON.
pub(crate) fn looks_like_json(text: &str) -> bool {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    t.starts_with('{') || t.starts_with('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, String)> {
        split_yaml(text)
            .into_iter()
            .map(|c| (c.first_line, c.text.to_owned()))
            .collect()
    }

    #[test]
    fn splits_on_markers_and_counts_empty_documents() {
        let text = "# leading comment\n---\na: 1\n---\n---\nb: 2\n...\n# trailing\n";
        let got = lines(text);
        assert_eq!(
            got,
            vec![
                (2, "---\na: 1\n".to_owned()),
                (4, "---\n".to_owned()),
                (5, "---\nb: 2\n...\n".to_owned()),
            ]
        );
        let docs = yaml_documents(text);
        assert_eq!(docs.len(), 3);
        assert!(matches!(docs[1].value, Ok(None)));
    }

    #[test]
    fn no_marker_means_one_document() {
        assert_eq!(lines("a: 1\n"), vec![(1, "a: 1\n".to_owned())]);
        assert!(lines("").is_empty());
        assert!(lines("# only a comment\n").is_empty());
        assert_eq!(lines("--- {a: 1}\n").len(), 1);
        // Not markers: indented, or followed by other characters.
        assert_eq!(lines("a: |\n  ---\n----\n").len(), 1);
    }

    #[test]
    fn syntax_errors_carry_file_lines() {
        let docs = yaml_documents("a: 1\n---\nb: [1, 2\n");
        assert_eq!(docs.len(), 2);
        let err = docs[1].value.as_ref().unwrap_err();
        assert_eq!(err, "invalid YAML at line 3, column 4: unclosed bracket '['");
    }

    #[test]
    fn json_array_and_object() {
        assert_eq!(json_documents("[{}, {}]").unwrap().len(), 2);
        assert_eq!(json_documents("{}").unwrap().len(), 1);
        assert!(json_documents("3").unwrap_err().contains("the JSON is a number"));
        let e = json_documents("{\n  \"a\": }").unwrap_err();
        assert!(e.starts_with("invalid JSON at line 2, column 8: "), "{e}");
    }
}
