//! age keys as files: the identity file `repo init` writes (age-keygen's format) and reading it
//! back. Secret material never appears in an error.

use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age::x25519::{Identity, Recipient};

use crate::{Error, Result};

/// A new identity as the text of an age-keygen style file, and its public recipient.
pub fn generate_identity(created: &str) -> (String, String) {
    let identity = Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    (text, recipient)
}

/// The identities in an identity file's text (`AGE-SECRET-KEY-1...` lines; `#` comments).
pub fn parse_identities(file: &str, text: &str) -> Result<Vec<Identity>> {
    let identities = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .enumerate()
        .map(|(index, line)| {
            Identity::from_str(line).map_err(|_| Error::BadKey {
                what: format!("{file} (key line {})", index + 1),
                kind: "identity",
                expected: "AGE-SECRET-KEY-1... lines as age-keygen writes them",
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if identities.is_empty() {
        return Err(Error::BadKey {
            what: file.to_string(),
            kind: "identity file",
            expected: "at least one AGE-SECRET-KEY-1... line",
        });
    }
    Ok(identities)
}

pub(crate) fn recipient(text: &str) -> Result<Recipient> {
    Recipient::from_str(text.trim()).map_err(|_| Error::BadKey {
        what: format!("recipient {:?}", text.trim()),
        kind: "recipient",
        expected: "age1... (age-keygen -y FILE prints it)",
    })
}

/// Checks a recipient (`age1...`) and returns it normalised.
pub fn parse_recipient(text: &str) -> Result<String> {
    recipient(text).map(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_read_back_and_bad_ones_are_named_without_secrets() {
        let (text, recipient) = generate_identity("2026-11-24T00:00:00Z");
        let identities = parse_identities("id.txt", &text).unwrap();
        assert_eq!(identities.len(), 1);
        assert_eq!(identities[0].to_public().to_string(), recipient);
        assert_eq!(parse_recipient(&format!(" {recipient}\n")).unwrap(), recipient);

        let secret_line = text.lines().last().unwrap();
        let damaged = text.replace(secret_line, &secret_line[..secret_line.len() - 3]);
        let Err(error) = parse_identities("id.txt", &damaged) else {
            panic!("a damaged key must not parse");
        };
        let error = error.to_string();
        assert!(error.contains("id.txt (key line 1)"), "{error}");
        assert!(
            !error.contains(&secret_line[..20]),
            "no secret in errors: {error}"
        );
        assert!(parse_identities("empty.txt", "# nothing\n").is_err());
        assert!(parse_recipient("age1nope").is_err());
    }
}
