//! What the YAML reading under every spec refuses, cheaply and with a
//! position: duplicate keys, deep nesting, huge files, alias bombs, more
//! than one document, invalid UTF-8, unknown tags; and what it accepts
//! that a hand-cut reader did not (CR line endings, JSON).

use std::time::{Duration, Instant};

use rebound_init::spec::yaml::{self, MAX_BYTES};
use rebound_init::spec::{Spec, SpecError};

fn reject(yaml: &str) -> SpecError {
    match Spec::from_yaml(yaml, "spec.yaml", None) {
        Ok(spec) => panic!("accepted: {spec:?}"),
        Err(err) => err,
    }
}

const ONE_STEP: &str = "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with: { host: db, port: 5432 }\n";

#[test]
fn a_duplicate_key_anywhere_is_refused_with_both_positions() {
    // Top level: `init` twice (the second one used to win silently).
    let e = reject(&format!("{ONE_STEP}init:\n  steps: []\n"));
    assert_eq!(
        e.to_string(),
        "spec.yaml:6:1: duplicate key `init` (first at 1:1)"
    );
    // Inside a step.
    let e = reject(&ONE_STEP.replace("      with:", "      uses: init.run\n      with:"));
    assert_eq!(
        e.to_string(),
        "spec.yaml:5:7: duplicate key `uses` (first at 4:7)"
    );
    // Inside `with`, flow style.
    let e = reject(&ONE_STEP.replace("port: 5432 }", "port: 5432, host: db2 }"));
    assert_eq!(
        e.to_string(),
        "spec.yaml:5:37: duplicate key `host` (first at 5:15)"
    );
    // Keys are compared as text: `1` and '1' are one key.
    let e = reject("init: { steps: [] }\nerrors: { on_init_failure: { 1: a, '1': b } }\n");
    assert!(e.message().starts_with("duplicate key `1`"), "{e}");
    // In a service that is not run: still one document, still refused.
    let deployment =
        "services:\n  api:\n    init: { steps: [] }\n  db:\n    image: a\n    image: b\n";
    let e = Spec::from_yaml(deployment, "d.yaml", Some("api")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "d.yaml:6:5: duplicate key `image` (first at 5:5)"
    );
}

/// Deep nesting is refused at the first collection past the limit, in
/// milliseconds: it used to take 16 s (200 KB of `[`) and 50 s (500 KB of
/// nested maps) before "recursion limit exceeded".
#[test]
fn deep_nesting_is_refused_early_with_its_position() {
    let lists = format!(
        "init:\n  steps: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let maps = format!(
        "init:\n  steps: {}1{}\n",
        "{a: ".repeat(100_000),
        "}".repeat(100_000)
    );
    let block: String = (0..1_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    for (text, line) in [(&lists, 2), (&maps, 2), (&block, 65)] {
        let started = Instant::now();
        let e = reject(text);
        let took = started.elapsed();
        assert!(
            e.message().contains("nest deeper than 64 levels"),
            "{}",
            e.message()
        );
        assert_eq!(e.line(), Some(line), "{e}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    // Exactly at the limit is fine for the YAML reader (the spec then
    // says what it expected).
    let at_limit = format!("x: {}{}\n", "[".repeat(63), "]".repeat(63));
    let e = reject(&at_limit);
    assert!(e.message().contains("unknown field `x`"), "{e}");
}

#[test]
fn a_file_above_one_mib_is_refused_before_it_is_parsed() {
    let big = format!("{ONE_STEP}{}", "# padding\n".repeat(MAX_BYTES / 10 + 1));
    assert!(big.len() > MAX_BYTES);
    let e = reject(&big);
    assert!(
        e.message().contains("larger than 1048576 bytes (1 MiB)"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &big).unwrap();
    let e = Spec::load(&path, None).unwrap_err();
    assert!(
        e.to_string().starts_with(&path.display().to_string()),
        "{e}"
    );
    assert!(e.message().contains("1 MiB"), "{e}");
    // Just under the limit is read.
    let fits = &big[..MAX_BYTES];
    let fits = &fits[..fits.rfind('\n').unwrap() + 1];
    assert_eq!(
        Spec::from_yaml(fits, "x", None).unwrap().init.steps.len(),
        1
    );
}

#[test]
fn an_alias_bomb_is_refused_at_the_alias_that_crosses_the_budget() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let started = Instant::now();
    let e = reject(&text);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(e.message().starts_with("repetition limit exceeded"), "{e}");
    // a4 (line 5) is the first whose copies cross 100 000 nodes.
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(e.column().is_some(), "{e}");
    // Aliases within budget are plain YAML.
    let spec = Spec::from_yaml(
        "init:\n  steps:\n    - { id: a, uses: init.wait_file, with: &w { path: /x } }\n    - { id: b, uses: init.wait_file, with: *w }\n",
        "x",
        None,
    )
    .unwrap();
    assert_eq!(spec.init.steps[1].action, spec.init.steps[0].action);
}

#[test]
fn a_second_document_is_refused_where_it_starts() {
    let e = reject(&format!("{ONE_STEP}---\ninit: {{ steps: [] }}\n"));
    assert_eq!(e.line(), Some(6), "{e}");
    assert!(e.message().contains("second YAML document"), "{e}");
    // An explicit start and end of one document is fine.
    assert!(Spec::from_yaml(&format!("---\n{ONE_STEP}...\n"), "x", None).is_ok());
}

#[test]
fn invalid_utf8_names_the_line_and_column_of_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let mut bytes = ONE_STEP.replace("host: db", "host: dé").into_bytes();
    let at = bytes.iter().position(|b| *b == 0xC3).unwrap();
    bytes[at + 1] = 0xFF; // a broken two-byte sequence
    std::fs::write(&path, &bytes).unwrap();
    let e = Spec::load(&path, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5:22: the file is not valid UTF-8 (byte 0xc3)",
            path.display()
        )
    );
}

#[test]
fn unknown_tags_are_refused_and_str_makes_text() {
    let e = reject(&ONE_STEP.replace("host: db", "host: !vault db"));
    assert_eq!((e.line(), e.column()), (Some(5), Some(21)), "{e}");
    assert!(e.message().contains("`!vault`"), "{e}");
    // `!!str` makes a plain scalar text: `null` is then not null.
    let text: Option<String> = yaml::from_str("!!str null").unwrap();
    assert_eq!(text.as_deref(), Some("null"));
    let none: Option<String> = yaml::from_str("null").unwrap();
    assert_eq!(none, None);
}

#[test]
fn cr_line_endings_and_json_read_like_the_yaml() {
    let plain = Spec::from_yaml(ONE_STEP, "x", None).unwrap();
    let cr = Spec::from_yaml(&ONE_STEP.replace('\n', "\r"), "x", None).unwrap();
    let crlf = Spec::from_yaml(&ONE_STEP.replace('\n', "\r\n"), "x", None).unwrap();
    let json = Spec::from_yaml(
        r#"{"init": {"steps": [{"id": "a", "uses": "init.wait_tcp", "with": {"host": "db", "port": 5432}}]}}"#,
        "x",
        None,
    )
    .unwrap();
    assert_eq!(cr, plain);
    assert_eq!(crlf, plain);
    assert_eq!(json, plain);
    // Positions count CR-only lines as lines.
    let e = reject(&ONE_STEP.replace("5432", "0").replace('\n', "\r"));
    assert_eq!(e.line(), Some(5), "{e}");
}

#[test]
fn text_readers_get_the_text_as_written() {
    // An id that YAML would read as a number, a bool or null is that text.
    for id in ["123", "1e3", "true", "null", "0x10"] {
        let spec =
            Spec::from_yaml(&ONE_STEP.replace("id: a", &format!("id: {id}")), "x", None).unwrap();
        assert_eq!(spec.init.steps[0].id, id);
    }
    let host: String = yaml::from_str("1.10").unwrap();
    assert_eq!(host, "1.10");
}

mod properties {
    use proptest::prelude::*;
    use rebound_init::spec::yaml::{self, Document};
    use serde_json::Value;

    /// JSON values whose text the YAML reader must read back as the same
    /// value (JSON is YAML): strings that look like numbers, booleans or
    /// null stay strings because JSON quotes them.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            prop_oneof![
                Just("true".to_owned()),
                Just("null".to_owned()),
                Just("123".to_owned()),
                Just("1e3".to_owned()),
                Just("it's # not a comment".to_owned()),
                Just("line\nbreak\u{85}nel\u{2028}ls".to_owned()),
                "[a-z0-9 :,-]{0,12}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn json_text_reads_back_as_the_same_value(v in value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                serde_json::to_string(&v).unwrap()
            };
            let back: Value = yaml::from_str(&text).unwrap();
            prop_assert_eq!(back, v, "{}", text);
        }

        /// Any bytes: an answer, never a panic, and every refusal of a
        /// non-empty input has a position.
        #[test]
        fn any_bytes_get_an_answer_with_a_position(bytes in prop::collection::vec(
            prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(b' '), Just(b':'), Just(b'-'), Just(b'['),
                Just(b']'), Just(b'{'), Just(b'}'), Just(b'&'), Just(b'*'), Just(b'!'),
                Just(b'#'), Just(b'\''), Just(b'"'), Just(b'a'), Just(b'|'), Just(b'>'),
                Just(b','), Just(b'?'), any::<u8>(),
            ],
            0..200,
        )) {
            if let Err(e) = Document::parse_bytes(&bytes) {
                prop_assert!(e.mark().is_some(), "{}", e);
            }
        }
    }
}
