//! The agent config read as YAML once (no hand cutting): what used to run
//! the wrong thing or be refused for nothing, errors that now have a place,
//! and a property: a spec that `rebound init` accepts, written as a
//! runtime's `start`, is accepted the same (and refused the same).

mod support;

use proptest::prelude::*;
use rebound::agent::config::AgentConfig;
use rebound_init::spec::Spec;
use support::Cli;

fn parse(text: &str) -> AgentConfig {
    match AgentConfig::parse(text, "agent.yaml") {
        Ok(c) => c,
        Err(e) => panic!("refused: {e}\n--- config\n{text}"),
    }
}

fn error(text: &str) -> String {
    match AgentConfig::parse(text, "agent.yaml") {
        Ok(c) => panic!("accepted: {c:?}\n--- config\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn start_ids(c: &AgentConfig) -> Vec<&str> {
    c.runtimes[0]
        .start
        .init
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .collect()
}

/// The agent used to cut `start` out of the text on `\n` while the YAML
/// parser it asked for positions also broke lines at a lone CR, NEL and
/// LS: a comment holding one moved the cut one line down, onto the
/// comment below, and the agent ran that comment's text as its start.
#[test]
fn a_line_break_character_in_a_comment_does_not_move_start_onto_a_comment() {
    for brk in ["\u{85}", "\u{2028}", "\u{2029}", "\r#"] {
        let text = format!(
            "runtimes:\n  web:\n    # note{brk}\n    start: {{ steps: [ {{ id: real, uses: init.run, with: {{ command: \"true\" }} }} ] }}\n    #      {{ steps: [ {{ id: evil, uses: init.run, with: {{ command: \"touch /tmp/pwned\" }} }} ] }}\n    probe: {{ uses: init.wait_file, with: {{ path: /x }} }}\n    endpoint: e\n"
        );
        let c = parse(&text);
        assert_eq!(start_ids(&c), ["real"], "{brk:?}");
        assert_eq!(c.runtimes[0].probe.init.steps[0].id, "probe");
    }
}

const BLOCK: &str = "\
runtimes:
  web:
    start:
      steps:
        - id: serve
          uses: init.run
          with: { command: \"true\" }
    probe:
      uses: init.wait_tcp
      with: { host: 127.0.0.1, port: 8080 }
    endpoint: tcp://127.0.0.1:8080
";

#[test]
fn json_flow_style_and_cr_line_endings_read_like_block_yaml() {
    let block = parse(BLOCK);
    let one_line = r#"{"runtimes": {"web": {"start": {"steps": [{"id": "serve", "uses": "init.run", "with": {"command": "true"}}]}, "probe": {"uses": "init.wait_tcp", "with": {"host": "127.0.0.1", "port": 8080}}, "endpoint": "tcp://127.0.0.1:8080"}}}"#;
    let pretty = r#"{
  "runtimes": {
    "web": {
      "start": {
        "steps": [
          { "id": "serve", "uses": "init.run", "with": { "command": "true" } }
        ]
      },
      "probe": {
        "uses": "init.wait_tcp",
        "with": { "host": "127.0.0.1", "port": 8080 }
      },
      "endpoint": "tcp://127.0.0.1:8080"
    }
  }
}
"#;
    let flow_runtime = "runtimes:\n  web: { start: { steps: [ { id: serve, uses: init.run, with: { command: \"true\" } } ] }, probe: { uses: init.wait_tcp, with: { host: 127.0.0.1, port: 8080 } }, endpoint: \"tcp://127.0.0.1:8080\" }\n";
    let all_flow = "{ runtimes: { web: { start: { steps: [ { id: serve, uses: init.run, with: { command: \"true\" } } ] }, probe: { uses: init.wait_tcp, with: { host: 127.0.0.1, port: 8080 } }, endpoint: \"tcp://127.0.0.1:8080\" } } }";
    let cr = BLOCK.replace('\n', "\r");
    let crlf = BLOCK.replace('\n', "\r\n");
    for text in [one_line, pretty, flow_runtime, all_flow, &cr, &crlf] {
        let c = parse(text);
        assert_eq!(c.runtimes[0].name, "web");
        assert_eq!(c.runtimes[0].start, block.runtimes[0].start, "{text}");
        assert_eq!(c.runtimes[0].probe, block.runtimes[0].probe, "{text}");
        assert_eq!(c.runtimes[0].endpoint, block.runtimes[0].endpoint);
    }
    // Positions in a CR-only file count CR as a line break.
    let e = error(&BLOCK.replace("8080 }", "0 }").replace('\n', "\r"));
    assert!(e.starts_with("agent.yaml:10:"), "{e}");
}

#[test]
fn a_multi_line_flow_start_may_hold_an_apostrophe() {
    let text = "runtimes:\n  web:\n    start: { steps: [\n      { id: say, uses: init.run, with: { command: echo it's up } },\n      { id: again, uses: init.run, with: { command: \"echo it's up\" } }\n    ] }\n    probe: { uses: init.wait_file, with: { path: /x } }\n    endpoint: e\n";
    let c = parse(text);
    assert_eq!(start_ids(&c), ["say", "again"]);
    assert_eq!(
        c.runtimes[0].start.init.steps[0].action.describe(),
        "command `echo it's up`"
    );
}

/// Names YAML reads as numbers, booleans or null are names, as written,
/// and sort as text.
#[test]
fn runtime_names_that_look_like_numbers_booleans_or_null_are_names() {
    let runtime = |name: &str| {
        format!(
            "  {name}:\n    start: {{ steps: [ {{ id: a, uses: init.run, with: {{ command: \"true\" }} }} ] }}\n    probe: {{ uses: init.wait_file, with: {{ path: /x }} }}\n    endpoint: e\n"
        )
    };
    let names = ["123", "1e3", "true", "null", "0x10", "1.5"];
    let text = format!(
        "runtimes:\n{}",
        names.iter().map(|n| runtime(n)).collect::<String>()
    );
    let c = parse(&text);
    let got: Vec<&str> = c.runtimes.iter().map(|r| r.name.as_str()).collect();
    let mut want = names.to_vec();
    want.sort_unstable();
    assert_eq!(got, want);
    // `~` and an empty key are null in YAML, but as names they are text
    // that a name may not be.
    let e = error(&format!("runtimes:\n{}", runtime("~")));
    assert!(e.starts_with("agent.yaml:2:3: "), "{e}");
    assert!(e.contains("runtime name `~`"), "{e}");
}

#[test]
fn two_runtimes_with_one_name_are_refused_naming_both() {
    let e = error(&format!(
        "{BLOCK}  web:\n    start: {{ steps: [ {{ id: b, uses: init.run, with: {{ command: \"true\" }} }} ] }}\n    probe: {{ uses: init.wait_file, with: {{ path: /y }} }}\n    endpoint: other\n"
    ));
    assert_eq!(e, "agent.yaml:12:3: duplicate key `web` (first at 2:3)");
    // Anywhere: inside a probe's `with`.
    let e = error(&BLOCK.replace("port: 8080 }", "port: 8080, port: 8081 }"));
    assert!(
        e.starts_with("agent.yaml:10:44: duplicate key `port` (first at 10:32)"),
        "{e}"
    );
}

#[test]
fn a_duplicate_runtime_is_exit_2_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    let twice = BLOCK.replace(
        "runtimes:\n",
        "runtimes:\n  web: { start: {steps: []}, probe: {}, endpoint: x }\n",
    );
    std::fs::write(&path, twice).unwrap();
    Cli::new()
        .args(["agent", "--config"])
        .args([&path])
        .args([
            "--listen",
            &format!("unix:{}", dir.path().join("s.sock").display()),
        ])
        .usage_error(&format!(
            "{}:3:3: duplicate key `web` (first at 2:3)",
            path.display()
        ));
    assert!(!dir.path().join("s.sock").exists());
}

/// Every refusal names FILE:LINE:COLUMN when the problem has a place.
#[test]
fn errors_that_had_no_position_have_one() {
    let e = error(&BLOCK.replace(
        "    start:\n      steps:\n        - id: serve\n          uses: init.run\n          with: { command: \"true\" }\n",
        "    start: { steps: [] }\n",
    ));
    assert_eq!(e, "agent.yaml:3:12: runtime `web`: `start` has no steps");
    // Missing `start` (it used to be "cannot find `start` in the file").
    let e = error(&BLOCK.replace(
        "    start:\n      steps:\n        - id: serve\n          uses: init.run\n          with: { command: \"true\" }\n",
        "",
    ));
    assert!(
        e.starts_with("agent.yaml:3:5: runtimes.web: missing field `start`"),
        "{e}"
    );
    let e = error("runtimes: {}\n");
    assert_eq!(
        e,
        "agent.yaml:1:11: `runtimes` is empty: declare at least one runtime"
    );
    // More than one document.
    let e = error(&format!("{BLOCK}---\n{BLOCK}"));
    assert!(e.starts_with("agent.yaml:12:1: "), "{e}");
    // An alias bomb.
    let mut bomb = String::from("x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..9 {
        let p = i - 1;
        bomb.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    let e = error(&bomb);
    assert!(e.starts_with("agent.yaml:5:"), "{e}");
    assert!(e.contains("repetition limit exceeded"), "{e}");
    // Deep nesting, refused at once.
    let deep = format!("runtimes: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    let started = std::time::Instant::now();
    let e = error(&deep);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(e.starts_with("agent.yaml:1:"), "{e}");
    assert!(e.contains("nest deeper than 64 levels"), "{e}");
}

#[test]
fn load_refuses_invalid_utf8_and_files_above_one_mib_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    let mut bytes = BLOCK.as_bytes().to_vec();
    let at = BLOCK.find("8080").unwrap();
    bytes[at] = 0xFE;
    std::fs::write(&path, &bytes).unwrap();
    let e = AgentConfig::load(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:10:38: the file is not valid UTF-8 (byte 0xfe)",
            path.display()
        )
    );
    let big = format!("{BLOCK}{}", "# padding\n".repeat(110_000));
    std::fs::write(&path, big).unwrap();
    let e = AgentConfig::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: ", path.display())), "{e}");
    assert!(e.contains("1 MiB"), "{e}");
}

// ---- the property --------------------------------------------------------

/// One step of the small grammar: a few ids (some repeated, some that
/// YAML reads as other types), every action plus an unknown one, valid and
/// invalid parameters, optional timeout, retry and failure policy.
fn step() -> impl Strategy<Value = String> {
    let id = prop_oneof![Just("a"), Just("b"), Just("123"), Just("true"), Just("''"),];
    let action = prop_oneof![
        Just("uses: init.wait_tcp, with: { host: db, port: 5432 }"),
        Just("uses: init.wait_tcp, with: { host: db, port: 0 }"),
        Just("uses: init.wait_tcp, with: { host: db }"),
        Just("uses: init.wait_http, with: { url: \"http://db/health\", expect_status: 200-299 }"),
        Just("uses: init.wait_http, with: { url: ftp://db }"),
        Just("uses: init.wait_file, with: { path: /etc/hostname, timeout: 5s }"),
        Just("uses: init.wait_file, with: { path: /x, timeout: soon }"),
        Just("uses: init.run, with: { command: [\"./migrate\", \"up\"], env: { A: \"1\" } }"),
        Just("uses: init.run, with: { command: \"echo it's\" }"),
        Just("uses: init.run, with: { cmd: x }"),
        Just("with: { path: /x }, uses: init.wait_file"),
        Just("uses: init.s3_pull, with: { bucket: b, key: k, destination: /tmp/x }"),
        Just("uses: init.nope, with: {}"),
        Just("uses: init.run"),
    ];
    let extra = prop_oneof![
        Just(""),
        Just(", timeout: 1m30s"),
        Just(", timeout: 0"),
        Just(", retry: 3"),
        Just(", retry: -1"),
        Just(", on_failure: warn"),
        Just(", on_failure: explode"),
        Just(", retries: 2"),
    ];
    (id, action, extra).prop_map(|(id, action, extra)| format!("{{ id: {id}, {action}{extra} }}"))
}

/// Steps written one per line, in flow style (`- { ... }`) or as block
/// mappings made of the same entries, at `indent`.
fn render(steps: &[(String, bool)], indent: &str) -> String {
    let mut out = String::new();
    for (step, block) in steps {
        if *block {
            // `{ k: v, k2: v2 }` as a block mapping: one entry per line.
            // Entries are split at top-level commas only.
            let inner = &step[2..step.len() - 2];
            let mut entries = Vec::new();
            let (mut depth, mut quote, mut start) = (0i32, false, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '"' => quote = !quote,
                    '{' | '[' if !quote => depth += 1,
                    '}' | ']' if !quote => depth -= 1,
                    ',' if !quote && depth == 0 => {
                        entries.push(inner[start..i].trim());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            entries.push(inner[start..].trim());
            for (n, entry) in entries.iter().enumerate() {
                let lead = if n == 0 { "- " } else { "  " };
                out.push_str(&format!("{indent}{lead}{entry}\n"));
            }
        } else {
            out.push_str(&format!("{indent}- {step}\n"));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_spec_the_init_loader_takes_is_taken_the_same_as_a_start(
        steps in prop::collection::vec((step(), any::<bool>()), 0..4),
    ) {
        // As a spec: `init.steps` at column 5.
        let spec_text = format!("init:\n  steps:\n{}", render(&steps, "    "));
        // As a start: the same lines 2 lines further down and 4 columns
        // further right.
        let agent_text = format!(
            "runtimes:\n  rt:\n    start:\n      steps:\n{}    probe: {{ uses: init.wait_file, with: {{ path: /x }} }}\n    endpoint: e\n",
            render(&steps, "        ")
        );
        let spec = Spec::from_yaml(&spec_text, "agent.yaml", None);
        let agent = AgentConfig::parse(&agent_text, "agent.yaml");
        match (spec, agent) {
            (Ok(spec), Ok(agent)) => {
                prop_assert!(!spec.init.steps.is_empty());
                prop_assert_eq!(&agent.runtimes[0].start.init, &spec.init);
            }
            (Ok(spec), Err(e)) => {
                prop_assert!(spec.init.steps.is_empty(), "init took it, the agent said {}", e);
                prop_assert_eq!(e.to_string(), "agent.yaml:4:7: runtime `rt`: `start` has no steps");
            }
            (Err(e), Ok(_)) => prop_assert!(false, "the agent took what init refused: {}", e),
            (Err(spec_err), Err(agent_err)) => {
                let (line, column) = (spec_err.line().unwrap(), spec_err.column().unwrap());
                let message = spec_err
                    .message()
                    .replacen("init.steps", "runtimes.rt.start.steps", 1);
                prop_assert_eq!(
                    agent_err.to_string(),
                    format!("agent.yaml:{}:{}: {message}", line + 2, column + 4)
                );
            }
        }
    }
}
