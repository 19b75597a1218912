//! The Dockerfile fetches dependencies before the sources arrive, with a
//! stand-in for every workspace member; a member it does not list makes
//! `cargo fetch` fail inside `docker build`, which no test here can run
//! (no registry). This keeps the list and the workspace in step.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_dockerfile_lists_every_workspace_member() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line in the root Cargo.toml");
    let members: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
    assert!(
        members.len() >= 5,
        "parsed members {members:?} from {line:?}"
    );
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stand_ins = dockerfile
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("RUN members=\""))
        .and_then(|rest| rest.split('"').next())
        .expect("the RUN members=\"...\" line of the Dockerfile");
    let stand_ins: Vec<&str> = stand_ins.split_whitespace().collect();
    for m in &members {
        assert!(
            dockerfile.contains(&format!("COPY {m}/Cargo.toml {m}/")),
            "the Dockerfile does not copy {m}/Cargo.toml"
        );
        assert!(
            stand_ins.contains(m),
            "{m} is missing from the Dockerfile's members list"
        );
    }
    assert_eq!(
        stand_ins.len(),
        members.len(),
        "{stand_ins:?} vs {members:?}"
    );
}
