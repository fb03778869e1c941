//! A layer-count bar on stderr, only when stderr is a terminal (and plain when
//! `NO_COLOR` is set).

use std::io::IsTerminal;
use std::sync::Arc;

use crate::image::Progress;
use crate::layer::LayerScan;
use crate::source::ResolvedImage;

/// A layer-count bar on stderr, only when stderr is a terminal.
pub(crate) struct BarProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl BarProgress {
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for BarProgress {
    fn resolved(&self, image: &ResolvedImage) {
        if let Some(bar) = &self.bar {
            let distinct: std::collections::HashSet<_> =
                image.layers.iter().map(|l| &l.digest).collect();
            bar.set_length(distinct.len() as u64);
            bar.set_message(image.reference.clone());
        }
    }

    fn layer_done(&self, _scan: &LayerScan) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
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
            "{spinner} layers {pos}/{len} {msg}"
        } else {
            "{spinner:.cyan} layers {pos}/{len} {msg}"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    Arc::new(BarProgress { bar })
}
