//! The init spec loader, with the invariants of an accepted and of a
//! refused spec:
//!
//! - Raw bytes go through the file path (`Document::parse_bytes`, as
//!   `Spec::load` reads them): bytes that are not UTF-8 are refused with
//!   the line and column of the first bad byte; UTF-8 bytes load exactly
//!   as the same text through `Spec::from_yaml`.
//! - An accepted spec (without and with `--service web`) serializes with
//!   serde_json and reloads through `Spec::from_yaml` to the same spec
//!   (the service name aside: the written form is the init spec alone).
//!   serde_json's text is read as it is: it writes NEL, LS, PS, DEL and
//!   the C1 controls raw inside strings, and the YAML reader keeps them
//!   in a double-quoted scalar (escaping them as `\uXXXX` would be the
//!   fix if it ever did not; rebound-init's unit test
//!   `a_step_with_every_field_round_trips` pins it).
//! - A refused spec has a line and column, within the input's lines (+1
//!   for the end), unless it is one of the errors that have no place:
//!   an empty spec (no document, or a null one), a file too large (not
//!   reached: inputs are smaller), and the choice of a service
//!   (`SpecErrorKind::Service`: unknown name, none or several with
//!   `init`, `--service` on a file without `services`).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use rebound_init::spec::yaml::Document;
use rebound_init::spec::{Spec, SpecError, SpecErrorKind};

fn check(text: &str, result: &Result<Spec, SpecError>) {
    match result {
        Ok(spec) => {
            let json = serde_json::to_string(spec).expect("a spec serializes");
            let again = Spec::from_yaml(&json, "fuzz.json", None)
                .unwrap_or_else(|e| panic!("the written spec is refused: {e}\n{json}"));
            let expected = Spec {
                service: None,
                ..spec.clone()
            };
            assert_eq!(
                again, expected,
                "the written spec reads back different:\n{json}"
            );
        }
        Err(err) => {
            assert!(err.to_string().starts_with("fuzz.yaml:"), "{err}");
            match (err.line(), err.column()) {
                (Some(line), Some(column)) => common::check_position(text, line, column, err),
                _ => assert!(
                    err.kind() == SpecErrorKind::Service
                        || err.message().starts_with("the spec is empty")
                        || err.message().starts_with("the file is larger"),
                    "an error without a position: {err}"
                ),
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let from_bytes = Document::parse_bytes(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        let err = from_bytes.expect_err("bytes that are not UTF-8 are refused");
        let mark = err.mark().unwrap_or_else(|| panic!("no position: {err}"));
        let good = std::str::from_utf8(
            &bytes[..bytes.utf8_chunks().next().map_or(0, |c| c.valid().len())],
        )
        .expect("the valid prefix is UTF-8");
        common::check_position(good, mark.line(), mark.column(), &err);
        return;
    };
    for service in [None, Some("web")] {
        let result = Spec::from_yaml(text, "fuzz.yaml", service);
        check(text, &result);
        // The file path reads the same bytes to the same answer.
        let via_bytes = match &from_bytes {
            Ok(doc) => Spec::from_document(doc, "fuzz.yaml", service),
            Err(e) => Err(Spec::from_yaml(text, "fuzz.yaml", service)
                .expect_err(&format!("parse_bytes refused ({e}) what from_yaml accepts"))),
        };
        match (&result, &via_bytes) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("from_yaml {a:?} but from bytes {b:?}"),
        }
    }
});
