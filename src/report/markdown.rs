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
            header: columns
                .iter()
                .map(|c| c.trim_start_matches('>').to_string())
                .collect(),
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
            .map(|right| {
                if *right {
                    "---:".to_string()
                } else {
                    "---".to_string()
                }
            })
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

/// Pipes end a cell and newlines end a row, even inside code spans (GFM unescapes
/// `\|` there too).
pub fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A code span for a path or command, with a fence longer than any backtick run inside.
pub fn code(text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Plain text for a cell: no HTML, no accidental emphasis or code.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A code fence longer than any backtick run in `body`, so a fix never closes it early.
pub fn fence_for(body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Units [`unbreak_units`] keeps on the line of their number.
const UNITS: [&str; 10] = [
    "B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "s", "bytes",
];

/// `text` with a no-break space (U+00A0) between a number and its unit in table rows,
/// outside code spans: a narrow column would otherwise wrap `18.8 MB` as `18.8` over
/// `MB`. Prose wraps between words anyway and keeps plain spaces (so its sentences
/// read the same as in the terminal), as do fenced blocks. Markdown only: terminal
/// tables and JSON keep plain spaces.
pub fn unbreak_units(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    // The backtick count of the open fence, if any: it closes only on as many.
    let mut fence: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let run = trimmed.chars().take_while(|c| *c == '`').count();
        match fence {
            Some(open) => {
                if run >= open && trimmed.len() == run {
                    fence = None;
                }
                out.push_str(line);
            }
            None if run >= 3 => {
                fence = Some(run);
                out.push_str(line);
            }
            None if trimmed.starts_with('|') => unbreak_line(line, &mut out),
            None => out.push_str(line),
        }
    }
    out
}

fn unbreak_line(line: &str, out: &mut String) {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            // An escaped character (`\``) opens no code span.
            out.extend(&chars[i..(i + 2).min(chars.len())]);
            i += 2;
            continue;
        }
        if c == '`' {
            // A code span: copied as it is, up to the closing run of as many backticks.
            let run = chars[i..].iter().take_while(|c| **c == '`').count();
            let mut j = i + run;
            let mut close = None;
            while j < chars.len() {
                let r = chars[j..].iter().take_while(|c| **c == '`').count();
                if r == run {
                    close = Some(j + r);
                    break;
                }
                j += r.max(1);
            }
            let end = close.unwrap_or(i + run);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        if c == ' ' && i > 0 && chars[i - 1].is_ascii_digit() && unit_follows(&chars[i + 1..]) {
            out.push('\u{a0}');
        } else {
            out.push(c);
        }
        i += 1;
    }
}

fn unit_follows(rest: &[char]) -> bool {
    UNITS.iter().any(|unit| {
        let n = unit.chars().count();
        rest.len() >= n
            && rest[..n].iter().copied().eq(unit.chars())
            && rest.get(n).is_none_or(|c| !c.is_alphanumeric())
    })
}

/// Text for an HTML element (a `<summary>`): no markup from an image name.
pub fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A `<details>` block: GitHub renders the Markdown inside only with a blank line
/// after `<summary>` and before `</details>`.
pub fn details(summary: &str, body: &str) -> String {
    format!(
        "<details>\n<summary>{summary}</summary>\n\n{}\n\n</details>\n\n",
        body.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_pipes_and_newlines() {
        let mut table = MarkdownTable::new(&["cmd", ">bytes"]);
        table.row(vec![text("RUN a | b\nc_d"), "12".into()]);
        assert_eq!(
            table.render(),
            "| cmd | bytes |\n|---|---:|\n| RUN a \\| b c\\_d | 12 |\n"
        );
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("/usr/bin"), "`/usr/bin`");
    }

    #[test]
    fn fences_outgrow_backticks() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }

    #[test]
    fn units_stay_with_their_numbers() {
        assert_eq!(
            unbreak_units("| 18.8 MB | 999 B | 1.72 s | 3 layers | `1 MB` |\n```\n2 MB\n```\n"),
            "| 18.8\u{a0}MB | 999\u{a0}B | 1.72\u{a0}s | 3 layers | `1 MB` |\n```\n2 MB\n```\n"
        );
        assert_eq!(unbreak_units("| 4 Bytes, 5 Big |"), "| 4 Bytes, 5 Big |");
        assert_eq!(unbreak_units("| \\` 2 MB ` |"), "| \\` 2\u{a0}MB ` |");
        assert_eq!(unbreak_units("Prose: 2 MB.\n"), "Prose: 2 MB.\n");
        assert_eq!(html("<a&b>"), "&lt;a&amp;b&gt;");
    }

    #[test]
    fn details_keep_blank_lines_around_markdown() {
        assert_eq!(
            details("<b>x</b>", "### A\n\n| a |\n|---|\n| 1 |\n\n"),
            "<details>\n<summary><b>x</b></summary>\n\n### A\n\n| a |\n|---|\n| 1 |\n\n</details>\n\n"
        );
    }
}
