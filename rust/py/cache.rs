//! A small direct-mapped cache keyed by the identity of a Python string.
//! It holds a strong reference to each key, so an address is never reused
//! while cached and strings (immutable) cannot change under it. Agents
//! pass the same session-id, event-type and key objects again and again;
//! this turns their conversion into a pointer compare.

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyString;

const SLOTS: usize = 256;

type Slot<V> = Option<(Py<PyString>, V)>;

pub struct IdentityCache<V: Clone> {
    slots: Mutex<Slots<V>>,
}

struct Slots<V> {
    held: Vec<Slot<V>>,
    /// Per slot, the address of the last key missed there (no reference
    /// held: it is only compared), for `get_or_admit`.
    missed: Vec<usize>,
}

impl<V: Clone> Default for IdentityCache<V> {
    fn default() -> Self {
        IdentityCache {
            slots: Mutex::new(Slots {
                held: (0..SLOTS).map(|_| None).collect(),
                missed: vec![0; SLOTS],
            }),
        }
    }
}

/// What `get_or_admit` found.
pub enum Lookup<V> {
    Hit(V),
    /// Not cached; `admit` says the same object was just missed in its slot
    /// too (it recurs, so it is worth a `put`).
    Miss {
        admit: bool,
    },
}

#[inline]
fn slot(ptr: *mut pyo3::ffi::PyObject) -> usize {
    (((ptr as usize) >> 4).wrapping_mul(0x9E37_79B9) >> 8) & (SLOTS - 1)
}

impl<V: Clone> IdentityCache<V> {
    #[inline]
    pub fn get(&self, key: &Bound<'_, PyString>) -> Option<V> {
        let slots = self.slots.lock();
        match &slots.held[slot(key.as_ptr())] {
            Some((k, v)) if k.as_ptr() == key.as_ptr() => Some(v.clone()),
            _ => None,
        }
    }

    /// Like `get`, for keys of which many are seen once (ids, timestamps)
    /// and some again and again: a key is worth caching only when it is
    /// missed twice running in its slot, so one-off keys never evict.
    #[inline]
    pub fn get_or_admit(&self, key: &Bound<'_, PyString>) -> Lookup<V> {
        let mut slots = self.slots.lock();
        let at = slot(key.as_ptr());
        match &slots.held[at] {
            Some((k, v)) if k.as_ptr() == key.as_ptr() => Lookup::Hit(v.clone()),
            _ => {
                let addr = key.as_ptr() as usize;
                let admit = std::mem::replace(&mut slots.missed[at], addr) == addr;
                Lookup::Miss { admit }
            }
        }
    }

    pub fn put(&self, key: &Bound<'_, PyString>, value: V) {
        let old = {
            let mut slots = self.slots.lock();
            slots.held[slot(key.as_ptr())].replace((key.clone().unbind(), value))
        };
        drop(old); // outside the lock: dropping a reference may run Python code
    }

    pub fn clear(&self) {
        let old: Vec<_> = self
            .slots
            .lock()
            .held
            .iter_mut()
            .map(Option::take)
            .collect();
        drop(old);
    }
}
