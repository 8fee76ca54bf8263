//! Reading what commands take as input: files and stdin, and a webhook-id given as a flag.

use std::{
    io::{IsTerminal as _, Read as _},
    path::Path,
};

use agentsync_webhooks_core::headers::MAX_ID_LEN;

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

/// A `webhook-id` that receivers accept: 1 to `MAX_ID_LEN` visible ASCII characters.
pub fn parse_message_id(id: &str) -> Result<String, String> {
    let visible = id.bytes().all(|b| b.is_ascii_graphic());
    if id.is_empty() || id.len() > MAX_ID_LEN || !visible {
        return Err(format!(
            "a webhook-id is 1 to {MAX_ID_LEN} visible ASCII characters (no spaces), such as \
             msg_2Lh5UzG3ZR1n0dXdBDfpDXuHHm8"
        ));
    }
    Ok(id.to_owned())
}
