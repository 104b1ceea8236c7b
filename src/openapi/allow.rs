//! Which methods a path of the document allows, for the `Allow` header of a 405.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::document;

/// The methods one path of the document allows (HEAD wherever GET is).
pub(super) fn allowed(path: &str) -> Option<String> {
    static TABLE: LazyLock<Vec<(Vec<String>, String)>> = LazyLock::new(|| {
        let paths = document()["paths"].as_object().expect("paths");
        paths
            .iter()
            .map(|(template, item)| {
                let mut methods: BTreeSet<String> = item
                    .as_object()
                    .expect("a path item")
                    .keys()
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                if methods.contains("GET") {
                    methods.insert("HEAD".to_owned());
                }
                let segments = template.split('/').map(str::to_owned).collect();
                (segments, methods.into_iter().collect::<Vec<_>>().join(", "))
            })
            .collect()
    });
    let segments: Vec<&str> = path.split('/').collect();
    let parameter = |t: &String| t.starts_with('{') && t.ends_with('}');
    // Like the router, a literal segment wins over a parameter (`/Users/.search`).
    TABLE
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (parameter(t) && !s.is_empty()))
        })
        .min_by_key(|(template, _)| template.iter().filter(|t| parameter(t)).count())
        .map(|(_, methods)| methods.clone())
}

/// Adds `Allow` to a 405 from the SCIM API (RFC 9110 §15.5.6).
pub async fn allow_on_405<E: Endpoint>(
    inner: std::sync::Arc<E>,
    request: Request,
) -> poem::Result<Response> {
    let path = request.original_uri().path().to_owned();
    let mut response = inner.call(request).await?.into_response();
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = allowed(&path)
        && let Ok(value) = HeaderValue::from_str(&methods)
    {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Ok(response)
}
