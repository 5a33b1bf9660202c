//! Step 2 of staging: how each file of the new version will be made, and which blobs that
//! needs from the network (see the module above for the order of preference).

use super::{LocalFiles, Made, Stager, archive};
use crate::manifest::{Content, Manifest};

/// How one file of the target version will be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// From an installed file with the same content.
    Local,
    /// A zip archive rebuilt from its parts.
    Archive,
    /// The whole file, from a delta or its blob.
    Whole,
}

/// One blob's place in the release's pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slice<'m> {
    /// Where it starts in the pack.
    pub offset: u64,
    /// Its length (the blob's signed size).
    pub size: u64,
    /// The BLAKE3 of the blob (what the slice is checked against).
    pub blob_blake3: &'m str,
    /// The BLAKE3 of its content (what the cache names it by).
    pub content: &'m str,
}

/// The bytes it costs to get `content`: nothing if it is on disk, else its smallest usable
/// delta (one whose base is on disk), else its blob.
pub fn cost(content: &dyn Content, local: &LocalFiles) -> u64 {
    if local.has(content.expected().blake3) {
        return 0;
    }
    usable_deltas(content, local)
        .first()
        .map_or(content.blob_size(), |d| d.size)
}

/// Deltas smaller than the blob whose base is on disk, smallest first.
pub(super) fn usable_deltas<'c>(
    content: &'c dyn Content,
    local: &LocalFiles,
) -> Vec<&'c crate::manifest::DeltaEntry> {
    let mut deltas: Vec<_> = content
        .deltas()
        .iter()
        .filter(|d| {
            d.size < content.blob_size()
                && crate::manifest::is_blake3_hex(&d.blake3)
                && local.has(&d.base)
        })
        .collect();
    deltas.sort_by_key(|d| d.size);
    deltas
}

impl Stager<'_> {
    /// Step 2: the route of each file, and the blobs (pack offset, size, BLAKE3) that route
    /// needs from the network.
    pub fn plan<'m>(
        &self,
        manifest: &'m Manifest,
        local: &LocalFiles,
    ) -> (Vec<Route>, Vec<Slice<'m>>) {
        self.plan_keeping(manifest, local, &[])
    }

    /// [`Stager::plan`] where the files `kept` marks made are already in place (routed
    /// [`Route::Local`], needing nothing).
    pub(super) fn plan_keeping<'m>(
        &self,
        manifest: &'m Manifest,
        local: &LocalFiles,
        kept: &[Made],
    ) -> (Vec<Route>, Vec<Slice<'m>>) {
        let mut routes = Vec::with_capacity(manifest.files.len());
        let mut blobs = Vec::new();
        let mut need_blob = |content: &'m dyn Content| {
            if !local.has(content.expected().blake3)
                && usable_deltas(content, local).is_empty()
                && let Some(offset) = content.pack_offset()
            {
                blobs.push(Slice {
                    offset: offset.saturating_add(self.pack_data_start),
                    size: content.blob_size(),
                    blob_blake3: content.blob_blake3(),
                    content: content.expected().blake3,
                });
            }
        };
        for (index, entry) in manifest.files.iter().enumerate() {
            if local.has_file(&entry.blake3) || kept.get(index).is_some_and(|k| k.is_done()) {
                routes.push(Route::Local);
                continue;
            }
            let whole = cost(entry, local);
            let rebuild = entry.archive.as_ref().map(|a| archive::cost(a, local));
            if let (Some(archive), Some(rebuild)) = (&entry.archive, rebuild)
                && rebuild < whole
            {
                routes.push(Route::Archive);
                archive::parts_to_make(archive, local).for_each(&mut need_blob);
            } else {
                routes.push(Route::Whole);
                need_blob(entry);
            }
        }
        (routes, blobs)
    }
}
