//! The one error type of this crate.

use std::borrow::Cow;
use std::fmt;

/// Longest piece of offending text quoted in a message; longer text is cut with `…`.
const QUOTE_LIMIT: usize = 80;

/// A value the kernel printed (or a user typed) that does not parse.
///
/// It quotes the offending text and says what was expected; the path of the file is added
/// by the layer that did the reading, since only it knows the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The offending text (one line or one token, not the whole file).
    pub text: String,
    /// What would have been accepted, as a noun phrase ("a memory block state (…)").
    pub expected: Cow<'static, str>,
    /// 1-based line number for multi-line files such as `/proc/iomem`.
    pub line: Option<usize>,
}

impl ParseError {
    pub(crate) fn new(text: &str, expected: impl Into<Cow<'static, str>>) -> Self {
        Self {
            text: text.to_owned(),
            expected: expected.into(),
            line: None,
        }
    }

    pub(crate) fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        let quoted: String = if self.text.chars().count() > QUOTE_LIMIT {
            let cut: String = self.text.chars().take(QUOTE_LIMIT).collect();
            format!("{cut}…")
        } else {
            self.text.clone()
        };
        write!(f, "{quoted:?} is not {}", self.expected)
    }
}

/// Strips the newline sysfs appends (and any trailing whitespace the kernel tolerates on
/// writes); leading whitespace is kept so that it is reported as malformed.
pub(crate) fn token(text: &str) -> &str {
    text.trim_end()
}
