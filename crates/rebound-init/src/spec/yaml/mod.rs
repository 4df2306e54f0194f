//! YAML read once into an owned tree of positioned nodes, with limits.
//!
//! Specs and agent configs are small files written by people; they are read
//! here with the YAML 1.2 event parser (`saphyr-parser`) into a [`Node`]
//! tree in one pass, and everything else (the init loader, the agent
//! config) deserializes from that tree through [`from_node`]. Reading the
//! file once means a section of it (the agent's `runtimes.NAME.start`) is
//! handed on as nodes, never cut out of the text by hand, and every error
//! still names the line and column in the file.
//!
//! While the tree is built, before any value is interpreted:
//! - the text is at most [`MAX_BYTES`] (checked before parsing) and valid
//!   UTF-8 ([`Document::parse_bytes`] says where the first bad byte is);
//! - collections nest at most [`MAX_DEPTH`] levels (checked at each
//!   collection's start, so a deeply nested file is refused after reading
//!   only its first [`MAX_DEPTH`] openings, in well under a millisecond);
//! - no mapping has the same key twice (the error names both places);
//! - aliases are expanded into copies of their anchor's node, at most
//!   [`MAX_ALIAS_NODES`] nodes in all (an "alias bomb" is refused at the
//!   alias that crosses the budget);
//! - there is exactly one document (a second one is refused where it
//!   starts);
//! - tags other than YAML's own `!!str`, `!!int`, `!!float`, `!!bool`,
//!   `!!null`, `!!map` and `!!seq` are refused: nothing here reads them.
//!
//! Scalars keep their text. What a plain scalar means is decided only when
//! it is deserialized, by what the reader asks for (see [`from_node`]): a
//! reader that wants text (a name, a host, a map key read as a `String`)
//! gets the text as written, so a runtime called `true`, `123` or `null`
//! keeps that name; a reader that accepts anything (a port, a duration)
//! gets the value of the YAML 1.2 core schema (null, bool, integer, float,
//! else text).
//!
//! Why this shape:
//! - `saphyr-parser` is a pure-Rust YAML 1.2 event parser that gives every
//!   event its position; YAML 1.2 breaks lines only at LF, CR and CRLF (a
//!   NEL or LS inside a comment is part of the comment), and its core
//!   schema does not read `yes`/`on` as booleans.
//! - An owned tree rather than deserializing straight from events: the
//!   loaders look a few things up before they deserialize (which service
//!   runs, each step's `uses:`), and the agent hands parts of its file to
//!   the init loader; with a tree that is a lookup, not a second parse, and
//!   aliases are expanded once, under the budget, where they are written.
//! - Limits are checked while events arrive, not after: the cost of a
//!   refused file is bounded by the limit, not by the file. The scanner
//!   also refuses more than 255 levels of flow collections by itself (it
//!   reads ahead of the events); that is reported as the same depth error.

mod build;
pub(crate) mod de;
mod error;
mod scalar;

use std::fmt;

pub use de::from_node;
pub use error::{Error, ErrorKind};

/// The largest spec or config file read, in bytes (1 MiB). Real files are
/// a few kilobytes; the limit keeps a hostile or mistaken input cheap.
pub const MAX_BYTES: usize = 1024 * 1024;

/// How deeply collections may nest (a spec needs about 6 levels).
pub const MAX_DEPTH: usize = 64;

/// How many nodes alias expansion may add to a document in all.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// A position in the text: 1-based line and 1-based column (in characters).
///
/// ```
/// use rebound_init::spec::yaml::Document;
/// let doc = Document::parse("a:\n  b: c\n")?;
/// let b = doc.root().unwrap().get("a").unwrap().get("b").unwrap();
/// assert_eq!((b.mark().line(), b.mark().column()), (2, 6));
/// # Ok::<(), rebound_init::spec::yaml::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    line: usize,
    column: usize,
}

impl Mark {
    /// A mark at 1-based `line` and `column`.
    ///
    /// ```
    /// # use rebound_init::spec::yaml::Mark;
    /// assert_eq!(Mark::new(3, 7).to_string(), "3:7");
    /// ```
    pub fn new(line: usize, column: usize) -> Mark {
        Mark { line, column }
    }

    /// The 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    fn from_saphyr(m: &saphyr_parser::Marker) -> Mark {
        Mark::new(m.line(), m.col() + 1)
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How a scalar was written. Only a plain scalar is open to interpretation
/// (`5432` as a number, `~` as null); any other style is text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Style {
    /// Unquoted.
    Plain,
    /// `'...'` or `"..."`, or tagged `!!str`.
    Quoted,
    /// `|` or `>` blocks.
    Block,
}

/// A node's content.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Content {
    /// A scalar's text as written (after YAML's own unescaping and folding)
    /// and its style.
    Scalar(String, Style),
    /// A sequence's items, in order.
    Seq(Vec<Node>),
    /// A mapping's entries, in order; no two keys are the same.
    Map(Vec<(Node, Node)>),
}

/// One YAML node with the position where it starts.
///
/// ```
/// use rebound_init::spec::yaml::{Content, Document};
/// let doc = Document::parse("ports: [80, 443]\n")?;
/// let ports = doc.root().unwrap().get("ports").unwrap();
/// let Content::Seq(items) = ports.content() else { panic!() };
/// assert_eq!(items[1].as_str(), Some("443"));
/// assert_eq!(items[1].mark().column(), 13);
/// # Ok::<(), rebound_init::spec::yaml::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    content: Content,
    mark: Mark,
}

impl Node {
    /// A node with `content` at `mark` (for building a node to hand to a
    /// loader, such as a default value).
    ///
    /// ```
    /// # use rebound_init::spec::yaml::{Content, Mark, Node, Style};
    /// let id = Node::new(Content::Scalar("probe".into(), Style::Plain), Mark::new(1, 1));
    /// assert_eq!(id.as_str(), Some("probe"));
    /// ```
    pub fn new(content: Content, mark: Mark) -> Node {
        Node { content, mark }
    }

    /// What the node holds.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// Where the node starts.
    pub fn mark(&self) -> Mark {
        self.mark
    }

    /// The text of a scalar node, as written.
    pub fn as_str(&self) -> Option<&str> {
        match &self.content {
            Content::Scalar(text, _) => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping node.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.content {
            Content::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence node.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.content {
            Content::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value of `key` in a mapping node, the key compared as text.
    ///
    /// ```
    /// # use rebound_init::spec::yaml::Document;
    /// let doc = Document::parse("{ true: 1, '2': two }")?;
    /// let root = doc.root().unwrap();
    /// assert_eq!(root.get("true").and_then(|n| n.as_str()), Some("1"));
    /// assert_eq!(root.get("2").and_then(|n| n.as_str()), Some("two"));
    /// assert!(root.get("3").is_none());
    /// # Ok::<(), rebound_init::spec::yaml::Error>(())
    /// ```
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key and value of `key` in a mapping node.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// Whether the node is YAML's null: an empty plain scalar, `~` or
    /// `null` (also `Null`, `NULL`).
    pub fn is_null(&self) -> bool {
        matches!(&self.content, Content::Scalar(text, Style::Plain) if scalar::is_null(text))
    }

    /// How many levels of collections the node holds (0 for a scalar).
    fn height(&self) -> usize {
        match &self.content {
            Content::Scalar(..) => 0,
            Content::Seq(items) => 1 + items.iter().map(Node::height).max().unwrap_or(0),
            Content::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.height().max(v.height()))
                    .max()
                    .unwrap_or(0)
            }
        }
    }

    /// How many nodes the node is made of, itself included.
    fn count(&self) -> usize {
        match &self.content {
            Content::Scalar(..) => 1,
            Content::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Content::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// A parsed YAML text: one document, or none for an empty text.
///
/// ```
/// use rebound_init::spec::yaml::Document;
/// let doc = Document::parse("init:\n  steps: []\n")?;
/// assert!(doc.root().unwrap().get("init").is_some());
///
/// let err = Document::parse("a: 1\na: 2\n").unwrap_err();
/// assert_eq!(err.to_string(), "2:1: duplicate key `a` (first at 1:1)");
/// # Ok::<(), rebound_init::spec::yaml::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    root: Option<Node>,
}

impl Document {
    /// Parses `text` (at most [`MAX_BYTES`]) into a node tree, checking the
    /// limits described in the [module docs](self).
    pub fn parse(text: &str) -> Result<Document, Error> {
        if text.len() > MAX_BYTES {
            return Err(Error::too_large());
        }
        build::build(text).map(|root| Document { root })
    }

    /// Parses raw bytes: they must be UTF-8 (the error names the line and
    /// column of the first byte that is not), then as [`Document::parse`].
    ///
    /// ```
    /// # use rebound_init::spec::yaml::Document;
    /// let err = Document::parse_bytes(b"a: 1\nb: \xff\n").unwrap_err();
    /// assert_eq!(err.to_string(), "2:4: the file is not valid UTF-8 (byte 0xff)");
    /// ```
    pub fn parse_bytes(bytes: &[u8]) -> Result<Document, Error> {
        if bytes.len() > MAX_BYTES {
            return Err(Error::too_large());
        }
        let text = std::str::from_utf8(bytes).map_err(|e| Error::utf8(bytes, &e))?;
        Self::parse(text)
    }

    /// The document's root node, `None` when the text holds no document
    /// (empty, or only comments).
    pub fn root(&self) -> Option<&Node> {
        self.root.as_ref()
    }
}

/// Deserializes `T` from YAML text: [`Document::parse`], then
/// [`from_node`] on its root (an empty text reads as YAML's null).
///
/// ```
/// let port: u16 = rebound_init::spec::yaml::from_str("5432")?;
/// assert_eq!(port, 5432);
/// let none: Option<u16> = rebound_init::spec::yaml::from_str("# nothing")?;
/// assert_eq!(none, None);
/// # Ok::<(), rebound_init::spec::yaml::Error>(())
/// ```
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    let doc = Document::parse(text)?;
    let empty;
    let root = match doc.root() {
        Some(root) => root,
        None => {
            empty = Node::new(
                Content::Scalar(String::new(), Style::Plain),
                Mark::new(1, 1),
            );
            &empty
        }
    };
    from_node(root)
}

/// Reads the file at `path` as bytes, refusing one larger than
/// [`MAX_BYTES`] before reading it whole.
///
/// ```
/// # use rebound_init::spec::yaml::{self, ErrorKind};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("big.yaml");
/// std::fs::write(&path, "#".repeat(yaml::MAX_BYTES + 1))?;
/// let err = yaml::read_file(&path)?.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TooLarge);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_file(path: &std::path::Path) -> std::io::Result<Result<Vec<u8>, Error>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_BYTES {
        return Ok(Err(Error::too_large()));
    }
    Ok(Ok(bytes))
}
