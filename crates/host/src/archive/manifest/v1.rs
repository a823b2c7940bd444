//! Version 1 manifests (`<stem>.manifest.json`, one pretty JSON object), written by mkplan
//! before the manifest became JSON Lines. Backups made then must stay restorable: such a
//! manifest is read whole, checked as before, and handed out as the same ordered stream of
//! members as a version 2 one.

use std::path::PathBuf;

use serde::Deserialize;

use super::{DirRecord, FileRecord, Header, LAYOUT, ManifestProblem, Member, Totals, walk_order};

/// The whole version 1 document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ManifestV1 {
    pub version: u32,
    pub created: String,
    pub mkplan_version: String,
    pub store: PathBuf,
    pub root: String,
    pub layout: String,
    pub archive: String,
    pub archive_sha256: String,
    pub archive_bytes: u64,
    pub compression: String,
    pub files: u64,
    pub bytes: u64,
    /// Every directory, the store itself first, each before what it contains.
    pub directories: Vec<DirRecord>,
    /// Every regular file, in archive order.
    pub regular_files: Vec<FileRecord>,
}

impl ManifestV1 {
    /// The header, the members in archive (walk) order and the totals. Version 1 listed
    /// directories and files apart; the archive interleaves them in walk order, so they are
    /// merged back into it. Duplicates end up next to each other, where the ordered reader refuses them.
    pub(super) fn split(self) -> Result<(Header, Vec<Member>, Totals), ManifestProblem> {
        if self.layout != LAYOUT {
            return Err(ManifestProblem::Layout(self.layout));
        }
        let totals = Totals {
            directories: self.directories.len() as u64,
            files: self.files,
            bytes: self.bytes,
            archive_sha256: self.archive_sha256,
            archive_bytes: self.archive_bytes,
        };
        let header = Header {
            version: self.version,
            created: self.created,
            mkplan_version: self.mkplan_version,
            store: self.store,
            root: self.root,
            layout: self.layout,
            archive: self.archive,
            compression: self.compression,
        };
        if self.directories.first().map(|d| &d.path) != Some(&header.root) {
            return Err(ManifestProblem::RootFirst(header.root));
        }
        let mut members: Vec<Member> = self
            .directories
            .into_iter()
            .map(Member::Dir)
            .chain(self.regular_files.into_iter().map(Member::File))
            .collect();
        members.sort_by(|a, b| walk_order(a.path(), b.path()));
        Ok((header, members, totals))
    }
}
