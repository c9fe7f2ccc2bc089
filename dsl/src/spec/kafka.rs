//! Kafka's `security` table in specs: TLS and SASL settings for the
//! client, the password read from the environment or a file when the spec
//! is checked and never shown (`Debug`, `explain`, errors).

use std::path::Path;

use super::schema::{KafkaProtocol, KafkaSecuritySection, SaslMechanism};
use super::{SpecError, field_err};

/// librdkafka settings made from a `security` table. Its `Debug` shows the
/// setting names only.
#[derive(Clone, Default)]
pub(super) struct KafkaSettings(Vec<(&'static str, String)>);

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(key, _)| key))
            .finish()
    }
}

impl KafkaSettings {
    /// The settings, to pass to the client.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(key, value)| (*key, value.as_str()))
    }
}

/// The settings `section`'s `security` table (`at` is its name, such as
/// `source.security`) asks for, checked: each field that does not belong
/// to the protocol, a missing one, a password variable that is not set, a
/// file that cannot be read are errors naming the field (never the
/// password).
pub(super) fn security(
    at: &str,
    section: Option<&KafkaSecuritySection>,
) -> Result<KafkaSettings, SpecError> {
    let Some(sec) = section else {
        return Ok(KafkaSettings::default());
    };
    let field = |name: &str| format!("{at}.{name}");
    let (protocol, tls, sasl) = match sec.protocol {
        KafkaProtocol::Plaintext => ("plaintext", false, false),
        KafkaProtocol::Ssl => ("ssl", true, false),
        KafkaProtocol::SaslPlaintext => ("sasl_plaintext", false, true),
        KafkaProtocol::SaslSsl => ("sasl_ssl", true, true),
    };
    let mut settings = vec![("security.protocol", protocol.to_string())];
    if let Some(ca) = &sec.ca_file {
        if !tls {
            return Err(field_err(
                field("ca_file"),
                format!("no `ca_file` with protocol `{protocol}` (only with `ssl` or `sasl_ssl`)"),
            ));
        }
        if !ca.is_file() {
            return Err(field_err(
                field("ca_file"),
                format!(
                    "a readable PEM file of CA certificates; {} is not a file",
                    ca.display()
                ),
            ));
        }
        settings.push(("ssl.ca.location", ca.display().to_string()));
    }
    let sasl_fields = [
        ("mechanism", sec.mechanism.is_some()),
        ("username", sec.username.is_some()),
        ("password_env", sec.password_env.is_some()),
        ("password_file", sec.password_file.is_some()),
    ];
    if !sasl {
        if let Some((name, _)) = sasl_fields.iter().find(|(_, given)| *given) {
            return Err(field_err(
                field(name),
                format!(
                    "no `{name}` with protocol `{protocol}` (SASL settings go with `sasl_plaintext` or `sasl_ssl`)"
                ),
            ));
        }
        return Ok(KafkaSettings(settings));
    }
    let mechanism = match sec.mechanism {
        Some(SaslMechanism::Plain) => "PLAIN",
        Some(SaslMechanism::ScramSha256) => "SCRAM-SHA-256",
        Some(SaslMechanism::ScramSha512) => "SCRAM-SHA-512",
        None => {
            return Err(field_err(
                field("mechanism"),
                "the SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`",
            ));
        }
    };
    let username = sec
        .username
        .clone()
        .ok_or_else(|| field_err(field("username"), "the SASL user name"))?;
    let password = match (&sec.password_env, &sec.password_file) {
        (Some(var), None) => std::env::var(var).map_err(|_| {
            field_err(
                field("password_env"),
                format!("the name of a set environment variable holding the password; `{var}` is not set (or not UTF-8)"),
            )
        })?,
        (None, Some(path)) => password_from(path).map_err(|e| {
            field_err(
                field("password_file"),
                format!("a readable file holding the password; {}: {e}", path.display()),
            )
        })?,
        (Some(_), Some(_)) => {
            return Err(field_err(
                field("password_file"),
                "either `password_env` or `password_file`, not both",
            ))
        }
        (None, None) => {
            return Err(field_err(
                field("password_env"),
                "the environment variable holding the SASL password (or `password_file`); a password is never written in the spec",
            ))
        }
    };
    settings.push(("sasl.mechanism", mechanism.to_string()));
    settings.push(("sasl.username", username));
    settings.push(("sasl.password", password));
    Ok(KafkaSettings(settings))
}

/// The password in file `path`, without a trailing line break.
fn password_from(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}
