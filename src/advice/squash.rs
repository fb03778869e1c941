//! Flattening layers that keep rewriting the same paths.

use std::collections::BTreeSet;

use super::{Confidence, Suggestion, SuggestionKind};
use crate::image::ImageAnalysis;

/// Many layers rewriting the same paths: flattening them drops every hidden copy at
/// once. Its saving is the hidden-file suggestions' measured savings together, so it
/// is an alternative to them, not an addition.
pub(super) fn plan(analysis: &ImageAnalysis, suggestions: &[Suggestion]) -> Option<Suggestion> {
    let hiders: BTreeSet<usize> = analysis
        .fs
        .wasted_files
        .iter()
        .map(|f| f.hidden_by_layer)
        .collect();
    if hiders.len() < 2 || analysis.layers.len() < 4 {
        return None;
    }
    let hidden: Vec<&Suggestion> = suggestions
        .iter()
        .filter(|s| {
            matches!(
                s.id,
                SuggestionKind::DropDeletedFiles | SuggestionKind::DropOverwrittenFiles
            )
        })
        .collect();
    if hidden.is_empty() {
        return None;
    }
    let confidence = hidden
        .iter()
        .map(|s| s.saved_compressed_confidence)
        .max()
        .unwrap_or(Confidence::Measured);
    Some(Suggestion {
        id: SuggestionKind::SquashLayers,
        title: "Flatten the layers that keep rewriting the same paths".into(),
        paths: hidden.iter().flat_map(|s| s.paths.iter().cloned()).take(20).collect(),
        layers: hiders.iter().copied().collect(),
        saved_bytes: hidden.iter().map(|s| s.saved_bytes).sum(),
        saved_compressed_bytes: hidden.iter().map(|s| s.saved_compressed_bytes).sum(),
        confidence,
        saved_bytes_confidence: Confidence::Exact,
        saved_compressed_confidence: confidence,
        evidence: vec![format!(
            "{} of {} layers hide files that earlier layers added; the saving is that of {} together (an alternative to them, not on top)",
            hiders.len(),
            analysis.layers.len(),
            hidden.iter().map(|s| s.id.key()).collect::<Vec<_>>().join(" and ")
        )],
        fix: "FROM <current image> AS full\nFROM scratch\nCOPY --from=full / /\n# or keep the base layers and flatten only yours: build them in one RUN, or in a stage copied once".into(),
        side_effects: vec![
            "a fully flattened image shares no layers with its base: every node pulls all of it on each change".into(),
        ],
        overlaps_with: vec![],
        base_added: None,
        run_dependent: vec![],
        source: None,
    })
}
