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
    slots: Mutex<Vec<Slot<V>>>,
}

impl<V: Clone> Default for IdentityCache<V> {
    fn default() -> Self {
        IdentityCache {
            slots: Mutex::new((0..SLOTS).map(|_| None).collect()),
        }
    }
}

#[inline]
fn slot(ptr: *mut pyo3::ffi::PyObject) -> usize {
    (((ptr as usize) >> 4).wrapping_mul(0x9E37_79B9) >> 8) & (SLOTS - 1)
}

impl<V: Clone> IdentityCache<V> {
    #[inline]
    pub fn get(&self, key: &Bound<'_, PyString>) -> Option<V> {
        let slots = self.slots.lock();
        match &slots[slot(key.as_ptr())] {
            Some((k, v)) if k.as_ptr() == key.as_ptr() => Some(v.clone()),
            _ => None,
        }
    }

    pub fn put(&self, key: &Bound<'_, PyString>, value: V) {
        let old = {
            let mut slots = self.slots.lock();
            slots[slot(key.as_ptr())].replace((key.clone().unbind(), value))
        };
        drop(old); // outside the lock: dropping a reference may run Python code
    }

    pub fn clear(&self) {
        let old: Vec<_> = self.slots.lock().iter_mut().map(Option::take).collect();
        drop(old);
    }
}
