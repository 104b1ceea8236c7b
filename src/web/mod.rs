//! Server-rendered HTML: one template environment (minijinja, chosen because its templates
//! are plain files with Jinja syntax that auto-escape HTML, and it needs no build-time code
//! generation), one layout, one stylesheet served from this service. No page has inline
//! script or style, so the Content-Security-Policy forbids both.

use std::sync::LazyLock;

use minijinja::{Environment, Value};
use poem::http::{StatusCode, header};
use poem::{Response, handler};

pub mod console;

pub const STYLESHEET_PATH: &str = "/assets/style.css";
const STYLESHEET: &str = include_str!("style.css");
pub const SCRIPT_PATH: &str = "/assets/console.js";
const SCRIPT: &str = include_str!("console.js");

/// The policy of every HTML page: this origin's stylesheet and images, no script at all. No
/// `form-action`: browsers apply it to the redirect that ends a sign-in form's POST, and that
/// redirect goes to the client.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

/// A QR code of `text` (an `otpauth://` link) as a `data:` URI of an SVG image, for an
/// `<img>`: the pages' CSP allows `data:` images, and the SVG has neither script nor style.
/// Error correction M. Encoded by `fast_qr`: the `qrcode` crate took ~0.9 ms of the core for
/// this link (most of it choosing the mask), a tenth of what the authenticator set-up step
/// costs besides its password check; `fast_qr` ~0.1 ms.
pub fn qr_code(text: &str) -> Option<String> {
    use base64::Engine;
    let code = fast_qr::QRBuilder::new(text)
        .ecl(fast_qr::ECL::M)
        .build()
        .ok()?;
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(qr_svg(&code))
    ))
}

/// The SVG of a QR code: a quiet zone of four modules, and one path with a rectangle per run
/// of dark modules in a row. (`fast_qr`'s own writer draws a square per module, formatting a
/// string for each: twice the bytes, ~0.7 M instructions a code.)
fn qr_svg(code: &fast_qr::QRCode) -> String {
    use std::fmt::Write;
    const QUIET: usize = 4;
    let side = code.size + 2 * QUIET;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="#fff"/><path fill="#000" d=""##
    );
    for y in 0..code.size {
        let row = &code[y];
        let mut x = 0;
        while x < code.size {
            if !row[x].value() {
                x += 1;
                continue;
            }
            let start = x;
            while x < code.size && row[x].value() {
                x += 1;
            }
            let (left, top) = (start + QUIET, y + QUIET);
            // Writing into a String cannot fail.
            let _ = write!(svg, "M{left},{top}h{}v1H{left}z", x - start);
        }
    }
    svg.push_str(r#""/></svg>"#);
    svg
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("message.html", include_str!("templates/message.html")),
        ("signin.html", include_str!("templates/signin.html")),
        (
            "authenticator_key.html",
            include_str!("templates/authenticator_key.html"),
        ),
        ("console.html", include_str!("templates/console.html")),
        ("users.html", include_str!("templates/users.html")),
        ("codes.html", include_str!("templates/codes.html")),
        ("user.html", include_str!("templates/user.html")),
        ("generate.html", include_str!("templates/generate.html")),
        ("code.html", include_str!("templates/code.html")),
        ("account.html", include_str!("templates/account.html")),
        ("approvals.html", include_str!("templates/approvals.html")),
        ("saved_set.html", include_str!("templates/saved_set.html")),
        ("pending.html", include_str!("templates/pending.html")),
        ("saved_left.html", include_str!("templates/saved_left.html")),
        ("audit.html", include_str!("templates/audit.html")),
        ("reset.html", include_str!("templates/reset.html")),
        ("replace.html", include_str!("templates/replace.html")),
        ("policy.html", include_str!("templates/policy.html")),
        ("logout.html", include_str!("templates/logout.html")),
        ("sessions.html", include_str!("templates/sessions.html")),
    ] {
        // The sources are compiled into the binary; a syntax error is a bug a test catches.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "template does not parse");
        }
    }
    env
});

/// Renders a template; a failure (a bug) is logged and shown as a bare apology.
pub fn render(name: &str, context: Value) -> String {
    match TEMPLATES.get_template(name).and_then(|t| t.render(context)) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed");
            "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
        }
    }
}

/// A redirect after a page or form, never cached (sign-in and console alike).
pub fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// The name shown in every page's header.
pub const SERVICE_NAME: &str = "bypass-idp";

#[handler]
pub fn stylesheet() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(STYLESHEET)
}

#[handler]
pub fn script() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/javascript; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(SCRIPT)
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::*;

    /// The SVG inside a `data:` URI of [`qr_code`].
    fn svg_of(uri: &str) -> String {
        use base64::Engine;
        let base64 = uri
            .strip_prefix("data:image/svg+xml;base64,")
            .expect("a data: URI");
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(base64)
                .unwrap(),
        )
        .unwrap()
    }

    /// The QR code as an authenticator app reads it: the SVG's rectangles (`M x,y h w v1 …`,
    /// a run of dark modules each) drawn at four pixels a module and decoded.
    fn scan(uri: &str) -> String {
        let svg = svg_of(uri);
        let side: usize = svg
            .split("viewBox=\"0 0 ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a square viewBox");
        let path = svg.split(" d=\"").nth(1).and_then(|d| d.split('"').next());
        let mut dark = vec![false; side * side];
        for run in path.expect("a path").split('M').skip(1) {
            let number = |after: char| -> usize {
                let rest = &run[run.find(after).map_or(0, |i| i + 1)..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap()
            };
            let (x, y, width) = (number('M'), number(','), number('h'));
            for column in x..x + width {
                dark[y * side + column] = true;
            }
        }
        let mut image = rqrr::PreparedImage::prepare_from_bitmap(side * 4, side * 4, |x, y| {
            dark[(y / 4) * side + x / 4]
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code");
        grids[0].decode().expect("a readable QR code").1
    }

    #[test]
    fn qr_codes_scan_back_to_their_link() {
        for text in [
            "otpauth://totp/bypass-idp:bjensen?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=bypass-idp",
            // A user name in another script, and one only of QR's alphanumeric characters.
            "otpauth://totp/bypass-idp:%D0%91%D0%B0%D0%B1%D0%B0?secret=JBSWY3DP&issuer=bypass-idp",
            "OTPAUTH 123 $%*+-./:",
            &format!("otpauth://totp/x:{}?secret=A", "u".repeat(1000)),
        ] {
            let uri = qr_code(text).expect("a QR code");
            assert_eq!(scan(&uri), text);
            let svg = svg_of(&uri);
            assert!(!svg.contains("<script") && !svg.contains("style"), "{svg}");
        }
        // Past what a QR code holds (2,331 bytes at level M): no image, not a panic.
        assert_eq!(qr_code(&"x".repeat(4000)), None);
        assert!(qr_code("").is_some());
    }

    #[test]
    fn templates_parse_and_escape() {
        let html = render(
            "message.html",
            context! { title => "<b>t</b>", service => SERVICE_NAME, detail => "a & \"b\"" },
        );
        assert!(
            html.contains("&lt;b&gt;t&lt;") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("a &amp; &quot;b&quot;"), "{html}");
        assert!(html.contains(STYLESHEET_PATH));
        assert!(
            !html.contains("<script") && !html.contains("style="),
            "no inline script or style"
        );
    }
}
