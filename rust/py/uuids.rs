//! Version-4 UUID texts made in bulk: a flow's new atom details need one each, and Python's
//! `str(uuid.uuid4())` costs about 2.5 µs (a third of preparing a new 100,000-atom flow on SQLite).
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

/// The UUIDs made from `random` (16 random bytes each, e.g. `os.urandom(16 * n)`), as
/// `str(uuid.UUID(bytes=..., version=4))` gives them: lowercase, hyphenated, with the version and
/// variant bits set. With `ascending`, in ascending order (still random version-4 UUIDs, listed
/// sorted): rows inserted in that order add to the end of the store's uuid index, where random
/// keys would each land on a page of their own (a sixth of inserting a new flow's rows).
#[pyfunction]
#[pyo3(signature = (random, ascending=false))]
pub fn uuid4_texts<'py>(py: Python<'py>, random: &[u8], ascending: bool) -> PyResult<Bound<'py, PyList>> {
    if random.len() % 16 != 0 {
        return Err(PyValueError::new_err(format!(
            "uuid4_texts needs 16 random bytes per UUID, got {} bytes",
            random.len()
        )));
    }
    let mut made: Vec<[u8; 16]> = random.chunks_exact(16).map(uuid4_bytes).collect();
    if ascending {
        made.sort_unstable(); // (the text's order: hex digits keep the bytes' order)
    }
    PyList::new(py, made.iter().map(uuid_text))
}

/// A version-4 UUID from 16 random bytes.
fn uuid4_bytes(random: &[u8]) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(random);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    bytes
}

/// A UUID's hyphenated lowercase text.
fn uuid_text(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    text
}
