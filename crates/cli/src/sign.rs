//! `sign`: the headers a sender would put on a body, and a curl line that sends it.

use agentsync_webhooks_core::{Clock as _, Signer, SystemClock, new_message_id};

use crate::{
    cli::SignArgs,
    failure::{Failure, bad_secret},
    input::{check_message_id, read_stdin},
};

/// Signs stdin and prints `name: value` header lines, a blank line, then a ready `curl` command.
///
/// The header block alone (everything before the blank line) is what `verify --headers` reads.
pub fn run(args: SignArgs) -> Result<(), Failure> {
    let signer = Signer::new(&args.secret).map_err(bad_secret)?;
    let id = args.id.unwrap_or_else(new_message_id);
    check_message_id(&id)?;
    let timestamp = args
        .timestamp
        .unwrap_or_else(|| SystemClock.now_unix_secs());
    let body = read_stdin()?;
    let headers = signer.sign(&id, timestamp, &body);
    let pairs = headers.to_pairs();
    for (name, value) in &pairs {
        println!("{name}: {value}");
    }
    println!();
    println!("{}", curl_line(&args.url, &pairs, &body));
    Ok(())
}

/// A `curl` command that POSTs exactly `body` with the signed headers.
fn curl_line(url: &str, headers: &[(&str, String)], body: &[u8]) -> String {
    let mut line = format!(
        "curl -sS -i -X POST {} -H 'content-type: application/json'",
        shell_quote(url)
    );
    for (name, value) in headers {
        line.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => {
            line.push_str(&format!(" --data-binary {}", shell_quote(text)));
        }
        // Not representable on a command line: send the same bytes from a file.
        _ => line.push_str(" --data-binary @body.bin  # the exact bytes that were signed"),
    }
    line
}

/// `text` in single quotes, safe for POSIX shells.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn curl_line_carries_every_header_and_the_body() {
        let line = curl_line(
            "http://127.0.0.1:1/x",
            &[("webhook-id", "msg_1".to_owned())],
            br#"{"a":1}"#,
        );
        assert!(line.contains("-H 'webhook-id: msg_1'"), "{line}");
        assert!(line.ends_with(r#"--data-binary '{"a":1}'"#), "{line}");
    }
}
