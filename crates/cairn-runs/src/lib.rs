//! The cairn resume policy: a fresh run never silently resumes a failed one.
