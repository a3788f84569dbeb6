//! The UTF-8 text of a Python `str`, borrowed from the object.
//!
//! Under the limited API below 3.10, PyO3 reads a `str` by encoding it into
//! a new `bytes` object (`PyUnicode_AsUTF8String`), an allocation and a
//! copy for every id, timestamp, key and value that crosses the boundary.
//! `PyUnicode_AsUTF8AndSize` hands out the string's own UTF-8 (kept with
//! the object; for ASCII text it is the object's data itself). It is in the
//! stable ABI from 3.10 and exported with the same signature by every
//! CPython 3 on Unix, where an extension's symbols resolve against the
//! running interpreter; on other platforms (Windows links abi3 modules
//! against `python3.dll`, which has it only from 3.10) PyO3's copy is used.

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::PyString;

#[cfg(unix)]
mod ffi {
    use pyo3::ffi::{PyObject, Py_ssize_t};
    use std::os::raw::c_char;

    extern "C" {
        pub fn PyUnicode_AsUTF8AndSize(
            unicode: *mut PyObject,
            size: *mut Py_ssize_t,
        ) -> *const c_char;
    }
}

/// The text of `s`, or the interpreter's error for a string that is not
/// valid Unicode (a lone surrogate).
#[cfg(unix)]
#[inline]
pub fn text<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, str>> {
    let mut len: pyo3::ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live `str` and the GIL is held; the buffer belongs to
    // the object, which `s` keeps alive (and a `str` never changes) for 'a.
    unsafe {
        let data = ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len);
        if data.is_null() {
            return Err(PyErr::fetch(s.py()));
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
        Ok(Cow::Borrowed(std::str::from_utf8_unchecked(bytes)))
    }
}

#[cfg(not(unix))]
#[inline]
pub fn text<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, str>> {
    s.to_cow()
}
