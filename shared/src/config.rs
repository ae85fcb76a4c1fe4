//! Strict XML configuration loading.
//!
//! Files are parsed with quick-xml's serde support into the caller's typed
//! settings. Before that, one pass of the plain reader refuses what serde
//! would not notice: malformed markup and any DOCTYPE (entity declarations
//! are an attack surface and never needed here). Every error names the
//! element at fault, e.g. `<Server>/<Broker>/<Prefetch>: invalid digit`.
//! Files are read with a size limit ([`MAX_FILE_BYTES`], [`MAX_SECRET_BYTES`]),
//! so a wrong path (a log, `/dev/zero`) is refused at once instead of being
//! read into memory.

use std::{io::Read, path::Path};

use serde::de::DeserializeOwned;

/// Largest configuration file read (1 MiB; real ones are a few KiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Largest secret file (`<TokenFile>`, `<EventKeyFile>`...) read.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} holds more than {limit} bytes, the limit for a configuration file: is it the right file?")]
    TooLarge { path: String, limit: u64 },
    #[error("malformed XML at line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("line {line}: DOCTYPE and entity declarations are not allowed in configuration files")]
    Doctype { line: usize },
    #[error("{element}: {message}")]
    Invalid { element: String, message: String },
}

impl ConfigError {
    /// An error about one element, for checks made after parsing.
    pub fn invalid(element: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { element: element.into(), message: message.into() }
    }
}

/// Reads and parses `path` (see [`parse`]).
pub fn load<T: DeserializeOwned>(path: &Path, root: &str) -> Result<T, ConfigError> {
    parse(&read(path, MAX_FILE_BYTES)?, root)
}

/// Reads a text file of at most `limit` bytes. The size on disk is checked
/// first, and the read itself stops past the limit (a device or a growing
/// file has no meaningful size), so memory stays bounded either way.
pub fn read(path: &Path, limit: u64) -> Result<String, ConfigError> {
    let shown = || path.display().to_string();
    let io = |source| ConfigError::Io { path: shown(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limit {
        return Err(ConfigError::TooLarge { path: shown(), limit });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ConfigError::TooLarge { path: shown(), limit });
    }
    String::from_utf8(bytes).map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// A secret given inline (`<X>`) or in a file (`<XFile>`, relative to
/// `base_dir`), at most one of them. `element` names the parent for errors,
/// e.g. `<Server>/<Api>`; `name` the inline element, e.g. `Token`.
pub fn secret_value(
    element: &str,
    name: &str,
    inline: Option<crate::Secret<String>>,
    file: Option<String>,
    base_dir: Option<&std::path::Path>,
) -> Result<Option<crate::Secret<String>>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(element, format!("give <{name}> or <{name}File>, not both"))),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(file)) => {
            let path = match base_dir {
                Some(dir) if std::path::Path::new(&file).is_relative() => dir.join(&file),
                _ => std::path::PathBuf::from(&file),
            };
            let value = read(&path, MAX_SECRET_BYTES)
                .map_err(|e| ConfigError::invalid(format!("{element}/<{name}File>"), e.to_string()))?;
            Ok(Some(crate::Secret::new(value.trim().to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// Parses `text`, whose root element must be `<root>`.
pub fn parse<T: DeserializeOwned>(text: &str, root: &str) -> Result<T, ConfigError> {
    check_markup(text, root)?;
    let mut de = quick_xml::de::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut element = format!("<{root}>");
        for segment in e.path().iter() {
            if let serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } =
                segment
            {
                element.push_str(&format!("/<{key}>"));
            }
        }
        ConfigError::Invalid { element, message: e.into_inner().to_string() }
    })
}

fn line_of(text: &str, position: u64) -> usize {
    let end = (position as usize).min(text.len());
    text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

/// Refuses what the typed parse would not notice or would echo back: bad
/// markup, any DOCTYPE, a root other than `<root>` or none at all, text or a
/// second element outside the root. Errors never quote the file's text, so
/// a wrong file holding passwords does not print them.
fn check_markup(text: &str, root: &str) -> Result<(), ConfigError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let (mut seen_root, mut depth) = (false, 0usize);
    let outside = |line: usize, what: &str| ConfigError::Invalid {
        element: format!("<{root}>"),
        message: format!("line {line}: {what} outside the <{root}> element (is this a Rampart configuration file?)"),
    };
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| ConfigError::Malformed {
            line: line_of(text, reader.error_position()),
            message: e.to_string(),
        })?;
        match event {
            Event::Eof => break,
            Event::DocType(_) => return Err(ConfigError::Doctype { line: line_of(text, position) }),
            Event::Start(ref e) | Event::Empty(ref e) if depth == 0 => {
                if seen_root {
                    return Err(outside(line_of(text, position), "a second element"));
                }
                seen_root = true;
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name != root {
                    return Err(ConfigError::Invalid {
                        element: format!("<{name}>"),
                        message: format!("the root element must be <{root}>"),
                    });
                }
                depth += usize::from(matches!(event, Event::Start(_)));
            }
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(outside(line_of(text, position), "text"));
            }
            Event::CData(_) if depth == 0 => return Err(outside(line_of(text, position), "text")),
            _ => {}
        }
    }
    if !seen_root {
        return Err(ConfigError::invalid(
            format!("<{root}>"),
            format!("the file has no <{root}> element (is this a Rampart configuration file?)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "PascalCase")]
    struct Sample {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "PascalCase")]
    struct Inner {
        count: u32,
    }

    #[test]
    fn parses_good_xml() {
        let s: Sample = parse("<S><Name>x</Name><Inner><Count>3</Count></Inner></S>", "S").unwrap();
        assert_eq!(s, Sample { name: "x".into(), inner: Inner { count: 3 } });
    }

    #[test]
    fn names_the_element_of_a_wrong_type() {
        let err = parse::<Sample>("<S><Name>x</Name><Inner><Count>many</Count></Inner></S>", "S").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("<S>/<Inner>/<Count>"), "{text}");
    }

    #[test]
    fn refuses_unknown_elements() {
        let err = parse::<Sample>("<S><Name>x</Name><Bogus/><Inner><Count>1</Count></Inner></S>", "S").unwrap_err();
        assert!(err.to_string().contains("Bogus"), "{err}");
    }

    #[test]
    fn refuses_missing_elements() {
        let err = parse::<Sample>("<S><Name>x</Name></S>", "S").unwrap_err();
        assert!(err.to_string().contains("missing field `Inner`"), "{err}");
    }

    #[test]
    fn refuses_doctype() {
        let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE S [<!ENTITY x \"boom\">]>\n<S><Name>&x;</Name></S>";
        let err = parse::<Sample>(xml, "S").unwrap_err();
        assert!(matches!(err, ConfigError::Doctype { line: 2 }), "{err}");
    }

    #[test]
    fn refuses_malformed_markup_with_a_line() {
        let err = parse::<Sample>("<S>\n<Name>x</Nam>\n</S>", "S").unwrap_err();
        assert!(matches!(err, ConfigError::Malformed { line: 2, .. }), "{err}");
    }

    #[test]
    fn reads_files_within_their_limit_only() {
        let dir = std::env::temp_dir().join(format!("rampart-config-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.xml");
        std::fs::write(&small, "<S/>").unwrap();
        assert_eq!(read(&small, 4).unwrap(), "<S/>");
        let err = read(&small, 3).unwrap_err();
        assert!(matches!(err, ConfigError::TooLarge { limit: 3, .. }), "{err}");
        // A device reports no size; the read stops anyway.
        let err = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(err.to_string().contains("more than 1024 bytes"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn accepts_a_byte_order_mark_and_comments_around_the_root() {
        let text = "\u{feff}<?xml version=\"1.0\"?>\n<!-- c -->\n<S><Name>x</Name><Inner><Count>1</Count></Inner></S>\n<!-- c -->\n";
        assert_eq!(parse::<Sample>(text, "S").unwrap().name, "x");
    }

    #[test]
    fn refuses_what_is_not_one_configuration_without_quoting_it() {
        for (text, expected) in [
            ("password = hunter2", "line 1: text outside the <S> element"),
            ("", "the file has no <S> element"),
            ("<!-- only a comment -->", "the file has no <S> element"),
            (
                "<S><Name>x</Name><Inner><Count>1</Count></Inner></S>\n<S/>",
                "line 2: a second element outside the <S> element",
            ),
            ("<S><Name>x</Name><Inner><Count>1</Count></Inner></S> hunter2", "text outside the <S> element"),
        ] {
            let err = parse::<Sample>(text, "S").unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("hunter2"), "{text:?}: {err}");
        }
    }

    #[test]
    fn refuses_wrong_root() {
        let err = parse::<Sample>("<Other/>", "S").unwrap_err();
        assert!(err.to_string().contains("root element must be <S>"), "{err}");
    }
}
