//! Outgoing mail with lettre: SMTP when `SMTP_URL` is set, otherwise `.eml` files in the
//! outbox folder. Messages carry a plain-text and an HTML part.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail configuration: {0}")]
    Config(String),
    #[error("invalid recipient address")]
    Recipient,
    #[error("could not build the message: {0}")]
    Build(String),
    #[error("sending failed: {0}")]
    Send(String),
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in this folder, readable by the owner only: they hold codes.
    Outbox(PathBuf),
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

/// What a bypass-code message says.
pub struct BypassCodeMail<'a> {
    pub to: &'a str,
    pub user_name: &'a str,
    /// The code as shown to people (grouped digits).
    pub code: &'a Secret,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub service: &'a str,
    /// When it starts to work, if that is later than now.
    pub starts_at: Option<DateTime<Utc>>,
    /// Why it was given, as the help desk wrote it.
    pub reason: Option<&'a str>,
}

fn escape_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

impl BypassCodeMail<'_> {
    fn expiry(&self) -> String {
        let starts = self.starts_at.map_or(String::new(), |at| {
            format!("It works from {} UTC. ", at.format("%Y-%m-%d at %H:%M"))
        });
        match self.expires_at {
            Some(at) => format!(
                "{starts}It expires on {} UTC.",
                at.format("%Y-%m-%d at %H:%M")
            ),
            None => format!("{starts}It does not expire."),
        }
    }

    fn reason_line(&self) -> String {
        self.reason
            .map_or(String::new(), |r| format!("Reason given: {r}\n"))
    }

    fn uses(&self) -> String {
        match self.max_uses {
            Some(1) => "It can be used once.".to_owned(),
            Some(n) => format!("It can be used {n} times."),
            None => "It can be used any number of times.".to_owned(),
        }
    }

    fn text(&self) -> String {
        format!(
            "Hello {user},\n\nHere is your bypass code for 2-step verification at {service}:\n\n    {code}\n\n\
             {expiry} {uses}\n{reason}Type it on the 2-step verification page, choosing \"Use a bypass code\".\n\n\
             If you did not ask for this code, contact your help desk.\n",
            reason = self.reason_line(),
            user = self.user_name,
            service = self.service,
            code = self.code.expose(),
            expiry = self.expiry(),
            uses = self.uses(),
        )
    }

    fn html(&self) -> String {
        format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\">\
             <p>Hello {user},</p><p>Here is your bypass code for 2-step verification at {service}:</p>\
             <p style=\"font-size:1.5em;font-family:monospace;letter-spacing:0.1em\"><strong>{code}</strong></p>\
             <p>{expiry} {uses}<br>{reason}Type it on the 2-step verification page, choosing \
             &ldquo;Use a bypass code&rdquo;.</p><p>If you did not ask for this code, contact your help desk.</p>\
             </body></html>",
            reason = self.reason.map_or(String::new(), |r| format!(
                "Reason given: {}<br>",
                escape_html(r)
            )),
            user = escape_html(self.user_name),
            service = escape_html(self.service),
            code = escape_html(self.code.expose()),
            expiry = self.expiry(),
            uses = self.uses(),
        )
    }
}

/// A security alert: something happened to the account that its owner must hear of.
pub struct AlertMail<'a> {
    pub to: &'a str,
    pub user_name: &'a str,
    pub service: &'a str,
    /// The subject, e.g. "Your authenticator app was replaced".
    pub subject: &'a str,
    /// What happened, in one or two sentences.
    pub what: &'a str,
    pub at: DateTime<Utc>,
    /// The network address it was done from, when known.
    pub from_address: Option<&'a str>,
    /// What to do if it was not them.
    pub if_not_you: &'a str,
    /// Further facts, shown after when and where (who, reason, application…).
    pub details: Vec<(&'static str, String)>,
}

impl AlertMail<'_> {
    fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![("When", format!("{} UTC", self.at.format("%Y-%m-%d %H:%M")))];
        if let Some(address) = self.from_address {
            facts.push(("From address", address.to_owned()));
        }
        facts.extend(self.details.iter().cloned());
        facts
    }

    fn text(&self) -> String {
        let facts: String = self
            .facts()
            .iter()
            .map(|(k, v)| format!("    {k}: {v}\n"))
            .collect();
        format!(
            "Hello {user},\n\n{what}\n\n{facts}\nIf this was not you: {if_not_you}\n\n{service}\n",
            user = self.user_name,
            what = self.what,
            if_not_you = self.if_not_you,
            service = self.service,
        )
    }

    fn html(&self) -> String {
        let facts: String = self
            .facts()
            .iter()
            .map(|(k, v)| {
                format!(
                    "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
                    escape_html(v)
                )
            })
            .collect();
        format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\">\
             <p>Hello {user},</p><p>{what}</p><table>{facts}</table>\
             <p><strong>If this was not you:</strong> {if_not_you}</p><p>{service}</p></body></html>",
            user = escape_html(self.user_name),
            what = escape_html(self.what),
            if_not_you = escape_html(self.if_not_you),
            service = escape_html(self.service),
        )
    }
}

impl Mailer {
    pub async fn send_alert(&self, mail: &AlertMail<'_>) -> Result<(), MailError> {
        let to: Mailbox = mail.to.parse().map_err(|_| MailError::Recipient)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("{} ({})", mail.subject, mail.service))
            .multipart(MultiPart::alternative_plain_html(mail.text(), mail.html()))
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.send(message).await
    }

    pub fn new(smtp_url: Option<&str>, outbox: PathBuf, from: &str) -> Result<Self, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailError::Config(format!("from address: {e}")))?;
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::Config(format!("SMTP_URL: {e}")))?
                    .build(),
            ),
            None => {
                create_private_dir(&outbox)
                    .map_err(|e| MailError::Config(format!("outbox {}: {e}", outbox.display())))?;
                Transport::Outbox(outbox)
            }
        };
        Ok(Self { transport, from })
    }

    pub async fn send_bypass_code(&self, mail: &BypassCodeMail<'_>) -> Result<(), MailError> {
        let to: Mailbox = mail.to.parse().map_err(|_| MailError::Recipient)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("Your bypass code for {}", mail.service))
            .multipart(MultiPart::alternative_plain_html(mail.text(), mail.html()))
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.send(message).await
    }

    async fn send(&self, message: Message) -> Result<(), MailError> {
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::Outbox(folder) => {
                let path = folder.join(format!("{}.eml", uuid::Uuid::new_v4()));
                write_private(&path, &message.formatted())
                    .await
                    .map_err(|e| MailError::Send(format!("outbox {}: {e}", path.display())))
            }
        }
    }
}

/// Creates a folder (and its parents) that only the owner may enter.
pub fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes a new file that is created with mode 0600, so it is never readable by others.
async fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(contents).await?;
    file.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parts_state_code_expiry_and_uses_and_html_is_escaped() {
        let code = Secret::new("1234-5678-9012");
        let mail = BypassCodeMail {
            to: "a@example.com",
            user_name: "<script>",
            code: &code,
            expires_at: Some(
                DateTime::parse_from_rfc3339("2026-12-01T08:30:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            max_uses: Some(3),
            service: "bypass-idp",
            starts_at: None,
            reason: Some("INC-7 <lost phone>"),
        };
        for part in [mail.text(), mail.html()] {
            assert!(part.contains("1234-5678-9012"));
            assert!(part.contains("2026-12-01 at 08:30 UTC"));
            assert!(part.contains("used 3 times"));
            assert!(part.contains("Reason given: INC-7"));
        }
        assert!(mail.html().contains("INC-7 &lt;lost phone&gt;"));
        assert!(mail.html().contains("&lt;script&gt;") && !mail.html().contains("<script>"));
        let never = BypassCodeMail {
            expires_at: None,
            max_uses: None,
            ..mail
        };
        assert!(
            never.text().contains("does not expire")
                && never.text().contains("any number of times")
        );
    }
}
