//! Kubernetes Events on a PackitDeployment: what the stages tell people.

use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource};

use crate::api::PackitDeployment;

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub reason: String,
    pub message: String,
    pub warning: bool,
}

impl Note {
    pub fn normal(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            warning: false,
        }
    }

    pub fn warning(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            ..Self::normal(reason, message)
        }
    }
}

/// Publishes Events on one deployment.
#[derive(Clone)]
pub struct Publisher {
    recorder: Recorder,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    action: &'static str,
}

impl Publisher {
    pub fn new(
        client: Client,
        reporter: kube::runtime::events::Reporter,
        deployment: &PackitDeployment,
    ) -> Self {
        Self {
            recorder: Recorder::new(client, reporter),
            reference: deployment.object_ref(&()),
            action: "Reconcile",
        }
    }

    /// The same target, Events marked with another action (e.g. `Notify`).
    pub fn for_action(&self, action: &'static str) -> Self {
        Self {
            action,
            ..self.clone()
        }
    }

    /// Publishes `note`; a failure is logged, never fatal.
    pub async fn publish(&self, note: &Note) {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.clone(),
            note: Some(truncate(note.message.clone(), 1000)),
            action: self.action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &self.reference).await {
            tracing::warn!(error = %e, "publishing an Event failed");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max.saturating_sub(3);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short".into(), 10), "short");
        let cut = truncate("ü".repeat(600), 1000);
        assert!(cut.len() <= 1000 && cut.ends_with("..."), "{}", cut.len());
    }
}
