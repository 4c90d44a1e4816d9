//! A short, display-safe preview of a run's input.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How many characters of an input a preview keeps.
pub const PREVIEW_CHARS: usize = 160;

/// Appended to a preview that was cut.
pub const CUT_MARKER: &str = "…";

/// The first [`PREVIEW_CHARS`] characters of an input, cut on a character boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputPreview {
    /// The kept characters (without the marker).
    pub text: String,
    /// Whether characters were cut off.
    pub cut: bool,
    /// How many characters the whole input has.
    pub total_chars: usize,
}

impl InputPreview {
    /// Previews `input`, keeping at most [`PREVIEW_CHARS`] characters.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::{InputPreview, PREVIEW_CHARS};
    /// let long = "é".repeat(200);
    /// let preview = InputPreview::new(&long);
    /// assert!(preview.cut);
    /// assert_eq!(preview.text.chars().count(), PREVIEW_CHARS);
    /// assert!(preview.to_string().ends_with('…'));
    /// assert_eq!(InputPreview::new("short").to_string(), "short");
    /// ```
    pub fn new(input: &str) -> InputPreview {
        InputPreview::with_limit(input, PREVIEW_CHARS)
    }

    /// Previews `input`, keeping at most `limit` characters.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::InputPreview;
    ///
    /// // Characters, not bytes: the cut never splits `é` or `ö`.
    /// let preview = InputPreview::with_limit("héllo wörld", 5);
    /// assert_eq!((preview.text.as_str(), preview.cut), ("héllo", true));
    /// assert_eq!(preview.total_chars, 11);
    /// assert_eq!(preview.to_string(), "héllo…");
    /// // An input of exactly `limit` characters is kept whole.
    /// assert!(!InputPreview::with_limit("héllo", 5).cut);
    /// ```
    pub fn with_limit(input: &str, limit: usize) -> InputPreview {
        // `char_indices` yields only char boundaries, so the slice can never split a
        // multi-byte character.
        let total_chars = input.chars().count();
        match input.char_indices().nth(limit) {
            Some((end, _)) => InputPreview {
                text: input[..end].to_owned(),
                cut: true,
                total_chars,
            },
            None => InputPreview {
                text: input.to_owned(),
                cut: false,
                total_chars,
            },
        }
    }
}

impl fmt::Display for InputPreview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.cut {
            f.write_str(CUT_MARKER)?;
        }
        Ok(())
    }
}
