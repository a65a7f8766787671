//! Pages that name an object Lookout does not have: a 404 inside the app's layout (its
//! navigation stays, so the operator is one click from where they were), instead of a bare
//! error page. Local to the object pages (issues, traces, releases, monitors).

use super::{Page, UiError, Viewer, layout};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

/// The page `result` rendered, or, when it is `NotFound`, a 404 in the layout under the
/// navigation entry `active` with a link back to `back` (path, label). Other errors keep
/// their own page.
pub(super) fn or_404(viewer: &Viewer, active: &str, back: (&str, &str), result: Page) -> Response {
    match result {
        Ok(markup) => markup.into_response(),
        Err(UiError::NotFound(what)) => not_found(viewer, active, back, &what),
        Err(other) => other.into_response(),
    }
}

/// A 404 in the layout: what was asked for and where to go instead.
pub(super) fn not_found(viewer: &Viewer, active: &str, back: (&str, &str), what: &str) -> Response {
    let body = html! {
        div.page-head { h1 id="not-found" { "Not found" } }
        p { "There is no " (super::clip(what, 200)) " here. It may never have existed, or retention removed it." }
        p { a href=(back.0) { (back.1) } }
    };
    (
        StatusCode::NOT_FOUND,
        layout(viewer, active, "Not found", body),
    )
        .into_response()
}
