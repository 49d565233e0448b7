//! The `Job` build strategy: the builder Job made from the user's pod
//! template, and what its finished pods say.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvVar, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::images::parse_digest;
use crate::labels;

/// What the builder Job says so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Running,
    /// The digest the builder reported (`sha256:...`).
    Succeeded(String),
    Failed(String),
}

/// Everything that names one component build.
pub struct BuildRequest<'a> {
    pub deployment: &'a str,
    pub namespace: &'a str,
    pub release: &'a str,
    pub component: &'a str,
    pub repo_url: &'a str,
    pub branch: &'a str,
    pub commit: &'a str,
    /// Where the builder pushes, `repository:tag`.
    pub destination: String,
    pub timeout_seconds: i64,
    pub owners: Vec<OwnerReference>,
}

/// The builder Job's name.
pub fn job_name(release: &str, component: &str) -> String {
    labels::label_value(&format!("{release}-{component}"))
}

/// The builder Job: the user's template with the build's facts as env vars
/// on every container, never restarted, bounded by the build timeout.
pub fn builder_job(template: &PodTemplateSpec, req: &BuildRequest<'_>) -> Job {
    let mut template = template.clone();
    let build_labels: BTreeMap<String, String> = [
        (labels::DEPLOYMENT, req.deployment),
        (labels::DEPLOYMENT_NAMESPACE, req.namespace),
        (labels::RELEASE, req.release),
        (labels::COMPONENT, req.component),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let env = [
        ("PACKIT_REPO_URL", req.repo_url),
        ("PACKIT_BRANCH", req.branch),
        ("PACKIT_COMMIT", req.commit),
        ("PACKIT_IMAGE", req.destination.as_str()),
        ("PACKIT_RELEASE", req.release),
        ("PACKIT_COMPONENT", req.component),
    ];
    run_once(&mut template, &build_labels, &env);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(req.release, req.component)),
            labels: Some(build_labels),
            owner_references: Some(req.owners.clone()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(req.timeout_seconds.max(1)),
            template,
            ..Default::default()
        }),
        status: None,
    }
}

/// Makes a user's pod template a Job's: the operator's labels on the pod,
/// `env` on every container (replacing variables of the same name), and
/// never restarted.
pub fn run_once(
    template: &mut PodTemplateSpec,
    pod_labels: &BTreeMap<String, String>,
    env: &[(&str, &str)],
) {
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .extend(pod_labels.clone());
    let Some(spec) = &mut template.spec else {
        return;
    };
    spec.restart_policy = Some("Never".into());
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        let vars = c.env.get_or_insert_with(Vec::new);
        vars.retain(|v| !env.iter().any(|(k, _)| *k == v.name));
        vars.extend(env.iter().map(|(k, v)| EnvVar {
            name: (*k).to_owned(),
            value: Some((*v).to_owned()),
            value_from: None,
        }));
    }
}

/// Whether a Job finished: `Ok` once Complete, the reason once Failed.
pub fn finished(job: &Job) -> Option<Result<(), String>> {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let true_condition = |type_: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if let Some(c) = true_condition("Failed") {
        let reason = c.reason.clone().unwrap_or_else(|| "Failed".into());
        return Some(Err(match &c.message {
            Some(m) if !m.is_empty() => format!("{reason}: {m}"),
            _ => reason,
        }));
    }
    true_condition("Complete").map(|_| Ok(()))
}

/// Reads a builder Job and its pods: the digest comes from a terminated
/// container's termination message.
pub fn job_outcome(job: &Job, pods: &[Pod]) -> JobOutcome {
    match finished(job) {
        None => return JobOutcome::Running,
        Some(Err(reason)) => return JobOutcome::Failed(reason),
        Some(Ok(())) => {}
    }
    let messages = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.message.as_deref());
    for message in messages {
        if let Some(digest) = parse_digest(message) {
            return JobOutcome::Succeeded(digest);
        }
    }
    JobOutcome::Failed(
        "the builder finished without writing an image digest (sha256:...) to its termination message".into(),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus,
    };

    use super::*;

    fn request() -> BuildRequest<'static> {
        BuildRequest {
            deployment: "packit-service",
            namespace: "packit-system",
            release: "packit-service-20261120-170000",
            component: "service",
            repo_url: "file:///srv/packit-service.git",
            branch: "stable",
            commit: "0123456789abcdef0123456789abcdef01234567",
            destination: "127.0.0.1:5000/packit/service:packit-service-20261120-170000".into(),
            timeout_seconds: 2700,
            owners: vec![],
        }
    }

    fn template() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                restart_policy: Some("OnFailure".into()),
                containers: vec![Container {
                    name: "buildah".into(),
                    image: Some("quay.io/buildah/stable".into()),
                    env: Some(vec![
                        EnvVar {
                            name: "KEEP".into(),
                            value: Some("1".into()),
                            value_from: None,
                        },
                        EnvVar {
                            name: "PACKIT_COMMIT".into(),
                            value: Some("stale".into()),
                            value_from: None,
                        },
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_job_carries_the_build_facts() {
        let job = builder_job(&template(), &request());
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("packit-service-20261120-170000-service")
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(2700));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let env: Vec<(String, String)> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        assert!(env.contains(&("KEEP".into(), "1".into())));
        assert!(env.contains(&("PACKIT_COMMIT".into(), request().commit.into())));
        assert!(env.contains(&("PACKIT_IMAGE".into(), request().destination)));
        assert!(env.contains(&(
            "PACKIT_RELEASE".into(),
            "packit-service-20261120-170000".into()
        )));
        assert_eq!(env.iter().filter(|(k, _)| k == "PACKIT_COMMIT").count(), 1);
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(
            labels.get(labels::RELEASE).map(String::as_str),
            Some("packit-service-20261120-170000")
        );
    }

    #[test]
    fn long_job_names_are_shortened_stably() {
        let long = "a-very-long-deployment-name-for-the-packit-service-20261120-170000";
        let name = job_name(long, "consumer");
        assert!(name.len() <= 63, "{name}");
        assert_eq!(name, job_name(long, "consumer"));
        assert_ne!(name, job_name(long, "worker"));
    }

    fn job(condition: Option<(&str, &str, &str)>) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: condition.map(|(t, reason, message)| {
                    vec![JobCondition {
                        type_: t.into(),
                        status: "True".into(),
                        reason: Some(reason.into()),
                        message: Some(message.into()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(message: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "buildah".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 0,
                            message: Some(message.into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn outcomes() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(job_outcome(&job(None), &[]), JobOutcome::Running);
        assert_eq!(
            job_outcome(
                &job(Some(("Complete", "Completed", ""))),
                &[pod(&format!("{digest}\n"))]
            ),
            JobOutcome::Succeeded(digest)
        );
        assert_eq!(
            job_outcome(
                &job(Some((
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit"
                ))),
                &[]
            ),
            JobOutcome::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
        assert!(matches!(
            job_outcome(&job(Some(("Complete", "Completed", ""))), &[pod("pushed!")]),
            JobOutcome::Failed(m) if m.contains("without writing an image digest")
        ));
    }
}
