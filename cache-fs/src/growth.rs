//! Map growth: the sizes the LMDB memory map takes, and the only code that resizes it.
//!
//! An environment maps its file at a fixed size. A write that runs out of room fails
//! with `MDB_MAP_FULL`; the store then grows the map ([`grow`]: it at least doubles up
//! to 1 GiB, then grows 1 GiB at a time) and runs the transaction again from scratch. A
//! process that finds the file grown by another one gets `MDB_MAP_RESIZED` and adopts
//! the size recorded in the file ([`adopt`]) before retrying. A new cache starts at the
//! configured initial size ([`reserve`]), an existing one keeps its larger size.
//!
//! LMDB requires that no transaction of the process is active on an environment while
//! its map is resized. Every transaction is created under a read guard of the store's
//! handle, and the store calls these functions only while holding its write guard (or,
//! while opening, as the only user of a brand-new environment); see
//! [`crate::store::Store`].

use heed::{Env, WithoutTls};

/// Map sizes are kept multiples of this (a multiple of every common page size).
const MAP_ALIGN: usize = 1 << 20;
/// Growth step bounds: the map at least doubles up to 1 GiB, then grows 1 GiB at a time.
const MIN_GROWTH: usize = 32 << 20;
const MAX_GROWTH: usize = 1 << 30;

/// The initial map size to use for a configured one: at least one alignment step,
/// rounded up to a multiple of it.
pub(crate) fn initial_map_size(configured: usize) -> usize {
    round_up(configured.max(MAP_ALIGN), MAP_ALIGN)
}

/// Grows the map of a new environment to `size` if it is smaller.
///
/// The caller holds the store's handle write guard or is the only user of `env`.
pub(crate) fn reserve(env: &Env<WithoutTls>, size: usize) -> heed::Result<()> {
    if env.info().map_size < size {
        resize(env, size)?;
    }
    Ok(())
}

/// Grows the map after `MDB_MAP_FULL` at size `seen`, unless another thread already did.
///
/// The caller holds the store's handle write guard.
pub(crate) fn grow(env: &Env<WithoutTls>, seen: usize) -> heed::Result<()> {
    let size = env.info().map_size;
    if size > seen {
        return Ok(());
    }
    let step = size.clamp(MIN_GROWTH, MAX_GROWTH);
    let new = round_up(size.saturating_add(step), MAP_ALIGN);
    tracing::debug!("growing the scan cache map from {size} to {new} bytes");
    resize(env, new)
}

/// Adopts the map size another process grew the file to (`MDB_MAP_RESIZED`).
///
/// The caller holds the store's handle write guard or is the only user of `env`.
pub(crate) fn adopt(env: &Env<WithoutTls>) -> heed::Result<()> {
    resize(env, 0)
}

/// Sets the map size of an open environment; 0 adopts the size recorded in the file.
fn resize(env: &Env<WithoutTls>, size: usize) -> heed::Result<()> {
    // SAFETY: LMDB requires that no transaction of this process is active on `env`
    // while its map is resized. Every transaction in this crate is created under a read
    // guard of `Store::handle`, and every caller of this module's functions holds the
    // write guard (or, while opening, is the only user of a brand-new `env`).
    #[allow(unsafe_code)]
    unsafe {
        env.resize(size)
    }
}

fn round_up(n: usize, align: usize) -> usize {
    n.div_ceil(align).saturating_mul(align)
}
