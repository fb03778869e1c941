//! GitHub-flavoured Markdown tables, escaped so that paths and shell lines never break them.

pub struct MarkdownTable {
    header: Vec<String>,
    right_aligned: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl MarkdownTable {
    /// Columns whose name starts with `>` are right-aligned (numbers).
    pub fn new(columns: &[&str]) -> Self {
        Self {
            header: columns.iter().map(|c| c.trim_start_matches('>').to_string()).collect(),
            right_aligned: columns.iter().map(|c| c.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&line(&self.header));
        let rule: Vec<String> = self
            .right_aligned
            .iter()
            .map(|right| if *right { "---:".to_string() } else { "---".to_string() })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

fn line(cells: &[String]) -> String {
    let escaped: Vec<String> = cells.iter().map(|c| escape_cell(c)).collect();
    format!("| {} |\n", escaped.join(" | "))
}

/// Pipes end a cell and newlines end a row; backticks would open code spans.
pub fn escape_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
        .replace('`', "\\`")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_pipes_and_newlines() {
        let mut table = MarkdownTable::new(&["cmd", ">bytes"]);
        table.row(vec!["RUN a | b\nc".into(), "12".into()]);
        assert_eq!(table.render(), "| cmd | bytes |\n|---|---:|\n| RUN a \\| b c | 12 |\n");
    }
}
