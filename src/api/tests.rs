use kube::core::cel::validate_cel_update;
use serde_json::json;

use super::deployment::*;
use super::release::*;
use super::validate::validate;
use super::*;

/// The example shipped in `examples/`, which doubles as the test fixture.
pub(crate) fn example() -> PackitDeployment {
    let yaml = include_str!("../../examples/packit-service.yaml");
    serde_saphyr::from_str(yaml).expect("the example parses")
}

fn spec_json() -> serde_json::Value {
    serde_json::to_value(example()).unwrap()
}

fn from_json(v: serde_json::Value) -> PackitDeployment {
    serde_json::from_value(v).expect("still a PackitDeployment")
}

/// The CEL error messages for an object, as the API server would evaluate
/// them.
fn cel_errors(v: serde_json::Value) -> String {
    match from_json(v).validate_cel() {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_example_is_valid_and_gets_defaults() {
    let pkd = example();
    assert!(
        validate(&pkd.spec).is_ok(),
        "{:?}",
        validate(&pkd.spec).err()
    );
    assert_eq!(pkd.validate_cel().map_err(|e| e.to_string()), Ok(()));
    // Defaults fill what the example leaves out.
    assert_eq!(pkd.spec.components[1].source.branch, "stable");
    assert_eq!(pkd.spec.components[2].build.timeout, "1h");
    assert_eq!(
        pkd.spec.environments[1].health.http_checks[0].interval,
        "30s"
    );
    assert_eq!(
        pkd.spec.environments[0].rollback,
        RollbackSpec { automatic: true }
    );
}

#[test]
fn cel_rejects_duplicate_components_and_environments() {
    let mut v = spec_json();
    let first = v["spec"]["components"][0].clone();
    v["spec"]["components"].as_array_mut().unwrap().push(first);
    assert!(cel_errors(v).contains("component names must be unique"));

    let mut v = spec_json();
    let first = v["spec"]["environments"][0].clone();
    v["spec"]["environments"]
        .as_array_mut()
        .unwrap()
        .push(first);
    assert!(cel_errors(v).contains("environment names must be unique"));
}

#[test]
fn cel_rejects_a_target_naming_an_unknown_component() {
    let mut v = spec_json();
    v["spec"]["environments"][1]["targets"][0]["component"] = json!("frontend");
    assert!(cel_errors(v).contains("every target must name a component"));
}

#[test]
fn cel_rejects_a_job_build_without_a_template() {
    let mut v = spec_json();
    v["spec"]["components"][0]["build"] = json!({"strategy": "Job", "timeout": "1h"});
    assert!(cel_errors(v).contains("build.job is required"));
    let mut v = spec_json();
    v["spec"]["components"][1]["build"]["job"] = json!({"template": {}});
    assert!(cel_errors(v).contains("build.job is required"));
}

#[test]
fn cel_rejects_a_workload_container_targeted_twice() {
    let mut v = spec_json();
    let t = v["spec"]["environments"][0]["targets"][0].clone();
    v["spec"]["environments"][0]["targets"]
        .as_array_mut()
        .unwrap()
        .push(t);
    assert!(cel_errors(v).contains("each workload container may be targeted once"));
}

#[test]
fn validate_names_field_and_value() {
    let mut pkd = example();
    pkd.spec.components.push(pkd.spec.components[0].clone());
    pkd.spec.environments[0].targets[1].component = "nope".into();
    pkd.spec.schedule.time_zone = "Mars/Olympus".into();
    pkd.spec.schedule.build = Some("every friday".into());
    pkd.spec.environments[1].health.soak = "1 hour".into();
    let err = validate(&pkd.spec).unwrap_err();
    let text = err.to_string();
    for expected in [
        r#"spec.schedule.timeZone: "Mars/Olympus" is not an IANA time zone name"#,
        r#"spec.schedule.build: "every friday" is not a valid cron expression"#,
        r#"spec.components[3].name: "service" is used by another component"#,
        r#"spec.environments[0].targets[1].component: "nope" does not name a component"#,
        r#"spec.environments[1].health.soak: "1 hour" "#,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    assert_eq!(err.0.len(), 5);
}

#[test]
fn webhook_formats_take_what_they_need() {
    let with_hook = |hook: serde_json::Value| {
        let mut v = spec_json();
        v["spec"]["changelog"]["webhooks"] = json!([hook]);
        v
    };
    // Generic stays the default, and the fields of before are enough.
    let v = with_hook(json!({"url": "https://hooks.example.com/x"}));
    assert_eq!(cel_errors(v.clone()), "");
    let pkd = from_json(v);
    assert_eq!(
        pkd.spec.changelog.webhooks[0].format,
        WebhookFormat::Generic
    );
    assert!(validate(&pkd.spec).is_ok());
    let slack = json!({"url": "https://hooks.slack.com/services/T0/B0/x", "format": "Slack"});
    assert_eq!(cel_errors(with_hook(slack)), "");
    let matrix = json!({
        "url": "https://matrix.example.org", "format": "Matrix",
        "roomId": "!abc:example.org", "secretRef": {"name": "matrix-bot"}, "msgtype": "m.text"
    });
    assert_eq!(cel_errors(with_hook(matrix.clone())), "");
    let pkd = from_json(with_hook(matrix.clone()));
    assert_eq!(
        pkd.spec.changelog.webhooks[0].msgtype,
        Some(MatrixMsgtype::Text)
    );
    assert!(validate(&pkd.spec).is_ok());

    for (without, expected) in [
        ("roomId", "a Matrix webhook needs roomId and secretRef"),
        ("secretRef", "a Matrix webhook needs roomId and secretRef"),
    ] {
        let mut hook = matrix.clone();
        hook.as_object_mut().unwrap().remove(without);
        let v = with_hook(hook);
        assert!(cel_errors(v.clone()).contains(expected), "{without}");
        let text = validate(&from_json(v).spec).unwrap_err().to_string();
        assert!(
            text.contains(&format!("spec.changelog.webhooks[0].{without}")),
            "{text}"
        );
    }
    let mut hook = matrix.clone();
    hook["url"] = json!("https://matrix.example.org/?access_token=x");
    assert!(cel_errors(with_hook(hook)).contains("without query or fragment"));
    let slack_with_room =
        json!({"url": "https://hooks.slack.com/x", "format": "Slack", "roomId": "!a:b"});
    assert!(cel_errors(with_hook(slack_with_room.clone())).contains("for Matrix webhooks only"));
    assert!(validate(&from_json(with_hook(slack_with_room)).spec).is_err());
}

#[test]
fn release_spec_is_immutable_once_set() {
    let release = |images: Option<&str>| -> PackitRelease {
        PackitRelease::new(
            "packit-service-20261120-180000",
            PackitReleaseSpec {
                deployment: "packit-service".into(),
                trigger: Trigger::Schedule,
                components: vec![ReleaseComponent {
                    name: "service".into(),
                    source: Revision {
                        url: "https://github.com/packit/packit-service.git".into(),
                        name: None,
                        commit: "a".repeat(40),
                        previous_commit: None,
                    },
                    includes: vec![],
                }],
                previous: None,
                images: images.map(|digit| {
                    [(
                        "service".to_owned(),
                        ImageRef(format!(
                            "quay.io/packit/packit-service@sha256:{}",
                            digit.repeat(64)
                        )),
                    )]
                    .into()
                }),
            },
        )
    };
    let unbuilt = release(None);
    let built = release(Some("1"));
    // Recording the images once is allowed.
    assert_eq!(
        validate_cel_update(&built, &unbuilt).map_err(|e| e.to_string()),
        Ok(())
    );
    // Changing or removing them is not.
    let err = validate_cel_update(&release(Some("2")), &built)
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec.images is immutable"), "{err}");
    let err = validate_cel_update(&unbuilt, &built)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot be removed"), "{err}");
    // Nor the commits.
    let mut moved = built.clone();
    moved.spec.components[0].source.commit = "b".repeat(40);
    let err = validate_cel_update(&moved, &built).unwrap_err().to_string();
    assert!(err.contains("spec.components is immutable"), "{err}");
}

#[test]
fn crds_have_short_names_status_and_columns() {
    let pkd = PackitDeployment::crd();
    assert_eq!(pkd.spec.names.short_names, Some(vec!["pkd".to_owned()]));
    let version = &pkd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some())
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Phase", "Releases", "Next Build", "Next Window", "Age"]
    );

    let pkr = PackitRelease::crd();
    assert_eq!(pkr.spec.names.short_names, Some(vec!["pkr".to_owned()]));
    let columns: Vec<&str> = pkr.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Deployment", "Phase", "Trigger", "Commits", "Age"]
    );
}

#[test]
fn every_schema_field_has_a_description() {
    fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (name, prop) in props {
                let p = format!("{path}.{name}");
                if prop.get("description").is_none()
                    && !["metadata", "apiVersion", "kind"].contains(&name.as_str())
                {
                    missing.push(p.clone());
                }
                walk(&p, prop, missing);
            }
        }
        if let Some(items) = v.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
        if let Some(add) = v.get("additionalProperties") {
            walk(&format!("{path}{{}}"), add, missing);
        }
    }
    for crd in [PackitDeployment::crd(), PackitRelease::crd()] {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let mut missing = Vec::new();
        walk("", &schema["openAPIV3Schema"], &mut missing);
        // Conditions come from k8s-openapi and carry their own docs.
        missing.retain(|p| !p.contains(".conditions"));
        assert!(
            missing.is_empty(),
            "{}: fields without docs: {missing:?}",
            crd.spec.names.kind
        );
    }
}
