//! Locking the kernel's shared state: a lock a panicking holder poisoned is taken anyway (the
//! state it guards is kept consistent under the lock, and a kernel that stopped taking it would
//! stop answering).

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, poisoned or not.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
