//! A small real SMTP server (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT) that keeps what it receives, and the tests that send mail through it.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::helpers::{Backend, PASSWORD, TestApp};

#[derive(Clone, Debug, Default)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone, Default)]
pub struct SmtpServer {
    pub port: u16,
    inbox: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let server = Self {
            port: listener.local_addr().unwrap().port(),
            ..Default::default()
        };
        let handle = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = handle.session(socket).await;
                });
            }
        });
        server
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 test-smtp ESMTP ready\r\n").await?;
        let mut current = Received::default();
        while let Some(line) = lines.next_line().await? {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-test-smtp\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                b"250 OK\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                current = Received {
                    from: line[10..].trim().to_owned(),
                    ..Default::default()
                };
                b"250 OK\r\n"
            } else if upper.starts_with("RCPT TO:") {
                current
                    .to
                    .push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                b"250 OK\r\n"
            } else if upper == "DATA" {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                while let Some(data) = lines.next_line().await? {
                    if data == "." {
                        break;
                    }
                    current
                        .data
                        .push_str(data.strip_prefix('.').unwrap_or(&data));
                    current.data.push('\n');
                }
                self.inbox
                    .lock()
                    .unwrap()
                    .push(std::mem::take(&mut current));
                self.arrived.notify_waiters();
                b"250 OK: queued\r\n"
            } else if upper == "RSET" {
                current = Received::default();
                b"250 OK\r\n"
            } else if upper == "QUIT" {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            } else {
                b"502 Command not implemented\r\n"
            };
            write.write_all(reply).await?;
        }
        Ok(())
    }

    pub fn messages(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn verification_mail_goes_out_over_smtp() {
    let smtp = SmtpServer::start().await;
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("SMTP_URL", &url),
            ("MAIL_FROM", "Clinic <desk@clinic.test>"),
        ],
    )
    .await;
    app.post(
        "/api/v1/auth/register",
        json!({"email": "ana@example.org", "password": PASSWORD, "display_name": "Ana"}),
    )
    .await
    .assert_ok(202);

    // The request returns once the server accepted the message.
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let mail = &messages[0];
    assert_eq!(mail.to, ["ana@example.org"]);
    assert!(mail.from.contains("desk@clinic.test"), "{}", mail.from);
    assert!(
        mail.data.contains("Subject: Verify your email address"),
        "{}",
        mail.data
    );
    let code = mail
        .data
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a code in the mail")
        .to_owned();
    app.post(
        "/api/v1/auth/verify-email",
        json!({"email": "ana@example.org", "code": code}),
    )
    .await
    .assert_ok(200);

    // The outbox records the delivery but not the code.
    let (subject, body) = app.last_mail("ana@example.org").await.unwrap();
    assert_eq!(subject, "Verify your email address");
    assert_eq!(body, "");
    assert_eq!(
        app.scalar_i64_str("SELECT COUNT(*) FROM mail_outbox WHERE status = $1", "sent")
            .await,
        1
    );
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_recorded_and_the_user_can_retry() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_with(Backend::Sqlite, &[("SMTP_URL", &url)]).await;
    app.post(
        "/api/v1/auth/register",
        json!({"email": "bo@example.org", "password": PASSWORD, "display_name": "Bo"}),
    )
    .await
    .assert_ok(202);
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM mail_outbox WHERE status = $1",
            "failed"
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar_i64_str(
            "SELECT COUNT(*) FROM users WHERE email = $1",
            "bo@example.org"
        )
        .await,
        1
    );
}
