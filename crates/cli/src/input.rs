//! Reading what commands take as input: files and stdin.

use std::{
    io::{IsTerminal as _, Read as _},
    path::Path,
};

use crate::failure::Failure;

/// The bytes of `path`, or of stdin when `path` is `-`.
pub fn read_file_or_stdin(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        read_stdin()
    } else {
        std::fs::read(path)
            .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", path.display())))
    }
}

/// All of stdin, byte for byte (a signature covers the exact bytes, trailing newline included).
pub fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut stdin = std::io::stdin().lock();
    if stdin.is_terminal() {
        eprintln!("(reading the body from stdin; end it with Ctrl-D)");
    }
    let mut body = Vec::new();
    stdin
        .read_to_end(&mut body)
        .map_err(|e| Failure::bad_input(format!("cannot read stdin: {e}")))?;
    Ok(body)
}
