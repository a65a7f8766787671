//! Client-key authentication in every form the SDKs and Relay use:
//! `X-Sentry-Auth`, `Authorization: Sentry …`, `Authorization: Basic`, the query string
//! (`sentry_key`), and, when none of those is present, the envelope header `dsn`.
//! Two request-level forms at once are refused, as Relay does.

use crate::http::error::ApiError;
use axum::http::HeaderMap;
use base64::Engine;

/// The newest protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 7;

/// Credentials found on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The public key.
    pub key: String,
    /// `sentry_version`, if sent.
    pub version: Option<u32>,
    /// `sentry_client`, if sent.
    pub client: Option<String>,
}

/// Read request-level credentials. `Ok(None)` when there are none (the envelope `dsn`
/// header may still carry a key).
pub fn from_request(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Credentials>, ApiError> {
    let mut found: Vec<Credentials> = Vec::new();
    if let Some(v) = headers.get("x-sentry-auth") {
        let v = v
            .to_str()
            .map_err(|_| ApiError::Unauthorized("X-Sentry-Auth is not valid text".into()))?;
        found.push(parse_sentry_auth(v, "X-Sentry-Auth")?);
    }
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| ApiError::Unauthorized("Authorization is not valid text".into()))?;
        let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
        if scheme.eq_ignore_ascii_case("sentry") {
            found.push(parse_sentry_auth(v, "Authorization")?);
        } else if scheme.eq_ignore_ascii_case("basic") {
            found.push(parse_basic(rest)?);
        }
    }
    if let Some(q) = query
        && let Some(c) = parse_query(q)?
    {
        found.push(c);
    }
    match found.len() {
        0 => Ok(None),
        1 => {
            let c = found.pop();
            if let Some(c) = &c {
                check_version(c)?;
            }
            Ok(c)
        }
        _ => Err(ApiError::Unauthorized(
            "multiple authorization payloads: send the key in one of X-Sentry-Auth, Authorization or the query string"
                .into(),
        )),
    }
}

/// The public key of a DSN (`scheme://key[:secret]@host/path/pid`).
pub fn key_from_dsn(dsn: &str) -> Option<String> {
    let (_, rest) = dsn.split_once("://")?;
    let (userinfo, _) = rest.split_once('@')?;
    let key = userinfo.split(':').next()?;
    (!key.is_empty()).then(|| key.to_owned())
}

fn check_version(c: &Credentials) -> Result<(), ApiError> {
    match c.version {
        Some(v) if v > PROTOCOL_VERSION => Err(ApiError::bad_request(
            "unsupported_version",
            format!(
                "sentry_version {v} is not supported; this server speaks version {PROTOCOL_VERSION}"
            ),
        )),
        _ => Ok(()),
    }
}

fn parse_version(v: &str) -> Result<u32, ApiError> {
    // SDKs send "7"; some old ones sent "7.0".
    let whole = v.split('.').next().unwrap_or(v);
    whole.trim().parse().map_err(|_| {
        ApiError::bad_request("bad_auth", format!("sentry_version {v:?} is not a number"))
    })
}

fn parse_sentry_auth(value: &str, header: &str) -> Result<Credentials, ApiError> {
    let value = value.trim();
    let body = value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("sentry "))
        .map(|_| &value[7..])
        .unwrap_or(value);
    let mut key = None;
    let mut version = None;
    let mut client = None;
    for pair in body.split(',') {
        let Some((k, v)) = pair.trim().split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "sentry_key" => key = Some(v.to_owned()),
            "sentry_version" => version = Some(parse_version(v)?),
            "sentry_client" => client = Some(v.to_owned()),
            _ => {}
        }
    }
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::Unauthorized(format!("{header} has no sentry_key")))?;
    Ok(Credentials {
        key,
        version,
        client,
    })
}

fn parse_basic(encoded: &str) -> Result<Credentials, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::Unauthorized("Authorization: Basic is not valid base64".into()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::Unauthorized("Authorization: Basic is not valid text".into()))?;
    let key = text.split(':').next().unwrap_or_default();
    if key.is_empty() {
        return Err(ApiError::Unauthorized(
            "Authorization: Basic has no key".into(),
        ));
    }
    Ok(Credentials {
        key: key.to_owned(),
        version: None,
        client: None,
    })
}

fn parse_query(query: &str) -> Result<Option<Credentials>, ApiError> {
    let mut key = None;
    let mut version = None;
    let mut client = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "sentry_key" => key = Some(v),
            "sentry_version" => version = Some(parse_version(&v)?),
            "sentry_client" => client = Some(v),
            _ => {}
        }
    }
    Ok(key.filter(|k| !k.is_empty()).map(|key| Credentials {
        key,
        version,
        client,
    }))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn every_form() {
        let py = headers(&[(
            "x-sentry-auth",
            "Sentry sentry_key=abc, sentry_version=7, sentry_client=sentry.python/2.68.0",
        )]);
        let c = from_request(&py, None).unwrap().unwrap();
        assert_eq!(c.key, "abc");
        assert_eq!(c.client.as_deref(), Some("sentry.python/2.68.0"));
        let auth = headers(&[("authorization", "Sentry sentry_key=k2,sentry_version=7")]);
        assert_eq!(from_request(&auth, None).unwrap().unwrap().key, "k2");
        let basic = headers(&[("authorization", "Basic azM6")]); // "k3:"
        assert_eq!(from_request(&basic, None).unwrap().unwrap().key, "k3");
        let q = from_request(
            &HeaderMap::new(),
            Some("sentry_version=7&sentry_key=k4&sentry_client=sentry.javascript.node%2F11.12.0"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(q.key, "k4");
        assert_eq!(q.client.as_deref(), Some("sentry.javascript.node/11.12.0"));
        assert_eq!(
            from_request(&HeaderMap::new(), Some("foo=1")).unwrap(),
            None
        );
        // A bearer token is not a client key.
        let bearer = headers(&[("authorization", "Bearer xyz")]);
        assert_eq!(from_request(&bearer, None).unwrap(), None);
    }

    #[test]
    fn two_forms_and_versions() {
        let both = headers(&[("x-sentry-auth", "Sentry sentry_key=a, sentry_version=7")]);
        assert!(matches!(
            from_request(&both, Some("sentry_key=a")),
            Err(ApiError::Unauthorized(_))
        ));
        let v8 = headers(&[("x-sentry-auth", "Sentry sentry_key=a, sentry_version=8")]);
        assert_eq!(
            from_request(&v8, None).unwrap_err().status(),
            axum::http::StatusCode::BAD_REQUEST
        );
        let nokey = headers(&[("x-sentry-auth", "Sentry sentry_version=7")]);
        assert!(matches!(
            from_request(&nokey, None),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn dsn_keys() {
        assert_eq!(
            key_from_dsn("http://abc@127.0.0.1:9000/1").as_deref(),
            Some("abc")
        );
        assert_eq!(
            key_from_dsn("https://abc:secret@h/p/1").as_deref(),
            Some("abc")
        );
        assert_eq!(key_from_dsn("https://h/1"), None);
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
    }
}
