//! The agent config read from text: block, flow and JSON forms, strict
//! fields, positions of errors in the agent file.

use std::time::Duration;

use super::*;

const GOOD: &str = "\
listen: unix:/tmp/agent.sock
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
      timeout: 1s
    endpoint: tcp://127.0.0.1:8080
    start_timeout: 30s
    ready_ttl: 5s
    backoff: { initial: 500ms, max: 10s, multiplier: 3, jitter: none }
  db:
    start: { steps: [ { id: pg, uses: init.run, with: { command: [\"true\"] } } ] }
    probe: { id: pg-up, uses: init.wait_tcp, with: { host: 127.0.0.1, port: 5432 } }
    endpoint: tcp://127.0.0.1:5432
";

#[test]
fn reads_block_and_flow_runtimes() {
    let c = AgentConfig::parse(GOOD, "agent.yaml").unwrap();
    assert_eq!(c.listen, Some(Addr::Unix("/tmp/agent.sock".into())));
    let names: Vec<_> = c.runtimes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["db", "web"]);
    let web = &c.runtimes[1];
    assert_eq!(web.start.init.steps[0].id, "serve");
    assert_eq!(web.probe.init.steps[0].id, "probe");
    assert_eq!(web.probe.init.steps[0].action.name(), "init.wait_tcp");
    assert_eq!(web.ensure.start_timeout(), Duration::from_secs(30));
    assert_eq!(web.ensure.ready_ttl(), Some(Duration::from_secs(5)));
    assert_eq!(web.ensure.probe_timeout(), Duration::from_secs(1));
    assert_eq!(web.ensure.backoff().nominal(2), Duration::from_millis(1500));
    let db = &c.runtimes[0];
    assert_eq!(db.probe.init.steps[0].id, "pg-up");
    assert_eq!(db.ensure.start_timeout(), Duration::from_secs(90));
}

#[test]
fn flow_probe_without_id_gets_one() {
    let text = GOOD.replace("{ id: pg-up, uses", "{ uses");
    let c = AgentConfig::parse(&text, "agent.yaml").unwrap();
    assert_eq!(c.runtimes[0].probe.init.steps[0].id, "probe");
}

fn error(text: &str) -> String {
    AgentConfig::parse(text, "agent.yaml")
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_runtime_field_has_its_position() {
    let e = error(&GOOD.replace("    ready_ttl: 5s", "    ready_tll: 5s"));
    assert!(e.starts_with("agent.yaml:15:5: "), "{e}");
    assert!(e.contains("unknown field `ready_tll`"), "{e}");
}

#[test]
fn bad_values_have_their_positions() {
    let e = error(&GOOD.replace("start_timeout: 30s", "start_timeout: 0s"));
    assert!(e.starts_with("agent.yaml:14:"), "{e}");
    assert!(e.contains("above zero"), "{e}");
    let e = error(&GOOD.replace("multiplier: 3", "multiplier: 0.5"));
    assert!(e.starts_with("agent.yaml:16:"), "{e}");
    let e = error(&GOOD.replace("unix:/tmp/agent.sock", "http://x"));
    assert!(e.starts_with("agent.yaml:1:"), "{e}");
    for huge in ["1e30", ".inf", "99999999999999999999"] {
        let e = error(&GOOD.replace("ready_ttl: 5s", &format!("ready_ttl: {huge}")));
        assert!(e.starts_with("agent.yaml:15:"), "{e}");
        assert!(e.contains("is too large"), "{huge}: {e}");
    }
    let e = error(&GOOD.replace("ready_ttl: 5s", "ready_ttl: -0.5"));
    assert!(e.contains("above zero, got -0.5"), "{e}");
    let e = error(&GOOD.replace("  web:", "  we b:"));
    assert!(e.contains("runtime name `we b`"), "{e}");
}

#[test]
fn errors_inside_start_and_probe_keep_file_positions() {
    // A port out of range inside the block probe: line 11.
    let e = error(&GOOD.replace("port: 8080", "port: 70000"));
    assert!(e.starts_with("agent.yaml:11:"), "{e}");
    assert!(e.contains(": runtimes.web.probe.with.port: "), "{e}");
    // An unknown step field inside start: line 8.
    let e = error(&GOOD.replace(
        "          with: { command: \"true\" }",
        "          wth: { command: \"true\" }",
    ));
    assert!(e.starts_with("agent.yaml:8:11: "), "{e}");
    assert!(e.contains("runtimes.web.start.steps[0]"), "{e}");
    // An unknown action in the flow-style start on line 18.
    let e = error(&GOOD.replace(
        "uses: init.run, with: { command: [",
        "uses: init.rn, with: { command: [",
    ));
    assert!(e.starts_with("agent.yaml:18:"), "{e}");
    assert!(e.contains("init.rn"), "{e}");
    // Port 0 in the flow probe with no id: the column is the file's.
    let text = GOOD
        .replace("{ id: pg-up, uses", "{ uses")
        .replace("port: 5432", "port: 0");
    let e = error(&text);
    let col = text.lines().nth(18).unwrap().find("0 }").unwrap() + 1;
    assert!(e.starts_with(&format!("agent.yaml:19:{col}: ")), "{e}");
}

#[test]
fn multi_line_flow_values_end_at_their_bracket() {
    let text = "runtimes:\n  x:\n    start: {\n      steps: [ { id: a, uses: init.run, with: { command: \"echo '}' # x\" } } ]\n    }\n    probe: {\n      uses: init.wait_file,\n      with: { path: /tmp }\n    }\n    endpoint: e\n";
    let c = AgentConfig::parse(text, "agent.yaml").unwrap();
    assert_eq!(c.runtimes[0].start.init.steps[0].id, "a");
    assert_eq!(c.runtimes[0].probe.init.steps[0].id, "probe");
    let e = error(&text.replace("path: /tmp", "path: /tmp, bad: 1"));
    assert!(e.starts_with("agent.yaml:8:"), "{e}");
}

const TWO: &str = "\
runtimes:
  a:
    start:
      steps:
        - { id: x, uses: init.run, with: { command: \"true\" } }
    probe: { uses: init.wait_file, with: { path: /x } }
    endpoint: e
  b:
    start:
      steps:
        - { id: y, uses: init.run, with: { command: \"true\" } }
    probe: { uses: init.wait_file, with: { path: /y } }
    endpoint: f
";

/// Refused while `start` and `probe` were cut out of the text by hand;
/// read from the nodes, anchors and aliases are plain YAML, as in a spec.
#[test]
fn anchors_and_aliases_in_start_and_probe_are_plain_yaml() {
    assert_eq!(
        AgentConfig::parse(TWO, "agent.yaml")
            .unwrap()
            .runtimes
            .len(),
        2
    );
    // `start: &s` in `a`, reused as `start: *s` in `b`.
    let text = TWO.replacen("    start:\n", "    start: &s\n", 1).replacen(
        "    start:\n      steps:\n        - { id: y, uses: init.run, with: { command: \"true\" } }\n",
        "    start: *s\n",
        1,
    );
    let c = AgentConfig::parse(&text, "agent.yaml").unwrap();
    assert_eq!(c.runtimes[1].start, c.runtimes[0].start);
    assert_eq!(c.runtimes[1].start.init.steps[0].id, "x");
    // `probe: &p` reused.
    let text = TWO.replacen("    probe: {", "    probe: &p {", 1).replace(
        "    probe: { uses: init.wait_file, with: { path: /y } }",
        "    probe: *p",
    );
    let c = AgentConfig::parse(&text, "agent.yaml").unwrap();
    assert_eq!(c.runtimes[1].probe, c.runtimes[0].probe);
    // An alias inside `start` to an anchor outside it.
    let anchored = TWO.replacen("with: { command:", "with: &w { command:", 1);
    let text = anchored.replacen("with: { command: \"true\" }", "with: *w", 1);
    let c = AgentConfig::parse(&text, "agent.yaml").unwrap();
    assert_eq!(
        c.runtimes[1].start.init.steps[0].action,
        c.runtimes[0].start.init.steps[0].action
    );
    // An alias to nothing is YAML's own error, at the alias.
    let e = error(&TWO.replace(
        "    probe: { uses: init.wait_file, with: { path: /y } }",
        "    probe: *p",
    ));
    assert!(e.starts_with("agent.yaml:12:12: "), "{e}");
    assert!(e.contains("unknown anchor"), "{e}");
}

#[test]
fn missing_pieces_are_named() {
    let e = error("runtimes: {}\n");
    assert!(e.contains("`runtimes` is empty"), "{e}");
    let e = error(&GOOD.replace("    endpoint: tcp://127.0.0.1:8080\n", ""));
    assert!(e.contains("missing field `endpoint`"), "{e}");
    let e = error(
        "runtimes:\n  a:\n    start: { steps: [] }\n    probe: { uses: init.wait_file, with: { path: /x } }\n    endpoint: e\n",
    );
    assert!(e.contains("`start` has no steps"), "{e}");
}

#[test]
fn a_bad_jitter_is_refused_at_its_value_with_the_valid_names() {
    let text = GOOD.replace("jitter: none", "jitter: half");
    let e = error(&text);
    let col = text.lines().nth(15).unwrap().find("half").unwrap() + 1;
    assert_eq!(
        e,
        format!(
            "agent.yaml:16:{col}: runtimes.web.backoff.jitter: unknown jitter \"half\" (expected none, full, equal or decorrelated)"
        )
    );
    // Every name the one jitter parser knows is read.
    for name in ["none", "full", "equal", "decorrelated", "Equal"] {
        let text = GOOD.replace("jitter: none", &format!("jitter: {name}"));
        AgentConfig::parse(&text, "agent.yaml").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_bad_multiplier_is_refused_at_its_value() {
    let text = GOOD.replace("multiplier: 3", "multiplier: 0.5");
    let e = error(&text);
    let col = text.lines().nth(15).unwrap().find("0.5").unwrap() + 1;
    assert!(
        e.starts_with(&format!(
            "agent.yaml:16:{col}: runtimes.web.backoff.multiplier: "
        )),
        "{e}"
    );
    assert!(e.contains("at least 1, got 0.5"), "{e}");
}

#[test]
fn durations_use_the_one_grammar_a_bare_number_is_seconds() {
    let read = |value: &str| {
        let text = GOOD.replace("start_timeout: 30s", &format!("start_timeout: {value}"));
        let c = AgentConfig::parse(&text, "agent.yaml").unwrap_or_else(|e| panic!("{value}: {e}"));
        c.runtimes[1].ensure.start_timeout()
    };
    assert_eq!(read("30"), read("30s"));
    assert_eq!(read("'30'"), Duration::from_secs(30));
    assert_eq!(read("1.5"), Duration::from_millis(1500));
    assert_eq!(read("'1.5'"), Duration::from_millis(1500));
    assert_eq!(read("1m30s"), Duration::from_secs(90));
}
