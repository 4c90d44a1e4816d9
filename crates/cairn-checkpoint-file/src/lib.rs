//! The embedded default checkpoint adapter: a checksummed journal plus snapshots on local files.
