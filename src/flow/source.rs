//! A flow file's text and the mapping from byte offsets to line and column.

use std::path::{Path, PathBuf};

/// A position in a source file, 1-based, as editors and CI annotations show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// The text of one file, kept so diagnostics can quote the offending line.
#[derive(Debug)]
pub struct Source {
    /// The path as the user named it (shown in diagnostics).
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Source {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            path: path.into(),
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Line and column (in characters) of a byte offset.
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Pos {
            line: line as u32 + 1,
            column: column as u32 + 1,
        }
    }

    /// Where a table header or key line starts: the first non-blank character of the line
    /// holding `offset`. Nodes are reported there (`[nodes.menu]` → column 1).
    pub fn line_start_pos(&self, offset: usize) -> Pos {
        let pos = self.pos(offset);
        let text = self.line_text(pos.line);
        let indent = text.chars().take_while(|c| c.is_whitespace()).count();
        Pos {
            line: pos.line,
            column: indent as u32 + 1,
        }
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: u32) -> &str {
        let i = (line as usize).saturating_sub(1);
        let Some(&start) = self.line_starts.get(i) else {
            return "";
        };
        let end = self
            .line_starts
            .get(i + 1)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let s = Source::new("f.toml", "a = 1\n  [nodes.é]\nb".to_string());
        assert_eq!(s.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(s.pos(6), Pos { line: 2, column: 1 });
        assert_eq!(s.pos(8), Pos { line: 2, column: 3 });
        // 'é' is two bytes but one column.
        assert_eq!(
            s.pos(17),
            Pos {
                line: 2,
                column: 11
            }
        );
        assert_eq!(s.line_start_pos(12), Pos { line: 2, column: 3 });
        assert_eq!(s.line_text(2), "  [nodes.é]");
        assert_eq!(s.line_text(9), "");
    }
}
