//! `compare` and the Markdown report on real images: the sample Go and Rust builds of
//! one service, assembled in-process, written as OCI layouts, analysed, advised and
//! costed as the CLI does, then rendered with a CommonMark/GFM renderer to check that
//! every table comes out as a table and every Mermaid block is well-formed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballast::advice::{self, AdviseOptions};
use ballast::compare::{self, Comparison, ImageBundle};
use ballast::cost::{self, CostEstimate};
use ballast::image::FoundBy;
use ballast::image::{self as inspect, InspectOptions, NoProgress};
use ballast::reference::ImageRef;
use ballast::report::document;
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use testkit::samples::{self, GoBuild, RustBuild};
use testkit::{BuiltImage, ImageSpec, Item, LayerSpec};

use crate::common::{browser, samples};

fn write_layout(dir: &Path, name: &str, image: &BuiltImage) -> String {
    let path = dir.join(name);
    testkit::write_oci_layout(&path, &[(image, Some("1.0"))]).expect("write layout");
    format!("oci:{}:1.0", path.display())
}

/// Inspect, and advise when asked, the way `ballast inspect --advise` does.
fn analyse(runtime: &tokio::runtime::Runtime, reference: &str, with_advice: bool) -> ImageBundle {
    runtime.block_on(async {
        let image = ImageRef::parse(reference).expect("reference");
        let (source, analysis) = inspect::inspect_keeping_source(
            &image,
            &InspectOptions::default(),
            Arc::new(NoProgress),
        )
        .await
        .expect("inspect");
        let advice = if with_advice {
            Some(
                advice::advise(
                    source,
                    &analysis,
                    &AdviseOptions::default(),
                    Arc::new(NoProgress),
                )
                .await
                .expect("advise"),
            )
        } else {
            None
        };
        ImageBundle { analysis, advice }
    })
}

/// The built-in pricing, usage and profile, as `ballast cost` uses them without flags.
fn estimate(bundles: &[ImageBundle]) -> CostEstimate {
    let table = cost::pricing::load(None).expect("pricing");
    let pricing = table.select(None).expect("default pricing");
    let usage = cost::usage::load(None).expect("usage");
    let profiles = cost::coldstart::load(None).expect("profiles");
    let profile = profiles.select(None).expect("default profile");
    let sizes: Vec<_> = bundles.iter().map(|b| b.analysis.sizes()).collect();
    cost::estimate(&sizes, pricing, &usage, &profiles, profile).expect("estimate")
}

struct GoAndRust {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    bundles: Vec<ImageBundle>,
    cost: CostEstimate,
    comparison: Comparison,
    markdown: String,
}

/// Built once for the tests of this file: building, analysing and advising the two
/// images is most of their time.
fn go_and_rust() -> &'static GoAndRust {
    static BUILT: std::sync::OnceLock<GoAndRust> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_go_and_rust)
}

fn build_go_and_rust() -> GoAndRust {
    let samples = samples();
    let go = samples::service_image(
        &samples.go(GoBuild::Default).expect("go sample"),
        "usr/local/bin/hello",
        true,
    )
    .expect("go spec")
    .build()
    .expect("go image");
    let rust = samples::service_image(
        &samples.rust(RustBuild::DebugInfo).expect("rust sample"),
        "usr/local/bin/hello",
        true,
    )
    .expect("rust spec")
    .build()
    .expect("rust image");
    let dir = tempfile::tempdir().expect("tempdir");
    let references = [
        write_layout(dir.path(), "hello-go", &go),
        write_layout(dir.path(), "hello-rs", &rust),
    ];
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bundles: Vec<ImageBundle> = references
        .iter()
        .map(|r| analyse(&runtime, r, true))
        .collect();
    let cost = estimate(&bundles);
    let comparison = compare::compare(&bundles, Some(&cost));
    let markdown = document::render(&bundles, &comparison, Some(&cost));
    GoAndRust {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        bundles,
        cost,
        comparison,
        markdown,
    }
}

#[derive(Debug, Default)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

#[derive(Debug, Default)]
struct Rendered {
    html: String,
    tables: Vec<Table>,
    mermaid: Vec<String>,
    headings: Vec<String>,
}

/// The document as GitHub's renderer reads it (CommonMark plus GFM tables).
fn render_gfm(markdown: &str) -> Rendered {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, Parser::new_ext(markdown, options));

    let mut rendered = Rendered {
        html,
        ..Default::default()
    };
    let mut table: Option<Table> = None;
    let mut row: Vec<String> = Vec::new();
    let mut cell: Option<String> = None;
    let mut mermaid: Option<String> = None;
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Start(Tag::Table(_)) => table = Some(Table::default()),
            Event::End(TagEnd::Table) => rendered.tables.extend(table.take()),
            Event::End(TagEnd::TableHead) => {
                if let Some(t) = table.as_mut() {
                    t.header = std::mem::take(&mut row);
                }
            }
            Event::End(TagEnd::TableRow) => {
                if let Some(t) = table.as_mut() {
                    t.rows.push(std::mem::take(&mut row));
                }
            }
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => row.extend(cell.take()),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang))) if &*lang == "mermaid" => {
                mermaid = Some(String::new())
            }
            Event::End(TagEnd::CodeBlock) => rendered.mermaid.extend(mermaid.take()),
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => rendered.headings.extend(heading.take()),
            Event::Text(t) | Event::Code(t) => {
                for target in [cell.as_mut(), mermaid.as_mut(), heading.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    target.push_str(&t);
                }
            }
            _ => {}
        }
    }
    rendered
}

/// Cells of a raw Markdown table line, split at pipes GFM treats as delimiters (those
/// not escaped with a backslash, code spans included).
fn raw_cells(line: &str) -> usize {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut count = 1;
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '\\' if !escaped => {
                escaped = true;
                continue;
            }
            '|' if !escaped => count += 1,
            _ => {}
        }
        escaped = false;
    }
    count
}

/// Every table block in the raw Markdown: its lines (header, rule, rows).
fn raw_tables(markdown: &str) -> Vec<Vec<&str>> {
    let mut tables = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with('|') {
            current.push(line);
        } else if !current.is_empty() {
            tables.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tables.push(current);
    }
    tables
}

fn table_with_header<'a>(rendered: &'a Rendered, header: &[&str]) -> Vec<&'a Table> {
    rendered
        .tables
        .iter()
        .filter(|t| {
            t.header
                .iter()
                .map(String::as_str)
                .eq(header.iter().copied())
        })
        .collect()
}

/// An `xychart-beta` block as `stacked_chart` writes it: optional init directive
/// (valid JSON), the chart type, a quoted title, N quoted x labels, a 0-based y axis,
/// and bars of N numbers within the axis, each no taller than the one before.
fn check_mermaid(block: &str) -> (usize, usize) {
    let mut lines = block.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut line = lines.next().expect("empty mermaid block");
    if let Some(directive) = line.strip_prefix("%%{init:") {
        let json = directive.strip_suffix("}%%").expect("directive closes");
        let value: serde_json::Value = serde_json::from_str(json).expect("init is JSON");
        let palette = value["themeVariables"]["xyChart"]["plotColorPalette"]
            .as_str()
            .expect("palette");
        assert!(palette
            .split(", ")
            .all(|c| c.starts_with('#') && c.len() == 7));
        line = lines.next().expect("chart after init");
    }
    assert_eq!(line, "xychart-beta", "{block}");
    let quoted = |text: &str| -> Vec<String> {
        assert_eq!(
            text.matches('"').count() % 2,
            0,
            "unbalanced quotes: {text}"
        );
        text.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let title = lines.next().expect("title");
    assert!(title.starts_with("title \""), "{title}");
    assert_eq!(quoted(title).len(), 1);
    let x_axis = lines.next().expect("x-axis");
    let inner = x_axis
        .strip_prefix("x-axis [")
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("x-axis line: {x_axis}"));
    let labels = quoted(inner);
    assert!(!labels.is_empty());
    for label in &labels {
        assert!(
            !label.is_empty() && !label.contains(['[', ']', '"', '{', '}', '|', '<', '>']),
            "label {label:?}"
        );
    }
    let y_axis = lines.next().expect("y-axis");
    let (unit, range) = y_axis
        .strip_prefix("y-axis \"")
        .and_then(|s| s.split_once("\" "))
        .unwrap_or_else(|| panic!("y-axis line: {y_axis}"));
    assert!(!unit.is_empty());
    let (low, high) = range.split_once(" --> ").expect("range");
    assert_eq!(low, "0");
    let high: f64 = high.parse().expect("axis max");
    let mut previous: Option<Vec<f64>> = None;
    let mut bars = 0;
    for bar in lines {
        let inner = bar
            .strip_prefix("bar [")
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or_else(|| panic!("unexpected line {bar:?} in\n{block}"));
        let values: Vec<f64> = inner
            .split(", ")
            .map(|v| v.parse().unwrap_or_else(|_| panic!("number {v:?}")))
            .collect();
        assert_eq!(values.len(), labels.len(), "{bar}");
        for v in &values {
            assert!(*v >= 0.0 && *v <= high, "{v} outside 0..{high}");
        }
        if let Some(previous) = &previous {
            assert!(
                values.iter().zip(previous).all(|(v, p)| v <= p),
                "stacked bars must shrink: {bar}"
            );
        }
        previous = Some(values);
        bars += 1;
    }
    assert!(bars > 0);
    (labels.len(), bars)
}

#[test]
fn go_and_rust_report_renders_as_tables_and_charts() {
    let GoAndRust {
        dir,
        bundles,
        cost,
        comparison,
        markdown,
        ..
    } = go_and_rust();

    // The comparison's numbers are the inputs' numbers.
    assert_eq!(comparison.schema_version, 1);
    assert_eq!(comparison.images.len(), 2);
    for ((side, bundle), costed) in comparison.images.iter().zip(bundles).zip(&cost.images) {
        let analysis = &bundle.analysis;
        assert_eq!(side.compressed_bytes, analysis.compressed_bytes());
        assert_eq!(side.uncompressed_bytes, analysis.uncompressed_bytes());
        assert_eq!(side.layers, 4);
        // Base, apt and `rm /tmp/build.log` layers are byte-identical in both images.
        assert_eq!(side.shared_layers, 3);
        let advice = bundle.advice.as_ref().expect("advice");
        let advised = side.advice.as_ref().expect("advice side");
        assert_eq!(
            advised.projected_compressed_bytes,
            advice.projected.compressed_bytes
        );
        assert_eq!(advised.top.len(), advice.suggestions.len().min(3));
        for (top, suggestion) in advised.top.iter().zip(&advice.suggestions) {
            assert_eq!(top.id, suggestion.id);
            assert_eq!(
                top.saved_compressed_bytes,
                suggestion.saved_compressed_bytes
            );
        }
        let money = side.cost.as_ref().expect("cost side");
        assert_eq!(money.total_usd_month, costed.total_usd_month);
        assert_eq!(money.cold_start_s, costed.cold_start.total_s);
        let binary = side.main_binary.as_ref().expect("main binary");
        assert_eq!(binary.path, "/usr/local/bin/hello");
        assert_eq!(binary.found_by, FoundBy::Entrypoint);
        assert_eq!(
            binary.anatomy.iter().map(|g| g.bytes).sum::<u64>(),
            binary.size,
            "anatomy groups add up to the file"
        );
    }
    let go = comparison.images[0].main_binary.as_ref().expect("go");
    let rust = comparison.images[1].main_binary.as_ref().expect("rust");
    assert_eq!(go.language, "go");
    assert!(go
        .toolchain
        .as_deref()
        .is_some_and(|t| t.starts_with("go1.")));
    assert_eq!(rust.language, "rust");
    assert!(rust
        .toolchain
        .as_deref()
        .is_some_and(|t| t.starts_with("rustc ")));
    assert!(rust.has_debug_info, "the DebugInfo build keeps DWARF");
    let shared: u64 = comparison
        .shared_layers
        .iter()
        .map(|l| l.compressed_bytes)
        .sum();
    assert_eq!(comparison.set.shared_layers, 3);
    assert_eq!(
        comparison.set.unique_compressed_bytes,
        comparison.set.total_compressed_bytes - shared
    );
    assert_eq!(
        comparison.set.unique_compressed_bytes,
        cost.set.unique_compressed_bytes
    );
    let verdict = &comparison.verdict;
    let (small, large) = (
        &comparison.images[verdict.smallest],
        &comparison.images[verdict.largest],
    );
    assert!(small.compressed_bytes <= large.compressed_bytes);
    assert_eq!(
        verdict.difference_compressed_bytes,
        large.compressed_bytes - small.compressed_bytes
    );
    assert!(!verdict.anatomy.is_empty(), "{verdict:#?}");
    assert!(verdict
        .summary
        .iter()
        .any(|l| l.starts_with("After the exact and measured suggestions")));

    // JSON carries the schema version and the stable names.
    let json: serde_json::Value =
        serde_json::from_str(&comparison.to_json()).expect("comparison JSON");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["images"][1]["main_binary"]["language"], "rust");
    assert!(json["verdict"]["summary"].is_array());
    assert!(comparison.to_table().contains("Verdict"));

    // Rendered as GitHub would: every raw table is an HTML table with its rows.
    let rendered = render_gfm(markdown);
    let raw = raw_tables(markdown);
    assert_eq!(rendered.html.matches("<table>").count(), raw.len());
    assert_eq!(rendered.tables.len(), raw.len());
    for (lines, table) in raw.iter().zip(&rendered.tables) {
        let width = raw_cells(lines[0]);
        for line in lines {
            assert_eq!(raw_cells(line), width, "a cell breaks this row: {line}");
        }
        assert_eq!(table.header.len(), width);
        assert_eq!(table.rows.len(), lines.len() - 2, "{lines:#?}");
    }

    // The tables a reader looks for, with their headers and row counts.
    let summary = table_with_header(&rendered, &["", "hello-go:1.0", "hello-rs:1.0"]);
    assert_eq!(
        summary.len(),
        4,
        "summary, categories, anatomy, cost per image"
    );
    let labels: Vec<&str> = summary[0].rows.iter().map(|r| r[0].as_str()).collect();
    for wanted in [
        "compressed (pull)",
        "uncompressed (disk)",
        "layers (shared)",
        "main binary",
        "language",
        "toolchain",
        "linkage",
        "strip --strip-all saves",
        "hidden bytes",
        "dive efficiency",
        "top suggestion 1",
        "after suggestions, compressed",
        "monthly cost",
        "cold start",
    ] {
        assert!(labels.contains(&wanted), "no {wanted:?} row in {labels:?}");
    }
    let language = &summary[0].rows[labels.iter().position(|l| *l == "language").expect("row")];
    assert_eq!(language[1..], ["go".to_string(), "rust".to_string()]);
    let layer_tables = table_with_header(
        &rendered,
        &[
            "#",
            "digest",
            "compressed",
            "uncompressed",
            "files",
            "shared",
            "created by",
        ],
    );
    assert_eq!(layer_tables.len(), 2);
    for table in &layer_tables {
        assert_eq!(table.rows.len(), 4);
        let shared: Vec<&str> = table.rows.iter().map(|r| r[5].as_str()).collect();
        assert_eq!(shared, ["shared", "shared", "", "shared"]);
    }
    let largest = table_with_header(&rendered, &["path", "size", "layer"]);
    assert_eq!(largest.len(), 2);
    assert!(largest.iter().all(|t| t.rows.len() == 10));
    let suggestions = table_with_header(
        &rendered,
        &[
            "#",
            "suggestion",
            "id",
            "saves (pull)",
            "saves (disk)",
            "confidence",
            "not with",
        ],
    );
    assert_eq!(suggestions.len(), 2);
    for (table, bundle) in suggestions.iter().zip(bundles) {
        let advice = bundle.advice.as_ref().expect("advice");
        assert_eq!(table.rows.len(), advice.suggestions.len());
    }
    let anatomy = table_with_header(&rendered, &["section group", "bytes", "share"]);
    assert_eq!(anatomy.len(), 2);
    assert_eq!(
        table_with_header(
            &rendered,
            &[
                "layer",
                "compressed",
                "uncompressed",
                "images",
                "created by"
            ]
        )
        .first()
        .map(|t| t.rows.len()),
        Some(3)
    );
    // The cost report's cold-start table: two variants per image.
    let cold = rendered
        .tables
        .iter()
        .find(|t| {
            t.header.first().map(String::as_str) == Some("image")
                && t.header.contains(&"unpack".to_string())
        })
        .expect("cold start table");
    assert_eq!(cold.rows.len(), 4);

    // The answer first: the verdict is the first section, its "why" chart the first
    // chart, before any of the detail.
    let sections: Vec<&str> = markdown
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();
    assert_eq!(
        sections,
        [
            "Verdict",
            "Charts",
            "What the code is made of",
            "Comparison",
            "Images",
            "Image `hello-go:1.0`",
            "Image `hello-rs:1.0`",
            "Cost"
        ],
        "{markdown}"
    );
    let verdict_text = markdown.split("## Charts").next().expect("verdict section");
    assert!(
        verdict_text.contains("**`hello-rs:1.0` is the smaller image**"),
        "{verdict_text}"
    );
    assert!(verdict_text.contains("Main reason: "), "{verdict_text}");
    assert!(
        verdict_text.contains("### Why: the main binaries, code vs debug info"),
        "the binaries explain the difference: {verdict_text}"
    );
    // The per-image detail and the cost proofs are folded, with the blank lines GitHub
    // needs to render the Markdown inside.
    assert_eq!(markdown.matches("<details>").count(), 3);
    assert_eq!(
        markdown.matches("</summary>\n\n").count(),
        markdown.matches("<details>").count()
    );
    assert_eq!(
        markdown.matches("\n\n</details>\n").count(),
        markdown.matches("<details>").count()
    );
    // Sizes keep number and unit on one line; the cost tables name images briefly.
    assert!(markdown.contains("\u{a0}MB |"));
    assert!(!markdown.contains(" MB |"), "a size with a breaking space");
    let per_image = rendered
        .tables
        .iter()
        .find(|t| t.rows.iter().any(|r| r[0] == "pulled/month"))
        .expect("per-image cost table");
    assert_eq!(per_image.header[1..], ["hello-go:1.0", "hello-rs:1.0"]);

    // Charts: the why chart, categories, anatomy, the code's packages and crates,
    // now-vs-after, cold start.
    assert_eq!(rendered.mermaid.len(), 6, "{:#?}", rendered.mermaid);
    // Each code bar is its binary's whole `.text`, as the attribution measured it.
    let code_chart = rendered
        .mermaid
        .iter()
        .find(|b| b.contains("Main binary code by package or crate"))
        .expect("code chart");
    let code_bytes: Vec<String> = comparison
        .images
        .iter()
        .map(|i| {
            let summary = i
                .main_binary
                .as_ref()
                .and_then(|b| b.attribution_summary.as_ref())
                .expect("attribution summary");
            let mb = format!("{:.3}", summary.code_bytes as f64 / 1e6);
            mb.trim_end_matches('0').trim_end_matches('.').to_string()
        })
        .collect();
    assert!(
        code_chart.contains(&format!("    bar [{}]\n", code_bytes.join(", "))),
        "{code_chart}"
    );
    for block in &rendered.mermaid {
        let (labels, _) = check_mermaid(block);
        assert_eq!(labels, 2);
        assert!(
            block.contains("\"hello-go:1.0\", \"hello-rs:1.0\""),
            "{block}"
        );
    }
    let cold_chart = rendered
        .mermaid
        .iter()
        .find(|b| b.contains("Cold start"))
        .expect("cold start chart");
    let total_bar = cold_chart
        .lines()
        .find(|l| l.trim().starts_with("bar"))
        .expect("bar");
    let go_total: f64 = total_bar
        .trim()
        .trim_start_matches("bar [")
        .split(", ")
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!((go_total - cost.images[0].cold_start.total_s).abs() < 0.002);

    for heading in [
        "Comparison",
        "Verdict",
        "Charts",
        "Image hello-go:1.0",
        "Image hello-rs:1.0",
        "Main binary /usr/local/bin/hello",
        "Suggestions",
        "Cost",
        "Assumptions",
    ] {
        assert!(
            rendered.headings.iter().any(|h| h == heading),
            "no heading {heading:?} in {:?}",
            rendered.headings
        );
    }

    // Where the images were read from appears only inside their references.
    let dir = dir.display().to_string();
    let mut scrubbed = markdown.clone();
    for side in &comparison.images {
        scrubbed = scrubbed.replace(&side.image.reference, "REF");
    }
    assert!(!scrubbed.contains(&dir), "a local path leaked");
    assert!(markdown.ends_with('\n') && !markdown.ends_with("\n\n"));
    // Deterministic: the same inputs give the same document.
    assert_eq!(*markdown, document::render(bundles, comparison, Some(cost)));
}

/// The report as a reader's browser draws it: the Markdown rendered to HTML, every
/// Mermaid block drawn by mermaid 11 in headless chromium. Fails on any block mermaid
/// cannot parse, on a chart without the palette's colours, and on a table wider than
/// GitHub's column; a block known to be broken proves the harness sees errors.
#[test]
fn report_draws_in_a_browser() {
    let Some(browser) = browser::browser() else {
        return;
    };
    let GoAndRust { markdown, .. } = go_and_rust();
    let rendered = render_gfm(markdown);
    let broken =
        "<pre><code class=\"language-mermaid\">xychart-beta\n    bar [1, oops\n</code></pre>";
    let page = browser.render(&format!("{}{broken}", rendered.html));
    assert_eq!(
        page.diagrams.len(),
        rendered.mermaid.len() + 1,
        "one diagram per Mermaid block: {}",
        page.dom
    );
    let (known_broken, diagrams) = page.diagrams.split_last().expect("diagrams");
    assert!(
        !known_broken.error.is_empty() && known_broken.svg.is_empty(),
        "the harness must see a syntax error: {known_broken:?}"
    );
    for (diagram, block) in diagrams.iter().zip(&rendered.mermaid) {
        assert!(
            diagram.error.is_empty(),
            "mermaid 11 cannot draw this block: {}\n{block}",
            diagram.error
        );
        assert!(diagram.svg.starts_with("<svg"), "no <svg> for\n{block}");
        let svg = diagram.svg.to_ascii_lowercase();
        // Mermaid's error drawing says so in its text (its stylesheet names error
        // classes in every diagram, so that part is left out).
        let drawn = svg.split("</style>").last().unwrap_or(&svg);
        for failure in ["syntax error", "parse error"] {
            assert!(
                !drawn.contains(failure),
                "{failure} in the drawing of\n{block}"
            );
        }
        // Every palette colour is a bar's fill: the legend's squares match what is drawn.
        let palette = block
            .split("\"plotColorPalette\": \"")
            .nth(1)
            .and_then(|p| p.split('"').next())
            .expect("palette");
        for colour in palette.split(", ") {
            assert!(
                svg.contains(&format!("fill=\"{}\"", colour.to_ascii_lowercase())),
                "no bar drawn in {colour}:\n{block}"
            );
        }
        // The mask bars start at the zero tick, so every visible bar does too.
        let background = ballast::report::chart::BACKGROUND;
        let zero = diagram.zero_tick().expect("a 0 tick on the y axis");
        let masks = diagram.bar_tops(background);
        assert_eq!(masks.len(), 2, "one mask bar per image:\n{block}");
        for top in masks {
            assert!(
                (top - zero).abs() < 0.5,
                "mask at {top}, zero tick at {zero}"
            );
        }
    }
    assert_eq!(page.table_widths.len(), rendered.tables.len());
    for (width, table) in page.table_widths.iter().zip(&rendered.tables) {
        // Tables of figures fit GitHub's column; those with paths and commands may
        // scroll, as a long path cannot wrap.
        let figures_only = !table
            .header
            .iter()
            .any(|h| ["path", "created by", "suggestion", "digest", "layer"].contains(&h.as_str()));
        if figures_only {
            assert!(
                *width <= f64::from(browser::PAGE_WIDTH),
                "a table is {width} px wide, more than GitHub's {} px: {:?}",
                browser::PAGE_WIDTH,
                table.header
            );
        }
    }
}

/// One image, no advice and no cost: the report says so instead of inventing figures.
#[test]
fn single_image_without_advice_or_cost() {
    let samples = samples();
    let binary = samples.go(GoBuild::StripFlags).expect("go sample");
    let data = std::fs::read(&binary).expect("read binary");
    // The program is reached through a symlink and named without a path; a larger ELF
    // in a system directory must not be mistaken for it.
    let mut decoy = data.clone();
    decoy.extend(std::iter::repeat_n(0u8, 4096));
    let mut spec = ImageSpec::new(vec![LayerSpec::new(
        "COPY app /opt/app",
        vec![
            Item::executable("opt/app/server", data.clone()),
            Item::Symlink {
                path: "usr/local/bin/app".into(),
                target: "../../../opt/app/server".into(),
            },
            Item::executable("usr/bin/decoy", decoy),
            Item::file("etc/a|b.conf", "x = 1\n"),
        ],
    )]);
    spec.entrypoint = vec!["/bin/sh".into(), "-c".into(), "exec app --port 80".into()];
    let image = spec.build().expect("image");
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = write_layout(dir.path(), "one", &image);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bundle = analyse(&runtime, &reference, false);
    let bundles = vec![bundle];
    let comparison = compare::compare(&bundles, None);
    let side = &comparison.images[0];
    let binary = side.main_binary.as_ref().expect("main binary");
    assert_eq!(binary.path, "/opt/app/server");
    assert_eq!(binary.named_as.as_deref(), Some("app"));
    assert_eq!(binary.found_by, FoundBy::Entrypoint);
    assert_eq!(binary.size, data.len() as u64);
    assert!(side.advice.is_none() && side.cost.is_none());
    assert_eq!(comparison.set.shared_layers, 0);
    assert!(comparison
        .verdict
        .summary
        .iter()
        .any(|l| l.contains("no advice was computed")));

    let markdown = document::render(&bundles, &comparison, None);
    assert!(markdown.contains("Not computed for this image."));
    assert!(!markdown.contains("## Cost"));
    let rendered = render_gfm(&markdown);
    let raw = raw_tables(&markdown);
    assert_eq!(rendered.tables.len(), raw.len());
    for lines in &raw {
        let width = raw_cells(lines[0]);
        assert!(lines.iter().all(|l| raw_cells(l) == width), "{lines:#?}");
    }
    // The pipe in a file name stays inside its cell.
    let largest = table_with_header(&rendered, &["path", "size", "layer"]);
    assert!(largest[0].rows.iter().any(|r| r[0] == "/etc/a|b.conf"));
    // Categories, anatomy and the code's packages; no projection without advice, no
    // cold start without cost.
    assert_eq!(rendered.mermaid.len(), 3);
    assert!(markdown.contains("## What the code is made of"));
    for block in &rendered.mermaid {
        assert_eq!(check_mermaid(block).0, 1);
    }
}

/// Without an entrypoint the largest executable outside system directories is the
/// main binary.
#[test]
fn main_binary_falls_back_to_the_largest_program() {
    let samples = samples();
    let go = std::fs::read(samples.go(GoBuild::StripFlags).expect("go")).expect("read");
    let rust = std::fs::read(samples.rust(RustBuild::Stripped).expect("rust")).expect("read");
    let (big, small) = if go.len() >= rust.len() {
        (go, rust)
    } else {
        (rust, go)
    };
    let spec = ImageSpec::new(vec![LayerSpec::new(
        "COPY . /",
        vec![
            Item::executable("usr/bin/tool", big),
            Item::executable("srv/service", small.clone()),
        ],
    )]);
    let image = spec.build().expect("image");
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = write_layout(dir.path(), "fallback", &image);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bundle = analyse(&runtime, &reference, false);
    let binary = compare::main_binary(&bundle.analysis).expect("main binary");
    assert_eq!(binary.path, "/srv/service");
    assert_eq!(binary.found_by, FoundBy::LargestExecutable);
    assert_eq!(binary.size, small.len() as u64);
}
