//! Loading a spec: the text is read once into positioned nodes
//! ([`super::yaml`]), the nodes decide which form the file has and which
//! service runs, and each step's `uses:` is looked up on its node (so that
//! a `with:` written before its `uses:` is still read into the right
//! parameter type). Then the chosen section is deserialized from the nodes
//! through the seeds of [`seeds`], which validate inside their visitors:
//! every error, including one deep inside `with:`, carries the position of
//! the node that caused it.
//!
//! The same entry points serve a section embedded in another file (the
//! agent config's `start` and `probe`): [`InitSpec::from_node`] and
//! [`Step::from_node`] take the node and the dotted path it has in its
//! file, so errors read `FILE:LINE:COLUMN: runtimes.web.start.steps[0]...`.

mod retry;
mod seeds;

use std::cell::RefCell;
use std::path::Path;

use serde::de::DeserializeSeed;

use super::yaml::{self, Document, Node};
use super::{InitSpec, Spec, SpecError, SpecErrorKind, Step};
use crate::spec::yaml::de::NodeDeserializer;
use seeds::{FileSeed, InitSeed, ServiceSeed, StepSeed, known_action};

#[cfg(test)]
pub(super) use seeds::STEP_FIELDS;

impl Spec {
    /// Reads and validates the spec in the file at `path`.
    ///
    /// `service` picks the service of a ZLayer deployment file; it may be
    /// `None` when exactly one service has an `init` section. Errors name
    /// the file as given, with line and column. A file larger than
    /// [`yaml::MAX_BYTES`] (1 MiB) is refused before it is read whole.
    ///
    /// ```
    /// # use rebound_init::spec::Spec;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("init.yaml");
    /// std::fs::write(&path, "init:\n  steps: []\n")?;
    /// let spec = Spec::load(&path, None)?;
    /// assert!(spec.init.steps.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(path: impl AsRef<Path>, service: Option<&str>) -> Result<Spec, SpecError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let bytes = yaml::read_file(path)
            .map_err(|e| SpecError::io(&origin, e))?
            .map_err(|e| SpecError::from_yaml(&origin, &e))?;
        let doc = Document::parse_bytes(&bytes).map_err(|e| SpecError::from_yaml(&origin, &e))?;
        Self::from_document(&doc, &origin, service)
    }

    /// Parses and validates a spec from YAML text; `origin` names it in
    /// errors (usually the file name).
    ///
    /// ```
    /// # use rebound_init::spec::Spec;
    /// let deployment = "\
    /// version: v1
    /// deployment: shop
    /// services:
    ///   api:
    ///     image: { name: shop/api }
    ///     init:
    ///       steps:
    ///         - id: wait-db
    ///           uses: init.wait_tcp
    ///           with: { host: 127.0.0.1, port: 5432 }
    ///   worker:
    ///     image: { name: shop/worker }
    /// ";
    /// let spec = Spec::from_yaml(deployment, "shop.yaml", None)?;
    /// assert_eq!(spec.service.as_deref(), Some("api"));
    /// assert_eq!(spec.init.steps[0].id, "wait-db");
    /// # Ok::<(), rebound_init::spec::SpecError>(())
    /// ```
    pub fn from_yaml(text: &str, origin: &str, service: Option<&str>) -> Result<Spec, SpecError> {
        let doc = Document::parse(text).map_err(|e| SpecError::from_yaml(origin, &e))?;
        Self::from_document(&doc, origin, service)
    }

    /// Validates a spec from a parsed document (see [`Spec::from_node`]);
    /// an empty document is refused.
    ///
    /// ```
    /// # use rebound_init::spec::{Spec, yaml::Document};
    /// let doc = Document::parse("init: { steps: [] }").unwrap();
    /// assert!(Spec::from_document(&doc, "x.yaml", None)?.init.steps.is_empty());
    /// # Ok::<(), rebound_init::spec::SpecError>(())
    /// ```
    pub fn from_document(
        doc: &Document,
        origin: &str,
        service: Option<&str>,
    ) -> Result<Spec, SpecError> {
        match doc.root() {
            Some(root) => Self::from_node(root, origin, service),
            None => Err(empty(origin)),
        }
    }

    /// Validates a spec from the root node of its file: an init spec
    /// (`init`, `errors`) or a ZLayer deployment (`services`), as
    /// [`Spec::from_yaml`].
    ///
    /// ```
    /// # use rebound_init::spec::{Spec, yaml::Document};
    /// let doc = Document::parse("init:\n  steps:\n    - { id: a, uses: init.wait_file, with: { path: /x } }\n").unwrap();
    /// let spec = Spec::from_node(doc.root().unwrap(), "x.yaml", None)?;
    /// assert_eq!(spec.init.steps[0].id, "a");
    /// # Ok::<(), rebound_init::spec::SpecError>(())
    /// ```
    pub fn from_node(root: &Node, origin: &str, service: Option<&str>) -> Result<Spec, SpecError> {
        if root.is_null() {
            return Err(empty(origin));
        }
        let yaml_error = |e: yaml::Error| SpecError::from_yaml(origin, &e);
        let Some((_, services)) = root.entry("services") else {
            if let Some(name) = service {
                return Err(SpecError::new(
                    SpecErrorKind::Service,
                    origin,
                    None,
                    format!(
                        "service `{name}` was asked for, but the file has no `services` section (it is not a deployment file)"
                    ),
                ));
            }
            let hints = step_hints(root.get("init"));
            let (init, errors) = FileSeed { hints: &hints }
                .deserialize(NodeDeserializer::new(root))
                .map_err(yaml_error)
                .map_err(|e| retry::relocate(e, steps_of(root.get("init"), "init"), origin))?;
            return Ok(Spec {
                init,
                errors,
                service: None,
            });
        };
        // A deployment's init belongs to a service: top-level sections
        // beside `services` would be silently ignored, so they are refused.
        for section in ["init", "errors"] {
            if let Some((key, _)) = root.entry(section) {
                return Err(SpecError::new(
                    SpecErrorKind::Invalid,
                    origin,
                    Some((key.mark().line(), key.mark().column())),
                    format!(
                        "a top-level `{section}` beside `services` would be ignored: in a deployment file `{section}` goes inside a service; an init spec has no `services`"
                    ),
                ));
            }
        }
        let (name, node) = choose_service(services, origin, service)?;
        let hints = step_hints(node.get("init"));
        let path = format!("services.{name}");
        let (init, errors) = ServiceSeed { hints: &hints }
            .deserialize(NodeDeserializer::at(node, &path))
            .map_err(yaml_error)
            .map_err(|e| {
                retry::relocate(
                    e,
                    steps_of(node.get("init"), &format!("{path}.init")),
                    origin,
                )
            })?;
        // A service named with --service may have no `init`: no steps.
        let init = init.unwrap_or_default();
        if let Some(panic) = errors.as_ref().and_then(|e| e.on_panic.as_ref()) {
            tracing::debug!(
                service = %name,
                action = ?panic.action,
                "errors.on_panic is the container runtime's concern; rebound ignores it"
            );
        }
        Ok(Spec {
            init,
            errors: errors.unwrap_or_default(),
            service: Some(name),
        })
    }
}

impl InitSpec {
    /// Validates an init section (`steps: [...]`) given as a node of a
    /// larger file; `path` is where the node is in that file
    /// (`runtimes.web.start`), for messages.
    ///
    /// ```
    /// # use rebound_init::spec::{InitSpec, yaml::Document};
    /// let doc = Document::parse("start:\n  steps:\n    - { id: a, uses: init.wait_tcp, with: { host: db, port: 0 } }\n").unwrap();
    /// let start = doc.root().unwrap().get("start").unwrap();
    /// let err = InitSpec::from_node(start, "agent.yaml", "start").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "agent.yaml:3:61: start.steps[0].with.port: port must be 1-65535, got 0"
    /// );
    /// # Ok::<(), rebound_init::spec::SpecError>(())
    /// ```
    pub fn from_node(node: &Node, origin: &str, path: &str) -> Result<InitSpec, SpecError> {
        let hints = step_hints(Some(node));
        InitSeed { hints: &hints }
            .deserialize(NodeDeserializer::at(node, path))
            .map_err(|e| SpecError::from_yaml(origin, &e))
            .map_err(|e| retry::relocate(e, steps_of(Some(node), path), origin))
    }
}

impl Step {
    /// Validates one step given as a node of a larger file; `path` is
    /// where it is in that file, for messages. `default_id` is the id of a
    /// step written without `id` (`None` makes `id` required).
    ///
    /// ```
    /// # use rebound_init::spec::{Step, yaml::Document};
    /// let doc = Document::parse("probe: { uses: init.wait_file, with: { path: /x } }").unwrap();
    /// let probe = doc.root().unwrap().get("probe").unwrap();
    /// let step = Step::from_node(probe, "agent.yaml", "probe", Some("probe"))?;
    /// assert_eq!(step.id, "probe");
    /// assert_eq!(step.action.name(), "init.wait_file");
    /// # Ok::<(), rebound_init::spec::SpecError>(())
    /// ```
    pub fn from_node(
        node: &Node,
        origin: &str,
        path: &str,
        default_id: Option<&str>,
    ) -> Result<Step, SpecError> {
        let ids = RefCell::new(Vec::new());
        StepSeed {
            hint: hint(node),
            ids: &ids,
            default_id,
        }
        .deserialize(NodeDeserializer::at(node, path))
        .map_err(|e| SpecError::from_yaml(origin, &e))
        .map_err(|e| retry::relocate(e, [(node, path.to_owned())], origin))
    }
}

/// The step nodes of an init section node, each with its path in the file
/// (`PREFIX.steps[N]`).
fn steps_of<'n>(init: Option<&'n Node>, prefix: &str) -> Vec<(&'n Node, String)> {
    let steps = init.and_then(|i| i.get("steps")).and_then(Node::as_seq);
    steps
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let path = if prefix.is_empty() {
                format!("steps[{i}]")
            } else {
                format!("{prefix}.steps[{i}]")
            };
            (step, path)
        })
        .collect()
}

fn empty(origin: &str) -> SpecError {
    SpecError::new(
        SpecErrorKind::Invalid,
        origin,
        None,
        "the spec is empty: expected an `init` section with `steps`",
    )
}

/// The service whose init runs: the one named, or the only one with an
/// `init` section.
fn choose_service<'n>(
    services: &'n Node,
    origin: &str,
    service: Option<&str>,
) -> Result<(String, &'n Node), SpecError> {
    let entries: Vec<(&str, &Node)> = services
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
        .collect();
    let names: Vec<String> = entries.iter().map(|(n, _)| (*n).to_owned()).collect();
    let problem = |message: String| SpecError::new(SpecErrorKind::Service, origin, None, message);
    match service {
        Some(name) => {
            let Some((_, node)) = entries.iter().find(|(n, _)| *n == name) else {
                return Err(problem(format!(
                    "no service `{name}` in the deployment; services: {}",
                    list(&names)
                )));
            };
            // A service without `init` has nothing to run before its
            // workload: an empty init, not an error.
            Ok((name.to_owned(), node))
        }
        None => {
            let with_init: Vec<&(&str, &Node)> = entries
                .iter()
                .filter(|(_, node)| node.get("init").is_some())
                .collect();
            match with_init.as_slice() {
                [(name, node)] => Ok(((*name).to_owned(), node)),
                [] => Err(problem(format!(
                    "no service has an `init` section; services: {}",
                    list(&names)
                ))),
                many => {
                    let many: Vec<String> = many.iter().map(|(n, _)| (*n).to_owned()).collect();
                    Err(problem(format!(
                        "several services have an `init` section ({}): pick one with --service NAME",
                        list(&many)
                    )))
                }
            }
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// The `uses:` of a step node, when it names a known action.
fn hint(step: &Node) -> Option<&'static str> {
    step.get("uses")
        .and_then(Node::as_str)
        .and_then(known_action)
}

/// The `uses:` of each step of an init section node.
fn step_hints(init: Option<&Node>) -> Vec<Option<String>> {
    init.and_then(|i| i.get("steps"))
        .and_then(Node::as_seq)
        .map(|steps| steps.iter().map(|s| hint(s).map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ActionSpec;

    #[test]
    fn every_action_name_has_a_parameter_reader() {
        let doc = Document::parse("{}").unwrap();
        for name in ActionSpec::NAMES {
            // An empty mapping is never valid parameters; the error must be
            // about the parameters, not about a missing reader.
            let d = NodeDeserializer::new(doc.root().unwrap());
            let err = ActionSpec::deserialize_params(name, d)
                .unwrap_err()
                .to_string();
            assert!(!err.contains("no parameter reader"), "{name}: {err}");
        }
    }
}
