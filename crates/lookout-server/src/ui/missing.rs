//! Pages that name an object Lookout does not have: a 404 inside the app's layout (its
//! navigation stays, so the operator is one click from where they were), instead of a bare
//! error page. Local to the object pages (issues, traces, releases, monitors).

use super::{Page, UiError, Viewer};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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

/// A 404 in the layout: what was asked for, drawn as every other in-app error page
/// (`super::error_page`), with the way back to the list it belongs to.
pub(super) fn not_found(
    viewer: &Viewer,
    _active: &str,
    back: (&str, &str),
    what: &str,
) -> Response {
    super::error_page(
        Some(viewer),
        StatusCode::NOT_FOUND,
        &format!(
            "There is no {} here. It may never have existed, or retention removed it. Back to {}: {}.",
            super::clip(what, 200),
            back.1,
            back.0
        ),
    )
}
