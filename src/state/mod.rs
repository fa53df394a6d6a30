//! Run folders, the append-only journal, and the per-plan lock.
