//! Reading a JS string as UTF-8 without allocating: into a buffer kept by
//! the thread, in one copy out of V8 when it fits (napi-rs's `String`
//! argument measures the string, allocates, then copies it).

use std::cell::RefCell;

use napi::{Env, JsString, NapiRaw};

use super::errors::invalid;

/// The buffer kept between calls; bigger ones are let go after use.
const KEEP: usize = 16 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; 1024]);
}

/// Calls `f` with the UTF-8 text of `s`.
pub(super) fn with_str<T>(
    env: &Env,
    s: &JsString,
    f: impl FnOnce(&str) -> napi::Result<T>,
) -> napi::Result<T> {
    let mut buf = BUFFER.with(|b| b.take());
    let read = read(env, s, &mut buf);
    let out = match read {
        Ok(n) => match std::str::from_utf8(&buf[..n]) {
            Ok(text) => f(text),
            Err(_) => Err(invalid("INVALID_PAYLOAD", "", "the text is not UTF-8")),
        },
        Err(e) => Err(e),
    };
    if buf.len() > KEEP {
        buf = vec![0; 1024];
    }
    BUFFER.with(|b| b.replace(buf));
    out
}

/// Copies `s` into `buf` (grown when too small); the number of bytes.
fn read(env: &Env, s: &JsString, buf: &mut Vec<u8>) -> napi::Result<usize> {
    if buf.len() < 2 {
        buf.resize(1024, 0);
    }
    let mut n = copy(env, s, buf)?;
    // napi writes whole characters (at most 4 bytes each) and a NUL into
    // `len` bytes: unless more than 4 bytes were left over, the text may
    // have been cut; measure it and read it again.
    if n + 4 >= buf.len() {
        let mut len = 0usize;
        // SAFETY: a null buffer asks napi for the length only.
        let status = unsafe {
            napi::sys::napi_get_value_string_utf8(
                env.raw(),
                s.raw(),
                std::ptr::null_mut(),
                0,
                &mut len,
            )
        };
        check(status)?;
        buf.resize(len + 1, 0);
        n = copy(env, s, buf)?;
    }
    Ok(n)
}

fn copy(env: &Env, s: &JsString, buf: &mut [u8]) -> napi::Result<usize> {
    let mut n = 0usize;
    // SAFETY: `buf` is writable for `buf.len()` bytes, and napi writes at
    // most that many (the text, then a NUL), reporting the text's length.
    let status = unsafe {
        napi::sys::napi_get_value_string_utf8(
            env.raw(),
            s.raw(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut n,
        )
    };
    check(status)?;
    Ok(n)
}

fn check(status: napi::sys::napi_status) -> napi::Result<()> {
    if status == napi::sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            "a string was expected".to_owned(),
        ))
    }
}
