//! Maps between key paths (`trunks[1].outbound.host`) and source lines, using the spans of
//! toml's own parse tree, so the public config types can stay free of `Spanned` wrappers.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::ConfigError;

/// A parsed document, kept for locating errors.
pub(crate) struct Doc<'a> {
    text: &'a str,
    file: &'a str,
    root: Spanned<DeTable<'a>>,
    /// `root` as a value, for walking.
    tree: DeValue<'a>,
}

impl<'a> Doc<'a> {
    /// Parses TOML syntax; syntax errors are returned located.
    pub(crate) fn parse(text: &'a str, file: &'a str) -> Result<Self, ConfigError> {
        let (root, errors) = DeTable::parse_recoverable(text);
        let tree = DeValue::Table(root.get_ref().clone());
        let doc = Doc {
            text,
            file,
            root,
            tree,
        };
        match errors.first() {
            Some(e) => Err(doc.de_error(e)),
            None => Ok(doc),
        }
    }

    /// A serde deserializer over the document.
    pub(crate) fn deserializer(&self) -> toml::de::Deserializer<'a> {
        self.root.clone().into()
    }

    /// Converts a toml error into [`ConfigError::Invalid`], deriving the key path from its span.
    pub(crate) fn de_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map_or(0, |s| s.start);
        let mut key = String::new();
        if !find_offset(&self.tree, offset, &mut key) {
            // E.g. a syntax error past the end of a value: use the key starting that line.
            let line_start = self
                .text
                .get(..offset)
                .and_then(|t| t.rfind('\n'))
                .map_or(0, |i| i + 1);
            let indent = self.text[line_start..].len() - self.text[line_start..].trim_start().len();
            find_offset(&self.tree, line_start + indent, &mut key);
        }
        // serde reports a missing field at the enclosing table; name the field itself.
        if let Some(field) = e
            .message()
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            push_key(&mut key, field);
        }
        self.error_at(offset, key, e.message().to_owned())
    }

    /// Whether `path` is written in the document.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.span_of(path).1
    }

    /// [`ConfigError::Invalid`] for `key`, at the line where `key` (or its nearest written
    /// ancestor) appears.
    pub(crate) fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let key = key.into();
        let offset = self.span_of(&key).0.map_or(0, |s| s.start);
        self.error_at(offset, key, message.into())
    }

    /// The line where `key` (or its nearest written ancestor) appears.
    pub(crate) fn line_of(&self, key: &str) -> usize {
        self.line(self.span_of(key).0.map_or(0, |s| s.start))
    }

    fn error_at(&self, offset: usize, key: String, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line: self.line(offset),
            key,
            message,
        }
    }

    fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Span of the value at `path`, or of its deepest written ancestor; the flag says whether
    /// the whole path was found.
    fn span_of(&self, path: &str) -> (Option<Range<usize>>, bool) {
        let mut current = &self.tree;
        let mut span = None;
        for part in path.split('.') {
            let mut pieces = part.split('[');
            let key = pieces.next().unwrap_or_default();
            let mut next = match current {
                DeValue::Table(t) => t.get(key),
                _ => None,
            };
            for index in pieces {
                let Some(value) = next else { break };
                span = Some(value.span());
                let index = index.trim_end_matches(']').parse().unwrap_or(usize::MAX);
                next = match value.get_ref() {
                    DeValue::Array(a) => a.get(index),
                    _ => None,
                };
            }
            let Some(value) = next else {
                return (span, false);
            };
            span = Some(value.span());
            current = value.get_ref();
        }
        (span, true)
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn contains(span: Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// Appends to `path` the key path of the deepest key or value containing `offset`.
fn find_offset(value: &DeValue<'_>, offset: usize, path: &mut String) -> bool {
    let len = path.len();
    match value {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                push_key(path, k.get_ref());
                if find_offset(v.get_ref(), offset, path)
                    || contains(k.span(), offset)
                    || contains(v.span(), offset)
                {
                    return true;
                }
                path.truncate(len);
            }
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                if find_offset(v.get_ref(), offset, path) || contains(v.span(), offset) {
                    return true;
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
    false
}
