//! Why a pod could not start: a [`StartFailure`] of a [`FailureKind`], which names the pod's
//! `status.reason` and says whether a retry may help.
//!
//! Failures a retry is not expected to change (an invalid spec, a missing, oversized, mismatching
//! or invalid artifact, a compile or link error, a component of another world, a bad or missing
//! image, no runtime for containers) keep their own reason: a served pod under `restartPolicy:
//! Always` / `OnFailure` waits on its node with a growing back-off before it tries again
//! (`PodState::StartBackOff`, like Kubernetes' `ImagePullBackOff`), so no controller replaces it
//! and nothing churns; under `Never`, and for commands, they fail the pod. The others are
//! retried as a crash loop (`CrashLoopBackOff`, counted as restarts).

/// The kinds of start failure; each is one `status.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The pod's spec cannot run (no components, no artifact, an unpinned URL or image, …).
    InvalidSpec,
    /// An `env`/`config` `valueFrom` names a ConfigMap, Secret or key that cannot be read.
    ConfigError,
    /// The artifact could not be fetched.
    ArtifactNotFound,
    /// The fetched bytes do not have the pinned digest (nothing was cached).
    ArtifactDigestMismatch,
    /// The artifact is above the size limit.
    ArtifactTooLarge,
    /// The artifact is not a valid WebAssembly component (checked before compiling).
    InvalidComponent,
    /// The component is valid but does not compile.
    CompileError,
    /// The component imports something this node does not provide.
    LinkError,
    /// The component does not export what its declared world needs (`wasi:http` for `http`,
    /// `skiff:function/handler` for `function`).
    WorldMismatch,
    /// The component cannot be instantiated now (or its compile was interrupted).
    InstantiateError,
    /// A wasm image or a container image is not usable (bad manifest, reference or layer).
    InvalidImage,
    /// The container image does not exist.
    ImageNotFound,
    /// The container image does not have its pinned digest.
    ImageDigestMismatch,
    /// The container image's registry cannot be reached.
    ImagePullBackOff,
    /// This node runs no runtime plugin for containers.
    RuntimeUnavailable,
    /// The runtime plugin is configured but does not answer now.
    RuntimePluginUnavailable,
    /// No port of the container range is free.
    NoPortAvailable,
    /// A container exited as it started.
    ContainerExited,
    /// Any other error of the runtime plugin.
    ContainerError,
}

impl FailureKind {
    /// The `status.reason` a pod that failed this way reports.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            FailureKind::InvalidSpec => "InvalidSpec",
            FailureKind::ConfigError => "ConfigError",
            FailureKind::ArtifactNotFound => "ArtifactNotFound",
            FailureKind::ArtifactDigestMismatch => "ArtifactDigestMismatch",
            FailureKind::ArtifactTooLarge => "ArtifactTooLarge",
            FailureKind::InvalidComponent => "InvalidComponent",
            FailureKind::CompileError => "CompileError",
            FailureKind::LinkError => "LinkError",
            FailureKind::WorldMismatch => "WorldMismatch",
            FailureKind::InstantiateError => "InstantiateError",
            FailureKind::InvalidImage => "InvalidImage",
            FailureKind::ImageNotFound => "ImageNotFound",
            FailureKind::ImageDigestMismatch => "ImageDigestMismatch",
            FailureKind::ImagePullBackOff => "ImagePullBackOff",
            FailureKind::RuntimeUnavailable => "RuntimeUnavailable",
            FailureKind::RuntimePluginUnavailable => "RuntimePluginUnavailable",
            FailureKind::NoPortAvailable => "NoPortAvailable",
            FailureKind::ContainerExited => "ContainerExited",
            FailureKind::ContainerError => "ContainerError",
        }
    }

    /// Whether a start that failed this way may succeed when retried.
    pub(crate) fn retryable(self) -> bool {
        !matches!(
            self,
            FailureKind::InvalidSpec
                | FailureKind::InvalidImage
                | FailureKind::ArtifactNotFound
                | FailureKind::ArtifactDigestMismatch
                | FailureKind::ArtifactTooLarge
                | FailureKind::InvalidComponent
                | FailureKind::CompileError
                | FailureKind::LinkError
                | FailureKind::WorldMismatch
                | FailureKind::ImageNotFound
                | FailureKind::ImageDigestMismatch
                | FailureKind::RuntimeUnavailable
        )
    }
}

/// Why a pod (or one of its components) could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartFailure {
    pub(crate) kind: FailureKind,
    /// What went wrong, for `status.message`.
    pub(crate) message: String,
}

impl StartFailure {
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        StartFailure {
            kind,
            message: message.into(),
        }
    }

    /// The pod's `status.reason`.
    pub(crate) fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// Whether a retry may succeed (see the module docs).
    pub(crate) fn retryable(&self) -> bool {
        self.kind.retryable()
    }
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::FailureKind::*;
    use super::*;

    const ALL: [FailureKind; 19] = [
        InvalidSpec,
        ConfigError,
        ArtifactNotFound,
        ArtifactDigestMismatch,
        ArtifactTooLarge,
        InvalidComponent,
        CompileError,
        LinkError,
        WorldMismatch,
        InstantiateError,
        InvalidImage,
        ImageNotFound,
        ImageDigestMismatch,
        ImagePullBackOff,
        RuntimeUnavailable,
        RuntimePluginUnavailable,
        NoPortAvailable,
        ContainerExited,
        ContainerError,
    ];

    #[test]
    fn only_failures_a_retry_may_fix_are_retried() {
        let table = [
            (InvalidSpec, false),
            (ConfigError, true),
            (ArtifactNotFound, false),
            (ArtifactDigestMismatch, false),
            (ArtifactTooLarge, false),
            (InvalidComponent, false),
            (CompileError, false),
            (LinkError, false),
            (WorldMismatch, false),
            (InstantiateError, true),
            (InvalidImage, false),
            (ImageNotFound, false),
            (ImageDigestMismatch, false),
            (ImagePullBackOff, true),
            (RuntimeUnavailable, false),
            (RuntimePluginUnavailable, true),
            (NoPortAvailable, true),
            (ContainerExited, true),
            (ContainerError, true),
        ];
        assert_eq!(table.len(), ALL.len(), "every kind is in the table");
        for (kind, retryable) in table {
            let f = StartFailure::new(kind, "why");
            assert_eq!(f.retryable(), retryable, "{kind:?}");
        }
    }

    #[test]
    fn reasons_are_the_status_reasons_and_distinct() {
        let reasons: std::collections::HashSet<&str> = ALL.iter().map(|k| k.reason()).collect();
        assert_eq!(reasons.len(), ALL.len());
        for k in ALL {
            assert_eq!(k.reason(), format!("{k:?}"), "the reason is the kind's name");
        }
        let f = StartFailure::new(ArtifactDigestMismatch, "bytes differ");
        assert_eq!(f.reason(), "ArtifactDigestMismatch");
        assert_eq!(f.to_string(), "ArtifactDigestMismatch: bytes differ");
    }
}
