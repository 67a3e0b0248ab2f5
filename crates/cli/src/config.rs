//! Where the client finds the server and its token: flags, environment, then a config file.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use skiff_client::Client;

/// The file `skiff up` writes into its state dir, and the client reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientFile {
    /// API server URL.
    pub(crate) server: String,
    /// Bearer token.
    pub(crate) token: String,
    /// The cluster CA certificate (PEM file) for `https://` server URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<PathBuf>,
}

/// Connection settings from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) server: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) config: Option<PathBuf>,
    pub(crate) ca: Option<PathBuf>,
}

/// Default API address.
pub(crate) const DEFAULT_SERVER: &str = "https://127.0.0.1:7070";

fn read_file(path: &Path) -> Result<ClientFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading client config {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| {
        format!(
            "client config {} must have `server:` and `token:` keys",
            path.display()
        )
    })
}

impl Connection {
    /// The server URL and token from flags, environment or the config file.
    pub(crate) fn resolve(&self) -> Result<ClientFile> {
        let file = match &self.config {
            Some(p) => Some(read_file(p)?),
            None => {
                let mut candidates = vec![PathBuf::from(".skiff/client.yaml")];
                if let Some(home) = std::env::var_os("HOME") {
                    candidates.push(Path::new(&home).join(".skiff/client.yaml"));
                }
                match candidates.into_iter().find(|p| p.exists()) {
                    Some(p) => Some(read_file(&p)?),
                    None => None,
                }
            }
        };
        let server = self
            .server
            .clone()
            .or_else(|| file.as_ref().map(|f| f.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let token = self.token.clone().or_else(|| file.as_ref().map(|f| f.token.clone())).context(
            "no API token: pass --token, set SKIFF_TOKEN, or run where `skiff up` wrote .skiff/client.yaml",
        )?;
        let ca = self
            .ca
            .clone()
            .or_else(|| file.as_ref().and_then(|f| f.ca.clone()));
        Ok(ClientFile { server, token, ca })
    }

    /// The server URL(s) and the join token of a worker or gateway: from flags or environment
    /// only (a client config file holds an admin token, which is not a join token). The token
    /// may be absent once the node holds its certificate.
    pub(crate) fn server_and_join_token(&self) -> (String, Option<String>) {
        (
            self.server.clone().unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
            self.token.clone(),
        )
    }

    /// A client, or an error saying which setting is missing and where it can come from.
    pub(crate) fn client(&self) -> Result<Client> {
        let c = self.resolve()?;
        if !c.server.split(',').any(|s| s.trim().starts_with("https://")) {
            return Ok(Client::new(&c.server, &c.token)?);
        }
        let ca_path = c.ca.context(
            "an https:// server needs the cluster CA to check it: pass --ca <state dir>/pki/ca.crt (or set SKIFF_CA, or `ca:` in the client config)",
        )?;
        let pem = std::fs::read_to_string(&ca_path)
            .with_context(|| format!("reading the cluster CA {}", ca_path.display()))?;
        Client::with_cluster_ca(&c.server, &c.token, &pem).with_context(|| format!("{}", ca_path.display()))
    }
}

/// Writes the client file (owner-only permissions).
pub(crate) fn write_client_file(path: &Path, file: &ClientFile) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_saphyr::to_string(file).context("encoding client config")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
