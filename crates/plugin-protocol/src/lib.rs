//! # skiff-plugin-protocol: what an agent and a runtime plugin say to each other
//!
//! The runtime-plugin protocol, version [`PROTOCOL_VERSION`]: HTTP/1.1 + JSON on a Unix socket
//! (`docs/runtime-plugins.md`). The agent (`skiff-agent`) is the client, a plugin such as
//! `skiff-oci` the server; both use these types, so the two sides cannot drift apart.
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `/v1/handshake` | → [`Handshake`] |
//! | POST | `/v1/images` | [`ImageRequest`] → the stored image |
//! | POST | `/v1/containers` | [`ContainerSpec`] → `201` [`StateAnswer`] |
//! | GET | `/v1/containers` | → `[`[`ContainerInfo`]`]` (what runs, after a plugin restart too) |
//! | GET | `/v1/containers/{id}` | → [`ContainerInfo`] |
//! | POST | `/v1/containers/{id}/start` | → [`StateAnswer`] |
//! | POST | `/v1/containers/{id}/stop` | [`StopRequest`] → [`StateAnswer`] |
//! | GET | `/v1/containers/{id}/logs[?follow=true]` | → output as text |
//! | DELETE | `/v1/containers/{id}` | → `204` |
//!
//! Errors are an [`ErrorAnswer`]: an [`ErrorCode`] and a message.
#![deny(missing_docs)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol version both sides speak.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a plugin says about itself (`GET /v1/handshake`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// Protocol version.
    pub protocol: u32,
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Component kinds it runs (`oci`).
    pub kinds: Vec<String>,
}

/// What a container should run, as the agent describes it (`POST /v1/containers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Unique id (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Image reference (pulled or imported before).
    pub image: String,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Replaces the image's cmd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Extra environment (after the image's).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory (default: the image's, else `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// CPU limit in millicores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// Most processes (the plugin's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// Writable directories (tmpfs) inside a read-only root, e.g. `/var/cache`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// A writable root filesystem instead of the read-only default.
    #[serde(default)]
    pub writable_root: bool,
    /// The port allocated for it (passed as `PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Where a container stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ContainerState {
    /// Made, not started.
    Created,
    /// Its process runs.
    Running {
        /// Host pid of the container's first process.
        pid: u32,
    },
    /// It ended.
    Exited {
        /// Exit code (128 + signal when killed by one).
        code: i32,
        /// When (RFC 3339).
        #[serde(rename = "finishedAt", alias = "finished_at", default)]
        finished_at: String,
    },
}

/// A container with its state, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// What was asked.
    pub spec: ContainerSpec,
    /// Where it stands.
    pub state: ContainerState,
}

/// The answer to create, start and stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateAnswer {
    /// The container.
    pub id: String,
    /// Where it stands now.
    pub state: ContainerState,
}

/// `POST /v1/images`: pull `image`, or import the OCI layout at `layout` (tagged `tag`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRequest {
    /// A reference to pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A directory holding an OCI image layout to import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<std::path::PathBuf>,
    /// The tag an imported image gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// `POST /v1/containers/{id}/stop`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopRequest {
    /// How long the container gets between TERM and KILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_millis: Option<u64>,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What failed, in the plugin's words.
    pub message: String,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $status:expr, )*) => {
        /// The code of an [`ErrorAnswer`]. A code this version does not know is kept as
        /// [`ErrorCode::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
            /// A code this version does not know; its wire name.
            Other(String),
        }

        impl ErrorCode {
            /// Its wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                    ErrorCode::Other(s) => s,
                }
            }

            /// The HTTP status a plugin answers with it (500 for an unknown one).
            pub fn http_status(&self) -> u16 {
                match self {
                    $( ErrorCode::$name => $status, )*
                    ErrorCode::Other(_) => 500,
                }
            }

            /// Every known code.
            pub const ALL: &'static [ErrorCode] = &[$( ErrorCode::$name, )*];
        }

        impl From<String> for ErrorCode {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $( stringify!($name) => ErrorCode::$name, )*
                    _ => ErrorCode::Other(s),
                }
            }
        }
    };
}

codes! {
    /// The request cannot be read.
    BadRequest = 400,
    /// An image reference that cannot be parsed.
    BadReference = 400,
    /// A container id with characters the protocol does not allow.
    InvalidContainerId = 400,
    /// No such path or method.
    NotFound = 404,
    /// The image is in neither the store nor the registry.
    ImageNotFound = 404,
    /// No such container.
    ContainerNotFound = 404,
    /// The container is not in a state that allows this.
    ContainerConflict = 409,
    /// The image's bytes do not match its digest.
    DigestMismatch = 422,
    /// The image's manifest or config cannot be used.
    BadImage = 422,
    /// A layer would write outside the root filesystem.
    UnsafeLayer = 422,
    /// The plugin's own storage failed.
    Io = 500,
    /// The plugin failed otherwise.
    Internal = 500,
    /// The plugin answered something that is not the protocol (set by the agent).
    PluginError = 502,
    /// The registry cannot be reached.
    RegistryUnreachable = 502,
    /// The plugin cannot be reached (set by the agent).
    PluginUnavailable = 503,
}

impl From<ErrorCode> for String {
    fn from(c: ErrorCode) -> Self {
        match c {
            ErrorCode::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_errors_have_their_wire_shape() {
        let s: StateAnswer =
            serde_json::from_str(r#"{"id":"a","state":{"state":"exited","code":137,"finishedAt":"x"}}"#)
                .unwrap();
        assert_eq!(
            s.state,
            ContainerState::Exited {
                code: 137,
                finished_at: "x".into()
            }
        );
        let s: StateAnswer =
            serde_json::from_str(r#"{"id":"a","state":{"state":"running","pid":7}}"#).unwrap();
        assert_eq!(s.state, ContainerState::Running { pid: 7 });
        let e: ErrorAnswer = serde_json::from_str(r#"{"code":"ContainerNotFound","message":"m"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::ContainerNotFound);
        let e: ErrorAnswer = serde_json::from_str(r#"{"code":"Later","message":"m"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Other("Later".into()));
        for c in ErrorCode::ALL {
            let back: ErrorCode = serde_json::from_str(&serde_json::to_string(c).unwrap()).unwrap();
            assert_eq!(&back, c);
        }
    }

    #[test]
    fn a_spec_round_trips_with_every_field() {
        let spec = ContainerSpec {
            id: "skiff-u-web".into(),
            image: "busybox".into(),
            command: Some(vec!["/bin/sh".into()]),
            args: Some(vec!["-c".into(), "true".into()]),
            env: vec![("PORT".into(), "30001".into())],
            working_dir: Some("/".into()),
            memory: Some(64 << 20),
            cpu_millis: Some(500),
            pids: Some(64),
            volumes: vec!["/tmp".into()],
            writable_root: false,
            port: Some(30001),
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains("\"cpuMillis\":500") && json.contains("\"pids\":64"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<ContainerSpec>(&json).unwrap(), spec);
    }
}
