//! Any input gets an answer, never a panic: random text and random edits of a valid manifest.
use std::path::Path;

use proptest::prelude::*;

const DEMO: &str = include_str!("cases/demo.yaml");

fn check(text: &str) -> Result<(), TestCaseError> {
    match skiff_manifest::load_str_in(text, "fuzz.yaml", Path::new("tests/cases")) {
        Ok(docs) => {
            for d in docs {
                prop_assert!(d.object.validate().is_ok());
            }
        }
        Err(e) => {
            prop_assert!(!e.0.is_empty());
            for err in &e.0 {
                prop_assert_eq!(&err.file, "fuzz.yaml");
                prop_assert!(!err.message.is_empty());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_text(text in "\\PC{0,200}") {
        check(&text)?;
    }

    #[test]
    fn edited_demo(edits in prop::collection::vec((0usize..2000, 0usize..8, "[ :\\-\\[\\]{}#&*a-z0-9\n]{0,4}"), 1..4)) {
        let mut text = DEMO.to_owned();
        for (at, cut, insert) in edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + cut).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.replace_range(at..end, &insert);
        }
        check(&text)?;
    }
}
