//! A crate made from the README alone builds the first time: the code blocks of the
//! README's "Using it from build.rs" section (Cargo.toml, a proto that imports
//! `google/protobuf/timestamp.proto`, build.rs, src/main.rs; each block's first line
//! names its file) are written into a fresh crate outside the workspace, the rgrpc
//! `path` dependencies pointed at this checkout, and `cargo build` must succeed.

mod support;

use support::{FreshCrate, repo_root};

/// The section the crate is made from.
const SECTION: &str = "## Using it from build.rs";

/// The fenced code blocks of the README section: (file name from the first line,
/// the block's text).
fn section_files(readme: &str) -> Vec<(String, String)> {
    let start = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README.md has no `{SECTION}` section"));
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut files = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let first = block.first().copied().unwrap_or_default();
        let name = first
            .strip_prefix("// ")
            .or_else(|| first.strip_prefix("# "))
            .unwrap_or_else(|| panic!("a block in `{SECTION}` does not name its file: {first:?}"));
        files.push((name.trim().to_owned(), block.join("\n") + "\n"));
    }
    files
}

/// The README's `crate = { path = "..." }` lines for rgrpc's own crates, pointed at
/// this checkout.
fn local_paths(manifest: &str) -> String {
    let root = repo_root();
    manifest
        .lines()
        .map(|line| {
            for krate in ["rgrpc-runtime", "protoc-gen-rgrpc", "rgrpc-types"] {
                if line.starts_with(&format!("{krate} = ")) && line.contains("path = ") {
                    let path = root.join(krate);
                    return format!("{krate} = {{ path = {:?} }}", path.display().to_string());
                }
            }
            line.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn a_crate_made_from_the_readme_builds() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let files = section_files(&readme);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["Cargo.toml", "build.rs", "src/main.rs"] {
        assert!(
            names.contains(&expected),
            "no {expected} block in {names:?}"
        );
    }
    let proto = files
        .iter()
        .find(|(n, _)| n.ends_with(".proto"))
        .unwrap_or_else(|| panic!("no .proto block in {names:?}"));
    assert!(
        proto
            .1
            .contains("import \"google/protobuf/timestamp.proto\";"),
        "the README's proto should import a well-known type:\n{}",
        proto.1
    );
    let krate = FreshCrate::new("readme");
    for (name, text) in &files {
        let text = if name == "Cargo.toml" {
            let local = local_paths(text);
            assert_ne!(&local, text, "no rgrpc path dependency to point here");
            local
        } else {
            text.clone()
        };
        krate.write(name, &text);
    }
    let (built, log) = krate.build();
    assert!(built, "the README's crate does not build:\n{log}");
}

#[test]
fn blocks_name_their_files() {
    let files = section_files(
        "## Using it from build.rs\n\n```toml\n# Cargo.toml\n[package]\n```\n\ntext\n\n\
         ```rust\n// src/main.rs\nfn main() {}\n```\n## Next\n```rust\n// other.rs\n```\n",
    );
    assert_eq!(
        files,
        [
            (
                "Cargo.toml".to_owned(),
                "# Cargo.toml\n[package]\n".to_owned()
            ),
            (
                "src/main.rs".to_owned(),
                "// src/main.rs\nfn main() {}\n".to_owned()
            ),
        ]
    );
    assert_eq!(
        local_paths("rgrpc-runtime = { path = \"../x/rgrpc-runtime\" }\nprost = \"0.14\"\n"),
        format!(
            "rgrpc-runtime = {{ path = {:?} }}\nprost = \"0.14\"\n",
            repo_root().join("rgrpc-runtime").display().to_string()
        )
    );
}
