//! Which layers a scan reads, and why (the scan flow is described in
//! `docs/scanning.md`).
//!
//! One rule decides every read: each cache key is analysed once, and every other
//! distinct stored blob with the same key (an OCI image may store one layer twice,
//! compressed differently) is still verified, so no content the scan accepts goes
//! unhashed; a stored blob already read is not read again to verify it.

use std::collections::{HashMap, HashSet};

use cache_core::{BlobId, BlobInfo};

use crate::{LayerWork, image::LayerRef, layer::LayerTask, report::LayerCounts};

/// One layer to read, with the key its result is stored under.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub(crate) key: BlobId,
    pub(crate) task: LayerTask,
}

/// Plans the reads of one image, remembering across phases which stored blobs were read.
pub(crate) struct Planner<'a> {
    /// The image's layers, bottom first.
    layers: &'a [LayerRef],
    /// Each layer's blob key.
    keys: &'a [BlobId],
    /// Stored blobs read so far, by key and name inside the archive.
    read: HashSet<(&'a BlobId, &'a str)>,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(layers: &'a [LayerRef], keys: &'a [BlobId]) -> Self {
        Planner {
            layers,
            keys,
            read: HashSet::new(),
        }
    }

    /// Each layer's blob key, bottom first.
    pub(crate) fn keys(&self) -> &'a [BlobId] {
        self.keys
    }

    /// The first reads: layers whose key `missing` lists are analysed, the others are
    /// verified when `verify_layers` is set. Also counts the layers.
    pub(crate) fn plan(
        &mut self,
        missing: &[BlobId],
        verify_layers: bool,
    ) -> (Vec<Planned>, LayerCounts) {
        let missing: HashSet<&BlobId> = missing.iter().collect();
        let mut counts = LayerCounts {
            total: self.layers.len(),
            ..LayerCounts::default()
        };
        let mut wanted = Vec::new();
        for (layer, key) in self.layers.iter().zip(self.keys) {
            let hit = !missing.contains(key);
            tracing::debug!(diff_id = %layer.diff_id, blob = %key, hit, "layer cache lookup");
            if !hit {
                counts.analysed += 1;
                wanted.push((layer, key, LayerWork::Analyse));
            } else {
                counts.cached += 1;
                if verify_layers {
                    wanted.push((layer, key, LayerWork::Verify));
                }
            }
        }
        let planned = self.choose(wanted);
        counts.verified = planned.iter().filter(|p| !missing.contains(&p.key)).count();
        (planned, counts)
    }

    /// The reads that replace results which vanished from the cache between
    /// `missing_blobs` and the read-back (expired, or evicted by a size bound): such a
    /// layer is analysed again rather than failing the scan. `present` says, one entry
    /// per layer, whether its result is in hand (read back or analysed); `analysed` is
    /// what this scan analysed. Moves the layers of vanished keys from cached to analysed
    /// in `counts`.
    pub(crate) fn recover(
        &mut self,
        present: &[bool],
        analysed: &HashMap<BlobId, BlobInfo>,
        counts: &mut LayerCounts,
    ) -> Vec<Planned> {
        let wanted: Vec<_> = self
            .layers
            .iter()
            .zip(self.keys)
            .zip(present)
            .filter(|((_, key), present)| !**present && !analysed.contains_key(*key))
            .map(|((layer, key), _)| (layer, key, LayerWork::Analyse))
            .collect();
        let planned = self.choose(wanted);
        let mut vanished = HashSet::new();
        for p in planned.iter().filter(|p| p.task.work == LayerWork::Analyse) {
            tracing::warn!(diff_id = %p.task.layer.diff_id, blob = %p.key, "cached layer result vanished during the scan; analysing the layer again");
            vanished.insert(&p.key);
        }
        let moved = self.keys.iter().filter(|k| vanished.contains(k)).count();
        counts.cached -= moved;
        counts.analysed += moved;
        planned
    }

    /// The rule, for `wanted` layers in image order, each with its key and the work it
    /// needs: the first layer of each key does that work; every other distinct stored
    /// blob of the key is verified, unless it was read already.
    fn choose(&mut self, wanted: Vec<(&'a LayerRef, &'a BlobId, LayerWork)>) -> Vec<Planned> {
        let mut keys: HashSet<&BlobId> = HashSet::new();
        let mut planned = Vec::new();
        for (layer, key, want) in wanted {
            let work = if keys.insert(key) {
                want
            } else {
                LayerWork::Verify
            };
            let unread = self.read.insert((key, layer.name.as_str()));
            if work == LayerWork::Verify && !unread {
                continue;
            }
            planned.push(Planned {
                key: key.clone(),
                task: LayerTask {
                    layer: layer.clone(),
                    work,
                },
            });
        }
        planned
    }
}

#[cfg(test)]
mod tests {
    use cache_core::Digest;

    use super::*;

    fn layer(name: &str, diff_id: &Digest) -> LayerRef {
        LayerRef {
            name: name.into(),
            media_type: None,
            blob_digest: None,
            size: None,
            diff_id: diff_id.clone(),
            created_by: String::new(),
        }
    }

    /// `(name, work)` of each planned read.
    fn reads(planned: &[Planned]) -> Vec<(&str, LayerWork)> {
        planned
            .iter()
            .map(|p| (p.task.layer.name.as_str(), p.task.work))
            .collect()
    }

    /// Layers `a`, `b` (a second blob of `a`'s diffID), `a` again (the same blob) and `c`.
    fn image() -> (Vec<LayerRef>, Vec<BlobId>) {
        let one = Digest::from_sha256([1; 32]);
        let two = Digest::from_sha256([2; 32]);
        let layers = vec![
            layer("a", &one),
            layer("b", &one),
            layer("a", &one),
            layer("c", &two),
        ];
        let keys = layers
            .iter()
            .map(|l| BlobId::from(l.diff_id.clone()))
            .collect();
        (layers, keys)
    }

    #[test]
    fn each_key_is_analysed_once_and_every_other_blob_verified() {
        use LayerWork::{Analyse, Verify};
        let (layers, keys) = image();
        let mut planner = Planner::new(&layers, &keys);
        let (planned, counts) = planner.plan(&keys, false);
        assert_eq!(
            reads(&planned),
            [("a", Analyse), ("b", Verify), ("c", Analyse)]
        );
        assert_eq!((counts.analysed, counts.cached, counts.verified), (4, 0, 0));

        // Cached: nothing read, or everything verified once.
        let mut planner = Planner::new(&layers, &keys);
        let (planned, counts) = planner.plan(&[], false);
        assert!(planned.is_empty());
        assert_eq!((counts.analysed, counts.cached), (0, 4));
        let mut planner = Planner::new(&layers, &keys);
        let (planned, counts) = planner.plan(&[], true);
        assert_eq!(
            reads(&planned),
            [("a", Verify), ("b", Verify), ("c", Verify)]
        );
        assert_eq!(counts.verified, 3);
    }

    #[test]
    fn vanished_results_are_analysed_again_under_the_same_rule() {
        use LayerWork::{Analyse, Verify};
        let (layers, keys) = image();
        let stored = vec![false; layers.len()];
        for (verify_layers, want) in [
            (false, vec![("a", Analyse), ("b", Verify), ("c", Analyse)]),
            // Every blob was verified already; each key is analysed again.
            (true, vec![("a", Analyse), ("c", Analyse)]),
        ] {
            let mut planner = Planner::new(&layers, &keys);
            let (_, mut counts) = planner.plan(&[], verify_layers);
            let planned = planner.recover(&stored, &HashMap::new(), &mut counts);
            assert_eq!(reads(&planned), want, "verify_layers {verify_layers}");
            assert_eq!((counts.analysed, counts.cached), (4, 0));
        }
    }
}
