//! Stacked bar charts as Mermaid `xychart-beta` blocks, each followed by a table of
//! the values it draws: the chart shows proportions, the table the figures (and is
//! the legend, since xychart draws none).

use std::fmt::Write as _;

use super::markdown::text;
use super::MarkdownTable;
use crate::size::human;

/// Colours for stacked bars, bottom segment first, each with the emoji square the
/// legend shows for it (GitHub renders emoji where it would strip coloured HTML).
/// Each colour is the hue of its square, so a reader matches them at a glance: a red
/// square next to a burnt-orange bar read as the orange row beside it.
pub const PALETTE: [(&str, &str); 8] = [
    ("#1E88E5", "🟦"),
    ("#FB8C00", "🟧"),
    ("#43A047", "🟩"),
    ("#8E24AA", "🟪"),
    ("#FDD835", "🟨"),
    ("#E53935", "🟥"),
    ("#795548", "🟫"),
    ("#212121", "⬛"),
];

/// The chart background, set explicitly so the mask bar below matches it in every
/// theme GitHub or a viewer picks.
pub const BACKGROUND: &str = "#FFFFFF";

/// Rows a chart keeps before folding the rest into "other" (the eighth colour).
const MAX_ROWS: usize = PALETTE.len() - 1;

/// Rows smaller than this share of the tallest bar are folded into "other": below
/// it a segment is a sliver no one can see or hover.
const MIN_SHARE: f64 = 0.01;

/// The name of the folded row.
pub const OTHER: &str = "other";

/// Chart size in pixels: wide and low, so several charts do not fill a screen each.
const CHART_WIDTH: u32 = 640;
const CHART_HEIGHT: u32 = 320;

/// One segment of every bar: its name and one value per image.
pub type Rows<'a, T> = Vec<(&'a str, Vec<T>)>;

/// Rows with bytes everywhere zero dropped, rows under [`MIN_SHARE`] of the tallest
/// bar and beyond [`MAX_ROWS`] summed into one last "other" row (together with any
/// row already called "other"), the rest in their given order.
pub fn fold_small<'a>(rows: Rows<'a, u64>) -> Rows<'a, u64> {
    let rows: Rows<'a, u64> = rows
        .into_iter()
        .filter(|(_, b)| b.iter().any(|v| *v > 0))
        .collect();
    let width = rows.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    let tallest = (0..width)
        .map(|i| {
            rows.iter()
                .map(|(_, b)| b.get(i).copied().unwrap_or(0))
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let visible = |bytes: &[u64]| {
        bytes.iter().copied().max().unwrap_or(0) as f64 >= tallest as f64 * MIN_SHARE
    };
    let mut candidates: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].0 != OTHER && visible(&rows[*i].1))
        .collect();
    if candidates.len() > MAX_ROWS {
        candidates.sort_by_key(|i| std::cmp::Reverse(rows[*i].1.iter().sum::<u64>()));
        candidates.truncate(MAX_ROWS);
    }
    let mut other = vec![0u64; width];
    let mut out = Vec::with_capacity(MAX_ROWS + 1);
    for (index, (name, bytes)) in rows.into_iter().enumerate() {
        if candidates.contains(&index) {
            out.push((name, bytes));
        } else {
            for (slot, value) in other.iter_mut().zip(&bytes) {
                *slot += value;
            }
        }
    }
    if other.iter().any(|v| *v > 0) {
        out.push((OTHER, other));
    }
    out
}

/// A unit that keeps the tallest bar between 1 and 1000.
fn byte_unit(max: u64) -> (&'static str, f64) {
    match max {
        m if m >= 1_000_000_000 => ("GB", 1e9),
        m if m >= 1_000_000 => ("MB", 1e6),
        m if m >= 1_000 => ("kB", 1e3),
        _ => ("bytes", 1.0),
    }
}

/// A stacked chart of byte counts (small rows folded), then its table.
pub fn stacked_bytes(title: &str, labels: &[String], rows: Rows<'_, u64>) -> String {
    let rows = fold_small(rows);
    let max = column_totals(&rows, labels.len())
        .into_iter()
        .max()
        .unwrap_or(0);
    let (unit, divisor) = byte_unit(max);
    let scaled: Rows<'_, f64> = rows
        .iter()
        .map(|(name, bytes)| (*name, bytes.iter().map(|b| *b as f64 / divisor).collect()))
        .collect();
    let shown: Rows<'_, String> = rows
        .iter()
        .map(|(name, bytes)| (*name, bytes.iter().map(|b| human(*b)).collect()))
        .collect();
    let totals = column_totals(&rows, labels.len())
        .into_iter()
        .map(human)
        .collect();
    stacked(title, labels, unit, &scaled, &shown, totals)
}

/// A stacked chart of seconds, then its table.
pub fn stacked_seconds(title: &str, labels: &[String], rows: &Rows<'_, f64>) -> String {
    let shown: Rows<'_, String> = rows
        .iter()
        .map(|(name, values)| (*name, values.iter().map(|v| format!("{v:.2} s")).collect()))
        .collect();
    let totals = (0..labels.len())
        .map(|i| {
            let total: f64 = rows.iter().filter_map(|(_, v)| v.get(i)).sum();
            format!("{total:.2} s")
        })
        .collect();
    stacked(title, labels, "seconds", rows, &shown, totals)
}

fn column_totals(rows: &Rows<'_, u64>, width: usize) -> Vec<u64> {
    (0..width)
        .map(|i| {
            rows.iter()
                .map(|(_, b)| b.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect()
}

/// An `xychart-beta` stacked bar chart. Mermaid draws every `bar` series at the same
/// x positions, one over the other, so a stack is drawn as cumulative totals, tallest
/// first: each later (shorter) bar covers all but its own top segment.
///
/// Mermaid draws each bar from the bottom of the plot area, which sits the axis'
/// outer padding (about 8 px) below the zero tick (mermaid-js/mermaid#6517), so every
/// bottom segment would look that much taller than its value. A last bar of zeros in
/// the background colour covers exactly that strip: the visible bars then start at
/// the zero tick and every segment's height is its value.
fn stacked(
    title: &str,
    labels: &[String],
    unit: &str,
    rows: &Rows<'_, f64>,
    shown: &Rows<'_, String>,
    totals: Vec<String>,
) -> String {
    let rows: Vec<&(&str, Vec<f64>)> = rows.iter().take(PALETTE.len()).collect();
    let width = labels.len();
    // cumulative[k][i]: the sum of segments 0..=k of image i.
    let mut cumulative: Vec<Vec<f64>> = Vec::with_capacity(rows.len());
    for (k, (_, values)) in rows.iter().enumerate() {
        let below = if k == 0 {
            vec![0.0; width]
        } else {
            cumulative[k - 1].clone()
        };
        cumulative.push(
            (0..width)
                .map(|i| below[i] + values.get(i).copied().unwrap_or(0.0))
                .collect(),
        );
    }
    let top = cumulative
        .last()
        .map_or(0.0, |c| c.iter().copied().fold(0.0, f64::max));
    let y_max = nice_ceiling(top);
    // Series are drawn tallest first, so the palette is given in that order too; the
    // mask bar comes last.
    let mut colours: Vec<&str> = (0..rows.len()).rev().map(|k| PALETTE[k].0).collect();
    colours.push(BACKGROUND);

    let mut out = String::from("```mermaid\n");
    let _ = writeln!(
        out,
        "%%{{init: {{\"theme\": \"default\", \"xyChart\": {{\"width\": {CHART_WIDTH}, \"height\": {CHART_HEIGHT}}}, \
         \"themeVariables\": {{\"xyChart\": {{\"backgroundColor\": \"{BACKGROUND}\", \"plotColorPalette\": \"{}\"}}}}}}}}%%",
        colours.join(", ")
    );
    let _ = writeln!(out, "xychart-beta");
    let _ = writeln!(out, "    title \"{}\"", mermaid_label(title));
    let _ = writeln!(
        out,
        "    x-axis [{}]",
        labels
            .iter()
            .map(|l| format!("\"{}\"", mermaid_label(l)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "    y-axis \"{}\" 0 --> {}",
        mermaid_label(unit),
        number(y_max)
    );
    let bar = |values: &[f64]| {
        format!(
            "    bar [{}]\n",
            values
                .iter()
                .map(|v| number(*v))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for series in cumulative.iter().rev() {
        out.push_str(&bar(series));
    }
    out.push_str(&bar(&vec![0.0; width]));
    out.push_str("```\n\n");

    let mut header = vec!["stacked from the bottom".to_string()];
    header.extend(
        labels
            .iter()
            .map(|l| format!(">{}", super::markdown::code(l))),
    );
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = MarkdownTable::new(&header);
    for (k, (name, values)) in shown.iter().take(rows.len()).enumerate() {
        let mut row = vec![format!("{} {}", PALETTE[k].1, text(name))];
        row.extend(values.iter().cloned());
        table.row(row);
    }
    let mut total = vec!["total".to_string()];
    total.extend(totals);
    table.row(total);
    let _ = writeln!(out, "{}", table.render());
    out
}

/// A round axis maximum a little above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        let candidate = step * magnitude;
        if candidate >= value * 1.02 {
            return candidate;
        }
    }
    10.0 * magnitude
}

/// A number Mermaid parses: plain decimal, at most three decimals, no exponent.
fn number(value: f64) -> String {
    if !value.is_finite() {
        return "0".into();
    }
    let text = format!("{value:.3}");
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    if trimmed.is_empty() || trimmed == "-" || trimmed == "-0" {
        "0".into()
    } else {
        trimmed.to_string()
    }
}

/// Text inside a quoted Mermaid string: no quotes, brackets or characters the xychart
/// grammar or GitHub's renderer treat specially; short enough for an axis.
pub fn mermaid_label(label: &str) -> String {
    let cleaned: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric()
                || matches!(c, ' ' | '.' | ':' | '_' | '/' | '+' | '-' | '@')
            {
                c
            } else {
                ' '
            }
        })
        .collect();
    let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > 40 {
        let mut cut: String = collapsed.chars().take(39).collect();
        cut.push('-');
        cut
    } else {
        collapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_safe_in_mermaid_strings() {
        assert_eq!(mermaid_label("a \"b\" [c]"), "a b c");
        assert_eq!(mermaid_label("hello-go:1.0"), "hello-go:1.0");
        assert!(mermaid_label(&"x".repeat(100)).chars().count() <= 40);
    }

    #[test]
    fn numbers_and_axis() {
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.0004), "0");
        assert_eq!(nice_ceiling(9.3), 10.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert!(nice_ceiling(123.0) >= 123.0 * 1.02);
    }

    #[test]
    fn stacked_chart_draws_cumulative_bars_tallest_first_then_the_mask() {
        let chart = stacked_seconds(
            "t",
            &["a".to_string(), "b".to_string()],
            &vec![("x", vec![1.0, 2.0]), ("y", vec![3.0, 0.5])],
        );
        let bars: Vec<&str> = chart
            .lines()
            .filter(|l| l.trim().starts_with("bar"))
            .collect();
        assert_eq!(
            bars,
            vec!["    bar [4, 2.5]", "    bar [1, 2]", "    bar [0, 0]"]
        );
        // Tallest (top segment) colour first, the background for the mask last.
        assert!(chart.contains("\"plotColorPalette\": \"#FB8C00, #1E88E5, #FFFFFF\""));
        assert!(chart.contains("| 🟦 x | 1.00 s | 2.00 s |"));
        assert!(chart.contains("| 🟧 y | 3.00 s | 0.50 s |"));
        assert!(chart.contains("| total | 4.00 s | 2.50 s |"));
    }

    /// Hue (degrees), saturation and value of `#RRGGBB`.
    fn hsv(hex: &str) -> (f64, f64, f64) {
        let channel = |i: usize| {
            u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).map_or(0.0, |v| f64::from(v) / 255.0)
        };
        let (r, g, b) = (channel(0), channel(1), channel(2));
        let max = r.max(g).max(b);
        let delta = max - r.min(g).min(b);
        let hue = if delta == 0.0 {
            0.0
        } else if max == r {
            60.0 * ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            60.0 * ((b - r) / delta + 2.0)
        } else {
            60.0 * ((r - g) / delta + 4.0)
        };
        (hue, if max == 0.0 { 0.0 } else { delta / max }, max)
    }

    #[test]
    fn each_colour_is_the_hue_of_its_square() {
        for (hex, square) in PALETTE {
            let (hue, saturation, value) = hsv(hex);
            let matches = match square {
                "🟥" => !(12.0..345.0).contains(&hue) && saturation > 0.6,
                "🟧" => (20.0..45.0).contains(&hue) && saturation > 0.6 && value > 0.8,
                "🟨" => (45.0..65.0).contains(&hue) && saturation > 0.6,
                "🟩" => (90.0..160.0).contains(&hue),
                "🟦" => (195.0..240.0).contains(&hue),
                "🟪" => (260.0..320.0).contains(&hue),
                "🟫" => (10.0..40.0).contains(&hue) && value < 0.6,
                "⬛" => value < 0.2,
                _ => false,
            };
            assert!(matches, "{square} drawn in {hex} (hue {hue:.0})");
        }
    }

    #[test]
    fn slivers_and_extra_rows_fold_into_other() {
        // Zero rows go; a row already called "other" joins the fold, last.
        let folded = fold_small(vec![
            ("a", vec![50, 40]),
            ("zero", vec![0, 0]),
            (OTHER, vec![1, 1]),
            ("c", vec![49, 10]),
        ]);
        assert_eq!(
            folded,
            vec![
                ("a", vec![50, 40]),
                ("c", vec![49, 10]),
                (OTHER, vec![1, 1])
            ]
        );
        // 9 is under 1% of the tallest bar (1020), 11 is not.
        let slivers = fold_small(vec![
            ("big", vec![1000]),
            ("small", vec![9]),
            ("edge", vec![11]),
        ]);
        assert_eq!(
            slivers,
            vec![("big", vec![1000]), ("edge", vec![11]), (OTHER, vec![9])]
        );
        let many: Rows<'_, u64> = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(1u64..)
            .map(|(n, v)| (*n, vec![v * 10]))
            .collect();
        let folded = fold_small(many);
        assert_eq!(folded.len(), MAX_ROWS + 1);
        assert_eq!(folded.last(), Some(&(OTHER, vec![30])));
        assert_eq!(folded.first(), Some(&("c", vec![30])));
    }
}
