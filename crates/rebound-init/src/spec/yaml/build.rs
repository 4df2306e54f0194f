//! Parser events to a [`Node`] tree, with the limits of the module docs
//! checked as the events arrive (so a refused text costs no more than the
//! events read up to the problem).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

use super::{Content, Error, ErrorKind, MAX_ALIAS_NODES, MAX_DEPTH, Mark, Node, Style};

/// A collection being read.
struct Frame {
    mark: Mark,
    anchor: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// Each key's identity and where it was first written.
        seen: HashMap<String, Mark>,
    },
}

/// An anchored node, with what alias expansion needs to know of it.
struct Anchored {
    node: Node,
    count: usize,
    height: usize,
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Anchored>,
    alias_nodes: usize,
    documents: usize,
}

pub(super) fn build(text: &str) -> Result<Option<Node>, Error> {
    let mut b = Builder {
        stack: Vec::new(),
        root: None,
        anchors: HashMap::new(),
        alias_nodes: 0,
        documents: 0,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let mark = Mark::from_saphyr(e.marker());
            // The scanner reads flow collections ahead of the events and
            // stops at 255 levels itself; that is the same problem.
            if e.info() == "recursion limit exceeded" {
                return Error::too_deep(mark);
            }
            Error::new(ErrorKind::Syntax, Some(mark), e.info())
        })?;
        b.event(event, Mark::from_saphyr(&span.start))?;
    }
    Ok(b.root)
}

/// The style a scalar is read with: `!!str` makes a plain scalar text.
fn style(style: ScalarStyle, tag: Option<&Tag>) -> Style {
    match style {
        _ if tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str") => Style::Quoted,
        ScalarStyle::Plain => Style::Plain,
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
        ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
    }
}

fn check_tag(tag: Option<&Tag>, mark: Mark) -> Result<(), Error> {
    const CORE: &[&str] = &["str", "int", "float", "bool", "null", "map", "seq"];
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && CORE.contains(&t.suffix.as_str()) => Ok(()),
        Some(t) => Err(Error::new(
            ErrorKind::UnsupportedTag,
            Some(mark),
            format!("the YAML tag `{t}` is not supported here"),
        )),
    }
}

/// The identity of a key for the duplicate check: a scalar's text (so `1`
/// and `'1'` are the same key, as every reader here reads keys as text),
/// or a flow rendering of a collection.
fn identity(node: &Node) -> String {
    fn render(node: &Node, out: &mut String) {
        match &node.content {
            Content::Scalar(text, _) => out.push_str(&format!("{text:?}")),
            Content::Seq(items) => {
                out.push('[');
                for item in items {
                    render(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            Content::Map(entries) => {
                out.push('{');
                for (k, v) in entries {
                    render(k, out);
                    out.push(':');
                    render(v, out);
                    out.push(',');
                }
                out.push('}');
            }
        }
    }
    match &node.content {
        Content::Scalar(text, _) => text.clone(),
        _ => {
            let mut out = String::from("\u{0}");
            render(node, &mut out);
            out
        }
    }
}

/// How a key is named in a message.
fn shown(node: &Node) -> String {
    match &node.content {
        Content::Scalar(text, _) => {
            let mut short: String = text.chars().take(60).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            format!("`{short}`")
        }
        Content::Seq(_) => "(a sequence)".to_owned(),
        Content::Map(_) => "(a mapping)".to_owned(),
    }
}

impl Builder {
    fn event(&mut self, event: Event<'_>, mark: Mark) -> Result<(), Error> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Error::new(
                        ErrorKind::MoreThanOneDocument,
                        Some(mark),
                        "a second YAML document starts here; the file must hold exactly one",
                    ));
                }
            }
            Event::Scalar(text, scalar_style, anchor, tag) => {
                check_tag(tag.as_deref(), mark)?;
                let node = Node::new(
                    Content::Scalar(text.into_owned(), style(scalar_style, tag.as_deref())),
                    mark,
                );
                self.anchor(anchor, &node);
                self.add(node)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(anchor, tag.as_deref(), mark, FrameKind::Seq(Vec::new()))?;
            }
            Event::MappingStart(anchor, tag) => {
                let kind = FrameKind::Map {
                    entries: Vec::new(),
                    key: None,
                    seen: HashMap::new(),
                };
                self.open(anchor, tag.as_deref(), mark, kind)?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close()?,
            Event::Alias(id) => self.alias(id, mark)?,
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(
        &mut self,
        anchor: usize,
        tag: Option<&Tag>,
        mark: Mark,
        kind: FrameKind,
    ) -> Result<(), Error> {
        check_tag(tag, mark)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(Error::too_deep(mark));
        }
        self.stack.push(Frame { mark, anchor, kind });
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let content = match frame.kind {
            FrameKind::Seq(items) => Content::Seq(items),
            FrameKind::Map { entries, .. } => Content::Map(entries),
        };
        let node = Node::new(content, frame.mark);
        self.anchor(frame.anchor, &node);
        self.add(node)
    }

    fn anchor(&mut self, id: usize, node: &Node) {
        if id != 0 {
            let anchored = Anchored {
                count: node.count(),
                height: node.height(),
                node: node.clone(),
            };
            self.anchors.insert(id, anchored);
        }
    }

    fn alias(&mut self, id: usize, mark: Mark) -> Result<(), Error> {
        let Some(anchored) = self.anchors.get(&id) else {
            // The parser resolves names; an id without a node is an alias
            // inside its own anchor.
            return Err(Error::new(
                ErrorKind::Syntax,
                Some(mark),
                "this alias refers to the node it is part of",
            ));
        };
        if self.stack.len() + anchored.height > MAX_DEPTH {
            return Err(Error::too_deep(mark));
        }
        self.alias_nodes = self.alias_nodes.saturating_add(anchored.count);
        if self.alias_nodes > MAX_ALIAS_NODES {
            return Err(Error::alias_budget(mark));
        }
        let mut node = anchored.node.clone();
        node.mark = mark;
        self.add(node)
    }

    fn add(&mut self, node: Node) -> Result<(), Error> {
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut frame.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map { entries, key, seen } => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    if let Some(first) = seen.insert(identity(&node), node.mark) {
                        return Err(Error::new(
                            ErrorKind::DuplicateKey,
                            Some(node.mark),
                            format!("duplicate key {} (first at {first})", shown(&node)),
                        ));
                    }
                    *key = Some(node);
                }
            },
        }
        Ok(())
    }
}
