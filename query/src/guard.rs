//! A data file's decode in a query, guarded as storage's own reads are
//! ([`strata_storage::files::catch_corrupt`]): a decoder panic on a damaged page is an
//! error of that query, not an unwind through its threads.
//!
//! Only the decoding goes inside (building a reader, pulling its batches, reading a bloom
//! filter): a panic of our own code after it must not pass for a damaged file.

/// Runs `decode`; a panic in it is `corrupt` of storage's [`strata_storage::Error::Corrupt`]
/// (`corrupt data file: decoding failed (the decoder panicked: ...)`).
pub(crate) fn guarded<T, E>(
    decode: impl FnOnce() -> Result<T, E>,
    corrupt: impl FnOnce(strata_storage::Error) -> E,
) -> Result<T, E> {
    strata_storage::files::catch_corrupt(|| Ok(decode())).unwrap_or_else(|e| Err(corrupt(e)))
}

/// A decoder call on the data file errors call `name` (relative to the data directory,
/// [`crate::footer::data_file_name`]), guarded: its error, and a panic in it on a damaged
/// page, is a message naming the file, for the caller's error type.
pub(crate) fn decode_file<T, E: std::fmt::Display>(
    name: &str,
    call: impl FnOnce() -> Result<T, E>,
) -> Result<T, String> {
    guarded(
        || call().map_err(|e| file_error(name, e)),
        |e| file_error(name, e),
    )
}

/// An error reading the data file errors call `name`.
pub(crate) fn file_error(name: &str, e: impl std::fmt::Display) -> String {
    format!("data file {name}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_an_error_and_results_pass_through() {
        let r: Result<u32, String> = guarded(|| panic!("index 7 out of range"), |e| e.to_string());
        let e = r.expect_err("a panic is an error");
        assert!(e.contains("decoder panicked: index 7 out of range"), "{e}");
        assert_eq!(guarded(|| Ok::<_, String>(3), |e| e.to_string()), Ok(3));
        assert_eq!(
            guarded(|| Err::<u32, _>("bad".to_owned()), |e| e.to_string()),
            Err("bad".to_owned())
        );
    }
}
