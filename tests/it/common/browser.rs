//! A real browser for the report: headless chromium (Debian's `chromium`) loads an
//! HTML page holding the rendered Markdown, mermaid 11 from npm (the major version
//! GitHub draws Mermaid blocks with) renders every Mermaid block in it, and the DOM is
//! dumped for the test to read: each diagram's SVG or mermaid's error text, and the
//! width every table takes in a column as wide as GitHub's.
//! `scripts/test.sh` installs both; `BALLAST_SKIP_BROWSER=1` skips the browser tests
//! on a machine that cannot have them, so that a missing browser is never a silent pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::MANIFEST_DIR;

const CHROMIUM: &str = "/usr/bin/chromium";

/// GitHub's Markdown column in a pull request or file view, in CSS pixels.
pub const PAGE_WIDTH: u32 = 880;

pub struct Browser {
    chromium: PathBuf,
    mermaid_js: PathBuf,
}

/// One Mermaid block as the browser drew it.
#[derive(Debug)]
pub struct Diagram {
    /// The `<svg>` mermaid produced, empty when it failed.
    pub svg: String,
    /// Mermaid's error message, empty when it rendered.
    pub error: String,
}

#[derive(Debug)]
pub struct Page {
    pub diagrams: Vec<Diagram>,
    /// The width each `<table>` needs (its scroll width: more than [`PAGE_WIDTH`]
    /// when its cells cannot wrap to fit), in document order, in CSS pixels.
    pub table_widths: Vec<f64>,
    /// The whole DOM after rendering.
    pub dom: String,
}

/// The browser, or `None` when `BALLAST_SKIP_BROWSER=1`; a missing chromium or
/// mermaid fails the test, saying how to get them.
pub fn browser() -> Option<Browser> {
    if std::env::var_os("BALLAST_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("BALLAST_SKIP_BROWSER=1: the report is not rendered in a browser");
        return None;
    }
    let chromium = PathBuf::from(CHROMIUM);
    let mermaid_js =
        Path::new(MANIFEST_DIR).join("target/mermaid/node_modules/mermaid/dist/mermaid.min.js");
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!("{CHROMIUM} (Debian package chromium)"));
    }
    if !mermaid_js.is_file() {
        missing.push(format!(
            "{} (npm install --prefix target/mermaid mermaid@11)",
            mermaid_js.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the report rendering test needs {}: run scripts/test.sh, which installs them \
         (or set BALLAST_SKIP_BROWSER=1 to skip it on purpose)",
        missing.join(" and ")
    );
    Some(Browser {
        chromium,
        mermaid_js,
    })
}

/// The script the page runs: every `code.language-mermaid` block (as a CommonMark
/// renderer writes a fenced block) becomes a `<div class="diagram">` holding the SVG or
/// the error, then each table's width is recorded and `#done` marks the end.
const SCRIPT: &str = r#"
mermaid.initialize({ startOnLoad: false });
(async () => {
  const blocks = Array.from(document.querySelectorAll('code.language-mermaid'));
  for (let i = 0; i < blocks.length; i++) {
    const code = blocks[i];
    const out = document.createElement('div');
    out.className = 'diagram';
    try {
      const { svg } = await mermaid.render('diagram' + i, code.textContent);
      out.setAttribute('data-status', 'ok');
      out.innerHTML = svg;
    } catch (e) {
      out.setAttribute('data-status', 'error');
      out.textContent = String((e && e.message) || e);
    }
    code.parentElement.replaceWith(out);
  }
  const widths = Array.from(document.querySelectorAll('table'))
    .map(t => t.scrollWidth);
  const done = document.createElement('pre');
  done.id = 'done';
  done.textContent = 'widths:' + widths.join(',');
  document.body.appendChild(done);
})();
"#;

impl Browser {
    /// Loads `html` (a rendered Markdown body) in a page as wide as GitHub's column,
    /// renders its Mermaid blocks and reads the result.
    pub fn render(&self, html: &str) -> Page {
        let dir = tempfile::tempdir().expect("tempdir");
        // Under the target directory, so that a failure leaves a page to open.
        let kept = super::target_dir().join("report-render");
        std::fs::create_dir_all(&kept).expect("page directory");
        let page = kept.join("report.html");
        // GitHub's own table style: cells padded 6px 13px, a table as wide as its
        // content up to the column, its cells wrapped to fit and scrolled past that.
        let document = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\">\
             <style>body {{ width: {PAGE_WIDTH}px; margin: 0; font: 16px sans-serif; }} \
             table {{ border-collapse: collapse; display: block; width: max-content; max-width: 100%; overflow: auto; }} \
             td, th {{ padding: 6px 13px; border: 1px solid #ccc; }}</style>\
             <script src=\"{}\"></script></head><body>{html}<script>{SCRIPT}</script></body></html>",
            file_url(&self.mermaid_js)
        );
        std::fs::write(&page, document).expect("write page");
        let profile = dir.path().join("profile");
        let dom_path = dir.path().join("dom.html");
        let log_path = dir.path().join("chromium.log");
        let mut child = Command::new(&self.chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--allow-file-access-from-files",
                // Virtual time runs the page's timers and promises to completion
                // before the DOM is dumped, however slow the machine.
                "--virtual-time-budget=60000",
                &format!("--window-size={},2000", PAGE_WIDTH + 40),
                &format!("--user-data-dir={}", profile.display()),
                "--dump-dom",
            ])
            .arg(file_url(&page))
            // Files, not pipes: the DOM outgrows a pipe's buffer, and a child blocked
            // on a full pipe would never exit.
            .stdout(std::fs::File::create(&dom_path).expect("DOM file"))
            .stderr(std::fs::File::create(&log_path).expect("log file"))
            .spawn()
            .expect("start chromium");
        let started = Instant::now();
        loop {
            if child.try_wait().expect("wait for chromium").is_some() {
                break;
            }
            if started.elapsed() > Duration::from_secs(180) {
                let _ = child.kill();
                panic!("chromium did not finish rendering the report in 180 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let dom =
            String::from_utf8_lossy(&std::fs::read(&dom_path).expect("read DOM")).into_owned();
        let Some(done) = dom.split("<pre id=\"done\">").nth(1) else {
            panic!(
                "the page did not finish rendering (no #done); chromium said:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        };
        let widths = done
            .split("</pre>")
            .next()
            .and_then(|t| t.strip_prefix("widths:"))
            .unwrap_or("");
        let table_widths = widths
            .split(',')
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().expect("table width"))
            .collect();
        Page {
            diagrams: diagrams(&dom),
            table_widths,
            dom,
        }
    }
}

/// Every `<div class="diagram" data-status=…>` of the dumped DOM, in order.
fn diagrams(dom: &str) -> Vec<Diagram> {
    dom.split("<div class=\"diagram\" data-status=\"")
        .skip(1)
        .map(|chunk| {
            let (status, rest) = chunk.split_once("\">").unwrap_or(("", chunk));
            // A diagram ends where its div closes: after the svg, or after the text.
            if status == "ok" {
                let svg_end = rest.find("</svg>").map_or(0, |e| e + "</svg>".len());
                Diagram {
                    svg: rest[..svg_end].to_string(),
                    error: String::new(),
                }
            } else {
                Diagram {
                    svg: String::new(),
                    error: rest.split("</div>").next().unwrap_or("").to_string(),
                }
            }
        })
        .collect()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

impl Diagram {
    /// The top of every bar drawn in `fill` (a `<rect … fill="#…">` that is not the
    /// chart's background).
    pub fn bar_tops(&self, fill: &str) -> Vec<f64> {
        let wanted = format!("fill=\"{}\"", fill.to_ascii_lowercase());
        self.svg
            .split("<rect ")
            .skip(1)
            .filter_map(|rect| rect.split('>').next())
            .filter(|rect| {
                rect.to_ascii_lowercase().contains(&wanted) && !rect.contains("background")
            })
            .filter_map(|rect| attribute(rect, "y"))
            .collect()
    }

    /// Where the y axis draws its `0` tick label (the label's vertical centre).
    pub fn zero_tick(&self) -> Option<f64> {
        let axis = self.svg.split("<g class=\"left-axis\">").nth(1)?;
        axis.split("<text ")
            .skip(1)
            .find(|text| {
                text.split("</text>")
                    .next()
                    .is_some_and(|t| t.ends_with(">0"))
            })
            .and_then(|text| {
                let translate = text.split("translate(").nth(1)?;
                let (_, y) = translate.split(')').next()?.split_once(',')?;
                y.trim().parse().ok()
            })
    }
}

fn attribute(tag: &str, name: &str) -> Option<f64> {
    tag.split(&format!(" {name}=\""))
        .nth(1)
        .and_then(|v| v.split('"').next())
        .and_then(|v| v.parse().ok())
}
