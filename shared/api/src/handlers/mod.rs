//! Thin handlers: request → use case → response. No business rules live here.

pub mod accounts;
pub mod admin;
pub mod analyze;
pub mod auth;
pub mod compare;
pub mod events;
pub mod health;
pub mod hooks;
pub mod insights;
pub mod keys;
pub mod metrics;
pub mod models;
pub mod outcomes;
pub mod uploads;
pub mod usage;
pub mod users;
pub mod webhooks;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::Error;
use domain::model::Cursor;

/// Cursors are opaque to clients: base64url of `<created_at µs>.<id>`.
pub(crate) fn encode_cursor(c: Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", c.created_at_us, c.id))
}

pub(crate) fn decode_cursor(text: Option<&str>) -> Result<Option<Cursor>, Error> {
    let Some(text) = text else { return Ok(None) };
    let invalid = || Error::validation("cursor", "not a cursor this API issued");
    let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (us, id) = raw.split_once('.').ok_or_else(invalid)?;
    Ok(Some(Cursor { created_at_us: us.parse().map_err(|_| invalid())?, id: id.parse().map_err(|_| invalid())? }))
}

/// Ids in paths that do not parse cannot name anything: not found.
pub(crate) fn path_id(text: &str, what: &'static str) -> Result<uuid::Uuid, Error> {
    text.parse().map_err(|_| Error::NotFound(what))
}
