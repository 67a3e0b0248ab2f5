//! Lists of server base URLs, as users give them (`--server URL[,URL…]`).
use crate::error::ClientError;

/// Splits and checks a comma-separated list of server base URLs.
pub(crate) fn parse_servers(servers: &str) -> Result<Vec<String>, ClientError> {
    let list: Vec<String> = servers
        .split(',')
        .map(|s| s.trim().trim_end_matches('/').to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Err(ClientError::Config(
            "no server URL given: pass --server http://HOST:PORT (several separated by commas)".into(),
        ));
    }
    for base in &list {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "server URL {base:?} must start with http:// or https://"
            )));
        }
    }
    Ok(list)
}

/// `http://…` as `https://…`.
pub(crate) fn https(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_owned(),
    }
}
