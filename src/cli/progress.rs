//! Progress on stderr, only when stderr is a terminal (and plain when `NO_COLOR` is
//! set): the phase (reading an image, measuring suggestions), its stored bytes read
//! out of the total, the rate, and what is being worked on.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::image::Progress;
use crate::layer::LayerScan;
use crate::source::ResolvedImage;

pub(crate) struct BarProgress {
    bar: Option<indicatif::ProgressBar>,
    layers_done: AtomicU64,
    layers: AtomicU64,
    /// The phase's last detail, so that a layer finishing can update the count
    /// beside it.
    detail: Mutex<String>,
}

impl BarProgress {
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn show_message(&self, bar: &indicatif::ProgressBar) {
        let detail = self.detail.lock().map(|d| d.clone()).unwrap_or_default();
        let layers = self.layers.load(Ordering::Relaxed);
        if layers > 0 {
            bar.set_message(format!(
                "{}/{} layers {detail}",
                self.layers_done.load(Ordering::Relaxed),
                layers
            ));
        } else {
            bar.set_message(detail);
        }
    }
}

impl Progress for BarProgress {
    fn resolved(&self, image: &ResolvedImage) {
        let distinct: std::collections::HashSet<_> =
            image.layers.iter().map(|l| &l.digest).collect();
        self.layers.store(distinct.len() as u64, Ordering::Relaxed);
        self.layers_done.store(0, Ordering::Relaxed);
    }

    fn layer_done(&self, _scan: &LayerScan) {
        self.layers_done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            self.show_message(bar);
        }
    }

    fn phase(&self, what: &str, total_bytes: u64) {
        if let Ok(mut detail) = self.detail.lock() {
            detail.clear();
        }
        if !what.starts_with("reading") {
            // Only the reading phase counts layers.
            self.layers.store(0, Ordering::Relaxed);
        }
        if let Some(bar) = &self.bar {
            bar.reset();
            bar.set_length(total_bytes);
            bar.set_prefix(what.to_string());
            self.show_message(bar);
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn detail(&self, what: &str) {
        if let Ok(mut detail) = self.detail.lock() {
            *detail = what.to_string();
        }
        if let Some(bar) = &self.bar {
            self.show_message(bar);
        }
    }
}

pub(crate) fn progress_reporter() -> Arc<BarProgress> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        let template = if std::env::var_os("NO_COLOR").is_some() {
            "{spinner} {prefix}: {decimal_bytes}/{decimal_total_bytes} ({decimal_bytes_per_sec}, {elapsed}) {wide_msg}"
        } else {
            "{spinner:.cyan} {prefix:.bold}: {decimal_bytes}/{decimal_total_bytes} ({decimal_bytes_per_sec}, {elapsed}) {wide_msg}"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    Arc::new(BarProgress {
        bar,
        layers_done: AtomicU64::new(0),
        layers: AtomicU64::new(0),
        detail: Mutex::new(String::new()),
    })
}
