//! Bypass-code email over a real SMTP conversation, with an SMTP sink this test runs on
//! 127.0.0.1; and a failing SMTP server, which must not lose the code.

mod common;

use std::sync::{Arc, Mutex};

use common::{TestApp, enrolled_user};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A minimal SMTP server that accepts every message and keeps its DATA.
async fn smtp_sink() -> (
    u16,
    Arc<Mutex<Vec<(String, String)>>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let store = received.clone();
    let task = tokio::spawn(async move {
        // Bounded: a handful of connections is all a test makes.
        for _ in 0..16 {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let (mut rcpt, mut data, mut in_data) = (String::new(), String::new(), false);
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            store
                                .lock()
                                .unwrap()
                                .push((rcpt.clone(), std::mem::take(&mut data)));
                            let _ = write.write_all(b"250 queued\r\n").await;
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        rcpt = line[8..].trim().to_owned();
                        b"250 ok\r\n"
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, received, task)
}

#[tokio::test]
async fn codes_are_emailed_over_smtp() {
    let (port, received, sink) = smtp_sink().await;
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[
        ("SMTP_URL", smtp.as_str()),
        ("BYPASS_IDP_MAIL_FROM", "Help Desk <help@idp.test>"),
    ])
    .await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "mailed").await;
    let (status, created, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{user_id}/bypassCodes"),
            &token,
            Some(json!({"expiresIn": {"hours": 4}, "maxUsageCount": 2, "notify": ["email"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["notifications"][0]["status"], "sent", "{created}");
    let messages = received.lock().unwrap().clone();
    assert_eq!(messages.len(), 1);
    let (rcpt, data) = &messages[0];
    assert!(rcpt.contains("mailed@example.com"), "{rcpt}");
    assert!(data.contains("help@idp.test"));
    assert!(data.contains("multipart/alternative") && data.contains("text/html"));
    let text = common::decode_mail(data);
    assert!(text.contains(created["code"].as_str().unwrap()), "{text}");
    let expires =
        chrono::DateTime::parse_from_rfc3339(created["expiresAt"].as_str().unwrap()).unwrap();
    assert!(
        text.contains(&expires.format("%Y-%m-%d at %H:%M").to_string()),
        "{text}"
    );
    assert!(text.contains("used 2 times"));
    app.stop().await;
    sink.abort();
}

#[tokio::test]
async fn a_failed_send_is_reported_and_the_code_survives() {
    // A port that refuses connections: bind one, then close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[("SMTP_URL", smtp.as_str())]).await;
    let token = app.admin_token(None).await;
    let (user_id, _) = enrolled_user(&app, &token, "unlucky").await;
    let (status, created, _) = app
        .scim(
            Method::POST,
            &format!("/Users/{user_id}/bypassCodes"),
            &token,
            Some(json!({"neverExpires": true, "notify": ["email"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["notifications"][0]["status"], "failed");
    assert!(
        created["code"].is_string(),
        "the caller still gets the code"
    );
    let detail = created["notifications"][0]["detail"].as_str().unwrap();
    assert!(!detail.contains(created["code"].as_str().unwrap()));
    let (status, stored, _) = app
        .scim(
            Method::GET,
            &format!(
                "/Users/{user_id}/bypassCodes/{}",
                created["id"].as_str().unwrap()
            ),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(stored["status"], "active");
    assert_eq!(stored["notifications"][0]["status"], "failed");
    app.stop().await;
}
