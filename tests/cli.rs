//! The operator binary as a user runs it.

use std::process::Command;

fn operator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packit-operator"))
}

#[test]
fn crd_prints_both_crds_as_one_stream() {
    let out = operator().arg("crd").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 2);
    assert!(text.contains("name: packitdeployments.packit.dev"));
    assert!(text.contains("name: packitreleases.packit.dev"));
    assert_eq!(text.matches("\n---\n").count(), 1);
}

#[test]
fn validate_accepts_the_example_and_names_bad_fields() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/packit-service.yaml");
    let out = operator()
        .args(["validate", example])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("packit-system/packit-service is valid"));

    let dir = std::env::temp_dir().join(format!("packit-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yaml");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("Europe/Prague", "Europe/Pargue")
        .replace("duration: 4h", "duration: 0s");
    std::fs::write(&broken, text).unwrap();
    let out = operator()
        .arg("validate")
        .arg(&broken)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(r#"spec.schedule.timeZone: "Europe/Pargue" is not an IANA time zone"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"spec.schedule.production.duration: "0s" must be longer than zero"#),
        "{stdout}"
    );

    std::fs::write(&broken, "kind: Nonsense\n").unwrap();
    let out = operator()
        .arg("validate")
        .arg(&broken)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a PackitDeployment"));
    std::fs::remove_dir_all(&dir).ok();
}
