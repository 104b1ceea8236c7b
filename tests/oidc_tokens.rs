//! Discovery, JWKS, the client-credentials grant and bearer-token checks, over HTTP.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::TestApp;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{IssuerUrl, JsonWebKey};
use serde_json::Value;

fn rp_http_client() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn discovery_and_jwks_satisfy_a_real_oidc_client_and_verify_our_tokens() {
    // Access tokens are ES256 by default and RS256 when configured; either way a real
    // client verifies them with the key the JWKS publishes under their kid.
    for (setting, alg, jws_alg) in [
        (None, "ES256", CoreJwsSigningAlgorithm::EcdsaP256Sha256),
        (
            Some("RS256"),
            "RS256",
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        ),
    ] {
        let extra: Vec<(&str, &str)> = setting
            .map(|a| vec![("BYPASS_IDP_ACCESS_TOKEN_ALG", a)])
            .unwrap_or_default();
        let app = TestApp::spawn_with(&extra).await;
        // openidconnect checks that the issuer in the document equals the one asked for.
        let metadata = CoreProviderMetadata::discover_async(
            IssuerUrl::new(app.base.clone()).unwrap(),
            &rp_http_client(),
        )
        .await
        .expect("discovery");
        assert_eq!(
            metadata.token_endpoint().unwrap().as_str(),
            app.url("/oauth2/token")
        );
        let keys = metadata.jwks().keys();
        // The RSA key of ID tokens, and an EC key when access tokens are ES256.
        assert_eq!(keys.len(), if alg == "ES256" { 2 } else { 1 });

        let token = app.admin_token(Some("scim:users")).await;
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], alg);
        let key = keys
            .iter()
            .find(|k| k.key_id().map(|id| id.as_str()) == header["kid"].as_str())
            .expect("the token's kid is published");
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        key.verify_signature(&jws_alg, signing_input.as_bytes(), &signature)
            .expect("the token verifies with the published key");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], app.base.as_str());
        assert_eq!(claims["aud"], app.base.as_str());
        assert_eq!(claims["client_id"], app.admin_id.as_str());
        assert_eq!(claims["scope"], "scim:users");
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert_eq!(exp - iat, 3600);
        // And the server accepts its own token.
        let (status, _, _) = app.scim(reqwest::Method::GET, "/Users", &token, None).await;
        assert_eq!(status, 200);
        app.stop().await;
    }
}

#[tokio::test]
async fn client_secret_post_works_and_defaults_to_every_allowed_scope() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.admin_id.as_str()),
            ("client_secret", app.admin_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["scope"],
        "audit:read bypass_codes:manage bypass_codes:settings mfa:manage scim:groups scim:users"
    );
    app.stop().await;
}

async fn oauth_error(response: reqwest::Response) -> (u16, String, Option<String>) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.expect("error JSON");
    assert!(body["error_description"].is_string(), "{body}");
    (
        status,
        body["error"].as_str().unwrap().to_owned(),
        challenge,
    )
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let app = TestApp::spawn().await;
    let (status, error, challenge) =
        oauth_error(app.token_for(&app.admin_id, "wrong-secret", None).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(challenge.unwrap().starts_with("Basic"));
    let (status, error, _) = oauth_error(app.token_for("nobody", "x", None).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    let (status, error, _) = oauth_error(
        app.token_for(&app.admin_id, &app.admin_secret, Some("scim:users openid"))
            .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (400, "invalid_scope"));
    let (status, error, _) = oauth_error(
        app.token_for(&app.admin_id, &app.admin_secret, Some("bypass_codes:self"))
            .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (400, "invalid_scope"));

    let send = |form: Vec<(&'static str, String)>| {
        app.http
            .post(app.url("/oauth2/token"))
            .basic_auth(&app.admin_id, Some(&app.admin_secret))
            .form(&form)
            .send()
    };
    let (status, error, _) =
        oauth_error(send(vec![("grant_type", "password".into())]).await.unwrap()).await;
    assert_eq!((status, error.as_str()), (400, "unsupported_grant_type"));
    let (status, error, _) = oauth_error(send(vec![]).await.unwrap()).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    let (status, error, _) = oauth_error(
        send(vec![
            ("grant_type", "client_credentials".into()),
            ("grant_type", "client_credentials".into()),
        ])
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    let json_body = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&app.admin_id, Some(&app.admin_secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let (status, error, _) = oauth_error(json_body).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    let both = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&app.admin_id, Some(&app.admin_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", app.admin_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let (status, error, _) = oauth_error(both).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    app.stop().await;
}

#[tokio::test]
async fn repeated_client_authentication_failures_are_throttled() {
    let app = TestApp::spawn().await;
    for attempt in 1..=10 {
        let (status, _, _) = oauth_error(
            app.token_for(&app.admin_id, &format!("guess-{attempt}"), None)
                .await,
        )
        .await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    let response = app.token_for(&app.admin_id, "guess-11", None).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, error, _) = oauth_error(response).await;
    assert_eq!((status, error.as_str()), (429, "invalid_client"));
    // Even the right secret waits out the window from this address.
    let (status, _, _) =
        oauth_error(app.token_for(&app.admin_id, &app.admin_secret, None).await).await;
    assert_eq!(status, 429);
    app.stop().await;
}

#[tokio::test]
async fn bearer_tokens_are_checked_on_every_scim_request() {
    let app = TestApp::spawn().await;
    let (status, body, headers) = app.scim(reqwest::Method::GET, "/Users", "", None).await;
    common::assert_scim_error(status, &body, 401, None);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    let token = app.admin_token(Some("mfa:manage")).await;
    let (status, body, _) = app.scim(reqwest::Method::GET, "/Users", &token, None).await;
    common::assert_scim_error(status, &body, 403, None);
    assert!(body["detail"].as_str().unwrap().contains("scim:users"));

    let token = app.admin_token(Some("scim:users")).await;
    let mut tampered: Vec<char> = token.chars().collect();
    let middle = token.find('.').unwrap() + 5;
    tampered[middle] = if tampered[middle] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let (status, body, headers) = app
        .scim(reqwest::Method::GET, "/Users", &tampered, None)
        .await;
    common::assert_scim_error(status, &body, 401, None);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    let (status, _, _) = app.scim(reqwest::Method::GET, "/Users", &token, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn cli_manages_clients_while_the_server_runs() {
    let app = TestApp::spawn().await;
    let (code, out, err) = app.cli(
        &[
            "client",
            "add",
            "--client-id",
            "provisioner",
            "--scope",
            "scim:users",
            "--grant-type",
            "client_credentials",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(out.trim()).expect("JSON on stdout");
    assert_eq!(created["client_id"], "provisioner");
    let secret = created["client_secret"]
        .as_str()
        .expect("a confidential client gets a secret")
        .to_owned();
    assert!(secret.len() >= 43, "at least 256 bits");
    assert!(!err.contains(&secret), "the secret is never logged");

    let response = app.token_for("provisioner", &secret, None).await;
    assert_eq!(response.status(), 200);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = app.scim(reqwest::Method::GET, "/Users", &token, None).await;
    assert_eq!(status, 200);

    let (code, out, _) = app.cli(&["client", "list"], None);
    assert_eq!(code, 0);
    assert!(out.contains("provisioner") && out.contains("bootstrap-admin"));
    assert!(!out.contains(&secret));

    let (code, _, err) = app.cli(&["client", "add", "--client-id", "provisioner"], None);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = app.cli(&["client", "add", "--scope", "root"], None);
    assert_ne!(code, 0);
    assert!(err.contains("unknown scope"), "{err}");

    let (code, out, _) = app.cli(
        &[
            "client",
            "add",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
        ],
        None,
    );
    assert_eq!(code, 0);
    let public: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        public.get("client_secret").is_none(),
        "public clients have no secret"
    );

    let (code, _, _) = app.cli(&["client", "remove", "provisioner"], None);
    assert_eq!(code, 0);
    let (status, _, _) = app.scim(reqwest::Method::GET, "/Users", &token, None).await;
    assert_eq!(status, 401, "removing a client revokes its tokens");
    app.stop().await;
}

#[tokio::test]
async fn cli_user_add_reads_the_password_from_stdin() {
    let app = TestApp::spawn().await;
    let (code, out, err) = app.cli(
        &[
            "user",
            "add",
            "--user-name",
            "cli.user",
            "--email",
            "cli.user@example.com",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert_eq!(code, 0, "{err}");
    let user: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(user["userName"], "cli.user");
    assert!(user.get("password").is_none());
    let token = app.admin_token(None).await;
    let (status, list, _) = app
        .scim(
            reqwest::Method::GET,
            "/Users?filter=userName%20eq%20%22CLI.USER%22",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], 1);
    let (code, _, err) = app.cli(&["user", "add", "--user-name", "cli.user"], None);
    assert_ne!(code, 0);
    assert!(err.contains("already taken"), "{err}");
    app.stop().await;
}
