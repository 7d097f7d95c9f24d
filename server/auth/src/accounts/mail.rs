//! Outgoing messages of the account flows: mail (SMTP, or a log line when no relay is
//! configured) and SMS (a log line until a gateway is wired). A log line names the recipient
//! (a phone number masked) and the subject, never the body: bodies carry codes and tokens.

use std::fmt;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// A message could not be handed over.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// One plain-text mail.
#[derive(Clone)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text; may hold a code or token, so it is never logged.
    pub body: String,
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Sends mail.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Hands `mail` to the relay.
    async fn send(&self, mail: Mail) -> Result<(), SendError>;
}

/// Sends text messages.
#[async_trait::async_trait]
pub trait SmsSender: Send + Sync {
    /// Sends `text` to the phone number `to` (E.164).
    async fn send(&self, to: &str, text: &str) -> Result<(), SendError>;
}

/// The mailer without a relay: logs who would have received what subject.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogMailer;

#[async_trait::async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: Mail) -> Result<(), SendError> {
        tracing::info!(to = %mail.to, subject = %mail.subject, "mail not sent (no SMTP relay configured)");
        Ok(())
    }
}

/// The SMS sender without a gateway: logs the masked number.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSms;

#[async_trait::async_trait]
impl SmsSender for LogSms {
    async fn send(&self, to: &str, _text: &str) -> Result<(), SendError> {
        tracing::info!(to = %mask_phone(to), "SMS not sent (no gateway configured)");
        Ok(())
    }
}

/// `+91******3210`: the country part and the last four digits.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let keep_head = if chars.first() == Some(&'+') { 3 } else { 0 };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_head || i + 4 >= chars.len() {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// Mail over plain SMTP to a relay (`smtp://host:port`), meant for a relay on loopback or a
/// private network that does the onward TLS delivery.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `url` (`smtp://host[:port]`, port 25 by default) sending as `from`.
    pub fn new(url: &str, from: &str) -> Result<SmtpMailer, SendError> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| SendError(format!("the SMTP URL must start with smtp://, got {url}")))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| SendError(format!("bad port in SMTP URL {url}")))?,
            ),
            None => (rest, 25),
        };
        if host.is_empty() || host.contains('@') {
            return Err(SendError(format!(
                "the SMTP URL must be smtp://host:port, got {url}"
            )));
        }
        let from = from
            .parse()
            .map_err(|e| SendError(format!("bad sender address {from}: {e}")))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        Ok(SmtpMailer { transport, from })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), SendError> {
        let to = mail
            .to
            .parse()
            .map_err(|e| SendError(format!("bad recipient address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|e| SendError(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| SendError(format!("SMTP: {e}")))?;
        tracing::info!(to = %mail.to, subject = %mail.subject, "mail sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("+919876543210"), "+91******3210");
        assert_eq!(mask_phone("123"), "123");
    }

    #[test]
    fn smtp_urls() {
        assert!(SmtpMailer::new("smtp://127.0.0.1:2525", "CuraNet <no-reply@curanet.in>").is_ok());
        assert!(SmtpMailer::new("http://x", "a@b.in").is_err());
        assert!(SmtpMailer::new("smtp://h:notaport", "a@b.in").is_err());
        assert!(SmtpMailer::new("smtp://h:25", "not an address").is_err());
    }
}
